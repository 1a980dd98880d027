//! The buckets of one rate-limited service, and the admission of a call against them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::bucket::Bucket;
use super::RETRY_AFTER_MS;
use crate::message::Request;
use crate::middleware::Stats;
use crate::status::{Delivery, Status};
use crate::transport::PeerAddr;

/// Callers remembered at most; beyond it, callers whose buckets refilled are forgotten.
const MAX_CALLERS: usize = 100_000;

/// The global bucket and the per-caller buckets, shared by the clones of a service.
#[derive(Debug)]
pub(super) struct Limits {
    global: Option<Mutex<Bucket>>,
    per_caller: Option<(f64, f64)>,
    caller_key: Option<String>,
    callers: Mutex<HashMap<String, Bucket>>,
    stats: Arc<Stats>,
}

impl Limits {
    /// Full buckets: `global` and `per_caller` are `(rate, burst)`.
    pub(super) fn new(
        global: Option<(f64, f64)>,
        per_caller: Option<(f64, f64)>,
        caller_key: Option<String>,
        stats: Arc<Stats>,
    ) -> Limits {
        Limits {
            global: global.map(|(r, b)| Mutex::new(Bucket::new(r, b))),
            per_caller,
            caller_key,
            callers: Mutex::default(),
            stats,
        }
    }

    /// Whose quota a call spends: its authenticated principal's (`principal:SUBJECT`); without
    /// one, the caller its metadata names, if the layer was told to trust it
    /// (`caller:NAME`, `caller:` when absent); otherwise its peer's address without the port
    /// (`peer:IP`, or the in-memory listener's name).
    fn caller_of(&self, req: &Request) -> String {
        if let Some(p) = req.context().principal() {
            return format!("principal:{}", p.subject);
        }
        if let Some(key) = &self.caller_key {
            return format!("caller:{}", req.metadata().get_str(key).unwrap_or(""));
        }
        let mut peer = req.context().peer();
        while let Some(PeerAddr::Tls(inner, _)) = peer {
            peer = Some(&**inner);
        }
        match peer {
            Some(PeerAddr::Tcp(a)) => format!("peer:{}", a.ip()),
            Some(PeerAddr::Memory(name, _)) => format!("peer:memory:{name}"),
            Some(other) => format!("peer:{other}"),
            None => "peer:".to_owned(),
        }
    }

    /// Admits a call only if every bucket that applies has a token, and then takes one from each,
    /// so that a call refused by one limit spends nothing of the others.
    pub(super) fn check(&self, req: &Request) -> Result<(), Status> {
        let now = Instant::now();
        let caller = match self.per_caller {
            Some(_) => self.caller_of(req),
            None => String::new(),
        };
        let caller = caller.as_str();
        // The caller table is locked only when there are quotas to check.
        let mut callers = self
            .per_caller
            .map(|_| self.callers.lock().unwrap_or_else(|e| e.into_inner()));
        let mut bucket = None;
        if let (Some((rate, burst)), Some(callers)) = (self.per_caller, callers.as_mut()) {
            if !callers.contains_key(caller) {
                if callers.len() >= MAX_CALLERS {
                    // Forget callers whose buckets refilled: they are as good as new.
                    callers.retain(|_, b| !b.is_full(now));
                }
                callers.insert(caller.to_owned(), Bucket::new(rate, burst));
            }
            if let Some(b) = callers.get_mut(caller) {
                if let Err(wait) = b.check(now) {
                    let why = format!("caller {caller:?} is over its quota of {rate}/s");
                    return Err(self.refuse(req, why, wait));
                }
                bucket = Some(b);
            }
        }
        if let Some(global) = &self.global {
            let mut g = global.lock().unwrap_or_else(|e| e.into_inner());
            if let Err(wait) = g.check(now) {
                let why = format!("rate limit of {}/s reached", g.rate);
                return Err(self.refuse(req, why, wait));
            }
            g.take();
        }
        if let Some(b) = bucket {
            b.take();
        }
        Ok(())
    }

    fn refuse(&self, req: &Request, why: String, wait: Duration) -> Status {
        Stats::bump(&self.stats.rate_limited);
        let ms = wait.as_millis().max(1) as u64;
        tracing::debug!(target: "rpc_core::middleware", path = req.path(), retry_after_ms = ms, "{why}");
        let mut status = Status::resource_exhausted(why).with_delivery(Delivery::NotSent);
        status.metadata_mut().insert(RETRY_AFTER_MS, ms.to_string());
        status
    }
}
