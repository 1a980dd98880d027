//! What a balanced channel knows of one endpoint's health, learned passively from its calls:
//!
//! - latency, as a peak EWMA of the round-trip time ([`PeakEwma`]);
//! - ejection: an endpoint that fails `eject_after` calls in a row (a call it did not answer
//!   before the call's deadline counts as failed), fails its probe, or whose connection attempt
//!   fails is left out for a while, each ejection in a row twice as long as the last (up to a
//!   cap; see `BalanceConfig::ejection`);
//! - probing: once its ejection is over, an endpoint takes one call whose outcome decides whether
//!   it comes back or is ejected again.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rpc_core::backoff::Backoff;
use rpc_core::{Code, Delivery, Status};
use tokio::time::Instant;

/// Locks `m`, ignoring poisoning: every update leaves the guarded state consistent.
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether a status says the endpoint itself is unwell (rather than the request being refused):
/// it failed, or it did not answer a call it was sent before the call's deadline. A frozen
/// backend that still accepts connections fails only in the second way. A call whose deadline
/// passed before it was sent (or while connecting: a failed connection counts by itself) says
/// nothing about the endpoint.
pub(super) fn endpoint_failed(status: &Status) -> bool {
    match status.code() {
        Code::Unavailable | Code::Unknown | Code::Internal | Code::DataLoss => true,
        Code::DeadlineExceeded => status.delivery() != Delivery::NotSent,
        _ => false,
    }
}

/// Whether an endpoint may take a call now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Availability {
    /// It takes calls.
    Available,
    /// Its ejection is over and no probe is in flight: it may take one probe call.
    Probe,
    /// Ejected (or its circuit breaker is open).
    Ejected,
}

/// Peak EWMA of an endpoint's round-trip time: a slow answer is believed at once, faster ones
/// pull the estimate down gradually, and the estimate of an idle endpoint decays towards zero so
/// that it gets tried again.
#[derive(Debug)]
pub(super) struct PeakEwma {
    /// The estimate in nanoseconds, and when it was last updated.
    state: Mutex<(f64, Instant)>,
}

impl PeakEwma {
    /// An estimate starting at `initial`.
    pub(super) fn new(initial: Duration) -> PeakEwma {
        PeakEwma {
            state: Mutex::new((initial.as_nanos() as f64, Instant::now())),
        }
    }

    /// The estimate at `now`, in nanoseconds: the last one, decayed by the idle time since.
    pub(super) fn estimate(&self, now: Instant, decay: Duration) -> f64 {
        let (ewma, at) = *lock(&self.state);
        let idle = now.saturating_duration_since(at).as_secs_f64();
        ewma * (-idle / decay.as_secs_f64()).exp()
    }

    /// Adds an answer that took `rtt`.
    pub(super) fn observe(&self, rtt: Duration, decay: Duration) {
        let mut g = lock(&self.state);
        let now = Instant::now();
        let rtt = rtt.as_nanos() as f64;
        let (ewma, at) = *g;
        let next = if rtt > ewma {
            // Peak sensitivity: a slow answer is believed at once.
            rtt
        } else {
            let w = (-now.saturating_duration_since(at).as_secs_f64() / decay.as_secs_f64()).exp();
            ewma * w + rtt * (1.0 - w)
        };
        *g = (next, now);
    }
}

/// The health of one endpoint: latency, failures in a row, ejection and probing.
#[derive(Debug)]
pub(super) struct Health {
    latency: PeakEwma,
    failures: AtomicU32,
    ejection: Mutex<Ejection>,
    /// `ejection.until.is_some()`, readable without the lock on every pick.
    ejected: AtomicBool,
    /// A probe call is in flight.
    probing: AtomicBool,
    /// Ejections since the endpoint was added.
    ejections: AtomicU64,
}

#[derive(Debug, Default)]
struct Ejection {
    /// When the current ejection ends.
    until: Option<Instant>,
    /// Ejections in a row, without a successful call between them.
    count: u32,
}

impl Health {
    /// A healthy endpoint whose latency estimate starts at `default_rtt`.
    pub(super) fn new(default_rtt: Duration) -> Health {
        Health {
            latency: PeakEwma::new(default_rtt),
            failures: AtomicU32::new(0),
            ejection: Mutex::new(Ejection::default()),
            ejected: AtomicBool::new(false),
            probing: AtomicBool::new(false),
            ejections: AtomicU64::new(0),
        }
    }

    /// The latency estimate.
    pub(super) fn latency(&self) -> &PeakEwma {
        &self.latency
    }

    /// Ejections since the endpoint was added.
    pub(super) fn ejections(&self) -> u64 {
        self.ejections.load(Ordering::Relaxed)
    }

