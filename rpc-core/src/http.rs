//! HTTP/JSON access (feature `http`): any service callable as `POST /{package.Service}/{Method}`
//! by clients that do not speak the native protocol (browsers, `curl`, services in other
//! languages), on the server's own port or behind a gateway.
//!
//! [`HttpService`] turns an HTTP request into a [`Request`] for any tower service of ours and its
//! answer back into an HTTP response; it is a hyper service, so it runs on any hyper connection.
//! A [`Server`](crate::Server) given [`Server::http`](crate::Server::http) serves it on the same
//! listener as the native protocol (it tells the two apart by their first byte); a gateway
//! puts a client stack behind it instead of local handlers. `docs/protocol.md` §18 is the
//! reference for other-language clients.
//!
//! The mapping:
//! - **Route**: `POST /{package.Service}/{Method}`; other HTTP methods get `405` with
//!   `Allow: POST`.
//! - **Body and codec**: the `Content-Type` names the codec of the body and of the answer:
//!   `application/json` (also `application/*+json`, no content type, and
//!   `application/x-www-form-urlencoded`, which `curl -d` sends by default; the body is read as
//!   JSON all the same), `application/msgpack` (or `x-msgpack`, `vnd.msgpack`),
//!   `application/protobuf` (or `x-protobuf`, `vnd.google.protobuf`), and
//!   `application/octet-stream` (the raw codec). Anything else is `415`. A body over
//!   [`HttpConfig::max_body`] is `413`.
//! - **Metadata**: a header `rpc-md-{key}` becomes metadata `{key}`; `authorization`,
//!   `traceparent`, `tracestate` and `baggage` pass under their own names. Response metadata
//!   comes back as `rpc-md-{key}` headers (values that are not valid header values are left
//!   out). Other headers are not passed on.
//! - **Deadline**: `rpc-timeout`, in gRPC's `grpc-timeout` form (at most 8 digits and a unit:
//!   `H`, `M`, `S`, `m`, `u`, `n`; `250m` is 250 ms). A malformed value is `400`.
//! - **Request id**: `x-request-id` is taken (or made: 32 hex digits), passed as metadata
//!   `request-id`, and echoed on the response.
//! - **Errors**: the status code maps to an HTTP status as in gRPC's HTTP mapping
//!   ([`http_status`]), with a JSON body `{"code": 9, "status": "FailedPrecondition",
//!   "message": "…", "details": …}`; `details` is a typed error ([`Status::details`]) as JSON,
//!   present only when the status carries one. The numeric code is also in the `rpc-status`
//!   header.
//! - **Server streams**: with `Accept: text/event-stream` (and a JSON request), a server-streaming
//!   method answers as Server-Sent Events (`text/event-stream`): one `data:` event per reply,
//!   its JSON, then `event: end` (`data: {}`) when the stream ends well, or `event: error` with
//!   the JSON error body. A call that fails before its first reply is a plain JSON error
//!   answer. Served where the [`HttpService`] has [`with_streams`](HttpService::with_streams)
//!   (a server's port and the gateway do).
//! - **Cancellation**: a client that disconnects before its answer drops the call: the handler
//!   stops, and its context's token ([`Context::cancellation`](crate::Context::cancellation)) is
//!   cancelled, so calls it made downstream end too.
//!
//! ```
//! use rpc_core::http::{http_status, HttpConfig, HttpService};
//! use rpc_core::server::RawService;
//! use rpc_core::{Code, Response};
//!
//! // Any tower service of ours; here a hand-made echo.
//! let echo = RawService::new("demo.Echo")
//!     .method("Echo", |req| async move { Ok(Response::new(req.into_body())) });
//! let http = HttpService::new(echo, HttpConfig::new().max_body(64 * 1024));
//! # let _ = http;
//! assert_eq!(http_status(Code::NotFound), 404);
//! ```

