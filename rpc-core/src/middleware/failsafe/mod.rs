//! Failsafe: a failure becomes a fallback answer.

mod layer;

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower::Service;

pub use self::layer::FailsafeLayer;

use super::{named, MiddlewareFuture, Stats};
use crate::message::{Request, Response};
use crate::status::Status;

/// What answers a failed call.
type Fallback = Arc<dyn Fn(&Request, &Status) -> Result<Response, Status> + Send + Sync>;

/// Answers failed calls with a fallback: the service of [`FailsafeLayer`].
///
/// `Failsafe` propagates the inner service's readiness (backpressure passes through) and sends
/// each call on the inner service itself. Its future is the boxed [`MiddlewareFuture`], the same
/// type as [`Retry`](crate::middleware::Retry)'s, so that a client can choose between failover
/// and failsafe at run time and hold either as one type.
#[derive(Clone)]
pub struct Failsafe<S> {
    inner: S,
    fallback: Fallback,
    stats: Arc<Stats>,
}

impl<S: fmt::Debug> fmt::Debug for Failsafe<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Failsafe")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

named!(Failsafe);

impl<S> Failsafe<S> {
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

impl<S> Service<Request> for Failsafe<S>
where
    S: Service<Request, Response = Response, Error = Status>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Status;
    type Future = MiddlewareFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> MiddlewareFuture {
        let path = req.path().to_owned();
        // The request is kept for the fallback only when it is cheap: its body is shared.
        let kept = req.clone();
        let fut = self.inner.call(req);
        let fallback = self.fallback.clone();
        let stats = self.stats.clone();
        Box::pin(async move {
            match fut.await {
                Ok(r) => Ok(r),
                Err(status) => {
                    Stats::bump(&stats.fallbacks);
                    tracing::warn!(target: "rpc_core::middleware", path, status = %status, "call failed; answering with the fallback");
                    fallback(&kept, &status)
                }
            }
        })
    }
}
