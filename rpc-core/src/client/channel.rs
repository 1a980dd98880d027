//! [`Channel`]: the cloneable client handle, a `tower::Service` over one multiplexed connection.

use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::time::Instant;

use super::connection::{ClientConn, Started};
use super::endpoint::{ChannelConfig, Endpoint};
use super::future::{cascaded, timeout_us, ResponseFuture};
use super::reconnect::{ChannelState, Handle, Shared, Slot};
use crate::context::Context as CallContext;
use crate::limit::{Limiter, Permit};
use crate::message::{Request, Response};
use crate::status::{Code, Delivery, Status};
use crate::stream::{RawSender, RawStreaming, StreamHost};

/// A cheap-to-clone handle for making calls to one server over one multiplexed connection.
///
/// It connects on first use, reconnects after a loss (with exponential backoff and jitter, failing
/// calls fast with `Unavailable` while it waits), and is a `tower::Service<Request>` whose
/// `poll_ready` waits while the in-flight limit is reached, or while the connection holds
/// [`Endpoint::max_unwritten_bytes`] not yet written (a peer that stopped reading). A call made
/// while handling another inherits that call's remaining deadline.
///
/// # One-way calls
/// A one-way call ([`Request::with_one_way`]) gets no response, so its future tells the caller
/// what the client knows about delivery:
/// - `Ok` once the server has read the request before any go-away, proved by a PONG to the PING
///   the channel writes after it, by a response to a later call, or by a go-away whose last call id
///   covers it. So `Ok` means written and taken by the server for processing. It does not mean the
///   handler succeeded, or even started: the server runs one-way calls *at most once* and reports
///   nothing back (it drops one it refuses, say for an unknown method or over a limit).
/// - `Unavailable` with [`Delivery::Unprocessed`] when the server's go-away says it did not
///   process the call (it shut down gracefully first). The call never ran; it is safe to send
///   again, which a [`RetryLayer`](crate::middleware::retry::RetryLayer) does for any method.
/// - `Unavailable` with [`Delivery::NotSent`] when the connection ended before the request was
///   written, or [`Delivery::Sent`] when it ended after: the call may or may not have run.
/// - `DeadlineExceeded` when the call's deadline passed first: it may or may not run.
///
/// Until then the call counts against the in-flight limit. Dropping the future does not cancel a
/// queued one-way call: it is still sent.
///
/// ```no_run
/// use rpc_core::{Endpoint, Request};
///
/// # #[tokio::main]
/// # async fn main() -> Result<(), rpc_core::Status> {
/// let channel = Endpoint::from_uri("127.0.0.1:50051").unwrap().connect_lazy();
/// let reply = channel.unary(Request::new("demo.Echo/Echo", "hello")).await?;
/// assert_eq!(&reply.body()[..], b"hello");
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Channel {
    handle: Arc<Handle>,
    cached: Option<Arc<ClientConn>>,
    permit: Option<Permit>,
}

impl Clone for Channel {
    /// A clone shares the connection but not a slot reserved by `poll_ready`: a clone of a ready
    /// service is not ready.
    fn clone(&self) -> Channel {
        Channel {
            handle: self.handle.clone(),
            cached: self.cached.clone(),
            permit: None,
        }
    }
}

impl Channel {
    pub(crate) fn new(endpoint: Endpoint) -> Channel {
        let limiter = Limiter::new(endpoint.config.max_concurrent_calls);
        Channel {
            handle: Arc::new(Handle {
                shared: Arc::new(Shared {
                    connector: endpoint.connector,
                    config: endpoint.config,
                    limiter,
                    slot: Mutex::new(Slot::Idle { failures: 0 }),
                }),
            }),
            cached: None,
            permit: None,
        }
    }

    /// Makes one call, waiting for an in-flight slot first.
    ///
    /// # Errors
    /// The server's `Status`, or a local one: `Unavailable` (connection lost or not possible; see
    /// [`Status::delivery`] for whether the request left), `DeadlineExceeded`, `ResourceExhausted`
    /// (a message over the server's size limits).
    pub async fn unary(&self, request: Request) -> Result<Response, Status> {
        let permit = self.handle.shared.limiter.acquire().await;
        // The live connection, if any: a call on it needs no connecting state (nor its box).
        let conn = match &*self.handle.shared.lock() {
            Slot::Ready(c) if c.is_usable() => Some(c.clone()),
            _ => None,
        };
        start(&self.handle, conn.as_ref(), request, permit).await
    }