use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_core::Stream;
use http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use http::{Method, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use rpc_codec::{CodecId, MsgPack};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::message::{Request, Response};
use crate::metadata::Metadata;
use crate::service_error::DETAILS_KEY;
use crate::status::{Code, Status, RETRY_AFTER_MS};
use crate::stream::RawStreaming;
use crate::transport::PeerAddr;
use crate::BoxFuture;

/// Headers `rpc-md-{key}` carry metadata `{key}`, both ways.
pub const METADATA_HEADER_PREFIX: &str = "rpc-md-";
/// The call's timeout, in gRPC's `grpc-timeout` form (`250m`, `2S`).
pub const TIMEOUT_HEADER: &str = "rpc-timeout";
/// The request id header, taken or made, and echoed on the response.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// The metadata key the request id travels under.
pub const REQUEST_ID_KEY: &str = "request-id";
/// The numeric status code of a failed call, on its response.
pub const STATUS_HEADER: &str = "rpc-status";
/// Headers passed as metadata under their own names: credentials and W3C trace context.
pub const PASSED_HEADERS: [&str; 4] = ["authorization", "traceparent", "tracestate", "baggage"];

/// The body of the answers of this module's services: a whole body, or the events of a stream.
pub type HttpBody = UnsyncBoxBody<Bytes, Infallible>;

/// A whole body.
pub fn full_body(bytes: impl Into<Bytes>) -> HttpBody {
    Full::new(bytes.into()).boxed_unsync()
}

/// The default [`HttpConfig::max_body`]: 4 MiB, the native protocol's default largest frame.
pub const DEFAULT_MAX_BODY: usize = 4 << 20;

/// Limits of HTTP/JSON access.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    max_body: usize,
    body_timeout: Duration,
    max_timeout: Option<Duration>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_body: DEFAULT_MAX_BODY,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            max_timeout: None,
        }
    }
}

/// The default [`HttpConfig::body_timeout`]: 30 s.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);

impl HttpConfig {
    /// Default limits: request bodies up to [`DEFAULT_MAX_BODY`].
    pub fn new() -> HttpConfig {
        HttpConfig::default()
    }

    /// The largest request body, in bytes; a larger one is answered `413 Payload Too Large`
    /// without being read past the limit.
    #[must_use]
    pub fn max_body(mut self, bytes: usize) -> HttpConfig {
        self.max_body = bytes;
        self
    }

    /// The largest request body, in bytes.
    pub fn body_limit(&self) -> usize {
        self.max_body
    }

    /// How long a request's body may take to arrive once its headers have (default
    /// [`DEFAULT_BODY_TIMEOUT`]); slower is `408 Request Timeout`, so that a client trickling
    /// a body cannot hold a call's memory forever.
    #[must_use]
    pub fn body_timeout(mut self, timeout: Duration) -> HttpConfig {
        self.body_timeout = timeout;
        self
    }

    /// The longest deadline a call gets: the `rpc-timeout` header's, capped at this, or this
    /// when the header is absent (a gateway's policy). None by default.
    #[must_use]
    pub fn max_timeout(mut self, timeout: Duration) -> HttpConfig {
        self.max_timeout = Some(timeout);
        self
    }
}

/// The HTTP status for a status code, as gRPC's HTTP mapping (`google/rpc/code.proto`) gives
/// it, but for `Unimplemented`: 404, where gRPC says 501. For an HTTP caller an unknown service
/// or method is a path that names nothing, and 501 would tell a proxy that the server lacks an
/// HTTP feature.
///
/// | code | HTTP | code | HTTP |
/// |---|---|---|---|
/// | Ok | 200 | FailedPrecondition | 400 |
/// | Cancelled | 499 | Aborted | 409 |
/// | Unknown | 500 | OutOfRange | 400 |
/// | InvalidArgument | 400 | Unimplemented | 404 |
/// | DeadlineExceeded | 504 | Internal | 500 |
/// | NotFound | 404 | Unavailable | 503 |
/// | AlreadyExists | 409 | DataLoss | 500 |
/// | PermissionDenied | 403 | Unauthenticated | 401 |
/// | ResourceExhausted | 429 | | |
pub fn http_status(code: Code) -> u16 {
    match code {
        Code::Ok => 200,
        Code::Cancelled => 499,
        Code::Unknown | Code::Internal | Code::DataLoss => 500,
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => 400,
        Code::DeadlineExceeded => 504,
        Code::NotFound | Code::Unimplemented => 404,
        Code::AlreadyExists | Code::Aborted => 409,
        Code::PermissionDenied => 403,
        Code::ResourceExhausted => 429,
        Code::Unavailable => 503,
        Code::Unauthenticated => 401,
    }
}

