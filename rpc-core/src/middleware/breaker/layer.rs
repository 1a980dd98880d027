//! The layer that makes [`CircuitBreakerService`]s.

use std::sync::Arc;

use tower::Layer;

use super::{BreakerConfig, CircuitBreakerService};
use crate::middleware::Stats;

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
