//! The fault-tolerance middleware end to end: circuit breaking, load shedding, quotas, deadline
//! propagation, failsafe fallbacks, retries under a budget and hedging, each over real TCP
//! (AIMD load shedding runs on the in-memory transport with tokio's paused clock).
//!
//! Nothing waits a fixed time for a state to be reached: tests poll with a deadline.

#![allow(missing_docs)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rpc_core::middleware::{
    BreakerConfig, BreakerState, CircuitBreakerLayer, DeadlineLayer, FailsafeLayer, HedgeDelay,
    HedgeLayer, LoadShedLayer, PerMethod, RateLimitLayer, RetryBudget, RetryLayer, RetryPolicy,
    ShedLimit, Stats, RETRY_AFTER_MS,
};
use rpc_core::server::RawService;
use rpc_core::transport::memory::MemoryListener;
use rpc_core::{
    service, Channel, Code, CodecId, Context, Delivery, Endpoint, Request, Response, Server, Status,
};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tower::{Layer, Service, ServiceBuilder, ServiceExt};

mod support;

use support::{serve, Running};

/// Serves on a fresh port of 127.0.0.1.
async fn serve_tcp(server: Server) -> (SocketAddr, Running) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (addr, serve(server, listener))
}

/// An address nothing listens on (bound, then released).
fn dead_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// Calls `svc` once it is ready.
async fn call<S>(svc: &mut S, req: Request) -> Result<Response, Status>
where
    S: Service<Request, Response = Response, Error = Status>,
{
    svc.ready().await?.call(req).await
}

/// Waits for `cond` to hold, polling, failing the test after 10 s.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Counts its own drop: tells a test that a handler future was dropped (cancelled).
struct DropCount(Arc<AtomicUsize>);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn count(n: &AtomicUsize) -> usize {
    n.load(Ordering::SeqCst)
}

fn body(resp: &Response) -> &str {
    std::str::from_utf8(resp.body()).unwrap()
}

/// A service `demo.Flaky` whose `Call` counts its calls and fails with `Unavailable` while
/// `failing` is set.
fn flaky(calls: &Arc<AtomicUsize>, failing: &Arc<AtomicBool>) -> RawService {
    let (calls, failing) = (calls.clone(), failing.clone());
    RawService::new("demo.Flaky").method("Call", move |_req| {
        calls.fetch_add(1, Ordering::SeqCst);
        let failing = failing.load(Ordering::SeqCst);
        async move {
            if failing {
                Err(Status::unavailable("failing on purpose"))
            } else {
                Ok(Response::new("ok"))
            }
        }
    })
}

fn flaky_call() -> Request {
    Request::new("demo.Flaky/Call", "")
}

