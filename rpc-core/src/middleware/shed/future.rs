//! The future of [`LoadShed`](super::LoadShed).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tokio::time::Instant;

use super::limit::State;
use crate::message::Response;
use crate::status::Status;

pin_project_lite::pin_project! {
    /// The future of [`LoadShed`](super::LoadShed): an admitted call, holding its place under the
    /// limit until it ends (or is dropped), or the refusal of a shed call.
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        outcome: Outcome<F>,
    }
}

pin_project_lite::pin_project! {
    #[project = OutcomeProj]
    #[derive(Debug)]
    enum Outcome<F> {
        Admitted { #[pin] fut: F, slot: Option<Slot> },
        Shed { status: Option<Status> },
    }
}

/// A call's place under the limit; gives it back when dropped, and tells AIMD about calls that
/// were dropped unanswered.
#[derive(Debug)]
pub(super) struct Slot {
    state: Arc<State>,
    /// When the call started; `None` once its outcome was reported.
    started: Option<Instant>,
}

impl Slot {
    /// Takes a place that [`State::enter`] already counted.
    pub(super) fn new(state: Arc<State>) -> Slot {
        Slot {
            state,
            started: Some(Instant::now()),
        }
    }

    /// Gives the place back after the call ended with `result`.
    fn finish(mut self, result: &Result<Response, Status>) {
        if let Some(started) = self.started.take() {
            self.state.adjust(started.elapsed(), Some(result));
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(started) = self.started {
            self.state.adjust(started.elapsed(), None);
        }
        self.state.leave();
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn admitted(fut: F, slot: Slot) -> Self {
        ResponseFuture {
            outcome: Outcome::Admitted {
                fut,
                slot: Some(slot),
            },
        }
    }

    pub(super) fn shed(status: Status) -> Self {
        ResponseFuture {
            outcome: Outcome::Shed {
                status: Some(status),
            },
        }
    }
}

impl<F: Future<Output = Result<Response, Status>>> Future for ResponseFuture<F> {
    type Output = Result<Response, Status>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().outcome.project() {
            OutcomeProj::Admitted { fut, slot } => {
                let result = ready!(fut.poll(cx));
                if let Some(slot) = slot.take() {
                    slot.finish(&result);
                }
                Poll::Ready(result)
            }
            OutcomeProj::Shed { status } => Poll::Ready(Err(status
                .take()
                .unwrap_or_else(|| Status::internal("polled after completion")))),
        }
    }
}
