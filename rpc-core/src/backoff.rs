//! Exponential backoff with a cap and one jitter rule, shared by every wait-and-try-again in the
//! framework: reconnects of a [`Channel`](crate::Channel), retries
//! ([`RetryPolicy`](crate::middleware::RetryPolicy)), the etcd registry's reconnects and the
//! balancer's ejections.
//!
//! The wait before attempt `n + 1` (after `n` failures, counting from 0) is
//!
//! ```text
//! ceiling(n) = min(initial × 2ⁿ, max)
//! delay(n)   = ceiling(n) × u,   u uniform in [1 − jitter, 1]
//! ```
//!
//! so a `jitter` of 0 gives exact doubling, 1 gives "full jitter" (any wait from zero to the
//! ceiling, the rule AWS's architecture blog recommends for retries against a shared server), and
//! values between spread clients that failed together without shortening their waits much. The
//! jitter only ever shortens a wait: `delay(n) ≤ ceiling(n) ≤ max`.
//!
//! ```
//! use std::time::Duration;
//! use rpc_core::backoff::Backoff;
//!
//! let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1)).jitter(0.2);
//! assert_eq!(backoff.ceiling(0), Duration::from_millis(100));
//! assert_eq!(backoff.ceiling(3), Duration::from_millis(800));
//! assert_eq!(backoff.ceiling(9), Duration::from_secs(1));
//! let d = backoff.delay(1);
//! assert!(d >= Duration::from_millis(160) && d <= Duration::from_millis(200));
//! ```

use std::time::Duration;

/// Exponential backoff: a first wait, doubling per failure up to a cap, with jitter.
/// See the [module docs](self) for the formula.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    jitter: f64,
}

impl Backoff {
    /// Waits from `initial`, doubling per failure up to `max` (raised to `initial` if lower),
    /// without jitter until [`jitter`](Backoff::jitter) sets it.
    pub const fn new(initial: Duration, max: Duration) -> Backoff {
        let max = if max.as_nanos() < initial.as_nanos() {
            initial
        } else {
            max
        };
        Backoff {
            initial,
            max,
            jitter: 0.0,
        }
    }

    /// The share of each wait that is random: the wait is the ceiling times a factor drawn
    /// uniformly from `[1 − fraction, 1]`. Clamped to `0.0..=1.0`; NaN counts as 0.
    ///
    /// ```
    /// use std::time::Duration;
    /// use rpc_core::backoff::Backoff;
    ///
    /// // Full jitter: any wait from 0 to the ceiling.
    /// let retries = Backoff::new(Duration::from_millis(5), Duration::from_millis(500)).jitter(1.0);
    /// assert!(retries.delay(2) <= Duration::from_millis(20));
    /// ```
    #[must_use]
    pub fn jitter(mut self, fraction: f64) -> Backoff {
        self.jitter = if fraction.is_nan() {
            0.0
        } else {
            fraction.clamp(0.0, 1.0)
        };
        self
    }

    /// The first wait, before jitter.
    pub fn initial(&self) -> Duration {
        self.initial
    }

    /// The cap on every wait.
    pub fn max(&self) -> Duration {
        self.max
    }

    /// The jitter fraction (see [`jitter`](Backoff::jitter)).
    pub fn jitter_fraction(&self) -> f64 {
        self.jitter
    }

    /// The wait after `failures` failures before jitter: `min(initial × 2^failures, max)`.
    pub fn ceiling(&self, failures: u32) -> Duration {
        // 2^32 × any non-zero duration is past every sensible cap; saturate instead of overflowing.
        let factor = 1u32.checked_shl(failures).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// The wait after `failures` failures: [`ceiling`](Backoff::ceiling) scaled by a factor drawn
    /// uniformly from `[1 − jitter, 1]`.
    pub fn delay(&self, failures: u32) -> Duration {
        let ceiling = self.ceiling(failures);
        if self.jitter == 0.0 {
            return ceiling;
        }
        ceiling.mul_f64(1.0 - self.jitter * fastrand::f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_doubles_to_the_cap_and_never_overflows() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
        let expected = [100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000];
        for (n, ms) in expected.iter().enumerate() {
            assert_eq!(b.ceiling(n as u32), Duration::from_millis(*ms), "{n}");
        }
        assert_eq!(b.ceiling(31), Duration::from_secs(10));
        assert_eq!(b.ceiling(32), Duration::from_secs(10));
        assert_eq!(b.ceiling(u32::MAX), Duration::from_secs(10));
    }

    #[test]
    fn no_jitter_is_exact() {
        let b = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        for n in 0..40 {
            assert_eq!(b.delay(n), b.ceiling(n));
        }
    }

    #[test]
    fn jitter_stays_within_its_band() {
        fastrand::seed(7);
        for jitter in [0.0, 0.2, 0.25, 0.5, 1.0] {
            let b = Backoff::new(Duration::from_millis(50), Duration::from_secs(1)).jitter(jitter);
            for n in 0..30 {
                let c = b.ceiling(n).as_secs_f64();
                let d = b.delay(n).as_secs_f64();
                assert!(d <= c + 1e-9, "{jitter} {n}: {d} > {c}");
                assert!(d >= c * (1.0 - jitter) - 1e-9, "{jitter} {n}: {d} < band");
            }
        }
    }

    #[test]
    fn settings_are_clamped() {
        let b = Backoff::new(Duration::from_secs(2), Duration::from_secs(1));
        assert_eq!(b.max(), Duration::from_secs(2));
        assert_eq!(b.jitter(7.0).jitter_fraction(), 1.0);
        assert_eq!(b.jitter(-1.0).jitter_fraction(), 0.0);
        assert_eq!(b.jitter(f64::NAN).jitter_fraction(), 0.0);
    }
}