    /// When the current ejection ends; `None` while the endpoint is not ejected.
    pub(super) fn ejected_until(&self) -> Option<Instant> {
        lock(&self.ejection).until
    }

    /// Whether the endpoint may take a call at `now`.
    pub(super) fn availability(&self, now: Instant) -> Availability {
        if !self.ejected.load(Ordering::Acquire) {
            return Availability::Available;
        }
        match lock(&self.ejection).until {
            None => Availability::Available,
            Some(t) if now >= t && !self.probing.load(Ordering::Acquire) => Availability::Probe,
            Some(_) => Availability::Ejected,
        }
    }

    /// Claims the probe call; `false` if another call already has it.
    pub(super) fn start_probe(&self) -> bool {
        self.probing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Releases the probe (a probe that was cancelled proves nothing: another call may probe).
    pub(super) fn end_probe(&self) {
        self.probing.store(false, Ordering::Release);
    }

    /// Records a call that failed because of the endpoint, and ejects it for the next period of
    /// `ejection` when it has failed `eject_after` calls in a row, its probe failed, or
    /// `connection_lost`.
    pub(super) fn failed(
        &self,
        addr: &str,
        eject_after: u32,
        ejection: &Backoff,
        connection_lost: bool,
    ) {
        let n = self.failures.fetch_add(1, Ordering::AcqRel) + 1;
        let was_probe = self.ejected.load(Ordering::Acquire);
        if n >= eject_after || was_probe || connection_lost {
            let mut e = lock(&self.ejection);
            let period = ejection.delay(e.count);
            e.until = Some(Instant::now() + period);
            e.count = e.count.saturating_add(1);
            self.ejected.store(true, Ordering::Release);
            self.failures.store(0, Ordering::Release);
            self.ejections.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                addr = %addr,
                failures = n,
                ejected_for_ms = period.as_millis() as u64,
                "endpoint ejected"
            );
        }
    }

    /// Records a call the endpoint answered in `rtt` (successfully, or refusing the request):
    /// clears its failures and, if this was its probe, ends its ejection.
    pub(super) fn succeeded(&self, addr: &str, rtt: Duration, decay: Duration) {
        self.failures.store(0, Ordering::Release);
        // Only an ejected endpoint's probe needs the ejection lock.
        if self.ejected.load(Ordering::Acquire) {
            let mut e = lock(&self.ejection);
            if e.until.take().is_some() {
                e.count = 0;
                self.ejected.store(false, Ordering::Release);
                tracing::info!(addr = %addr, "endpoint back after a successful probe");
            }
        }
        self.latency.observe(rtt, decay);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backoff() -> Backoff {
        Backoff::new(Duration::from_secs(1), Duration::from_secs(4))
    }

    #[tokio::test(start_paused = true)]
    async fn ejection_periods_double_exactly_up_to_the_cap() {
        let health = Health::new(Duration::from_millis(1));
        for expected in [1, 2, 4, 4] {
            health.failed("a", 1, &backoff(), false);
            let now = Instant::now();
            assert_eq!(health.availability(now), Availability::Ejected);
            let until = now + Duration::from_secs(expected);
            assert_eq!(
                health.availability(until - Duration::from_millis(1)),
                Availability::Ejected
            );
            assert_eq!(health.availability(until), Availability::Probe);
            tokio::time::advance(Duration::from_secs(expected)).await;
            assert!(health.start_probe());
            assert_eq!(health.availability(Instant::now()), Availability::Ejected);
            health.end_probe();
        }
        health.succeeded("a", Duration::from_millis(1), Duration::from_secs(10));
        assert_eq!(health.availability(Instant::now()), Availability::Available);
        // A success resets the doubling.
        health.failed("a", 1, &backoff(), false);
        let until = Instant::now() + Duration::from_secs(1);
        assert_eq!(health.availability(until), Availability::Probe);
    }

    #[test]
    fn failures_in_a_row_eject() {
        let health = Health::new(Duration::from_millis(1));
        health.failed("a", 3, &backoff(), false);
        health.failed("a", 3, &backoff(), false);
        assert_eq!(health.availability(Instant::now()), Availability::Available);
        health.failed("a", 3, &backoff(), false);
        assert_eq!(health.availability(Instant::now()), Availability::Ejected);
    }

    #[test]
    fn a_slow_answer_is_believed_at_once() {
        let ewma = PeakEwma::new(Duration::from_millis(1));
        let decay = Duration::from_secs(10);
        ewma.observe(Duration::from_millis(50), decay);
        let now = Instant::now();
        assert!(ewma.estimate(now, decay) > 49e6);
    }
}
