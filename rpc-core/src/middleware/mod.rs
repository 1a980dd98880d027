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
//! | [`AuthLayer`] | authenticates calls (bearer tokens, JWT, mTLS identities) and authorizes them by a [`Policy`] |
//! | [`BearerLayer`] | attaches a bearer token to outgoing calls |
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
//!
//! # Layout and readiness
//!
//! Each middleware follows tower's conventions: a module `foo` holding the service `Foo` (with
//! `get_ref`, `get_mut` and `into_inner`), its `FooLayer`, and `foo::future::ResponseFuture` when
//! the service has a future of its own. Every service and layer is also re-exported here.
//!
//! | service | `poll_ready` | future |
//! |---|---|---|
//! | [`Deadline`] | the inner service's | the inner service's |
//! | [`RateLimit`] | the inner service's | [`rate_limit::future::ResponseFuture`] |
//! | [`LoadShed`] | the inner service's | [`shed::future::ResponseFuture`] |
//! | [`Failsafe`] | the inner service's | [`MiddlewareFuture`] |
//! | [`CircuitBreakerService`] | always ready | [`breaker::future::ResponseFuture`] |
//! | [`Retry`] | always ready | [`MiddlewareFuture`] |
//! | [`Hedge`] | always ready | [`MiddlewareFuture`] |
//!
//! The services that are always ready cannot apply backpressure: each call drives its own clone
//! of the inner service, waiting for that clone's readiness before sending (with
//! [`tower::util::Oneshot`]). Retries and hedges need this because one call becomes several
//! attempts, and a breaker because it must refuse calls at once while open, without waiting for an
//! inner service that may never become ready. Put a load-shedding or limiting layer inside them
//! (or rely on the [`Channel`](crate::Channel)'s in-flight limit, which each attempt waits for).
//!
//! None of these services reserves anything in `poll_ready` itself: a rate limit or a load shed
//! refuses an over-limit call in `call` rather than making it wait. Those that propagate the inner
//! readiness clone the inner service with its own `Clone`, which for a `Channel` does not copy a
//! slot reserved by `poll_ready`.

mod attempts;
pub mod auth;
pub mod breaker;
pub mod deadline;
pub mod failsafe;
pub mod hedge;
mod per_method;
pub mod rate_limit;
pub mod retry;
pub mod shed;
mod stats;

pub use attempts::Attempts;
pub use auth::{AuthLayer, BearerLayer, Policy, Rule};
pub use breaker::{
    Admission, BreakerConfig, BreakerState, CircuitBreaker, CircuitBreakerLayer,
    CircuitBreakerService,
};
pub use deadline::{Deadline, DeadlineLayer};
pub use failsafe::{Failsafe, FailsafeLayer};
pub use hedge::{Hedge, HedgeDelay, HedgeLayer};
pub use per_method::PerMethod;
pub use rate_limit::future::ResponseFuture as RateLimitFuture;
pub use rate_limit::{RateLimit, RateLimitLayer, RETRY_AFTER_MS};
pub use retry::{Retry, RetryBudget, RetryLayer, RetryPolicy};
pub use shed::{LoadShed, LoadShedLayer, ShedLimit};
pub use stats::{Stats, StatsSnapshot};

use crate::message::Response;
use crate::status::Status;
use crate::BoxFuture;

/// The boxed future of the middleware whose calls are an async sequence of steps: [`Retry`]
/// (attempts, backoff sleeps), [`Hedge`] (two racing attempts and a timer) and [`Failsafe`].
///
/// A named future would have to spell out those steps as a hand-written state machine, and
/// would give each of these services a different future type; one boxed type lets a caller
/// choose among them at run time and store the result as one type (rpc-discovery's cluster
/// modes do). The cost is one allocation per call, on calls that already allocate per attempt.
pub type MiddlewareFuture = BoxFuture<'static, Result<Response, Status>>;

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