/// The JSON error body of a failed call: `{"code", "status", "message", "details"}`, `details`
/// only when the status carries a typed error (decoded from its MessagePack form).
pub fn error_body(status: &Status) -> Bytes {
    let mut body = serde_json::Map::new();
    body.insert("code".into(), status.code().as_u8().into());
    body.insert("status".into(), status.code().as_str().into());
    body.insert("message".into(), status.message().into());
    if let Some(details) = status.metadata().get(DETAILS_KEY) {
        if let Ok(value) = MsgPack::decode::<serde_json::Value>(details.clone()) {
            body.insert("details".into(), value);
        }
    }
    serde_json::to_vec(&serde_json::Value::Object(body))
        .map(Bytes::from)
        .unwrap_or_else(|_| Bytes::from_static(br#"{"code":13,"status":"Internal"}"#))
}

/// The codec a `Content-Type` names (see the [module docs](self)); `None` for one this does not
/// serve. A missing content type is JSON.
pub fn codec_for(content_type: Option<&str>) -> Option<CodecId> {
    let Some(ct) = content_type else {
        return Some(CodecId::JSON);
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/json" | "application/x-www-form-urlencoded" | "" => Some(CodecId::JSON),
        "application/msgpack" | "application/x-msgpack" | "application/vnd.msgpack" => {
            Some(CodecId::MSGPACK)
        }
        "application/protobuf" | "application/x-protobuf" | "application/vnd.google.protobuf" => {
            Some(CodecId::PROTOBUF)
        }
        "application/octet-stream" => Some(CodecId::RAW),
        e if e.starts_with("application/") && e.ends_with("+json") => Some(CodecId::JSON),
        _ => None,
    }
}

/// The `Content-Type` of a body in `codec`.
pub fn content_type(codec: CodecId) -> &'static str {
    match codec {
        CodecId::MSGPACK => "application/msgpack",
        CodecId::PROTOBUF => "application/protobuf",
        CodecId::RAW => "application/octet-stream",
        _ => "application/json",
    }
}

/// Parses a timeout in gRPC's `grpc-timeout` form: 1 to 8 ASCII digits, then `H`, `M`, `S`, `m`,
/// `u` or `n`. `None` for anything else.
pub fn parse_timeout(value: &str) -> Option<Duration> {
    if !value.is_ascii() {
        return None;
    }
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// How long an HTTP/1.1 client has to send a request's headers on a connection served by
/// [`serve`] (a [`Server`](crate::Server) uses its handshake timeout).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long [`serve`] lets requests in flight finish after its signal.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves HTTP/1.1 and HTTP/2 (h2c with prior knowledge) on every connection `listener` accepts
/// until `signal` completes, with the service `make` returns for each connection's peer; then
/// stops accepting, lets the requests in flight finish (HTTP/1.1 connections close after their
/// current response, HTTP/2 ones get GOAWAY) for at most [`DRAIN_TIMEOUT`], and returns. For a
/// gateway's own port; a [`Server`](crate::Server) serves HTTP on its port with
/// [`Server::http`](crate::Server::http).
///
/// Each connection has [`HEADER_TIMEOUT`] to send a request's headers, at most 100 headers
/// (HTTP/1.1; `431` past it) and 64 KiB of them (HTTP/2), at most 128 concurrent HTTP/2
/// streams, and an HTTP/2 keep-alive ping every 30 s (closed when unanswered for 10 s).
///
/// # Errors
/// The listener's error when accepting fails for good (not a transient failure of one accept,
/// nor running out of file descriptors, which is waited out).
pub async fn serve<L, M, S, F>(mut listener: L, mut make: M, signal: F) -> std::io::Result<()>
where
    L: crate::transport::Listener,
    M: FnMut(PeerAddr) -> S,
    S: hyper::service::Service<
            http::Request<hyper::body::Incoming>,
            Response = http::Response<HttpBody>,
            Error = Infallible,
        > + Send
        + 'static,
    S::Future: Send + 'static,
    F: std::future::Future<Output = ()>,
{
    let shutdown = CancellationToken::new();
    let hard_stop = CancellationToken::new();
    let tracker = tokio_util::task::TaskTracker::new();
    let mut signal = std::pin::pin!(signal);
    let result = loop {
        let accepted = tokio::select! {
            () = &mut signal => break Ok(()),
            res = std::future::poll_fn(|cx| listener.poll_accept(cx)) => res,
        };
        match accepted {
            Ok((io, peer)) => {
                let service = make(peer.clone());
                let (shutdown, hard_stop) = (shutdown.clone(), hard_stop.clone());
                tracker.spawn(async move {
                    serve_connection(io, service, HEADER_TIMEOUT, shutdown, hard_stop, &peer).await
                });
            }
            Err(e) => match e.kind() {
                std::io::ErrorKind::ConnectionAborted
                | std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::Interrupted
                | std::io::ErrorKind::WouldBlock => {}
                _ if e.raw_os_error().is_some_and(|c| matches!(c, 23 | 24)) => {
                    tracing::warn!(error = %e, "out of file descriptors: accepting paused for 100 ms");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                _ => break Err(e),
            },
        }
    };
    drop(listener);
    shutdown.cancel();
    tracker.close();
    if tokio::time::timeout(DRAIN_TIMEOUT, tracker.wait())
        .await
        .is_err()
    {
        hard_stop.cancel();
        tracker.wait().await;
    }
    result
}

/// Serves one HTTP connection with hyper (HTTP/1.1, or HTTP/2 with prior knowledge): until the
/// client closes it, or, once `shutdown` is cancelled, until the requests in flight are
/// answered or `hard_stop` is cancelled.
pub(crate) async fn serve_connection<I, S>(
    io: I,
    service: S,
    header_timeout: Duration,
    shutdown: CancellationToken,
    hard_stop: CancellationToken,
    peer: &PeerAddr,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
    S: hyper::service::Service<
            http::Request<hyper::body::Incoming>,
            Response = http::Response<HttpBody>,
            Error = Infallible,
        > + Send
        + 'static,
    S::Future: Send + 'static,
{
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_headers(100);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(64 * 1024)
        .max_concurrent_streams(128)
        .keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10));
    let conn = builder.serve_connection(TokioIo::new(io), service);
    let mut conn = std::pin::pin!(conn);
    let result = tokio::select! {
        res = conn.as_mut() => res,
        () = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            tokio::select! {
                res = conn.as_mut() => res,
                () = hard_stop.cancelled() => Ok(()),
            }
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "HTTP connection ended with an error");
    }
}

/// Opens server-streaming calls for HTTP clients that ask for Server-Sent Events: a
/// [`Channel`](crate::Channel), or anything else that opens streams
/// ([`OpenStream`](crate::client::OpenStream)).
pub trait ServerStreams: Send + Sync + 'static {
    /// Starts `request` as a server-streaming call; the stream of its replies.
    fn open(&self, request: Request) -> BoxFuture<'static, Result<RawStreaming, Status>>;
}

