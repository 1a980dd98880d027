//! One circuit breaker: its state machine, shared by the calls it guards.

use std::fmt;
use std::sync::{Arc, Mutex};

use tokio::time::Instant;

use super::BreakerConfig;
use crate::message::Response;
use crate::middleware::Stats;
use crate::status::{Code, Delivery, Status};

/// Where a breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls pass.
    Closed,
    /// Calls fail fast.
    Open,
    /// A few probe calls pass; their outcome closes or reopens the breaker.
    HalfOpen,
}

const BUCKETS: usize = 10;

#[derive(Debug)]
struct Inner {
    state: BreakerState,
    consecutive: u32,
    /// Per bucket of window/10: (bucket index, successes, failures).
    buckets: [(u64, u32, u32); BUCKETS],
    opened_at: Instant,
    probes_in_flight: u32,
    probes_ok: u32,
}

/// One circuit breaker: shared by the calls it guards.
pub struct CircuitBreaker {
    name: String,
    config: BreakerConfig,
    inner: Mutex<Inner>,
    stats: Arc<Stats>,
    epoch: Instant,
}

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("name", &self.name)
            .field("state", &self.state())
            .finish()
    }
}

/// A call admitted by a breaker; report its outcome with [`CircuitBreaker::record`].
#[derive(Debug)]
#[must_use]
pub struct Admission {
    probe: bool,
}

impl CircuitBreaker {
    /// A closed breaker named `name` (used in logs and errors).
    pub fn new(
        name: impl Into<String>,
        config: BreakerConfig,
        stats: Arc<Stats>,
    ) -> CircuitBreaker {
        let now = Instant::now();
        CircuitBreaker {
            name: name.into(),
            config,
            inner: Mutex::new(Inner {
                state: BreakerState::Closed,
                consecutive: 0,
                buckets: [(u64::MAX, 0, 0); BUCKETS],
                opened_at: now,
                probes_in_flight: 0,
                probes_ok: 0,
            }),
            stats,
            epoch: now,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current state (an open breaker whose time is up reports `HalfOpen`).
    pub fn state(&self) -> BreakerState {
        let g = self.lock();
        match g.state {
            BreakerState::Open if g.opened_at.elapsed() >= self.config.open_for => {
                BreakerState::HalfOpen
            }
            s => s,
        }
    }

    /// Admits a call, or refuses it with `Unavailable` (not sent) while open.
    ///
    /// # Errors
    /// The fail-fast status.
    pub fn admit(&self) -> Result<Admission, Status> {
        let mut g = self.lock();
        if g.state == BreakerState::Open && g.opened_at.elapsed() >= self.config.open_for {
            g.state = BreakerState::HalfOpen;
            g.probes_in_flight = 0;
            g.probes_ok = 0;
            tracing::info!(target: "rpc_core::middleware", breaker = %self.name, "circuit half-open: probing");
        }
        match g.state {
            BreakerState::Closed => Ok(Admission { probe: false }),
            BreakerState::HalfOpen if g.probes_in_flight < self.config.half_open_probes => {
                g.probes_in_flight += 1;
                Ok(Admission { probe: true })
            }
            _ => {
                drop(g);
                Stats::bump(&self.stats.breaker_rejected);
                tracing::debug!(target: "rpc_core::middleware", breaker = %self.name, "call refused: circuit open");
                Err(
                    Status::unavailable(format!("circuit breaker {:?} is open", self.name))
                        .with_delivery(Delivery::NotSent),
                )
            }
        }
    }

    /// Reports the outcome of an admitted call.
    pub fn record(&self, admission: Admission, failed: bool) {
        let now = Instant::now();
        let mut g = self.lock();
        if admission.probe {
            g.probes_in_flight = g.probes_in_flight.saturating_sub(1);
            if g.state != BreakerState::HalfOpen {
                return;
            }
            if failed {
                self.open(&mut g, now, "a probe failed");
            } else {
                g.probes_ok += 1;
                if g.probes_ok >= self.config.half_open_probes {
                    g.state = BreakerState::Closed;
                    g.consecutive = 0;
                    g.buckets = [(u64::MAX, 0, 0); BUCKETS];
                    Stats::bump(&self.stats.breaker_closed);
                    tracing::info!(target: "rpc_core::middleware", breaker = %self.name, "circuit closed");
                }
            }
            return;
        }
        if g.state != BreakerState::Closed {
            return;
        }
        let width = self.config.window.as_nanos() / BUCKETS as u128;
        let idx = (now.duration_since(self.epoch).as_nanos() / width.max(1)) as u64;
        let slot = &mut g.buckets[(idx % BUCKETS as u64) as usize];
        if slot.0 != idx {
            *slot = (idx, 0, 0);
        }
        if failed {
            slot.2 += 1;
            g.consecutive += 1;
        } else {
            slot.1 += 1;
            g.consecutive = 0;
        }
        if g.consecutive >= self.config.consecutive_failures {
            self.open(&mut g, now, "consecutive failures");
            return;
        }
        let (mut ok, mut bad) = (0u32, 0u32);
        for (i, s, f) in g.buckets {
            if i != u64::MAX && idx.saturating_sub(i) < BUCKETS as u64 {
                ok += s;
                bad += f;
            }
        }
        let total = ok + bad;
        if failed
            && total >= self.config.min_calls
            && f64::from(bad) / f64::from(total) >= self.config.failure_rate
        {
            self.open(&mut g, now, "failure rate");
        }
    }

    /// Reports the outcome of an admitted call from its result: unavailability, internal errors
    /// and deadlines count as failures; refusals of a bad request do not.
    pub fn record_result(&self, admission: Admission, result: &Result<Response, Status>) {
        self.record_error(admission, result.as_ref().err());
    }

    /// Reports the outcome of an admitted call from its error (`None`: it succeeded), as
    /// [`record_result`](Self::record_result) does.
    pub fn record_error(&self, admission: Admission, error: Option<&Status>) {
        self.record(admission, error.is_some_and(is_failure));
    }

    /// Forgets an admitted call that ended without an outcome (it was cancelled).
    pub fn cancel(&self, admission: Admission) {
        if admission.probe {
            let mut g = self.lock();
            g.probes_in_flight = g.probes_in_flight.saturating_sub(1);
        }
    }

    fn open(&self, g: &mut Inner, now: Instant, why: &str) {
        g.state = BreakerState::Open;
        g.opened_at = now;
        g.consecutive = 0;
        g.probes_in_flight = 0;
        g.probes_ok = 0;
        Stats::bump(&self.stats.breaker_opened);
        tracing::warn!(target: "rpc_core::middleware", breaker = %self.name, reason = why, open_ms = self.config.open_for.as_millis() as u64, "circuit opened");
    }
}

/// Whether a status counts against a breaker: the service is unreachable, unwell or too slow, as
/// opposed to refusing a bad request. `Unavailable` counts even when nothing was sent (a refused
/// connection says the service is down); other codes only for calls that reached it.
fn is_failure(status: &Status) -> bool {
    match status.code() {
        Code::Unavailable => true,
        Code::Internal | Code::Unknown | Code::DataLoss | Code::DeadlineExceeded => {
            status.delivery() == Delivery::Sent
        }
        _ => false,
    }
}
