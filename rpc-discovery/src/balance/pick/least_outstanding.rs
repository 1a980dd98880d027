//! Least outstanding: the endpoint with the fewest calls in flight.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::balance::node::Node;

/// The one of `healthy` with the fewest calls in flight; ties go to the first after a position
/// that `next` advances on every pick, so that idle endpoints share the load.
pub(super) fn pick(nodes: &[Arc<Node>], healthy: &[usize], next: &AtomicUsize) -> usize {
    let start = next.fetch_add(1, Ordering::Relaxed);
    let n = healthy.len();
    (0..n)
        .map(|k| healthy[(start + k) % n])
        .min_by_key(|&i| nodes[i].outstanding.load(Ordering::Relaxed))
        .unwrap_or(healthy[0])
}