impl<T: crate::client::OpenStream> ServerStreams for T {
    fn open(&self, request: Request) -> BoxFuture<'static, Result<RawStreaming, Status>> {
        let opener = self.clone();
        Box::pin(async move {
            opener
                .open_stream(request, crate::protocol::flags::SERVER_STREAM)
                .await
                .map(|(_, replies)| replies)
        })
    }
}

/// A channel to the in-memory listener `name`: how a server's HTTP port opens the streams of
/// server-streaming calls on the server itself (its native connections do the streaming).
pub(crate) fn loopback(name: &str) -> crate::Channel {
    crate::Endpoint::memory(name).connect_lazy()
}

/// Serves HTTP/JSON requests by calling `S`, a tower service of ours (local handlers, or a client
/// stack in a gateway): a hyper service. See the [module docs](self) for the mapping.
pub struct HttpService<S> {
    inner: S,
    config: Arc<HttpConfig>,
    peer: Option<PeerAddr>,
    streams: Option<Arc<dyn ServerStreams>>,
}

impl<S: Clone> Clone for HttpService<S> {
    fn clone(&self) -> Self {
        HttpService {
            inner: self.inner.clone(),
            config: self.config.clone(),
            peer: self.peer.clone(),
            streams: self.streams.clone(),
        }
    }
}

impl<S> fmt::Debug for HttpService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpService")
            .field("config", &self.config)
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl<S> HttpService<S> {
    /// Serves HTTP requests by calling `inner`.
    pub fn new(inner: S, config: HttpConfig) -> HttpService<S> {
        HttpService {
            inner,
            config: Arc::new(config),
            peer: None,
            streams: None,
        }
    }

    /// Serves server-streaming methods to clients that send `Accept: text/event-stream`, as
    /// Server-Sent Events, with calls `streams` opens (see the [module docs](self)). Without
    /// it such a request is called as a unary one.
    #[must_use]
    pub fn with_streams(mut self, streams: impl ServerStreams) -> HttpService<S> {
        self.streams = Some(Arc::new(streams));
        self
    }

    /// The peer the calls' contexts name ([`Context::peer`](crate::Context::peer)).
    #[must_use]
    pub fn with_peer(mut self, peer: PeerAddr) -> HttpService<S> {
        self.peer = Some(peer);
        self
    }
}

impl<S, B> hyper::service::Service<http::Request<B>> for HttpService<S>
where
    S: tower::Service<Request, Response = Response, Error = Status> + Clone + Send + 'static,
    S::Future: Send,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = http::Response<HttpBody>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn call(&self, req: http::Request<B>) -> Self::Future {
        let inner = self.inner.clone();
        let config = self.config.clone();
        let peer = self.peer.clone();
        let streams = self.streams.clone();
        Box::pin(async move { Ok(handle(inner, &config, peer, streams, req).await) })
    }
}

