//! The layer that makes [`RateLimit`] services.

use std::sync::Arc;

use tower::Layer;

use super::limits::Limits;
use super::RateLimit;
use crate::middleware::Stats;

/// Token-bucket rate limits: one for all calls, and one quota per caller, the caller being named by
/// a request metadata entry (`caller` by default; calls without it share the quota of `""`).
/// Over-limit calls get `ResourceExhausted` with a [`RETRY_AFTER_MS`](super::RETRY_AFTER_MS)
/// hint, without reaching the service.
///
/// ```
/// use rpc_core::middleware::RateLimitLayer;
/// // 10,000 calls/s in all, and 100/s (bursts of 20) per caller.
/// let layer = RateLimitLayer::new().global(10_000.0, 1_000.0).per_caller(100.0, 20.0);
/// ```
#[derive(Debug, Clone)]
pub struct RateLimitLayer {
    global: Option<(f64, f64)>,
    per_caller: Option<(f64, f64)>,
    caller_key: String,
    stats: Arc<Stats>,
}

impl Default for RateLimitLayer {
    fn default() -> Self {
        RateLimitLayer {
            global: None,
            per_caller: None,
            caller_key: "caller".to_owned(),
            stats: Arc::default(),
        }
    }
}

impl RateLimitLayer {
    /// No limits yet.
    pub fn new() -> RateLimitLayer {
        RateLimitLayer::default()
    }

    /// `rate` calls per second in all, bursts of up to `burst`.
    #[must_use]
    pub fn global(mut self, rate: f64, burst: f64) -> Self {
        self.global = Some((rate.max(f64::MIN_POSITIVE), burst.max(1.0)));
        self
    }

    /// `rate` calls per second per caller, bursts of up to `burst`.
    #[must_use]
    pub fn per_caller(mut self, rate: f64, burst: f64) -> Self {
        self.per_caller = Some((rate.max(f64::MIN_POSITIVE), burst.max(1.0)));
        self
    }

    /// The metadata key naming the caller. Default `caller`.
    #[must_use]
    pub fn caller_key(mut self, key: impl Into<String>) -> Self {
        self.caller_key = key.into();
        self
    }

    /// Where to count refusals.
    #[must_use]
    pub fn stats(mut self, stats: Arc<Stats>) -> Self {
        self.stats = stats;
        self
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> RateLimit<S> {
        RateLimit {
            inner,
            limits: Arc::new(Limits::new(
                self.global,
                self.per_caller,
                self.caller_key.clone(),
                self.stats.clone(),
            )),
        }
    }
}
