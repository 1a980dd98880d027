//! Canary routing, and which endpoints may take a call.

use std::sync::Arc;

use rpc_core::Request;
use tokio::time::Instant;

use super::health::Availability;
use super::node::Node;

/// The metadata key of canary routing: a value `key=value` sends the call to instances carrying
/// that tag, or to the rest when none is live.
pub const ROUTE_TAG: &str = "rpc-route-tag";

/// The tag `req` asks for with [`ROUTE_TAG`], as `(key, value)`.
pub(super) fn route_tag(req: &Request) -> Option<(&str, &str)> {
    req.metadata()
        .get_str(ROUTE_TAG)
        .and_then(|t| t.split_once('='))
}

/// The endpoints that may take a call, as indices into the endpoint list.
#[derive(Debug, Default)]
pub(super) struct Candidates {
    /// The healthy ones.
    pub(super) healthy: Vec<usize>,
    /// At most one whose ejection is over and that may be probed.
    pub(super) probe: Option<usize>,
}

impl Candidates {
    /// The candidates among `nodes` at `now` that carry `tag` (all when `None`).
    pub(super) fn of(nodes: &[Arc<Node>], now: Instant, tag: Option<(&str, &str)>) -> Candidates {
        let mut c = Candidates {
            healthy: Vec::with_capacity(nodes.len()),
            probe: None,
        };
        for (i, n) in nodes.iter().enumerate() {
            if let Some((k, v)) = tag {
                if !n.instance.has_tag(k, v) {
                    continue;
                }
            }
            match n.availability(now) {
                Availability::Available => c.healthy.push(i),
                Availability::Probe if c.probe.is_none() => c.probe = Some(i),
                _ => {}
            }
        }
        c
    }
}