/// A failure of the HTTP side, before or instead of a call: its HTTP status and a status for the
/// JSON body.
struct Refused(StatusCode, Status);

async fn handle<S, B>(
    inner: S,
    config: &HttpConfig,
    peer: Option<PeerAddr>,
    streams: Option<Arc<dyn ServerStreams>>,
    req: http::Request<B>,
) -> http::Response<HttpBody>
where
    S: tower::Service<Request, Response = Response, Error = Status> + Send + 'static,
    S::Future: Send,
    B: http_body::Body + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let request_id = request_id_of(req.headers());
    let mut resp = match call(inner, config, peer, streams, &request_id, req).await {
        Ok(Answer::Events(events)) => {
            let mut resp = http::Response::new(events.boxed_unsync());
            let headers = resp.headers_mut();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
            headers.insert(
                http::header::CACHE_CONTROL,
                HeaderValue::from_static("no-cache"),
            );
            resp
        }
        Ok(Answer::Unary(codec, response)) => {
            let (metadata, body) = response.into_parts();
            let mut resp = http::Response::new(full_body(body));
            let headers = resp.headers_mut();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type(codec)));
            metadata_to_headers(&metadata, headers);
            resp
        }
        Err(Refused(code, status)) => error_response(code, &status),
    };
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    resp
}

/// The HTTP response of a failed call.
pub fn status_response(status: &Status) -> http::Response<HttpBody> {
    error_response(status_code(status), status)
}

