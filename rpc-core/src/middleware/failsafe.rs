//! Failsafe: a failure becomes a fallback answer.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower::{Layer, Service};

use super::{named, MiddlewareFuture, Stats};
use crate::message::{Request, Response};
use crate::status::Status;

type Fallback = Arc<dyn Fn(&Request, &Status) -> Result<Response, Status> + Send + Sync>;

/// Dubbo's failsafe mode: a failed call is logged and answered with a caller-given fallback (for
/// calls whose result is optional, such as recommendations or audit logs).
///
/// ```
/// use rpc_core::middleware::FailsafeLayer;
/// use rpc_core::Response;
/// // An empty body decodes as the default message in Protobuf.
/// let layer = FailsafeLayer::new(|_req, _status| Ok(Response::new("")));
/// ```
#[derive(Clone)]
pub struct FailsafeLayer {
    fallback: Fallback,
    stats: Arc<Stats>,
}

impl fmt::Debug for FailsafeLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FailsafeLayer").finish_non_exhaustive()
    }
}

impl FailsafeLayer {
    /// Answers failures with `fallback(request, status)`.
    pub fn new(
        fallback: impl Fn(&Request, &Status) -> Result<Response, Status> + Send + Sync + 'static,
    ) -> FailsafeLayer {
        FailsafeLayer {
            fallback: Arc::new(fallback),
            stats: Arc::default(),
        }
    }

    /// Where to count fallbacks.
    #[must_use]
    pub fn stats(mut self, stats: Arc<Stats>) -> Self {
        self.stats = stats;
        self
    }
}

impl<S> Layer<S> for FailsafeLayer {
    type Service = Failsafe<S>;

    fn layer(&self, inner: S) -> Failsafe<S> {
        Failsafe {
            inner,
            fallback: self.fallback.clone(),
            stats: self.stats.clone(),
        }
    }
}

/// The service of [`FailsafeLayer`].
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
