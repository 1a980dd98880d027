//! The queue of frames that other tasks (callers, spawned handlers) encode for a connection's
//! driver, and how the driver takes them: the whole batch is swapped into the write buffer once the
//! socket has drained the previous one, never copied behind a partial write.

use std::task::{Context, Waker};

use bytes::BytesMut;

use super::{FrameIo, IDLE_BUFFER};

/// Encoded frames waiting for the driver, and the driver's waker.
///
/// It is not locked by itself: each side keeps it inside the mutex that also guards what must
/// change atomically with it (the client's pending calls, the server's finished handlers).
#[derive(Debug)]
pub(crate) struct WriteQueue {
    out: BytesMut,
    writer: Option<Waker>,
}

/// What [`WriteQueue::take_into`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Take {
    /// Nothing was queued; the driver's waker is registered for the next frame.
    Empty,
    /// The queued batch is now the write buffer.
    Taken,
    /// The socket is still writing the previous batch. The queued one stays whole and is taken
    /// once the socket drains (the driver is polled again when it does).
    Busy,
}

impl WriteQueue {
    pub(crate) fn with_capacity(capacity: usize) -> WriteQueue {
        WriteQueue {
            out: BytesMut::with_capacity(capacity),
            writer: None,
        }
    }

    /// The buffer to encode frames into. After encoding, call [`WriteQueue::writer`] and wake what
    /// it returns once the lock is released.
    pub(crate) fn buf(&mut self) -> &mut BytesMut {
        &mut self.out
    }

    /// The driver's waker, if it is parked waiting for frames (taken: it is woken once).
    pub(crate) fn writer(&mut self) -> Option<Waker> {
        self.writer.take()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.out.is_empty()
    }

    /// Bytes queued and not yet taken by the driver.
    pub(crate) fn len(&self) -> usize {
        self.out.len()
    }

    /// Gives back the buffer when it is empty and larger than [`IDLE_BUFFER`] (a connection with
    /// nothing in flight).
    pub(crate) fn shrink_idle(&mut self) {
        if self.out.is_empty() && self.out.capacity() > IDLE_BUFFER {
            self.out = BytesMut::new();
        }
    }

    /// Drops everything queued and the parked waker (the connection is gone).
    pub(crate) fn clear(&mut self) {
        self.out.clear();
        self.writer = None;
    }

    /// Moves the queued batch into `io`'s write buffer when that is empty (a swap, not a copy), or
    /// parks `cx`'s waker when nothing is queued.
    pub(crate) fn take_into(&mut self, io: &mut FrameIo, cx: &mut Context<'_>) -> Take {
        if self.out.is_empty() {
            if !self
                .writer
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker()))
            {
                self.writer = Some(cx.waker().clone());
            }
            Take::Empty
        } else if io.write_pending() == 0 {
            std::mem::swap(io.wbuf(), &mut self.out);
            Take::Taken
        } else {
            Take::Busy
        }
    }
}
