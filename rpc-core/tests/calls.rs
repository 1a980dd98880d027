//! Behaviour of calls end to end: concurrency, deadlines, cancellation, one-way calls, shutdown,
//! reconnection and every transport. Timing assertions only run on tokio's paused clock.
//!
//! This file holds what the tests share; the tests themselves are in `calls/`, one file per
//! concept.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rpc_core::server::RawService;
use rpc_core::transport::memory::MemoryListener;
use rpc_core::transport::Listener;
use rpc_core::{
    Channel, Code, Context, Delivery, Endpoint, Metadata, Request, Response, Server, Status,
};
use tokio::sync::{mpsc, oneshot, Barrier};
use tokio::time::Instant;

mod support;

use support::poll::eventually;
use support::{echo, serve, DropSignal, Running};

/// How long a test waits for a condition it polls for.
const POLL_LIMIT: Duration = Duration::from_secs(10);

// The tests, by concept. (`#[path]`: this file is a test crate's root, and a file directly in
// `tests/` would be a test crate of its own.)
#[path = "calls/cancellation.rs"]
mod cancellation;
#[path = "calls/channel.rs"]
mod channel;
#[path = "calls/concurrency.rs"]
mod concurrency;
#[path = "calls/deadlines.rs"]
mod deadlines;
#[path = "calls/keepalive.rs"]
mod keepalive;
#[path = "calls/limits.rs"]
mod limits;
#[path = "calls/metadata.rs"]
mod metadata;
#[path = "calls/shutdown.rs"]
mod shutdown;
#[path = "calls/transport.rs"]
mod transport;
