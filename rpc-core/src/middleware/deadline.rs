//! Default deadlines.

use std::task::{Context, Poll};
use std::time::Duration;

use tower::{Layer, Service};

use super::{named, PerMethod};
use crate::message::{Request, Response};
use crate::status::Status;

/// Gives a call without a deadline one: the method's `#[rpc(timeout)]` when the request carries
/// its descriptor, else the configured timeout for its service or method. A deadline the caller
/// set (or inherited from the call being handled) is kept. The channel turns it into the call's
/// deadline on the wire, and the server enforces it.
#[derive(Debug, Clone)]
pub struct DeadlineLayer {
    timeouts: PerMethod<Option<Duration>>,
}

impl DeadlineLayer {
    /// `timeout` for every call that has no deadline and no method default.
    pub fn new(timeout: Duration) -> DeadlineLayer {
        DeadlineLayer {
            timeouts: PerMethod::new(Some(timeout)),
        }
    }

    /// Per-service and per-method timeouts (`None`: no default deadline).
    pub fn per_method(timeouts: PerMethod<Option<Duration>>) -> DeadlineLayer {
        DeadlineLayer { timeouts }
    }
}

impl<S> Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;

    fn layer(&self, inner: S) -> Deadline<S> {
        Deadline {
            inner,
            timeouts: self.timeouts.clone(),
        }
    }
}

/// The service of [`DeadlineLayer`].
#[derive(Debug, Clone)]
pub struct Deadline<S> {
    inner: S,
    timeouts: PerMethod<Option<Duration>>,
}

named!(Deadline);

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
