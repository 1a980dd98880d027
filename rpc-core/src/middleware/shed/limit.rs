//! The concurrency limit, fixed or adaptive (AIMD), and the count of calls in flight under it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::message::Response;
use crate::middleware::Stats;
use crate::status::{Code, Status};

/// How many calls may be in flight.
#[derive(Debug, Clone, Copy)]
pub enum ShedLimit {
    /// A fixed number.
    Fixed(usize),
    /// Additive increase, multiplicative decrease: the limit grows by about one per `limit`
    /// calls that finish within `target` latency, and shrinks by 10% when a call is slower, fails
    /// with `DeadlineExceeded` or `ResourceExhausted`. Stays within `min..=max`.
    Aimd {
        /// The starting limit.
        initial: usize,
        /// The lowest limit.
        min: usize,
        /// The highest limit.
        max: usize,
        /// Latency above which a call counts as a sign of overload.
        target: Duration,
    },
}

/// The limit and the calls in flight, shared by the clones of a service.
#[derive(Debug)]
pub(super) struct State {
    in_flight: AtomicUsize,
    limit: Mutex<f64>,
    mode: ShedLimit,
    pub(super) stats: Arc<Stats>,
}

impl State {
    pub(super) fn new(mode: ShedLimit, stats: Arc<Stats>) -> State {
        let initial = match mode {
            ShedLimit::Fixed(n) => n,
            ShedLimit::Aimd {
                initial, min, max, ..
            } => initial.clamp(min, max.max(min)),
        };
        State {
            in_flight: AtomicUsize::new(0),
            limit: Mutex::new(initial as f64),
            mode,
            stats,
        }
    }

    /// The current limit.
    pub(super) fn limit(&self) -> usize {
        match self.mode {
            ShedLimit::Fixed(n) => n,
            ShedLimit::Aimd { .. } => {
                *self.limit.lock().unwrap_or_else(|e| e.into_inner()) as usize
            }
        }
    }

    /// Calls in flight.
    pub(super) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Counts one more call in flight; returns how many there were before.
    pub(super) fn enter(&self) -> usize {
        self.in_flight.fetch_add(1, Ordering::AcqRel)
    }

    /// Counts one call fewer in flight.
    pub(super) fn leave(&self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    /// Adapts an AIMD limit to a call that took `latency` and ended with `result` (`None`: it
    /// ended without an answer).
    pub(super) fn adjust(&self, latency: Duration, result: Option<&Result<Response, Status>>) {
        let ShedLimit::Aimd {
            min, max, target, ..
        } = self.mode
        else {
            return;
        };
        let overloaded = match result {
            // The call ended without an answer (its deadline passed, or the caller gave up): a
            // sign of overload if it had run longer than the target.
            None if latency <= target => return,
            None => true,
            Some(result) => {
                latency > target
                    || result.as_ref().err().is_some_and(|s| {
                        matches!(s.code(), Code::DeadlineExceeded | Code::ResourceExhausted)
                    })
            }
        };
        let mut l = self.limit.lock().unwrap_or_else(|e| e.into_inner());
        let next = if overloaded {
            *l * 0.9
        } else {
            *l + 1.0 / l.max(1.0)
        };
        *l = next.clamp(min as f64, max as f64);
    }
}
