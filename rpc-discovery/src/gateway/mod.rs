//! An API gateway (feature `gateway`): outside HTTP calls to the services a [`Registry`] lists,
//! server-side discovery for callers that cannot discover services themselves (browsers, mobile
//! apps, partners, other languages).
//!
//! A [`Gateway`] serves, on its own port:
//! - the routes of its [`GatewayConfig`] (a JSON file): a public path and HTTP method to a
//!   service method, path and query parameters typed and mapped into the request message
//!   (`GET /api/orders/{id}`), each with its deadline, authentication (a bearer token, or an
//!   API key in `x-api-key`), a quota per caller (its principal, an API key's caller, or its IP
//!   address; `429` with `Retry-After`) and a response cache (bounded, a time to live per route,
//!   per caller where the route says so and always on routes that authenticate, never for a
//!   request with `rpc-md-*` headers; `Cache-Control: no-cache` and `no-store` honoured;
//!   `x-cache: hit|miss`); credentials are checked from the headers before the body is read;
//! - `POST /{package.Service}/{Method}` for every registered service (the mapping of
//!   `docs/protocol.md` §18, server streams as Server-Sent Events), unless the configuration
//!   turns it off. A method that a route authenticates is refused there (`403`: it is called
//!   through its route); these calls get the gateway's deadline (at most) but no quota and no
//!   cache, and the `Authorization` header goes on to the backend, which checks it if it
//!   authenticates its callers. A public deployment that must limit every call turns
//!   `rpc_paths` off;
//! - `GET /healthz` (the gateway is up), `GET /readyz` (every service the routes name has a
//!   live instance), `GET /metrics` (Prometheus text), `GET /openapi.json` (assembled from the
//!   backends' descriptions), `GET /gateway/services` (services, methods and endpoints, as JSON)
//!   and `GET /`, the console page that lists them and tries calls;
//! - CORS for the configured origins, a body limit (`413`), and one access-log line per request
//!   (`tracing`, target `rpc_discovery::gateway::access`: method, path, route, status, latency,
//!   principal, request id).
//!
//! Calls go through a [`DiscoveryRouter`] and the client stack it was given (deadline, retry
//! budget, breaker); streams go to one instance directly (a stream is not retried) and last as
//! long as their client listens. A backend that is down is `503` at once, one that times out
//! `504`; a client that goes away cancels its call.
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//! use rpc_core::middleware::{CircuitBreakerLayer, DeadlineLayer, RetryLayer};
//! use rpc_discovery::gateway::{Gateway, GatewayConfig};
//! use rpc_discovery::{DiscoveryRouter, MemoryRegistry, Registry};
//! use tower::ServiceBuilder;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let registry: Arc<dyn Registry> = Arc::new(MemoryRegistry::global());
//! let stack = ServiceBuilder::new()
//!     .layer(DeadlineLayer::new(Duration::from_secs(5)))
//!     .layer(RetryLayer::new())
//!     .layer(CircuitBreakerLayer::new())
//!     .into_inner();
//! let config = GatewayConfig::from_json(r#"{"routes": [
//!     {"method": "GET", "path": "/api/stock/{sku}", "call": "shop.Inventory/Check",
//!      "message": "sku", "cache": {"ttl_ms": 1000}}
//! ]}"#)?;
//! let gateway = Gateway::builder(DiscoveryRouter::new(registry, stack)).config(config).build()?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! gateway.serve(listener, std::future::pending()).await?;
//! # Ok(())
//! # }
//! ```
//!
//! [`Registry`]: crate::Registry

mod cache;
mod metrics;
mod routes;

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, ORIGIN};
use http::{Method, StatusCode};
use hyper::body::Incoming;
use rpc_core::client::OpenStream;
use rpc_core::describe::{to_openapi, Description};
use rpc_core::http::{
    full_body, headers_to_metadata, metadata_to_headers, read_body, request_id_of, status_response,
    HttpBody, HttpConfig, HttpService, REQUEST_ID_HEADER, REQUEST_ID_KEY,
};
use rpc_core::middleware::auth::Authenticator;
use rpc_core::middleware::RateLimitLayer;
use rpc_core::stream::{RawSender, RawStreaming};
use rpc_core::transport::{Listener, PeerAddr};
use rpc_core::{AuthMethod, BoxFuture, Code, CodecId, Principal, Request, Response, Status};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use tower::util::BoxCloneSyncService;
use tower::{Layer, Service, ServiceExt};

