//! An embeddable RPC runtime for Rust services: a compact multiplexed wire protocol, pluggable
//! transports (TCP, Unix sockets, in-memory), a cloneable [`Channel`] that is a `tower::Service`,
//! and a [`Server`] with limits, deadlines, cancellation and graceful shutdown. Services are
//! defined as traits with [`#[service]`](service), which generates their client and server.
//!
//! ```
//! use rpc_core::transport::memory::MemoryListener;
//! use rpc_core::{service, Endpoint, Server, Status};
//!
//! /// Greets people.
//! #[service(name = "demo.Greeter")]
//! pub trait Greeter {
//!     /// Says hello to `name`.
//!     async fn hello(&self, name: String) -> Result<String, Status>;
//! }
//!
//! struct English;
//!
//! impl Greeter for English {
//!     async fn hello(&self, name: String) -> Result<String, Status> {
//!         Ok(format!("Hello, {name}!"))
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Serve it on the in-memory transport (TCP and Unix sockets work the same way).
//! let listener = MemoryListener::bind("crate-doc")?;
//! tokio::spawn(Server::builder().add_service(GreeterServer::new(English)).serve(listener));
//!
//! // Call it.
//! let greeter = GreeterClient::new(Endpoint::memory("crate-doc").connect_lazy());
//! assert_eq!(greeter.hello("Ada".into()).await?, "Hello, Ada!");
//! # Ok(())
//! # }
//! ```
//!
//! Without the macro, a service is any tower service of [`Request`]s, and a [`Channel`] sends raw
//! requests:
//!
//! ```
//! use rpc_core::{server::RawService, Endpoint, Request, Response, Server};
//! use rpc_core::transport::memory::MemoryListener;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let echo = RawService::new("demo.Echo")
//!     .method("Echo", |req| async move { Ok(Response::new(req.into_body())) });
//! let listener = MemoryListener::bind("crate-doc-raw")?;
//! tokio::spawn(Server::builder().add_service(echo).serve(listener));
//!
//! let channel = Endpoint::memory("crate-doc-raw").connect_lazy();
//! let reply = channel.unary(Request::new("demo.Echo/Echo", "hello")).await?;
//! assert_eq!(&reply.body()[..], b"hello");
//! # Ok(())
//! # }
//! ```
//!
//! # Layers
//! - [`transport`]: byte streams ([`transport::Connector`], [`transport::Listener`]).
//! - [`protocol`]: frames, settings and limits, as described in `docs/protocol.md`.
//! - [`client`] and [`server`]: [`Channel`], [`Endpoint`], [`Server`].
//! - [`Context`], [`Status`], [`Metadata`], [`Request`], [`Response`]: what every call carries;
//!   [`ServiceError`] for typed errors.
//! - [`service`] and [`describe`]: services defined as traits, and their descriptions.
//! - [`stream`]: streaming calls (protocol 1.1: server, client and bidirectional streams),
//!   flow-controlled.
//!
//! # Features
//! Off by default, so that the default build needs nothing but cargo:
//! - `tls`: TLS and mutual TLS over any stream transport (`transport::tls`: rustls with `ring`,
//!   `webpki-roots`), and `tls://` addresses in [`Endpoint::from_uri`].
//! - `jwt`: JSON Web Tokens as bearer tokens (`middleware::auth::JwtAuthenticator`, with
//!   `jsonwebtoken` and RustCrypto).
//! - `sim`: a transport over turmoil's simulated network (`transport::sim`), for deterministic
//!   simulation tests.
//!
//! # Runtime
//! Everything runs on tokio. A `Channel` spawns its connection driver on first use; a `Server`
//! spawns one task per connection, and a task per call only when the handler does not finish in
//! its first poll.

#![forbid(unsafe_code)]

pub mod backoff;
pub mod client;
mod conn;
mod context;
pub mod describe;
mod descriptor;
mod extensions;
#[cfg(feature = "http")]
pub mod http;
mod limit;
mod message;
mod metadata;
pub mod middleware;
mod principal;
pub mod protocol;
pub mod server;
mod service_error;
mod status;
pub mod stream;
pub mod transport;

pub use client::{choose_codec, CallOptions};
pub use client::{Channel, Endpoint};
pub use context::Context;
pub use extensions::Extensions;
pub use message::{Request, Response};
pub use metadata::Metadata;
pub use principal::{AuthMethod, Principal};
pub use protocol::{METADATA_TRUNCATED_KEY, NOT_PROCESSED_KEY};
pub use rpc_codec as codec;
pub use rpc_codec::schema::Schema;
pub use rpc_codec::{CodecId, CodecSet};
pub use rpc_macros::service;
/// Derives [`Schema`](trait@Schema) for a struct or an enum, from its fields or variants, doc
/// comments and `#[serde(...)]` and `#[prost(...)]` attributes; see the trait's module,
/// [`codec::schema`].
pub use rpc_macros::Schema;
pub use server::Server;
pub use service_error::{ServiceError, DETAILS_KEY};
pub use status::{Code, Delivery, Status, RETRY_AFTER_MS};
pub use stream::{Reply, Sender, Streaming};

/// Includes the code that `rpc_codec::build` (the IDL-first path, feature `build` of
/// `rpc-codec`) generated: every Protobuf package as a tree of modules named after it, with its
/// messages, enums, and a `#[service]` trait per service with its client and server.
///
/// `include_protos!()` is `include!(concat!(env!("OUT_DIR"), "/rpc_protos.rs"))`, the module
/// tree `rpc_codec::build` writes. Use it inside a module of its own:
///
/// ```ignore
/// pub mod protos {
///     rpc_core::include_protos!();
/// }
/// use protos::shop::reviews::{ReviewsClient, ReviewsServer};
/// ```
#[macro_export]
macro_rules! include_protos {
    () => {
        ::core::include!(::core::concat!(::core::env!("OUT_DIR"), "/rpc_protos.rs"));
    };
}

