//! The one typed-call front end: how a call's codec is chosen, how its message is encoded into a
//! [`Request`] and how the reply is decoded. Generated clients ([`UnaryCall`](super::UnaryCall))
//! and [`Channel::typed`] both go through here.
//!
//! The codec order is documented once, on [`choose_codec`].

use std::borrow::Cow;

use rpc_codec::{CodecId, CodecSet, Message, MessageCodecs};

use super::{CallOptions, Channel};
use crate::descriptor::MethodDescriptor;
use crate::message::{Request, Response};
use crate::status::{Delivery, Status};

/// The codecs tried, in order, when neither the call, the client nor the channel names one both
/// message types support.
const FALLBACK: [CodecId; 4] = [
    CodecId::PROTOBUF,
    CodecId::JSON,
    CodecId::MSGPACK,
    CodecId::RAW,
];

/// Picks the codec of a typed call: `requested` as is; else the first of `preferred` (the
/// client's, then the channel's) that both message types support; else Protobuf, JSON,
/// MessagePack, raw, the first both support. Generated clients and [`Channel::typed`] both choose
/// this way.
///
/// # Which codec a typed call uses
/// The first that applies:
/// 1. the call's own codec (`.codec(..)` on a generated call, [`CallOptions::codec`]), used as
///    asked: a type that cannot be written in it fails with `Unimplemented`;
/// 2. the client's codec (`FooClient::with_codec`), when both message types support it;
/// 3. otherwise the channel's codec ([`Endpoint::codec`](crate::Endpoint::codec), Protobuf unless
///    set), when both message types support it. A generated client made from a [`Channel`] reads
///    it at construction (`with_codec` then replaces it); over another service (a balanced
///    channel, a middleware stack) there is none, so set one with `with_codec`;
/// 4. Protobuf when both types have it, else JSON, else MessagePack, else raw bytes.
///
/// ```
/// use rpc_core::{choose_codec, CodecId, CodecSet};
///
/// let serde_only = CodecSet::EMPTY.with(CodecId::JSON).with(CodecId::MSGPACK);
/// // The channel prefers Protobuf, which the types cannot use: JSON is next.
/// let c = choose_codec(None, &[Some(CodecId::PROTOBUF)], serde_only, serde_only)?;
/// assert_eq!(c, CodecId::JSON);
/// # Ok::<(), rpc_core::Status>(())
/// ```
///
/// # Errors
/// `Unimplemented` (not sent) when nothing was requested and the two types share no codec.
pub fn choose_codec(
    requested: Option<CodecId>,
    preferred: &[Option<CodecId>],
    request: CodecSet,
    response: CodecSet,
) -> Result<CodecId, Status> {
    if let Some(c) = requested {
        return Ok(c);
    }
    let both = request.intersection(response);
    preferred
        .iter()
        .flatten()
        .copied()
        .chain(FALLBACK)
        .find(|c| both.contains(*c))
        .ok_or_else(|| {
            Status::unimplemented(format!(
                "request and response types share no codec (request: {request}; response: {response})"
            ))
            .with_delivery(Delivery::NotSent)
        })
}

/// A typed call ready to send: its request and the codec its reply will be decoded with.
pub(crate) struct Prepared {
    pub(crate) request: Request,
    pub(crate) codec: CodecId,
}

/// Chooses the codec, encodes `message` and applies `options`: everything a typed call does
/// before it is sent. With a `method`, its descriptor, one-way flag and default timeout go on the
/// request too.
pub(crate) fn prepare<Req>(
    path: Cow<'static, str>,
    method: Option<&'static MethodDescriptor>,
    message: &Req,
    codecs: (MessageCodecs<Req>, CodecSet),
    preferred: &[Option<CodecId>],
    options: CallOptions,
) -> Result<Prepared, Status> {
    let (request_codecs, response_supported) = codecs;
    let codec = choose_codec(
        options.requested_codec(),
        preferred,
        request_codecs.supported(),
        response_supported,
    )?;
    let body = request_codecs
        .encode_to_bytes(codec, message)
        .map_err(|e| Status::from_codec_error(method, e).with_delivery(Delivery::NotSent))?;
    let mut request = Request::new(path, body).with_codec(codec);
    if let Some(m) = method {
        request = request.with_descriptor(m).with_one_way(m.one_way);
        if let (None, Some(t)) = (options.requested_timeout(), m.timeout) {
            request = request.with_timeout(t);
        }
    }
    Ok(Prepared {
        request: options.apply(request),
        codec,
    })
}

