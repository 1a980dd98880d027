//! [`Request`] and [`Response`]: what a call carries, on both sides of the wire.

use std::borrow::Cow;
use std::time::Duration;

use bytes::Bytes;
use rpc_codec::CodecId;
use tokio::time::Instant;

use crate::context::Context;
use crate::descriptor::MethodDescriptor;
use crate::extensions::Extensions;
use crate::metadata::Metadata;

/// One call: the method path, codec, deadline, metadata and the encoded body.
///
/// The same type travels through client middleware, over the wire, and through server middleware;
/// on the server its [`Context`] also carries the peer and call id.
///
/// ```
/// use std::time::Duration;
/// use rpc_core::Request;
///
/// let mut req = Request::new("shop.Orders/Get", "order-42").with_timeout(Duration::from_millis(200));
/// req.metadata_mut().insert("caller", "gateway");
/// assert_eq!(req.service(), "shop.Orders");
/// assert_eq!(req.method(), "Get");
/// ```
#[derive(Debug, Clone)]
pub struct Request {
    path: Bytes,
    codec: CodecId,
    one_way: bool,
    idempotent: bool,
    descriptor: Option<&'static MethodDescriptor>,
    extensions: Extensions,
    context: Context,
    body: Bytes,
}

impl Request {
    /// A request for `path` (`package.Service/Method`) with an already-encoded body.
    pub fn new(path: impl Into<Cow<'static, str>>, body: impl Into<Bytes>) -> Request {
        let path = match path.into() {
            Cow::Borrowed(s) => Bytes::from_static(s.as_bytes()),
            Cow::Owned(s) => Bytes::from(s),
        };
        Request {
            path,
            codec: CodecId::RAW,
            one_way: false,
            idempotent: false,
            descriptor: None,
            extensions: Extensions::new(),
            context: Context::new(),
            body: body.into(),
        }
    }

    /// Server side: built from a decoded frame whose path was checked to be UTF-8.
    pub(crate) fn from_parts(
        path: Bytes,
        codec: CodecId,
        one_way: bool,
        context: Context,
        body: Bytes,
    ) -> Request {
        Request {
            path,
            codec,
            one_way,
            idempotent: false,
            descriptor: None,
            extensions: Extensions::new(),
            context,
            body,
        }
    }

    /// `package.Service/Method`.
    pub fn path(&self) -> &str {
        // Checked to be UTF-8 when the request was built.
        std::str::from_utf8(&self.path).unwrap_or_default()
    }

    pub(crate) fn path_bytes(&self) -> &[u8] {
        &self.path
    }

    /// The part of the path before the last `/`.
    pub fn service(&self) -> &str {
        let path = self.path();
        path.rsplit_once('/').map_or(path, |(s, _)| s)
    }

    /// The part of the path after the last `/`.
    pub fn method(&self) -> &str {
        let path = self.path();
        path.rsplit_once('/').map_or("", |(_, m)| m)
    }

    /// The codec the body is encoded with.
    pub fn codec(&self) -> CodecId {
        self.codec
    }

    /// Sets the codec id, builder style.
    #[must_use]
    pub fn with_codec(mut self, codec: CodecId) -> Request {
        self.codec = codec;
        self
    }

    /// `true` if the caller expects no response.
    pub fn is_one_way(&self) -> bool {
        self.one_way
    }

    /// Marks the call one-way (no response), builder style.
    #[must_use]
    pub fn with_one_way(mut self, one_way: bool) -> Request {
        self.one_way = one_way;
        self
    }

    /// `true` if repeating the call has the same effect as making it once, so that retries and
    /// hedging may send it again. Set by generated clients from `#[rpc(idempotent)]`. Local only:
    /// not sent on the wire.
    pub fn is_idempotent(&self) -> bool {
        self.idempotent
    }

    /// Marks the call idempotent, builder style.
    #[must_use]
    pub fn with_idempotent(mut self, idempotent: bool) -> Request {
        self.idempotent = idempotent;
        self
    }

    /// The description of the method being called, when a generated client made the request.
    /// Middleware reads per-method defaults from it. Local only.
    pub fn descriptor(&self) -> Option<&'static MethodDescriptor> {
        self.descriptor
    }

    /// Attaches the method's description and takes its `idempotent` attribute, builder style.
    #[must_use]
    pub fn with_descriptor(mut self, descriptor: &'static MethodDescriptor) -> Request {
        self.descriptor = Some(descriptor);
        self.idempotent = descriptor.idempotent;
        self
    }

    /// Local values for middleware (never sent).
    pub fn extensions(&self) -> &Extensions {
        &self.extensions
    }

    /// Mutable local values for middleware.
    pub fn extensions_mut(&mut self) -> &mut Extensions {
        &mut self.extensions
    }

    /// The call context: deadline and metadata, plus peer and call id on the server.
    pub fn context(&self) -> &Context {
        &self.context
    }

    /// Mutable access to the call context.
    pub fn context_mut(&mut self) -> &mut Context {
        &mut self.context
    }

    /// The deadline, if set.
    pub fn deadline(&self) -> Option<Instant> {
        self.context.deadline()
    }

    /// Sets an absolute deadline, builder style.
    #[must_use]
    pub fn with_deadline(mut self, deadline: Instant) -> Request {
        self.context = self.context.with_deadline(deadline);
        self
    }

    /// Sets the deadline `timeout` from now, builder style.
    #[must_use]
    pub fn with_timeout(self, timeout: Duration) -> Request {
        self.with_deadline(Instant::now() + timeout)
    }

    /// The request metadata.
    pub fn metadata(&self) -> &Metadata {
        self.context.metadata()
    }

    /// Mutable request metadata.
    pub fn metadata_mut(&mut self) -> &mut Metadata {
        self.context.metadata_mut()
    }

    /// The encoded body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// Takes the body.
    pub fn into_body(self) -> Bytes {
        self.body
    }

    /// Splits into context and body.
    pub fn into_parts(self) -> (Context, Bytes) {
        (self.context, self.body)
    }
}

/// A successful call's answer: metadata and the encoded body.
#[derive(Debug, Clone, Default)]
pub struct Response {
    metadata: Metadata,
    body: Bytes,
}

impl Response {
    /// A response with this body and no metadata.
    pub fn new(body: impl Into<Bytes>) -> Response {
        Response {
            metadata: Metadata::new(),
            body: body.into(),
        }
    }

    /// A response with metadata.
    pub fn with_metadata(body: impl Into<Bytes>, metadata: Metadata) -> Response {
        Response {
            metadata,
            body: body.into(),
        }
    }

    /// The response metadata.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// Mutable response metadata.
    pub fn metadata_mut(&mut self) -> &mut Metadata {
        &mut self.metadata
    }

    /// The encoded body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// Takes the body.
    pub fn into_body(self) -> Bytes {
        self.body
    }

    /// Splits into metadata and body.
    pub fn into_parts(self) -> (Metadata, Bytes) {
        (self.metadata, self.body)
    }
}
