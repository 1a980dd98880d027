//! A channel over a watched endpoint set: one connection per live endpoint, a pick per call,
//! passive health checks, canary routing.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use rpc_core::middleware::{Attempts, BreakerConfig, BreakerState, CircuitBreaker, Stats};
use rpc_core::transport::BoxFuture;
use rpc_core::{Channel, Code, Delivery, Endpoint, Request, Response, Status};
use tokio::time::Instant;
use tower::Service;

use crate::instance::{EndpointSet, Instance};
use crate::registry::Watch;

/// The metadata key whose value picks the consistent-hashing position of a call (e.g. a user id).
pub const HASH_KEY: &str = "rpc-hash-key";

/// The metadata key of canary routing: a value `key=value` sends the call to instances carrying
/// that tag, or to the rest when none is live.
pub const ROUTE_TAG: &str = "rpc-route-tag";

/// How a [`BalancedChannel`] picks an endpoint for a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Strategy {
    /// Power of two choices over peak-EWMA latency times outstanding calls: two endpoints at
    /// random, the cheaper wins. Adapts to slow endpoints within a few calls. The default.
    #[default]
    P2cPeakEwma,
    /// Each endpoint in turn.
    RoundRobin,
    /// At random, in proportion to [`Instance::weight`].
    WeightedRandom,
    /// The endpoint with the fewest calls in flight.
    LeastOutstanding,
    /// A hash ring keyed by the call's [`HASH_KEY`] metadata (random without one): the same key
    /// goes to the same endpoint, and an endpoint joining or leaving moves about 1/N of keys.
    ConsistentHash,
}

type MakeEndpoint = Arc<dyn Fn(&Instance) -> Result<Endpoint, Status> + Send + Sync>;

/// Settings of a [`BalancedChannel`].
#[derive(Clone)]
pub struct BalanceConfig {
    strategy: Strategy,
    eject_after: u32,
    eject_base: Duration,
    eject_max: Duration,
    ewma_decay: Duration,
    default_rtt: Duration,
    endpoint: MakeEndpoint,
    breaker: Option<(BreakerConfig, Arc<Stats>)>,
}

impl fmt::Debug for BalanceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BalanceConfig")
            .field("strategy", &self.strategy)
            .field("eject_after", &self.eject_after)
            .field("eject_base", &self.eject_base)
            .field("eject_max", &self.eject_max)
            .field("ewma_decay", &self.ewma_decay)
            .finish_non_exhaustive()
    }
}

impl Default for BalanceConfig {
    fn default() -> Self {
        BalanceConfig {
            strategy: Strategy::default(),
            eject_after: 5,
            eject_base: Duration::from_secs(1),
            eject_max: Duration::from_secs(30),
            ewma_decay: Duration::from_secs(10),
            default_rtt: Duration::from_millis(1),
            breaker: None,
            endpoint: Arc::new(|i: &Instance| {
                Endpoint::from_uri(&i.addr)
                    .map(|e| e.connect_timeout(Duration::from_secs(1)))
                    .map_err(|e| Status::invalid_argument(format!("instance address: {e}")))
            }),
        }
    }
}

impl BalanceConfig {
    /// Defaults: P2C over peak EWMA, ejection after 5 failures in a row for 1 s (doubling up to
    /// 30 s), 1 s connect timeout.
    pub fn new() -> BalanceConfig {
        BalanceConfig::default()
    }

    /// The pick strategy.
    #[must_use]
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// Failures in a row that eject an endpoint.
    #[must_use]
    pub fn eject_after(mut self, failures: u32) -> Self {
        self.eject_after = failures.max(1);
        self
    }

    /// How long a first ejection lasts, and the cap as it doubles on repeated ejections.
    #[must_use]
    pub fn ejection(mut self, base: Duration, max: Duration) -> Self {
        self.eject_base = base;
        self.eject_max = max.max(base);
        self
    }

    /// A circuit breaker per endpoint: an endpoint whose breaker is open gets no calls until it
    /// half-opens; its probe calls decide. Off by default (ejection already covers failures in a
    /// row; a breaker adds the failure rate over a window).
    #[must_use]
    pub fn breaker(mut self, config: BreakerConfig, stats: Arc<Stats>) -> Self {
        self.breaker = Some((config, stats));
        self
    }

