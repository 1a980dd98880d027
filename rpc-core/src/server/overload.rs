//! Shedding on queue delay ([`Server::max_queue_delay`](super::Server::max_queue_delay)): how
//! long a call waited before a handler could start, measured before any handler or layer sees it.
//!
//! A call's wait has three parts, added up:
//! - **behind the calls read with it**: from the read that brought its frame (stamped once per
//!   read batch, [`ReadBatch`]) to the moment it would be handed to its handler. Handlers that
//!   finish in their first poll run on the connection's task, so a batch of them is a queue.
//! - **before that read**: if the connection had not found its socket empty since its previous
//!   read, the frame arrived while the previous batch was being handled, so it may have waited in
//!   the socket buffers as long as that took: the time since the previous read counts (an upper
//!   bound, as CoDel counts a packet's whole sojourn). After a read that emptied the socket, the
//!   frame arrived while the connection's task waited to be woken and scheduled. That wait is
//!   invisible to the connection itself, so a probe task measures it server-wide: it yields and
//!   times how long the runtime takes to run it again ([`Lag`]). A probe that is overdue right now
//!   counts as late by as much, so a stalled runtime shows at once.
//! - **ahead of it, once it leaves the connection**: a handler still pending after its first poll
//!   moves to its own task, which the runtime runs after the tasks already queued. The server
//!   counts the handler tasks spawned and not yet run, and learns from each how long every task
//!   queued ahead of it delayed it ([`SpawnQueue`]); their product is the wait a new one would
//!   add. This is what keeps a burst of handlers that await from being admitted all at once, only
//!   to wait behind each other.
//!
//! Time the client took to write a frame is not seen.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
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
    spawned: Arc<SpawnQueue>,
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
        Overload {
            max_delay,
            lag,
            spawned: Arc::new(SpawnQueue::default()),
        }
    }

    /// The limit on a call's wait, if any.
    pub(crate) fn max_delay(&self) -> Option<Duration> {
        self.max_delay
    }

    /// Stamps a read batch: now, and how long its frames may have waited before it. `previous`
    /// is the read before, when the socket was not found empty since: its frames arrived while
    /// that batch was handled. Otherwise they arrived while the connection's task waited for the
    /// runtime, as long as a task waits at this moment.
    pub(crate) fn stamp(&self, previous: Option<&ReadBatch>) -> ReadBatch {
        let read_at = Instant::now();
        let waited_before = match (self.max_delay, previous) {
            (None, _) => Duration::ZERO,
            (Some(_), Some(p)) => read_at.saturating_duration_since(p.read_at),
            (Some(_), None) => self.lag.current(read_at),
        };
        ReadBatch {
            read_at,
            waited_before,
        }
    }

    /// Whether a call of `batch` has waited, or would wait on its own task, longer than the
    /// limit at `now`. Always `false` without a limit.
    pub(crate) fn over_limit(&self, batch: &ReadBatch, now: Instant) -> bool {
        self.max_delay
            .is_some_and(|max| batch.queue_delay(now) + self.spawned.expected() > max)
    }

    /// Counts a handler task about to be spawned until it first runs, with a limit set; `None`
    /// (and no clock read) without.
    pub(crate) fn spawn_ticket(&self) -> Option<SpawnTicket> {
        self.max_delay?;
        let ahead = self.spawned.waiting.fetch_add(1, Ordering::Relaxed);
        Some(SpawnTicket {
            queue: self.spawned.clone(),
            spawned_at: Instant::now(),
            ahead,
            done: false,
        })
    }
}

/// Handler tasks spawned and not yet run, and what each costs a task queued behind it.
#[derive(Default)]
struct SpawnQueue {
    waiting: AtomicUsize,
    /// How long one task queued ahead delays a new one, in nanoseconds: a moving average
    /// (weight 1/8) of each task's wait divided by the tasks that were ahead of it (at least
    /// one: a task with none ahead waited for the runtime's other work).
    per_task_ns: AtomicU64,
}

impl SpawnQueue {
    /// The wait a handler task spawned now would likely have before it runs.
    fn expected(&self) -> Duration {
        let waiting = self.waiting.load(Ordering::Relaxed) as u64;
        if waiting == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(waiting.saturating_mul(self.per_task_ns.load(Ordering::Relaxed)))
    }

    fn learn(&self, waited: Duration, ahead: usize) {
        let sample = u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX) / (ahead.max(1) as u64);
        let old = self.per_task_ns.load(Ordering::Relaxed);
        // Races between tasks lose a sample at worst.
        let new = if old == 0 {
            sample
        } else {
            old - old / 8 + sample / 8
        };
        self.per_task_ns.store(new, Ordering::Relaxed);
    }
}

/// A spawned handler task, counted as waiting for the runtime until [`started`](Self::started)
/// or dropped (aborted before it ran).
pub(crate) struct SpawnTicket {
    queue: Arc<SpawnQueue>,
    spawned_at: Instant,
    ahead: usize,
    done: bool,
}

