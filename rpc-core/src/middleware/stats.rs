//! Counters of middleware decisions.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// Counters of middleware decisions, shared by the layers given the same `Arc<Stats>`.
        #[derive(Default)]
        pub struct Stats {
            $($(#[$doc])* pub $name: AtomicU64,)*
        }

        /// A copy of [`Stats`] at one moment.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct StatsSnapshot {
            $($(#[$doc])* pub $name: u64,)*
        }

        impl Stats {
            /// Reads every counter.
            pub fn snapshot(&self) -> StatsSnapshot {
                StatsSnapshot { $($name: self.$name.load(Ordering::Relaxed),)* }
            }
        }

        impl fmt::Display for StatsSnapshot {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut first = true;
                $(
                    if self.$name != 0 {
                        if !first { f.write_str(" ")?; }
                        first = false;
                        write!(f, "{}={}", stringify!($name), self.$name)?;
                    }
                )*
                if first { f.write_str("(no events)")?; }
                Ok(())
            }
        }
    };
}

counters! {
    /// Calls that entered a retry layer.
    calls,
    /// Retries sent.
    retries,
    /// Retries wanted but refused by the retry budget.
    retries_over_budget,
    /// Second attempts sent by hedging.
    hedges,
    /// Hedged calls answered by the second attempt.
    hedge_wins,
    /// Circuit breakers that opened.
    breaker_opened,
    /// Circuit breakers that closed again.
    breaker_closed,
    /// Calls refused because a breaker was open.
    breaker_rejected,
    /// Calls refused by a rate limit or quota.
    rate_limited,
    /// Calls shed by a concurrency limit.
    shed,
    /// Failures replaced by a fallback.
    fallbacks,
    /// Calls an auth layer admitted with a principal.
    authenticated,
    /// Calls an auth layer refused as `Unauthenticated` (no or bad credentials).
    unauthenticated,
    /// Calls an auth layer refused as `PermissionDenied` (a principal the policy does not allow).
    permission_denied,
}

impl Stats {
    /// A new set of counters, to share between layers.
    pub fn new() -> Arc<Stats> {
        Arc::new(Stats::default())
    }

    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

impl fmt::Debug for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.snapshot(), f)
    }
}