    /// How each instance is reached: a function from the instance to an [`Endpoint`] (to set
    /// timeouts, codecs, keepalive). Default: `Endpoint::from_uri(addr)` with a 1 s connect timeout.
    #[must_use]
    pub fn endpoint(
        mut self,
        f: impl Fn(&Instance) -> Result<Endpoint, Status> + Send + Sync + 'static,
    ) -> Self {
        self.endpoint = Arc::new(f);
        self
    }
}

/// One live endpoint and what the balancer knows about it.
struct Node {
    instance: Instance,
    channel: Channel,
    outstanding: AtomicU32,
    /// Peak EWMA of the round-trip time in nanoseconds, and when it was last updated.
    ewma: Mutex<(f64, Instant)>,
    failures: AtomicU32,
    health: Mutex<Health>,
    /// `health.ejected_until.is_some()`, readable without the lock on every pick.
    ejected: AtomicBool,
    probing: AtomicBool,
    picks: AtomicUsize,
    breaker: Option<CircuitBreaker>,
}

#[derive(Debug, Default)]
struct Health {
    ejected_until: Option<Instant>,
    ejections: u32,
}

impl Node {
    fn new(instance: Instance, channel: Channel, config: &BalanceConfig) -> Node {
        let default_rtt = config.default_rtt;
        Node {
            breaker: config.breaker.as_ref().map(|(c, stats)| {
                CircuitBreaker::new(instance.addr.clone(), c.clone(), stats.clone())
            }),
            instance,
            channel,
            outstanding: AtomicU32::new(0),
            ewma: Mutex::new((default_rtt.as_nanos() as f64, Instant::now())),
            failures: AtomicU32::new(0),
            health: Mutex::new(Health::default()),
            ejected: AtomicBool::new(false),
            probing: AtomicBool::new(false),
            picks: AtomicUsize::new(0),
        }
    }

    /// `Some(true)`: takes calls; `Some(false)`: its ejection is over and it may take one probe
    /// call; `None`: ejected.
    fn availability(&self, now: Instant) -> Option<bool> {
        if self
            .breaker
            .as_ref()
            .is_some_and(|b| b.state() == BreakerState::Open)
        {
            return None;
        }
        if !self.ejected.load(Ordering::Acquire) {
            return Some(true);
        }
        let h = lock(&self.health);
        match h.ejected_until {
            None => Some(true),
            Some(t) if now >= t && !self.probing.load(Ordering::Acquire) => Some(false),
            Some(_) => None,
        }
    }

    fn cost(&self, now: Instant, decay: Duration) -> f64 {
        let (ewma, at) = *lock(&self.ewma);
        // An idle endpoint's estimate decays towards zero, so that it gets tried again.
        let idle = now.saturating_duration_since(at).as_secs_f64();
        let ewma = ewma * (-idle / decay.as_secs_f64()).exp();
        ewma * f64::from(self.outstanding.load(Ordering::Relaxed) + 1)
    }

