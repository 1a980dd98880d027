//! [`Channel`]: the cloneable client handle, a `tower::Service` over one multiplexed connection.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use tokio::sync::oneshot;
use tokio::time::{Instant, Sleep};

use super::connection::{ClientConn, ClientDriver, Keepalive, Reply, Started};
use super::endpoint::{ChannelConfig, Endpoint};
use crate::conn::client_handshake;
use crate::context::Context as CallContext;
use crate::limit::{Limiter, Permit};
use crate::message::{Request, Response};
use crate::status::{Code, Delivery, Status};
use crate::transport::Connector;

/// A cheap-to-clone handle for making calls to one server over one multiplexed connection.
///
/// It connects on first use, reconnects after a loss (with exponential backoff and jitter, failing
/// calls fast with `Unavailable` while it waits), and is a `tower::Service<Request>` whose
/// `poll_ready` waits while the in-flight limit is reached. A call made while handling another
/// inherits that call's remaining deadline.
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

/// What the connection slot of a channel holds.
#[derive(Debug)]
enum Slot {
    Idle {
        failures: u32,
    },
    Connecting {
        waiters: Vec<Waker>,
    },
    Ready(Arc<ClientConn>),
    Backoff {
        until: Instant,
        failures: u32,
        error: Status,
    },
    Shutdown,
}

/// The connection state of a [`Channel`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChannelState {
    /// Not connected; the next call connects.
    Idle,
    /// A connection attempt is under way.
    Connecting,
    /// Connected and taking calls.
    Ready,
    /// The last attempt failed; calls fail fast until the backoff ends.
    TransientFailure,
}

#[derive(Debug)]
struct Shared {
    connector: Arc<dyn Connector>,
    config: ChannelConfig,
    limiter: Arc<Limiter>,
    slot: Mutex<Slot>,
}

