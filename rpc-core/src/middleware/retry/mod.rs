//! Retries under a budget, with failover.

mod budget;
mod layer;
mod policy;

use std::sync::Arc;
use std::task::{Context, Poll};

use tower::{Service, ServiceExt};

pub use self::budget::RetryBudget;
pub use self::layer::RetryLayer;
pub use self::policy::RetryPolicy;

use self::policy::may_retry;
pub(crate) use self::policy::repeat_cannot_help;
use super::{named, Attempts, MiddlewareFuture, Stats};
use crate::client::OpenStream;
use crate::message::{Request, Response};
use crate::status::Status;
use crate::stream::{RawSender, RawStreaming};
use crate::BoxFuture;

/// Retries failed calls when it is safe, under a budget: the service of [`RetryLayer`], which
/// says when a call is retried.
///
/// `Retry` is always ready and cannot apply backpressure: every attempt of a call is sent on its
/// own clone of the inner service, which it waits to be ready (the inner service's backpressure
/// applies per attempt). Readiness is awaited per attempt inside the call's future rather than
/// once in `poll_ready`, because a retry, sent after its backoff, needs a ready service of its own:
/// the first attempt's readiness was spent on the first attempt.
///
/// Its future is the boxed [`MiddlewareFuture`]: see there why.
#[derive(Debug, Clone)]
pub struct Retry<S> {
    inner: S,
    config: Arc<RetryLayer>,
}

named!(Retry);

impl<S> Retry<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes this service, returning the inner one.
    pub fn into_inner(self) -> S {
        self.inner
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
        // Each attempt is sent on a clone of `inner`, which this future keeps until it ends, so
        // that the service every attempt went out on outlives its answer (a `Channel` fails a
        // call still waiting for its connection once its last handle is gone).
        let inner = self.inner.clone();
        let config = self.config.clone();
        Box::pin(async move {
            let policy = config.policy.get(&req).clone();
            Stats::bump(&config.stats.calls);
            // Only calls that may be retried earn retries, and each once per budget however
            // many layers share it (the call's `Attempts` remembers).
            if policy.attempts() > 1 && Attempts::of(&mut req).first_deposit(config.budget.id()) {
                config.budget.deposit();
            }
            let mut attempt = 1;
            loop {
                if attempt >= policy.attempts() {
                    // The last attempt: nothing to keep the request for.
                    return inner.clone().oneshot(req).await;
                }
                let status = match inner.clone().oneshot(req.clone()).await {
                    Ok(resp) => return Ok(resp),
                    Err(status) => status,
                };
                if !may_retry(&req, &status) {
                    return Err(status);
                }
                let wait = policy.wait_before(attempt - 1);
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

/// Streams are opened once, never retried: a stream's messages are not kept for a replay.
impl<S: OpenStream> OpenStream for Retry<S> {
    fn open_stream(
        &self,
        request: Request,
        stream_flags: u8,
    ) -> BoxFuture<'static, Result<(Option<RawSender>, RawStreaming), Status>> {
        self.inner.open_stream(request, stream_flags)
    }
}
