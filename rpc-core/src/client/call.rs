//! Typed calls of generated clients: a builder for per-call options that is awaited directly.

use std::fmt;
use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use rpc_codec::{CodecError, CodecId, MessageCodecs};
use tower::Service;

use crate::describe::MethodDescriptor;
use crate::message::{Request, Response};
use crate::service_error::ServiceError;
use crate::status::{Delivery, Status};
use crate::typed::{choose_codec, CallOptions};

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
    /// of its request and response types. `default_codec` is the client's; `None` lets
    /// [`choose_codec`] prefer Protobuf.
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

    fn build_request(self) -> (S, Result<(Request, CodecId), Status>, MessageCodecs<Resp>) {
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
        let prepared = choose_codec(
            options.requested_codec(),
            default_codec.unwrap_or(CodecId::PROTOBUF),
            request_codecs.supported(),
            response_codecs.supported(),
        )
        .and_then(|codec| {
            let body = request_codecs
                .encode_to_bytes(codec, &request)
                .map_err(|e| codec_status(method, e).with_delivery(Delivery::NotSent))?;
            let mut req = Request::new(method.path, body)
                .with_codec(codec)
                .with_descriptor(method)
                .with_one_way(method.one_way);
            if let (None, Some(t)) = (options.requested_timeout(), method.timeout) {
                req = req.with_timeout(t);
            }
            Ok((options.apply(req), codec))
        });
        (service, prepared, response_codecs)
    }
}

/// A codec error as the status a caller or server reports: several arguments in Protobuf get a
/// message that says why.
pub(crate) fn codec_status(method: &MethodDescriptor, e: CodecError) -> Status {
    match e {
        CodecError::Unsupported { codec, .. }
            if codec == CodecId::PROTOBUF && method.args.len() != 1 =>
        {
            Status::unimplemented(format!(
                "{} takes {} arguments, which are carried as one message in JSON and MessagePack \
                 only; Protobuf needs a single prost message argument",
                method.path,
                method.args.len()
            ))
        }
        e => Status::from(e),
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
            Ok((req, codec)) => (
                State::NotReady {
                    service: Some(service),
                    request: Some(req),
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
        NotReady { service: Option<S>, request: Option<Request> },
        Running { #[pin] fut: S::Future },
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

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<Resp, E>> {
        loop {
            let next = match self.as_mut().project().state.project() {
                StateProj::Running { fut } => {
                    let reply = std::task::ready!(fut.poll(cx));
                    let this = self.as_mut().project();
                    let result = reply.and_then(|r| {
                        this.response_codecs
                            .decode(*this.codec, r.into_body())
                            .map_err(|e| {
                                Status::internal(format!(
                                    "the server's response could not be decoded: {e}"
                                ))
                            })
                    });
                    return Poll::Ready(result.map_err(E::from_status));
                }
                StateProj::Failed { status } => {
                    let status = status
                        .take()
                        .unwrap_or_else(|| Status::internal("call polled after completion"));
                    return Poll::Ready(Err(E::from_status(status)));
                }
                StateProj::NotReady { service, request } => {
                    let Some(s) = service.as_mut() else {
                        return Poll::Ready(Err(E::from_status(Status::internal(
                            "call polled after completion",
                        ))));
                    };
                    match std::task::ready!(s.poll_ready(cx)) {
                        Err(status) => State::Failed {
                            status: Some(status),
                        },
                        Ok(()) => match (service.take(), request.take()) {
                            (Some(mut s), Some(r)) => State::Running { fut: s.call(r) },
                            _ => State::Failed {
                                status: Some(Status::internal("call polled after completion")),
                            },
                        },
                    }
                }
            };
            self.as_mut().project().state.set(next);
        }
    }
}
