//! How a balanced channel is set up: its pick strategy, when and for how long it ejects an
//! endpoint, how it weighs latency, and how it reaches an instance.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rpc_core::backoff::Backoff;
use rpc_core::middleware::{BreakerConfig, Stats};
use rpc_core::{Endpoint, Status};

use crate::instance::Instance;

/// How a [`BalancedChannel`](crate::BalancedChannel) picks an endpoint for a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Strategy {
    /// Power of two choices over peak-EWMA latency times outstanding calls: two endpoints at
    /// random, the cheaper wins. Adapts to slow endpoints within a few calls. The default.
    #[default]
    P2cPeakEwma,
    /// Each endpoint in turn.
    RoundRobin,
    /// At random, in proportion to [`Instance::weight`].
    WeightedRandom,
    /// The endpoint with the fewest calls in flight.
    LeastOutstanding,
    /// A hash ring keyed by the call's [`HASH_KEY`](crate::HASH_KEY) metadata (random without
    /// one): the same key goes to the same endpoint, and an endpoint joining or leaving moves
    /// about 1/N of keys.
    ConsistentHash,
}

/// The keepalive of a balanced channel's connections by default: a PING after 10 s without
/// input, the connection declared dead 5 s later.
const DEFAULT_KEEPALIVE: (Duration, Duration) = (Duration::from_secs(10), Duration::from_secs(5));

/// Makes the [`Endpoint`] of an instance.
pub(super) type MakeEndpoint = Arc<dyn Fn(&Instance) -> Result<Endpoint, Status> + Send + Sync>;

/// Settings of a [`BalancedChannel`](crate::BalancedChannel).
#[derive(Clone)]
pub struct BalanceConfig {
    pub(super) strategy: Strategy,
    pub(super) eject_after: u32,
    /// How long ejections last: the n-th in a row lasts `ejection.delay(n)`. No jitter, so
    /// ejection periods are exact.
    pub(super) ejection: Backoff,
    pub(super) ewma_decay: Duration,
    pub(super) default_rtt: Duration,
    pub(super) endpoint: MakeEndpoint,
    pub(super) breaker: Option<(BreakerConfig, Arc<Stats>)>,
    /// The keepalive of endpoints that do not set their own.
    pub(super) keepalive: Option<(Duration, Duration)>,
}

impl fmt::Debug for BalanceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BalanceConfig")
            .field("strategy", &self.strategy)
            .field("eject_after", &self.eject_after)
            .field("ejection", &self.ejection)
            .field("ewma_decay", &self.ewma_decay)
            .field("keepalive", &self.keepalive)
            .finish_non_exhaustive()
    }
}

impl Default for BalanceConfig {
    fn default() -> Self {
        BalanceConfig {
            strategy: Strategy::default(),
            eject_after: 5,
            ejection: Backoff::new(Duration::from_secs(1), Duration::from_secs(30)),
            ewma_decay: Duration::from_secs(10),
            default_rtt: Duration::from_millis(1),
            breaker: None,
            keepalive: Some(DEFAULT_KEEPALIVE),
            endpoint: Arc::new(|i: &Instance| {
                Endpoint::from_uri(&i.addr)
                    .map(|e| e.connect_timeout(Duration::from_secs(1)))
                    .map_err(|e| {
                        Status::invalid_argument(format!("instance address: {e}")).with_source(e)
                    })
            }),
        }
    }
}

impl BalanceConfig {
    /// Defaults: P2C over peak EWMA, ejection after 5 failures in a row for 1 s (doubling up to
    /// 30 s), 1 s connect timeout, keepalive after 10 s of silence with a 5 s timeout.
    pub fn new() -> BalanceConfig {
        BalanceConfig::default()
    }