use self::cache::ResponseCache;
use self::metrics::GatewayMetrics;
pub use self::metrics::GatewayStats;
use self::routes::{build_message, Matched, Route, RouteTable};
pub use self::routes::{
    CacheConfig, CorsConfig, GatewayConfig, ParamType, QuotaConfig, RouteCacheConfig, RouteConfig,
    RouteError,
};
use crate::balance::{BalancedChannel, EndpointStats};
use crate::router::DiscoveryRouter;

/// The header an API key comes in ([`GatewayConfig::api_keys`]).
pub const API_KEY_HEADER: &str = "x-api-key";

/// The console page (`GET /`): plain HTML and a little JavaScript, no build step.
const CONSOLE: &str = include_str!("console.html");

/// What the gateway needs of its router, with the router's layer type erased.
trait Backends: Send + Sync + 'static {
    fn call(&self, req: Request) -> BoxFuture<'static, Result<Response, Status>>;
    fn describe(&self, service: String) -> BoxFuture<'static, Result<Description, Status>>;
    fn endpoints(&self, service: String) -> BoxFuture<'static, Result<Vec<EndpointStats>, Status>>;
    fn services(&self) -> Vec<String>;
    fn open_stream(
        &self,
        req: Request,
        flags: u8,
    ) -> BoxFuture<'static, Result<(Option<RawSender>, RawStreaming), Status>>;
}

impl<L> Backends for DiscoveryRouter<L>
where
    L: Layer<BalancedChannel> + Clone + Send + Sync + 'static,
    L::Service:
        Service<Request, Response = Response, Error = Status> + Clone + Send + Sync + 'static,
    <L::Service as Service<Request>>::Future: Send + 'static,
{
    fn call(&self, req: Request) -> BoxFuture<'static, Result<Response, Status>> {
        Box::pin(self.clone().oneshot(req))
    }

    fn describe(&self, service: String) -> BoxFuture<'static, Result<Description, Status>> {
        let this = self.clone();
        Box::pin(async move { DiscoveryRouter::describe(&this, &service).await })
    }

    fn endpoints(&self, service: String) -> BoxFuture<'static, Result<Vec<EndpointStats>, Status>> {
        let this = self.clone();
        Box::pin(async move { DiscoveryRouter::endpoints(&this, &service).await })
    }

    fn services(&self) -> Vec<String> {
        DiscoveryRouter::services(self)
    }

    fn open_stream(
        &self,
        req: Request,
        flags: u8,
    ) -> BoxFuture<'static, Result<(Option<RawSender>, RawStreaming), Status>> {
        OpenStream::open_stream(self, req, flags)
    }
}

/// The router as a tower service, for the per-route quota layers and the `/{Service}/{Method}`
/// mapping.
#[derive(Clone)]
struct Backend(Arc<dyn Backends>);

impl OpenStream for Backend {
    fn open_stream(
        &self,
        request: Request,
        stream_flags: u8,
    ) -> BoxFuture<'static, Result<(Option<RawSender>, RawStreaming), Status>> {
        self.0.open_stream(request, stream_flags)
    }
}

impl Service<Request> for Backend {
    type Response = Response;
    type Error = Status;
    type Future = BoxFuture<'static, Result<Response, Status>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        self.0.call(req)
    }
}

/// Builds a [`Gateway`].
pub struct GatewayBuilder {
    backends: Arc<dyn Backends>,
    config: GatewayConfig,
    authenticator: Option<Arc<dyn Authenticator>>,
}

impl fmt::Debug for GatewayBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewayBuilder")
            .field("config", &self.config)
            .field("authenticator", &self.authenticator.is_some())
            .finish_non_exhaustive()
    }
}

