//! The retry budget: how many retries a client may add to its load.

use std::sync::Arc;
use std::time::Duration;

use tower::retry::budget::{Budget, TpsBudget};

/// Caps retries at a share of recent calls plus a small floor (as Finagle and Linkerd do), so that
/// when everything fails, retries add at most that share of extra load.
///
/// Clones share one budget.
#[derive(Debug, Clone)]
pub struct RetryBudget {
    inner: Arc<TpsBudget>,
}

impl Default for RetryBudget {
    fn default() -> Self {
        RetryBudget::new(Duration::from_secs(10), 10, 0.2)
    }
}

impl RetryBudget {
    /// Retries may be up to `ratio` of the calls of the last `window`, plus `min_per_sec` each
    /// second. Default: 20% over 10 s, plus 10 per second.
    pub fn new(window: Duration, min_per_sec: u32, ratio: f32) -> RetryBudget {
        RetryBudget {
            inner: Arc::new(TpsBudget::new(window, min_per_sec, ratio)),
        }
    }

    /// Counts a call (which earns retries).
    pub(super) fn deposit(&self) {
        self.inner.deposit();
    }

    /// Takes one retry from the budget; `false` if it has none left.
    pub(super) fn withdraw(&self) -> bool {
        self.inner.withdraw()
    }
}
