//! The endpoints one call has tried, for failover across retries and hedges.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::message::Request;

/// The endpoints one call has tried, shared by the retries and hedges of that call. A balancer
/// records each pick here and, when it can, avoids the endpoints already tried, so that a retry
/// goes to another endpoint (failover).
#[derive(Debug, Default)]
pub struct Attempts {
    tried: Mutex<Vec<String>>,
    /// The retry budget (its identity) this call was last counted in.
    deposited: AtomicUsize,
}

impl Attempts {
    /// The attempts of `req`, created (and attached to it) when it has none yet.
    pub fn of(req: &mut Request) -> Arc<Attempts> {
        if let Some(a) = req.extensions().get::<Arc<Attempts>>() {
            return a.clone();
        }
        let a = Arc::new(Attempts::default());
        req.extensions_mut().insert(a.clone());
        a
    }

    /// Records that an attempt went to `endpoint`.
    pub fn record(&self, endpoint: &str) {
        self.tried
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(endpoint.to_owned());
    }

    /// `true` once an attempt was recorded (a first attempt has nothing to avoid).
    pub fn any_tried(&self) -> bool {
        !self
            .tried
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }

    /// `true` if an attempt already went to `endpoint`.
    pub fn tried(&self, endpoint: &str) -> bool {
        self.tried
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|t| t == endpoint)
    }

    /// `true` the first time the call is counted in the retry budget `budget` (an identity):
    /// the retry and hedge layers sharing a budget count a call once.
    pub(crate) fn first_deposit(&self, budget: usize) -> bool {
        self.deposited.swap(budget, Ordering::Relaxed) != budget
    }

    /// The endpoints tried so far, in order.
    pub fn endpoints(&self) -> Vec<String> {
        self.tried.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
