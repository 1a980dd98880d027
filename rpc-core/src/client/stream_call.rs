//! Typed streaming calls of generated clients: [`StreamCall`], a builder for per-call options
//! that is awaited like [`UnaryCall`](super::UnaryCall), over any service that can open streams
//! ([`OpenStream`]).

use std::borrow::Cow;
use std::fmt;
use std::future::IntoFuture;
use std::marker::PhantomData;
use std::time::Duration;

use bytes::Bytes;
use rpc_codec::{CodecId, MessageCodecs};

use super::{choose_codec, CallOptions, Channel};
use crate::descriptor::MethodDescriptor;
use crate::message::Request;
use crate::protocol::flags;
use crate::status::{Delivery, Status};
use crate::stream::{RawSender, RawStreaming, Reply, Sender, Streaming};
use crate::BoxFuture;

/// A client transport that can open streaming calls (protocol 1.1): a [`Channel`]. Streams do
/// not go through tower middleware (a stream cannot be retried or hedged), so generated clients
/// call their streaming methods through this instead of `tower::Service`.
pub trait OpenStream: Clone + Send + Sync + 'static {
    /// Starts a streaming call with these stream flags (`CLIENT_STREAM`, `SERVER_STREAM`):
    /// the request stream's sender when the client streams, and the receiving half.
    ///
    /// # Errors
    /// As [`Channel::server_streaming`].
    fn open_stream(
        &self,
        request: Request,
        stream_flags: u8,
    ) -> BoxFuture<'static, Result<(Option<RawSender>, RawStreaming), Status>>;
}

impl OpenStream for Channel {
    fn open_stream(
        &self,
        request: Request,
        stream_flags: u8,
    ) -> BoxFuture<'static, Result<(Option<RawSender>, RawStreaming), Status>> {
        let channel = self.clone();
        Box::pin(async move { channel.open_stream(request, stream_flags).await })
    }
}

/// The shape of a streaming call, and what awaiting it gives. Implemented by
/// [`ServerStreaming`], [`ClientStreaming`] and [`BidiStreaming`].
pub trait StreamShape: Send + 'static {
    /// The REQUEST's stream flags.
    #[doc(hidden)]
    const FLAGS: u8;
    /// What an opened call of this shape gives its caller.
    type Output<Req: 'static, Resp: 'static>;
    /// Wraps the raw halves.
    #[doc(hidden)]
    fn output<Req: 'static, Resp: 'static>(
        sender: Option<RawSender>,
        stream: RawStreaming,
        codec: CodecId,
        request_codecs: MessageCodecs<Req>,
        response_codecs: MessageCodecs<Resp>,
    ) -> Result<Self::Output<Req, Resp>, Status>;
}

/// One request, a stream of replies: awaiting the call gives a [`Streaming`] of them.
#[derive(Debug)]
pub enum ServerStreaming {}

/// A stream of requests, one reply: awaiting the call gives the [`Sender`] of the requests and
/// the [`Reply`].
#[derive(Debug)]
pub enum ClientStreaming {}

/// Streams both ways: awaiting the call gives the [`Sender`] of the requests and the
/// [`Streaming`] of the replies.
#[derive(Debug)]
pub enum BidiStreaming {}

fn sender_of(sender: Option<RawSender>) -> Result<RawSender, Status> {
    sender.ok_or_else(|| Status::internal("a client stream without its sender"))
}

impl StreamShape for ServerStreaming {
    const FLAGS: u8 = flags::SERVER_STREAM;
    type Output<Req: 'static, Resp: 'static> = Streaming<Resp>;

    fn output<Req: 'static, Resp: 'static>(
        _sender: Option<RawSender>,
        stream: RawStreaming,
        codec: CodecId,
        _request_codecs: MessageCodecs<Req>,
        response_codecs: MessageCodecs<Resp>,
    ) -> Result<Streaming<Resp>, Status> {
        Ok(Streaming::new(stream, codec, response_codecs))
    }
}

impl StreamShape for ClientStreaming {
    const FLAGS: u8 = flags::CLIENT_STREAM;
    type Output<Req: 'static, Resp: 'static> = (Sender<Req>, Reply<Resp>);

