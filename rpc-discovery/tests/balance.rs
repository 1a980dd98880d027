//! The in-process and static registries, and the balanced channel's strategies, health checks
//! and canary routing, over real servers on the in-memory transport.

#![allow(missing_docs)]

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rpc_core::client::OpenStream;
use rpc_core::middleware::{DeadlineLayer, RetryLayer};
use rpc_core::protocol::flags::SERVER_STREAM;
use rpc_core::server::RawService;
use rpc_core::transport::memory::MemoryListener;
use rpc_core::{Code, Request, Response, Server, Status};
use rpc_discovery::{
    BalanceConfig, BalancedChannel, EndpointSet, Instance, MemoryRegistry, Query, Registration,
    Registry, StaticRegistry, Strategy, Watch, HASH_KEY, ROUTE_TAG,
};
use support::eventually;

const SVC: &str = "test.Who";

/// A server on the in-memory transport answering `test.Who/Name` with its own name, after
/// `delay`, or with `Unavailable` while `failing` is set.
struct Backend {
    name: String,
    calls: Arc<AtomicUsize>,
    failing: Arc<AtomicBool>,
}

fn backend(name: &str, delay: Duration) -> Backend {
    let calls = Arc::new(AtomicUsize::new(0));
    let failing = Arc::new(AtomicBool::new(false));
    let streamed = name.to_owned();
    let svc = RawService::new(SVC).server_streaming("Names", move |req, mut out| {
        let name = streamed.clone();
        async move {
            let n: usize = std::str::from_utf8(req.body())
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(1);
            for _ in 0..n {
                out.send(name.clone().into()).await?;
            }
            Ok(Response::new(""))
        }
    });
    let svc = svc.method("Name", {
        let name = name.to_owned();
        let calls = calls.clone();
        let failing = failing.clone();
        move |_req| {
            calls.fetch_add(1, Ordering::Relaxed);
            let name = name.clone();
            let failing = failing.load(Ordering::Relaxed);
            async move {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                if failing {
                    return Err(Status::unavailable("failing on purpose"));
                }
                Ok(Response::new(name))
            }
        }
    });
    let listener = MemoryListener::bind(name).unwrap();
    tokio::spawn(Server::builder().add_service(svc).serve(listener));
    Backend {
        name: name.to_owned(),
        calls,
        failing,
    }
}

fn addr(name: &str) -> String {
    format!("memory://{name}")
}

async fn register(registry: &MemoryRegistry, inst: Instance) -> Registration {
    registry.register(inst).await.unwrap()
}

fn call() -> Request {
    Request::new("test.Who/Name", "")
}

async fn name_of(ch: &BalancedChannel, req: Request) -> Result<String, Status> {
    let reply = ch.unary(req).await?;
    Ok(String::from_utf8(reply.body().to_vec()).unwrap())
}

/// Polls until the channel knows `n` endpoints (the watch is applied in a background task).
async fn wait_for_endpoints(ch: &BalancedChannel, n: usize) {
    let what = format!("{n} endpoints");
    eventually(Duration::from_secs(5), &what, move || async move {
        ch.endpoints().len() == n
    })
    .await;
}

#[tokio::test]
async fn memory_registry_register_watch_deregister() {
    let registry = MemoryRegistry::new();
    let mut watch = registry.watch(Query::new(SVC).env("PROD")).await.unwrap();
    let mut blue = registry
        .watch(Query::new(SVC).env("PROD").group("blue"))
        .await
        .unwrap();
    assert!(watch.current().is_empty());

    let a = register(
        &registry,
        Instance::new(SVC, "10.0.0.1:1").env("PROD").group("blue"),
    )
    .await;
    let b = register(
        &registry,
        Instance::new(SVC, "10.0.0.2:1").env("PROD").group("green"),
    )
    .await;
    let _other_env = register(&registry, Instance::new(SVC, "10.0.0.3:1").env("TEST")).await;
    let _other_svc = register(&registry, Instance::new("x.Y", "10.0.0.4:1").env("PROD")).await;
    let set = watch.current();
    let addrs: Vec<&str> = set.instances().iter().map(|i| i.addr.as_str()).collect();
    assert_eq!(addrs, ["10.0.0.1:1", "10.0.0.2:1"]);
    assert_eq!(
        blue.changed().await.unwrap().instances()[0].addr,
        "10.0.0.1:1"
    );

    a.deregister().await;
    assert_eq!(watch.changed().await.unwrap().len(), 1);
    drop(b); // dropping the handle deregisters too
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !watch.current().is_empty() {
        assert!(tokio::time::Instant::now() < deadline);
        watch.changed().await.unwrap();
    }
}