/// [`http_status`] as a `StatusCode`.
fn status_code(status: &Status) -> StatusCode {
    StatusCode::from_u16(http_status(status.code())).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

fn error_response(code: StatusCode, status: &Status) -> http::Response<HttpBody> {
    let mut resp = http::Response::new(full_body(error_body(status)));
    *resp.status_mut() = code;
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(
        STATUS_HEADER,
        HeaderValue::from(u16::from(status.code().as_u8())),
    );
    if code == StatusCode::METHOD_NOT_ALLOWED {
        headers.insert(http::header::ALLOW, HeaderValue::from_static("POST"));
    }
    let retry_after_ms = status
        .metadata()
        .get_str(RETRY_AFTER_MS)
        .and_then(|ms| ms.parse::<u64>().ok());
    if let Some(ms) = retry_after_ms {
        headers.insert(
            http::header::RETRY_AFTER,
            HeaderValue::from(ms.div_ceil(1000).max(1)),
        );
    }
    resp
}

fn refused(code: StatusCode, status: Status) -> Refused {
    Refused(code, status)
}

/// What a call answered: a reply in a codec, or a stream of events.
enum Answer {
    Unary(CodecId, Response),
    Events(EventBody),
}

/// Whether the client accepts Server-Sent Events: `text/event-stream` among its `Accept` media
/// ranges, with a weight above zero (RFC 9110 §12.5.1).
fn wants_events(headers: &HeaderMap) -> bool {
    headers
        .get_all(http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|range| {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or_default();
            let zero = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            media.eq_ignore_ascii_case("text/event-stream") && !zero
        })
}

/// Checks the HTTP request, makes the call, and returns what it answered.
async fn call<S, B>(
    inner: S,
    config: &HttpConfig,
    peer: Option<PeerAddr>,
    streams: Option<Arc<dyn ServerStreams>>,
    request_id: &str,
    req: http::Request<B>,
) -> Result<Answer, Refused>
where
    S: tower::Service<Request, Response = Response, Error = Status> + Send + 'static,
    S::Future: Send,
    B: http_body::Body + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (parts, body) = req.into_parts();
    let path = route(parts.uri.path()).ok_or_else(|| {
        refused(
            StatusCode::NOT_FOUND,
            Status::not_found(format!(
                "no route {:?}: calls are POST /package.Service/Method",
                parts.uri.path()
            )),
        )
    })?;
    if parts.method != Method::POST {
        return Err(refused(
            StatusCode::METHOD_NOT_ALLOWED,
            Status::unimplemented(format!("{} is called with POST", path)),
        ));
    }
    let content_type = match parts.headers.get(CONTENT_TYPE) {
        None => None,
        Some(v) => Some(v.to_str().map_err(|_| {
            refused(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Status::invalid_argument("the Content-Type header is not ASCII"),
            )
        })?),
    };
    let codec = codec_for(content_type).ok_or_else(|| {
        refused(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Status::invalid_argument(format!(
                "unsupported Content-Type {:?}: use application/json, application/msgpack, \
                 application/protobuf or application/octet-stream",
                content_type.unwrap_or_default()
            )),
        )
    })?;
    let timeout = match parts.headers.get(TIMEOUT_HEADER) {
        None => None,
        Some(v) => Some(v.to_str().ok().and_then(parse_timeout).ok_or_else(|| {
            refused(
                StatusCode::BAD_REQUEST,
                Status::invalid_argument(format!(
                    "malformed {TIMEOUT_HEADER} header {v:?}: 1 to 8 digits and a unit \
                     (H, M, S, m, u, n), e.g. 250m"
                )),
            )
        })?),
    };
    let body = match read_body(&parts.headers, body, config).await {
        Ok(body) => body,
        Err(e) => {
            let (code, status) = e.refusal(config);
            return Err(refused(code, status));
        }
    };

    let mut request = Request::new(path.to_owned(), body).with_codec(codec);
    headers_to_metadata(&parts.headers, request.metadata_mut());
    request
        .metadata_mut()
        .insert(REQUEST_ID_KEY, request_id.to_owned());
    let timeout = match (timeout, config.max_timeout) {
        (Some(t), Some(max)) => Some(t.min(max)),
        (t, max) => t.or(max),
    };
    if let Some(t) = timeout {
        request = request.with_timeout(t);
    }
    // Dropped with this future (the client went away), or with the event stream: the handler's
    // token is cancelled, and with it the calls it made.
    let token = CancellationToken::new();
    let cancel_on_drop = token.clone().drop_guard();
    {
        let ctx = request.context_mut();
        let mut taken = std::mem::take(ctx).with_cancellation(token);
        if let Some(peer) = peer {
            taken = taken.with_peer(peer);
        }
        *ctx = taken;
    }
    if let Some(streams) = streams.filter(|_| wants_events(&parts.headers)) {
        if codec != CodecId::JSON {
            return Err(refused(
                StatusCode::NOT_ACCEPTABLE,
                Status::invalid_argument("Server-Sent Events carry JSON: send a JSON request"),
            ));
        }
        // The first reply is awaited here, so that a call refused or failed before it is a plain
        // error answer with its HTTP status.
        let opened = match streams.open(request.clone()).await {
            Ok(mut replies) => match replies.message().await {
                Ok(first) => Ok((replies, first)),
                Err(status) => Err(status),
            },
            Err(status) => Err(status),
        };
        match opened {
            Ok((replies, first)) => {
                return Ok(Answer::Events(EventBody {
                    done: first.is_none(),
                    first: Some(first.map_or_else(end_event, |m| data_event(&m))),
                    replies,
                    _cancel: cancel_on_drop,
                }))
            }
            // Not a server-streaming method (or no such method): answered as a unary call, as
            // a client that accepts events among other types expects.
            Err(status) if status.code() == Code::Unimplemented => {}
            Err(status) => return Err(refused(status_code(&status), status)),
        }
    }
    let _cancel_on_drop = cancel_on_drop;
    match inner.oneshot(request).await {
        Ok(response) => Ok(Answer::Unary(codec, response)),
        Err(status) => Err(refused(status_code(&status), status)),
    }
}

/// The replies of a server-streaming call as Server-Sent Events: one `data:` event per reply
/// (its JSON, which is one line), then `event: end` once the stream ended well, or `event:
/// error` with the JSON error body when it failed. Dropped (the client went away), it cancels
/// the call.
struct EventBody {
    replies: RawStreaming,
    /// The event of the first reply (or of the end), awaited before the answer's head.
    first: Option<Bytes>,
    done: bool,
    _cancel: tokio_util::sync::DropGuard,
}

fn data_event(reply: &[u8]) -> Bytes {
    let mut e = BytesMut::with_capacity(reply.len() + 8);
    e.extend_from_slice(b"data: ");
    e.extend_from_slice(reply);
    e.extend_from_slice(b"\n\n");
    e.freeze()
}

fn end_event() -> Bytes {
    Bytes::from_static(b"event: end\ndata: {}\n\n")
}