    /// Makes a server-streaming call (protocol 1.1): sends `request`, then yields the server's
    /// messages as they arrive, and the call's status at the end. Dropping the stream before its
    /// end cancels the call. The call's deadline (its own, the channel's timeout or an inherited
    /// one) bounds the whole stream. It holds an in-flight slot until it ends.
    ///
    /// A server that does not stream its replies is not asked: the stream is flow-controlled
    /// (`docs/protocol.md` §17.5), so a caller that stops reading stops the server.
    ///
    /// # Errors
    /// As [`unary`](Channel::unary) for the request; `Unimplemented`, not sent, when the server
    /// speaks protocol 1.0.
    pub async fn server_streaming(&self, request: Request) -> Result<RawStreaming, Status> {
        let (_, stream) = self
            .open_stream(request, crate::protocol::flags::SERVER_STREAM)
            .await?;
        Ok(stream)
    }

    /// Makes a client-streaming call (protocol 1.1): `request` carries the method and metadata
    /// (its body must be empty); the messages go through the returned [`RawSender`], and
    /// [`RawStreaming::response`] gives the one reply. Dropping the sender ends the request
    /// stream; dropping the `RawStreaming` before the reply cancels the call.
    ///
    /// # Errors
    /// As [`server_streaming`](Channel::server_streaming); `InvalidArgument`, not sent, for a
    /// request with a body.
    pub async fn client_streaming(
        &self,
        request: Request,
    ) -> Result<(RawSender, RawStreaming), Status> {
        let flags = crate::protocol::flags::CLIENT_STREAM;
        match self.open_stream(request, flags).await? {
            (Some(sender), stream) => Ok((sender, stream)),
            (None, _) => Err(Status::internal("a client stream without its sender")),
        }
    }

    /// Makes a bidirectional streaming call (protocol 1.1): messages go out through the
    /// [`RawSender`] and come back through the [`RawStreaming`], in any interleaving, each
    /// direction flow-controlled on its own.
    ///
    /// # Errors
    /// As [`client_streaming`](Channel::client_streaming).
    pub async fn bidi_streaming(
        &self,
        request: Request,
    ) -> Result<(RawSender, RawStreaming), Status> {
        let flags = crate::protocol::flags::CLIENT_STREAM | crate::protocol::flags::SERVER_STREAM;
        match self.open_stream(request, flags).await? {
            (Some(sender), stream) => Ok((sender, stream)),
            (None, _) => Err(Status::internal("a client stream without its sender")),
        }
    }

    /// Starts a streaming call with these stream flags.
    pub(crate) async fn open_stream(
        &self,
        request: Request,
        stream: u8,
    ) -> Result<(Option<RawSender>, RawStreaming), Status> {
        let client_stream = stream & crate::protocol::flags::CLIENT_STREAM != 0;
        if client_stream && !request.body().is_empty() {
            return Err(Status::invalid_argument(
                "a client stream's messages go through its sender: the request's body must be \
                 empty",
            )
            .with_delivery(Delivery::NotSent));
        }
        let permit = self.handle.shared.limiter.acquire().await;
        let (inherited, _cancel) = CallContext::current_deadline_and_cancellation();
        let deadline = effective_deadline(&self.handle.shared.config, &request, inherited);
        let connecting = std::future::poll_fn(|cx| self.handle.shared.poll_conn(cx));
        let conn = match deadline {
            Some(d) => tokio::time::timeout_at(d, connecting).await.map_err(|_| {
                Status::deadline_exceeded("deadline passed while connecting")
                    .with_delivery(Delivery::NotSent)
            })??,
            None => connecting.await?,
        };
        let now = Instant::now();
        if deadline.is_some_and(|d| d <= now) {
            return Err(
                Status::deadline_exceeded("deadline passed before the call was sent")
                    .with_delivery(Delivery::NotSent),
            );
        }
        match conn.start_stream(&request, timeout_us(deadline, now), stream)? {
            Started::Queued(queued) => {
                let sender = client_stream.then(|| conn.sender(queued.id));
                let max_body = conn.max_body();
                let host: Arc<dyn StreamHost> = conn;
                let stream = RawStreaming::client(host, queued.id, max_body, queued.rx, deadline);
                Ok((sender, stream.holding(permit)))
            }
            Started::Full => Err(conn.full_status()),
        }
    }

    /// Waits until a connection is up.
    ///
    /// # Errors
    /// `Unavailable` if connecting fails.
    pub async fn ready(&self) -> Result<(), Status> {
        std::future::poll_fn(|cx| self.handle.shared.poll_conn(cx))
            .await
            .map(drop)
    }

    /// The state of the channel's connection.
    pub fn state(&self) -> ChannelState {
        self.handle.shared.state()
    }