/// Decodes a typed call's reply in the codec its request used.
pub(crate) fn decode_reply<Resp>(
    codecs: &MessageCodecs<Resp>,
    codec: CodecId,
    reply: Result<Response, Status>,
) -> Result<Resp, Status> {
    let reply = reply?;
    codecs.decode(codec, reply.into_body()).map_err(|e| {
        Status::internal(format!("the server's response could not be decoded: {e}")).with_source(e)
    })
}

impl Channel {
    /// A typed call, its codec chosen as the [`choose_codec`] order says (here: the channel's
    /// [`Endpoint::codec`](crate::Endpoint::codec) when both types support it).
    ///
    /// # Errors
    /// As [`Channel::unary`], plus codec errors: `Unimplemented` for a codec a type cannot use,
    /// `Internal` for a response that does not decode.
    pub async fn typed<Req: Message, Resp: Message>(
        &self,
        path: impl Into<Cow<'static, str>>,
        request: &Req,
    ) -> Result<Resp, Status> {
        self.typed_with(path, request, CallOptions::default()).await
    }

    /// A typed call with per-call options.
    ///
    /// ```
    /// # use rpc_core::{server::RawService, transport::memory::MemoryListener, *};
    /// #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    /// struct Add { a: i64, b: i64 }
    /// rpc_core::codec::impl_message!(Add);
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let calc = RawService::new("demo.Calc")
    ///     .typed("Add", |req: Add, _ctx| async move { Ok(Add { a: req.a + req.b, b: 0 }) });
    /// tokio::spawn(Server::builder().add_service(calc).serve(MemoryListener::bind("typed-doc")?));
    ///
    /// let channel = Endpoint::memory("typed-doc").connect_lazy();
    /// let sum: Add = channel
    ///     .typed_with("demo.Calc/Add", &Add { a: 2, b: 3 }, CallOptions::new().codec(CodecId::JSON))
    ///     .await?;
    /// assert_eq!(sum.a, 5);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`Channel::typed`].
    pub async fn typed_with<Req: Message, Resp: Message>(
        &self,
        path: impl Into<Cow<'static, str>>,
        request: &Req,
        options: CallOptions,
    ) -> Result<Resp, Status> {
        let response_codecs = Resp::codecs();
        let codecs = (Req::codecs(), response_codecs.supported());
        let preferred = [Some(self.default_codec())];
        let call = prepare(path.into(), None, request, codecs, &preferred, options)?;
        let reply = self.unary(call.request).await;
        decode_reply(&response_codecs, call.codec, reply)
    }

    /// A typed one-way call: the server sends no response. Returns `Ok` once the server is known
    /// to have taken the call (read it before any go-away), not merely once it was written; the
    /// server runs it at most once and reports nothing about how it went (see
    /// [`Channel`]'s "One-way calls").
    ///
    /// # Errors
    /// Encoding and limit failures (not sent); `Unavailable` with
    /// [`Delivery::Unprocessed`] when the server's go-away says it did not process the call (safe
    /// to send again), with [`Delivery::NotSent`] or [`Delivery::Sent`] when the connection ended
    /// first (`Sent`: it may have run); `DeadlineExceeded` when the deadline passed first (it may
    /// run).
    pub async fn notify<Req: Message>(
        &self,
        path: impl Into<Cow<'static, str>>,
        request: &Req,
        options: CallOptions,
    ) -> Result<(), Status> {
        let request_codecs = Req::codecs();
        let codecs = (request_codecs, request_codecs.supported());
        let preferred = [Some(self.default_codec())];
        let call = prepare(path.into(), None, request, codecs, &preferred, options)?;
        self.unary(call.request.with_one_way(true)).await.map(drop)
    }
}
