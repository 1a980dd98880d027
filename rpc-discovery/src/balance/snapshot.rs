//! The endpoints of one endpoint set and the hash ring over them; how a new set replaces the old
//! one.

use std::collections::HashMap;
use std::sync::Arc;

use super::config::BalanceConfig;
use super::node::Node;
use super::pick::Ring;
use crate::instance::EndpointSet;

/// The endpoints of one endpoint set, and the hash ring over them.
#[derive(Default)]
pub(super) struct Snapshot {
    pub(super) nodes: Vec<Arc<Node>>,
    pub(super) ring: Ring,
}

impl Snapshot {
    /// A snapshot of these endpoints.
    fn new(nodes: Vec<Arc<Node>>) -> Snapshot {
        let ring = Ring::new(nodes.iter().map(|n| n.addr()));
        Snapshot { nodes, ring }
    }

    /// The snapshot of `set`, keeping the connection and statistics of endpoints that stay.
    /// Instances whose endpoint `config` cannot make are skipped (and logged).
    pub(super) fn update(&self, set: &EndpointSet, config: &BalanceConfig) -> Snapshot {
        let by_addr: HashMap<&str, &Arc<Node>> = self.nodes.iter().map(|n| (n.addr(), n)).collect();
        let mut nodes = Vec::with_capacity(set.len());
        for inst in set.instances() {
            match by_addr.get(inst.addr.as_str()) {
                Some(n) if n.instance == *inst => nodes.push(Arc::clone(n)),
                // Same address, changed instance (weight, tags...): same connection, fresh stats.
                Some(n) => nodes.push(Arc::new(Node::new(inst.clone(), n.channel.clone(), config))),
                None => match (config.endpoint)(inst) {
                    Ok(ep) => {
                        let ep = match (ep.keepalive_settings(), config.keepalive) {
                            (None, Some((interval, timeout))) => ep.keepalive(interval, timeout),
                            _ => ep,
                        };
                        nodes.push(Arc::new(Node::new(inst.clone(), ep.connect_lazy(), config)))
                    }
                    Err(e) => tracing::warn!(addr = %inst.addr, error = %e, "skipping instance"),
                },
            }
        }
        tracing::debug!(endpoints = nodes.len(), "endpoint set changed");
        Snapshot::new(nodes)
    }
}