    fn observe(&self, rtt: Duration, decay: Duration) {
        let mut g = lock(&self.ewma);
        let now = Instant::now();
        let rtt = rtt.as_nanos() as f64;
        let (ewma, at) = *g;
        let next = if rtt > ewma {
            // Peak sensitivity: a slow answer is believed at once.
            rtt
        } else {
            let w = (-now.saturating_duration_since(at).as_secs_f64() / decay.as_secs_f64()).exp();
            ewma * w + rtt * (1.0 - w)
        };
        *g = (next, now);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The nodes of one endpoint set, and the hash ring over them.
#[derive(Default)]
struct Snapshot {
    nodes: Vec<Arc<Node>>,
    /// (hash, index into nodes), sorted.
    ring: Vec<(u64, usize)>,
}

const VNODES: usize = 160;

impl Snapshot {
    fn new(nodes: Vec<Arc<Node>>) -> Snapshot {
        let mut ring = Vec::with_capacity(nodes.len() * VNODES);
        for (idx, n) in nodes.iter().enumerate() {
            for v in 0..VNODES {
                ring.push((fnv1a(format!("{}#{v}", n.instance.addr).as_bytes()), idx));
            }
        }
        ring.sort_unstable();
        Snapshot { nodes, ring }
    }
}

/// FNV-1a, 64 bits, then a finalizer to spread close inputs: stable across processes and
/// versions, so every client maps a key to the same endpoint.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h
}

struct Shared {
    /// Stops the task following the watch when the last channel clone goes.
    _stop: tokio_util::sync::DropGuard,
    config: BalanceConfig,
    snapshot: RwLock<Arc<Snapshot>>,
    rr: AtomicUsize,
    name: String,
}

/// A client channel over a watched endpoint set: one [`Channel`] per live endpoint, a pick per
/// call by the configured [`Strategy`], passive health (endpoints failing
/// [`BalanceConfig::eject_after`] calls in a row, or whose connection fails, are ejected and
/// later probed back), and canary routing by the [`ROUTE_TAG`] metadata entry.
///
/// It is a `tower::Service<Request>` like [`Channel`], so generated clients and middleware use
/// it the same way. Cheap to clone.
///
/// ```
/// use rpc_core::{server::RawService, transport::memory::MemoryListener, Request, Response, Server};
/// use rpc_discovery::{BalancedChannel, Instance, MemoryRegistry, Query, Registry};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let registry = MemoryRegistry::new();
/// let mut regs = Vec::new();
/// for name in ["bal-doc-a", "bal-doc-b"] {
///     let echo = RawService::new("demo.Echo")
///         .method("Who", move |_req| async move { Ok(Response::new(name)) });
///     tokio::spawn(Server::builder().add_service(echo).serve(MemoryListener::bind(name)?));
///     regs.push(registry.register(Instance::new("demo.Echo", format!("memory://{name}"))).await?);
/// }
///
/// let channel = BalancedChannel::new(registry.watch(Query::new("demo.Echo")).await?);
/// let reply = channel.unary(Request::new("demo.Echo/Who", "")).await?;
/// assert!(reply.body().starts_with(b"bal-doc-"));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct BalancedChannel {
    shared: Arc<Shared>,
}

impl fmt::Debug for BalancedChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BalancedChannel")
            .field("name", &self.shared.name)
            .field("strategy", &self.shared.config.strategy)
            .field("endpoints", &self.endpoints())
            .finish()
    }
}

/// What a [`BalancedChannel`] reports about one endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointStats {
    /// The instance.
    pub addr: String,
    /// Calls in flight.
    pub outstanding: u32,
    /// Calls sent to it so far.
    pub picks: usize,
    /// `true` while it is ejected.
    pub ejected: bool,
}

impl BalancedChannel {
    /// Balances over `watch` with the default [`BalanceConfig`].
    pub fn new(watch: Watch) -> BalancedChannel {
        BalancedChannel::with_config(watch, BalanceConfig::default())
    }

