//! Rate limits and per-caller quotas.

mod bucket;
pub mod future;
mod layer;
mod limits;

use std::sync::Arc;
use std::task::{Context, Poll};

use tower::Service;

pub use self::layer::RateLimitLayer;

use self::future::ResponseFuture;
use self::limits::Limits;
use super::named;
use crate::client::OpenStream;
use crate::message::{Request, Response};
use crate::status::Status;
use crate::stream::{RawSender, RawStreaming};
use crate::BoxFuture;

pub use crate::status::RETRY_AFTER_MS;

/// Refuses calls over a rate or a caller's quota: the service of [`RateLimitLayer`], which sets
/// the limits.
///
/// `RateLimit` propagates the inner service's readiness (backpressure passes through) and
/// decides in `call`: a call over a limit is refused at once rather than delayed, so the
/// service reserves nothing in `poll_ready`.
#[derive(Debug, Clone)]
pub struct RateLimit<S> {
    inner: S,
    limits: Arc<Limits>,
}

named!(RateLimit);

impl<S> RateLimit<S> {
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

impl<S> Service<Request> for RateLimit<S>
where
    S: Service<Request, Response = Response, Error = Status>,
{
    type Response = Response;
    type Error = Status;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        match self.limits.check(&req) {
            Ok(()) => ResponseFuture::admitted(self.inner.call(req)),
            Err(status) => ResponseFuture::refused(status),
        }
    }
}

/// Opening a stream counts as a call against the limits; its messages do not.
impl<S: OpenStream> OpenStream for RateLimit<S> {
    fn open_stream(
        &self,
        request: Request,
        stream_flags: u8,
    ) -> BoxFuture<'static, Result<(Option<RawSender>, RawStreaming), Status>> {
        match self.limits.check(&request) {
            Ok(()) => self.inner.open_stream(request, stream_flags),
            Err(status) => Box::pin(std::future::ready(Err(status))),
        }
    }
}