// ---------------------------------------------------------------------------------------------
// 1. Circuit breaker
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn breaker_opens_fails_fast_probes_reopens_and_closes() {
    let calls = Arc::new(AtomicUsize::new(0));
    let failing = Arc::new(AtomicBool::new(true));
    let (addr, _server) = serve_tcp(Server::builder().add_service(flaky(&calls, &failing))).await;
    let stats = Stats::new();
    let open_for = Duration::from_millis(400);
    let mut client = CircuitBreakerLayer::new()
        .config(
            BreakerConfig::new()
                .consecutive_failures(3)
                .open_for(open_for),
        )
        .stats(stats.clone())
        .layer(Endpoint::tcp(addr).connect_lazy());
    let breaker = client.breaker("demo.Flaky");
    assert_eq!(breaker.state(), BreakerState::Closed);

    // Three failures in a row reach the server, then the breaker opens.
    for i in 0..3 {
        let err = call(&mut client, flaky_call()).await.unwrap_err();
        assert_eq!(err.code(), Code::Unavailable, "call {i}: {err}");
        assert_eq!(err.delivery(), Delivery::Sent, "call {i}: {err:?}");
        let expected = if i < 2 {
            BreakerState::Closed
        } else {
            BreakerState::Open
        };
        assert_eq!(breaker.state(), expected, "after failure {}", i + 1);
    }
    let opened_at = Instant::now();
    assert_eq!(count(&calls), 3);
    assert_eq!(stats.snapshot().breaker_opened, 1);

    // While open: fail fast, nothing sent.
    for i in 0..5 {
        let err = call(&mut client, flaky_call()).await.unwrap_err();
        assert_eq!(err.code(), Code::Unavailable, "fast call {i}: {err}");
        assert_eq!(err.delivery(), Delivery::NotSent, "fast call {i}: {err:?}");
    }
    assert!(
        opened_at.elapsed() < open_for,
        "the test was too slow to observe the open state"
    );
    assert_eq!(count(&calls), 3, "an open breaker let calls through");
    assert_eq!(stats.snapshot().breaker_rejected, 5);
    assert_eq!(breaker.state(), BreakerState::Open);

    // A breaker is per service: another service through the same client is not refused (the
    // server does not host it, and says so).
    let err = call(&mut client, Request::new("demo.Other/Call", ""))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented, "{err}");
    assert_eq!(client.breaker("demo.Other").state(), BreakerState::Closed);

    // After `open_for` it half-opens; the one probe reaches the server, fails, and reopens it.
    eventually("half-open", || breaker.state() == BreakerState::HalfOpen).await;
    assert!(opened_at.elapsed() >= open_for);
    let err = call(&mut client, flaky_call()).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err}");
    assert_eq!(
        err.delivery(),
        Delivery::Sent,
        "the probe was not sent: {err:?}"
    );
    assert_eq!(count(&calls), 4, "the probe did not reach the server");
    assert_eq!(breaker.state(), BreakerState::Open);
    assert_eq!(stats.snapshot().breaker_opened, 2);
    let err = call(&mut client, flaky_call()).await.unwrap_err();
    assert_eq!(err.delivery(), Delivery::NotSent, "{err:?}");
    assert_eq!(count(&calls), 4);
    assert_eq!(stats.snapshot().breaker_rejected, 6);

    // The server recovers: the next probe succeeds and closes the breaker; calls flow again.
    failing.store(false, Ordering::SeqCst);
    eventually("half-open again", || {
        breaker.state() == BreakerState::HalfOpen
    })
    .await;
    let ok = call(&mut client, flaky_call()).await.unwrap();
    assert_eq!(body(&ok), "ok");
    assert_eq!(count(&calls), 5);
    assert_eq!(breaker.state(), BreakerState::Closed);
    for _ in 0..5 {
        call(&mut client, flaky_call()).await.unwrap();
    }
    assert_eq!(count(&calls), 10);

    let s = stats.snapshot();
    assert_eq!(
        (s.breaker_opened, s.breaker_rejected, s.breaker_closed),
        (2, 6, 1),
        "{s}"
    );
}

#[tokio::test]
async fn breaker_opens_on_failure_rate() {
    // Odd calls (1st, 3rd, ...) succeed, even ones fail: a failure rate of exactly 50%.
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = RawService::new("demo.Flaky").method("Call", {
        let calls = calls.clone();
        move |_req| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if n.is_multiple_of(2) {
                    Ok(Response::new("ok"))
                } else {
                    Err(Status::unavailable("every other call fails"))
                }
            }
        }
    });
    let (addr, _server) = serve_tcp(Server::builder().add_service(svc)).await;
    let stats = Stats::new();
    let mut client = CircuitBreakerLayer::new()
        .config(
            BreakerConfig::new()
                .consecutive_failures(100)
                .failure_rate(0.5, 10, Duration::from_secs(10))
                .open_for(Duration::from_secs(60)),
        )
        .stats(stats.clone())
        .layer(Endpoint::tcp(addr).connect_lazy());
    let breaker = client.breaker("demo.Flaky");

    for i in 1..=10 {
        let result = call(&mut client, flaky_call()).await;
        assert_eq!(result.is_ok(), i % 2 == 1, "call {i}: {result:?}");
        let expected = if i < 10 {
            BreakerState::Closed
        } else {
            BreakerState::Open
        };
        assert_eq!(breaker.state(), expected, "after call {i}");
    }
    assert_eq!(stats.snapshot().breaker_opened, 1);
    let err = call(&mut client, flaky_call()).await.unwrap_err();
    assert_eq!(
        (err.code(), err.delivery()),
        (Code::Unavailable, Delivery::NotSent)
    );
    assert_eq!(count(&calls), 10);
    let s = stats.snapshot();
    assert_eq!(
        (s.breaker_opened, s.breaker_rejected, s.breaker_closed),
        (1, 1, 0)
    );
}

#[tokio::test]
async fn breaker_probe_that_was_never_sent_does_not_close_it() {
    let calls = Arc::new(AtomicUsize::new(0));
    let failing = Arc::new(AtomicBool::new(true));
    let (addr, server) = serve_tcp(Server::builder().add_service(flaky(&calls, &failing))).await;
    let stats = Stats::new();
    let mut client = CircuitBreakerLayer::new()
        .config(
            BreakerConfig::new()
                .consecutive_failures(2)
                .open_for(Duration::from_millis(100)),
        )
        .stats(stats.clone())
        .layer(Endpoint::tcp(addr).connect_lazy());
    let breaker = client.breaker("demo.Flaky");
    for _ in 0..2 {
        call(&mut client, flaky_call()).await.unwrap_err();
    }
    assert_eq!(breaker.state(), BreakerState::Open);

    // The server goes away altogether: the probe cannot even connect.
    server.shutdown().await;
    eventually("half-open", || breaker.state() == BreakerState::HalfOpen).await;
    let err = call(&mut client, flaky_call()).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err}");
    assert!(err.delivery().never_processed(), "{err:?}");

    // Nothing was learnt about the server: the breaker must not have closed.
    assert_ne!(
        breaker.state(),
        BreakerState::Closed,
        "a probe that never reached the server closed the breaker"
    );
    assert_eq!(stats.snapshot().breaker_closed, 0);
}