/// Every `Channel` clone holds one; when the last goes, the connection drains and closes.
#[derive(Debug)]
struct Handle {
    shared: Arc<Shared>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        let old = std::mem::replace(&mut *self.shared.lock(), Slot::Shutdown);
        if let Slot::Ready(conn) = old {
            conn.drain();
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The live connection, connecting (and parking `cx`) when there is none.
    fn poll_conn(self: &Arc<Self>, cx: &mut Context<'_>) -> Poll<Result<Arc<ClientConn>, Status>> {
        let mut slot = self.lock();
        loop {
            match &mut *slot {
                Slot::Ready(conn) if conn.is_usable() => return Poll::Ready(Ok(conn.clone())),
                Slot::Ready(_) => *slot = Slot::Idle { failures: 0 },
                Slot::Idle { failures } => {
                    let failures = *failures;
                    *slot = Slot::Connecting {
                        waiters: vec![cx.waker().clone()],
                    };
                    tokio::spawn(connect(self.clone(), failures));
                    return Poll::Pending;
                }
                Slot::Connecting { waiters } => {
                    if !waiters.iter().any(|w| w.will_wake(cx.waker())) {
                        waiters.push(cx.waker().clone());
                    }
                    return Poll::Pending;
                }
                Slot::Backoff {
                    until,
                    failures,
                    error,
                } => {
                    if Instant::now() < *until {
                        return Poll::Ready(Err(error.clone()));
                    }
                    *slot = Slot::Idle {
                        failures: *failures,
                    };
                }
                Slot::Shutdown => {
                    return Poll::Ready(Err(Status::unavailable("channel is shut down")
                        .with_delivery(Delivery::NotSent)))
                }
            }
        }
    }

    fn state(&self) -> ChannelState {
        match &*self.lock() {
            Slot::Ready(c) if c.is_usable() => ChannelState::Ready,
            Slot::Ready(_) | Slot::Idle { .. } | Slot::Shutdown => ChannelState::Idle,
            Slot::Connecting { .. } => ChannelState::Connecting,
            Slot::Backoff { .. } => ChannelState::TransientFailure,
        }
    }
}

/// One connection attempt: transport, handshake, then the driver is spawned and waiters woken.
async fn connect(shared: Arc<Shared>, failures: u32) {
    let local = shared.config.local_settings();
    let attempt = async {
        let (io, peer) = shared.connector.connect().await?;
        let (io, peer_settings) = client_handshake(io, &local).await?;
        Ok::<_, crate::protocol::ProtocolError>((io, peer, peer_settings))
    };
    let result = match tokio::time::timeout(shared.config.connect_timeout, attempt).await {
        Ok(Ok(ok)) => Ok(ok),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!(
            "timed out after {:?}",
            shared.config.connect_timeout
        )),
    };
    let target = shared.connector.target();
    let (next, conn) = match result {
        Ok((io, peer, peer_settings)) => {
            tracing::debug!(%target, %peer, "connected");
            let compress = shared.config.compression_for(&peer_settings);
            let conn = ClientConn::new(peer, peer_settings, compress);
            let max_body = local.max_frame_size as usize;
            let keepalive = shared
                .config
                .keepalive
                .map(|(interval, timeout)| Keepalive::new(interval, timeout));
            tokio::spawn(ClientDriver::new(conn.clone(), io, max_body, keepalive));
            shared.limiter.set_limit(
                shared
                    .config
                    .max_concurrent_calls
                    .min(peer_settings.max_concurrent_calls as usize),
            );
            (Slot::Ready(conn.clone()), Some(conn))
        }
        Err(e) => {
            let wait = shared.config.backoff(failures);
            tracing::warn!(%target, error = %e, retry_in = ?wait, "connect failed");
            let error = Status::unavailable(format!("cannot connect to {target}: {e}"))
                .with_delivery(Delivery::NotSent);
            (
                Slot::Backoff {
                    until: Instant::now() + wait,
                    failures: failures.saturating_add(1),
                    error,
                },
                None,
            )
        }
    };
    let mut slot = shared.lock();
    if matches!(*slot, Slot::Shutdown) {
        drop(slot);
        if let Some(conn) = conn {
            conn.drain();
        }
        return;
    }
    let old = std::mem::replace(&mut *slot, next);
    drop(slot);
    if let Slot::Connecting { waiters } = old {
        for w in waiters {
            w.wake();
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

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        if self.permit.is_none() {
            let permit = std::task::ready!(self.handle.shared.limiter.poll_acquire(cx));
            self.permit = Some(permit);
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
fn effective_deadline(config: &ChannelConfig, request: &Request) -> Option<Instant> {
    let from_config = config.timeout.map(|t| Instant::now() + t);
    [
        request.deadline(),
        from_config,
        CallContext::current_deadline(),
    ]
    .into_iter()
    .flatten()
    .min()
}

fn timeout_us(deadline: Option<Instant>, now: Instant) -> u64 {
    deadline.map_or(0, |d| {
        let left = d.saturating_duration_since(now);
        u64::try_from(left.as_micros()).unwrap_or(u64::MAX).max(1)
    })
}

fn start(
    handle: &Arc<Handle>,
    cached: Option<&Arc<ClientConn>>,
    request: Request,
    permit: Permit,
) -> ResponseFuture {
    let shared = &handle.shared;
    let deadline = effective_deadline(&shared.config, &request);
    let now = Instant::now();
    if deadline.is_some_and(|d| d <= now) {
        return ResponseFuture::failed(
            Status::deadline_exceeded("deadline passed before the call was sent")
                .with_delivery(Delivery::NotSent),
        );
    }
    if let Some(conn) = cached.filter(|c| c.is_usable()) {
        match conn.start(&request, timeout_us(deadline, now)) {
            Ok(started) => {
                return ResponseFuture::started(conn.clone(), started, permit, deadline, &request)
            }
            // The connection stopped taking calls under us: take the slow path to a new one.
            Err(s) if s.code() == Code::Unavailable && s.delivery() == Delivery::NotSent => {}
            Err(s) => return ResponseFuture::failed(s),
        }
    }
    ResponseFuture {
        state: State::Connecting {
            start: Box::new(Connecting {
                shared: shared.clone(),
                request: Some(request),
                permit: Some(permit),
                deadline,
                sleep: deadline.map(|d| Box::pin(tokio::time::sleep_until(d))),
                attempts: 0,
            }),
        },
    }
}

/// Removes the call from its connection (and tells the server) unless it completed; records the
/// outcome on the call's span.
#[derive(Debug)]
struct CallGuard {
    conn: Arc<ClientConn>,
    id: u32,
    armed: bool,
    _permit: Permit,
    span: tracing::Span,
    started: Option<Instant>,
}

impl CallGuard {
    fn finish(&mut self, reply: &Reply) {
        self.armed = false;
        self.record(match reply {
            Ok(_) => Code::Ok,
            Err(s) => s.code(),
        });
    }

    /// Records the outcome once; later calls do nothing.
    fn record(&mut self, code: Code) {
        if let Some(t0) = self.started.take() {
            self.span.record("status", code.as_str());
            self.span
                .record("duration_us", t0.elapsed().as_micros() as u64);
            let _enter = self.span.enter();
            tracing::debug!("call finished");
        }
    }
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        if self.armed {
            self.record(Code::Cancelled);
            self.conn.cancel(self.id);
        }
    }
}

/// The slow path of a call: waiting for a connection.
#[derive(Debug)]
struct Connecting {
    shared: Arc<Shared>,
    request: Option<Request>,
    permit: Option<Permit>,
    deadline: Option<Instant>,
    sleep: Option<Pin<Box<Sleep>>>,
    attempts: u8,
}

pin_project_lite::pin_project! {
    /// The future of one call made through a [`Channel`].
    #[derive(Debug)]
    pub struct ResponseFuture {
        #[pin]
        state: State,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    #[derive(Debug)]
    enum State {
        Waiting { rx: oneshot::Receiver<Reply>, guard: CallGuard },
        WaitingUntil { rx: oneshot::Receiver<Reply>, guard: CallGuard, #[pin] sleep: Sleep },
        Connecting { start: Box<Connecting> },
        Done { result: Option<Reply> },
    }
}

impl ResponseFuture {
    fn failed(status: Status) -> ResponseFuture {
        ResponseFuture {
            state: State::Done {
                result: Some(Err(status)),
            },
        }
    }

    fn started(
        conn: Arc<ClientConn>,
        started: Started,
        permit: Permit,
        deadline: Option<Instant>,
        request: &Request,
    ) -> ResponseFuture {
        let state = match started {
            Started::OneWay => State::Done {
                result: Some(Ok(Response::default())),
            },
            Started::Waiting(id, rx) => {
                let span = tracing::debug_span!(
                    "rpc.client",
                    service = request.service(),
                    method = request.method(),
                    call_id = id,
                    peer = %conn.peer(),
                    status = tracing::field::Empty,
                    duration_us = tracing::field::Empty,
                );
                let started = (!span.is_disabled()).then(Instant::now);
                let guard = CallGuard {
                    conn,
                    id,
                    armed: true,
                    _permit: permit,
                    span,
                    started,
                };
                match deadline {
                    None => State::Waiting { rx, guard },
                    Some(d) => State::WaitingUntil {
                        rx,
                        guard,
                        sleep: tokio::time::sleep_until(d),
                    },
                }
            }
        };
        ResponseFuture { state }
    }
}

fn lost_reply() -> Status {
    Status::unavailable("connection closed before the call was answered")
}

fn deadline_status() -> Status {
    Status::deadline_exceeded("deadline passed while waiting for the response")
}

impl Future for ResponseFuture {
    type Output = Result<Response, Status>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let next = match self.as_mut().project().state.project() {
                StateProj::Waiting { rx, guard } => {
                    let reply = std::task::ready!(Pin::new(rx).poll(cx))
                        .unwrap_or_else(|_| Err(lost_reply()));
                    guard.finish(&reply);
                    return Poll::Ready(reply);
                }
                StateProj::WaitingUntil { rx, guard, sleep } => {
                    if let Poll::Ready(reply) = Pin::new(rx).poll(cx) {
                        let reply = reply.unwrap_or_else(|_| Err(lost_reply()));
                        guard.finish(&reply);
                        return Poll::Ready(reply);
                    }
                    std::task::ready!(sleep.poll(cx));
                    guard.record(Code::DeadlineExceeded);
                    // The guard cancels the call on the server as the state is replaced.
                    State::Done {
                        result: Some(Err(deadline_status())),
                    }
                }
                StateProj::Connecting { start } => match poll_connecting(start, cx) {
                    Poll::Ready(next) => next,
                    Poll::Pending => return Poll::Pending,
                },
                StateProj::Done { result } => {
                    return Poll::Ready(result.take().unwrap_or_else(|| {
                        Err(Status::internal("ResponseFuture polled after completion"))
                    }))
                }
            };
            self.as_mut().project().state.set(next);
        }
    }
}

fn poll_connecting(c: &mut Connecting, cx: &mut Context<'_>) -> Poll<State> {
    let done = |status: Status| {
        Poll::Ready(State::Done {
            result: Some(Err(status)),
        })
    };
    loop {
        if let Some(sleep) = c.sleep.as_mut() {
            if sleep.as_mut().poll(cx).is_ready() {
                return done(
                    Status::deadline_exceeded("deadline passed while connecting")
                        .with_delivery(Delivery::NotSent),
                );
            }
        }
        let conn = match std::task::ready!(c.shared.poll_conn(cx)) {
            Ok(conn) => conn,
            Err(status) => return done(status),
        };
        let (Some(request), Some(permit)) = (c.request.as_ref(), c.permit.take()) else {
            return done(Status::internal("call state lost"));
        };
        let now = Instant::now();
        match conn.start(request, timeout_us(c.deadline, now)) {
            Ok(started) => {
                return Poll::Ready(
                    ResponseFuture::started(conn, started, permit, c.deadline, request).state,
                )
            }
            Err(s)
                if s.code() == Code::Unavailable
                    && s.delivery() == Delivery::NotSent
                    && c.attempts < 3 =>
            {
                // Lost a race with a closing connection; the request never left, so try the next.
                c.attempts += 1;
                c.permit = Some(permit);
            }
            Err(s) => return done(s),
        }
    }
}
