//! [`ResponseFuture`]: one call through a [`Channel`](super::Channel), from waiting for a
//! connection to the reply, with its deadline and its cancellation when dropped.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::oneshot;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use super::connection::{ClientConn, Queued, Reply, Started};
use super::reconnect::Handle;
use crate::limit::Permit;
use crate::message::{Request, Response};
use crate::status::{Code, Delivery, Status};

/// The relative deadline sent on the wire: microseconds left, rounded up and at least 1; 0 for
/// none (`docs/protocol.md` §5).
pub(super) fn timeout_us(deadline: Option<Instant>, now: Instant) -> u64 {
    deadline.map_or(0, |d| {
        let left = d.saturating_duration_since(now);
        u64::try_from(left.as_nanos().div_ceil(1_000))
            .unwrap_or(u64::MAX)
            .max(1)
    })
}

/// Removes the call from its connection (and tells the server) unless it completed; records the
/// outcome on the call's span. A one-way call is never cancelled: once queued it is sent, and
/// dropping its future only stops waiting for the server to confirm it.
#[derive(Debug)]
struct CallGuard {
    conn: Arc<ClientConn>,
    id: u32,
    one_way: bool,
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
            if !self.one_way {
                self.conn.cancel(self.id);
            }
        }
    }
}

/// The slow path of a call: waiting for a connection.
#[derive(Debug)]
struct Connecting {
    /// Keeps the channel alive while the call waits, so that a call whose service was dropped
    /// after it was made (as `tower::util::Oneshot` does) still connects.
    handle: Arc<Handle>,
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
        // The token of the call being handled where this call was made: cancelled, this call
        // ends `Cancelled` (and the server is sent CANCEL).
        cancel: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
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
    /// A call that waits for a connection first.
    pub(super) fn connecting(
        handle: Arc<Handle>,
        request: Request,
        permit: Permit,
        deadline: Option<Instant>,
    ) -> ResponseFuture {
        ResponseFuture {
            state: State::Connecting {
                start: Box::new(Connecting {
                    handle,
                    request: Some(request),
                    permit: Some(permit),
                    deadline,
                    sleep: deadline.map(|d| Box::pin(tokio::time::sleep_until(d))),
                    attempts: 0,
                }),
            },
            cancel: None,
        }
    }

    pub(super) fn failed(status: Status) -> ResponseFuture {
        ResponseFuture {
            state: State::Done {
                result: Some(Err(status)),
            },
            cancel: None,
        }
    }

    /// A queued call. A one-way call waits, holding its in-flight slot, until the server proved it
    /// read the request (see [`Channel`](super::Channel)).
    pub(super) fn started(
        conn: Arc<ClientConn>,
        queued: Queued,
        permit: Permit,
        deadline: Option<Instant>,
        request: &Request,
    ) -> ResponseFuture {
        let Queued { id, rx, one_way } = queued;
        // Checked first, so that the fields are never computed for a span nobody wants (tracing's
        // `log` fallback would compute them whenever no subscriber is set).
        let enabled = tracing::enabled!(kind: tracing::metadata::Kind::SPAN, tracing::Level::DEBUG);
        let span = if !enabled {
            tracing::Span::none()
        } else {
            tracing::debug_span!(
            "rpc.client",
            service = request.service(),
            method = request.method(),
            call_id = id,
            peer = %conn.peer(),
            status = tracing::field::Empty,
            duration_us = tracing::field::Empty,
            )
        };
        let started = (!span.is_disabled()).then(Instant::now);
        let guard = CallGuard {
            conn,
            id,
            one_way,
            armed: true,
            _permit: permit,
            span,
            started,
        };
        let state = match deadline {
            None => State::Waiting { rx, guard },
            Some(d) => State::WaitingUntil {
                rx,
                guard,
                sleep: tokio::time::sleep_until(d),
            },
        };
        ResponseFuture {
            state,
            cancel: None,
        }
    }

    /// Ties the call to `token` (see [`Context`](crate::Context#cancellation)).
    pub(super) fn cancelled_by(mut self, token: Option<CancellationToken>) -> ResponseFuture {
        if !matches!(self.state, State::Done { .. }) {
            self.cancel = token.map(|t| Box::pin(t.cancelled_owned()));
        }
        self
    }
}

/// A call ended because the call it was made for was cancelled.
pub(super) fn cascaded(delivery: Delivery) -> Status {
    Status::new(
        Code::Cancelled,
        "cancelled with the call it was made for (its caller gave up or went away)",
    )
    .with_delivery(delivery)
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
        let mut this = self.as_mut().project();
        if let Some(cancel) = this.cancel {
            if cancel.as_mut().poll(cx).is_ready() {
                *this.cancel = None;
                let delivery = match &*this.state {
                    State::Connecting { .. } => Delivery::NotSent,
                    _ => Delivery::Sent,
                };
                if !matches!(&*this.state, State::Done { .. }) {
                    // Dropping the call's state tells the server (CANCEL), as a dropped call does.
                    this.state.set(State::Done {
                        result: Some(Err(cascaded(delivery))),
                    });
                }
            }
        }
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
                    Status::deadline_exceeded(
                        "deadline passed while connecting or waiting for room to send",
                    )
                    .with_delivery(Delivery::NotSent),
                );
            }
        }
        let conn = match std::task::ready!(c.handle.shared.poll_conn(cx)) {
            Ok(conn) => conn,
            Err(status) => return done(status),
        };
        let (Some(request), Some(permit)) = (c.request.as_ref(), c.permit.take()) else {
            return done(Status::internal("call state lost"));
        };
        let now = Instant::now();
        match conn.start(request, timeout_us(c.deadline, now), Some(cx)) {
            Ok(Started::Queued(queued)) => {
                return Poll::Ready(
                    ResponseFuture::started(conn, queued, permit, c.deadline, request).state,
                )
            }
            Ok(Started::Full) => {
                // Too many bytes wait to be written on this connection: wait for room (woken by
                // its driver), or fail at once when the endpoint says not to wait.
                if !c.handle.shared.config.wait_for_write_capacity {
                    return done(conn.full_status());
                }
                c.permit = Some(permit);
                return Poll::Pending;
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// `docs/protocol.md` §5: a remainder is rounded up, and 0 means "no deadline", so one under
    /// 1 µs, or a deadline that passed while the request waited, is sent as 1 µs, never as 0
    /// (issue 12, item 14).
    #[test]
    fn a_positive_remainder_is_never_sent_as_no_deadline() {
        let now = Instant::now();
        assert_eq!(timeout_us(None, now), 0);
        assert_eq!(timeout_us(Some(now + Duration::from_nanos(1)), now), 1);
        assert_eq!(timeout_us(Some(now + Duration::from_nanos(999)), now), 1);
        assert_eq!(
            timeout_us(Some(now + Duration::from_micros(1_500)), now),
            1_500
        );
        assert_eq!(timeout_us(Some(now + Duration::from_nanos(1_500)), now), 2);
        assert_eq!(timeout_us(Some(now), now + Duration::from_millis(1)), 1);
    }
}