    /// The pick strategy.
    ///
    /// ```
    /// use rpc_discovery::{BalanceConfig, Strategy};
    ///
    /// let config = BalanceConfig::new().strategy(Strategy::LeastOutstanding);
    /// # let _ = config;
    /// ```
    #[must_use]
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// Failures in a row that eject an endpoint (at least 1).
    ///
    /// ```
    /// use rpc_discovery::BalanceConfig;
    ///
    /// let config = BalanceConfig::new().eject_after(3);
    /// # let _ = config;
    /// ```
    #[must_use]
    pub fn eject_after(mut self, failures: u32) -> Self {
        self.eject_after = failures.max(1);
        self
    }

    /// How long a first ejection lasts, and the cap as it doubles on repeated ejections (raised
    /// to `base` if lower). The periods follow [`rpc_core::backoff::Backoff`] without jitter.
    ///
    /// ```
    /// use std::time::Duration;
    /// use rpc_discovery::BalanceConfig;
    ///
    /// let config =
    ///     BalanceConfig::new().ejection(Duration::from_millis(500), Duration::from_secs(10));
    /// # let _ = config;
    /// ```
    #[must_use]
    pub fn ejection(mut self, base: Duration, max: Duration) -> Self {
        self.ejection = Backoff::new(base, max);
        self
    }

    /// A circuit breaker per endpoint: an endpoint whose breaker is open gets no calls until it
    /// half-opens; its probe calls decide. Off by default (ejection already covers failures in a
    /// row; a breaker adds the failure rate over a window).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use rpc_core::middleware::{BreakerConfig, Stats};
    /// use rpc_discovery::BalanceConfig;
    ///
    /// let stats = Arc::new(Stats::default());
    /// let config = BalanceConfig::new().breaker(BreakerConfig::default(), stats);
    /// # let _ = config;
    /// ```
    #[must_use]
    pub fn breaker(mut self, config: BreakerConfig, stats: Arc<Stats>) -> Self {
        self.breaker = Some((config, stats));
        self
    }

    /// Keepalive on every endpoint whose [`Endpoint`] does not set its own: a PING after
    /// `interval` without input, and the connection closed when nothing comes back within
    /// `timeout`. The calls it carried then fail with `Unavailable`, which counts toward the
    /// endpoint's ejection, so that a backend that froze (still holding its connections, never
    /// answering) loses its calls without deadlines too. On by default: 10 s and 5 s.
    ///
    /// ```
    /// use std::time::Duration;
    /// use rpc_discovery::BalanceConfig;
    ///
    /// let config = BalanceConfig::new().keepalive(Duration::from_secs(5), Duration::from_secs(2));
    /// # let _ = config;
    /// ```
    #[must_use]
    pub fn keepalive(mut self, interval: Duration, timeout: Duration) -> Self {
        self.keepalive = Some((interval, timeout));
        self
    }

    /// No keepalive on endpoints that do not set their own (see [`BalanceConfig::keepalive`]).
    ///
    /// ```
    /// use rpc_discovery::BalanceConfig;
    ///
    /// let config = BalanceConfig::new().no_keepalive();
    /// # let _ = config;
    /// ```
    #[must_use]
    pub fn no_keepalive(mut self) -> Self {
        self.keepalive = None;
        self
    }

    /// How each instance is reached: a function from the instance to an [`Endpoint`] (to set
    /// timeouts, codecs, keepalive). Default: `Endpoint::from_uri(addr)` with a 1 s connect
    /// timeout. An endpoint without keepalive gets the channel's ([`BalanceConfig::keepalive`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// use rpc_core::{Endpoint, Status};
    /// use rpc_discovery::BalanceConfig;
    ///
    /// let config = BalanceConfig::new().endpoint(|instance| {
    ///     Endpoint::from_uri(&instance.addr)
    ///         .map(|e| e.connect_timeout(Duration::from_millis(250)))
    ///         .map_err(|e| Status::invalid_argument(e.to_string()))
    /// });
    /// # let _ = config;
    /// ```
    #[must_use]
    pub fn endpoint(
        mut self,
        f: impl Fn(&Instance) -> Result<Endpoint, Status> + Send + Sync + 'static,
    ) -> Self {
        self.endpoint = Arc::new(f);
        self
    }
}