#[tokio::test]
async fn invalid_instances_are_refused() {
    let registry = MemoryRegistry::new();
    assert!(registry.register(Instance::new("", "a:1")).await.is_err());
    assert!(registry.register(Instance::new(SVC, "")).await.is_err());
    assert!(registry
        .register(Instance::new(SVC, "a:1").group("x/y"))
        .await
        .is_err());
}

#[tokio::test]
async fn static_registry_lists_and_refuses_registration() {
    let registry = StaticRegistry::new(SVC, ["a:1", "b:1", "c:1"]);
    assert_eq!(
        registry
            .watch(Query::new(SVC))
            .await
            .unwrap()
            .current()
            .len(),
        3
    );
    assert!(registry
        .watch(Query::new("x.Y"))
        .await
        .unwrap()
        .current()
        .is_empty());
    assert!(registry.register(Instance::new(SVC, "d:1")).await.is_err());
}

fn fixed(addrs: &[(&str, u32)]) -> Watch {
    Watch::fixed(EndpointSet::new(
        addrs.iter().map(|(a, w)| Instance::new(SVC, *a).weight(*w)),
    ))
}

#[tokio::test]
async fn round_robin_is_exact() {
    let ch = BalancedChannel::with_config(
        fixed(&[("rr:1", 100), ("rr:2", 100), ("rr:3", 100)]),
        BalanceConfig::new().strategy(Strategy::RoundRobin),
    );
    let mut counts: HashMap<String, usize> = HashMap::new();
    let mut order = Vec::new();
    for _ in 0..3000 {
        let a = ch.pick(&call()).unwrap();
        order.push(a.clone());
        *counts.entry(a).or_default() += 1;
    }
    assert!(counts.values().all(|&n| n == 1000), "{counts:?}");
    // And strictly in turn.
    assert!(order
        .windows(3)
        .all(|w| w[0] != w[1] && w[1] != w[2] && w[0] != w[2]));
}

#[tokio::test]
async fn weighted_random_follows_the_weights() {
    let weights = [("w:1", 100u32), ("w:2", 200), ("w:3", 700)];
    let ch = BalancedChannel::with_config(
        fixed(&weights),
        BalanceConfig::new().strategy(Strategy::WeightedRandom),
    );
    let picks = 100_000;
    let mut counts: HashMap<String, usize> = HashMap::new();
    for _ in 0..picks {
        *counts.entry(ch.pick(&call()).unwrap()).or_default() += 1;
    }
    for (a, w) in weights {
        let expected = picks as f64 * f64::from(w) / 1000.0;
        let got = counts[a] as f64;
        assert!(
            (got - expected).abs() <= expected * 0.05,
            "{a}: {got} picks, expected {expected} ± 5%"
        );
    }
}

