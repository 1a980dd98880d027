//! Concurrency limits with load shedding.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;
use tower::{Layer, Service};

use super::{named, MiddlewareFuture, Stats};
use crate::message::{Request, Response};
use crate::status::{Code, Delivery, Status};

/// How many calls may be in flight.
#[derive(Debug, Clone, Copy)]
pub enum ShedLimit {
    /// A fixed number.
    Fixed(usize),
    /// Additive increase, multiplicative decrease: the limit grows by about one per `limit`
    /// calls that finish within `target` latency, and shrinks by 10% when a call is slower, fails
    /// with `DeadlineExceeded` or `ResourceExhausted`. Stays within `min..=max`.
    Aimd {
        /// The starting limit.
        initial: usize,
        /// The lowest limit.
        min: usize,
        /// The highest limit.
        max: usize,
        /// Latency above which a call counts as a sign of overload.
        target: Duration,
    },
}

#[derive(Debug)]
struct State {
    in_flight: AtomicUsize,
    limit: Mutex<f64>,
    mode: ShedLimit,
    stats: Arc<Stats>,
}

impl State {
    fn limit(&self) -> usize {
        match self.mode {
            ShedLimit::Fixed(n) => n,
            ShedLimit::Aimd { .. } => {
                *self.limit.lock().unwrap_or_else(|e| e.into_inner()) as usize
            }
        }
    }

    fn adjust(&self, latency: Duration, result: Option<&Result<Response, Status>>) {
        let ShedLimit::Aimd {
            min, max, target, ..
        } = self.mode
        else {
            return;
        };
        let overloaded = match result {
            // The call ended without an answer (its deadline passed, or the caller gave up): a
            // sign of overload if it had run longer than the target.
            None if latency <= target => return,
            None => true,
            Some(result) => {
                latency > target
                    || result.as_ref().err().is_some_and(|s| {
                        matches!(s.code(), Code::DeadlineExceeded | Code::ResourceExhausted)
                    })
            }
        };
        let mut l = self.limit.lock().unwrap_or_else(|e| e.into_inner());
        let next = if overloaded {
            *l * 0.9
        } else {
            *l + 1.0 / l.max(1.0)
        };
        *l = next.clamp(min as f64, max as f64);
    }
}

/// Refuses calls beyond a concurrency limit at once with `ResourceExhausted`, rather than letting
/// them queue without bound; admitted calls run as usual. Usually on the server side, around a
/// service: `Server::builder().add_service(LoadShedLayer::new(ShedLimit::Fixed(64)).layer(svc))`.
#[derive(Debug, Clone)]
pub struct LoadShedLayer {
    limit: ShedLimit,
    stats: Arc<Stats>,
}

impl LoadShedLayer {
    /// Sheds beyond `limit`.
    pub fn new(limit: ShedLimit) -> LoadShedLayer {
        LoadShedLayer {
            limit,
            stats: Arc::default(),
        }
    }

    /// Where to count shed calls.
    #[must_use]
    pub fn stats(mut self, stats: Arc<Stats>) -> Self {
        self.stats = stats;
        self
    }
}

impl<S> Layer<S> for LoadShedLayer {
    type Service = LoadShed<S>;

    fn layer(&self, inner: S) -> LoadShed<S> {
        let initial = match self.limit {
            ShedLimit::Fixed(n) => n,
            ShedLimit::Aimd {
                initial, min, max, ..
            } => initial.clamp(min, max.max(min)),
        };
        LoadShed {
            inner,
            state: Arc::new(State {
                in_flight: AtomicUsize::new(0),
                limit: Mutex::new(initial as f64),
                mode: self.limit,
                stats: self.stats.clone(),
            }),
        }
    }
}

/// The service of [`LoadShedLayer`].
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
        self.state.in_flight.load(Ordering::Relaxed)
    }
}

/// A call's place under the limit; gives it back when dropped, and tells AIMD about calls that
/// were dropped unanswered.
struct Slot {
    state: Arc<State>,
    started: Option<Instant>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(started) = self.started {
            self.state.adjust(started.elapsed(), None);
        }
        self.state.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<S> Service<Request> for LoadShed<S>
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
        let limit = self.state.limit();
        let before = self.state.in_flight.fetch_add(1, Ordering::AcqRel);
        let mut slot = Slot {
            state: self.state.clone(),
            started: None,
        };
        if before >= limit {
            drop(slot);
            Stats::bump(&self.state.stats.shed);
            tracing::debug!(target: "rpc_core::middleware", path = req.path(), limit, "call shed: over the concurrency limit");
            let status = Status::resource_exhausted(format!(
                "overloaded: {limit} calls in flight, the limit; try again later or elsewhere"
            ))
            .with_delivery(Delivery::Unprocessed);
            return Box::pin(std::future::ready(Err(status)));
        }
        let fut = self.inner.call(req);
        let started = Instant::now();
        slot.started = Some(started);
        Box::pin(async move {
            let result = fut.await;
            slot.started = None;
            slot.state.adjust(started.elapsed(), Some(&result));
            drop(slot);
            result
        })
    }
}
