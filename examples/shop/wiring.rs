//! How every client of the shop is built: the framework's client stack over the registry.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rpc_core::middleware::{
    BreakerConfig, Deadline, DeadlineLayer, Retry, RetryBudget, RetryLayer, RetryPolicy, Stats,
};
use rpc_core::{Endpoint, Status};
use rpc_discovery::{BalanceConfig, BalancedChannel, DiscoveryError, Query, Registry};
use tower::{Layer, ServiceBuilder};

use super::metrics::{Metered, MeteredLayer, Metrics};

/// The stack under every generated client of the shop, outermost first: metrics, the method's
/// default deadline, retries under a budget, and a balanced channel that follows the registry:
/// P2C over peak EWMA, an endpoint ejected after 2 failures in a row or a lost connection (for
/// 200 ms, doubling up to 2 s), and a circuit breaker per endpoint (see [`Wiring::stack`]).
///
/// The breakers are per endpoint, as Finagle's failure accrual is, not one per service: when one
/// of two replicas dies with hundreds of calls in flight, a breaker for the whole service would
/// see a burst of failures and shut out the replica that still works.
pub type Stack = Metered<Deadline<Retry<BalancedChannel>>>;

/// The layers of a [`Stack`], outermost first.
pub type ShopLayers = Stack3<MeteredLayer, DeadlineLayer, RetryLayer>;

/// Three layers, `A` outermost (what `ServiceBuilder` builds).
type Stack3<A, B, C> = tower::layer::util::Stack<
    C,
    tower::layer::util::Stack<B, tower::layer::util::Stack<A, tower::layer::util::Identity>>,
>;

/// Makes the endpoint of a replica of a service (its wire name) from the address it registered.
pub type Connect = Arc<dyn Fn(&str, &str) -> Result<Endpoint, Status> + Send + Sync>;

/// What the clients of one process share: the registry, counters of middleware decisions, the
/// per-method figures, and the balanced channels made (for their endpoint counters).
#[derive(Clone)]
pub struct Wiring {
    registry: Arc<dyn Registry>,
    connect: Connect,
    /// Retries, breaker decisions.
    pub stats: Arc<Stats>,
    /// Calls, errors, latency per method.
    pub metrics: Arc<Metrics>,
    channels: Arc<Mutex<Vec<BalancedChannel>>>,
    max_frame_size: u32,
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
            connect: Arc::new(|_service: &str, addr: &str| {
                Endpoint::from_uri(addr).map_err(|e| Status::invalid_argument(e.to_string()))
            }),
            stats: Stats::new(),
            metrics: Metrics::new(),
            channels: Arc::default(),
            max_frame_size: 4 << 20,
        }
    }

    /// The largest response frame its clients accept, in bytes (default 4 MiB, the protocol's
    /// default). The auditor raises it: an audit answers with every record at once.
    #[must_use]
    pub fn max_frame_size(mut self, bytes: u32) -> Wiring {
        self.max_frame_size = bytes;
        self
    }

    /// How endpoints are made from a service's name and a replica's registered address (default
    /// [`Endpoint::from_uri`] of the address); the secure shop connects over mutual TLS with the
    /// process's identity, expecting the service's certificate.
    #[must_use]
    pub fn connect_with(
        mut self,
        connect: impl Fn(&str, &str) -> Result<Endpoint, Status> + Send + Sync + 'static,
    ) -> Wiring {
        self.connect = Arc::new(connect);
        self
    }

    /// The registry.
    pub fn registry(&self) -> &Arc<dyn Registry> {
        &self.registry
    }

    /// A stack to `service` (its wire name, such as `shop.Inventory`), to wrap in its generated
    /// client. Must be called within a tokio runtime: the balanced channel follows the registry
    /// on a task of its own. Each stack has its own retry budget (20 % of its calls over 10 s,
    /// plus 20 a second), and each endpoint its breaker: open when half of at least 20 calls in
    /// 10 s failed, probing again after 500 ms.
    ///
    /// # Errors
    /// The registry's, if the watch cannot start.
    pub async fn stack(&self, service: &str) -> Result<Stack, DiscoveryError> {
        let watch = self.registry.watch(Query::new(service)).await?;
        let balanced = BalancedChannel::with_config(watch, self.balance_config());
        super::lock(&self.channels).push(balanced.clone());
        Ok(self.layers().layer(balanced))
    }

    /// How a balanced channel of this wiring balances and connects: each instance through its
    /// service's connector (plain, or mutual TLS in the secure shop). An endpoint's breaker
    /// opens when half of at least 20 calls in 10 s failed (ejection already covers failures in
    /// a row), and probes again after 500 ms.
    pub fn balance_config(&self) -> BalanceConfig {
        let breaker = BreakerConfig::new()
            .failure_rate(0.5, 20, Duration::from_secs(10))
            .open_for(Duration::from_millis(500));
        let max_frame = self.max_frame_size;
        let connect = self.connect.clone();
        BalanceConfig::new()
            .eject_after(2)
            .ejection(Duration::from_millis(200), Duration::from_secs(2))
            .breaker(breaker, self.stats.clone())
            .endpoint(move |instance| {
                connect(&instance.service, &instance.addr).map(|e| {
                    e.connect_timeout(Duration::from_secs(1))
                        .max_frame_size(max_frame)
                })
            })
    }

    /// The layers of a [`Stack`] over its balanced channel: metrics, a 2 s deadline, retries
    /// under a budget of their own (the stacks, and the gateway's routes).
    pub fn layers(&self) -> ShopLayers {
        let retry = RetryLayer::new()
            .policy(
                RetryPolicy::new()
                    .max_attempts(4)
                    .backoff(Duration::from_millis(10), Duration::from_millis(200)),
            )
            .budget(RetryBudget::new(Duration::from_secs(10), 20, 0.2))
            .stats(self.stats.clone());
        ServiceBuilder::new()
            .layer(MeteredLayer(self.metrics.clone()))
            .layer(DeadlineLayer::new(Duration::from_secs(2)))
            .layer(retry)
            .into_inner()
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