// ---------------------------------------------------------------------------------------------
// 2. Load shedding
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn load_shed_fixed_limit_fails_fast_beyond_it() {
    let entered = Arc::new(AtomicUsize::new(0));
    let (release, released) = watch::channel(false);
    let svc = RawService::new("demo.Busy").method("Work", {
        let entered = entered.clone();
        move |req: Request| {
            let entered = entered.clone();
            let mut released = released.clone();
            async move {
                entered.fetch_add(1, Ordering::SeqCst);
                let ok = released.wait_for(|r| *r).await.is_ok();
                assert!(ok, "release sender dropped");
                Ok(Response::new(req.into_body()))
            }
        }
    });
    let stats = Stats::new();
    let shed = LoadShedLayer::new(ShedLimit::Fixed(4))
        .stats(stats.clone())
        .layer(svc);
    let (addr, _server) = serve_tcp(Server::builder().add_service(shed.clone())).await;
    let channel = Endpoint::tcp(addr).connect_lazy();
    let work = |i: usize| Request::new("demo.Busy/Work", format!("work-{i}"));

    let held: Vec<_> = (0..4)
        .map(|i| {
            let channel = channel.clone();
            tokio::spawn(async move { channel.unary(work(i)).await })
        })
        .collect();
    eventually("4 calls in the handler", || {
        count(&entered) == 4 && shed.in_flight() == 4
    })
    .await;
    assert_eq!(shed.limit(), 4);

    // Beyond the limit: refused at once, while the 4 are still held.
    for i in 4..14 {
        let err = channel.unary(work(i)).await.unwrap_err();
        assert_eq!(err.code(), Code::ResourceExhausted, "call {i}: {err}");
        // The server says it did not run the call, so a client may retry it anywhere.
        assert_eq!(err.delivery(), Delivery::Unprocessed, "call {i}");
        assert!(err.metadata().get(rpc_core::NOT_PROCESSED_KEY).is_none());
    }
    assert_eq!(count(&entered), 4, "a shed call reached the handler");
    assert_eq!(shed.in_flight(), 4);
    assert_eq!(stats.snapshot().shed, 10);
    assert!(held.iter().all(|h| !h.is_finished()));

    // Released, the admitted calls complete with their own answers.
    release.send(true).unwrap();
    for (i, h) in held.into_iter().enumerate() {
        let reply = h.await.unwrap().unwrap();
        assert_eq!(body(&reply), format!("work-{i}"));
    }
    eventually("slots released", || shed.in_flight() == 0).await;

    // And calls are admitted again, up to the limit at once.
    let again: Vec<_> = (100..104)
        .map(|i| {
            let channel = channel.clone();
            tokio::spawn(async move { channel.unary(work(i)).await })
        })
        .collect();
    for h in again {
        h.await.unwrap().unwrap();
    }
    assert_eq!(count(&entered), 8);
    assert_eq!(stats.snapshot().shed, 10);
}

fn sleeper(name: &str) -> RawService {
    // The body is how long to take, in milliseconds.
    RawService::new(name).method("Work", |req: Request| async move {
        let ms: u64 = std::str::from_utf8(req.body()).unwrap().parse().unwrap();
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(Response::new(req.into_body()))
    })
}

