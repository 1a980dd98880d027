//! tarpc: unary echo, bincode over one TCP connection.
//!
//! Frames are tokio-util length-delimited, messages bincode (tokio-serde's `Bincode`). The server
//! spawns every request as its own task; both sides allow many thousands of calls in flight on a
//! connection. Each call carries a 60 s deadline so slow runs do not time out. The order system
//! ([`tarpc_order`](super::tarpc_order)) uses the same settings.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use tarpc::server::{BaseChannel, Channel};
use tarpc::tokio_serde::formats::Bincode;
use tarpc::tokio_util::codec::LengthDelimitedCodec;
use tarpc::{client, context, serde_transport, server};
use tokio::net::TcpStream;

/// The service, kept private so the workspace's documentation lints do not apply to what the
/// macro generates.
#[allow(missing_docs, unreachable_pub)]
mod service {
    /// The echo service.
    #[tarpc::service]
    pub(super) trait Echo {
        /// Returns `payload`.
        async fn echo(payload: bytes::Bytes) -> bytes::Bytes;
    }
}

use service::{Echo, EchoClient};

/// The largest frame either side accepts (payloads are at most 64 KiB in the runs).
const MAX_FRAME: usize = 16 << 20;
/// Calls a client lets be in flight at once (tarpc's default is 1000; more are queued).
const CLIENT_IN_FLIGHT: usize = 1 << 14;
/// Calls the server runs at once per connection (above the client's, so it never rejects).
pub(super) const SERVER_IN_FLIGHT: usize = 1 << 15;
/// Queue lengths between the callers / handlers and the connection's I/O (tarpc's default: 100).
const QUEUE: usize = 4096;
/// How long a call may take.
const DEADLINE: Duration = Duration::from_secs(60);

/// Frames a connected stream.
pub(super) fn framed(
    stream: TcpStream,
) -> tarpc::tokio_util::codec::Framed<TcpStream, LengthDelimitedCodec> {
    LengthDelimitedCodec::builder()
        .max_frame_length(MAX_FRAME)
        .new_framed(stream)
}

/// The server's settings per connection (shared with the order system).
pub(super) fn server_config() -> server::Config {
    server::Config {
        pending_response_buffer: QUEUE,
    }
}

/// The client's settings (shared with the order system).
pub(super) fn client_config() -> client::Config {
    let mut config = client::Config::default();
    config.max_in_flight_requests = CLIENT_IN_FLIGHT;
    config.pending_request_buffer = QUEUE;
    config
}

/// The context of one call: the current one with the benchmark's deadline.
pub(super) fn call_context() -> context::Context {
    let mut ctx = context::current();
    ctx.deadline = Instant::now() + DEADLINE;
    ctx
}

/// The echo service.
#[derive(Debug, Clone, Copy)]
struct EchoServer;

impl Echo for EchoServer {
    async fn echo(self, _: context::Context, payload: Bytes) -> Bytes {
        payload
    }
}

/// Serves the echo.
///
/// # Errors
/// The listener's failure.
pub async fn serve(listener: tokio::net::TcpListener) -> Result<(), String> {
    loop {
        let (stream, _) = listener.accept().await.map_err(|e| e.to_string())?;
        let _ = stream.set_nodelay(true);
        let transport = serde_transport::new(framed(stream), Bincode::default());
        let requests = BaseChannel::new(server_config(), transport)
            .max_concurrent_requests(SERVER_IN_FLIGHT)
            .execute(EchoServer.serve());
        tokio::spawn(requests.for_each(|call| async move {
            tokio::spawn(call);
        }));
    }
}

/// A client over one connection.
#[derive(Clone, Debug)]
pub struct Client {
    inner: EchoClient,
}

impl Client {
    /// Connects.
    ///
    /// # Errors
    /// The connection failure.
    pub async fn connect(addr: SocketAddr) -> Result<Client, String> {
        let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let transport = serde_transport::new(framed(stream), Bincode::default());
        let inner = EchoClient::new(client_config(), transport).spawn();
        Ok(Client { inner })
    }

    /// One call.
    ///
    /// # Errors
    /// The call's failure, as text.
    pub async fn echo(&self, payload: Bytes) -> Result<Bytes, String> {
        self.inner
            .echo(call_context(), payload)
            .await
            .map_err(|e| e.to_string())
    }
}
