//! Concurrency limits with load shedding.

pub mod future;
mod layer;
mod limit;

use std::sync::Arc;
use std::task::{Context, Poll};

use tower::Service;

pub use self::layer::LoadShedLayer;
pub use self::limit::ShedLimit;

use self::future::{ResponseFuture, Slot};
use self::limit::State;
use super::{named, Stats};
use crate::message::{Request, Response};
use crate::status::{Delivery, Status};

/// Sheds calls beyond a concurrency limit: the service of [`LoadShedLayer`], which sets the limit.
///
/// `LoadShed` propagates the inner service's readiness (backpressure from the inner service
/// passes through) and counts a call against the limit in `call`, for as long as its future
/// lives. It reserves nothing in `poll_ready`: a call over the limit is refused, not made to
/// wait, and a ready clone that is never called must not hold a place.
#[derive(Debug, Clone)]
pub struct LoadShed<S> {
    inner: S,
    state: Arc<State>,
}

named!(LoadShed);

impl<S> LoadShed<S> {
    /// The current limit.
    pub fn limit(&self) -> usize {
        self.state.limit()
    }

    /// Calls in flight.
    pub fn in_flight(&self) -> usize {
        self.state.in_flight()
    }

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

impl<S> Service<Request> for LoadShed<S>
where
    S: Service<Request, Response = Response, Error = Status>,
{
    type Response = Response;
    type Error = Status;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let limit = self.state.limit();
        if self.state.enter() >= limit {
            self.state.leave();
            Stats::bump(&self.state.stats.shed);
            tracing::debug!(target: "rpc_core::middleware", path = req.path(), limit, "call shed: over the concurrency limit");
            let status = Status::resource_exhausted(format!(
                "overloaded: {limit} calls in flight, the limit; try again later or elsewhere"
            ))
            .with_delivery(Delivery::Unprocessed);
            return ResponseFuture::shed(status);
        }
        // The slot first, so that the place is given back even if `call` panics.
        let slot = Slot::new(self.state.clone());
        ResponseFuture::admitted(self.inner.call(req), slot)
    }
}
