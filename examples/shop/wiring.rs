//! How every client of the shop is built: the framework's client stack over the registry.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rpc_core::middleware::{
    BreakerConfig, CircuitBreakerLayer, CircuitBreakerService, Deadline, DeadlineLayer, Retry,
    RetryBudget, RetryLayer, RetryPolicy, Stats,
};
use rpc_discovery::{BalanceConfig, BalancedChannel, DiscoveryError, Query, Registry};
use tower::ServiceBuilder;

use super::metrics::{Metered, MeteredLayer, Metrics};

/// The stack under every generated client of the shop, outermost first: metrics, the method's
/// default deadline, retries under a budget, a circuit breaker per service (opening only when
/// 80 % of at least 50 calls in 5 s failed, or 20 in a row; probing after 500 ms), and a
/// balanced channel that follows the registry (P2C over peak EWMA; ejects an endpoint after 2
/// failures in a row or a lost connection, for 200 ms doubling up to 2 s).
pub type Stack = Metered<Deadline<Retry<CircuitBreakerService<BalancedChannel>>>>;

/// The breaker of a whole service: it is there for the service being down, not for one
/// replica failing (the balanced channel ejects that one), so it opens only when 80 % of at
/// least 50 calls in 5 s failed, or 20 in a row, and probes again after 500 ms.
fn breaker() -> BreakerConfig {
    BreakerConfig::new()
        .consecutive_failures(20)
        .failure_rate(0.8, 50, Duration::from_secs(5))
        .open_for(Duration::from_millis(500))
}

/// What the clients of one process share: the registry, counters of middleware decisions, the
/// per-method figures, and the balanced channels made (for their endpoint counters).
#[derive(Clone)]
pub struct Wiring {
    registry: Arc<dyn Registry>,
    /// Retries, breaker decisions.
    pub stats: Arc<Stats>,
    /// Calls, errors, latency per method.
    pub metrics: Arc<Metrics>,
    channels: Arc<Mutex<Vec<BalancedChannel>>>,
}

impl std::fmt::Debug for Wiring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wiring").finish_non_exhaustive()
    }
}

impl Wiring {
    /// Clients over `registry`.
    pub fn new(registry: Arc<dyn Registry>) -> Wiring {
        Wiring {
            registry,
            stats: Stats::new(),
            metrics: Metrics::new(),
            channels: Arc::default(),
        }
    }

    /// The registry.
    pub fn registry(&self) -> &Arc<dyn Registry> {
        &self.registry
    }

    /// A stack to `service` (its wire name, such as `shop.Inventory`), to wrap in its generated
    /// client. Must be called within a tokio runtime: the balanced channel follows the registry
    /// on a task of its own. Each stack has its own retry budget (20 % of its calls over 10 s,
    /// plus 20 a second) and breaker.
    ///
    /// # Errors
    /// The registry's, if the watch cannot start.
    pub async fn stack(&self, service: &str) -> Result<Stack, DiscoveryError> {
        let watch = self.registry.watch(Query::new(service)).await?;
        let config = BalanceConfig::new()
            .eject_after(2)
            .ejection(Duration::from_millis(200), Duration::from_secs(2));
        let balanced = BalancedChannel::with_config(watch, config);
        super::lock(&self.channels).push(balanced.clone());
        let retry = RetryLayer::new()
            .policy(
                RetryPolicy::new()
                    .max_attempts(4)
                    .backoff(Duration::from_millis(10), Duration::from_millis(200)),
            )
            .budget(RetryBudget::new(Duration::from_secs(10), 20, 0.2))
            .stats(self.stats.clone());
        Ok(ServiceBuilder::new()
            .layer(MeteredLayer(self.metrics.clone()))
            .layer(DeadlineLayer::new(Duration::from_secs(2)))
            .layer(retry)
            .layer(
                CircuitBreakerLayer::new()
                    .config(breaker())
                    .stats(self.stats.clone()),
            )
            .service(balanced))
    }

    /// Ejections so far, summed over every endpoint of every balanced channel made here.
    pub fn ejections(&self) -> u64 {
        super::lock(&self.channels)
            .iter()
            .flat_map(BalancedChannel::endpoints)
            .map(|e| e.ejections)
            .sum()
    }
}
