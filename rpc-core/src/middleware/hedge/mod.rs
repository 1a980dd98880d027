//! Hedged calls.

mod delay;
mod layer;

use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::time::Instant;
use tower::{Service, ServiceExt};

pub use self::delay::HedgeDelay;
pub use self::layer::HedgeLayer;

use self::delay::Latencies;
use super::{named, Attempts, MiddlewareFuture, RetryBudget, Stats};
use crate::client::OpenStream;
use crate::message::{Request, Response};
use crate::middleware::retry::repeat_cannot_help;
use crate::status::Status;
use crate::stream::{RawSender, RawStreaming};
use crate::BoxFuture;

/// Sends a second attempt of a slow idempotent call: the service of [`HedgeLayer`], which says
/// when. The first success wins; an error waits for the other attempt, except a refusal about
/// the call itself (`InvalidArgument`, `Unauthenticated`, `PermissionDenied`, `Cancelled`), which
/// the other attempt would get too and is the answer at once.
///
/// `Hedge` is always ready and cannot apply backpressure: each attempt is sent on its own clone
/// of the inner service, which it waits to be ready (the inner service's backpressure applies per
/// attempt), because a hedged call needs two ready services at once, and the second one only
/// after the delay.
///
/// Its future is the boxed [`MiddlewareFuture`]: see there why.
#[derive(Debug, Clone)]
pub struct Hedge<S> {
    inner: S,
    delay: HedgeDelay,
    stats: Arc<Stats>,
    budget: RetryBudget,
    latencies: Arc<Latencies>,
}

named!(Hedge);

impl<S> Hedge<S> {
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

impl<S> Service<Request> for Hedge<S>
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
        // Each attempt is sent on a clone of `inner`, which this future keeps until it ends (see
        // `Retry::call`).
        let inner = self.inner.clone();
        if !req.is_idempotent() {
            return Box::pin(async move { inner.clone().oneshot(req).await });
        }
        let delay = self.delay.current(&self.latencies);
        let stats = self.stats.clone();
        let budget = self.budget.clone();
        let latencies = self.latencies.clone();
        Box::pin(async move {
            if Attempts::of(&mut req).first_deposit(budget.id()) {
                budget.deposit();
            }
            let started = Instant::now();
            let first = inner.clone().oneshot(req.clone());
            tokio::pin!(first);
            tokio::select! {
                r = &mut first => {
                    latencies.record(started.elapsed());
                    return r;
                }
                () = tokio::time::sleep(delay) => {}
            }
            if !budget.withdraw() {
                Stats::bump(&stats.retries_over_budget);
                tracing::debug!(
                    target: "rpc_core::middleware",
                    path = req.path(),
                    "hedge refused by the retry budget"
                );
                let r = first.await;
                if r.is_ok() {
                    latencies.record(started.elapsed());
                }
                return r;
            }
            Stats::bump(&stats.hedges);
            tracing::debug!(target: "rpc_core::middleware", path = req.path(), delay_us = delay.as_micros() as u64, "hedging: second attempt");
            let second = inner.clone().oneshot(req);
            tokio::pin!(second);
            let mut first_err: Option<Status> = None;
            let mut second_err: Option<Status> = None;
            loop {
                tokio::select! {
                    r = &mut first, if first_err.is_none() => match r {
                        Ok(resp) => {
                            latencies.record(started.elapsed());
                            return Ok(resp);
                        }
                        // An answer about the request or the caller: the other attempt would
                        // get it too, so it is the answer now.
                        Err(e) if repeat_cannot_help(e.code()) => return Err(e),
                        Err(e) => first_err = Some(e),
                    },
                    r = &mut second, if second_err.is_none() => match r {
                        Ok(resp) => {
                            Stats::bump(&stats.hedge_wins);
                            latencies.record(started.elapsed());
                            return Ok(resp);
                        }
                        Err(e) if repeat_cannot_help(e.code()) => return Err(e),
                        Err(e) => second_err = Some(e),
                    },
                }
                if let (Some(_), Some(e)) = (&first_err, &second_err) {
                    return Err(e.clone());
                }
            }
        })
    }
}

/// Streams are opened once, never hedged: a second copy of a stream would deliver its messages
/// twice.
impl<S: OpenStream> OpenStream for Hedge<S> {
    fn open_stream(
        &self,
        request: Request,
        stream_flags: u8,
    ) -> BoxFuture<'static, Result<(Option<RawSender>, RawStreaming), Status>> {
        self.inner.open_stream(request, stream_flags)
    }
}