impl SpawnTicket {
    /// The task runs: learns how long it waited.
    pub(crate) fn started(mut self) {
        self.queue.learn(self.spawned_at.elapsed(), self.ahead);
        self.done = true;
        self.queue.waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Drop for SpawnTicket {
    fn drop(&mut self) {
        if !self.done {
            self.queue.waiting.fetch_sub(1, Ordering::Relaxed);
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

/// How many of the probe's last measures count: the runtime's delay is the least of them, so a
/// probe that happened to wait behind one busy task does not make the runtime look slow (CoDel
/// looks at the minimum delay over an interval for the same reason: a standing queue, not a
/// burst, is what shedding should answer).
const LAG_WINDOW: usize = 4;

/// The runtime's scheduling delay, as the probe measured it lately.
struct Lag {
    epoch: Instant,
    /// The last `LAG_WINDOW` measures, in microseconds, written in turn.
    recent_us: [AtomicU64; LAG_WINDOW],
    next: AtomicUsize,
    /// Since when (microseconds after `epoch`) the probe has been due to run and has not: it is
    /// late by `now - due`. `u64::MAX` while it runs.
    due_us: AtomicU64,
}

impl Lag {
    fn new() -> Lag {
        Lag {
            epoch: Instant::now(),
            recent_us: Default::default(),
            next: AtomicUsize::new(0),
            due_us: AtomicU64::new(u64::MAX),
        }
    }

    fn micros(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.epoch).as_micros()).unwrap_or(u64::MAX)
    }

    /// The delay a task woken at `now` should expect: the least of the recent measures, or how
    /// late the probe is right now if that is more.
    fn current(&self, now: Instant) -> Duration {
        let standing = self
            .recent_us
            .iter()
            .map(|m| m.load(Ordering::Relaxed))
            .min()
            .unwrap_or(0);
        let late = self
            .micros(now)
            .saturating_sub(self.due_us.load(Ordering::Relaxed));
        Duration::from_micros(standing.max(late))
    }

    fn due_at(&self, t: Instant) {
        self.due_us.store(self.micros(t), Ordering::Relaxed);
    }

    fn record(&self, delay: Duration) {
        let us = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
        // Only the probe writes: no two records race.
        let i = self.next.fetch_add(1, Ordering::Relaxed) % LAG_WINDOW;
        self.recent_us[i].store(us, Ordering::Relaxed);
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
        // One slow measure among fast ones is a burst, not a standing delay; a window of slow
        // measures is.
        lag.record(Duration::from_millis(3));
        assert_eq!(lag.current(t0 + Duration::from_secs(1)), Duration::ZERO);
        for _ in 1..LAG_WINDOW {
            lag.record(Duration::from_millis(3));
        }
        assert_eq!(
            lag.current(t0 + Duration::from_secs(1)),
            Duration::from_millis(3)
        );
        lag.record(Duration::from_micros(100));
        assert_eq!(
            lag.current(t0 + Duration::from_secs(1)),
            Duration::from_micros(100)
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
        let batch = overload.stamp(None);
        assert!(
            batch.waited_before >= Duration::from_millis(45),
            "{batch:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_read_that_did_not_empty_the_socket_counts_the_time_since_the_previous_one() {
        let overload = Overload::new(Some(Duration::from_millis(5)));
        let first = overload.stamp(None);
        tokio::time::advance(Duration::from_millis(3)).await;
        // The socket was not found empty in between: the frames of this read may have waited
        // the whole 3 ms behind the first batch.
        let second = overload.stamp(Some(&first));
        assert_eq!(second.waited_before, Duration::from_millis(3));
        assert_eq!(
            second.queue_delay(second.read_at + Duration::from_millis(1)),
            Duration::from_millis(4)
        );
        assert!(!overload.over_limit(&second, second.read_at + Duration::from_millis(2)));
        assert!(overload.over_limit(&second, second.read_at + Duration::from_millis(3)));
        // Without a limit nothing is measured.
        let unlimited = Overload::new(None);
        let later = unlimited.stamp(Some(&first));
        assert_eq!(later.waited_before, Duration::ZERO);
        assert!(!unlimited.over_limit(&later, later.read_at + Duration::from_secs(9)));
    }

    #[tokio::test(start_paused = true)]
    async fn spawned_handlers_waiting_for_the_runtime_count_against_a_new_one() {
        let overload = Overload::new(Some(Duration::from_millis(10)));
        // Nothing learnt yet: no wait expected, however many are queued.
        let a = overload.spawn_ticket().unwrap();
        let b = overload.spawn_ticket().unwrap();
        let c = overload.spawn_ticket().unwrap();
        assert_eq!(overload.spawned.expected(), Duration::ZERO);
        // They run 2 ms apart: `c` had two ahead of it and waited 4 ms, 2 ms for each.
        a.started();
        tokio::time::advance(Duration::from_millis(2)).await;
        b.started();
        tokio::time::advance(Duration::from_millis(2)).await;
        c.started();
        assert_eq!(
            overload.spawned.per_task_ns.load(Ordering::Relaxed),
            2_000_000
        );
        assert_eq!(overload.spawned.waiting.load(Ordering::Relaxed), 0);
        // Four queued now: a fifth would wait about 8 ms, so a call that already waited 3 ms
        // would be over the 10 ms limit, one that waited 1 ms not.
        let queued: Vec<_> = (0..4).map(|_| overload.spawn_ticket().unwrap()).collect();
        assert_eq!(overload.spawned.expected(), Duration::from_millis(8));
        let batch = overload.stamp(None);
        assert!(!overload.over_limit(&batch, batch.read_at + Duration::from_millis(1)));
        assert!(overload.over_limit(&batch, batch.read_at + Duration::from_millis(3)));
        // Tasks aborted before they ran stop counting.
        drop(queued);
        assert_eq!(overload.spawned.expected(), Duration::ZERO);
        assert!(Overload::new(None).spawn_ticket().is_none());
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
