//! Typed calls: messages encoded with the codec each call chooses.

use std::borrow::Cow;
use std::time::Duration;

use rpc_codec::{CodecError, CodecId, CodecSet, Message};

use crate::client::Channel;
use crate::message::Request;
use crate::metadata::Metadata;
use crate::status::{Delivery, Status};

/// Per-call settings for typed calls: codec, timeout, metadata.
///
/// ```
/// use std::time::Duration;
/// use rpc_core::{CallOptions, CodecId};
///
/// let opts = CallOptions::new()
///     .codec(CodecId::JSON)
///     .timeout(Duration::from_millis(250))
///     .metadata("caller", "gateway");
/// ```
#[derive(Debug, Clone, Default)]
pub struct CallOptions {
    codec: Option<CodecId>,
    timeout: Option<Duration>,
    metadata: Metadata,
}

impl CallOptions {
    /// Defaults: the channel's codec, no timeout, no metadata.
    pub fn new() -> CallOptions {
        CallOptions::default()
    }

    /// Uses this codec instead of the channel's default.
    #[must_use]
    pub fn codec(mut self, codec: CodecId) -> CallOptions {
        self.codec = Some(codec);
        self
    }

    /// Fails the call with `DeadlineExceeded` after `timeout`.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> CallOptions {
        self.timeout = Some(timeout);
        self
    }

    /// Adds a metadata entry.
    #[must_use]
    pub fn metadata(
        mut self,
        key: impl Into<String>,
        value: impl Into<bytes::Bytes>,
    ) -> CallOptions {
        self.metadata.insert(key, value);
        self
    }

    /// The codec asked for, if any.
    pub fn requested_codec(&self) -> Option<CodecId> {
        self.codec
    }

    /// The timeout asked for, if any.
    pub fn requested_timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// Applies the timeout and metadata to a request.
    pub fn apply(self, mut request: Request) -> Request {
        if let Some(t) = self.timeout {
            request = request.with_timeout(t);
        }
        for (k, v) in self.metadata.iter() {
            request.metadata_mut().append(k, v.clone());
        }
        request
    }
}

/// Codec errors as statuses: a codec the type cannot use is `Unimplemented`, undecodable bytes
/// are `InvalidArgument`, an unencodable value is `Internal`.
impl From<CodecError> for Status {
    fn from(e: CodecError) -> Status {
        match &e {
            CodecError::Unsupported { .. } => Status::unimplemented(e.to_string()),
            CodecError::Decode { .. } => Status::invalid_argument(e.to_string()),
            _ => Status::internal(e.to_string()),
        }
    }
}

/// Picks the codec of a call: the requested one; else `default` when both message types support
/// it; else the first both support, in the order protobuf, msgpack, json, raw.
///
/// # Errors
/// `Unimplemented` when the two types share no codec.
pub fn choose_codec(
    requested: Option<CodecId>,
    default: CodecId,
    request: CodecSet,
    response: CodecSet,
) -> Result<CodecId, Status> {
    if let Some(c) = requested {
        return Ok(c);
    }
    let both = request.intersection(response);
    if both.contains(default) {
        return Ok(default);
    }
    [
        CodecId::PROTOBUF,
        CodecId::MSGPACK,
        CodecId::JSON,
        CodecId::RAW,
    ]
    .into_iter()
    .find(|c| both.contains(*c))
    .ok_or_else(|| {
        Status::unimplemented(format!(
            "request and response types share no codec (request: {request}; response: {response})"
        ))
        .with_delivery(Delivery::NotSent)
    })
}

impl Channel {
    /// A typed call in the channel's default codec (or the best one both types support).
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
        let req_codecs = Req::codecs();
        let resp_codecs = Resp::codecs();
        let codec = choose_codec(
            options.requested_codec(),
            self.default_codec(),
            req_codecs.supported(),
            resp_codecs.supported(),
        )?;
        let body = req_codecs
            .encode_to_bytes(codec, request)
            .map_err(|e| Status::from(e).with_delivery(Delivery::NotSent))?;
        let request = options.apply(Request::new(path, body).with_codec(codec));
        let reply = self.unary(request).await?;
        resp_codecs.decode(codec, reply.into_body()).map_err(|e| {
            Status::internal(format!("the server's response could not be decoded: {e}"))
        })
    }

    /// A typed one-way call: returns once the request is queued; the server sends no response.
    ///
    /// # Errors
    /// Local failures only: encoding, limits, or no connection.
    pub async fn notify<Req: Message>(
        &self,
        path: impl Into<Cow<'static, str>>,
        request: &Req,
        options: CallOptions,
    ) -> Result<(), Status> {
        let req_codecs = Req::codecs();
        let supported = req_codecs.supported();
        let codec = choose_codec(
            options.requested_codec(),
            self.default_codec(),
            supported,
            supported,
        )?;
        let body = req_codecs
            .encode_to_bytes(codec, request)
            .map_err(|e| Status::from(e).with_delivery(Delivery::NotSent))?;
        let request = options.apply(Request::new(path, body).with_codec(codec));
        self.unary(request.with_one_way(true)).await.map(drop)
    }
}
