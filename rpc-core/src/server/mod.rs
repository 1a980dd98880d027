//! The server side: [`Server`] accepts connections and routes calls to the services it hosts.

mod accept;
mod cancel;
mod connection;
#[cfg(feature = "http")]
mod http;
mod overload;
mod reply;
mod service;
mod stats;
mod upkeep;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::io;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use rpc_codec::{CodecSet, Compression};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::Service;

use crate::describe::{self, Format, Hosted};
use crate::message::{Request, Response};
use crate::protocol::Settings;
use crate::status::Status;
use crate::transport::Listener;
use accept::{accept_until, serve_connection, Caps, ConnSetup};
use connection::ConnShared;
pub(crate) use service::handler_ran;
use service::Erased;

#[doc(hidden)]
pub use service::{server_call, unknown_method, Dispatch, ServerCall};
pub use service::{NamedService, RawService};
pub use stats::ServerStats;

/// Services by name.
pub(crate) struct Router {
    services: HashMap<Box<str>, Arc<dyn Dispatch>>,
}

impl Router {
    fn get(&self, name: &str) -> Option<&Arc<dyn Dispatch>> {
        self.services.get(name)
    }
}

/// Serves services over any [`Listener`]: routing by service and method name, per-connection and
/// server-wide limits on calls in flight, deadlines, cancellation and graceful shutdown.
///
/// ```
/// use rpc_core::{server::RawService, Endpoint, Request, Response, Server};
/// use rpc_core::transport::memory::MemoryListener;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let echo = RawService::new("demo.Echo")
///     .method("Echo", |req| async move { Ok(Response::new(req.into_body())) });
/// let listener = MemoryListener::bind("server-doc")?;
/// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
/// let server = tokio::spawn(
///     Server::builder()
///         .add_service(echo)
///         .serve_with_shutdown(listener, async { stopped.await.ok(); }),
/// );
///
/// let channel = Endpoint::memory("server-doc").connect_lazy();
/// let reply = channel.unary(Request::new("demo.Echo/Echo", "hi")).await?;
/// assert_eq!(&reply.body()[..], b"hi");
///
/// stop.send(()).ok();
/// server.await??;
/// # Ok(())
/// # }
/// ```
#[must_use = "a Server does nothing until served"]
pub struct Server {
    services: HashMap<Box<str>, Arc<dyn Dispatch>>,
    hosted: Vec<(Box<str>, Hosted)>,
    max_calls_per_connection: u32,
    max_calls: usize,
    max_frame_size: u32,
    max_metadata_size: u32,
    handshake_timeout: Duration,
    drain_timeout: Duration,
    max_connections: usize,
    max_handshaking: usize,
    stats: ServerStats,
    codecs: CodecSet,
    compression: Option<(Compression, usize)>,
    max_queue_delay: Option<Duration>,
    #[cfg(feature = "http")]
    http: Option<crate::http::HttpConfig>,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<_> = self.services.keys().collect();
        names.sort();
        f.debug_struct("Server")
            .field("services", &names)
            .field("max_calls_per_connection", &self.max_calls_per_connection)
            .field("max_calls", &self.max_calls)
            .field("max_frame_size", &self.max_frame_size)
            .field("max_metadata_size", &self.max_metadata_size)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("drain_timeout", &self.drain_timeout)
            .field("max_connections", &self.max_connections)
            .field("max_handshaking", &self.max_handshaking)
            .field("codecs", &self.codecs)
            .field("compression", &self.compression)
            .field("max_queue_delay", &self.max_queue_delay)
            .finish()
    }
}

impl Server {
    /// A server with default limits and no services.
    pub fn builder() -> Server {
        let d = Settings::protocol_default();
        Server {
            services: HashMap::new(),
            hosted: Vec::new(),
            max_calls_per_connection: d.max_concurrent_calls,
            max_calls: 100_000,
            max_frame_size: d.max_frame_size,
            max_metadata_size: d.max_metadata_size,
            handshake_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(30),
            max_connections: 10_000,
            max_handshaking: 1_000,
            stats: ServerStats::default(),
            codecs: CodecSet::ALL,
            compression: None,
            max_queue_delay: None,
            #[cfg(feature = "http")]
            http: None,
        }
    }

