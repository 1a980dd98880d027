//! The future of [`RateLimit`](super::RateLimit).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::message::Response;
use crate::status::Status;

pin_project_lite::pin_project! {
    #[project = OutcomeProj]
    #[derive(Debug)]
    enum Outcome<F> {
        Inner { #[pin] fut: F },
        Refused { status: Option<Status> },
    }
}

pin_project_lite::pin_project! {
    /// The future of [`RateLimit`](super::RateLimit): the inner service's, or an immediate
    /// refusal. Also exported as [`RateLimitFuture`](crate::middleware::RateLimitFuture).
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        outcome: Outcome<F>,
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn admitted(fut: F) -> Self {
        ResponseFuture {
            outcome: Outcome::Inner { fut },
        }
    }

    pub(super) fn refused(status: Status) -> Self {
        ResponseFuture {
            outcome: Outcome::Refused {
                status: Some(status),
            },
        }
    }
}

impl<F: Future<Output = Result<Response, Status>>> Future for ResponseFuture<F> {
    type Output = Result<Response, Status>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().outcome.project() {
            OutcomeProj::Inner { fut } => fut.poll(cx),
            OutcomeProj::Refused { status } => Poll::Ready(Err(status
                .take()
                .unwrap_or_else(|| Status::internal("polled after completion")))),
        }
    }
}
