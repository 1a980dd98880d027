//! Rate limits and per-caller quotas.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;
use tower::{Layer, Service};

use super::{named, Stats};
use crate::message::{Request, Response};
use crate::status::{Delivery, Status};

/// The status metadata key of the retry-after hint on refused calls: milliseconds, as text.
pub const RETRY_AFTER_MS: &str = "retry-after-ms";

/// A token bucket: `rate` tokens per second, at most `burst` saved up.
#[derive(Debug, Clone)]
struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn new(rate: f64, burst: f64) -> Bucket {
        Bucket {
            rate,
            burst,
            tokens: burst,
            at: Instant::now(),
        }
    }

    /// Adds the tokens earned since the last look; then `Ok` if one is there, or how long until
    /// one is. Takes nothing.
    fn check(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.rate))
        }
    }

    fn is_full(&self, now: Instant) -> bool {
        self.tokens + now.saturating_duration_since(self.at).as_secs_f64() * self.rate >= self.burst
    }
}

#[derive(Debug)]
struct Limits {
    global: Option<Mutex<Bucket>>,
    per_caller: Option<(f64, f64)>,
    caller_key: String,
    callers: Mutex<HashMap<String, Bucket>>,
    stats: Arc<Stats>,
}

/// Token-bucket rate limits: one for all calls, and one quota per caller, the caller being named by
/// a request metadata entry (`caller` by default; calls without it share the quota of `""`).
/// Over-limit calls get `ResourceExhausted` with a [`RETRY_AFTER_MS`] hint, without reaching the
/// service.
///
/// ```
/// use rpc_core::middleware::RateLimitLayer;
/// // 10,000 calls/s in all, and 100/s (bursts of 20) per caller.
/// let layer = RateLimitLayer::new().global(10_000.0, 1_000.0).per_caller(100.0, 20.0);
/// ```
#[derive(Debug, Clone)]
pub struct RateLimitLayer {
    global: Option<(f64, f64)>,
    per_caller: Option<(f64, f64)>,
    caller_key: String,
    stats: Arc<Stats>,
}

impl Default for RateLimitLayer {
    fn default() -> Self {
        RateLimitLayer {
            global: None,
            per_caller: None,
            caller_key: "caller".to_owned(),
            stats: Arc::default(),
        }
    }
}

impl RateLimitLayer {
    /// No limits yet.
    pub fn new() -> RateLimitLayer {
        RateLimitLayer::default()
    }

    /// `rate` calls per second in all, bursts of up to `burst`.
    #[must_use]
    pub fn global(mut self, rate: f64, burst: f64) -> Self {
        self.global = Some((rate.max(f64::MIN_POSITIVE), burst.max(1.0)));
        self
    }

    /// `rate` calls per second per caller, bursts of up to `burst`.
    #[must_use]
    pub fn per_caller(mut self, rate: f64, burst: f64) -> Self {
        self.per_caller = Some((rate.max(f64::MIN_POSITIVE), burst.max(1.0)));
        self
    }

    /// The metadata key naming the caller. Default `caller`.
    #[must_use]
    pub fn caller_key(mut self, key: impl Into<String>) -> Self {
        self.caller_key = key.into();
        self
    }

    /// Where to count refusals.
    #[must_use]
    pub fn stats(mut self, stats: Arc<Stats>) -> Self {
        self.stats = stats;
        self
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> RateLimit<S> {
        RateLimit {
            inner,
            limits: Arc::new(Limits {
                global: self.global.map(|(r, b)| Mutex::new(Bucket::new(r, b))),
                per_caller: self.per_caller,
                caller_key: self.caller_key.clone(),
                callers: Mutex::default(),
                stats: self.stats.clone(),
            }),
        }
    }
}

/// The service of [`RateLimitLayer`].
#[derive(Debug, Clone)]
pub struct RateLimit<S> {
    inner: S,
    limits: Arc<Limits>,
}

named!(RateLimit);

const MAX_CALLERS: usize = 100_000;

impl Limits {
    /// Admits a call only if every bucket that applies has a token, and then takes one from each,
    /// so that a call refused by one limit spends nothing of the others.
    fn check(&self, req: &Request) -> Result<(), Status> {
        let now = Instant::now();
        let caller = req.metadata().get_str(&self.caller_key).unwrap_or("");
        // The caller table is locked only when there are quotas to check.
        let mut callers = self
            .per_caller
            .map(|_| self.callers.lock().unwrap_or_else(|e| e.into_inner()));
        let mut bucket = None;
        if let (Some((rate, burst)), Some(callers)) = (self.per_caller, callers.as_mut()) {
            if !callers.contains_key(caller) {
                if callers.len() >= MAX_CALLERS {
                    // Forget callers whose buckets refilled: they are as good as new.
                    callers.retain(|_, b| !b.is_full(now));
                }
                callers.insert(caller.to_owned(), Bucket::new(rate, burst));
            }
            if let Some(b) = callers.get_mut(caller) {
                if let Err(wait) = b.check(now) {
                    let why = format!("caller {caller:?} is over its quota of {rate}/s");
                    return Err(self.refuse(req, why, wait));
                }
                bucket = Some(b);
            }
        }
        if let Some(global) = &self.global {
            let mut g = global.lock().unwrap_or_else(|e| e.into_inner());
            if let Err(wait) = g.check(now) {
                let why = format!("rate limit of {}/s reached", g.rate);
                return Err(self.refuse(req, why, wait));
            }
            g.tokens -= 1.0;
        }
        if let Some(b) = bucket {
            b.tokens -= 1.0;
        }
        Ok(())
    }

    fn refuse(&self, req: &Request, why: String, wait: Duration) -> Status {
        Stats::bump(&self.stats.rate_limited);
        let ms = wait.as_millis().max(1) as u64;
        tracing::debug!(target: "rpc_core::middleware", path = req.path(), retry_after_ms = ms, "{why}");
        let mut status = Status::resource_exhausted(why).with_delivery(Delivery::NotSent);
        status.metadata_mut().insert(RETRY_AFTER_MS, ms.to_string());
        status
    }
}

impl<S> Service<Request> for RateLimit<S>
where
    S: Service<Request, Response = Response, Error = Status>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Status;
    type Future = RateLimitFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        match self.limits.check(&req) {
            Ok(()) => RateLimitFuture {
                outcome: Outcome::Inner {
                    fut: self.inner.call(req),
                },
            },
            Err(status) => RateLimitFuture {
                outcome: Outcome::Refused {
                    status: Some(status),
                },
            },
        }
    }
}

pin_project_lite::pin_project! {
    #[project = OutcomeProj]
    #[derive(Debug)]
    enum Outcome<F> {
        Inner { #[pin] fut: F },
        Refused { status: Option<Status> },
    }
}

pin_project_lite::pin_project! {
    /// The future of [`RateLimit`]: the inner service's, or an immediate refusal.
    #[derive(Debug)]
    pub struct RateLimitFuture<F> {
        #[pin]
        outcome: Outcome<F>,
    }
}

impl<F: std::future::Future<Output = Result<Response, Status>>> std::future::Future
    for RateLimitFuture<F>
{
    type Output = Result<Response, Status>;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().outcome.project() {
            OutcomeProj::Inner { fut } => fut.poll(cx),
            OutcomeProj::Refused { status } => Poll::Ready(Err(status
                .take()
                .unwrap_or_else(|| Status::internal("polled after completion")))),
        }
    }
}