    /// Also serves HTTP/JSON on the same listener (feature `http`): every hosted service is
    /// callable as `POST /package.Service/Method` with a JSON body (or MessagePack, Protobuf,
    /// raw, by `Content-Type`), over HTTP/1.1 or HTTP/2 without TLS (h2c with prior
    /// knowledge), and over TLS with a TLS listener. A connection is told apart by its first
    /// byte: our preface starts with `0x7f`, which no HTTP request does. See [`crate::http`] for
    /// the mapping of paths, headers and statuses, and `docs/protocol.md` §18.
    ///
    /// HTTP calls count against [`max_concurrent_calls`](Server::max_concurrent_calls) and get
    /// the server's codecs; the first bytes must come within the
    /// [`handshake_timeout`](Server::handshake_timeout), and an HTTP/1.1 request's headers too.
    ///
    /// ```
    /// use rpc_core::http::HttpConfig;
    /// let server = rpc_core::Server::builder().http(HttpConfig::new().max_body(1 << 20));
    /// ```
    #[cfg(feature = "http")]
    pub fn http(mut self, config: crate::http::HttpConfig) -> Server {
        self.http = Some(config);
        self
    }

    /// The codecs requests may use; others are answered with `Unimplemented` naming these. Announced
    /// to clients, which check before sending. Default: all (raw, protobuf, json, msgpack).
    ///
    /// ```
    /// use rpc_core::{CodecId, CodecSet};
    /// let json_only = CodecSet::EMPTY.with(CodecId::JSON);
    /// let server = rpc_core::Server::builder().accept_codecs(json_only);
    /// ```
    pub fn accept_codecs(mut self, codecs: CodecSet) -> Server {
        self.codecs = codecs;
        self
    }

    /// Compresses response bodies of at least `threshold` bytes for clients that read this
    /// compression. Off by default. Compressed requests are always accepted.
    ///
    /// ```
    /// use rpc_core::codec::Compression;
    /// let server = rpc_core::Server::builder().compression(Compression::Lz4, 4096);
    /// ```
    pub fn compression(mut self, compression: Compression, threshold: usize) -> Server {
        self.compression = Some((compression, threshold));
        self
    }

