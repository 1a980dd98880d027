//! Default deadlines.

mod layer;

use std::task::{Context, Poll};
use std::time::Duration;

use tower::Service;

pub use self::layer::DeadlineLayer;

use super::{named, PerMethod};
use crate::client::OpenStream;
use crate::message::{Request, Response};
use crate::status::Status;
use crate::stream::{RawSender, RawStreaming};
use crate::BoxFuture;

/// Gives calls without a deadline a default one: the service of [`DeadlineLayer`], which says
/// which.
///
/// `Deadline` only rewrites the request: its readiness is the inner service's (backpressure
/// passes through), and its future is the inner service's. It does not time the call itself;
/// the channel and the server enforce the deadline it sets.
#[derive(Debug, Clone)]
pub struct Deadline<S> {
    inner: S,
    timeouts: PerMethod<Option<Duration>>,
}

named!(Deadline);

impl<S> Deadline<S> {
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

impl<S> Service<Request> for Deadline<S>
where
    S: Service<Request, Response = Response, Error = Status>,
{
    type Response = Response;
    type Error = Status;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> S::Future {
        let req = self.with_default(req);
        self.inner.call(req)
    }
}

impl<S> Deadline<S> {
    /// `req` with the default deadline when neither it nor the task's context has one.
    fn with_default(&self, req: Request) -> Request {
        if req.deadline().is_some() || crate::Context::current_deadline().is_some() {
            return req;
        }
        let timeout = req
            .descriptor()
            .and_then(|d| d.timeout)
            .or(*self.timeouts.get(&req));
        match timeout {
            Some(t) => req.with_timeout(t),
            None => req,
        }
    }
}

/// A stream gets the default deadline as a call does: it bounds the whole stream.
impl<S: OpenStream> OpenStream for Deadline<S> {
    fn open_stream(
        &self,
        request: Request,
        stream_flags: u8,
    ) -> BoxFuture<'static, Result<(Option<RawSender>, RawStreaming), Status>> {
        self.inner
            .open_stream(self.with_default(request), stream_flags)
    }
}
