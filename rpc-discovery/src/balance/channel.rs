//! The balanced channel: follows a watched endpoint set and sends each call to the endpoint its
//! strategy picks among those canary routing and health allow.

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock, Weak};
use std::task::{Context, Poll};

use rpc_core::client::OpenStream;
use rpc_core::middleware::Attempts;
use rpc_core::stream::{RawSender, RawStreaming};
use rpc_core::BoxFuture;
use rpc_core::{Delivery, Request, Response, Status};
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};
use tower::Service;

use super::config::BalanceConfig;
use super::health::Availability;
use super::node::Node;
use super::pick::Picker;
use super::route::{route_tag, Candidates};
use super::snapshot::Snapshot;
use crate::instance::EndpointSet;
use crate::registry::Watch;

struct Shared {
    /// Stops the task following the watch when the last channel clone goes.
    _stop: DropGuard,
    config: BalanceConfig,
    picker: Picker,
    snapshot: RwLock<Arc<Snapshot>>,
    name: String,
}

impl Shared {
    fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the endpoint set, keeping the connection and statistics of endpoints that stay.
    fn apply(&self, set: &EndpointSet) {
        let next = Arc::new(self.snapshot().update(set, &self.config));
        *self.snapshot.write().unwrap_or_else(|e| e.into_inner()) = next;
    }
}

/// A client channel over a watched endpoint set: one [`Channel`](rpc_core::Channel) per live
/// endpoint, a pick per call by the configured [`Strategy`](crate::Strategy), passive health
/// (endpoints failing [`BalanceConfig::eject_after`] calls in a row, or whose connection fails,
/// are ejected and later probed back, whatever the strategy; a call an endpoint did not answer
/// before the call's deadline counts as failed, and so does one lost with its connection, which
/// [keepalive](BalanceConfig::keepalive) closes when the endpoint goes silent; when every endpoint
/// is ejected, calls go to one of them at random rather than fail), and canary routing by the
/// [`ROUTE_TAG`](crate::ROUTE_TAG) metadata entry.
///
/// It is a `tower::Service<Request>` like [`Channel`](rpc_core::Channel), so generated clients
/// and middleware use it the same way. Cheap to clone.
///
/// It always reports ready: it has no queue of its own, and each endpoint's connection applies
/// its own limits. Put a concurrency limit or load shedding in front of it where callers should
/// be held back.
///
/// ```
/// use rpc_core::{server::RawService, transport::memory::MemoryListener, Request, Response, Server};
/// use rpc_discovery::{BalancedChannel, Instance, MemoryRegistry, Query, Registry};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let registry = MemoryRegistry::new();
/// let mut regs = Vec::new();
/// for name in ["bal-doc-a", "bal-doc-b"] {
///     let echo = RawService::new("demo.Echo")
///         .method("Who", move |_req| async move { Ok(Response::new(name)) });
///     tokio::spawn(Server::builder().add_service(echo).serve(MemoryListener::bind(name)?));
///     regs.push(registry.register(Instance::new("demo.Echo", format!("memory://{name}"))).await?);
/// }
///
/// let channel = BalancedChannel::new(registry.watch(Query::new("demo.Echo")).await?);
/// let reply = channel.unary(Request::new("demo.Echo/Who", "")).await?;
/// assert!(reply.body().starts_with(b"bal-doc-"));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct BalancedChannel {
    shared: Arc<Shared>,
}

impl fmt::Debug for BalancedChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BalancedChannel")
            .field("name", &self.shared.name)
            .field("strategy", &self.shared.picker.strategy())
            .field("endpoints", &self.endpoints())
            .finish()
    }
}

/// What a [`BalancedChannel`] reports about one endpoint.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct EndpointStats {
    /// The instance.
    pub addr: String,
    /// Calls in flight.
    pub outstanding: u32,
    /// Calls sent to it so far.
    pub picks: usize,
    /// Of those, calls sent while every endpoint was unavailable (panic mode).
    pub panic_picks: usize,
    /// `true` while it is ejected.
    pub ejected: bool,
    /// Times it was ejected since it joined the set.
    pub ejections: u64,
    /// When its current ejection ends (`None` while it is not ejected). Until then it gets no
    /// calls, unless every endpoint is unavailable (panic mode); once that time has passed it
    /// may take one probe call, which ends the ejection if it succeeds.
    pub ejected_until: Option<Instant>,
}

