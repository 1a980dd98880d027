//! The server side: [`Server`] accepts connections and routes calls to the services it hosts.

mod connection;
mod reply;
mod service;

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

use crate::conn::{server_handshake, Driver};
use crate::describe::{self, Format, Hosted};
use crate::message::{Request, Response};
use crate::protocol::{ProtocolError, Settings};
use crate::status::Status;
use crate::transport::Listener;
use connection::{ConnShared, ServerRole};
use service::Erased;

#[doc(hidden)]
pub use service::{server_call, Dispatch, ServerCall};
pub use service::{NamedService, RawService};

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
    codecs: CodecSet,
    compression: Option<(Compression, usize)>,
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
            .field("codecs", &self.codecs)
            .field("compression", &self.compression)
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
            codecs: CodecSet::ALL,
            compression: None,
        }
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

    /// Serves until the listener fails.
    ///
    /// # Errors
    /// The listener's error, if accepting fails for good.
    pub async fn serve<L: Listener>(self, listener: L) -> io::Result<()> {
        self.serve_with_shutdown(listener, std::future::pending())
            .await
    }

    /// Serves until `signal` completes, then shuts down gracefully: every connection gets a
    /// go-away, no new connections are accepted, calls in flight may finish within the drain
    /// timeout, and then everything closes.
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
        });
        let shutdown = CancellationToken::new();
        let hard_stop = CancellationToken::new();
        let tracker = TaskTracker::new();
        let handshake_timeout = self.handshake_timeout;
        let local_addr = listener.local_addr().ok();
        tracing::info!(addr = ?local_addr.as_ref().map(|a| a.to_string()), "serving");

        let mut signal = std::pin::pin!(signal);
        let result = loop {
            let accepted = tokio::select! {
                () = &mut signal => break Ok(()),
                res = std::future::poll_fn(|cx| listener.poll_accept(cx)) => res,
            };
            let (io, peer) = match accepted {
                Ok(pair) => pair,
                Err(e) if is_transient(&e) => {
                    tracing::warn!(error = %e, "accept failed; continuing");
                    // Typically out of file descriptors: give other connections time to close.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
                Err(e) => break Err(e),
            };
            let shared = shared.clone();
            let shutdown = shutdown.clone().cancelled_owned();
            let hard_stop = hard_stop.clone().cancelled_owned();
            tracker.spawn(async move {
                match server_handshake(io, &shared.local, handshake_timeout).await {
                    Ok(hs) => {
                        tracing::debug!(%peer, "connection accepted");
                        let peer_settings = hs.peer;
                        let role =
                            ServerRole::new(shared, peer, peer_settings, shutdown, hard_stop);
                        Driver::new(hs.io, role).await;
                    }
                    Err(ProtocolError::Io(e)) => {
                        tracing::debug!(%peer, error = %e, "connection lost during handshake")
                    }
                    Err(e) => tracing::warn!(%peer, error = %e, "handshake failed"),
                }
            });
        };
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
            other => Err(Status::unimplemented(format!(
                "unknown method {other:?} in service {:?}",
                describe::BUILTIN_SERVICE
            ))),
        };
        server_call(ctx, deadline, std::future::ready(reply))
    }
}

fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    ) || e
        .raw_os_error()
        .is_some_and(|code| code == 24 || code == 23)
}
