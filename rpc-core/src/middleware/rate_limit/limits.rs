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

/// Callers remembered at most; beyond it, callers whose buckets refilled are forgotten, and while
/// the table is still full, new callers share one overflow bucket.
const MAX_CALLERS: usize = 100_000;

/// The least time between two sweeps of a full caller table, so that a flood of new names costs a
/// sweep a second rather than one per call.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Bytes of a caller name (from metadata the caller writes) kept in its key; longer names are cut.
const MAX_CALLER_NAME: usize = 256;

/// The per-caller buckets.
#[derive(Debug, Default)]
struct Callers {
    buckets: HashMap<String, Bucket>,
    /// Spent by callers that are new while the table is full.
    overflow: Option<Bucket>,
    swept_at: Option<Instant>,
}

impl Callers {
    /// The bucket of `caller`, created full if it is new. A new caller arriving when the table is
    /// full (and still full after at most one sweep a second) spends the shared overflow bucket:
    /// memory stays bounded whatever names callers invent.
    fn bucket(&mut self, caller: &str, rate: f64, burst: f64, now: Instant) -> &mut Bucket {
        if !self.buckets.contains_key(caller) && self.buckets.len() >= MAX_CALLERS {
            let due = self
                .swept_at
                .is_none_or(|at| now.saturating_duration_since(at) >= SWEEP_EVERY);
            if due {
                // Forget callers whose buckets refilled: they are as good as new.
                self.buckets.retain(|_, b| !b.is_full(now));
                self.swept_at = Some(now);
            }
            if self.buckets.len() >= MAX_CALLERS {
                return self
                    .overflow
                    .get_or_insert_with(|| Bucket::new(rate, burst));
            }
        }
        self.buckets
            .entry(caller.to_owned())
            .or_insert_with(|| Bucket::new(rate, burst))
    }
}

/// The global bucket and the per-caller buckets, shared by the clones of a service.
#[derive(Debug)]
pub(super) struct Limits {
    global: Option<Mutex<Bucket>>,
    per_caller: Option<(f64, f64)>,
    caller_key: Option<String>,
    callers: Mutex<Callers>,
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
    /// (`caller:NAME`, `caller:` when absent, `NAME` cut to 256 bytes); otherwise its peer's address without the port
    /// (`peer:IP`, or the in-memory listener's name).
    fn caller_of(&self, req: &Request) -> String {
        if let Some(p) = req.context().principal() {
            return format!("principal:{}", p.subject);
        }
        if let Some(key) = &self.caller_key {
            let mut name = req.metadata().get_str(key).unwrap_or("");
            if name.len() > MAX_CALLER_NAME {
                let mut end = MAX_CALLER_NAME;
                while !name.is_char_boundary(end) {
                    end -= 1;
                }
                name = &name[..end];
            }
            return format!("caller:{name}");
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
            let b = callers.bucket(caller, rate, burst, now);
            if let Err(wait) = b.check(now) {
                // Quoted and escaped, and a name from metadata is at most 256 bytes.
                let why = format!("caller {caller:?} is over its quota of {rate}/s");
                return Err(self.refuse(req, why, wait));
            }
            bucket = Some(b);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A table filled with names that keep their buckets spent: a new name shares the overflow
    /// bucket, the table does not grow, and once the old buckets refill a sweep makes room again.
    #[tokio::test(start_paused = true)]
    async fn a_full_caller_table_does_not_grow() {
        let now = Instant::now();
        let mut callers = Callers::default();
        for i in 0..MAX_CALLERS {
            let b = callers.bucket(&format!("caller:{i}"), 1.0, 1.0, now);
            b.check(now).unwrap();
            b.take();
        }
        assert_eq!(callers.buckets.len(), MAX_CALLERS);

        let b = callers.bucket("caller:new-1", 1.0, 1.0, now);
        b.check(now).unwrap();
        b.take();
        assert_eq!(callers.buckets.len(), MAX_CALLERS);
        // A second new name spends the same, now empty, overflow bucket.
        assert!(callers
            .bucket("caller:new-2", 1.0, 1.0, now)
            .check(now)
            .is_err());
        assert_eq!(callers.buckets.len(), MAX_CALLERS);

        // Two seconds on, every bucket refilled: the next new name gets a bucket of its own.
        let later = now + Duration::from_secs(2);
        assert!(callers
            .bucket("caller:new-3", 1.0, 1.0, later)
            .check(later)
            .is_ok());
        assert_eq!(callers.buckets.len(), 1);
        assert!(callers.buckets.contains_key("caller:new-3"));
    }
}