    /// Balances over `watch`. A background task (so: call it within a tokio runtime) follows the
    /// watch; it ends when the last clone of the channel is dropped. When the watch stops (its
    /// registry is gone) the last set stays.
    pub fn with_config(watch: Watch, config: BalanceConfig) -> BalancedChannel {
        let first = watch.current();
        let name = first
            .instances()
            .first()
            .map_or_else(String::new, |i| i.service.clone());
        let stop = tokio_util::sync::CancellationToken::new();
        let stopped = stop.clone();
        let shared = Arc::new(Shared {
            _stop: stop.drop_guard(),
            config,
            snapshot: RwLock::new(Arc::new(Snapshot::default())),
            rr: AtomicUsize::new(0),
            name,
        });
        apply(&shared, &first);
        let weak = Arc::downgrade(&shared);
        tokio::spawn(async move {
            tokio::select! {
                () = stopped.cancelled() => {}
                () = follow(weak, watch) => {}
            }
        });
        BalancedChannel { shared }
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        self.shared
            .snapshot
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The endpoints, with their counters.
    pub fn endpoints(&self) -> Vec<EndpointStats> {
        let now = Instant::now();
        self.snapshot()
            .nodes
            .iter()
            .map(|n| EndpointStats {
                addr: n.instance.addr.clone(),
                outstanding: n.outstanding.load(Ordering::Relaxed),
                picks: n.picks.load(Ordering::Relaxed),
                ejected: n.availability(now) != Some(true),
            })
            .collect()
    }

    /// Picks the endpoint for `req` (without sending anything): its address, or `None` when no
    /// endpoint is available. Exposed for tests and diagnostics.
    pub fn pick(&self, req: &Request) -> Option<String> {
        let snap = self.snapshot();
        let node = self.choose(&snap, req)?;
        node.probing.store(false, Ordering::Release);
        Some(node.instance.addr.clone())
    }

    fn choose(&self, snap: &Snapshot, req: &Request) -> Option<Arc<Node>> {
        let now = Instant::now();
        let tag = req
            .metadata()
            .get_str(ROUTE_TAG)
            .and_then(|t| t.split_once('='));
        let mut healthy: Vec<usize> = Vec::with_capacity(snap.nodes.len());
        let mut probe: Option<usize> = None;
        candidates(snap, now, tag, &mut healthy, &mut probe);
        if healthy.is_empty() && probe.is_none() && tag.is_some() {
            // Nothing carries the tag: fall back to the rest.
            candidates(snap, now, None, &mut healthy, &mut probe);
        }
        if let Some(i) = probe {
            // An endpoint whose ejection is over takes one call to prove itself.
            let n = &snap.nodes[i];
            if n.probing
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                return Some(n.clone());
            }
        }
        if healthy.is_empty() {
            return None;
        }
        if let Some(attempts) = req.extensions().get::<Arc<Attempts>>() {
            // A retry or hedge goes to an endpoint this call has not tried, when there is one.
            let untried: Vec<usize> = healthy
                .iter()
                .copied()
                .filter(|&i| !attempts.tried(&snap.nodes[i].instance.addr))
                .collect();
            if !untried.is_empty() {
                healthy = untried;
            }
        }
        let idx = match self.shared.config.strategy {
            Strategy::RoundRobin => {
                healthy[self.shared.rr.fetch_add(1, Ordering::Relaxed) % healthy.len()]
            }
            Strategy::WeightedRandom => {
                let total: u64 = healthy
                    .iter()
                    .map(|&i| u64::from(snap.nodes[i].instance.weight))
                    .sum();
                if total == 0 {
                    healthy[fastrand::usize(..healthy.len())]
                } else {
                    let mut r = fastrand::u64(..total);
                    let mut chosen = healthy[healthy.len() - 1];
                    for &i in &healthy {
                        let w = u64::from(snap.nodes[i].instance.weight);
                        if r < w {
                            chosen = i;
                            break;
                        }
                        r -= w;
                    }
                    chosen
                }
            }
            Strategy::LeastOutstanding => {
                let start = self.shared.rr.fetch_add(1, Ordering::Relaxed);
                let n = healthy.len();
                (0..n)
                    .map(|k| healthy[(start + k) % n])
                    .min_by_key(|&i| snap.nodes[i].outstanding.load(Ordering::Relaxed))
                    .unwrap_or(healthy[0])
            }
            Strategy::P2cPeakEwma => {
                if healthy.len() == 1 {
                    healthy[0]
                } else {
                    let a = fastrand::usize(..healthy.len());
                    let mut b = fastrand::usize(..healthy.len() - 1);
                    if b >= a {
                        b += 1;
                    }
                    let decay = self.shared.config.ewma_decay;
                    let (na, nb) = (&snap.nodes[healthy[a]], &snap.nodes[healthy[b]]);
                    if na.cost(now, decay) <= nb.cost(now, decay) {
                        healthy[a]
                    } else {
                        healthy[b]
                    }
                }
            }
            Strategy::ConsistentHash => match req.metadata().get(HASH_KEY) {
                Some(key) if !snap.ring.is_empty() => {
                    let h = fnv1a(key);
                    let start = snap.ring.partition_point(|(x, _)| *x < h);
                    let len = snap.ring.len();
                    (0..len)
                        .map(|k| snap.ring[(start + k) % len].1)
                        .find(|i| healthy.contains(i))
                        .unwrap_or(healthy[0])
                }
                _ => healthy[fastrand::usize(..healthy.len())],
            },
        };
        Some(snap.nodes[idx].clone())
    }

