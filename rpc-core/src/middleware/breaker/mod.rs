//! Circuit breaking.

mod circuit;
mod config;
pub mod future;
mod layer;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tower::Service;

pub use self::circuit::{Admission, BreakerState, CircuitBreaker};
pub use self::config::BreakerConfig;
pub use self::layer::CircuitBreakerLayer;

use self::future::ResponseFuture;
use super::{named, Stats};
use crate::message::{Request, Response};
use crate::status::Status;

/// A circuit breaker per service: the service of [`CircuitBreakerLayer`], which says when the
/// breakers open and close.
///
/// `CircuitBreakerService` is always ready and cannot apply backpressure: each admitted call is
/// sent on its own clone of the inner service, which it waits to be ready, and a refused call
/// needs no inner service at all. That way an open breaker refuses at once, even while the inner
/// service could not take a call (a channel that cannot connect).
#[derive(Debug, Clone)]
pub struct CircuitBreakerService<S> {
    inner: S,
    config: BreakerConfig,
    stats: Arc<Stats>,
    breakers: Arc<Mutex<HashMap<String, Arc<CircuitBreaker>>>>,
}

named!(CircuitBreakerService);

impl<S> CircuitBreakerService<S> {
    /// The breaker of `service`, created closed on first use.
    pub fn breaker(&self, service: &str) -> Arc<CircuitBreaker> {
        let mut map = self.breakers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = map.get(service) {
            return b.clone();
        }
        let b = Arc::new(CircuitBreaker::new(
            service,
            self.config.clone(),
            self.stats.clone(),
        ));
        map.insert(service.to_owned(), b.clone());
        b
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

impl<S> Service<Request> for CircuitBreakerService<S>
where
    S: Service<Request, Response = Response, Error = Status> + Clone,
{
    type Response = Response;
    type Error = Status;
    type Future = ResponseFuture<S>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        // Each admitted call waits for readiness of its own clone.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> ResponseFuture<S> {
        let breaker = self.breaker(req.service());
        match breaker.admit() {
            Ok(admission) => ResponseFuture::admitted(&self.inner, req, breaker, admission),
            Err(status) => ResponseFuture::refused(status),
        }
    }
}
