//! Fault tolerance over a balanced channel on real TCP: a server killed under load, a total
//! outage under a retry budget, hedging across endpoints, and the cluster modes.
//!
//! Each server runs on its own tokio runtime, so that "killing" it (shutting that runtime down)
//! drops its sockets at once, as SIGKILL would, with no go-away.

#![allow(missing_docs)]

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rpc_core::middleware::{
    Attempts, HedgeDelay, HedgeLayer, RetryBudget, RetryLayer, RetryPolicy, Stats,
};
use rpc_core::server::RawService;
use rpc_core::{Code, Delivery, Request, Response, Server, Status};
use rpc_discovery::{
    BalanceConfig, BalancedChannel, Cluster, EndpointSet, Instance, Strategy, Watch,
};
use support::eventually;
use tower::{Layer, Service, ServiceExt};

const SVC: &str = "demo.Echo";

/// A server on its own runtime.
struct Killable {
    addr: SocketAddr,
    calls: Arc<AtomicUsize>,
    failing: Arc<AtomicBool>,
    runtime: Option<tokio::runtime::Runtime>,
}

#[derive(Clone, Copy)]
enum Behaviour {
    Echo,
    /// The first call never answers (its drop is reported); later ones echo.
    StallFirst,
}

fn start(behaviour: Behaviour, dropped: Option<Arc<AtomicBool>>) -> Killable {
    let calls = Arc::new(AtomicUsize::new(0));
    let failing = Arc::new(AtomicBool::new(false));
    let svc = RawService::new(SVC).method("Echo", {
        let calls = calls.clone();
        let failing = failing.clone();
        move |req: Request| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            let failing = failing.load(Ordering::SeqCst);
            let dropped = dropped.clone();
            async move {
                if failing {
                    return Err(Status::unavailable("failing on purpose"));
                }
                if matches!(behaviour, Behaviour::StallFirst) && n == 0 {
                    let _guard = DropFlag(dropped);
                    std::future::pending::<()>().await;
                }
                Ok(Response::new(req.into_body()))
            }
        }
    });
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    std_listener.set_nonblocking(true).unwrap();
    let addr = std_listener.local_addr().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    runtime.spawn(async move {
        let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
        Server::builder().add_service(svc).serve(listener).await
    });
    Killable {
        addr,
        calls,
        failing,
        runtime: Some(runtime),
    }
}

impl Killable {
    /// Drops every task and socket of the server at once.
    fn kill(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl Drop for Killable {
    fn drop(&mut self) {
        self.kill();
    }
}

struct DropFlag(Option<Arc<AtomicBool>>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        if let Some(f) = &self.0 {
            f.store(true, Ordering::SeqCst);
        }
    }
}

fn watch_of(servers: &[&Killable]) -> Watch {
    Watch::fixed(EndpointSet::new(
        servers
            .iter()
            .map(|s| Instance::new(SVC, s.addr.to_string())),
    ))
}

fn echo(i: u64, idempotent: bool) -> Request {
    Request::new("demo.Echo/Echo", Bytes::from(i.to_be_bytes().to_vec()))
        .with_idempotent(idempotent)
}

async fn call<S>(svc: &S, req: Request) -> Result<Response, Status>
where
    S: Service<Request, Response = Response, Error = Status> + Clone,
{
    svc.clone().oneshot(req).await
}

/// Runs `total` calls from `workers` tasks; kills `victim` once `kill_after` calls completed.
/// Returns the failures.
async fn load<S>(
    client: &S,
    total: u64,
    workers: u64,
    idempotent: bool,
    kill_after: u64,
    victim: &mut Killable,
) -> Vec<Status>
where
    S: Service<Request, Response = Response, Error = Status> + Clone + Send + Sync + 'static,
    S::Future: Send,
{
    let done = Arc::new(AtomicUsize::new(0));
    let killed = Arc::new(tokio::sync::Notify::new());
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let client = client.clone();
        let done = done.clone();
        let killed = killed.clone();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst) as u64;
                if i >= total {
                    return failures;
                }
                let req = echo(i, idempotent);
                match call(&client, req).await {
                    Ok(r) => assert_eq!(&r.body()[..], &i.to_be_bytes()[..], "wrong reply"),
                    Err(e) => failures.push(e),
                }
                if done.fetch_add(1, Ordering::SeqCst) as u64 + 1 == kill_after {
                    killed.notify_one();
                }
            }
        }));
    }
    killed.notified().await;
    victim.kill();
    let mut failures = Vec::new();
    for t in tasks {
        failures.extend(t.await.unwrap());
    }
    failures
}

