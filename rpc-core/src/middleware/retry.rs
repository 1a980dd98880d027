//! Retries under a budget, with failover.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tower::retry::budget::{Budget, TpsBudget};
use tower::{Layer, Service};

use super::{named, ready_call, Attempts, MiddlewareFuture, PerMethod, Stats};
use crate::message::{Request, Response};
use crate::status::{Code, Delivery, Status};

/// When and how often to retry.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    max_attempts: u32,
    backoff_base: Duration,
    backoff_max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            backoff_base: Duration::from_millis(5),
            backoff_max: Duration::from_millis(500),
        }
    }
}

impl RetryPolicy {
    /// Three attempts in all, backoff from 5 ms doubling to 500 ms, with full jitter.
    pub fn new() -> RetryPolicy {
        RetryPolicy::default()
    }

    /// Attempts in all, the first included (1: never retry).
    #[must_use]
    pub fn max_attempts(mut self, n: u32) -> RetryPolicy {
        self.max_attempts = n.max(1);
        self
    }

    /// The backoff before the first retry, doubling for each next one up to `max`; each wait is
    /// drawn uniformly from zero to that value (full jitter).
    #[must_use]
    pub fn backoff(mut self, base: Duration, max: Duration) -> RetryPolicy {
        self.backoff_base = base;
        self.backoff_max = max.max(base);
        self
    }

    fn backoff_for(&self, retry: u32) -> Duration {
        let cap = self
            .backoff_base
            .saturating_mul(1u32 << retry.min(20))
            .min(self.backoff_max);
        cap.mul_f64(fastrand::f64())
    }
}

/// Caps retries at a share of recent calls plus a small floor (as Finagle and Linkerd do), so that
/// when everything fails, retries add at most that share of extra load.
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

    fn deposit(&self) {
        self.inner.deposit();
    }

    fn withdraw(&self) -> bool {
        self.inner.withdraw()
    }
}

/// Retries failed calls when it is safe: any call that provably never reached a server
/// (`Delivery::NotSent` or `Unprocessed`), and idempotent calls ([`Request::is_idempotent`],
/// from `#[rpc(idempotent)]`) that failed with `Unavailable`, `ResourceExhausted` or `Aborted`.
/// Never past the call's deadline, and only while the [`RetryBudget`] allows.
///
/// Over a balanced channel each retry goes to an endpoint the call has not tried yet, when there
/// is one ([`Attempts`]).
#[derive(Debug, Clone, Default)]
pub struct RetryLayer {
    policy: PerMethod<RetryPolicy>,
    budget: RetryBudget,
    stats: Arc<Stats>,
}

impl RetryLayer {
    /// The default policy and budget.
    pub fn new() -> RetryLayer {
        RetryLayer::default()
    }

    /// One policy for every call.
    #[must_use]
    pub fn policy(mut self, policy: RetryPolicy) -> RetryLayer {
        self.policy = PerMethod::new(policy);
        self
    }

    /// Policies per service and method.
    #[must_use]
    pub fn per_method(mut self, policy: PerMethod<RetryPolicy>) -> RetryLayer {
        self.policy = policy;
        self
    }

    /// The budget (shared by clones of the layer and the services it makes).
    #[must_use]
    pub fn budget(mut self, budget: RetryBudget) -> RetryLayer {
        self.budget = budget;
        self
    }

    /// Where to count retries.
    #[must_use]
    pub fn stats(mut self, stats: Arc<Stats>) -> RetryLayer {
        self.stats = stats;
        self
    }
}

impl<S> Layer<S> for RetryLayer {
    type Service = Retry<S>;

    fn layer(&self, inner: S) -> Retry<S> {
        Retry {
            inner,
            config: Arc::new(self.clone()),
        }
    }
}

/// The service of [`RetryLayer`].
#[derive(Debug, Clone)]
pub struct Retry<S> {
    inner: S,
    config: Arc<RetryLayer>,
}

named!(Retry);

fn may_retry(req: &Request, status: &Status) -> bool {
    match status.delivery() {
        Delivery::NotSent | Delivery::Unprocessed => true,
        Delivery::Sent => {
            req.is_idempotent()
                && matches!(
                    status.code(),
                    Code::Unavailable | Code::ResourceExhausted | Code::Aborted
                )
        }
    }
}

impl<S> Service<Request> for Retry<S>
where
    S: Service<Request, Response = Response, Error = Status> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = Response;
    type Error = Status;
    type Future = MiddlewareFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        // Each attempt waits for readiness of its own clone.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request) -> MiddlewareFuture {
        let inner = self.inner.clone();
        let config = self.config.clone();
        Box::pin(async move {
            let policy = config.policy.get(&req).clone();
            config.budget.deposit();
            Stats::bump(&config.stats.calls);
            if policy.max_attempts > 1 {
                Attempts::of(&mut req);
            }
            let mut attempt = 1;
            loop {
                if attempt >= policy.max_attempts {
                    // The last attempt: nothing to keep the request for.
                    return ready_call(inner, req).await;
                }
                let result = ready_call(inner.clone(), req.clone()).await;
                let status = match result {
                    Ok(resp) => return Ok(resp),
                    Err(status) => status,
                };
                if !may_retry(&req, &status) {
                    return Err(status);
                }
                let wait = policy.backoff_for(attempt - 1);
                if let Some(deadline) = req.deadline().or_else(crate::Context::current_deadline) {
                    if tokio::time::Instant::now() + wait >= deadline {
                        return Err(status);
                    }
                }
                if !config.budget.withdraw() {
                    Stats::bump(&config.stats.retries_over_budget);
                    tracing::debug!(target: "rpc_core::middleware", path = req.path(), attempt, status = %status, "retry refused by the retry budget");
                    return Err(status);
                }
                Stats::bump(&config.stats.retries);
                tracing::debug!(target: "rpc_core::middleware", path = req.path(), attempt, status = %status, wait_us = wait.as_micros() as u64, "retrying");
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
        })
    }
}
