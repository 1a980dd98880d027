//! What a server connection keeps track of besides its calls' routing: the output it holds for a
//! peer that may not be reading (and the high-water mark that stops it taking requests), the
//! memory it gives back when idle, its share of the server's stats, its calls' cancellation
//! tokens, and how it closes ([`SHUTDOWN_LINGER`]).

use std::sync::Arc;
use std::time::Duration;

use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;

use super::cancel::CallCancels;
use super::service::Reply;
use super::stats::ConnGauge;
use crate::conn::{FrameIo, IdMap, Linger, WRITE_HIGH_WATER};
use crate::status::Code;

/// After its go-away and last response, a server connection half-closes and reads (discarding)
/// until the client's end of stream, at most 4 MiB or 2 s, so that a client still sending does not
/// turn the close into a reset that destroys the go-away and the last responses.
pub(super) const SHUTDOWN_LINGER: Linger = Linger {
    max_bytes: 4 << 20,
    max_time: Duration::from_secs(2),
};

/// A connection's upkeep; see the module docs.
pub(super) struct ConnUpkeep {
    pub(super) cancels: Arc<CallCancels>,
    gauge: ConnGauge,
    /// Bytes queued by handlers that finished on their own tasks, as of the last `take_out`.
    queued: usize,
    /// The capacity of that queue, as of the last `take_out`.
    queued_capacity: usize,
    /// A handler moved to its own task since the connection was last idle: the maps of running
    /// calls may hold the memory of a peak.
    spawned: bool,
}

impl ConnUpkeep {
    /// The upkeep of a connection whose server cancels `draining` when it starts to shut down.
    pub(super) fn new(gauge: ConnGauge, draining: CancellationToken) -> ConnUpkeep {
        ConnUpkeep {
            cancels: Arc::new(CallCancels::new(draining)),
            gauge,
            queued: 0,
            queued_capacity: 0,
            spawned: false,
        }
    }

    /// Output encoded and not yet written: the write buffer and the replies queued by handlers
    /// on their own tasks.
    pub(super) fn unwritten(&self, io: &FrameIo) -> usize {
        io.write_pending() + self.queued
    }

    /// `true` while the connection must take no more requests: its unwritten output is over
    /// [`WRITE_HIGH_WATER`]. Checked before each frame, since one read can carry thousands of
    /// requests whose replies are each far larger.
    pub(super) fn over_high_water(&self, io: &FrameIo) -> bool {
        self.unwritten(io) >= WRITE_HIGH_WATER
    }

    /// What `take_out` saw of the queue of replies from handlers on their own tasks.
    pub(super) fn queue_seen(&mut self, len: usize, capacity: usize) {
        self.queued = len;
        self.queued_capacity = capacity;
    }

    /// A handler moved to its own task.
    pub(super) fn spawned(&mut self) {
        self.spawned = true;
    }

    /// Once per wake-up of the connection's task: publishes its figures and, with nothing in
    /// flight and nothing to write, gives the memory of a past peak back. `shrink_queue` gives
    /// back the queue of replies from handlers on their own tasks, and returns its capacity.
    pub(super) fn parked(
        &mut self,
        io: &mut FrameIo,
        running: &mut IdMap<AbortHandle>,
        shrink_queue: impl FnOnce() -> usize,
    ) {
        if running.is_empty() && io.write_pending() == 0 && self.queued == 0 {
            io.shrink_idle();
            if std::mem::take(&mut self.spawned) {
                if running.capacity() > 64 {
                    *running = IdMap::default();
                }
                self.cancels.shrink_idle();
                self.queued_capacity = shrink_queue();
            }
        }
        self.gauge
            .set(self.unwritten(io), io.buffer_bytes() + self.queued_capacity);
    }
}

/// Whether a call ended by its deadline: then its cancellation token, if any, is cancelled too
/// (the caller stopped waiting).
pub(super) fn expired(reply: &Reply) -> bool {
    matches!(reply, Err(s) if s.code() == Code::DeadlineExceeded)
}
