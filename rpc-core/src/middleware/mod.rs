//! Fault-tolerance middleware: tower layers for the client side (over a [`Channel`](crate::Channel)
//! or a balanced channel) and the server side.
//!
//! | layer | what it does |
//! |---|---|
//! | [`DeadlineLayer`] | gives calls without a deadline the method's default timeout |
//! | [`RetryLayer`] | retries idempotent calls, and calls that never reached a server, under a budget |
//! | [`CircuitBreakerLayer`] | fails fast with `Unavailable` while a service keeps failing |
//! | [`RateLimitLayer`] | token buckets, global and per caller, answering `ResourceExhausted` with a retry-after |
//! | [`LoadShedLayer`] | a concurrency limit (fixed or AIMD) beyond which calls fail fast |
//! | [`HedgeLayer`] | a second attempt of an idempotent call after a delay; the first answer wins |
//! | [`FailsafeLayer`] | logs a failure and returns a caller-given fallback |
//!
//! Settings are per service and per method ([`PerMethod`]), with the `#[service]` attributes
//! (`idempotent`, `timeout`) as defaults. Every decision is a `tracing` event (target
//! `rpc_core::middleware`) and a counter in [`Stats`].
//!
//! ```
//! use std::time::Duration;
//! use rpc_core::middleware::{CircuitBreakerLayer, DeadlineLayer, RetryLayer, Stats};
//! use rpc_core::Endpoint;
//! use tower::ServiceBuilder;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let stats = Stats::new();
//! let channel = Endpoint::memory("mw-doc").connect_lazy();
//! let client = ServiceBuilder::new()
//!     .layer(DeadlineLayer::new(Duration::from_secs(2)))
//!     .layer(RetryLayer::new().stats(stats.clone()))
//!     .layer(CircuitBreakerLayer::new().stats(stats.clone()))
//!     .service(channel);
//! # let _ = client;
//! # }
//! ```

mod breaker;
mod deadline;
mod failsafe;
mod hedge;
mod rate_limit;
mod retry;
mod shed;

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub use breaker::{
    Admission, BreakerConfig, BreakerState, CircuitBreaker, CircuitBreakerLayer,
    CircuitBreakerService,
};
pub use deadline::{Deadline, DeadlineLayer};
pub use failsafe::{Failsafe, FailsafeLayer};
pub use hedge::{Hedge, HedgeDelay, HedgeLayer};
pub use rate_limit::{RateLimit, RateLimitFuture, RateLimitLayer, RETRY_AFTER_MS};
pub use retry::{Retry, RetryBudget, RetryLayer, RetryPolicy};
pub use shed::{LoadShed, LoadShedLayer, ShedLimit};

use crate::message::{Request, Response};
use crate::status::Status;
use crate::transport::BoxFuture;

/// The future of every middleware service here.
pub type MiddlewareFuture = BoxFuture<'static, Result<Response, Status>>;

/// A setting with overrides per service (`shop.Orders`) and per method (`shop.Orders/Place`).
///
/// ```
/// use rpc_core::middleware::PerMethod;
/// use rpc_core::Request;
///
/// let limits = PerMethod::new(100).service("shop.Orders", 50).method("shop.Orders/Place", 10);
/// assert_eq!(*limits.get(&Request::new("shop.Orders/Place", "")), 10);
/// assert_eq!(*limits.get(&Request::new("shop.Orders/Get", "")), 50);
/// assert_eq!(*limits.get(&Request::new("shop.Users/Get", "")), 100);
/// ```
#[derive(Debug, Clone)]
pub struct PerMethod<T> {
    default: T,
    services: HashMap<String, T>,
    methods: HashMap<String, T>,
}

impl<T> PerMethod<T> {
    /// `default` for every call.
    pub fn new(default: T) -> PerMethod<T> {
        PerMethod {
            default,
            services: HashMap::new(),
            methods: HashMap::new(),
        }
    }

    /// Overrides for one service.
    #[must_use]
    pub fn service(mut self, service: impl Into<String>, value: T) -> PerMethod<T> {
        self.services.insert(service.into(), value);
        self
    }

    /// Overrides for one method, by path.
    #[must_use]
    pub fn method(mut self, path: impl Into<String>, value: T) -> PerMethod<T> {
        self.methods.insert(path.into(), value);
        self
    }

    /// The setting for `req`: its method's, else its service's, else the default.
    pub fn get(&self, req: &Request) -> &T {
        if self.methods.is_empty() && self.services.is_empty() {
            return &self.default;
        }
        self.methods
            .get(req.path())
            .or_else(|| self.services.get(req.service()))
            .unwrap_or(&self.default)
    }
}

impl<T: Default> Default for PerMethod<T> {
    fn default() -> Self {
        PerMethod::new(T::default())
    }
}

/// The endpoints one call has tried, shared by the retries and hedges of that call. A balancer
/// records each pick here and, when it can, avoids the endpoints already tried, so that a retry
/// goes to another endpoint (failover).
#[derive(Debug, Default)]
pub struct Attempts {
    tried: Mutex<Vec<String>>,
}

impl Attempts {
    /// The attempts of `req`, created (and attached to it) when it has none yet.
    pub fn of(req: &mut Request) -> Arc<Attempts> {
        if let Some(a) = req.extensions().get::<Arc<Attempts>>() {
            return a.clone();
        }
        let a = Arc::new(Attempts::default());
        req.extensions_mut().insert(a.clone());
        a
    }

    /// Records that an attempt went to `endpoint`.
    pub fn record(&self, endpoint: &str) {
        self.tried
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(endpoint.to_owned());
    }

    /// `true` if an attempt already went to `endpoint`.
    pub fn tried(&self, endpoint: &str) -> bool {
        self.tried
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|t| t == endpoint)
    }

    /// The endpoints tried so far, in order.
    pub fn endpoints(&self) -> Vec<String> {
        self.tried.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

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

/// Waits until `svc` is ready, then calls it.
pub(crate) async fn ready_call<S>(mut svc: S, req: Request) -> Result<Response, Status>
where
    S: tower::Service<Request, Response = Response, Error = Status>,
{
    std::future::poll_fn(|cx| svc.poll_ready(cx)).await?;
    svc.call(req).await
}

/// Forwards the name and description of a wrapped server-side service, so that a layered service
/// still mounts on [`Server`](crate::Server) under its name.
macro_rules! named {
    ($t:ident) => {
        impl<S: $crate::server::NamedService> $crate::server::NamedService for $t<S> {
            fn service_name(&self) -> &str {
                self.inner.service_name()
            }

            fn descriptor(&self) -> Option<&'static $crate::describe::ServiceDescriptor> {
                self.inner.descriptor()
            }
        }
    };
}
pub(crate) use named;
