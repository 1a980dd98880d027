//! When a breaker opens and how it recovers.

use std::time::Duration;

/// When a breaker opens and how it recovers.
#[derive(Debug, Clone)]
pub struct BreakerConfig {
    pub(super) consecutive_failures: u32,
    pub(super) failure_rate: f64,
    pub(super) min_calls: u32,
    pub(super) window: Duration,
    pub(super) open_for: Duration,
    pub(super) half_open_probes: u32,
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