    /// Sends a call to the endpoint the strategy picks.
    ///
    /// # Errors
    /// `Unavailable` (not sent) when no endpoint is live; otherwise the endpoint's answer.
    pub async fn unary(&self, req: Request) -> Result<Response, Status> {
        let snap = self.snapshot();
        let Some(node) = self.choose(&snap, &req) else {
            return Err(self.no_endpoint(snap.nodes.len()));
        };
        drop(snap);
        self.send(&node, req).await
    }

    async fn send(&self, node: &Node, req: Request) -> Result<Response, Status> {
        if let Some(attempts) = req.extensions().get::<Arc<Attempts>>() {
            attempts.record(&node.instance.addr);
        }
        let admission = match &node.breaker {
            Some(b) => Some(b.admit()?),
            None => None,
        };
        let config = &self.shared.config;
        node.picks.fetch_add(1, Ordering::Relaxed);
        node.outstanding.fetch_add(1, Ordering::Relaxed);
        let guard = Outstanding(node);
        let started = Instant::now();
        let result = node.channel.unary(req).await;
        drop(guard);
        if let (Some(b), Some(a)) = (&node.breaker, admission) {
            b.record_result(a, &result);
        }
        record(node, config, started.elapsed(), &result);
        result
    }

    /// The healthy endpoints `req` may go to (canary routing applied), in random order.
    fn live_nodes(&self, req: &Request) -> Vec<Arc<Node>> {
        let snap = self.snapshot();
        let now = Instant::now();
        let tag = req
            .metadata()
            .get_str(ROUTE_TAG)
            .and_then(|t| t.split_once('='));
        let mut healthy = Vec::new();
        let mut probe = None;
        candidates(&snap, now, tag, &mut healthy, &mut probe);
        if healthy.is_empty() && tag.is_some() {
            candidates(&snap, now, None, &mut healthy, &mut probe);
        }
        fastrand::shuffle(&mut healthy);
        healthy.into_iter().map(|i| snap.nodes[i].clone()).collect()
    }

    /// Dubbo's forking mode: sends `req` to up to `n` endpoints at once and returns the first
    /// success; the other attempts are cancelled. Fails only if all fail (with the last error).
    ///
    /// # Errors
    /// `Unavailable` (not sent) when no endpoint is live; otherwise the last failure.
    pub async fn fork(&self, req: Request, n: usize) -> Result<Response, Status> {
        let nodes: Vec<Arc<Node>> = self.live_nodes(&req).into_iter().take(n.max(1)).collect();
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
        nodes.sort_by(|a, b| a.instance.addr.cmp(&b.instance.addr));
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
                        let addr = &nodes[i].instance.addr;
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
            .filter_map(|(n, r)| r.map(|r| (n.instance.addr.clone(), r)))
            .collect())
    }

    fn no_endpoint(&self, known: usize) -> Status {
        Status::unavailable(format!(
            "no live endpoint for {:?} ({known} known, all ejected or none registered)",
            self.shared.name
        ))
        .with_delivery(Delivery::NotSent)
    }
}

/// The endpoints that may take a call: those carrying `tag` (all when `None`), healthy, plus at
/// most one whose ejection is over and that may be probed.
fn candidates(
    snap: &Snapshot,
    now: Instant,
    tag: Option<(&str, &str)>,
    healthy: &mut Vec<usize>,
    probe: &mut Option<usize>,
) {
    for (i, n) in snap.nodes.iter().enumerate() {
        if let Some((k, v)) = tag {
            if !n.instance.has_tag(k, v) {
                continue;
            }
        }
        match n.availability(now) {
            Some(true) => healthy.push(i),
            Some(false) if probe.is_none() => *probe = Some(i),
            _ => {}
        }
    }
}

