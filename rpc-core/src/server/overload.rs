//! Shedding on queue delay ([`Server::max_queue_delay`](super::Server::max_queue_delay)): how
//! long a call waited before a handler could start, measured before any handler or layer sees it.
//!
//! A call's wait has two parts, added up:
//! - **behind the calls read with it**: from the read that brought its frame (stamped once per
//!   read batch, [`ReadBatch`]) to the moment it would be handed to its handler. Handlers that
//!   finish in their first poll run on the connection's task, so a batch of them is a queue.
//! - **for a busy runtime**: before that read, the connection's task waited to be scheduled. That
//!   wait is invisible to the connection itself, so a probe task measures it server-wide: it
//!   yields and times how long the runtime takes to run it again ([`Lag`]). A probe that is
//!   overdue right now counts as late by as much, so a stalled runtime shows at once.
//!
//! Time spent in the kernel's socket buffers and in the client is not seen by either.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::time::Instant;

/// Tokio's timers fire on millisecond ticks: a sleeping probe is late only past this much.
const TIMER_SLACK: Duration = Duration::from_millis(1);
/// The probe's rhythm: often enough to see a recovery within a fraction of the limit.
const PROBE_MIN: Duration = Duration::from_millis(1);
const PROBE_MAX: Duration = Duration::from_millis(10);

/// Server-wide shedding on queue delay: the limit, and the runtime's scheduling delay.
pub(crate) struct Overload {
    max_delay: Option<Duration>,
    lag: Arc<Lag>,
}

impl Overload {
    /// With `max_delay` set, spawns the probe that measures the runtime's scheduling delay; it
    /// ends on its own once this value is dropped. Must run inside a tokio runtime.
    pub(crate) fn new(max_delay: Option<Duration>) -> Overload {
        let lag = Arc::new(Lag::new());
        if let Some(max) = max_delay {
            let period = (max / 4).clamp(PROBE_MIN, PROBE_MAX);
            tokio::spawn(probe(Arc::downgrade(&lag), period));
        }
        Overload { max_delay, lag }
    }

    /// The limit on a call's wait, if any.
    pub(crate) fn max_delay(&self) -> Option<Duration> {
        self.max_delay
    }

    /// Stamps a read batch: now, and how long a task waits for the runtime at this moment.
    pub(crate) fn stamp(&self) -> ReadBatch {
        let read_at = Instant::now();
        let waited_before = match self.max_delay {
            Some(_) => self.lag.current(read_at),
            None => Duration::ZERO,
        };
        ReadBatch {
            read_at,
            waited_before,
        }
    }
}

/// When the frames of one read arrived, for the deadlines and queue delays of their calls.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadBatch {
    /// When the read returned: deadlines count from here (`docs/protocol.md` §5).
    pub(crate) read_at: Instant,
    /// How long the connection's task likely waited for the runtime before that read.
    waited_before: Duration,
}

impl ReadBatch {
    /// A stamp for a connection that has read nothing yet.
    pub(crate) fn new() -> ReadBatch {
        ReadBatch {
            read_at: Instant::now(),
            waited_before: Duration::ZERO,
        }
    }

    /// How long a call of this batch has waited for its handler, at `now`.
    pub(crate) fn queue_delay(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.read_at) + self.waited_before
    }

    /// The deadline of a call of this batch with a `timeout_us` of its REQUEST; `None` for 0 (no
    /// deadline) or one too far away to represent (never a panic on the peer's number).
    pub(crate) fn deadline(&self, timeout_us: u64) -> Option<Instant> {
        if timeout_us == 0 {
            return None;
        }
        self.read_at.checked_add(Duration::from_micros(timeout_us))
    }
}

/// The runtime's scheduling delay, as the probe last measured it.
struct Lag {
    epoch: Instant,
    /// The last measured delay, in microseconds.
    last_us: AtomicU64,
    /// Since when (microseconds after `epoch`) the probe has been due to run and has not: it is
    /// late by `now - due`. `u64::MAX` while it runs.
    due_us: AtomicU64,
}

impl Lag {
    fn new() -> Lag {
        Lag {
            epoch: Instant::now(),
            last_us: AtomicU64::new(0),
            due_us: AtomicU64::new(u64::MAX),
        }
    }

    fn micros(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.epoch).as_micros()).unwrap_or(u64::MAX)
    }

    /// The delay a task woken at `now` should expect: the last measure, or how late the probe is
    /// right now if that is more.
    fn current(&self, now: Instant) -> Duration {
        let last = self.last_us.load(Ordering::Relaxed);
        let late = self
            .micros(now)
            .saturating_sub(self.due_us.load(Ordering::Relaxed));
        Duration::from_micros(last.max(late))
    }

    fn due_at(&self, t: Instant) {
        self.due_us.store(self.micros(t), Ordering::Relaxed);
    }

    fn record(&self, delay: Duration) {
        let us = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
        self.last_us.store(us, Ordering::Relaxed);
        self.due_us.store(u64::MAX, Ordering::Relaxed);
    }
}

/// Every `period`: yields once and records how long the runtime took to run this task again.
async fn probe(lag: Weak<Lag>, period: Duration) {
    loop {
        let wake = Instant::now() + period;
        match lag.upgrade() {
            Some(l) => l.due_at(wake + TIMER_SLACK),
            None => return,
        }
        tokio::time::sleep_until(wake).await;
        let yielded = Instant::now();
        match lag.upgrade() {
            Some(l) => l.due_at(yielded),
            None => return,
        }
        tokio::task::yield_now().await;
        match lag.upgrade() {
            Some(l) => l.record(yielded.elapsed()),
            None => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_late_probe_counts_as_late_as_it_is() {
        let lag = Lag::new();
        let t0 = Instant::now();
        assert_eq!(lag.current(t0), Duration::ZERO);
        lag.due_at(t0 + Duration::from_millis(2));
        assert_eq!(lag.current(t0 + Duration::from_millis(1)), Duration::ZERO);
        assert_eq!(
            lag.current(t0 + Duration::from_millis(7)),
            Duration::from_millis(5)
        );
        lag.record(Duration::from_millis(3));
        assert_eq!(
            lag.current(t0 + Duration::from_secs(1)),
            Duration::from_millis(3)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_probe_sees_a_stalled_runtime_at_once() {
        use std::future::Future;

        let overload = Overload::new(Some(Duration::from_millis(8)));
        // Let the probe start and sleep (a 2 ms period).
        tokio::time::sleep(Duration::from_millis(1)).await;
        // This task holds the (only) thread while 50 ms pass: the probe is overdue meanwhile.
        let mut stall = std::pin::pin!(tokio::time::advance(Duration::from_millis(50)));
        let _ = stall
            .as_mut()
            .poll(&mut std::task::Context::from_waker(std::task::Waker::noop()));
        let batch = overload.stamp();
        assert!(
            batch.waited_before >= Duration::from_millis(45),
            "{batch:?}"
        );
    }

    #[test]
    fn deadlines_count_from_the_read() {
        let batch = ReadBatch::new();
        assert_eq!(batch.deadline(0), None);
        assert_eq!(
            batch.deadline(1_500),
            Some(batch.read_at + Duration::from_micros(1_500))
        );
        // Far beyond any real deadline, and no panic.
        assert!(batch.deadline(u64::MAX).is_none_or(|d| d > batch.read_at));
    }
}