#[tokio::test(start_paused = true)]
async fn load_shed_aimd_limit_shrinks_when_slow_and_recovers() {
    let stats = Stats::new();
    let shed = LoadShedLayer::new(ShedLimit::Aimd {
        initial: 10,
        min: 2,
        max: 20,
        target: Duration::from_millis(50),
    })
    .stats(stats.clone())
    .layer(sleeper("demo.Aimd"));
    let _server = serve(
        Server::builder().add_service(shed.clone()),
        MemoryListener::bind("mw-aimd").unwrap(),
    );
    let channel = Endpoint::memory("mw-aimd").connect().await.unwrap();
    let work = |ms: u64| Request::new("demo.Aimd/Work", ms.to_string());
    assert_eq!(shed.limit(), 10);

    // Slower than the target: the limit shrinks by 10% a call, down to `min`.
    channel.unary(work(100)).await.unwrap();
    let after_one = shed.limit();
    assert!((8..10).contains(&after_one), "limit {after_one}");
    let mut last = after_one;
    for _ in 0..30 {
        channel.unary(work(100)).await.unwrap();
        let l = shed.limit();
        assert!(l <= last, "the limit grew on a slow call: {last} -> {l}");
        last = l;
    }
    assert_eq!(shed.limit(), 2, "the limit did not shrink to its minimum");

    // At the shrunken limit, a third concurrent call is shed.
    let slow: Vec<_> = (0..2)
        .map(|_| {
            let channel = channel.clone();
            tokio::spawn(async move { channel.unary(work(1_000)).await })
        })
        .collect();
    eventually("2 calls in flight", || shed.in_flight() == 2).await;
    let err = channel.unary(work(0)).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err}");
    assert_eq!(stats.snapshot().shed, 1);
    for h in slow {
        h.await.unwrap().unwrap();
    }

    // Fast calls: the limit grows back (by about one per `limit` calls), up to `max`.
    let mut fast = 0;
    while shed.limit() < 10 {
        channel.unary(work(0)).await.unwrap();
        fast += 1;
        assert!(fast < 1_000, "the limit did not recover: {}", shed.limit());
    }
    for _ in 0..500 {
        channel.unary(work(0)).await.unwrap();
    }
    assert_eq!(shed.limit(), 20, "the limit should stop at its maximum");
    assert_eq!(stats.snapshot().shed, 1);
}