impl GatewayBuilder {
    /// The routes and limits (default: no routes, `/{Service}/{Method}` on, 1 MiB bodies, 5 s
    /// deadlines).
    #[must_use]
    pub fn config(mut self, config: GatewayConfig) -> GatewayBuilder {
        self.config = config;
        self
    }

    /// Who callers are, for routes with `"auth": true` (a `JwtAuthenticator` of `rpc-core`'s
    /// `jwt` feature, typically). The principal it finds keys the route's quota and, where the
    /// route says so, its cache.
    #[must_use]
    pub fn authenticator(mut self, authenticator: impl Authenticator) -> GatewayBuilder {
        self.authenticator = Some(Arc::new(authenticator));
        self
    }

    /// The gateway.
    ///
    /// # Errors
    /// A route that cannot work ([`RouteError`]), or one that requires authentication when no
    /// authenticator is set.
    pub fn build(self) -> Result<Gateway, RouteError> {
        let table = RouteTable::new(&self.config.routes)?;
        if self.authenticator.is_none() && self.config.api_keys.is_empty() {
            if let Some(r) = table.routes().iter().find(|r| r.config.auth) {
                return Err(RouteError(format!(
                    "route {} requires authentication, and the gateway has neither an \
                     authenticator nor API keys",
                    r.name()
                )));
            }
        }
        let plain = Backend(self.backends.clone());
        let quotas = table
            .routes()
            .iter()
            .map(|r| {
                r.config.quota.as_ref().map(|q| {
                    BoxCloneSyncService::new(
                        RateLimitLayer::new()
                            .per_caller(q.per_second, q.burst)
                            .layer(plain.clone()),
                    )
                })
            })
            .collect();
        let http = HttpConfig::new()
            .max_body(self.config.max_body)
            .max_timeout(Duration::from_millis(self.config.timeout_ms));
        let rpc = HttpService::new(plain.clone(), http.clone()).with_streams(plain.clone());
        let guarded = table
            .routes()
            .iter()
            .filter(|r| r.config.auth)
            .map(|r| (r.config.call.clone(), r.name().to_owned()))
            .collect();
        Ok(Gateway {
            inner: Arc::new(Inner {
                cache: ResponseCache::new(self.config.cache.max_bytes),
                config: self.config,
                table,
                backends: self.backends,
                plain,
                quotas,
                authenticator: self.authenticator,
                metrics: GatewayMetrics::default(),
                rpc,
                http,
                guarded,
                openapi: tokio::sync::Mutex::new(None),
            }),
        })
    }
}

/// An API gateway: see the [module docs](self).
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

impl fmt::Debug for Gateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gateway")
            .field("routes", &self.inner.table.routes().len())
            .finish_non_exhaustive()
    }
}

struct Inner {
    config: GatewayConfig,
    table: RouteTable,
    backends: Arc<dyn Backends>,
    plain: Backend,
    /// Per route (by index): the quota layer over the backend, when the route has a quota.
    quotas: Vec<Option<BoxCloneSyncService<Request, Response, Status>>>,
    authenticator: Option<Arc<dyn Authenticator>>,
    cache: ResponseCache,
    metrics: GatewayMetrics,
    rpc: HttpService<Backend>,
    /// Body limits of the routes.
    http: HttpConfig,
    /// Methods a route guards with authentication: not callable around it, through
    /// `/{Service}/{Method}` (by method path, the route's name).
    guarded: BTreeMap<String, String>,
    /// `/openapi.json`, assembled at most every [`OPENAPI_TTL`].
    openapi: tokio::sync::Mutex<Option<(Instant, Bytes)>>,
}

/// How long an assembled `/openapi.json` is served before the backends are asked again.
const OPENAPI_TTL: Duration = Duration::from_secs(10);

impl Gateway {
    /// A gateway in front of the services `router` reaches.
    pub fn builder<L>(router: DiscoveryRouter<L>) -> GatewayBuilder
    where
        L: Layer<BalancedChannel> + Clone + Send + Sync + 'static,
        L::Service:
            Service<Request, Response = Response, Error = Status> + Clone + Send + Sync + 'static,
        <L::Service as Service<Request>>::Future: Send + 'static,
    {
        GatewayBuilder {
            backends: Arc::new(router),
            config: GatewayConfig::default(),
            authenticator: None,
        }
    }