impl http_body::Body for EventBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        use std::task::Poll;
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(Ok(http_body::Frame::data(first))));
        }
        if self.done {
            return Poll::Ready(None);
        }
        let event = match std::pin::Pin::new(&mut self.replies).poll_next(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Some(Ok(reply))) => data_event(&reply),
            Poll::Ready(Some(Err(status))) => {
                self.done = true;
                let mut e = BytesMut::from(&b"event: error\ndata: "[..]);
                e.extend_from_slice(&error_body(&status));
                e.extend_from_slice(b"\n\n");
                e.freeze()
            }
            Poll::Ready(None) => {
                self.done = true;
                end_event()
            }
        };
        Poll::Ready(Some(Ok(http_body::Frame::data(event))))
    }
}

/// Why a request body was not read.
#[derive(Debug)]
pub enum BodyError {
    /// Over [`HttpConfig::max_body`] (`413`).
    TooLarge,
    /// Not all there within [`HttpConfig::body_timeout`] (`408`).
    TimedOut,
    /// The connection failed or the framing was wrong (`400`).
    Unreadable(String),
}

impl BodyError {
    /// The HTTP status and the status for the JSON error body that answer it.
    pub fn refusal(&self, config: &HttpConfig) -> (StatusCode, Status) {
        match self {
            BodyError::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                Status::resource_exhausted(format!(
                    "the request body is over the limit of {} bytes",
                    config.max_body
                )),
            ),
            BodyError::TimedOut => (
                StatusCode::REQUEST_TIMEOUT,
                Status::deadline_exceeded(format!(
                    "the request body did not arrive within {:?}",
                    config.body_timeout
                )),
            ),
            BodyError::Unreadable(e) => (
                StatusCode::BAD_REQUEST,
                Status::invalid_argument(format!("the request body could not be read: {e}")),
            ),
        }
    }

    /// The JSON error answer ([`BodyError::refusal`]).
    pub fn response(&self, config: &HttpConfig) -> http::Response<HttpBody> {
        let (code, status) = self.refusal(config);
        error_response(code, &status)
    }
}

/// Reads a request body within the limits of `config`: none when its `Content-Length` (in
/// `headers`) is already over [`max_body`](HttpConfig::max_body), else at most that many
/// bytes, all of them within [`body_timeout`](HttpConfig::body_timeout).
///
/// # Errors
/// See [`BodyError`].
pub async fn read_body<B>(
    headers: &HeaderMap,
    body: B,
    config: &HttpConfig,
) -> Result<Bytes, BodyError>
where
    B: http_body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let announced = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > config.max_body as u64) {
        return Err(BodyError::TooLarge);
    }
    let read = Limited::new(body, config.max_body).collect();
    match tokio::time::timeout(config.body_timeout, read).await {
        Err(_) => Err(BodyError::TimedOut),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => Err(BodyError::TooLarge),
        Ok(Err(e)) => Err(BodyError::Unreadable(e.to_string())),
    }
}

/// `package.Service/Method` from a URI path `/package.Service/Method`, split at its last `/` as
/// native paths are (`docs/protocol.md` §5): both parts non-empty.
fn route(path: &str) -> Option<&str> {
    let path = path.strip_prefix('/')?;
    let (service, method) = path.rsplit_once('/')?;
    (!service.is_empty() && !method.is_empty()).then_some(path)
}

/// Headers to metadata by the rules in the [module docs](self): `rpc-md-{key}` headers (but for
/// keys that start with `rpc-`, the framework's own) and [`PASSED_HEADERS`].
pub fn headers_to_metadata(headers: &HeaderMap, metadata: &mut Metadata) {
    for (name, value) in headers {
        let name = name.as_str();
        if let Some(key) = name.strip_prefix(METADATA_HEADER_PREFIX) {
            // `rpc-` keys are the framework's own (route tags, hash keys, error details): an
            // outside caller does not set them.
            if !key.is_empty() && !key.starts_with("rpc-") {
                metadata.append(key.to_owned(), Bytes::copy_from_slice(value.as_bytes()));
            }
        } else if PASSED_HEADERS.contains(&name) {
            metadata.append(name.to_owned(), Bytes::copy_from_slice(value.as_bytes()));
        }
    }
}

/// Response metadata to `rpc-md-{key}` headers; pairs that make no valid header are left out, as
/// are the typed error details (in the JSON body already).
pub fn metadata_to_headers(metadata: &Metadata, headers: &mut HeaderMap) {
    for (key, value) in metadata.iter() {
        if key == DETAILS_KEY {
            continue;
        }
        let name = HeaderName::from_bytes(format!("{METADATA_HEADER_PREFIX}{key}").as_bytes());
        if let (Ok(name), Ok(value)) = (name, HeaderValue::from_bytes(value)) {
            headers.append(name, value);
        }
    }
}

