//! The layer that makes [`Hedge`] services.

use std::sync::Arc;

use tower::Layer;

use super::delay::Latencies;
use super::{Hedge, HedgeDelay};
use crate::middleware::Stats;

/// Hedging for idempotent calls ([`Request::is_idempotent`]): when the first attempt has not
/// answered after the [`HedgeDelay`], a second goes out (to another endpoint, over a balanced
/// channel, through [`Attempts`](crate::middleware::Attempts)). The first success wins and the
/// other attempt is dropped, which cancels it on the wire; a failure waits for the other attempt.
/// Other calls pass through.
///
/// [`Request::is_idempotent`]: crate::Request::is_idempotent
#[derive(Debug, Clone)]
pub struct HedgeLayer {
    delay: HedgeDelay,
    stats: Arc<Stats>,
}

impl HedgeLayer {
    /// Hedges after `delay`.
    pub fn new(delay: HedgeDelay) -> HedgeLayer {
        HedgeLayer {
            delay,
            stats: Arc::default(),
        }
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
            latencies: Arc::new(Latencies::new()),
        }
    }
}
