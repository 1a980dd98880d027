//! The future of [`CircuitBreakerService`](super::CircuitBreakerService).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tower::util::Oneshot;
use tower::Service;

use super::{Admission, CircuitBreaker};
use crate::message::{Request, Response};
use crate::status::Status;

pin_project_lite::pin_project! {
    /// The future of [`CircuitBreakerService`](super::CircuitBreakerService): a call the breaker
    /// admitted, sent on its own clone of the inner service once that clone is ready, whose
    /// outcome it reports to the breaker; or the breaker's refusal.
    ///
    /// Dropped before the call ends, it tells the breaker the call was cancelled (which frees a
    /// half-open breaker's probe slot without counting as a success or a failure).
    pub struct ResponseFuture<S: Service<Request>> {
        #[pin]
        state: State<S>,
        pending: Option<Pending>,
        // A clone of the service the call went out on, kept until the answer: `Oneshot` drops
        // its own once it has called it, and a `Channel` fails a call still waiting for its
        // connection once its last handle is gone.
        service: Option<S>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<S: Service<Request>> {
        Admitted { #[pin] call: Oneshot<S, Request> },
        Refused { status: Option<Status> },
    }
}

/// An admitted call whose outcome the breaker has not heard yet; cancels it when dropped.
#[derive(Debug)]
struct Pending {
    breaker: Arc<CircuitBreaker>,
    admission: Option<Admission>,
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(admission) = self.admission.take() {
            self.breaker.cancel(admission);
        }
    }
}

impl<S: Service<Request>> ResponseFuture<S> {
    /// Sends `req` on a clone of `inner` once that clone is ready.
    pub(super) fn admitted(
        inner: &S,
        req: Request,
        breaker: Arc<CircuitBreaker>,
        admission: Admission,
    ) -> Self
    where
        S: Clone,
    {
        ResponseFuture {
            state: State::Admitted {
                call: Oneshot::new(inner.clone(), req),
            },
            service: Some(inner.clone()),
            pending: Some(Pending {
                breaker,
                admission: Some(admission),
            }),
        }
    }

    /// Fails at once with the breaker's `status`.
    pub(super) fn refused(status: Status) -> Self {
        ResponseFuture {
            state: State::Refused {
                status: Some(status),
            },
            pending: None,
            service: None,
        }
    }
}

impl<S> Future for ResponseFuture<S>
where
    S: Service<Request, Response = Response, Error = Status>,
{
    type Output = Result<Response, Status>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.state.project() {
            StateProj::Refused { status } => Poll::Ready(Err(status
                .take()
                .unwrap_or_else(|| Status::internal("polled after completion")))),
            StateProj::Admitted { call } => {
                let result = ready!(call.poll(cx));
                if let Some(pending) = this.pending.as_mut() {
                    if let Some(admission) = pending.admission.take() {
                        pending.breaker.record_result(admission, &result);
                    }
                }
                this.service.take();
                Poll::Ready(result)
            }
        }
    }
}

impl<S: Service<Request>> fmt::Debug for ResponseFuture<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Admitted { .. } => "admitted",
            State::Refused { .. } => "refused",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .field("pending", &self.pending)
            .finish()
    }
}
