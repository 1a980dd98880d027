//! Circuit breaking.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;
use tower::{Layer, Service};

use super::{named, ready_call, MiddlewareFuture, Stats};
use crate::message::{Request, Response};
use crate::status::{Code, Delivery, Status};

/// When a breaker opens and how it recovers.
#[derive(Debug, Clone)]
pub struct BreakerConfig {
    consecutive_failures: u32,
    failure_rate: f64,
    min_calls: u32,
    window: Duration,
    open_for: Duration,
    half_open_probes: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            consecutive_failures: 5,
            failure_rate: 0.5,
            min_calls: 20,
            window: Duration::from_secs(10),
            open_for: Duration::from_secs(5),
            half_open_probes: 1,
        }
    }
}

impl BreakerConfig {
    /// Opens after 5 failures in a row, or when at least half of at least 20 calls in the last
    /// 10 s failed; stays open 5 s; then lets 1 probe call through.
    pub fn new() -> BreakerConfig {
        BreakerConfig::default()
    }

    /// Failures in a row that open the breaker.
    #[must_use]
    pub fn consecutive_failures(mut self, n: u32) -> Self {
        self.consecutive_failures = n.max(1);
        self
    }

    /// The failure rate over a sliding `window` that opens the breaker, once it saw `min_calls`.
    #[must_use]
    pub fn failure_rate(mut self, rate: f64, min_calls: u32, window: Duration) -> Self {
        self.failure_rate = rate.clamp(0.0, 1.0);
        self.min_calls = min_calls.max(1);
        self.window = window.max(Duration::from_millis(10));
        self
    }

    /// How long it stays open before probing.
    #[must_use]
    pub fn open_for(mut self, d: Duration) -> Self {
        self.open_for = d;
        self
    }

    /// Probe calls let through while half-open; all must succeed to close.
    #[must_use]
    pub fn half_open_probes(mut self, n: u32) -> Self {
        self.half_open_probes = n.max(1);
        self
    }
}

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
        self.record(admission, result.as_ref().err().is_some_and(is_failure));
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
pub(crate) fn is_failure(status: &Status) -> bool {
    match status.code() {
        Code::Unavailable => true,
        Code::Internal | Code::Unknown | Code::DataLoss | Code::DeadlineExceeded => {
            status.delivery() == Delivery::Sent
        }
        _ => false,
    }
}

/// A circuit breaker per service (by the request's service name): opens on failures in a row or a
/// failure rate over a sliding window, fails fast with `Unavailable` while open, half-opens after a
/// while and closes when probes succeed. For a breaker per endpoint, see the balancer's
/// configuration.
#[derive(Debug, Clone, Default)]
pub struct CircuitBreakerLayer {
    config: BreakerConfig,
    stats: Arc<Stats>,
}

impl CircuitBreakerLayer {
    /// Default [`BreakerConfig`].
    pub fn new() -> CircuitBreakerLayer {
        CircuitBreakerLayer::default()
    }

    /// The settings of every breaker of this layer.
    #[must_use]
    pub fn config(mut self, config: BreakerConfig) -> Self {
        self.config = config;
        self
    }

    /// Where to count transitions and rejections.
    #[must_use]
    pub fn stats(mut self, stats: Arc<Stats>) -> Self {
        self.stats = stats;
        self
    }
}

impl<S> Layer<S> for CircuitBreakerLayer {
    type Service = CircuitBreakerService<S>;

    fn layer(&self, inner: S) -> CircuitBreakerService<S> {
        CircuitBreakerService {
            inner,
            config: self.config.clone(),
            stats: self.stats.clone(),
            breakers: Arc::default(),
        }
    }
}

/// The service of [`CircuitBreakerLayer`].
#[derive(Debug, Clone)]
pub struct CircuitBreakerService<S> {
    inner: S,
    config: BreakerConfig,
    stats: Arc<Stats>,
    breakers: Arc<Mutex<HashMap<String, Arc<CircuitBreaker>>>>,
}

named!(CircuitBreakerService);

impl<S> CircuitBreakerService<S> {
    /// The breaker of `service`, created closed on first use.
    pub fn breaker(&self, service: &str) -> Arc<CircuitBreaker> {
        let mut map = self.breakers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = map.get(service) {
            return b.clone();
        }
        let b = Arc::new(CircuitBreaker::new(
            service,
            self.config.clone(),
            self.stats.clone(),
        ));
        map.insert(service.to_owned(), b.clone());
        b
    }
}

impl<S> Service<Request> for CircuitBreakerService<S>
where
    S: Service<Request, Response = Response, Error = Status> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = Response;
    type Error = Status;
    type Future = MiddlewareFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> MiddlewareFuture {
        let breaker = self.breaker(req.service());
        let inner = self.inner.clone();
        Box::pin(async move {
            let mut guard = Pending {
                breaker: &breaker,
                admission: Some(breaker.admit()?),
            };
            let result = ready_call(inner, req).await;
            let failed = result.as_ref().err().is_some_and(is_failure);
            if let Some(admission) = guard.admission.take() {
                breaker.record(admission, failed);
            }
            result
        })
    }
}

/// Releases a probe slot when a call is dropped before its outcome is known.
struct Pending<'a> {
    breaker: &'a CircuitBreaker,
    admission: Option<Admission>,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if let Some(a) = self.admission.take() {
            self.breaker.cancel(a);
        }
    }
}
