//! Retries and hedges over a balanced channel stay within one retry budget: its ratio of the
//! calls plus its floor per second, for paced and for bursty load, while every server is down
//! or failing slowly.
//!
//! In-memory transport, one current-thread runtime, paused clock: time passes only through the
//! tests' own pacing, the retry backoffs, the hedge delays and the servers' sleeps.

#![allow(missing_docs)]

mod support;

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rpc_core::middleware::{
    HedgeDelay, HedgeLayer, RetryBudget, RetryLayer, RetryPolicy, Stats, StatsSnapshot,
};
use rpc_core::server::RawService;
use rpc_core::transport::memory::{MemoryConnector, MemoryListener};
use rpc_core::transport::{BoxIo, Connector, PeerAddr};
use rpc_core::{BoxFuture, Endpoint, Request, Response, Server, Status};
use rpc_discovery::{BalanceConfig, BalancedChannel, Cluster, EndpointSet, Instance, Watch};
use tower::{Layer, Service, ServiceExt};

const SVC: &str = "demo.Echo";

/// The budget of these tests: 20% of calls, 2 per second, over 10 s.
const RATIO: f64 = 0.2;
const FLOOR: u32 = 2;
const WINDOW: Duration = Duration::from_secs(10);

fn budget() -> RetryBudget {
    RetryBudget::new(WINDOW, FLOOR, RATIO as f32)
}

/// What the budget allows for `calls` calls over `elapsed`: the ratio of the calls, the floor
/// for every second, and one window's floor more (the first window's, granted at once).
fn allowed(calls: usize, elapsed: Duration) -> f64 {
    RATIO * calls as f64 + f64::from(FLOOR) * (elapsed + WINDOW).as_secs_f64()
}

/// Connection attempts to dead servers do not multiply with the calls: each endpoint's reconnect
/// backoff paces them, so that they stay within what the retry budget allows extra attempts
/// (issue 12, item 11: the calls' retries spend from the budget; the connections they would
/// otherwise trigger wait for the backoff).
fn connections_stay_within(connects: usize, calls: usize, elapsed: Duration) {
    assert!(
        connects as f64 <= allowed(calls, elapsed),
        "{connects} connection attempts for {calls} calls over {elapsed:?}"
    );
}

/// A memory connector that counts its connection attempts.
#[derive(Debug)]
struct Counting {
    inner: MemoryConnector,
    attempts: Arc<AtomicUsize>,
}

impl Connector for Counting {
    fn connect(&self) -> BoxFuture<'static, io::Result<(BoxIo, PeerAddr)>> {
        self.attempts.fetch_add(1, Ordering::Relaxed);
        self.inner.connect()
    }

    fn target(&self) -> String {
        self.inner.target()
    }
}

/// A balanced channel over `names` (memory addresses), whose endpoints count connection
/// attempts in `connects`; every endpoint stays in play (no ejection), so that every attempt
/// really goes to a server.
fn balanced(names: &[&str], connects: &Arc<AtomicUsize>) -> BalancedChannel {
    let set = EndpointSet::new(
        names
            .iter()
            .map(|n| Instance::new(SVC, format!("memory://{n}"))),
    );
    let connects = connects.clone();
    let config = BalanceConfig::new()
        .eject_after(u32::MAX)
        .endpoint(move |i: &Instance| {
            let name = i.addr.trim_start_matches("memory://");
            Ok(Endpoint::new(Counting {
                inner: MemoryConnector::new(name),
                attempts: connects.clone(),
            }))
        });
    BalancedChannel::with_config(Watch::fixed(set), config)
}

fn echo() -> Request {
    Request::new("demo.Echo/Echo", "x").with_idempotent(true)
}

fn picks(ch: &BalancedChannel) -> usize {
    ch.endpoints().iter().map(|e| e.picks).sum()
}

fn report(what: &str, calls: usize, elapsed: Duration, s: StatsSnapshot, connects: usize) {
    println!(
        "{what}: {calls} calls over {elapsed:?}: {} retries, {} hedges, {} refused by the budget \
         ({:.0}% extra; the budget allows {:.0}); {connects} connection attempts",
        s.retries,
        s.hedges,
        s.retries_over_budget,
        100.0 * (s.retries + s.hedges) as f64 / calls as f64,
        allowed(calls, elapsed),
    );
}

