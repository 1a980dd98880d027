//! The layer that makes [`RateLimit`] services.

use std::sync::Arc;

use tower::Layer;

use super::limits::Limits;
use super::RateLimit;
use crate::middleware::Stats;

/// Token-bucket rate limits: one for all calls, and one quota per caller. The caller is the
/// authenticated [`Principal`](crate::Principal) (put the [`AuthLayer`](crate::middleware::AuthLayer)
/// outside this layer); a call without one spends the quota of its peer's IP address, or, only
/// when [`caller_key`](RateLimitLayer::caller_key) says so, of the caller its metadata names,
/// which the caller writes itself and so is fit only for trusted networks. Over-limit calls get
/// `ResourceExhausted` with a [`RETRY_AFTER_MS`](super::RETRY_AFTER_MS) hint, without reaching
/// the service.
///
/// ```
/// use rpc_core::middleware::RateLimitLayer;
/// // 10,000 calls/s in all, and 100/s (bursts of 20) per caller.
/// let layer = RateLimitLayer::new().global(10_000.0, 1_000.0).per_caller(100.0, 20.0);
/// ```
#[derive(Debug, Clone, Default)]
pub struct RateLimitLayer {
    global: Option<(f64, f64)>,
    per_caller: Option<(f64, f64)>,
    caller_key: Option<String>,
    stats: Arc<Stats>,
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

    /// Trusts the metadata entry `key` (such as `caller`) to name callers that have no
    /// authenticated principal. Off by default: the caller writes that entry itself, so only a
    /// trusted network may rely on it.
    #[must_use]
    pub fn caller_key(mut self, key: impl Into<String>) -> Self {
        self.caller_key = Some(key.into());
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