impl BalancedChannel {
    /// Balances over `watch` with the default [`BalanceConfig`].
    pub fn new(watch: Watch) -> BalancedChannel {
        BalancedChannel::with_config(watch, BalanceConfig::default())
    }

    /// Balances over `watch`. A background task (so: call it within a tokio runtime) follows the
    /// watch; it ends when the last clone of the channel is dropped. When the watch stops (its
    /// registry is gone) the last set stays.
    pub fn with_config(watch: Watch, config: BalanceConfig) -> BalancedChannel {
        let first = watch.current();
        let name = first
            .instances()
            .first()
            .map_or_else(String::new, |i| i.service.clone());
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let shared = Arc::new(Shared {
            _stop: stop.drop_guard(),
            picker: Picker::new(&config),
            config,
            snapshot: RwLock::new(Arc::new(Snapshot::default())),
            name,
        });
        shared.apply(&first);
        let weak = Arc::downgrade(&shared);
        tokio::spawn(async move {
            tokio::select! {
                () = stopped.cancelled() => {}
                () = follow(weak, watch) => {}
            }
        });
        BalancedChannel { shared }
    }

    /// The endpoints, with their counters.
    pub fn endpoints(&self) -> Vec<EndpointStats> {
        let now = Instant::now();
        self.shared
            .snapshot()
            .nodes
            .iter()
            .map(|n| EndpointStats {
                addr: n.addr().to_owned(),
                outstanding: n.outstanding.load(Ordering::Relaxed),
                picks: n.picks.load(Ordering::Relaxed),
                panic_picks: n.panic_picks.load(Ordering::Relaxed),
                ejected: n.availability(now) != Availability::Available,
                ejections: n.health.ejections(),
                ejected_until: n.health.ejected_until(),
            })
            .collect()
    }

    /// Picks the endpoint for `req` (without sending anything): its address, or `None` when no
    /// endpoint is available. Exposed for tests and diagnostics.
    pub fn pick(&self, req: &Request) -> Option<String> {
        let snap = self.shared.snapshot();
        let node = self.choose(&snap, req)?;
        node.health.end_probe();
        Some(node.addr().to_owned())
    }

    /// The endpoint for `req`: a probe when one is due, otherwise the strategy's pick among the
    /// healthy endpoints canary routing allows, preferring those this call has not tried.
    fn choose(&self, snap: &Snapshot, req: &Request) -> Option<Arc<Node>> {
        let now = Instant::now();
        let tag = route_tag(req);
        let mut candidates = Candidates::of(&snap.nodes, now, tag);
        if candidates.healthy.is_empty() && candidates.probe.is_none() && tag.is_some() {
            // Nothing carries the tag: fall back to the rest.
            candidates = Candidates::of(&snap.nodes, now, None);
        }
        let Candidates { mut healthy, probe } = candidates;
        if let Some(i) = probe {
            // An endpoint whose ejection is over takes one call to prove itself.
            let n = &snap.nodes[i];
            if n.health.start_probe() {
                return Some(n.clone());
            }
        }
        if healthy.is_empty() {
            return self.panic_pick(snap, tag);
        }
        if let Some(attempts) = req
            .extensions()
            .get::<Arc<Attempts>>()
            .filter(|a| a.any_tried())
        {
            // A retry or hedge goes to an endpoint this call has not tried, when there is one.
            let untried: Vec<usize> = healthy
                .iter()
                .copied()
                .filter(|&i| !attempts.tried(snap.nodes[i].addr()))
                .collect();
            if !untried.is_empty() {
                healthy = untried;
            }
        }
        let idx = self
            .shared
            .picker
            .pick(&snap.nodes, &snap.ring, &healthy, req, now);
        Some(snap.nodes[idx].clone())
    }

