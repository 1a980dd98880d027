//! The pick strategies, one file each: each chooses one of a call's healthy endpoints.

mod least_outstanding;
mod p2c;
mod ring;
mod round_robin;
mod weighted;

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use rpc_core::Request;
use tokio::time::Instant;

use super::config::{BalanceConfig, Strategy};
use super::node::Node;

pub(super) use ring::Ring;
pub use ring::HASH_KEY;

/// Picks by one [`Strategy`], keeping what strategies need between picks.
#[derive(Debug)]
pub(super) struct Picker {
    strategy: Strategy,
    ewma_decay: Duration,
    /// Where round robin (and the tie-breaking of least outstanding) goes next.
    next: AtomicUsize,
}

impl Picker {
    /// A picker by `config`'s strategy.
    pub(super) fn new(config: &BalanceConfig) -> Picker {
        Picker {
            strategy: config.strategy,
            ewma_decay: config.ewma_decay,
            next: AtomicUsize::new(0),
        }
    }

    /// The strategy.
    pub(super) fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// One of `healthy` (indices into `nodes`, at least one) for `req`; `ring` is the hash ring
    /// over `nodes`.
    pub(super) fn pick(
        &self,
        nodes: &[Arc<Node>],
        ring: &Ring,
        healthy: &[usize],
        req: &Request,
        now: Instant,
    ) -> usize {
        match self.strategy {
            Strategy::RoundRobin => round_robin::pick(healthy, &self.next),
            Strategy::WeightedRandom => weighted::pick(nodes, healthy),
            Strategy::LeastOutstanding => least_outstanding::pick(nodes, healthy, &self.next),
            Strategy::P2cPeakEwma => p2c::pick(nodes, healthy, now, self.ewma_decay),
            Strategy::ConsistentHash => ring.pick(req, healthy),
        }
    }
}
