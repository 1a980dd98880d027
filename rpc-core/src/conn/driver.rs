//! The connection driver both sides run: one task per connection that writes what was queued,
//! reads what arrived and hands frames to its [`Role`], in passes until neither makes progress;
//! and, for a role that asks, a lingering close ([`Linger`]).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Sleep;

use super::FrameIo;
use crate::protocol::ProtocolError;

/// How many passes a driver makes over write and read before it yields to other tasks.
const DRIVER_SPINS: usize = 32;
/// Bytes waiting for the transport above which a driver stops taking more work.
pub(crate) const WRITE_HIGH_WATER: usize = 1 << 20;

/// What one side of a connection does with the driver's loop: the client routes responses to
/// waiting callers, the server runs handlers. Everything else (batching writes, reading in large
/// chunks, yielding, shutting the stream down) is the [`Driver`]'s.
pub(crate) trait Role {
    /// Timers and signals checked once per wake-up, before the passes: keepalive on the client,
    /// shutdown on the server. `Ready` ends the connection with that result; a role may also encode
    /// frames (a PING, a GOAWAY) into `io` here.
    fn poll_signals(
        &mut self,
        io: &mut FrameIo,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), ProtocolError>>;

    /// Moves frames other tasks queued into `io`'s write buffer (see
    /// [`WriteQueue`](super::WriteQueue)). Returns `true` when the connection has nothing left to
    /// do: it closes once the write buffer is written.
    fn take_out(&mut self, io: &mut FrameIo, cx: &mut Context<'_>) -> bool;

    /// `false` while the role wants no more input (its read side closed, or too much unwritten).
    fn wants_read(&self, io: &FrameIo) -> bool;

    /// Handles the frames now in `io`'s read buffer.
    fn on_frames(&mut self, io: &mut FrameIo, cx: &mut Context<'_>) -> Result<(), ProtocolError>;

    /// The peer closed its side of the stream between frames.
    fn on_eof(&mut self) -> Result<(), ProtocolError>;

    /// The connection ended, cleanly or with an error: settle what is still open.
    fn finish(&mut self, io: &mut FrameIo, cx: &mut Context<'_>, result: Result<(), ProtocolError>);

    /// How the connection closes once the role is done and everything is written: `None` closes
    /// at once; a [`Linger`] keeps reading (and discarding) after the write side is shut down.
    fn linger(&self) -> Option<Linger> {
        None
    }

    /// The driver has nothing more to do until it is woken; called once per wake-up, not per
    /// frame. A role may publish its buffer use, or give memory back when nothing is in flight.
    fn parked(&mut self, _io: &mut FrameIo) {}

    /// A read found the transport empty: every frame the peer sent so far has been handled.
    fn caught_up(&mut self) {}
}

/// A lingering close: after its last frame, a side shuts its write side down (the peer reads end
/// of stream after everything sent) and keeps reading and discarding until the peer's end of
/// stream, at most `max_bytes` or `max_time`, before it closes. Closing with the peer's bytes
/// unread would make the kernel reset the connection, and a reset can destroy what was sent last
/// (a GOAWAY, the last responses) before the peer reads it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Linger {
    pub(crate) max_bytes: usize,
    pub(crate) max_time: Duration,
}

/// A connection in its lingering close: what it may still read, and until when.
struct Lingering {
    left: usize,
    until: Pin<Box<Sleep>>,
}

/// One connection's task: a framed stream and the role that gives its frames meaning.
pub(crate) struct Driver<R> {
    io: FrameIo,
    role: R,
    lingering: Option<Lingering>,
}

impl<R: Role> Driver<R> {
    pub(crate) fn new(io: FrameIo, role: R) -> Driver<R> {
        Driver {
            io,
            role,
            lingering: None,
        }
    }

    fn poll_drive(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ProtocolError>> {
        if let Poll::Ready(result) = self.role.poll_signals(&mut self.io, cx) {
            return Poll::Ready(result);
        }
        if self.lingering.is_some() {
            return self.poll_linger(cx);
        }
        for _ in 0..DRIVER_SPINS {
            let mut progress = false;
            let done =
                self.io.write_pending() < WRITE_HIGH_WATER && self.role.take_out(&mut self.io, cx);
            if let Poll::Ready(wrote) = self.io.poll_write(cx)? {
                progress |= wrote;
            }
            if done && self.io.write_pending() == 0 {
                let _ = self.io.poll_shutdown(cx);
                return match self.role.linger() {
                    Some(l) if !self.io.read_closed() => {
                        self.lingering = Some(Lingering {
                            left: l.max_bytes,
                            until: Box::pin(tokio::time::sleep(l.max_time)),
                        });
                        self.poll_linger(cx)
                    }
                    _ => Poll::Ready(Ok(())),
                };
            }
            if self.role.wants_read(&self.io) {
                match self.io.poll_fill(cx)? {
                    Poll::Ready(true) => {
                        progress = true;
                        self.role.on_frames(&mut self.io, cx)?;
                    }
                    Poll::Ready(false) => {
                        progress = true;
                        self.role.on_eof()?;
                    }
                    Poll::Pending => self.role.caught_up(),
                }
            }
            if !progress {
                self.role.parked(&mut self.io);
                return Poll::Pending;
            }
        }
        // Still busy after every pass: let other tasks run, and come back.
        self.role.parked(&mut self.io);
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Reads and discards until the peer's end of stream, or a bound of the [`Linger`].
    fn poll_linger(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ProtocolError>> {
        let Some(l) = self.lingering.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        for _ in 0..DRIVER_SPINS {
            match self.io.poll_discard(cx) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(n)) if n >= l.left => {
                    tracing::debug!(read = n, "closing: the peer sent too much after our close");
                    return Poll::Ready(Ok(()));
                }
                Poll::Ready(Ok(n)) => l.left -= n,
                Poll::Pending => {
                    if l.until.as_mut().poll(cx).is_ready() {
                        tracing::debug!("closing: the peer did not close in time");
                        return Poll::Ready(Ok(()));
                    }
                    return Poll::Pending;
                }
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl<R: Role + Unpin> Future for Driver<R> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let result = std::task::ready!(this.poll_drive(cx));
        this.role.finish(&mut this.io, cx, result);
        Poll::Ready(())
    }
}
