//! Server-side discovery: one service that sends each call to the instances of the service it
//! names, for a gateway or a proxy in front of services its own callers cannot discover.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use rpc_core::client::OpenStream;
use rpc_core::stream::{RawSender, RawStreaming};
use rpc_core::{Delivery, Request, Response, Status};
use tower::util::BoxCloneSyncService;
use tower::{Layer, Service, ServiceExt};

use rpc_core::describe::{Description, Format};

use crate::balance::{BalanceConfig, BalancedChannel, EndpointStats};
use crate::instance::Query;
use crate::registry::Registry;
use rpc_core::BoxFuture;

/// What a route sends calls through: the layer's stack over a [`BalancedChannel`], boxed, and the
/// channel itself (for its endpoints' state).
#[derive(Clone)]
struct Route {
    svc: BoxCloneSyncService<Request, Response, Status>,
    channel: BalancedChannel,
}

/// The most services a router keeps routes to; calls naming others past it are refused with
/// `Unavailable` (a caller cannot make a router watch without bound).
pub const DEFAULT_MAX_ROUTES: usize = 1024;

/// Routes each call by its service name (`package.Service`, [`Request::service`]) to a
/// [`BalancedChannel`] over that service's instances in a [`Registry`], under a client stack
/// (`layer`: deadline, retry budget, breaker, …) of the caller's choosing: server-side
/// discovery, for an API gateway in front of callers that cannot discover services themselves.
///
/// A route is made on the first call naming its service (a watch of [`Query::new`] of the
/// name) and kept, so later calls reuse its connections and its balancer's state. A service with
/// no registered instance is answered `Unavailable` (not sent) at once and gets no route (and for
/// a second, no further registry look-up); at most [`max_routes`](DiscoveryRouter::max_routes)
/// routes are kept. Names that cannot be services (other than ASCII letters, digits, `.`, `_`,
/// `-`, `/`, or over 256 bytes) are refused without a look-up.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use rpc_core::middleware::DeadlineLayer;
/// use rpc_discovery::{DiscoveryRouter, MemoryRegistry, Registry};
///
/// let registry: Arc<dyn Registry> = Arc::new(MemoryRegistry::new());
/// let router = DiscoveryRouter::new(registry, DeadlineLayer::new(Duration::from_secs(2)));
/// # let _ = router;
/// ```
pub struct DiscoveryRouter<L> {
    registry: Arc<dyn Registry>,
    // Shared: a call clones the router (four reference counts, no deep copy).
    layer: Arc<L>,
    config: Arc<BalanceConfig>,
    max_routes: usize,
    routes: Arc<Mutex<HashMap<String, Route>>>,
    /// Services recently found to have no instance, and when: asked again within
    /// [`UNKNOWN_TTL`], they are refused without another registry look-up.
    unknown: Arc<Mutex<HashMap<String, std::time::Instant>>>,
}

/// How long a service found to have no instance is refused without asking the registry again.
const UNKNOWN_TTL: std::time::Duration = std::time::Duration::from_secs(1);

/// The most service names remembered as unknown.
const MAX_UNKNOWN: usize = 4096;

/// Whether `name` can be a service name: 1 to 256 bytes of ASCII letters, digits, `.`, `_`,
/// `-` and `/` (a router looks nothing else up).
fn plausible(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 256
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/'))
}

impl<L> Clone for DiscoveryRouter<L> {
    fn clone(&self) -> Self {
        DiscoveryRouter {
            registry: self.registry.clone(),
            layer: self.layer.clone(),
            config: self.config.clone(),
            max_routes: self.max_routes,
            routes: self.routes.clone(),
            unknown: self.unknown.clone(),
        }
    }
}

impl<L> fmt::Debug for DiscoveryRouter<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let routes: Vec<String> = self
            .routes
            .lock()
            .map(|r| r.keys().cloned().collect())
            .unwrap_or_default();
        f.debug_struct("DiscoveryRouter")
            .field("routes", &routes)
            .field("max_routes", &self.max_routes)
            .finish_non_exhaustive()
    }
}

impl<L> DiscoveryRouter<L> {
    /// Routes calls to the instances `registry` lists, each route under `layer`'s stack.
    pub fn new(registry: Arc<dyn Registry>, layer: L) -> DiscoveryRouter<L> {
        DiscoveryRouter {
            registry,
            layer: Arc::new(layer),
            config: Arc::new(BalanceConfig::new()),
            max_routes: DEFAULT_MAX_ROUTES,
            routes: Arc::new(Mutex::new(HashMap::new())),
            unknown: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// How each route's [`BalancedChannel`] balances and connects.
    #[must_use]
    pub fn balance(mut self, config: BalanceConfig) -> DiscoveryRouter<L> {
        self.config = Arc::new(config);
        self
    }

    /// The most routes kept (default [`DEFAULT_MAX_ROUTES`]).
    #[must_use]
    pub fn max_routes(mut self, n: usize) -> DiscoveryRouter<L> {
        self.max_routes = n;
        self
    }

    /// The services routed to so far, sorted.
    pub fn services(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .routes
            .lock()
            .map(|r| r.keys().cloned().collect())
            .unwrap_or_default();
        names.sort();
        names
    }
}

impl<L> Service<Request> for DiscoveryRouter<L>
where
    L: Layer<BalancedChannel> + Clone + Send + Sync + 'static,
    L::Service:
        Service<Request, Response = Response, Error = Status> + Clone + Send + Sync + 'static,
    <L::Service as Service<Request>>::Future: Send + 'static,
{
    type Response = Response;
    type Error = Status;
    type Future = BoxFuture<'static, Result<Response, Status>>;

    /// Always ready: each route waits for its own readiness.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let route = this.route(req.service()).await?;
            route.svc.oneshot(req).await
        })
    }
}

