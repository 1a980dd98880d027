//! What the example binaries share. The examples themselves are `[[example]]` targets beside this
//! crate: `quickstart`, `echo_server`, `echo_client`.
//!
//! [`shop`] holds the reference shop's services (the `shop` example runs them; the quickstart
//! uses its inventory), each defined with `#[service]`; `cargo doc -p examples --open` shows the
//! client and server types generated for them.

use std::io;

#[cfg(feature = "tls")]
pub mod pki;
pub mod reviews;
#[path = "../shop/mod.rs"]
pub mod shop;
#[cfg(feature = "jwt")]
pub mod tokens;

use bytes::Bytes;

/// The structured message of the echo examples in `--codec` mode. It derives both prost and
/// serde, so one type serves Protobuf, JSON and MessagePack.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
pub struct EchoMessage {
    /// The caller's sequence number.
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// Opaque payload bytes.
    #[prost(bytes = "bytes", tag = "2")]
    pub payload: Bytes,
    /// Free text.
    #[prost(string, tag = "3")]
    pub note: String,
}

rpc_core::codec::impl_message!(EchoMessage);

/// A tokio runtime: current-thread for `threads <= 1`, otherwise multi-thread with that many workers.
///
/// # Errors
/// The runtime's build error.
pub fn runtime(threads: usize) -> io::Result<tokio::runtime::Runtime> {
    if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default: warnings and errors).
pub fn init_tracing() {
    init_tracing_or("warn");
}

/// Logs to stderr, filtered by `RUST_LOG` (default: `default`, such as `"error"`).
pub fn init_tracing_or(default: &str) {
    tracing_subscriber::fmt()
        .with_writer(io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| default.into()),
        )
        .init();
}