#[tokio::test(start_paused = true)]
async fn load_shed_aimd_shrinks_on_calls_that_time_out_on_the_server() {
    let shed = LoadShedLayer::new(ShedLimit::Aimd {
        initial: 10,
        min: 2,
        max: 20,
        target: Duration::from_millis(50),
    })
    .layer(sleeper("demo.Aimd"));
    let _server = serve(
        Server::builder().add_service(shed.clone()),
        MemoryListener::bind("mw-aimd-timeout").unwrap(),
    );
    let channel = Endpoint::memory("mw-aimd-timeout").connect().await.unwrap();
    // Each call takes 10 s, far past both its 200 ms deadline and the 50 ms target.
    for _ in 0..5 {
        let err = channel
            .unary(Request::new("demo.Aimd/Work", "10000").with_timeout(Duration::from_millis(200)))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::DeadlineExceeded, "{err}");
    }
    eventually("slots released", || shed.in_flight() == 0).await;
    assert!(
        shed.limit() < 10,
        "5 calls timed out, yet the AIMD limit stayed at {}",
        shed.limit()
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Rate limits and quotas
// ---------------------------------------------------------------------------------------------

fn counted(name: &str, calls: &Arc<AtomicUsize>) -> RawService {
    let calls = calls.clone();
    RawService::new(name).method("Get", move |req: Request| {
        calls.fetch_add(1, Ordering::SeqCst);
        async move { Ok(Response::new(req.into_body())) }
    })
}

fn from_caller(path: &'static str, caller: Option<&str>) -> Request {
    let mut req = Request::new(path, "hi");
    if let Some(caller) = caller {
        req.metadata_mut().insert("caller", caller.to_owned());
    }
    req
}

/// Asserts `err` is a rate-limit refusal with a retry-after hint in `1..=max_ms`; returns it.
fn retry_after(err: &Status, max_ms: u64) -> u64 {
    assert_eq!(err.code(), Code::ResourceExhausted, "{err}");
    let ms: u64 = err
        .metadata()
        .get_str(RETRY_AFTER_MS)
        .unwrap_or_else(|| panic!("no {RETRY_AFTER_MS} in {err:?}"))
        .parse()
        .unwrap();
    assert!(ms > 0 && ms <= max_ms, "retry after {ms} ms");
    ms
}

#[tokio::test]
async fn quota_per_caller() {
    let calls = Arc::new(AtomicUsize::new(0));
    let stats = Stats::new();
    let limited = RateLimitLayer::new()
        .per_caller(1.0, 3.0)
        .stats(stats.clone())
        .layer(counted("demo.Quota", &calls));
    let (addr, _server) = serve_tcp(Server::builder().add_service(limited)).await;
    let channel = Endpoint::tcp(addr).connect_lazy();
    let get = |caller| from_caller("demo.Quota/Get", caller);

    for i in 0..3 {
        let reply = channel.unary(get(Some("a"))).await;
        assert!(reply.is_ok(), "call {i} of a: {reply:?}");
    }
    let err = channel.unary(get(Some("a"))).await.unwrap_err();
    retry_after(&err, 1_000);
    assert_eq!(count(&calls), 3, "a refused call reached the service");

    // Another caller has its own quota, and so do calls naming no caller.
    for caller in [Some("b"), None] {
        for i in 0..3 {
            let reply = channel.unary(get(caller)).await;
            assert!(reply.is_ok(), "call {i} of {caller:?}: {reply:?}");
        }
        let err = channel.unary(get(caller)).await.unwrap_err();
        retry_after(&err, 1_000);
    }
    // "a" is still over its quota.
    let err = channel.unary(get(Some("a"))).await.unwrap_err();
    retry_after(&err, 1_000);
    assert_eq!(count(&calls), 9);
    assert_eq!(stats.snapshot().rate_limited, 4);
}

#[tokio::test]
async fn global_rate_limit_and_retry_after() {
    let calls = Arc::new(AtomicUsize::new(0));
    let stats = Stats::new();
    let limited = RateLimitLayer::new()
        .global(10.0, 2.0)
        .stats(stats.clone())
        .layer(counted("demo.Quota", &calls));
    let (addr, _server) = serve_tcp(Server::builder().add_service(limited)).await;
    let channel = Endpoint::tcp(addr).connect_lazy();
    let get = |caller| from_caller("demo.Quota/Get", caller);

    channel.unary(get(Some("a"))).await.unwrap();
    channel.unary(get(Some("b"))).await.unwrap();
    // The bucket is shared: a third caller is refused too.
    let err = channel.unary(get(Some("c"))).await.unwrap_err();
    let wait = retry_after(&err, 100);
    assert_eq!(count(&calls), 2);
    assert_eq!(stats.snapshot().rate_limited, 1);

    // After the hint, a token is back.
    tokio::time::sleep(Duration::from_millis(wait)).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match channel.unary(get(Some("c"))).await {
            Ok(_) => break,
            Err(e) => {
                retry_after(&e, 100);
                assert!(Instant::now() < deadline, "no token came back");
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(count(&calls), 3);
}

#[tokio::test]
async fn calls_refused_by_the_global_limit_do_not_spend_the_callers_quota() {
    let calls = Arc::new(AtomicUsize::new(0));
    let limited = RateLimitLayer::new()
        .global(0.001, 1.0)
        .per_caller(0.001, 2.0)
        .layer(counted("demo.Quota", &calls));
    let (addr, _server) = serve_tcp(Server::builder().add_service(limited)).await;
    let channel = Endpoint::tcp(addr).connect_lazy();
    let get = || from_caller("demo.Quota/Get", Some("a"));

    // Served: one token of each bucket; the global one is now empty, "a" has one left.
    channel.unary(get()).await.unwrap();
    let err = channel.unary(get()).await.unwrap_err();
    assert!(err.message().contains("rate limit"), "{err}");
    // "a" has been served once out of a quota of 2: it is still the global limit that refuses
    // it, not its quota.
    let err = channel.unary(get()).await.unwrap_err();
    assert!(
        err.message().contains("rate limit"),
        "the caller's quota was spent by a refused call: {err}"
    );
    assert_eq!(count(&calls), 1);
}

// ---------------------------------------------------------------------------------------------
// 4. Deadlines
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn deadline_propagates_across_two_hops() {
    // B reports the budget it sees, then takes far too long.
    let (b_seen_tx, mut b_seen) = mpsc::unbounded_channel::<Option<Duration>>();
    let b_dropped = Arc::new(AtomicUsize::new(0));
    let svc_b = RawService::new("demo.B").method("Slow", {
        let b_dropped = b_dropped.clone();
        move |_req| {
            let seen = b_seen_tx.clone();
            let guard = DropCount(b_dropped.clone());
            async move {
                let _guard = guard;
                let _ = seen.send(Context::current().and_then(|c| c.remaining()));
                tokio::time::sleep(Duration::from_secs(30)).await;
                Ok(Response::new("too late"))
            }
        }
    });
    let (addr_b, _server_b) = serve_tcp(Server::builder().add_service(svc_b)).await;

    // A forwards to B through its own channel, without passing any deadline along.
    let (a_seen_tx, mut a_seen) = mpsc::unbounded_channel::<Option<Duration>>();
    let to_b = Endpoint::tcp(addr_b).connect_lazy();
    let svc_a = RawService::new("demo.A").method("Forward", move |_req| {
        let to_b = to_b.clone();
        let seen = a_seen_tx.clone();
        async move {
            let _ = seen.send(Context::current().and_then(|c| c.remaining()));
            to_b.unary(Request::new("demo.B/Slow", "")).await
        }
    });
    let (addr_a, _server_a) = serve_tcp(Server::builder().add_service(svc_a)).await;

    let budget = Duration::from_millis(300);
    let mut client = DeadlineLayer::new(budget).layer(Endpoint::tcp(addr_a).connect_lazy());
    let t0 = Instant::now();
    let err = call(&mut client, Request::new("demo.A/Forward", ""))
        .await
        .unwrap_err();
    let elapsed = t0.elapsed();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err}");
    assert!(
        elapsed >= Duration::from_millis(250) && elapsed <= Duration::from_secs(1),
        "failed after {elapsed:?}"
    );

    let a = a_seen.recv().await.unwrap().expect("A saw no deadline");
    let b = b_seen.recv().await.unwrap().expect("B saw no deadline");
    assert!(a <= budget && !a.is_zero(), "A's budget: {a:?}");
    assert!(b <= budget && !b.is_zero(), "B's budget: {b:?}");
    // B's server stops B's handler once the deadline is past.
    eventually("B's handler dropped", || count(&b_dropped) == 1).await;
}

/// Calls that report the deadline they run under.
#[service(name = "test.Budget")]
trait Budget {
    /// Milliseconds left, `u64::MAX` without a deadline; 150 ms by default.
    #[rpc(timeout = "150ms")]
    async fn short(&self, ctx: &Context) -> Result<u64, Status>;

    /// Milliseconds left, `u64::MAX` without a deadline; no default timeout.
    async fn plain(&self, ctx: &Context) -> Result<u64, Status>;
}

struct Reporter;

fn left_ms(ctx: &Context) -> u64 {
    ctx.remaining().map_or(u64::MAX, |d| d.as_millis() as u64)
}

impl Budget for Reporter {
    async fn short(&self, ctx: &Context) -> Result<u64, Status> {
        Ok(left_ms(ctx))
    }

    async fn plain(&self, ctx: &Context) -> Result<u64, Status> {
        Ok(left_ms(ctx))
    }
}

/// A hand-made request for a method of `Budget`, with its descriptor and no deadline.
fn budget_request(method: &str, with_descriptor: bool) -> Request {
    let m = BudgetClient::<Channel>::DESCRIPTOR.method(method).unwrap();
    let req = Request::new(m.path, Bytes::new()).with_codec(CodecId::JSON);
    if with_descriptor {
        req.with_descriptor(m)
    } else {
        req
    }
}

async fn left_of<S>(svc: &mut S, req: Request) -> u64
where
    S: Service<Request, Response = Response, Error = Status>,
{
    let reply = call(svc, req).await.unwrap();
    body(&reply).parse().unwrap()
}

#[tokio::test]
async fn deadline_layer_uses_the_method_timeout_from_the_descriptor() {
    let (addr, _server) =
        serve_tcp(Server::builder().add_service(BudgetServer::new(Reporter))).await;
    let channel = Endpoint::tcp(addr).connect_lazy();
    let mut client = DeadlineLayer::new(Duration::from_secs(20)).layer(channel.clone());

    // With the descriptor: the method's `#[rpc(timeout = "150ms")]`.
    let ms = left_of(&mut client, budget_request("Short", true)).await;
    assert!(ms > 0 && ms <= 150, "{ms} ms");
    // Without a method timeout, or without the descriptor: the layer's.
    let ms = left_of(&mut client, budget_request("Plain", true)).await;
    assert!(ms > 10_000 && ms <= 20_000, "{ms} ms");
    let ms = left_of(&mut client, budget_request("Short", false)).await;
    assert!(ms > 10_000 && ms <= 20_000, "{ms} ms");
    // A deadline the caller set is kept.
    let req = budget_request("Short", true).with_timeout(Duration::from_secs(5));
    let ms = left_of(&mut client, req).await;
    assert!(ms > 1_000 && ms <= 5_000, "{ms} ms");
    // So is the deadline of the call being handled (here, a context made current by hand).
    let ms = Context::new()
        .with_timeout(Duration::from_secs(3))
        .scope(left_of(&mut client, budget_request("Short", true)))
        .await;
    assert!(ms > 1_000 && ms <= 3_000, "{ms} ms");

    // Per method, with no default: only the configured method gets a deadline.
    let mut per_method = DeadlineLayer::per_method(
        PerMethod::new(None).method("test.Budget/Plain", Some(Duration::from_secs(2))),
    )
    .layer(channel.clone());
    let ms = left_of(&mut per_method, budget_request("Plain", false)).await;
    assert!(ms > 1_000 && ms <= 2_000, "{ms} ms");
    let ms = left_of(&mut per_method, budget_request("Short", false)).await;
    assert_eq!(ms, u64::MAX, "a deadline where none was configured");
    let ms = left_of(&mut per_method, budget_request("Short", true)).await;
    assert!(ms > 0 && ms <= 150, "{ms} ms");

    // The generated client over the layer: the method default, else the layer's timeout.
    let typed = BudgetClient::new(
        ServiceBuilder::new()
            .layer(DeadlineLayer::new(Duration::from_secs(20)))
            .service(channel),
    );
    let ms = typed.short().await.unwrap();
    assert!(ms > 0 && ms <= 150, "{ms} ms");
    let ms = typed.plain().await.unwrap();
    assert!(ms > 10_000 && ms <= 20_000, "{ms} ms");
}

// ---------------------------------------------------------------------------------------------
// 5. Failsafe
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn failsafe_answers_failures_with_the_fallback() {
    let svc = RawService::new("demo.Maybe")
        .method("Fail", |_req| async { Err(Status::internal("boom")) })
        .method("Work", |_req| async { Ok(Response::new("real")) });
    let (addr, _server) = serve_tcp(Server::builder().add_service(svc)).await;
    let stats = Stats::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut client = FailsafeLayer::new({
        let seen = seen.clone();
        move |req: &Request, status: &Status| {
            seen.lock()
                .unwrap()
                .push((req.path().to_owned(), status.code()));
            Ok(Response::new("fallback"))
        }
    })
    .stats(stats.clone())
    .layer(Endpoint::tcp(addr).connect_lazy());

    let reply = call(&mut client, Request::new("demo.Maybe/Fail", ""))
        .await
        .unwrap();
    assert_eq!(body(&reply), "fallback");
    assert_eq!(stats.snapshot().fallbacks, 1);
    assert_eq!(
        *seen.lock().unwrap(),
        vec![("demo.Maybe/Fail".to_owned(), Code::Internal)]
    );

    // Successes pass through untouched.
    let reply = call(&mut client, Request::new("demo.Maybe/Work", ""))
        .await
        .unwrap();
    assert_eq!(body(&reply), "real");
    assert_eq!(stats.snapshot().fallbacks, 1);
    assert_eq!(seen.lock().unwrap().len(), 1);
}

// ---------------------------------------------------------------------------------------------
// 6. Retries
// ---------------------------------------------------------------------------------------------

/// `demo.Flaky/Call`, failing with `Unavailable` while `failures_left` is above zero (each call
/// takes one), counting calls.
fn fails_first(calls: &Arc<AtomicUsize>, failures_left: &Arc<AtomicUsize>) -> RawService {
    let (calls, left) = (calls.clone(), failures_left.clone());
    RawService::new("demo.Flaky").method("Call", move |_req| {
        calls.fetch_add(1, Ordering::SeqCst);
        let fail = left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        async move {
            if fail {
                Err(Status::unavailable("not yet"))
            } else {
                Ok(Response::new("ok"))
            }
        }
    })
}

fn quick_retries() -> RetryPolicy {
    RetryPolicy::new()
        .max_attempts(3)
        .backoff(Duration::from_millis(1), Duration::from_millis(4))
}

#[tokio::test]
async fn retry_idempotent_calls_and_unsent_calls_only() {
    let calls = Arc::new(AtomicUsize::new(0));
    let failures_left = Arc::new(AtomicUsize::new(2));
    let (addr, _server) =
        serve_tcp(Server::builder().add_service(fails_first(&calls, &failures_left))).await;
    let channel = Endpoint::tcp(addr).connect_lazy();

    // Idempotent: two retries, then the answer.
    let stats = Stats::new();
    let mut client = RetryLayer::new()
        .policy(quick_retries())
        .stats(stats.clone())
        .layer(channel.clone());
    let reply = call(&mut client, flaky_call().with_idempotent(true))
        .await
        .unwrap();
    assert_eq!(body(&reply), "ok");
    assert_eq!(count(&calls), 3);
    let s = stats.snapshot();
    assert_eq!(
        (s.calls, s.retries, s.retries_over_budget),
        (1, 2, 0),
        "{s}"
    );

    // Not idempotent, and it reached the server: the first error is the answer.
    calls.store(0, Ordering::SeqCst);
    failures_left.store(2, Ordering::SeqCst);
    let stats = Stats::new();
    let mut client = RetryLayer::new()
        .policy(quick_retries())
        .stats(stats.clone())
        .layer(channel.clone());
    let err = call(&mut client, flaky_call()).await.unwrap_err();
    assert_eq!(
        (err.code(), err.delivery()),
        (Code::Unavailable, Delivery::Sent)
    );
    assert_eq!(count(&calls), 1);
    let s = stats.snapshot();
    assert_eq!((s.calls, s.retries), (1, 0), "{s}");

    // Not idempotent, but it never left: a server that is not running is retried anyway.
    let stats = Stats::new();
    let mut client = RetryLayer::new()
        .policy(quick_retries())
        .stats(stats.clone())
        .layer(Endpoint::tcp(dead_addr()).connect_lazy());
    let err = call(&mut client, flaky_call()).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err}");
    assert_eq!(err.delivery(), Delivery::NotSent, "{err:?}");
    let s = stats.snapshot();
    assert_eq!((s.calls, s.retries), (1, 2), "{s}");
}

#[tokio::test]
async fn retry_budget_caps_retries_at_its_ratio() {
    // Always failing.
    let calls = Arc::new(AtomicUsize::new(0));
    let failures_left = Arc::new(AtomicUsize::new(usize::MAX));
    let (addr, _server) =
        serve_tcp(Server::builder().add_service(fails_first(&calls, &failures_left))).await;
    let stats = Stats::new();
    // No reserve (0 per second), 10% of calls: tower's TpsBudget deposits 1 per call and a retry
    // withdraws 10 (1 / 0.1), only when the balance covers it. Within the 10 s window nothing
    // expires, so retries <= calls / 10 exactly.
    let mut client = RetryLayer::new()
        .policy(quick_retries())
        .budget(RetryBudget::new(Duration::from_secs(10), 0, 0.1))
        .stats(stats.clone())
        .layer(Endpoint::tcp(addr).connect_lazy());
    let t0 = Instant::now();
    for i in 0..100 {
        let err = call(&mut client, flaky_call().with_idempotent(true))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unavailable, "call {i}: {err}");
    }
    assert!(
        t0.elapsed() < Duration::from_secs(9),
        "too slow for the budget window to hold every deposit"
    );
    let s = stats.snapshot();
    assert_eq!(s.calls, 100, "{s}");
    assert!(
        s.retries <= 10,
        "the budget let {} retries through: {s}",
        s.retries
    );
    // One call at a time, every 10th call finds the balance at 10 and gets one retry, after which
    // the balance is 0 again: exactly 10 retries, and every other wish for a retry is refused (90
    // first retries, plus the 10 second ones).
    assert_eq!(s.retries, 10, "{s}");
    assert_eq!(s.retries_over_budget, 100, "{s}");
    assert_eq!(count(&calls), 110);
}