    fn output<Req: 'static, Resp: 'static>(
        sender: Option<RawSender>,
        stream: RawStreaming,
        codec: CodecId,
        request_codecs: MessageCodecs<Req>,
        response_codecs: MessageCodecs<Resp>,
    ) -> Result<(Sender<Req>, Reply<Resp>), Status> {
        let sender = Sender::new(sender_of(sender)?, codec, request_codecs);
        Ok((sender, Reply::new(stream, codec, response_codecs)))
    }
}

impl StreamShape for BidiStreaming {
    const FLAGS: u8 = flags::CLIENT_STREAM | flags::SERVER_STREAM;
    type Output<Req: 'static, Resp: 'static> = (Sender<Req>, Streaming<Resp>);

    fn output<Req: 'static, Resp: 'static>(
        sender: Option<RawSender>,
        stream: RawStreaming,
        codec: CodecId,
        request_codecs: MessageCodecs<Req>,
        response_codecs: MessageCodecs<Resp>,
    ) -> Result<(Sender<Req>, Streaming<Resp>), Status> {
        let sender = Sender::new(sender_of(sender)?, codec, request_codecs);
        Ok((sender, Streaming::new(stream, codec, response_codecs)))
    }
}

/// One typed streaming call, not yet opened: set per-call options, then `.await` it. The call's
/// timeout bounds the whole stream.
#[must_use = "a call does nothing until awaited"]
pub struct StreamCall<S, Req, Resp, K> {
    service: S,
    method: &'static MethodDescriptor,
    /// The one request of a server stream; `None` when the client streams.
    request: Option<Req>,
    request_codecs: MessageCodecs<Req>,
    response_codecs: MessageCodecs<Resp>,
    default_codec: Option<CodecId>,
    options: CallOptions,
    _shape: PhantomData<fn() -> K>,
}

impl<S, Req, Resp, K> fmt::Debug for StreamCall<S, Req, Resp, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamCall")
            .field("method", &self.method.path)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl<S, Req, Resp, K> StreamCall<S, Req, Resp, K> {
    /// A call of `method` through `service` (from generated code): `request` is the one request
    /// of a server stream, `None` when the client streams.
    pub fn new(
        service: S,
        method: &'static MethodDescriptor,
        request: Option<Req>,
        request_codecs: MessageCodecs<Req>,
        response_codecs: MessageCodecs<Resp>,
        default_codec: Option<CodecId>,
    ) -> Self {
        StreamCall {
            service,
            method,
            request,
            request_codecs,
            response_codecs,
            default_codec,
            options: CallOptions::new(),
            _shape: PhantomData,
        }
    }

    /// Ends the call with `DeadlineExceeded` after `timeout` (the whole stream), instead of the
    /// method's default.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.options = self.options.timeout(timeout);
        self
    }

    /// Encodes this call's messages with `codec`.
    pub fn codec(mut self, codec: CodecId) -> Self {
        self.options = self.options.codec(codec);
        self
    }

    /// Adds a metadata entry to the request.
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.options = self.options.metadata(key, value);
        self
    }

    /// The method being called.
    pub fn method(&self) -> &'static MethodDescriptor {
        self.method
    }
}

impl<S, Req, Resp, K> IntoFuture for StreamCall<S, Req, Resp, K>
where
    S: OpenStream,
    Req: Send + 'static,
    Resp: Send + 'static,
    K: StreamShape,
{
    type Output = Result<K::Output<Req, Resp>, Status>;
    type IntoFuture = BoxFuture<'static, Self::Output>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let StreamCall {
                service,
                method,
                request,
                request_codecs,
                response_codecs,
                default_codec,
                options,
                ..
            } = self;
            let codec = choose_codec(
                options.requested_codec(),
                &[default_codec],
                request_codecs.supported(),
                response_codecs.supported(),
            )?;
            let body = match &request {
                Some(r) => request_codecs.encode_to_bytes(codec, r).map_err(|e| {
                    Status::from_codec_error(Some(method), e).with_delivery(Delivery::NotSent)
                })?,
                None => Bytes::new(),
            };
            let mut req = Request::new(Cow::Borrowed(method.path), body)
                .with_codec(codec)
                .with_descriptor(method);
            if let (None, Some(t)) = (options.requested_timeout(), method.timeout) {
                req = req.with_timeout(t);
            }
            let (sender, stream) = service.open_stream(options.apply(req), K::FLAGS).await?;
            K::output(sender, stream, codec, request_codecs, response_codecs)
        })
    }
}
