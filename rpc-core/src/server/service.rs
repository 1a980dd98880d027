//! What a server hosts: named tower services, erased so that one router holds them all.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use rpc_codec::Message;
use tokio::time::{Instant, Sleep};
use tower::Service;

use crate::context::Context as CallContext;
use crate::message::{Request, Response};
use crate::status::Status;
use crate::transport::BoxFuture;

/// A service that knows the name it is routed by (`package.Service`, the part of a method path
/// before the last `/`).
pub trait NamedService {
    /// The fully qualified service name.
    fn service_name(&self) -> &str;
}

pub(crate) type Reply = Result<Response, Status>;

/// A service with its type erased. One boxed future per call holds the service's own future, the
/// task-local context and the deadline timer together.
pub(crate) trait ErasedService: Send + Sync + 'static {
    fn call(&self, req: Request, ctx: CallContext, deadline: Option<Instant>) -> ServerCall;
}

pub(crate) type ServerCall = Pin<Box<dyn Future<Output = Reply> + Send>>;

pub(crate) struct Erased<S>(pub(crate) S);

impl<S> ErasedService for Erased<S>
where
    S: Service<Request, Response = Response, Error = Status> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
{
    fn call(&self, req: Request, ctx: CallContext, deadline: Option<Instant>) -> ServerCall {
        let mut svc = self.0.clone();
        // Most services are always ready; ask with a no-op waker and only wait when they are not.
        let mut noop = Context::from_waker(Waker::noop());
        let inner = match svc.poll_ready(&mut noop) {
            Poll::Ready(Ok(())) => Inner::Running { fut: svc.call(req) },
            Poll::Ready(Err(e)) => Inner::Failed { status: Some(e) },
            Poll::Pending => Inner::NotReady {
                svc: Some(svc),
                req: Some(req),
            },
        };
        let timer = match deadline {
            Some(d) => Timer::At {
                sleep: tokio::time::sleep_until(d),
            },
            None => Timer::Never,
        };
        Box::pin(ctx.scope(Call { inner, timer }))
    }
}

pin_project_lite::pin_project! {
    #[project = InnerProj]
    enum Inner<S: Service<Request>> {
        NotReady { svc: Option<S>, req: Option<Request> },
        Running { #[pin] fut: S::Future },
        Failed { status: Option<Status> },
    }
}

pin_project_lite::pin_project! {
    #[project = TimerProj]
    enum Timer {
        Never,
        At { #[pin] sleep: Sleep },
    }
}

pin_project_lite::pin_project! {
    /// A handler's future with its deadline.
    struct Call<S: Service<Request>> {
        #[pin]
        inner: Inner<S>,
        #[pin]
        timer: Timer,
    }
}

impl<S> Future for Call<S>
where
    S: Service<Request, Response = Response, Error = Status>,
{
    type Output = Reply;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Reply> {
        loop {
            let this = self.as_mut().project();
            let next = match this.inner.project() {
                InnerProj::Running { fut } => match fut.poll(cx) {
                    Poll::Ready(reply) => return Poll::Ready(reply),
                    Poll::Pending => break,
                },
                InnerProj::Failed { status } => {
                    return Poll::Ready(Err(status
                        .take()
                        .unwrap_or_else(|| Status::internal("handler polled after completion"))))
                }
                InnerProj::NotReady { svc, req } => {
                    let Some(s) = svc.as_mut() else {
                        return Poll::Ready(Err(Status::internal("service state lost")));
                    };
                    match s.poll_ready(cx) {
                        Poll::Pending => break,
                        Poll::Ready(Err(e)) => Inner::Failed { status: Some(e) },
                        Poll::Ready(Ok(())) => match (svc.take(), req.take()) {
                            (Some(mut s), Some(r)) => Inner::Running { fut: s.call(r) },
                            _ => return Poll::Ready(Err(Status::internal("service state lost"))),
                        },
                    }
                }
            };
            self.as_mut().project().inner.set(next);
        }
        match self.project().timer.project() {
            TimerProj::Never => Poll::Pending,
            TimerProj::At { sleep } => match sleep.poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(Status::deadline_exceeded(
                    "deadline exceeded while the server was handling the call",
                ))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

type Handler = Arc<dyn Fn(Request) -> BoxFuture<'static, Reply> + Send + Sync>;

/// A service assembled from closures that take and return raw (already encoded) bodies.
///
/// Generated services come from `#[service]`; this is the hand-made kind, for tests, proxies and
/// services that do their own encoding.
///
/// ```
/// use rpc_core::{server::RawService, Response};
///
/// let echo = RawService::new("demo.Echo")
///     .method("Echo", |req| async move { Ok(Response::new(req.into_body())) });
/// ```
#[derive(Clone)]
pub struct RawService {
    name: Arc<str>,
    methods: Arc<HashMap<Box<str>, Handler>>,
}

impl fmt::Debug for RawService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut methods: Vec<_> = self.methods.keys().collect();
        methods.sort();
        f.debug_struct("RawService")
            .field("name", &self.name)
            .field("methods", &methods)
            .finish()
    }
}

impl RawService {
    /// An empty service routed as `name`.
    pub fn new(name: &str) -> RawService {
        RawService {
            name: Arc::from(name),
            methods: Arc::new(HashMap::new()),
        }
    }

    /// Adds (or replaces) a method.
    #[must_use]
    pub fn method<F, Fut>(mut self, name: &str, handler: F) -> RawService
    where
        F: Fn(Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Reply> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |req| Box::pin(handler(req)));
        Arc::make_mut(&mut self.methods).insert(Box::from(name), handler);
        self
    }

    /// Adds a method that takes and returns typed messages. The request is decoded in the codec it
    /// arrived in and the reply is encoded in the same codec; a codec either type cannot use is
    /// answered with `Unimplemented` naming the ones it can, an undecodable request with
    /// `InvalidArgument`.
    ///
    /// ```
    /// use rpc_core::server::RawService;
    ///
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct Stock { sku: String, left: u32 }
    /// rpc_core::codec::impl_message!(Stock);
    ///
    /// let svc = RawService::new("shop.Inventory").typed("Check", |req: Stock, _ctx| async move {
    ///     Ok(Stock { left: 42, ..req })
    /// });
    /// ```
    #[must_use]
    pub fn typed<Req, Resp, F, Fut>(self, name: &str, handler: F) -> RawService
    where
        Req: Message,
        Resp: Message,
        F: Fn(Req, CallContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Resp, Status>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        self.method(name, move |req: Request| {
            let handler = handler.clone();
            async move {
                let codec = req.codec();
                let (ctx, body) = req.into_parts();
                let message = Req::codecs().decode(codec, body)?;
                let reply = handler(message, ctx).await?;
                Ok(Response::new(
                    Resp::codecs().encode_to_bytes(codec, &reply)?,
                ))
            }
        })
    }

    /// The names of the methods, sorted.
    pub fn method_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.methods.keys().map(|k| &**k).collect();
        names.sort_unstable();
        names
    }
}

impl NamedService for RawService {
    fn service_name(&self) -> &str {
        &self.name
    }
}

impl Service<Request> for RawService {
    type Response = Response;
    type Error = Status;
    type Future = BoxFuture<'static, Reply>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        match self.methods.get(req.method()) {
            Some(handler) => handler(req),
            None => {
                let status = Status::unimplemented(format!(
                    "unknown method {:?} in service {:?}",
                    req.method(),
                    &*self.name
                ));
                Box::pin(std::future::ready(Err(status)))
            }
        }
    }
}
