//! Hedged calls.

use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::time::Instant;
use tower::{Layer, Service};

use super::{named, ready_call, Attempts, MiddlewareFuture, Stats};
use crate::message::{Request, Response};
use crate::status::Status;

/// When to send the second attempt.
#[derive(Debug, Clone, Copy)]
pub enum HedgeDelay {
    /// After a fixed delay.
    Fixed(Duration),
    /// After the given quantile (e.g. 0.95) of recent call latencies, clamped to `min..=max`;
    /// `max` until `min_samples` calls were seen.
    Percentile {
        /// The latency quantile, in 0..1.
        quantile: f64,
        /// The shortest delay.
        min: Duration,
        /// The longest delay, and the delay before enough samples.
        max: Duration,
        /// Calls to observe before trusting the quantile.
        min_samples: u64,
    },
}

#[derive(Debug)]
struct Latencies {
    hist: Histogram<u64>,
    since: Instant,
}

/// Hedging for idempotent calls ([`Request::is_idempotent`]): when the first attempt has not
/// answered after the [`HedgeDelay`], a second goes out (to another endpoint, over a balanced
/// channel, through [`Attempts`]). The first success wins and the other attempt is dropped, which
/// cancels it on the wire; a failure waits for the other attempt. Other calls pass through.
#[derive(Debug, Clone)]
pub struct HedgeLayer {
    delay: HedgeDelay,
    stats: Arc<Stats>,
}

impl HedgeLayer {
    /// Hedges after `delay`.
    pub fn new(delay: HedgeDelay) -> HedgeLayer {
        HedgeLayer {
            delay,
            stats: Arc::default(),
        }
    }

    /// Where to count hedges.
    #[must_use]
    pub fn stats(mut self, stats: Arc<Stats>) -> Self {
        self.stats = stats;
        self
    }
}

impl<S> Layer<S> for HedgeLayer {
    type Service = Hedge<S>;

    fn layer(&self, inner: S) -> Hedge<S> {
        let hist = Histogram::new_with_bounds(1, 60_000_000, 3).ok();
        Hedge {
            inner,
            delay: self.delay,
            stats: self.stats.clone(),
            latencies: Arc::new(hist.map(|hist| {
                Mutex::new(Latencies {
                    hist,
                    since: Instant::now(),
                })
            })),
        }
    }
}

/// The service of [`HedgeLayer`].
#[derive(Debug, Clone)]
pub struct Hedge<S> {
    inner: S,
    delay: HedgeDelay,
    stats: Arc<Stats>,
    latencies: Arc<Option<Mutex<Latencies>>>,
}

named!(Hedge);

/// Recent latencies are forgotten after this long, so the delay follows the service.
const LATENCY_WINDOW: Duration = Duration::from_secs(30);

impl<S> Hedge<S> {
    fn current_delay(&self) -> Duration {
        match self.delay {
            HedgeDelay::Fixed(d) => d,
            HedgeDelay::Percentile {
                quantile,
                min,
                max,
                min_samples,
            } => {
                let Some(lat) = self.latencies.as_ref() else {
                    return max;
                };
                let l = lat.lock().unwrap_or_else(|e| e.into_inner());
                if l.hist.len() < min_samples {
                    return max;
                }
                Duration::from_micros(l.hist.value_at_quantile(quantile)).clamp(min, max)
            }
        }
    }
}

fn record(latencies: &Option<Mutex<Latencies>>, d: Duration) {
    if let Some(lat) = latencies {
        let mut l = lat.lock().unwrap_or_else(|e| e.into_inner());
        if l.since.elapsed() > LATENCY_WINDOW {
            l.hist.reset();
            l.since = Instant::now();
        }
        let _ = l.hist.record((d.as_micros() as u64).max(1));
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
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request) -> MiddlewareFuture {
        let inner = self.inner.clone();
        if !req.is_idempotent() {
            return Box::pin(ready_call(inner, req));
        }
        let delay = self.current_delay();
        let stats = self.stats.clone();
        let latencies = self.latencies.clone();
        Box::pin(async move {
            Attempts::of(&mut req);
            let started = Instant::now();
            let first = ready_call(inner.clone(), req.clone());
            tokio::pin!(first);
            tokio::select! {
                r = &mut first => {
                    record(&latencies, started.elapsed());
                    return r;
                }
                () = tokio::time::sleep(delay) => {}
            }
            Stats::bump(&stats.hedges);
            tracing::debug!(target: "rpc_core::middleware", path = req.path(), delay_us = delay.as_micros() as u64, "hedging: second attempt");
            let second = ready_call(inner, req);
            tokio::pin!(second);
            let mut first_err: Option<Status> = None;
            let mut second_err: Option<Status> = None;
            loop {
                tokio::select! {
                    r = &mut first, if first_err.is_none() => match r {
                        Ok(resp) => {
                            record(&latencies, started.elapsed());
                            return Ok(resp);
                        }
                        Err(e) => first_err = Some(e),
                    },
                    r = &mut second, if second_err.is_none() => match r {
                        Ok(resp) => {
                            Stats::bump(&stats.hedge_wins);
                            record(&latencies, started.elapsed());
                            return Ok(resp);
                        }
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
