//! Cluster modes, as Dubbo users know them, over a balanced channel: failover, failfast,
//! failsafe, forking and broadcast.

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};

use rpc_core::client::OpenStream;
use rpc_core::middleware::{Failsafe, FailsafeLayer, Retry, RetryLayer};
use rpc_core::stream::{RawSender, RawStreaming};
use rpc_core::BoxFuture;
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
    /// Dubbo's forking mode: sends `req` to up to `n` endpoints at once and returns the first
    /// success; the other attempts are cancelled. Fails only if all fail (with the last error).
    ///
    /// # Errors
    /// `Unavailable` (not sent) when no endpoint is live; otherwise the last failure.
    pub async fn fork(&self, req: Request, n: usize) -> Result<Response, Status> {
        let nodes: Vec<Arc<_>> = self.live_nodes(&req).into_iter().take(n.max(1)).collect();
        if nodes.is_empty() {
            return Err(self.no_endpoint(0));
        }
        let mut calls: Vec<_> = nodes
            .iter()
            .map(|node| Box::pin(self.send(node, req.clone())))
            .collect();
        let mut last_err = None;
        std::future::poll_fn(|cx| {
            let mut i = 0;
            while i < calls.len() {
                match calls[i].as_mut().poll(cx) {
                    Poll::Ready(Ok(resp)) => return Poll::Ready(Ok(resp)),
                    Poll::Ready(Err(e)) => {
                        last_err = Some(e);
                        drop(calls.swap_remove(i));
                    }
                    Poll::Pending => i += 1,
                }
            }
            if calls.is_empty() {
                Poll::Ready(Err(last_err
                    .take()
                    .unwrap_or_else(|| Status::internal("no attempt finished"))))
            } else {
                Poll::Pending
            }
        })
        .await
    }

    /// Dubbo's broadcast mode: sends `req` to every live endpoint and returns every answer, by
    /// address; fails if any endpoint fails (naming it).
    ///
    /// # Errors
    /// `Unavailable` (not sent) when no endpoint is live; otherwise the first failure.
    pub async fn broadcast(&self, req: Request) -> Result<Vec<(String, Response)>, Status> {
        let mut nodes = self.live_nodes(&req);
        if nodes.is_empty() {
            return Err(self.no_endpoint(0));
        }
        nodes.sort_by(|a, b| a.addr().cmp(b.addr()));
        let mut calls: Vec<_> = nodes
            .iter()
            .map(|node| Some(Box::pin(self.send(node, req.clone()))))
            .collect();
        let mut out: Vec<Option<Response>> = vec![None; nodes.len()];
        std::future::poll_fn(|cx| {
            let mut pending = false;
            for (i, slot) in calls.iter_mut().enumerate() {
                let Some(call) = slot else { continue };
                match call.as_mut().poll(cx) {
                    Poll::Ready(Ok(resp)) => {
                        out[i] = Some(resp);
                        *slot = None;
                    }
                    Poll::Ready(Err(e)) => {
                        let addr = nodes[i].addr();
                        return Poll::Ready(Err(Status::new(
                            e.code(),
                            format!("broadcast to {addr} failed: {}", e.message()),
                        )
                        .with_delivery(e.delivery())));
                    }
                    Poll::Pending => pending = true,
                }
            }
            if pending {
                Poll::Pending
            } else {
                Poll::Ready(Ok(()))
            }
        })
        .await?;
        Ok(nodes
            .iter()
            .zip(out)
            .filter_map(|(n, r)| r.map(|r| (n.addr().to_owned(), r)))
            .collect())
    }

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

/// A stream goes to one endpoint under every mode (see [`BalancedChannel`]'s `OpenStream`): it is
/// not retried (failover), replaced by a fallback (failsafe), forked or broadcast.
impl OpenStream for ClusterChannel {
    fn open_stream(
        &self,
        request: Request,
        stream_flags: u8,
    ) -> BoxFuture<'static, Result<(Option<RawSender>, RawStreaming), Status>> {
        let channel = match &self.mode {
            Mode::Failover(s) => s.get_ref(),
            Mode::Failsafe(s) => s.get_ref(),
            Mode::Failfast(s) | Mode::Forking(s, _) | Mode::Broadcast(s) => s,
        };
        channel.open_stream(request, stream_flags)
    }
}
