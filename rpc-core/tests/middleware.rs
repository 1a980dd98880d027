//! The fault-tolerance middleware end to end: circuit breaking, load shedding, quotas, deadline
//! propagation, failsafe fallbacks, retries under a budget and hedging.
//!
//! Every test is deterministic: servers and clients talk over the in-memory transport, inside one
//! current-thread runtime whose clock is paused. Time passes only when every task waits for a
//! timer, and then jumps to the next one, so a call takes no time at all and a 400 ms breaker
//! opening lasts exactly 400 ms of virtual time, however busy the machine. Nothing asserts that the
//! test was fast enough; where a test waits for a state, it polls with
//! [`eventually`](support::poll::eventually), whose limit is virtual time too.
//!
//! This file holds what the tests share; the tests themselves are in `middleware/`, one file per
//! middleware.

#![allow(missing_docs)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rpc_core::middleware::{
    BreakerConfig, BreakerState, CircuitBreakerLayer, DeadlineLayer, FailsafeLayer, HedgeDelay,
    HedgeLayer, LoadShedLayer, PerMethod, RateLimitLayer, RetryBudget, RetryLayer, RetryPolicy,
    ShedLimit, Stats, RETRY_AFTER_MS,
};
use rpc_core::server::RawService;
use rpc_core::transport::memory::MemoryListener;
use rpc_core::{
    service, Channel, Code, CodecId, Context, Delivery, Endpoint, Request, Response, Server, Status,
};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tower::{Layer, Service, ServiceBuilder, ServiceExt};

mod support;

use support::poll::eventually;
use support::{serve, Running};

/// How long a test polls for a state before failing (virtual time: the clock is paused).
const LIMIT: Duration = Duration::from_secs(10);

/// Serves `server` on the in-memory address `name` (one per test: tests share the process);
/// returns the name to connect to.
fn serve_memory(name: &'static str, server: Server) -> (&'static str, Running) {
    (name, serve(server, MemoryListener::bind(name).unwrap()))
}

/// Calls `svc` once it is ready.
async fn call<S>(svc: &mut S, req: Request) -> Result<Response, Status>
where
    S: Service<Request, Response = Response, Error = Status>,
{
    svc.ready().await?.call(req).await
}

/// Counts its own drop: tells a test that a handler future was dropped (cancelled).
struct DropCount(Arc<AtomicUsize>);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn count(n: &AtomicUsize) -> usize {
    n.load(Ordering::SeqCst)
}

fn body(resp: &Response) -> &str {
    std::str::from_utf8(resp.body()).unwrap()
}

/// A service `demo.Flaky` whose `Call` counts its calls and fails with `Unavailable` while
/// `failing` is set.
fn flaky(calls: &Arc<AtomicUsize>, failing: &Arc<AtomicBool>) -> RawService {
    let (calls, failing) = (calls.clone(), failing.clone());
    RawService::new("demo.Flaky").method("Call", move |_req| {
        calls.fetch_add(1, Ordering::SeqCst);
        let failing = failing.load(Ordering::SeqCst);
        async move {
            if failing {
                Err(Status::unavailable("failing on purpose"))
            } else {
                Ok(Response::new("ok"))
            }
        }
    })
}

fn flaky_call() -> Request {
    Request::new("demo.Flaky/Call", "")
}

// The tests, by middleware. (`#[path]`: this file is a test crate's root, and a file directly in
// `tests/` would be a test crate of its own.)
#[path = "middleware/breaker.rs"]
mod breaker;
#[path = "middleware/deadline.rs"]
mod deadline;
#[path = "middleware/failsafe.rs"]
mod failsafe;
#[path = "middleware/hedge.rs"]
mod hedge;
#[path = "middleware/rate_limit.rs"]
mod rate_limit;
#[path = "middleware/readiness.rs"]
mod readiness;
#[path = "middleware/retry.rs"]
mod retry;
#[path = "middleware/shed.rs"]
mod shed;