// ---------------------------------------------------------------------------------------------
// 7. Hedging
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn hedge_second_attempt_wins_and_the_first_is_cancelled() {
    let calls = Arc::new(AtomicUsize::new(0));
    let stall_next = Arc::new(AtomicBool::new(true));
    let dropped = Arc::new(AtomicUsize::new(0));
    let svc = RawService::new("demo.Hedged").method("Get", {
        let (calls, stall_next, dropped) = (calls.clone(), stall_next.clone(), dropped.clone());
        move |_req| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            let stall = stall_next.swap(false, Ordering::SeqCst);
            let guard = stall.then(|| DropCount(dropped.clone()));
            async move {
                if let Some(_guard) = guard {
                    std::future::pending::<()>().await;
                }
                Ok(Response::new(format!("answer-{n}")))
            }
        }
    });
    let (addr, _server) = serve_tcp(Server::builder().add_service(svc)).await;
    let stats = Stats::new();
    let mut client = HedgeLayer::new(HedgeDelay::Fixed(Duration::from_millis(20)))
        .stats(stats.clone())
        .layer(Endpoint::tcp(addr).connect_lazy());
    let get = || Request::new("demo.Hedged/Get", "");

    // The first attempt stalls; the hedge answers.
    let reply = call(&mut client, get().with_idempotent(true))
        .await
        .unwrap();
    assert_eq!(body(&reply), "answer-1");
    let s = stats.snapshot();
    assert_eq!((s.hedges, s.hedge_wins), (1, 1), "{s}");
    assert_eq!(count(&calls), 2);
    // The losing attempt is cancelled on the server.
    eventually("the stalled handler to be dropped", || count(&dropped) == 1).await;

    // A quick answer is not hedged.
    let reply = call(&mut client, get().with_idempotent(true))
        .await
        .unwrap();
    assert_eq!(body(&reply), "answer-2");
    assert_eq!(stats.snapshot().hedges, 1);
    assert_eq!(count(&calls), 3);

    // Not idempotent: never hedged, however long it takes.
    stall_next.store(true, Ordering::SeqCst);
    let err = call(&mut client, get().with_timeout(Duration::from_millis(200)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err}");
    assert_eq!(count(&calls), 4, "a non-idempotent call was sent twice");
    let s = stats.snapshot();
    assert_eq!((s.hedges, s.hedge_wins), (1, 1), "{s}");
    eventually("the timed-out handler to be dropped", || {
        count(&dropped) == 2
    })
    .await;
}