    /// The hyper service of one connection from `peer`.
    pub fn service(&self, peer: PeerAddr) -> GatewayService {
        GatewayService {
            inner: self.inner.clone(),
            peer,
        }
    }

    /// Serves HTTP/1.1 and h2c on `listener` until `signal`, then drains
    /// ([`rpc_core::http::serve`]).
    ///
    /// # Errors
    /// The listener's error when accepting fails for good.
    pub async fn serve<L, F>(self, listener: L, signal: F) -> std::io::Result<()>
    where
        L: Listener,
        F: std::future::Future<Output = ()>,
    {
        rpc_core::http::serve(listener, move |peer| self.service(peer), signal).await
    }

    /// The Prometheus text of `/metrics`.
    pub fn metrics_text(&self) -> String {
        self.inner.metrics.render()
    }

    /// What it answered so far: requests by status, cache hits and misses, the p99.
    pub fn stats(&self) -> GatewayStats {
        self.inner.metrics.snapshot()
    }
}

/// A [`Gateway`] serving one connection: a hyper service.
#[derive(Clone)]
pub struct GatewayService {
    inner: Arc<Inner>,
    peer: PeerAddr,
}

impl fmt::Debug for GatewayService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewayService")
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl hyper::service::Service<http::Request<Incoming>> for GatewayService {
    type Response = http::Response<HttpBody>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn call(&self, req: http::Request<Incoming>) -> Self::Future {
        let inner = self.inner.clone();
        let peer = self.peer.clone();
        Box::pin(async move { Ok(inner.handle(req, peer).await) })
    }
}

/// What one request came to: the label it is counted under, the answer, and who asked.
struct Answered {
    route: String,
    resp: http::Response<HttpBody>,
    principal: Option<String>,
}

impl Answered {
    fn new(route: impl Into<String>, resp: http::Response<HttpBody>) -> Answered {
        Answered {
            route: route.into(),
            resp,
            principal: None,
        }
    }
}

