//! An embeddable RPC runtime for Rust services: a compact multiplexed wire protocol, pluggable
//! transports (TCP, Unix sockets, in-memory), a cloneable [`Channel`] that is a `tower::Service`,
//! and a [`Server`] with limits, deadlines, cancellation and graceful shutdown.
//!
//! ```
//! use rpc_core::{server::RawService, Endpoint, Request, Response, Server};
//! use rpc_core::transport::memory::MemoryListener;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // A service whose one method echoes the request body.
//! let echo = RawService::new("demo.Echo")
//!     .method("Echo", |req| async move { Ok(Response::new(req.into_body())) });
//!
//! // Serve it on the in-memory transport (TCP and Unix sockets work the same way).
//! let listener = MemoryListener::bind("crate-doc")?;
//! tokio::spawn(Server::builder().add_service(echo).serve(listener));
//!
//! // Call it.
//! let channel = Endpoint::memory("crate-doc").connect_lazy();
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
//! - [`Context`], [`Status`], [`Metadata`], [`Request`], [`Response`]: what every call carries.
//!
//! # Runtime
//! Everything runs on tokio. A `Channel` spawns its connection driver on first use; a `Server`
//! spawns one task per connection, and a task per call only when the handler does not finish in
//! its first poll.

#![forbid(unsafe_code)]

pub mod client;
mod conn;
mod context;
mod limit;
mod message;
mod metadata;
pub mod protocol;
pub mod server;
mod status;
pub mod transport;
mod typed;

pub use client::{Channel, Endpoint};
pub use context::Context;
pub use message::{Request, Response};
pub use metadata::Metadata;
pub use rpc_codec as codec;
pub use rpc_codec::{CodecId, CodecSet};
pub use server::Server;
pub use status::{Code, Delivery, Status};
pub use typed::{choose_codec, CallOptions};