    /// Calls in flight on this channel (all clones together).
    pub fn in_flight(&self) -> usize {
        self.handle.shared.limiter.in_use()
    }

    /// The current in-flight limit (the smaller of the endpoint's and the server's).
    pub fn max_in_flight(&self) -> usize {
        self.handle.shared.limiter.limit()
    }

    /// The codec typed calls use by default (see [`Endpoint::codec`]).
    pub fn default_codec(&self) -> rpc_codec::CodecId {
        self.handle.shared.config.codec
    }

    /// The address this channel reaches.
    pub fn target(&self) -> String {
        self.handle.shared.connector.target()
    }
}

impl tower::Service<Request> for Channel {
    type Response = Response;
    type Error = Status;
    type Future = ResponseFuture;

    /// Ready when an in-flight slot is reserved and the connection (if there is one) has room for
    /// another request: it waits while the connection holds
    /// [`Endpoint::max_unwritten_bytes`] not yet written, unless
    /// [`Endpoint::wait_for_write_capacity`] is off (then the call fails instead).
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        if self.permit.is_none() {
            let permit = std::task::ready!(self.handle.shared.limiter.poll_acquire(cx));
            self.permit = Some(permit);
        }
        if let Some(conn) = &self.cached {
            if conn.is_full() && self.handle.shared.config.wait_for_write_capacity {
                std::task::ready!(conn.poll_room(cx));
            }
        }
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> ResponseFuture {
        let permit =
            match self.permit.take() {
                Some(p) => p,
                None => match self.handle.shared.limiter.try_acquire() {
                    Some(p) => p,
                    None => return ResponseFuture::failed(
                        Status::resource_exhausted(
                            "Channel::call without poll_ready while the in-flight limit is reached",
                        )
                        .with_delivery(Delivery::NotSent),
                    ),
                },
            };
        if !self.cached.as_ref().is_some_and(|c| c.is_usable()) {
            self.cached = match &*self.handle.shared.lock() {
                Slot::Ready(c) if c.is_usable() => Some(c.clone()),
                _ => None,
            };
        }
        start(&self.handle, self.cached.as_ref(), request, permit)
    }
}

/// The deadline a call runs under: the earliest of its own, the channel's default timeout and the
/// deadline of the call being handled by this task.
fn effective_deadline(
    config: &ChannelConfig,
    request: &Request,
    inherited: Option<Instant>,
) -> Option<Instant> {
    let from_config = config.timeout.map(|t| Instant::now() + t);
    [request.deadline(), from_config, inherited]
        .into_iter()
        .flatten()
        .min()
}

/// Starts a call, tied to the cancellation of the call being handled here, if any (see
/// [`Context`](crate::Context#cancellation)).
fn start(
    handle: &Arc<Handle>,
    cached: Option<&Arc<ClientConn>>,
    request: Request,
    permit: Permit,
) -> ResponseFuture {
    // One look-up of the task-local context for both what a call inherits.
    let (inherited, cancel) = CallContext::current_deadline_and_cancellation();
    if cancel.as_ref().is_some_and(|t| t.is_cancelled()) {
        return ResponseFuture::failed(cascaded(Delivery::NotSent));
    }
    start_call(handle, cached, request, permit, inherited).cancelled_by(cancel)
}

fn start_call(
    handle: &Arc<Handle>,
    cached: Option<&Arc<ClientConn>>,
    request: Request,
    permit: Permit,
    inherited: Option<Instant>,
) -> ResponseFuture {
    let shared = &handle.shared;
    let deadline = effective_deadline(&shared.config, &request, inherited);
    let now = Instant::now();
    if deadline.is_some_and(|d| d <= now) {
        return ResponseFuture::failed(
            Status::deadline_exceeded("deadline passed before the call was sent")
                .with_delivery(Delivery::NotSent),
        );
    }
    if let Some(conn) = cached.filter(|c| c.is_usable()) {
        match conn.start(&request, timeout_us(deadline, now), None) {
            Ok(Started::Queued(queued)) => {
                return ResponseFuture::started(conn.clone(), queued, permit, deadline, &request)
            }
            Ok(Started::Full) if !shared.config.wait_for_write_capacity => {
                return ResponseFuture::failed(conn.full_status())
            }
            // No room: the slow path waits for it.
            Ok(Started::Full) => {}
            // The connection stopped taking calls under us: take the slow path to a new one.
            Err(s) if s.code() == Code::Unavailable && s.delivery() == Delivery::NotSent => {}
            Err(s) => return ResponseFuture::failed(s),
        }
    }
    ResponseFuture::connecting(handle.clone(), request, permit, deadline)
}