fn json_response(status: StatusCode, value: &Value) -> http::Response<HttpBody> {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut resp = http::Response::new(full_body(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

fn refusal(status: Status) -> http::Response<HttpBody> {
    status_response(&status)
}

impl Inner {
    async fn handle(
        self: Arc<Self>,
        req: http::Request<Incoming>,
        peer: PeerAddr,
    ) -> http::Response<HttpBody> {
        let start = Instant::now();
        let origin = req.headers().get(ORIGIN).cloned();
        let request_id = request_id_of(req.headers());
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let Answered {
            route,
            mut resp,
            principal,
        } = self.answer(req, &peer, &request_id, origin.as_ref()).await;
        if let Some(cors) = &self.config.cors {
            resp.headers_mut()
                .insert("vary", HeaderValue::from_static("origin"));
            if let Some(origin) = origin.as_ref().filter(|o| self.origin_allowed(o)) {
                let allow = if cors.allow_origins.iter().any(|o| o == "*") {
                    HeaderValue::from_static("*")
                } else {
                    origin.clone()
                };
                resp.headers_mut()
                    .insert("access-control-allow-origin", allow);
            }
        }
        if origin.as_ref().is_some_and(|o| self.origin_allowed(o)) {
            let headers = resp.headers_mut();
            headers.insert(
                "access-control-expose-headers",
                HeaderValue::from_static("x-request-id, rpc-status, x-cache, retry-after"),
            );
        }
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            resp.headers_mut().insert(REQUEST_ID_HEADER, v);
        }
        let status = resp.status().as_u16();
        let took = start.elapsed();
        self.metrics.request(&route, status, took);
        tracing::info!(
            target: "rpc_discovery::gateway::access",
            %peer,
            method = %method,
            path,
            route,
            status,
            latency_us = took.as_micros() as u64,
            principal = principal.as_deref().unwrap_or("-"),
            request_id,
            "request"
        );
        resp
    }

    fn origin_allowed(&self, origin: &HeaderValue) -> bool {
        let Some(cors) = &self.config.cors else {
            return false;
        };
        let Ok(origin) = origin.to_str() else {
            return false;
        };
        cors.allow_origins.iter().any(|o| o == "*" || o == origin)
    }

    async fn answer(
        &self,
        req: http::Request<Incoming>,
        peer: &PeerAddr,
        request_id: &str,
        origin: Option<&HeaderValue>,
    ) -> Answered {
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        if method == Method::OPTIONS
            && origin.is_some()
            && req.headers().contains_key("access-control-request-method")
        {
            return Answered::new("preflight", self.preflight(origin));
        }
        if method == Method::GET {
            match path.as_str() {
                "/healthz" => {
                    return Answered::new(
                        "healthz",
                        json_response(StatusCode::OK, &json!({"status": "ok"})),
                    )
                }
                "/readyz" => return Answered::new("readyz", self.readiness().await),
                "/metrics" => {
                    let mut resp =
                        http::Response::new(full_body(Bytes::from(self.metrics.render())));
                    resp.headers_mut().insert(
                        CONTENT_TYPE,
                        HeaderValue::from_static("text/plain; version=0.0.4"),
                    );
                    return Answered::new("metrics", resp);
                }
                "/openapi.json" => return Answered::new("openapi", self.openapi().await),
                "/gateway/services" => return Answered::new("services", self.services().await),
                "/" => {
                    let mut resp =
                        http::Response::new(full_body(Bytes::from_static(CONSOLE.as_bytes())));
                    resp.headers_mut().insert(
                        CONTENT_TYPE,
                        HeaderValue::from_static("text/html; charset=utf-8"),
                    );
                    return Answered::new("console", resp);
                }
                _ => {}
            }
        }
        match self.table.find(&method, &path) {
            Matched::Route(route, params) => {
                self.route_call(route, params, req, peer, request_id).await
            }
            Matched::WrongMethod(allowed) => {
                let mut resp = refusal(Status::unimplemented(format!(
                    "{path} is not served for {method}; it is for {}",
                    allowed.join(", ")
                )));
                *resp.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
                if let Ok(v) = HeaderValue::from_str(&allowed.join(", ")) {
                    resp.headers_mut().insert(http::header::ALLOW, v);
                }
                Answered::new("other", resp)
            }
            Matched::None if self.config.rpc_paths && method == Method::POST => {
                if let Some(route) = path.strip_prefix('/').and_then(|p| self.guarded.get(p)) {
                    return Answered::new(
                        "rpc",
                        refusal(Status::permission_denied(format!(
                            "{} is called through its route {route} here",
                            &path[1..]
                        ))),
                    );
                }
                let resp = match hyper::service::Service::call(
                    &self.rpc.clone().with_peer(peer.clone()),
                    req,
                )
                .await
                {
                    Ok(resp) => resp,
                    Err(never) => match never {},
                };
                if let Some(service) = path
                    .strip_prefix('/')
                    .and_then(|p| p.rsplit_once('/'))
                    .map(|(s, _)| s)
                {
                    self.count_upstream(service, resp.status());
                }
                Answered::new("rpc", resp)
            }
            Matched::None => Answered::new(
                "other",
                refusal(Status::not_found(format!("no route for {method} {path}"))),
            ),
        }
    }

    /// Counts an answer of the backend that says it failed (not the caller): only for services
    /// the router knows, so the label stays bounded.
    fn count_upstream(&self, service: &str, status: StatusCode) {
        let code = match status.as_u16() {
            503 => Code::Unavailable,
            504 => Code::DeadlineExceeded,
            500 => Code::Internal,
            _ => return,
        };
        if self.backends.services().iter().any(|s| s == service) {
            self.metrics.upstream_error(service, code.as_str());
        }
    }

    fn preflight(&self, origin: Option<&HeaderValue>) -> http::Response<HttpBody> {
        let mut resp = http::Response::new(full_body(Bytes::new()));
        *resp.status_mut() = StatusCode::NO_CONTENT;
        let (Some(cors), Some(origin)) = (&self.config.cors, origin) else {
            return resp;
        };
        if !self.origin_allowed(origin) {
            *resp.status_mut() = StatusCode::FORBIDDEN;
            return resp;
        }
        let allow_headers = if cors.allow_headers.is_empty() {
            "authorization, content-type, x-request-id, rpc-timeout".to_owned()
        } else {
            cors.allow_headers.join(", ")
        };
        let headers = resp.headers_mut();
        headers.insert(
            "access-control-allow-methods",
            HeaderValue::from_static("GET, POST, PUT, PATCH, DELETE, OPTIONS"),
        );
        if let Ok(v) = HeaderValue::from_str(&allow_headers) {
            headers.insert("access-control-allow-headers", v);
        }
        headers.insert("access-control-max-age", HeaderValue::from(cors.max_age_s));
        resp
    }

    async fn route_call(
        &self,
        route: &Route,
        params: Vec<(String, String)>,
        req: http::Request<Incoming>,
        peer: &PeerAddr,
        request_id: &str,
    ) -> Answered {
        let label = route.name().to_owned();
        let (parts, body) = req.into_parts();
        // Who is calling, from the headers alone: a caller without valid credentials is
        // refused before its body is read.
        let mut metadata = Request::new(route.config.call.clone(), Bytes::new());
        headers_to_metadata(&parts.headers, metadata.metadata_mut());
        let mut principal = None;
        if let Some(key) = parts.headers.get(API_KEY_HEADER) {
            match key.to_str().ok().and_then(|k| self.config.api_keys.get(k)) {
                Some(caller) => principal = Some(Principal::new(caller.clone(), AuthMethod::Other)),
                None => {
                    return Answered::new(
                        label,
                        refusal(Status::unauthenticated("unknown API key (x-api-key)")),
                    )
                }
            }
        } else if let Some(auth) = &self.authenticator {
            match auth.authenticate(&metadata) {
                Ok(p) => principal = p,
                Err(e) if route.config.auth => {
                    return Answered::new(
                        label,
                        bearer_challenge(refusal(Status::unauthenticated(e.to_string()))),
                    )
                }
                Err(_) => {}
            }
        }
        if principal.is_none() && route.config.auth {
            return Answered::new(
                label,
                bearer_challenge(refusal(Status::unauthenticated(
                    "this route needs a bearer token (Authorization: Bearer …) or an API key \
                     (x-api-key)",
                ))),
            );
        }
        let content_type = parts
            .headers
            .get(CONTENT_TYPE)
            .map(|v| v.to_str().unwrap_or("?"));
        if rpc_core::http::codec_for(content_type) != Some(CodecId::JSON) {
            let mut resp = refusal(Status::invalid_argument(format!(
                "unsupported Content-Type {:?}: this route takes JSON",
                content_type.unwrap_or_default()
            )));
            *resp.status_mut() = StatusCode::UNSUPPORTED_MEDIA_TYPE;
            return Answered::new(label, resp);
        }
        let body = match read_body(&parts.headers, body, &self.http).await {
            Ok(body) => body,
            Err(e) => return Answered::new(label, e.response(&self.http)),
        };
        let message = match build_message(&route.config, params, parts.uri.query(), &body) {
            Ok(m) => m,
            Err(why) => return Answered::new(label, refusal(Status::invalid_argument(why))),
        };
        let timeout = route.timeout(Duration::from_millis(self.config.timeout_ms));
        let mut call = Request::new(route.config.call.clone(), message)
            .with_codec(CodecId::JSON)
            .with_idempotent(route.idempotent())
            .with_timeout(timeout);
        *call.metadata_mut() = std::mem::take(metadata.metadata_mut());
        call.metadata_mut()
            .insert(REQUEST_ID_KEY, request_id.to_owned());
        // Dropped with this future (the client went away): the call is cancelled.
        let token = CancellationToken::new();
        let _cancel_on_drop = token.clone().drop_guard();
        {
            let ctx = call.context_mut();
            *ctx = std::mem::take(ctx)
                .with_cancellation(token)
                .with_peer(peer.clone());
        }
        let subject = principal.as_ref().map(|p| p.subject.clone());
        if let Some(p) = principal {
            call.context_mut().set_principal(p);
        }
        let principal = subject;
        let mut answered = self
            .call_cached(route, call, &parts.headers, principal.as_deref())
            .await;
        answered.route = label;
        answered.principal = principal;
        answered
    }

    /// The call, through the route's cache and quota.
    async fn call_cached(
        &self,
        route: &Route,
        call: Request,
        headers: &http::HeaderMap,
        principal: Option<&str>,
    ) -> Answered {
        let directives = headers
            .get_all(CACHE_CONTROL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|d| d.trim().to_ascii_lowercase())
            .collect::<Vec<_>>();
        let no_store = directives.iter().any(|d| d == "no-store");
        let no_cache = no_store
            || directives
                .iter()
                .any(|d| d == "no-cache" || d == "max-age=0");
        // Metadata from `rpc-md-*` headers may change the answer, and is not in the key: such
        // a request is not answered from, nor stored in, the cache.
        let custom_metadata = headers.keys().any(|k| {
            k.as_str()
                .starts_with(rpc_core::http::METADATA_HEADER_PREFIX)
        });
        let cache = route
            .config
            .cache
            .as_ref()
            .filter(|_| !no_store && !custom_metadata);
        // Answers of a route that authenticates are kept per caller.
        let private = |c: &RouteCacheConfig| c.per_principal || route.config.auth;
        let key = cache.map(|c| {
            let subject = if private(c) {
                principal.unwrap_or("")
            } else {
                ""
            };
            ResponseCache::key(route.index, subject, call.body())
        });
        if let (Some(key), false) = (&key, no_cache) {
            if let Some(hit) = self.cache.get(key).await {
                self.metrics.cache_hits.fetch_add(1, Ordering::Relaxed);
                let mut resp = http::Response::new(full_body(hit.body));
                let h = resp.headers_mut();
                h.insert(CONTENT_TYPE, HeaderValue::from_static(hit.content_type));
                h.insert("x-cache", HeaderValue::from_static("hit"));
                return Answered::new("", resp);
            }
        }
        if key.is_some() {
            self.metrics.cache_misses.fetch_add(1, Ordering::Relaxed);
        }
        let service = call.service().to_owned();
        let outcome = match self.quotas.get(route.index).and_then(Option::as_ref) {
            Some(quota) => quota.clone().oneshot(call).await,
            None => self.plain.clone().oneshot(call).await,
        };
        match outcome {
            Ok(response) => {
                let (metadata, body) = response.into_parts();
                let mut resp = http::Response::new(full_body(body.clone()));
                let h = resp.headers_mut();
                h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                metadata_to_headers(&metadata, h);
                if let (Some(key), Some(c)) = (key, cache) {
                    let ttl = Duration::from_millis(c.ttl_ms);
                    self.cache.insert(key, body, "application/json", ttl).await;
                    h.insert("x-cache", HeaderValue::from_static("miss"));
                    let scope = if private(c) { "private" } else { "public" };
                    if let Ok(v) =
                        HeaderValue::from_str(&format!("{scope}, max-age={}", c.ttl_ms / 1000))
                    {
                        h.insert(CACHE_CONTROL, v);
                    }
                }
                Answered::new("", resp)
            }
            Err(status) => {
                let resp = refusal(status);
                self.count_upstream(&service, resp.status());
                Answered::new("", resp)
            }
        }
    }

    /// Ready when every service the routes name has an endpoint that is not ejected.
    async fn readiness(&self) -> http::Response<HttpBody> {
        let services: BTreeSet<String> = self
            .table
            .routes()
            .iter()
            .filter_map(|r| r.config.call.rsplit_once('/').map(|(s, _)| s.to_owned()))
            .collect();
        let mut ready = true;
        let mut report = serde_json::Map::new();
        for service in services {
            let (live, known) = match self.backends.endpoints(service.clone()).await {
                Ok(eps) => (eps.iter().filter(|e| !e.ejected).count(), eps.len()),
                Err(_) => (0, 0),
            };
            ready &= live > 0;
            report.insert(service, json!({"endpoints": known, "live": live}));
        }
        let status = if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        json_response(status, &json!({"ready": ready, "services": report}))
    }

    /// The services behind the gateway: those its routes name and those it has routed to.
    fn known_services(&self) -> BTreeSet<String> {
        let mut services: BTreeSet<String> = self
            .table
            .routes()
            .iter()
            .filter_map(|r| r.config.call.rsplit_once('/').map(|(s, _)| s.to_owned()))
            .collect();
        services.extend(self.backends.services());
        services
    }

    /// One OpenAPI document of the backends' descriptions, plus the gateway's own routes as
    /// `x-gateway-routes`.
    async fn openapi(&self) -> http::Response<HttpBody> {
        // One assembly at a time, kept for a while: each asks every backend for its
        // description.
        let mut kept = self.openapi.lock().await;
        let body = match kept.as_ref() {
            Some((at, body)) if at.elapsed() < OPENAPI_TTL => body.clone(),
            _ => {
                let body = self.assemble_openapi().await;
                *kept = Some((Instant::now(), body.clone()));
                body
            }
        };
        let mut resp = http::Response::new(full_body(body));
        resp.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        resp
    }

    async fn assemble_openapi(&self) -> Bytes {
        let mut paths = serde_json::Map::new();
        let mut schemas = serde_json::Map::new();
        let mut missing = Vec::new();
        for service in self.known_services() {
            match self.backends.describe(service.clone()).await {
                Ok(description) => {
                    let doc = to_openapi(&description);
                    if let Some(p) = doc.get("paths").and_then(Value::as_object) {
                        paths.extend(p.clone());
                    }
                    if let Some(s) = doc
                        .pointer("/components/schemas")
                        .and_then(Value::as_object)
                    {
                        schemas.extend(s.clone());
                    }
                }
                Err(e) => missing.push(json!({"service": service, "error": e.message()})),
            }
        }
        let routes: Vec<Value> = self
            .table
            .routes()
            .iter()
            .map(|r| json!({"method": r.method.as_str(), "path": r.config.path, "call": r.config.call}))
            .collect();
        let doc = json!({
            "openapi": "3.1.0",
            "info": {"title": "API gateway", "version": "1"},
            "paths": paths,
            "components": {"schemas": schemas},
            "x-gateway-routes": routes,
            "x-unavailable": missing,
        });
        Bytes::from(serde_json::to_vec(&doc).unwrap_or_default())
    }

    /// `GET /gateway/services`: for the console.
    async fn services(&self) -> http::Response<HttpBody> {
        let mut out = Vec::new();
        for service in self.known_services() {
            let endpoints = match self.backends.endpoints(service.clone()).await {
                Ok(eps) => eps
                    .iter()
                    .map(|e| json!({"addr": e.addr, "ejected": e.ejected, "outstanding": e.outstanding}))
                    .collect(),
                Err(_) => Vec::new(),
            };
            let methods: Vec<Value> = match self.backends.describe(service.clone()).await {
                Ok(d) => d
                    .services
                    .iter()
                    .filter(|s| s.name == service)
                    .flat_map(|s| &s.methods)
                    .map(|m| {
                        json!({
                            "path": m.path,
                            "docs": m.docs,
                            "one_way": m.one_way,
                            "streaming": m.client_streaming || m.server_streaming,
                            "idempotent": m.idempotent,
                        })
                    })
                    .collect(),
                Err(_) => Vec::new(),
            };
            out.push(json!({"name": service, "endpoints": endpoints, "methods": methods}));
        }
        let routes: BTreeMap<String, String> = self
            .table
            .routes()
            .iter()
            .map(|r| (r.name().to_owned(), r.config.call.clone()))
            .collect();
        json_response(StatusCode::OK, &json!({"services": out, "routes": routes}))
    }
}

/// A `401` answer names the scheme it wants (RFC 6750 §3).
fn bearer_challenge(mut resp: http::Response<HttpBody>) -> http::Response<HttpBody> {
    resp.headers_mut()
        .insert("www-authenticate", HeaderValue::from_static("Bearer"));
    resp
}
