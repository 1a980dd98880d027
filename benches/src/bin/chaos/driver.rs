//! The open-loop load: calls at a fixed rate whatever the answers, each timed from when it was
//! due (so a stall shows in the latencies instead of slowing the load down).

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use hdrhistogram::Histogram;
use rpc_core::{Code, Request, Response, Status};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::ServiceExt;

use crate::server::METHOD;

/// What one step's load saw.
pub(crate) struct Tally {
    pub(crate) calls: u64,
    pub(crate) failed_idempotent: u64,
    pub(crate) failed_other: u64,
    /// Failures by code (idempotent or not).
    pub(crate) codes: BTreeMap<String, u64>,
    /// Calls refused by shedding (`ResourceExhausted`).
    pub(crate) shed: u64,
    /// Latency of the calls that succeeded, in microseconds.
    pub(crate) admitted: Histogram<u64>,
    /// The first few failed idempotent calls: when they were due (seconds into the step) and
    /// their status, to tell what failed them.
    pub(crate) idempotent_failures: Vec<String>,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            calls: 0,
            failed_idempotent: 0,
            failed_other: 0,
            codes: BTreeMap::new(),
            shed: 0,
            admitted: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds"),
            idempotent_failures: Vec::new(),
        }
    }

    fn record(&mut self, idempotent: bool, at: Duration, outcome: Result<Duration, Status>) {
        self.calls += 1;
        match outcome {
            Ok(took) => {
                let _ = self.admitted.record((took.as_micros() as u64).max(1));
            }
            Err(e) => {
                if idempotent {
                    self.failed_idempotent += 1;
                    if self.idempotent_failures.len() < 5 {
                        self.idempotent_failures.push(format!(
                            "due at {:.3} s: {:?} {:?} ({:?})",
                            at.as_secs_f64(),
                            e.code(),
                            e.message(),
                            e.delivery()
                        ));
                    }
                } else {
                    self.failed_other += 1;
                }
                if e.code() == Code::ResourceExhausted {
                    self.shed += 1;
                }
                *self.codes.entry(format!("{:?}", e.code())).or_default() += 1;
            }
        }
    }

    /// The admitted latency at `q` (0..=1), in milliseconds.
    pub(crate) fn ms(&self, q: f64) -> f64 {
        self.admitted.value_at_quantile(q) as f64 / 1000.0
    }
}

/// Calls at `rate` per second for `secs`; every other call is marked idempotent. Waits for the
/// calls still in flight at the end.
pub(crate) async fn load<S>(stack: S, rate: f64, secs: Duration) -> Tally
where
    S: tower::Service<Request, Response = Response, Error = Status> + Clone + Send + 'static,
    S::Future: Send,
{
    let period = Duration::from_secs_f64(1.0 / rate.max(0.001));
    let start = Instant::now();
    let end = start + secs;
    let mut tally = Tally::new();
    let mut calls = JoinSet::new();
    let mut n: u64 = 0;
    loop {
        let due = start + period.mul_f64(n as f64);
        if due >= end {
            break;
        }
        tokio::time::sleep_until(due).await;
        let idempotent = n.is_multiple_of(2);
        let req = Request::new(METHOD, Bytes::copy_from_slice(&n.to_be_bytes()))
            .with_idempotent(idempotent);
        let stack = stack.clone();
        calls.spawn(async move {
            let outcome = match stack.oneshot(req).await {
                Ok(r) if r.body()[..] == n.to_be_bytes() => Ok(due.elapsed()),
                Ok(_) => Err(Status::internal("the reply is not the request's body")),
                Err(e) => Err(e),
            };
            (idempotent, due - start, outcome)
        });
        while let Some(done) = calls.try_join_next() {
            if let Ok((idempotent, at, outcome)) = done {
                tally.record(idempotent, at, outcome);
            }
        }
        n += 1;
    }
    while let Some(done) = calls.join_next().await {
        if let Ok((idempotent, at, outcome)) = done {
            tally.record(idempotent, at, outcome);
        }
    }
    tally
}
