//! Power of two choices over peak EWMA: two endpoints at random, the cheaper wins.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::balance::node::Node;

/// Of two distinct endpoints of `healthy` drawn at random, the one whose cost (latency estimate
/// times calls in flight plus one) is lower at `now`.
pub(super) fn pick(nodes: &[Arc<Node>], healthy: &[usize], now: Instant, decay: Duration) -> usize {
    if healthy.len() == 1 {
        return healthy[0];
    }
    let a = fastrand::usize(..healthy.len());
    let mut b = fastrand::usize(..healthy.len() - 1);
    if b >= a {
        b += 1;
    }
    let (na, nb) = (&nodes[healthy[a]], &nodes[healthy[b]]);
    if na.cost(now, decay) <= nb.cost(now, decay) {
        healthy[a]
    } else {
        healthy[b]
    }
}