fn failover(stats: &Arc<Stats>) -> RetryLayer {
    RetryLayer::new()
        .policy(RetryPolicy::new().max_attempts(3))
        .stats(stats.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_server_under_load_fails_no_idempotent_call() {
    let a = start(Behaviour::Echo, None);
    let mut b = start(Behaviour::Echo, None);
    let c = start(Behaviour::Echo, None);
    let stats = Stats::new();
    let client = failover(&stats).layer(BalancedChannel::new(watch_of(&[&a, &b, &c])));
    let failures = load(&client, 6_000, 32, true, 2_000, &mut b).await;
    assert!(
        failures.is_empty(),
        "{} failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(3)]
    );
    let served = [&a, &c]
        .iter()
        .map(|s| s.calls.load(Ordering::SeqCst))
        .sum::<usize>();
    println!(
        "idempotent: 6000 calls, 0 failed; b served {} before it died, a+c {served}; {}",
        b.calls.load(Ordering::SeqCst),
        stats.snapshot()
    );
    assert!(stats.snapshot().calls == 6_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_idempotent_calls_fail_only_if_sent_to_the_dead_server() {
    let a = start(Behaviour::Echo, None);
    let mut b = start(Behaviour::Echo, None);
    let c = start(Behaviour::Echo, None);
    let stats = Stats::new();
    let client = failover(&stats).layer(BalancedChannel::new(watch_of(&[&a, &b, &c])));
    let failures = load(&client, 6_000, 32, false, 2_000, &mut b).await;
    // At most the calls in flight on b when it died; each was sent, so it was not retried.
    assert!(failures.len() <= 32, "{} failed", failures.len());
    for f in &failures {
        assert_eq!(f.code(), Code::Unavailable, "{f}");
        assert_eq!(f.delivery(), Delivery::Sent, "{f}");
    }
    println!(
        "non-idempotent: {} of 6000 failed (in flight on the dead server); {}",
        failures.len(),
        stats.snapshot()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_total_outage_adds_at_most_the_budgeted_retries() {
    let servers: Vec<Killable> = (0..3).map(|_| start(Behaviour::Echo, None)).collect();
    for s in &servers {
        s.failing.store(true, Ordering::SeqCst);
    }
    let stats = Stats::new();
    // Retries may be 20% of calls, with no per-second floor.
    let client = RetryLayer::new()
        .policy(
            RetryPolicy::new()
                .max_attempts(5)
                .backoff(Duration::ZERO, Duration::ZERO),
        )
        .budget(RetryBudget::new(Duration::from_secs(10), 0, 0.2))
        .stats(stats.clone())
        .layer(BalancedChannel::with_config(
            watch_of(&servers.iter().collect::<Vec<_>>()),
            // Keep every endpoint in play, so that each attempt really reaches a server.
            BalanceConfig::new().eject_after(u32::MAX),
        ));
    let calls = 500;
    for i in 0..calls {
        let e = call(&client, echo(i, true)).await.unwrap_err();
        assert_eq!(e.code(), Code::Unavailable);
    }
    let s = stats.snapshot();
    let attempts: usize = servers.iter().map(|s| s.calls.load(Ordering::SeqCst)).sum();
    println!("outage: {calls} calls, {attempts} attempts reached servers; {s}");
    assert_eq!(attempts as u64, calls + s.retries);
    assert!(
        s.retries as f64 <= 0.2 * calls as f64 + 1.0,
        "{} retries for {calls} calls",
        s.retries
    );
    assert!(s.retries_over_budget > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hedging_answers_from_the_fast_endpoint_and_cancels_the_stalled_one() {
    let dropped = Arc::new(AtomicBool::new(false));
    let stalled = start(Behaviour::StallFirst, Some(dropped.clone()));
    let fast = start(Behaviour::Echo, None);
    let stats = Stats::new();
    let balanced = BalancedChannel::with_config(
        Watch::fixed(EndpointSet::new([
            Instance::new(SVC, stalled.addr.to_string()),
            Instance::new(SVC, fast.addr.to_string()),
        ])),
        BalanceConfig::new().strategy(Strategy::RoundRobin),
    );
    let client = HedgeLayer::new(HedgeDelay::Fixed(Duration::from_millis(20)))
        .stats(stats.clone())
        .layer(balanced.clone());
    // Round robin alternates; line it up so that the next pick is the stalled endpoint.
    let first = balanced.pick(&echo(0, true)).unwrap();
    if first == stalled.addr.to_string() {
        balanced.pick(&echo(0, true));
    }
    let mut req = echo(42, true);
    let attempts = Attempts::of(&mut req);
    let reply = call(&client, req).await.unwrap();
    assert_eq!(&reply.body()[..], &42u64.to_be_bytes()[..]);
    assert_eq!(
        attempts.endpoints(),
        [stalled.addr.to_string(), fast.addr.to_string()]
    );
    let s = stats.snapshot();
    assert_eq!((s.hedges, s.hedge_wins), (1, 1), "{s}");
    // The loser was cancelled: the stalled handler is dropped on its server.
    let dropped = &dropped;
    eventually(
        Duration::from_secs(5),
        "the stalled call to be cancelled",
        move || async move { dropped.load(Ordering::SeqCst) },
    )
    .await;
    // A call that is not idempotent is never hedged.
    call(&client, echo(7, false)).await.unwrap();
    assert_eq!(stats.snapshot().hedges, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_modes() {
    let a = start(Behaviour::Echo, None);
    let b = start(Behaviour::Echo, None);
    let c = start(Behaviour::Echo, None);
    let balanced = BalancedChannel::new(watch_of(&[&a, &b, &c]));

    // Broadcast: every endpoint answers.
    let all = balanced.broadcast(echo(1, false)).await.unwrap();
    assert_eq!(all.len(), 3);
    assert!([&a, &b, &c]
        .iter()
        .all(|s| s.calls.load(Ordering::SeqCst) == 1));
    // ...and it fails if any endpoint fails.
    b.failing.store(true, Ordering::SeqCst);
    let e = balanced.broadcast(echo(2, false)).await.unwrap_err();
    assert!(e.message().contains(&b.addr.to_string()), "{e}");

    // Forking: the first success wins even with a failing endpoint among the forks.
    let forking = balanced.clone().cluster(Cluster::Forking(3));
    for i in 0..20 {
        let r = call(&forking, echo(i, false)).await.unwrap();
        assert_eq!(&r.body()[..], &i.to_be_bytes()[..]);
    }

    // Failfast: a failure goes straight to the caller; failsafe: it becomes the fallback.
    let only_b = BalancedChannel::new(watch_of(&[&b]));
    let failfast = only_b.clone().cluster(Cluster::Failfast);
    let before = b.calls.load(Ordering::SeqCst);
    assert!(call(&failfast, echo(3, true)).await.is_err());
    assert_eq!(b.calls.load(Ordering::SeqCst), before + 1, "no retry");
    let stats = Stats::new();
    let failsafe = only_b.cluster(Cluster::Failsafe(
        rpc_core::middleware::FailsafeLayer::new(|_r, _s| Ok(Response::new("fallback")))
            .stats(stats.clone()),
    ));
    let r = call(&failsafe, echo(4, true)).await.unwrap();
    assert_eq!(&r.body()[..], b"fallback");
    assert_eq!(stats.snapshot().fallbacks, 1);

    // Failover (the default): an idempotent call that fails on b is retried elsewhere.
    let failover = balanced.cluster(Cluster::default());
    for i in 0..30 {
        call(&failover, echo(i, true)).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_endpoint_breaker_stops_calls_to_a_failing_endpoint() {
    let good = start(Behaviour::Echo, None);
    let bad = start(Behaviour::Echo, None);
    bad.failing.store(true, Ordering::SeqCst);
    let stats = Stats::new();
    let balanced = BalancedChannel::with_config(
        watch_of(&[&good, &bad]),
        BalanceConfig::new()
            .strategy(Strategy::RoundRobin)
            // Leave failures to the breaker alone.
            .eject_after(u32::MAX)
            .breaker(
                rpc_core::middleware::BreakerConfig::new()
                    .consecutive_failures(2)
                    .open_for(Duration::from_secs(60)),
                stats.clone(),
            ),
    );
    let mut failures = 0;
    for i in 0..100 {
        if call(&balanced, echo(i, false)).await.is_err() {
            failures += 1;
        }
    }
    assert_eq!(failures, 2, "two failures open the endpoint's breaker");
    assert_eq!(bad.calls.load(Ordering::SeqCst), 2);
    assert_eq!(good.calls.load(Ordering::SeqCst), 98);
    assert_eq!(stats.snapshot().breaker_opened, 1);
    assert!(balanced
        .endpoints()
        .iter()
        .any(|e| e.ejected && e.addr == bad.addr.to_string()));
}
