//! The layer that makes [`Hedge`] services.

use std::sync::Arc;

use tower::Layer;

use super::delay::Latencies;
use super::{Hedge, HedgeDelay};
use crate::middleware::{RetryBudget, Stats};

/// Hedging for idempotent calls ([`Request::is_idempotent`]): when the first attempt has not
/// answered after the [`HedgeDelay`], a second goes out (to another endpoint, over a balanced
/// channel, through [`Attempts`](crate::middleware::Attempts)). The first success wins and the
/// other attempt is dropped, which cancels it on the wire; a failure waits for the other attempt.
/// Other calls pass through.
///
/// Second attempts spend from a [`RetryBudget`] (by default one of its own: 20% of hedged calls
/// plus 10 per second): when the budget is spent the call waits for its first attempt alone, so
/// that a backend that stops answering does not get twice the load. Give the hedge layer the same
/// budget as the [`RetryLayer`](crate::middleware::RetryLayer) to bound retries and hedges
/// together.
///
/// [`Request::is_idempotent`]: crate::Request::is_idempotent
#[derive(Debug, Clone)]
pub struct HedgeLayer {
    delay: HedgeDelay,
    stats: Arc<Stats>,
    budget: RetryBudget,
}

impl HedgeLayer {
    /// Hedges after `delay`.
    pub fn new(delay: HedgeDelay) -> HedgeLayer {
        HedgeLayer {
            delay,
            stats: Arc::default(),
            budget: RetryBudget::default(),
        }
    }

    /// The budget second attempts spend from (shared by clones of the layer and the services it
    /// makes). A second attempt refused by it counts in [`Stats::retries_over_budget`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use rpc_core::middleware::{HedgeDelay, HedgeLayer, RetryBudget, RetryLayer};
    ///
    /// // Retries and hedges together add at most 10% of calls plus 5 per second.
    /// let budget = RetryBudget::new(Duration::from_secs(10), 5, 0.1);
    /// let retry = RetryLayer::new().budget(budget.clone());
    /// let hedge = HedgeLayer::new(HedgeDelay::Fixed(Duration::from_millis(50))).budget(budget);
    /// # let _ = (retry, hedge);
    /// ```
    #[must_use]
    pub fn budget(mut self, budget: RetryBudget) -> Self {
        self.budget = budget;
        self
    }

    /// Where to count hedges.
    #[must_use]
    pub fn stats(mut self, stats: Arc<Stats>) -> Self {
        self.stats = stats;
        self
    }
}

impl<S> Layer<S> for HedgeLayer {
    type Service = Hedge<S>;

    fn layer(&self, inner: S) -> Hedge<S> {
        Hedge {
            inner,
            delay: self.delay,
            stats: self.stats.clone(),
            budget: self.budget.clone(),
            latencies: Arc::new(Latencies::new()),
        }
    }
}