/// The request's id: its `x-request-id` (1 to 128 bytes of visible ASCII), or a new one.
pub fn request_id_of(headers: &HeaderMap) -> String {
    headers
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map_or_else(new_request_id, str::to_owned)
}

/// A new request id: 32 random hex digits.
pub fn new_request_id() -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = String::with_capacity(32);
    for b in fastrand::u128(..).to_be_bytes() {
        id.push(char::from(HEX[usize::from(b >> 4)]));
        id.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_follow_grpc_form() {
        assert_eq!(parse_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(
            parse_timeout("99999999n"),
            Some(Duration::from_nanos(99_999_999))
        );
        for bad in ["", "m", "123456789m", "12x", "-1S", "1.5S", " 1S", "1s"] {
            assert_eq!(parse_timeout(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn content_types_name_codecs() {
        assert_eq!(codec_for(None), Some(CodecId::JSON));
        assert_eq!(
            codec_for(Some("application/json; charset=utf-8")),
            Some(CodecId::JSON)
        );
        assert_eq!(codec_for(Some("Application/JSON")), Some(CodecId::JSON));
        assert_eq!(
            codec_for(Some("application/problem+json")),
            Some(CodecId::JSON)
        );
        assert_eq!(
            codec_for(Some("application/x-www-form-urlencoded")),
            Some(CodecId::JSON)
        );
        assert_eq!(
            codec_for(Some("application/msgpack")),
            Some(CodecId::MSGPACK)
        );
        assert_eq!(
            codec_for(Some("application/x-protobuf")),
            Some(CodecId::PROTOBUF)
        );
        for bad in [
            "text/plain",
            "multipart/form-data; boundary=x",
            "application/xml",
        ] {
            assert_eq!(codec_for(Some(bad)), None, "{bad:?}");
        }
    }

    #[test]
    fn routes_are_two_parts() {
        assert_eq!(route("/shop.Inventory/Check"), Some("shop.Inventory/Check"));
        assert_eq!(route("/demo/Nested/Echo"), Some("demo/Nested/Echo"));
        for bad in ["/", "//", "/shop.Inventory", "/shop.Inventory/", "x/y"] {
            assert_eq!(route(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn statuses_map_as_grpc_does_but_unimplemented() {
        assert_eq!(http_status(Code::ResourceExhausted), 429);
        assert_eq!(http_status(Code::Unavailable), 503);
        assert_eq!(http_status(Code::DeadlineExceeded), 504);
        assert_eq!(http_status(Code::Unimplemented), 404);
        assert_eq!(http_status(Code::Cancelled), 499);
    }

    #[test]
    fn error_bodies_carry_typed_details() {
        #[derive(serde::Serialize)]
        enum InventoryError {
            Insufficient { sku: String, available: u32 },
        }
        let status =
            Status::failed_precondition("not enough").with_details(&InventoryError::Insufficient {
                sku: "sku-1".into(),
                available: 3,
            });
        let body: serde_json::Value = serde_json::from_slice(&error_body(&status)).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "code": 9,
                "status": "FailedPrecondition",
                "message": "not enough",
                "details": {"Insufficient": {"sku": "sku-1", "available": 3}},
            })
        );
        let plain: serde_json::Value =
            serde_json::from_slice(&error_body(&Status::not_found("x"))).unwrap();
        assert!(plain.get("details").is_none());
    }

    #[test]
    fn events_are_wanted_unless_weighted_zero() {
        let accept = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(http::header::ACCEPT, HeaderValue::from_static(v));
            wants_events(&h)
        };
        assert!(accept("text/event-stream"));
        assert!(accept("application/json, Text/Event-Stream;q=0.5"));
        assert!(!accept("text/event-stream;q=0"));
        assert!(!accept("application/json"));
    }

    #[test]
    fn framework_metadata_is_not_taken_from_headers() {
        let mut h = HeaderMap::new();
        h.insert("rpc-md-tenant", HeaderValue::from_static("acme"));
        h.insert("rpc-md-rpc-route-tag", HeaderValue::from_static("env=gray"));
        h.insert("rpc-md-rpc-hash-key", HeaderValue::from_static("k"));
        h.insert("authorization", HeaderValue::from_static("Bearer t"));
        h.insert("cookie", HeaderValue::from_static("secret"));
        let mut m = Metadata::default();
        headers_to_metadata(&h, &mut m);
        let keys: Vec<&str> = m.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["tenant", "authorization"]);
    }

    #[test]
    fn request_ids_are_32_hex_digits() {
        let id = new_request_id();
        assert_eq!(id.len(), 32);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(id, new_request_id());
    }
}