    /// Hosts a service under its [`NamedService::service_name`], replacing one with that name.
    /// Its [`NamedService::descriptor`], if any, is listed by the built-in describe method
    /// ([`describe::DESCRIBE_PATH`]).
    ///
    /// ```
    /// # use rpc_core::{server::RawService, Server};
    /// let server = Server::builder()
    ///     .add_service(RawService::new("shop.Orders"))
    ///     .add_service(RawService::new("shop.Inventory"));
    /// ```
    pub fn add_service<S>(mut self, service: S) -> Server
    where
        S: NamedService
            + Service<Request, Response = Response, Error = Status>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        let name: Box<str> = Box::from(service.service_name());
        let hosted = service
            .descriptor()
            .map_or(Hosted::Named, Hosted::Described);
        self.hosted.retain(|(n, _)| *n != name);
        self.hosted.push((name.clone(), hosted));
        let dispatch = service
            .__dispatcher()
            .unwrap_or_else(|| Arc::new(Erased(service)));
        self.services.insert(name, dispatch);
        self
    }

    /// Calls one connection may have in flight; more are refused with `ResourceExhausted`.
    /// Announced to clients, which hold back beyond it. Default 1024.
    ///
    /// ```
    /// let server = rpc_core::Server::builder().max_concurrent_calls_per_connection(10_000);
    /// ```
    pub fn max_concurrent_calls_per_connection(mut self, n: u32) -> Server {
        self.max_calls_per_connection = n.max(1);
        self
    }

    /// Calls the whole server may have in flight; more are refused with `ResourceExhausted`.
    /// Default 100 000.
    ///
    /// ```
    /// let server = rpc_core::Server::builder().max_concurrent_calls(5_000);
    /// ```
    pub fn max_concurrent_calls(mut self, n: usize) -> Server {
        self.max_calls = n.max(1);
        self
    }

    /// The largest frame accepted (so, the largest request). Default 4 MiB; at least 16 KiB.
    ///
    /// ```
    /// let server = rpc_core::Server::builder().max_frame_size(1 << 20);
    /// ```
    pub fn max_frame_size(mut self, bytes: u32) -> Server {
        self.max_frame_size = bytes.max(Settings::MIN_FRAME_SIZE);
        self
    }

    /// The largest request metadata block accepted. Default 16 KiB.
    ///
    /// ```
    /// let server = rpc_core::Server::builder().max_metadata_size(4096);
    /// ```
    pub fn max_metadata_size(mut self, bytes: u32) -> Server {
        self.max_metadata_size = bytes;
        self
    }

    /// Sheds load by queue delay: a call that waited longer than `delay` before a handler could
    /// start it is refused with `ResourceExhausted`, marked not processed (`rpc-not-processed`),
    /// before its body is decompressed or decoded and before any service or layer sees it. Off by
    /// default.
    ///
    /// The wait counted (CoDel's sojourn time, bounded from above where it cannot be seen) is the
    /// sum of: the time since the read that brought the call's frame (calls read together queue
    /// behind each other's handlers on the connection's task); before that read, the time since
    /// the previous read if the connection had not found its socket empty in between (the frame
    /// may have waited in the socket buffers that long), else the runtime's scheduling delay,
    /// which a probe task spawned with the server measures every `delay / 4` (1–10 ms; the least
    /// of its last four measures, or how overdue it is now); and, for a handler that will move to
    /// its own task, the wait behind the handler tasks already spawned and not yet run (their
    /// number times what each was seen to cost the one behind it). So a server over capacity
    /// refuses at once what arrives while it is behind, and admits only calls it can start
    /// within `delay`, whether handlers finish in their first poll or await.
    ///
    /// Unlike [`LoadShedLayer`](crate::middleware::LoadShedLayer), which limits calls in flight
    /// in a service and so never sheds handlers that finish in their first poll, this works for
    /// fast handlers; the two combine. An admitted call can take up to about twice `delay` more
    /// than unloaded (the bound counts whole reads); three to four times the handler's own time
    /// suits CPU-bound handlers (`benches/RESULTS-memory-overload.md`: 75 µs handlers at 3 ×
    /// capacity with 250–300 µs keep admitted p99 within 2 × the unloaded p99, and refuse 2–4 %
    /// of calls at 0.3 × capacity). Keep it well below the clients' deadlines.
    ///
    /// Whatever this setting, a call whose deadline (counted from the read of its frame) passed
    /// before a handler could start it is never started: it is answered `DeadlineExceeded`,
    /// marked not processed.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let server = rpc_core::Server::builder().max_queue_delay(Duration::from_millis(5));
    /// ```
    pub fn max_queue_delay(mut self, delay: Duration) -> Server {
        self.max_queue_delay = Some(delay);
        self
    }

    /// How long a new connection may take to complete its handshake. Default 10 s.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let server = rpc_core::Server::builder().handshake_timeout(Duration::from_secs(2));
    /// ```
    pub fn handshake_timeout(mut self, timeout: Duration) -> Server {
        self.handshake_timeout = timeout;
        self
    }

    /// How long graceful shutdown lets calls in flight finish before closing anyway. Default 30 s.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let server = rpc_core::Server::builder().drain_timeout(Duration::from_secs(5));
    /// ```
    pub fn drain_timeout(mut self, timeout: Duration) -> Server {
        self.drain_timeout = timeout;
        self
    }

    /// Connections the server keeps open at once, counting those still in their handshake. At the
    /// limit it stops accepting, logs it once (`connection limit reached`), and new connections
    /// wait in the listener's backlog until one closes. Default 10 000.
    ///
    /// ```
    /// let server = rpc_core::Server::builder().max_connections(50_000);
    /// ```
    pub fn max_connections(mut self, n: usize) -> Server {
        self.max_connections = n.max(1);
        self
    }

    /// Connections that may be in their handshake at once (accepted, SETTINGS not yet read). At
    /// the limit the server stops accepting, logs it once (`handshake limit reached`), and resumes
    /// as handshakes finish or time out ([`Server::handshake_timeout`]), so that peers that
    /// connect and say nothing cannot take every slot for long. A connection in its handshake
    /// holds a 1 KiB buffer, not the 64 KiB one of an established connection. Default 1 000.
    ///
    /// ```
    /// let server = rpc_core::Server::builder().max_handshaking(256);
    /// ```
    pub fn max_handshaking(mut self, n: usize) -> Server {
        self.max_handshaking = n.max(1);
        self
    }

    /// A handle to this server's live figures (connections, handshakes, buffered bytes), to read
    /// while it serves.
    ///
    /// ```
    /// let server = rpc_core::Server::builder();
    /// let stats = server.stats();
    /// // tokio::spawn(server.serve(listener)); then, at any time:
    /// assert_eq!(stats.handshaking(), 0);
    /// ```
    pub fn stats(&self) -> ServerStats {
        self.stats.clone()
    }

    /// Serves until the listener fails.
    ///
    /// # Errors
    /// The listener's error, if accepting fails for good.
    pub async fn serve<L: Listener>(self, listener: L) -> io::Result<()> {
        self.serve_with_shutdown(listener, std::future::pending())
            .await
    }

    /// Serves until `signal` completes, then shuts down gracefully: every connection gets a
    /// go-away, no new connections are accepted (those still in their handshake are closed at
    /// once), calls in flight may finish within the drain timeout, and then everything closes.
    ///
    /// Each connection closes with a lingering close: after its last response it shuts its write
    /// side down (the client reads end of stream after everything), then reads and discards what
    /// the client still sends until the client closes, for at most 2 s or 4 MiB. A close with
    /// the client's bytes unread would be a reset, which can destroy the go-away and the last
    /// responses before the client reads them.
    ///
    /// # Errors
    /// The listener's error, if accepting fails for good.
    pub async fn serve_with_shutdown<L, F>(self, mut listener: L, signal: F) -> io::Result<()>
    where
        L: Listener,
        F: Future<Output = ()>,
    {
        let local = Settings {
            max_frame_size: self.max_frame_size,
            max_concurrent_calls: self.max_calls_per_connection,
            max_metadata_size: self.max_metadata_size,
            codecs: self.codecs.bits(),
            compressions: Compression::SUPPORTED_BITS,
            features: crate::protocol::features::STREAMING,
            ..Settings::protocol_default()
        };
        let mut services = self.services;
        let mut hosted = self.hosted;
        hosted.sort_by(|a, b| a.0.cmp(&b.0));
        services
            .entry(Box::from(describe::BUILTIN_SERVICE))
            .or_insert_with(|| Arc::new(Builtin::new(&hosted)));
        let shared = Arc::new(ConnShared {
            router: Arc::new(Router { services }),
            local,
            compression: self.compression,
            max_calls: self.max_calls,
            in_flight: AtomicUsize::new(0),
            overload: overload::Overload::new(self.max_queue_delay),
        });
        let shutdown = CancellationToken::new();
        let hard_stop = CancellationToken::new();
        let tracker = TaskTracker::new();
        let handshake_timeout = self.handshake_timeout;
        let local_addr = listener.local_addr().ok();
        tracing::info!(addr = ?local_addr.as_ref().map(|a| a.to_string()), "serving");

        let caps = Caps {
            connections: self.max_connections,
            handshaking: self.max_handshaking,
        };
        // HTTP clients' server streams are opened over memory on this server itself.
        #[cfg(feature = "http")]
        let http = match self.http.clone() {
            None => None,
            Some(config) => {
                let name = http::loopback_name();
                let listener = crate::transport::memory::MemoryListener::bind(&name)?;
                let setup = ConnSetup {
                    shared: shared.clone(),
                    handshake_timeout,
                    shutdown: shutdown.clone(),
                    hard_stop: hard_stop.clone(),
                    http: None,
                };
                tracker.spawn(accept::accept_loopback(
                    listener,
                    setup,
                    self.stats.clone(),
                    tracker.clone(),
                ));
                Some((config, crate::http::loopback(&name)))
            }
        };
        let spawn = |io, peer, open| {
            let setup = ConnSetup {
                shared: shared.clone(),
                handshake_timeout,
                shutdown: shutdown.clone(),
                hard_stop: hard_stop.clone(),
                #[cfg(feature = "http")]
                http: http.clone(),
            };
            tracker.spawn(serve_connection(io, peer, open, setup));
        };
        let signal = std::pin::pin!(signal);
        let result = accept_until(&mut listener, signal, caps, &self.stats, spawn).await;
        drop(listener);
        tracing::info!("shutting down: draining connections");
        shutdown.cancel();
        tracker.close();
        if tokio::time::timeout(self.drain_timeout, tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(timeout = ?self.drain_timeout, "drain timeout reached; closing remaining connections");
            hard_stop.cancel();
            tracker.wait().await;
        }
        tracing::info!("server stopped");
        result
    }
}

/// The built-in `rpc.Server` service: describes what the server hosts.
struct Builtin {
    json: bytes::Bytes,
    markdown: bytes::Bytes,
}

impl Builtin {
    fn new(hosted: &[(Box<str>, Hosted)]) -> Builtin {
        Builtin {
            json: describe::render_hosted(hosted, Format::Json).into(),
            markdown: describe::render_hosted(hosted, Format::Markdown).into(),
        }
    }
}

impl Dispatch for Builtin {
    fn dispatch(
        &self,
        req: Request,
        ctx: crate::Context,
        deadline: Option<tokio::time::Instant>,
    ) -> ServerCall {
        let reply = match req.method() {
            "Describe" => std::str::from_utf8(req.body())
                .map_err(|_| Status::invalid_argument("the description format is not UTF-8"))
                .and_then(str::parse::<Format>)
                .map(|format| match format {
                    Format::Json => Response::new(self.json.clone()),
                    Format::Markdown => Response::new(self.markdown.clone()),
                }),
            other => Err(unknown_method(describe::BUILTIN_SERVICE, other)),
        };
        server_call(ctx, deadline, std::future::ready(reply))
    }
}
