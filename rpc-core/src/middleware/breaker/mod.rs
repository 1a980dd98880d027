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
use crate::client::OpenStream;
use crate::message::{Request, Response};
use crate::status::Status;
use crate::stream::{RawSender, RawStreaming};
use crate::BoxFuture;

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

/// Opening a stream goes through the service's breaker: refused while it is open, and the open's
/// outcome (not the stream's) is what the breaker learns.
impl<S: OpenStream> OpenStream for CircuitBreakerService<S> {
    fn open_stream(
        &self,
        request: Request,
        stream_flags: u8,
    ) -> BoxFuture<'static, Result<(Option<RawSender>, RawStreaming), Status>> {
        let breaker = self.breaker(request.service());
        let admission = match breaker.admit() {
            Ok(admission) => admission,
            Err(status) => return Box::pin(std::future::ready(Err(status))),
        };
        let opening = self.inner.open_stream(request, stream_flags);
        let mut admitted = Admitted {
            breaker,
            admission: Some(admission),
        };
        Box::pin(async move {
            let opened = opening.await;
            if let Some(admission) = admitted.admission.take() {
                admitted
                    .breaker
                    .record_error(admission, opened.as_ref().err());
            }
            opened
        })
    }
}

/// An admission whose outcome is not known yet: forgotten if the open is cancelled, so that a
/// half-open breaker's probe is not held forever.
struct Admitted {
    breaker: Arc<CircuitBreaker>,
    admission: Option<Admission>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Some(admission) = self.admission.take() {
            self.breaker.cancel(admission);
        }
    }
}