#[tokio::test]
async fn consistent_hashing_is_sticky_and_moves_about_one_nth_of_keys() {
    let registry = MemoryRegistry::new();
    let mut regs = Vec::new();
    for i in 0..10 {
        regs.push(register(&registry, Instance::new(SVC, format!("10.1.0.{i}:80"))).await);
    }
    let ch = BalancedChannel::with_config(
        registry.watch(Query::new(SVC)).await.unwrap(),
        BalanceConfig::new().strategy(Strategy::ConsistentHash),
    );
    let keyed = |k: usize| {
        let mut r = call();
        r.metadata_mut().insert(HASH_KEY, format!("user-{k}"));
        r
    };
    let keys = 10_000;
    let before: Vec<String> = (0..keys).map(|k| ch.pick(&keyed(k)).unwrap()).collect();
    let again: Vec<String> = (0..keys).map(|k| ch.pick(&keyed(k)).unwrap()).collect();
    assert_eq!(before, again, "the same key goes to the same endpoint");

    regs.push(register(&registry, Instance::new(SVC, "10.1.0.10:80")).await);
    wait_for_endpoints(&ch, 11).await;
    let after: Vec<String> = (0..keys).map(|k| ch.pick(&keyed(k)).unwrap()).collect();
    let moved = before.iter().zip(&after).filter(|(a, b)| a != b).count();
    let fraction = moved as f64 / keys as f64;
    println!("consistent hashing: {moved} of {keys} keys moved when an 11th endpoint joined");
    assert!(
        fraction <= 1.0 / 11.0 + 0.05,
        "{moved} of {keys} keys moved ({fraction:.3})"
    );
    // Every key that moved went to the new endpoint.
    assert!(before
        .iter()
        .zip(&after)
        .all(|(a, b)| a == b || b == "10.1.0.10:80"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p2c_sends_most_calls_to_the_fast_endpoints() {
    let fast1 = backend("p2c-fast-1", Duration::ZERO);
    let fast2 = backend("p2c-fast-2", Duration::ZERO);
    let slow = backend("p2c-slow", Duration::from_millis(20));
    let registry = MemoryRegistry::new();
    let mut regs = Vec::new();
    for b in [&fast1, &fast2, &slow] {
        regs.push(register(&registry, Instance::new(SVC, addr(&b.name))).await);
    }
    let ch = BalancedChannel::new(registry.watch(Query::new(SVC)).await.unwrap());
    let total = 2_000;
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let ch = ch.clone();
            tokio::spawn(async move {
                for _ in 0..total / 8 {
                    name_of(&ch, call()).await.unwrap();
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    let fast = fast1.calls.load(Ordering::Relaxed) + fast2.calls.load(Ordering::Relaxed);
    let slow_calls = slow.calls.load(Ordering::Relaxed);
    assert_eq!(fast + slow_calls, total);
    println!("p2c: fast endpoints {fast} calls, slow endpoint {slow_calls} of {total}");
    assert!(
        fast as f64 >= 0.9 * total as f64,
        "fast endpoints got {fast} of {total} calls, the slow one {slow_calls}"
    );
}

#[tokio::test(start_paused = true)]
async fn failing_endpoint_is_ejected_then_probed_back() {
    let good = backend("eject-good", Duration::ZERO);
    let bad = backend("eject-bad", Duration::ZERO);
    bad.failing.store(true, Ordering::Relaxed);
    let ch = BalancedChannel::with_config(
        Watch::fixed(EndpointSet::new([
            Instance::new(SVC, addr(&good.name)),
            Instance::new(SVC, addr(&bad.name)),
        ])),
        BalanceConfig::new()
            .strategy(Strategy::RoundRobin)
            .eject_after(3)
            .ejection(Duration::from_secs(10), Duration::from_secs(60)),
    );
    // Round robin alternates until the bad one has failed three calls in a row.
    let mut failures = 0;
    for _ in 0..6 {
        if name_of(&ch, call()).await.is_err() {
            failures += 1;
        }
    }
    assert_eq!(failures, 3);
    assert_eq!(bad.calls.load(Ordering::Relaxed), 3);
    assert!(ch
        .endpoints()
        .iter()
        .any(|e| e.ejected && e.addr.contains("bad")));

    // While ejected it receives nothing.
    for _ in 0..100 {
        assert_eq!(name_of(&ch, call()).await.unwrap(), "eject-good");
    }
    assert_eq!(bad.calls.load(Ordering::Relaxed), 3);

    // After the ejection period, one call probes it; it has recovered, so it is back.
    bad.failing.store(false, Ordering::Relaxed);
    tokio::time::advance(Duration::from_secs(11)).await;
    let mut names = Vec::new();
    for _ in 0..10 {
        names.push(name_of(&ch, call()).await.unwrap());
    }
    assert!(
        names.iter().filter(|n| *n == "eject-bad").count() >= 4,
        "{names:?}"
    );
    assert!(ch.endpoints().iter().all(|e| !e.ejected));
}

/// With every endpoint ejected, calls still go to one of them (panic mode) instead of failing
/// with "no live endpoint" until an ejection ends: an endpoint ejected for failures that were
/// not its own (a dependency behind it froze) answers again as soon as it can.
#[tokio::test(start_paused = true)]
async fn with_every_endpoint_ejected_calls_still_go_to_one() {
    let only = backend("panic-only", Duration::ZERO);
    only.failing.store(true, Ordering::Relaxed);
    let ch = BalancedChannel::with_config(
        Watch::fixed(EndpointSet::new([Instance::new(SVC, addr(&only.name))])),
        BalanceConfig::new()
            .eject_after(2)
            .ejection(Duration::from_secs(30), Duration::from_secs(60)),
    );
    for _ in 0..2 {
        assert!(name_of(&ch, call()).await.is_err());
    }
    assert!(ch.endpoints().iter().all(|e| e.ejected));
    // Ejected for 30 s, it has recovered: the next call reaches it at once.
    only.failing.store(false, Ordering::Relaxed);
    assert_eq!(name_of(&ch, call()).await.unwrap(), "panic-only");
    assert_eq!(only.calls.load(Ordering::Relaxed), 3);
}

#[tokio::test(start_paused = true)]
async fn a_failed_probe_ejects_again_for_longer() {
    let good = backend("probe-good", Duration::ZERO);
    let bad = backend("probe-bad", Duration::ZERO);
    bad.failing.store(true, Ordering::Relaxed);
    let ch = BalancedChannel::with_config(
        Watch::fixed(EndpointSet::new([
            Instance::new(SVC, addr(&good.name)),
            Instance::new(SVC, addr(&bad.name)),
        ])),
        BalanceConfig::new()
            .strategy(Strategy::RoundRobin)
            .eject_after(1)
            .ejection(Duration::from_secs(10), Duration::from_secs(60)),
    );
    for _ in 0..2 {
        let _ = name_of(&ch, call()).await;
    }
    assert_eq!(bad.calls.load(Ordering::Relaxed), 1);
    tokio::time::advance(Duration::from_secs(11)).await;
    for _ in 0..3 {
        let _ = name_of(&ch, call()).await;
    }
    assert_eq!(bad.calls.load(Ordering::Relaxed), 2, "exactly one probe");
    // The second ejection lasts 20 s: nothing at 11 s, one probe after 20 s.
    tokio::time::advance(Duration::from_secs(11)).await;
    for _ in 0..3 {
        let _ = name_of(&ch, call()).await;
    }
    assert_eq!(bad.calls.load(Ordering::Relaxed), 2);
    tokio::time::advance(Duration::from_secs(10)).await;
    for _ in 0..3 {
        let _ = name_of(&ch, call()).await;
    }
    assert_eq!(bad.calls.load(Ordering::Relaxed), 3);
}

#[tokio::test]
async fn canary_calls_go_to_tagged_instances_and_fall_back() {
    let stable = backend("canary-stable", Duration::ZERO);
    let gray = backend("canary-gray", Duration::ZERO);
    let registry = MemoryRegistry::new();
    let _s = register(&registry, Instance::new(SVC, addr(&stable.name))).await;
    let g = register(
        &registry,
        Instance::new(SVC, addr(&gray.name)).tag("env", "gray"),
    )
    .await;
    let ch = BalancedChannel::new(registry.watch(Query::new(SVC)).await.unwrap());
    let canary = || {
        let mut r = call();
        r.metadata_mut().insert(ROUTE_TAG, "env=gray");
        r
    };
    for _ in 0..50 {
        assert_eq!(name_of(&ch, canary()).await.unwrap(), "canary-gray");
    }
    g.deregister().await;
    wait_for_endpoints(&ch, 1).await;
    for _ in 0..10 {
        assert_eq!(name_of(&ch, canary()).await.unwrap(), "canary-stable");
    }
}

#[tokio::test]
async fn a_stopped_server_is_ejected_and_calls_keep_succeeding() {
    let live = backend("stop-live", Duration::ZERO);
    let listener = MemoryListener::bind("stop-dead").unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let dead = tokio::spawn(
        Server::builder()
            .add_service(
                RawService::new(SVC).method("Name", |_r| async { Ok(Response::new("stop-dead")) }),
            )
            .serve_with_shutdown(listener, async {
                let _ = stopped.await;
            }),
    );
    let ch = BalancedChannel::with_config(
        Watch::fixed(EndpointSet::new([
            Instance::new(SVC, addr(&live.name)),
            Instance::new(SVC, "memory://stop-dead"),
        ])),
        BalanceConfig::new().strategy(Strategy::RoundRobin),
    );
    for _ in 0..10 {
        name_of(&ch, call()).await.unwrap();
    }
    stop.send(()).unwrap();
    dead.await.unwrap().unwrap();
    // The registry still lists it (no deregistration): the first call there fails and its
    // connection failure ejects it at once.
    let mut errors = 0;
    for _ in 0..50 {
        match name_of(&ch, call()).await {
            Ok(n) => assert_eq!(n, "stop-live"),
            Err(e) => {
                assert_eq!(e.code(), Code::Unavailable, "{e}");
                errors += 1;
            }
        }
    }
    assert!(errors <= 1, "{errors} calls failed");
}

#[tokio::test]
async fn no_endpoint_is_a_clear_unavailable() {
    let ch = BalancedChannel::new(Watch::fixed(EndpointSet::default()));
    let e = ch.unary(call()).await.unwrap_err();
    assert_eq!(e.code(), Code::Unavailable);
    assert_eq!(e.delivery(), rpc_core::Delivery::NotSent);
}

#[tokio::test]
async fn the_last_set_stays_when_the_watch_ends() {
    let b = backend("outage-1", Duration::ZERO);
    let (tx, rx) =
        tokio::sync::watch::channel(EndpointSet::new([Instance::new(SVC, addr(&b.name))]));
    let ch = BalancedChannel::new(Watch::new(rx));
    assert_eq!(name_of(&ch, call()).await.unwrap(), "outage-1");
    drop(tx); // the registry is gone
    for _ in 0..10 {
        assert_eq!(name_of(&ch, call()).await.unwrap(), "outage-1");
    }
}

#[tokio::test]
async fn servers_deregister_before_draining() {
    let registry = MemoryRegistry::new();
    let mut watch = registry.watch(Query::new(SVC)).await.unwrap();
    let release = Arc::new(tokio::sync::Notify::new());
    let entered = Arc::new(tokio::sync::Notify::new());
    let svc = RawService::new(SVC).method("Hold", {
        let release = release.clone();
        let entered = entered.clone();
        move |_req| {
            let release = release.clone();
            entered.notify_one();
            async move {
                release.notified().await;
                Ok(Response::new("released"))
            }
        }
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn({
        let registry = registry.clone();
        async move {
            let listener = MemoryListener::bind("drain-order").unwrap();
            rpc_discovery::serve_registered(
                Server::builder().add_service(svc),
                listener,
                &registry,
                Instance::new(SVC, ""),
                Duration::ZERO,
                async {
                    let _ = stopped.await;
                },
            )
            .await
        }
    });
    while watch.current().is_empty() {
        watch.changed().await.unwrap();
    }
    assert_eq!(watch.current().instances()[0].addr, "memory://drain-order");
    let ch = BalancedChannel::new(watch.clone());
    let held = tokio::spawn(async move { ch.unary(Request::new("test.Who/Hold", "")).await });
    // Once the call is in the handler, start shutting down.
    entered.notified().await;
    stop.send(()).unwrap();
    // The instance leaves the registry while the held call is still running.
    while !watch.current().is_empty() {
        watch.changed().await.unwrap();
    }
    assert!(!held.is_finished());
    release.notify_one();
    let reply = held.await.unwrap().unwrap();
    assert_eq!(&reply.body()[..], b"released");
    serving.await.unwrap().unwrap();
}

/// Opens a `Names` stream of `n` messages through `client` and reads it to its end.
async fn names_via<S: OpenStream>(client: &S, n: usize) -> Result<Vec<String>, Status> {
    let request = Request::new("test.Who/Names", n.to_string());
    let (_, mut stream) = client.open_stream(request, SERVER_STREAM).await?;
    let mut names = Vec::new();
    while let Some(name) = stream.message().await? {
        names.push(String::from_utf8(name.to_vec()).expect("a name"));
    }
    Ok(names)
}

#[tokio::test]
async fn streams_are_balanced_and_go_through_the_client_stack() {
    let backends: Vec<Backend> = ["bs-a", "bs-b", "bs-c"]
        .iter()
        .map(|n| backend(n, Duration::ZERO))
        .collect();
    let set = EndpointSet::new(backends.iter().map(|b| Instance::new(SVC, addr(&b.name))));
    let config = BalanceConfig::new().strategy(Strategy::RoundRobin);
    let ch = BalancedChannel::with_config(Watch::fixed(set), config);
    wait_for_endpoints(&ch, 3).await;
    // The shop's client stack: a default deadline and retries over the balanced channel.
    let stack = tower::ServiceBuilder::new()
        .layer(DeadlineLayer::new(Duration::from_secs(5)))
        .layer(RetryLayer::new())
        .service(ch.clone());
    let mut seen = HashMap::new();
    for _ in 0..6 {
        let names = names_via(&stack, 3)
            .await
            .expect("a stream through the stack");
        assert_eq!(names.len(), 3, "{names:?}");
        assert!(
            names.windows(2).all(|w| w[0] == w[1]),
            "one endpoint per stream: {names:?}"
        );
        *seen.entry(names[0].clone()).or_insert(0) += 1;
    }
    // Round robin: each endpoint opened two of the six streams.
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(seen.values().all(|&n| n == 2), "{seen:?}");
    // Opening counts as a pick; a stream's messages do not.
    let picks: usize = ch.endpoints().iter().map(|e| e.picks).sum();
    assert_eq!(picks, 6);
}

#[tokio::test]
async fn a_stream_with_no_endpoint_is_a_clear_unavailable() {
    let ch = BalancedChannel::new(Watch::fixed(EndpointSet::default()));
    let err = names_via(&ch, 1).await.expect_err("nowhere to open it");
    assert_eq!(err.code(), Code::Unavailable, "{err}");
    assert!(err.message().contains("no live endpoint"), "{err}");
}