struct Outstanding<'a>(&'a Node);

impl Drop for Outstanding<'_> {
    fn drop(&mut self) {
        self.0.outstanding.fetch_sub(1, Ordering::Relaxed);
        // A probe that was cancelled proves nothing: let another call probe.
        self.0.probing.store(false, Ordering::Release);
    }
}

/// Whether a status says the endpoint itself is unwell (rather than the request being refused).
fn endpoint_failed(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable | Code::Unknown | Code::Internal | Code::DataLoss
    )
}

fn record(node: &Node, config: &BalanceConfig, rtt: Duration, result: &Result<Response, Status>) {
    let failed = result.as_ref().err().is_some_and(endpoint_failed);
    if failed {
        let n = node.failures.fetch_add(1, Ordering::AcqRel) + 1;
        let was_probe = node.ejected.load(Ordering::Acquire);
        let connection_lost =
            node.channel.state() == rpc_core::client::ChannelState::TransientFailure;
        if n >= config.eject_after || was_probe || connection_lost {
            let mut h = lock(&node.health);
            let factor = 1u32 << h.ejections.min(16);
            let period = config
                .eject_base
                .saturating_mul(factor)
                .min(config.eject_max);
            h.ejected_until = Some(Instant::now() + period);
            h.ejections = h.ejections.saturating_add(1);
            node.ejected.store(true, Ordering::Release);
            node.failures.store(0, Ordering::Release);
            tracing::warn!(
                addr = %node.instance.addr,
                failures = n,
                ejected_for_ms = period.as_millis() as u64,
                "endpoint ejected"
            );
        }
    } else {
        node.failures.store(0, Ordering::Release);
        // Only an ejected endpoint's probe needs the health lock.
        if node.ejected.load(Ordering::Acquire) {
            let mut h = lock(&node.health);
            if h.ejected_until.take().is_some() {
                h.ejections = 0;
                node.ejected.store(false, Ordering::Release);
                tracing::info!(addr = %node.instance.addr, "endpoint back after a successful probe");
            }
        }
        node.observe(rtt, config.ewma_decay);
    }
}

/// Replaces the endpoint set, keeping the connection and statistics of endpoints that stay.
fn apply(shared: &Shared, set: &EndpointSet) {
    let old = shared
        .snapshot
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let by_addr: HashMap<&str, &Arc<Node>> = old
        .nodes
        .iter()
        .map(|n| (n.instance.addr.as_str(), n))
        .collect();
    let mut nodes = Vec::with_capacity(set.len());
    for inst in set.instances() {
        match by_addr.get(inst.addr.as_str()) {
            Some(n) if n.instance == *inst => nodes.push(Arc::clone(n)),
            Some(n) => nodes.push(Arc::new(Node::new(
                inst.clone(),
                n.channel.clone(),
                &shared.config,
            ))),
            None => match (shared.config.endpoint)(inst) {
                Ok(ep) => nodes.push(Arc::new(Node::new(
                    inst.clone(),
                    ep.connect_lazy(),
                    &shared.config,
                ))),
                Err(e) => tracing::warn!(addr = %inst.addr, error = %e, "skipping instance"),
            },
        }
    }
    tracing::debug!(endpoints = nodes.len(), "endpoint set changed");
    *shared.snapshot.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(Snapshot::new(nodes));
}

async fn follow(shared: Weak<Shared>, mut watch: Watch) {
    loop {
        let Ok(set) = watch.changed().await else {
            tracing::warn!("endpoint watch ended; keeping the last endpoint set");
            return;
        };
        let Some(shared) = shared.upgrade() else {
            return;
        };
        apply(&shared, &set);
    }
}

impl Service<Request> for BalancedChannel {
    type Response = Response;
    type Error = Status;
    type Future = BoxFuture<'static, Result<Response, Status>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { this.unary(req).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_stable() {
        assert_eq!(fnv1a(b"user-42"), fnv1a(b"user-42"));
        assert_ne!(fnv1a(b"user-42"), fnv1a(b"user-43"));
    }
}