#[tokio::test(start_paused = true)]
async fn retries_against_dead_servers_stay_within_the_budget_under_paced_load() {
    let connects = Arc::new(AtomicUsize::new(0));
    let ch = balanced(&["rb-dead-a", "rb-dead-b", "rb-dead-c"], &connects);
    let stats = Stats::new();
    let client = ch.clone().cluster(Cluster::Failover(
        RetryLayer::new()
            .policy(RetryPolicy::new().max_attempts(3))
            .budget(budget())
            .stats(stats.clone()),
    ));
    // 10 calls a second for two minutes: the ratio allows 2 retries a second, the floor 2 more
    // (tower's `TpsBudget` forgot its spending after about 6 s and let through 56% extra).
    let start = tokio::time::Instant::now();
    let calls = 1200;
    for _ in 0..calls {
        let e = client.clone().oneshot(echo()).await.unwrap_err();
        assert_eq!(e.code(), rpc_core::Code::Unavailable, "{e}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let elapsed = start.elapsed();
    let s = stats.snapshot();
    report(
        "paced outage",
        calls,
        elapsed,
        s,
        connects.load(Ordering::Relaxed),
    );
    assert_eq!(s.calls, calls as u64);
    // Every attempt is a pick, but for those that found every endpoint ejected (a failed
    // connection ejects at once).
    assert!(picks(&ch) <= calls + s.retries as usize);
    assert!(
        s.retries as f64 <= allowed(calls, elapsed),
        "{} retries for {calls} calls over {elapsed:?}",
        s.retries
    );
    connections_stay_within(connects.load(Ordering::Relaxed), calls, elapsed);
    // The budget is spent, not starved: at least the ratio and the floor of the time.
    assert!(
        s.retries as f64 >= RATIO * calls as f64 + f64::from(FLOOR) * elapsed.as_secs_f64() * 0.9
    );
}

#[tokio::test(start_paused = true)]
async fn retries_against_dead_servers_stay_within_the_budget_under_bursts() {
    let connects = Arc::new(AtomicUsize::new(0));
    let ch = balanced(&["rb-burst-a", "rb-burst-b", "rb-burst-c"], &connects);
    let stats = Stats::new();
    let client = ch.clone().cluster(Cluster::Failover(
        RetryLayer::new()
            .policy(RetryPolicy::new().max_attempts(3))
            .budget(budget())
            .stats(stats.clone()),
    ));
    // Bursts of 200 concurrent calls, 3 s apart, for a minute.
    let start = tokio::time::Instant::now();
    let mut calls = 0;
    for _ in 0..20 {
        let burst: Vec<_> = (0..200)
            .map(|_| tokio::spawn(client.clone().oneshot(echo())))
            .collect();
        for b in burst {
            assert!(b.await.unwrap().is_err());
            calls += 1;
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    let elapsed = start.elapsed();
    let s = stats.snapshot();
    report(
        "bursty outage",
        calls,
        elapsed,
        s,
        connects.load(Ordering::Relaxed),
    );
    assert!(picks(&ch) <= calls + s.retries as usize);
    assert!(
        s.retries as f64 <= allowed(calls, elapsed),
        "{} retries for {calls} calls over {elapsed:?}",
        s.retries
    );
    connections_stay_within(connects.load(Ordering::Relaxed), calls, elapsed);
}

/// Servers that answer `Unavailable` after `delay`, counting the attempts they receive.
fn slow_failing(names: &[&'static str], delay: Duration, attempts: &Arc<AtomicUsize>) {
    for name in names {
        let attempts = attempts.clone();
        let svc = RawService::new(SVC).method("Echo", move |_req| {
            attempts.fetch_add(1, Ordering::Relaxed);
            async move {
                tokio::time::sleep(delay).await;
                Err::<Response, _>(Status::unavailable("failing slowly"))
            }
        });
        let listener = MemoryListener::bind(name).unwrap();
        tokio::spawn(Server::builder().add_service(svc).serve(listener));
    }
}

#[tokio::test(start_paused = true)]
async fn retries_and_hedges_spend_from_one_budget() {
    let names = ["rb-slow-a", "rb-slow-b", "rb-slow-c"];
    let attempts = Arc::new(AtomicUsize::new(0));
    slow_failing(&names, Duration::from_millis(30), &attempts);
    let connects = Arc::new(AtomicUsize::new(0));
    let ch = balanced(&names, &connects);
    let stats = Stats::new();
    let shared = budget();
    // Every attempt is slow enough to be hedged, and fails in a way that is retried.
    let hedged = HedgeLayer::new(HedgeDelay::Fixed(Duration::from_millis(10)))
        .budget(shared.clone())
        .stats(stats.clone())
        .layer(ch.clone());
    let mut client = RetryLayer::new()
        .policy(RetryPolicy::new().max_attempts(3))
        .budget(shared)
        .stats(stats.clone())
        .layer(hedged);
    let start = tokio::time::Instant::now();
    let calls = 1200;
    for _ in 0..calls {
        let e = client
            .ready()
            .await
            .unwrap()
            .call(echo())
            .await
            .unwrap_err();
        assert_eq!(e.code(), rpc_core::Code::Unavailable, "{e}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let elapsed = start.elapsed();
    let s = stats.snapshot();
    report(
        "slow failures, hedged and retried",
        calls,
        elapsed,
        s,
        connects.load(Ordering::Relaxed),
    );
    let extra = (s.retries + s.hedges) as f64;
    assert!(s.retries > 0 && s.hedges > 0, "{s}");
    assert!(
        extra <= allowed(calls, elapsed),
        "{extra} extra attempts for {calls} calls over {elapsed:?}"
    );
    // Every attempt reached a server: the calls, the retries and the hedges, nothing more.
    assert_eq!(
        attempts.load(Ordering::Relaxed),
        calls + extra as usize,
        "{s}"
    );
}
