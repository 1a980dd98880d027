//! Weighted random: each endpoint in proportion to its instance's weight.

use std::sync::Arc;

use crate::balance::node::Node;

/// One of `healthy` at random, in proportion to [`Instance::weight`](crate::Instance::weight);
/// uniformly when every weight is 0.
pub(super) fn pick(nodes: &[Arc<Node>], healthy: &[usize]) -> usize {
    let weight = |i: usize| u64::from(nodes[i].instance.weight);
    let total: u64 = healthy.iter().map(|&i| weight(i)).sum();
    if total == 0 {
        return healthy[fastrand::usize(..healthy.len())];
    }
    let mut r = fastrand::u64(..total);
    for &i in healthy {
        let w = weight(i);
        if r < w {
            return i;
        }
        r -= w;
    }
    healthy[healthy.len() - 1]
}
