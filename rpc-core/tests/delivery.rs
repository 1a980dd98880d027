//! What a caller is told about delivery: one-way calls resolve only once the server proved it read
//! them and never report `Ok` for a call the server's go-away left unprocessed (issue 12, item 1),
//! and a connection whose peer stops reading holds a bounded number of unwritten bytes while
//! callers wait or fail `ResourceExhausted` (item 6).
//!
//! Most tests talk to a fake server over the in-memory transport that speaks raw frames
//! (`delivery/fake.rs`), on tokio's paused clock. This file holds what they share; the tests are in
//! `delivery/`, one file per concept.

use std::time::Duration;

use rpc_core::transport::memory::MemoryListener;
use rpc_core::{Code, Delivery, Endpoint, Request};

mod support;

/// How long a test waits for a condition it polls for (virtual time: the clock is paused).
const POLL_LIMIT: Duration = Duration::from_secs(10);

/// A one-way call to `demo.Events/Publish` whose body is `body`.
fn publish(body: impl Into<bytes::Bytes>) -> Request {
    Request::new("demo.Events/Publish", body).with_one_way(true)
}

#[path = "delivery/fake.rs"]
mod fake;
#[path = "delivery/one_way.rs"]
mod one_way;
#[path = "delivery/passed_on.rs"]
mod passed_on;
#[path = "delivery/shutdown.rs"]
mod shutdown;
#[path = "delivery/unwritten.rs"]
mod unwritten;
