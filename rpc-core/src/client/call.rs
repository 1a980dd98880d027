//! Typed calls of generated clients: a builder for per-call options that is awaited directly.

use std::fmt;
use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use std::borrow::Cow;

use bytes::Bytes;
use rpc_codec::{CodecId, MessageCodecs};
use tower::util::Oneshot;
use tower::Service;

use super::typed::{decode_reply, prepare, Prepared};
use super::CallOptions;
use crate::descriptor::MethodDescriptor;
use crate::message::{Request, Response};
use crate::service_error::ServiceError;
use crate::status::Status;

/// One typed call, not yet sent: set per-call options, then `.await` it.
///
/// Generated clients return one from every method, so options never need a second set of methods:
///
/// ```
/// # use rpc_core::transport::memory::MemoryListener;
/// use std::time::Duration;
/// use rpc_core::{service, CodecId, Endpoint, Server, Status};
///
/// /// Stock levels.
/// #[service(name = "shop.Inventory")]
/// pub trait Inventory {
///     /// Units of `sku` left.
///     async fn check(&self, sku: String) -> Result<u32, Status>;
/// }
/// # struct Shop;
/// # impl Inventory for Shop {
/// #     async fn check(&self, sku: String) -> Result<u32, Status> { Ok(sku.len() as u32) }
/// # }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Status> {
/// # tokio::spawn(Server::builder().add_service(InventoryServer::new(Shop))
/// #     .serve(MemoryListener::bind("call-doc").unwrap()));
///
/// let inventory = InventoryClient::new(Endpoint::memory("call-doc").connect_lazy());
/// // Awaited as is...
/// let left = inventory.check("A-1".into()).await?;
/// // ...or with options for this call only.
/// let left_json = inventory
///     .check("A-1".into())
///     .timeout(Duration::from_millis(100))
///     .codec(CodecId::JSON)
///     .metadata("caller", "gateway")
///     .await?;
/// assert_eq!(left, left_json);
/// # Ok(())
/// # }
/// ```
#[must_use = "a call does nothing until awaited"]
pub struct UnaryCall<S, Req, Resp, E = Status> {
    service: S,
    method: &'static MethodDescriptor,
    request: Req,
    request_codecs: MessageCodecs<Req>,
    response_codecs: MessageCodecs<Resp>,
    default_codec: Option<CodecId>,
    options: CallOptions,
    _error: PhantomData<fn() -> E>,
}

impl<S, Req, Resp, E> fmt::Debug for UnaryCall<S, Req, Resp, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnaryCall")
            .field("method", &self.method.path)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl<S, Req, Resp, E> UnaryCall<S, Req, Resp, E> {
    /// A call of `method` through `service` (usually from generated code), with the codec tables
    /// of its request and response types. `default_codec` is the client's (or its channel's);
    /// how it is used is [`choose_codec`](crate::choose_codec)'s order.
    pub fn new(
        service: S,
        method: &'static MethodDescriptor,
        request: Req,
        request_codecs: MessageCodecs<Req>,
        response_codecs: MessageCodecs<Resp>,
        default_codec: Option<CodecId>,
    ) -> Self {
        UnaryCall {
            service,
            method,
            request,
            request_codecs,
            response_codecs,
            default_codec,
            options: CallOptions::new(),
            _error: PhantomData,
        }
    }

    /// Fails the call with `DeadlineExceeded` after `timeout`, instead of the method's default.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.options = self.options.timeout(timeout);
        self
    }

    /// Encodes this call with `codec`.
    pub fn codec(mut self, codec: CodecId) -> Self {
        self.options = self.options.codec(codec);
        self
    }

    /// Adds a metadata entry.
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.options = self.options.metadata(key, value);
        self
    }

    /// Replaces all options at once.
    pub fn options(mut self, options: CallOptions) -> Self {
        self.options = options;
        self
    }

    /// The method being called.
    pub fn method(&self) -> &'static MethodDescriptor {
        self.method
    }

    fn build_request(self) -> (S, Result<Prepared, Status>, MessageCodecs<Resp>) {
        let UnaryCall {
            service,
            method,
            request,
            request_codecs,
            response_codecs,
            default_codec,
            options,
            ..
        } = self;
        let prepared = prepare(
            Cow::Borrowed(method.path),
            Some(method),
            &request,
            (request_codecs, response_codecs.supported()),
            &[default_codec],
            options,
        );
        (service, prepared, response_codecs)
    }
}

impl<S, Req, Resp, E> IntoFuture for UnaryCall<S, Req, Resp, E>
where
    S: Service<Request, Response = Response, Error = Status>,
    E: ServiceError,
{
    type Output = Result<Resp, E>;
    type IntoFuture = UnaryFuture<S, Resp, E>;

    fn into_future(self) -> UnaryFuture<S, Resp, E> {
        let (service, prepared, response_codecs) = self.build_request();
        let (state, codec) = match prepared {
            Ok(Prepared { request, codec }) => (
                State::Running {
                    fut: Oneshot::new(service, request),
                },
                codec,
            ),
            Err(status) => (
                State::Failed {
                    status: Some(status),
                },
                CodecId::RAW,
            ),
        };
        UnaryFuture {
            state,
            codec,
            response_codecs,
            _error: PhantomData,
        }
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<S: Service<Request>> {
        Running { #[pin] fut: Oneshot<S, Request> },
        Failed { status: Option<Status> },
    }
}

pin_project_lite::pin_project! {
    /// The future of an awaited [`UnaryCall`]: waits for the service to be ready, calls it and
    /// decodes the reply.
    #[must_use = "futures do nothing unless polled"]
    pub struct UnaryFuture<S: Service<Request>, Resp, E> {
        #[pin]
        state: State<S>,
        codec: CodecId,
        response_codecs: MessageCodecs<Resp>,
        _error: PhantomData<fn() -> E>,
    }
}

impl<S: Service<Request>, Resp, E> fmt::Debug for UnaryFuture<S, Resp, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnaryFuture")
            .field("codec", &self.codec)
            .finish_non_exhaustive()
    }
}

impl<S, Resp, E> Future for UnaryFuture<S, Resp, E>
where
    S: Service<Request, Response = Response, Error = Status>,
    E: ServiceError,
{
    type Output = Result<Resp, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<Resp, E>> {
        let this = self.project();
        let result = match this.state.project() {
            StateProj::Running { fut } => {
                let reply = std::task::ready!(fut.poll(cx));
                decode_reply(this.response_codecs, *this.codec, reply)
            }
            StateProj::Failed { status } => Err(status
                .take()
                .unwrap_or_else(|| Status::internal("call polled after completion"))),
        };
        Poll::Ready(result.map_err(E::from_status))
    }
}
