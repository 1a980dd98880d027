//! A token bucket.

use std::time::Duration;

use tokio::time::Instant;

/// A token bucket: `rate` tokens per second, at most `burst` saved up.
#[derive(Debug, Clone)]
pub(super) struct Bucket {
    pub(super) rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// A full bucket.
    pub(super) fn new(rate: f64, burst: f64) -> Bucket {
        Bucket {
            rate,
            burst,
            tokens: burst,
            at: Instant::now(),
        }
    }

    /// Adds the tokens earned since the last look; then `Ok` if one is there, or how long until
    /// one is. Takes nothing.
    pub(super) fn check(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            Ok(())
        } else {
            // A rate near zero makes the wait too long for a `Duration`: then it is "forever".
            let wait = (1.0 - self.tokens) / self.rate;
            Err(Duration::try_from_secs_f64(wait).unwrap_or(Duration::MAX))
        }
    }

    /// Takes the token that [`check`](Bucket::check) found.
    pub(super) fn take(&mut self) {
        self.tokens -= 1.0;
    }

    /// `true` if the bucket would be full at `now`: as good as a new one.
    pub(super) fn is_full(&self, now: Instant) -> bool {
        self.tokens + now.saturating_duration_since(self.at).as_secs_f64() * self.rate >= self.burst
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Whatever the rate, burst and schedule: never more calls than the burst plus the rate
        /// times the time passed; a refusal's wait is finite or `Duration::MAX`, never a panic;
        /// and after waiting that long a token is there.
        #[test]
        fn a_bucket_admits_at_most_its_burst_plus_its_rate(
            rate in prop_oneof![Just(f64::MIN_POSITIVE), 1e-300f64..1e-3, 0.001f64..10_000.0],
            burst in 1.0f64..100.0,
            gaps_us in prop::collection::vec(0u64..50_000, 1..300),
        ) {
            let start = Instant::now();
            let mut bucket = Bucket::new(rate, burst);
            let mut now = start;
            let mut admitted = 0u64;
            for gap in gaps_us {
                now += Duration::from_micros(gap);
                match bucket.check(now) {
                    Ok(()) => {
                        bucket.take();
                        admitted += 1;
                    }
                    // A wait within an hour is honest: a token is there then (1 µs of rounding).
                    Err(wait) if wait < Duration::from_secs(3600) => {
                        let mut probe = bucket.clone();
                        let then = now + wait + Duration::from_micros(1);
                        prop_assert!(probe.check(then).is_ok());
                    }
                    Err(_) => {}
                }
                let elapsed = (now - start).as_secs_f64();
                prop_assert!(
                    admitted as f64 <= burst + rate * elapsed + 1e-9,
                    "{admitted} admitted in {elapsed} s at {rate}/s, burst {burst}"
                );
            }
        }
    }
}
