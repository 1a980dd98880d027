//! Default deadlines.

mod layer;

use std::task::{Context, Poll};
use std::time::Duration;

use tower::Service;

pub use self::layer::DeadlineLayer;

use super::{named, PerMethod};
use crate::message::{Request, Response};
use crate::status::Status;

/// Gives calls without a deadline a default one: the service of [`DeadlineLayer`], which says
/// which.
///
/// `Deadline` only rewrites the request: its readiness is the inner service's (backpressure
/// passes through), and its future is the inner service's. It does not time the call itself;
/// the channel and the server enforce the deadline it sets.
#[derive(Debug, Clone)]
pub struct Deadline<S> {
    inner: S,
    timeouts: PerMethod<Option<Duration>>,
}

named!(Deadline);

impl<S> Deadline<S> {
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

impl<S> Service<Request> for Deadline<S>
where
    S: Service<Request, Response = Response, Error = Status>,
{
    type Response = Response;
    type Error = Status;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> S::Future {
        if req.deadline().is_none() && crate::Context::current_deadline().is_none() {
            let timeout = req
                .descriptor()
                .and_then(|d| d.timeout)
                .or(*self.timeouts.get(&req));
            if let Some(t) = timeout {
                req = req.with_timeout(t);
            }
        }
        self.inner.call(req)
    }
}