    /// Every endpoint `tag` allows is ejected: rather than fail every call until an ejection
    /// ends, try one of them at random (the "panic mode" of Envoy's and Finagle's balancers).
    /// Ejection is for steering calls away from an endpoint while others can take them; when
    /// none can, an endpoint ejected for the failures of something behind it (a frozen
    /// dependency, a burst of deadlines) may well answer, and one that is really gone fails the
    /// call as it would have anyway. `None` only when there is no endpoint at all.
    fn panic_pick(&self, snap: &Snapshot, tag: Option<(&str, &str)>) -> Option<Arc<Node>> {
        let tagged: Vec<usize> = (0..snap.nodes.len())
            .filter(|&i| tag.is_none_or(|(k, v)| snap.nodes[i].instance.has_tag(k, v)))
            .collect();
        let i = match tagged.len() {
            0 if snap.nodes.is_empty() => return None,
            0 => fastrand::usize(..snap.nodes.len()),
            n => tagged[fastrand::usize(..n)],
        };
        tracing::debug!(
            service = %self.shared.name,
            addr = snap.nodes[i].addr(),
            "every endpoint is ejected; trying one anyway"
        );
        snap.nodes[i].panic_picks.fetch_add(1, Ordering::Relaxed);
        Some(snap.nodes[i].clone())
    }

    /// Sends a call to the endpoint the strategy picks.
    ///
    /// # Errors
    /// `Unavailable` (not sent) when no endpoint is live; otherwise the endpoint's answer.
    pub async fn unary(&self, req: Request) -> Result<Response, Status> {
        let snap = self.shared.snapshot();
        let Some(node) = self.choose(&snap, &req) else {
            return Err(self.no_endpoint(snap.nodes.len()));
        };
        drop(snap);
        self.send(&node, req).await
    }

    /// Sends `req` to `node`, learning from the outcome.
    pub(crate) async fn send(&self, node: &Node, req: Request) -> Result<Response, Status> {
        node.call(req, &self.shared.config).await
    }

    /// The healthy endpoints `req` may go to (canary routing applied), in random order.
    pub(crate) fn live_nodes(&self, req: &Request) -> Vec<Arc<Node>> {
        let snap = self.shared.snapshot();
        let now = Instant::now();
        let tag = route_tag(req);
        let mut healthy = Candidates::of(&snap.nodes, now, tag).healthy;
        if healthy.is_empty() && tag.is_some() {
            healthy = Candidates::of(&snap.nodes, now, None).healthy;
        }
        fastrand::shuffle(&mut healthy);
        healthy.into_iter().map(|i| snap.nodes[i].clone()).collect()
    }

    /// The error of a call with no endpoint to go to, `known` endpoints being known.
    pub(crate) fn no_endpoint(&self, known: usize) -> Status {
        Status::unavailable(format!(
            "no live endpoint for {:?} ({known} known, all ejected or none registered)",
            self.shared.name
        ))
        .with_delivery(Delivery::NotSent)
    }
}

/// Applies every change of `watch` until the channel is gone.
async fn follow(shared: Weak<Shared>, mut watch: Watch) {
    loop {
        let Ok(set) = watch.changed().await else {
            tracing::warn!("endpoint watch ended; keeping the last endpoint set");
            return;
        };
        let Some(shared) = shared.upgrade() else {
            return;
        };
        shared.apply(&set);
    }
}

impl Service<Request> for BalancedChannel {
    type Response = Response;
    type Error = Status;
    type Future = BoxFuture<'static, Result<Response, Status>>;

    /// Always ready (see the type's docs).
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { this.unary(req).await })
    }
}

/// A stream goes to one endpoint, chosen as a call's is, and stays there: its messages are not
/// balanced, retried or moved if that endpoint fails (the stream ends with the failure, and the
/// caller opens another). A failure to open counts against the endpoint's health and breaker as
/// a call's failure does; an open stream does not count as a call in flight.
impl OpenStream for BalancedChannel {
    fn open_stream(
        &self,
        request: Request,
        stream_flags: u8,
    ) -> BoxFuture<'static, Result<(Option<RawSender>, RawStreaming), Status>> {
        let this = self.clone();
        Box::pin(async move {
            let snap = this.shared.snapshot();
            let Some(node) = this.choose(&snap, &request) else {
                return Err(this.no_endpoint(snap.nodes.len()));
            };
            drop(snap);
            node.open_stream(request, stream_flags, &this.shared.config)
                .await
        })
    }
}