/// A stream goes to one instance of the service it names, as a call's first attempt would (see
/// [`BalancedChannel`]'s `OpenStream`): not through the route's layers, since a stream is not
/// retried.
impl<L> OpenStream for DiscoveryRouter<L>
where
    L: Layer<BalancedChannel> + Clone + Send + Sync + 'static,
    L::Service:
        Service<Request, Response = Response, Error = Status> + Clone + Send + Sync + 'static,
    <L::Service as Service<Request>>::Future: Send + 'static,
{
    fn open_stream(
        &self,
        request: Request,
        stream_flags: u8,
    ) -> BoxFuture<'static, Result<(Option<RawSender>, RawStreaming), Status>> {
        let this = self.clone();
        Box::pin(async move {
            let route = this.route(request.service()).await?;
            route.channel.open_stream(request, stream_flags).await
        })
    }
}

impl<L> DiscoveryRouter<L>
where
    L: Layer<BalancedChannel> + Clone + Send + Sync + 'static,
    L::Service:
        Service<Request, Response = Response, Error = Status> + Clone + Send + Sync + 'static,
    <L::Service as Service<Request>>::Future: Send + 'static,
{
    /// The route to `service`, made now if there is none.
    async fn route(&self, service: &str) -> Result<Route, Status> {
        if let Some(route) = self.lookup(service) {
            return Ok(route);
        }
        let unavailable = |why: String| Status::unavailable(why).with_delivery(Delivery::NotSent);
        if !plausible(service) {
            return Err(unavailable(format!("no service is named {service:?}")));
        }
        if self.recently_unknown(service) {
            return Err(unavailable(format!(
                "no instance of service {service:?} is registered"
            )));
        }
        let watch = self
            .registry
            .watch(Query::new(service))
            .await
            .map_err(|e| unavailable(format!("cannot look {service:?} up: {e}")))?;
        if watch.current().is_empty() {
            self.remember_unknown(service);
            return Err(unavailable(format!(
                "no instance of service {service:?} is registered"
            )));
        }
        let channel = BalancedChannel::with_config(watch, BalanceConfig::clone(&self.config));
        let route = Route {
            svc: BoxCloneSyncService::new(self.layer.layer(channel.clone())),
            channel,
        };
        let mut routes = self
            .routes
            .lock()
            .map_err(|_| Status::internal("the route table lock is poisoned"))?;
        if let Some(existing) = routes.get(service) {
            // Another call made it first: one route per service.
            return Ok(existing.clone());
        }
        if routes.len() >= self.max_routes {
            return Err(unavailable(format!(
                "this router keeps at most {} routes",
                self.max_routes
            )));
        }
        routes.insert(service.to_owned(), route.clone());
        Ok(route)
    }

    /// The description of `service` (`rpc.Server/Describe`, JSON) from one of its instances,
    /// through its route's stack.
    ///
    /// # Errors
    /// `Unavailable` when no instance is registered; the call's status; `Internal` for a
    /// description that does not parse.
    pub async fn describe(&self, service: &str) -> Result<Description, Status> {
        let route = self.route(service).await?;
        let json = rpc_core::describe::fetch(route.svc, Format::Json).await?;
        Description::from_json(&json)
            .map_err(|e| Status::internal(format!("the description of {service:?}: {e}")))
    }

    /// The endpoints of `service` and their state (made a route if it has none yet).
    ///
    /// # Errors
    /// As a call's route: `Unavailable` when no instance is registered.
    pub async fn endpoints(&self, service: &str) -> Result<Vec<EndpointStats>, Status> {
        Ok(self.route(service).await?.channel.endpoints())
    }

    fn recently_unknown(&self, service: &str) -> bool {
        self.unknown
            .lock()
            .ok()
            .and_then(|u| u.get(service).copied())
            .is_some_and(|at| at.elapsed() < UNKNOWN_TTL)
    }

    fn remember_unknown(&self, service: &str) {
        if let Ok(mut unknown) = self.unknown.lock() {
            if unknown.len() >= MAX_UNKNOWN {
                unknown.retain(|_, at| at.elapsed() < UNKNOWN_TTL);
                if unknown.len() >= MAX_UNKNOWN {
                    return;
                }
            }
            unknown.insert(service.to_owned(), std::time::Instant::now());
        }
    }

    fn lookup(&self, service: &str) -> Option<Route> {
        self.routes.lock().ok()?.get(service).cloned()
    }
}