/// Includes the code that `rpc_codec::build` generated for one Protobuf package, in a module of
/// your choice; see [`include_protos!`] for all of them as a tree of modules, which a package
/// that refers to another package needs (prost reaches it through `super::`).
///
/// `include_proto!("shop.reviews")` is `include!(concat!(env!("OUT_DIR"), "/shop.reviews.rs"))`:
/// the file `prost-build` writes per package.
///
/// ```ignore
/// pub mod reviews {
///     rpc_core::include_proto!("shop.reviews");
/// }
/// ```
#[macro_export]
macro_rules! include_proto {
    ($package:literal) => {
        ::core::include!(::core::concat!(
            ::core::env!("OUT_DIR"),
            "/",
            $package,
            ".rs"
        ));
    };
}

/// A boxed, sendable future: what [`transport::Connector::connect`], registries and the
/// middleware return where a named future type would buy nothing.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// What code generated by `#[service]` refers to. Not a public API: it changes with the macro.
#[doc(hidden)]
pub mod __private {
    pub use crate::server::{server_call, unknown_method, Dispatch, ServerCall};
    pub use rpc_codec::{message_codecs, message_schema, MessageCodecs};
    pub use serde;
    pub use tokio::time::Instant;
    pub use tower::Service;

    use bytes::Bytes;
    use rpc_codec::CodecId;

    use crate::describe::MethodDescriptor;
    use crate::{Response, ServiceError, Status};

    /// Decodes a request body, with the status a caller should see when it cannot be decoded.
    pub fn decode_request<T>(
        method: &MethodDescriptor,
        codecs: MessageCodecs<T>,
        codec: CodecId,
        body: Bytes,
    ) -> Result<T, Status> {
        codecs
            .decode(codec, body)
            .map_err(|e| Status::from_codec_error(Some(method), e))
    }

    /// The request stream of a client-streaming call, decoded in the call's codec; a call made
    /// in another shape is `Unimplemented`.
    pub fn stream_requests<T>(
        req: &crate::Request,
        codecs: MessageCodecs<T>,
    ) -> Result<crate::Streaming<T>, Status> {
        let raw = crate::stream::take_requests(req).ok_or_else(|| not_a_stream(req, "requests"))?;
        Ok(crate::Streaming::new(raw, req.codec(), codecs))
    }

    /// The reply stream of a server-streaming call, encoded in the call's codec; a call made in
    /// another shape is `Unimplemented`.
    pub fn stream_sender<T>(
        req: &crate::Request,
        codecs: MessageCodecs<T>,
    ) -> Result<crate::Sender<T>, Status> {
        let raw = crate::stream::take_sender(req).ok_or_else(|| not_a_stream(req, "replies"))?;
        Ok(crate::Sender::new(raw, req.codec(), codecs))
    }

    fn not_a_stream(req: &crate::Request, what: &str) -> Status {
        Status::unimplemented(format!(
            "{} streams its {what}, and this call carried no such stream: call it with one",
            req.path()
        ))
    }

    /// Encodes a handler's result in the codec of the request.
    pub fn encode_reply<T, E: ServiceError>(
        codecs: MessageCodecs<T>,
        codec: CodecId,
        result: Result<T, E>,
    ) -> Result<Response, Status> {
        match result {
            Ok(value) => Ok(Response::new(codecs.encode_to_bytes(codec, &value)?)),
            // The handler ran: its error is never "not processed", even one passed on from a
            // downstream call.
            Err(e) => Err(crate::server::handler_ran(e.into_status())),
        }
    }

    /// The codec a generated client prefers when it is made: its channel's
    /// [`Endpoint::codec`](crate::Endpoint::codec) when the service it calls through is a
    /// [`Channel`](crate::Channel); `None` for any other service (a balanced channel, a
    /// middleware stack), whose clients set one with `with_codec`.
    pub fn channel_codec<S: 'static>(service: &S) -> Option<CodecId> {
        (service as &dyn std::any::Any)
            .downcast_ref::<crate::Channel>()
            .map(crate::Channel::default_codec)
    }

    /// Hands the call's context to a parameter the macro took as the context. Implemented only
    /// by [`Context`](crate::Context), so a parameter of another type named `Context` is one
    /// error at that parameter. (Here rather than in the generated code: a `#[diagnostic]`
    /// attribute does not resolve in a `#![no_implicit_prelude]` module.)
    #[diagnostic::on_unimplemented(
        message = "`{Self}` is not the call context `rpc_core::Context`",
        label = "taken as the call's context",
        note = "the first argument typed `&Context` or `Context` (the bare name or `rpc_core::Context`), \
                or marked `#[rpc(context)]`, is the call's context; to pass a type of your own named \
                `Context` as an argument, write its path (e.g. `crate::Context`)"
    )]
    pub trait CallContext {
        /// The context, for a `&Context` parameter.
        fn by_ref(ctx: &crate::Context) -> &Self;
        /// The context, for a `Context` parameter.
        fn by_value(ctx: crate::Context) -> Self
        where
            Self: Sized;
    }

    impl CallContext for crate::Context {
        fn by_ref(ctx: &crate::Context) -> &Self {
            ctx
        }
        fn by_value(ctx: crate::Context) -> Self {
            ctx
        }
    }
}
