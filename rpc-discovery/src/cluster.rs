//! Cluster modes, as Dubbo users know them, over a balanced channel.

use std::task::{Context, Poll};

use rpc_core::middleware::{Failsafe, FailsafeLayer, Retry, RetryLayer};
use rpc_core::transport::BoxFuture;
use rpc_core::{Request, Response, Status};
use tower::{Layer, Service};

use crate::balance::BalancedChannel;

/// What a [`ClusterChannel`] does when calls fail, or how it spreads one call.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Cluster {
    /// Retry on another endpoint: idempotent calls, and calls that never reached a server, under
    /// the layer's policy and budget. The default.
    Failover(RetryLayer),
    /// One attempt; failures go straight to the caller.
    Failfast,
    /// Log failures and answer with a fallback.
    Failsafe(FailsafeLayer),
    /// Send to this many endpoints at once; the first success wins.
    Forking(usize),
    /// Send to every live endpoint; fail if any fails. The answer is the last endpoint's (by
    /// address); [`BalancedChannel::broadcast`] returns all of them.
    Broadcast,
}

impl Default for Cluster {
    fn default() -> Self {
        Cluster::Failover(RetryLayer::new())
    }
}

#[derive(Debug, Clone)]
enum Mode {
    Failover(Retry<BalancedChannel>),
    Failfast(BalancedChannel),
    Failsafe(Failsafe<BalancedChannel>),
    Forking(BalancedChannel, usize),
    Broadcast(BalancedChannel),
}

/// A [`BalancedChannel`] under a [`Cluster`] mode; a `tower::Service<Request>` like the channel,
/// so generated clients use it the same way.
///
/// ```
/// use rpc_discovery::{BalancedChannel, Cluster, EndpointSet, Instance, Watch};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let set = EndpointSet::new([Instance::new("demo.Echo", "127.0.0.1:7001")]);
/// let channel = BalancedChannel::new(Watch::fixed(set)).cluster(Cluster::Forking(2));
/// # let _ = channel;
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ClusterChannel {
    mode: Mode,
}

impl BalancedChannel {
    /// This channel under a cluster mode.
    pub fn cluster(self, cluster: Cluster) -> ClusterChannel {
        let mode = match cluster {
            Cluster::Failover(retry) => Mode::Failover(retry.layer(self)),
            Cluster::Failfast => Mode::Failfast(self),
            Cluster::Failsafe(fallback) => Mode::Failsafe(fallback.layer(self)),
            Cluster::Forking(n) => Mode::Forking(self, n.max(1)),
            Cluster::Broadcast => Mode::Broadcast(self),
        };
        ClusterChannel { mode }
    }
}

impl Service<Request> for ClusterChannel {
    type Response = Response;
    type Error = Status;
    type Future = BoxFuture<'static, Result<Response, Status>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        match &mut self.mode {
            Mode::Failover(s) => s.call(req),
            Mode::Failfast(s) => s.call(req),
            Mode::Failsafe(s) => s.call(req),
            Mode::Forking(s, n) => {
                let (s, n) = (s.clone(), *n);
                Box::pin(async move { s.fork(req, n).await })
            }
            Mode::Broadcast(s) => {
                let s = s.clone();
                Box::pin(async move {
                    let mut all = s.broadcast(req).await?;
                    all.pop()
                        .map(|(_, r)| r)
                        .ok_or_else(|| Status::unavailable("no endpoint answered"))
                })
            }
        }
    }
}
