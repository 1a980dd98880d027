//! The etcd registry against a real, throwaway etcd (one per test; see `support`).
//!
//! Needs the `etcd` binary (Debian package `etcd-server`); `.ci/run` installs it.

#![cfg(feature = "etcd")]

mod support;

use std::time::{Duration, Instant};

use etcd_client::{Client, CompactionOptions};
use rpc_discovery::{
    EndpointSet, EtcdConfig, EtcdRegistry, Instance, Query, Registration, Registry, Watch,
};
use support::{EtcdServer, Proxy};

/// The lease TTL the tests register with.
const TTL: Duration = Duration::from_secs(2);

async fn connect(endpoint: &str) -> EtcdRegistry {
    EtcdRegistry::connect([endpoint], EtcdConfig::new().ttl(TTL))
        .await
        .expect("connecting to etcd")
}

async fn register(registry: &EtcdRegistry, instance: Instance) -> Registration {
    registry
        .register(instance)
        .await
        .expect("registering in etcd")
}

fn addrs(set: &EndpointSet) -> Vec<&str> {
    set.instances().iter().map(|i| i.addr.as_str()).collect()
}

/// Waits until the watch's set satisfies `pred`, at most `limit`; returns the set and how long
/// it took.
async fn wait_for(
    watch: &mut Watch,
    limit: Duration,
    what: &str,
    pred: impl Fn(&EndpointSet) -> bool,
) -> (EndpointSet, Duration) {
    let start = Instant::now();
    let deadline = tokio::time::Instant::from_std(start + limit);
    let mut set = watch.current();
    while !pred(&set) {
        match tokio::time::timeout_at(deadline, watch.changed()).await {
            Ok(Ok(s)) => set = s,
            Ok(Err(e)) => panic!("the watch ended while waiting for {what}: {e}"),
            Err(_) => panic!(
                "timed out after {limit:?} waiting for {what}; last set: {:?}",
                addrs(&set)
            ),
        }
    }
    (set, start.elapsed())
}

/// Asserts that the watch does not change for `period`.
async fn assert_quiet(watch: &mut Watch, period: Duration, why: &str) {
    if let Ok(changed) = tokio::time::timeout(period, watch.changed()).await {
        panic!("the watch changed ({why}): {changed:?}");
    }
}

/// Restarts etcd on the same ports and data dir without blocking the runtime.
async fn restart(mut etcd: EtcdServer) -> EtcdServer {
    tokio::task::spawn_blocking(move || {
        etcd.restart();
        etcd
    })
    .await
    .expect("restarting etcd")
}

#[tokio::test]
async fn register_watch_deregister() {
    support::init_logs();
    let etcd = EtcdServer::start();
    let registry = connect(&etcd.endpoint()).await;
    let mut watch = registry.watch(Query::new("shop.Orders")).await.unwrap();
    assert!(watch.current().is_empty());

    let inst = Instance::new("shop.Orders", "127.0.0.1:7001")
        .weight(50)
        .version("1.2.3")
        .zone("z1")
        .tag("env", "gray");
    let reg = register(&registry, inst.clone()).await;
    let (set, took) = wait_for(&mut watch, Duration::from_secs(5), "the instance", |s| {
        s.len() == 1
    })
    .await;
    assert_eq!(
        set.instances()[0],
        inst,
        "every field survives the JSON round trip"
    );
    println!("watch saw the registration after {took:?}");

    // The key is where the layout says, holds the instance as JSON, and is leased.
    let key = "/rpc/default/shop.Orders/default/127.0.0.1:7001";
    assert_eq!(registry.config().key(&inst), key);
    let mut plain = Client::connect([etcd.endpoint()], None).await.unwrap();
    let got = plain.get(key, None).await.unwrap();
    assert_eq!(got.kvs().len(), 1);
    let stored: Instance = serde_json::from_slice(got.kvs()[0].value()).unwrap();
    assert_eq!(stored, inst);
    assert_ne!(got.kvs()[0].lease(), 0, "the key is attached to a lease");

    // A second watch of the same query starts with the current set.
    let second = registry.watch(Query::new("shop.Orders")).await.unwrap();
    assert_eq!(addrs(&second.current()), ["127.0.0.1:7001"]);

    let start = Instant::now();
    reg.deregister().await;
    let deregistered = start.elapsed();
    let got = plain.get(key, None).await.unwrap();
    assert!(
        got.kvs().is_empty(),
        "the key is gone once deregister returns"
    );
    let (_, took) = wait_for(&mut watch, Duration::from_secs(5), "an empty set", |s| {
        s.is_empty()
    })
    .await;
    println!("deregister took {deregistered:?}; the watch saw it {took:?} later");
    assert!(second.current().is_empty());

    // Dropping a registration deregisters too (in the background).
    let reg = register(&registry, inst.clone()).await;
    wait_for(
        &mut watch,
        Duration::from_secs(5),
        "the instance again",
        |s| s.len() == 1,
    )
    .await;
    drop(reg);
    wait_for(
        &mut watch,
        Duration::from_secs(5),
        "an empty set after drop",
        |s| s.is_empty(),
    )
    .await;
}

#[tokio::test]
async fn watches_see_only_their_env_group_and_service() {
    support::init_logs();
    let etcd = EtcdServer::start();
    let registry = connect(&etcd.endpoint()).await;
    let mut prod = registry
        .watch(Query::new("shop.Orders").env("PROD"))
        .await
        .unwrap();

    let pending = [
        Instance::new("shop.Orders", "10.0.0.1:1"),
        Instance::new("shop.Orders", "10.0.0.2:1")
            .env("PROD")
            .group("blue"),
        Instance::new("shop.Orders", "10.0.0.3:1")
            .env("PROD")
            .group("green"),
        Instance::new("shop.Orders", "10.0.0.4:1").env("TEST"),
        // A service whose name extends the watched one must not leak into it.
        Instance::new("shop.OrdersAudit", "10.0.0.5:1")
            .env("PROD")
            .group("blue"),
        Instance::new("shop.Inventory", "10.0.0.6:1")
            .env("PROD")
            .group("blue"),
    ]
    .map(|i| registry.register(i));
    let mut regs = Vec::new();
    for r in pending {
        regs.push(r.await.unwrap());
    }

    // Followed through watch events.
    let (set, _) = wait_for(&mut prod, Duration::from_secs(5), "PROD instances", |s| {
        s.len() == 2
    })
    .await;
    assert_eq!(addrs(&set), ["10.0.0.2:1", "10.0.0.3:1"]);

    // Listed at the start.
    let cases: [(Query, &[&str]); 6] = [
        (Query::new("shop.Orders"), &["10.0.0.1:1"]),
        (
            Query::new("shop.Orders").env("PROD"),
            &["10.0.0.2:1", "10.0.0.3:1"],
        ),
        (
            Query::new("shop.Orders").env("PROD").group("blue"),
            &["10.0.0.2:1"],
        ),
        (
            Query::new("shop.Orders").env("PROD").group("green"),
            &["10.0.0.3:1"],
        ),
        (Query::new("shop.Orders").env("TEST"), &["10.0.0.4:1"]),
        (Query::new("shop.Orders").env("DEVEL"), &[]),
    ];
    for (query, want) in cases {
        let w = registry.watch(query.clone()).await.unwrap();
        assert_eq!(addrs(&w.current()), want, "{query}");
    }

    // Values that are not instances of the query are skipped, and the watch goes on.
    let mut plain = Client::connect([etcd.endpoint()], None).await.unwrap();
    plain
        .put("/rpc/PROD/shop.Orders/blue/junk", "not json", None)
        .await
        .unwrap();
    let stray =
        serde_json::to_vec(&Instance::new("shop.Payments", "10.0.0.9:1").env("PROD")).unwrap();
    plain
        .put("/rpc/PROD/shop.Orders/blue/10.0.0.9:1", stray, None)
        .await
        .unwrap();
    let _late = register(
        &registry,
        Instance::new("shop.Orders", "10.0.0.7:1")
            .env("PROD")
            .group("blue"),
    )
    .await;
    let (set, _) = wait_for(
        &mut prod,
        Duration::from_secs(5),
        "the late instance",
        |s| s.len() >= 3,
    )
    .await;
    assert_eq!(addrs(&set), ["10.0.0.2:1", "10.0.0.3:1", "10.0.0.7:1"]);
    let relisted = registry
        .watch(Query::new("shop.Orders").env("PROD").group("blue"))
        .await
        .unwrap();
    assert_eq!(addrs(&relisted.current()), ["10.0.0.2:1", "10.0.0.7:1"]);
}

/// A registrant that dies without deregistering (its runtime is torn down, so its keep-alive
/// task never revokes) disappears when its lease runs out.
#[test]
fn killed_registrant_disappears_within_ttl() {
    support::init_logs();
    let etcd = EtcdServer::start();
    let endpoint = etcd.endpoint();

    let registrant = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let reg = registrant.block_on(async {
        let r = connect(&endpoint).await;
        register(&r, Instance::new("shop.Orders", "127.0.0.1:7001")).await
    });

    let main = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let watcher = main.block_on(connect(&endpoint));
    let mut watch = main.block_on(async {
        let mut watch = watcher.watch(Query::new("shop.Orders")).await.unwrap();
        assert_eq!(addrs(&watch.current()), ["127.0.0.1:7001"]);
        // The keep-alive works: the instance outlives its TTL while the registrant lives.
        assert_quiet(&mut watch, TTL * 2, "the registrant is alive").await;
        watch
    });

    registrant.shutdown_background();
    let killed = Instant::now();
    main.block_on(async {
        wait_for(&mut watch, TTL + Duration::from_secs(3), "expiry", |s| {
            s.is_empty()
        })
        .await;
    });
    let gone_after = killed.elapsed();
    println!("the killed registrant disappeared {gone_after:?} after the kill (TTL {TTL:?})");
    assert!(
        gone_after <= TTL + Duration::from_secs(1),
        "disappeared only after {gone_after:?}"
    );
    // Its handle outlived its runtime: dropping it now has nothing left to revoke.
    drop(reg);
}

#[tokio::test]
async fn watch_keeps_its_set_while_etcd_is_down_and_resumes_after_restart() {
    support::init_logs();
    let etcd = EtcdServer::start();
    let endpoint = etcd.endpoint();
    let registry = connect(&endpoint).await;
    let _a = register(&registry, Instance::new("shop.Orders", "10.0.0.1:1")).await;
    let mut watch = registry.watch(Query::new("shop.Orders")).await.unwrap();
    assert_eq!(addrs(&watch.current()), ["10.0.0.1:1"]);

    let mut etcd = etcd;
    etcd.kill();
    // Clients keep working: the last set stays while the watch fails and retries.
    assert_quiet(&mut watch, Duration::from_millis(1500), "etcd is down").await;
    assert_eq!(addrs(&watch.current()), ["10.0.0.1:1"]);

    let etcd = restart(etcd).await;
    let restarted = Instant::now();
    // A new server comes up after the restart, through its own client.
    let other = connect(&endpoint).await;
    let _b = register(&other, Instance::new("shop.Orders", "10.0.0.2:1")).await;
    let (set, _) = wait_for(
        &mut watch,
        Duration::from_secs(10),
        "the new instance",
        |s| s.len() == 2,
    )
    .await;
    println!(
        "after the restart the watch saw a new instance in {:?}",
        restarted.elapsed()
    );
    assert_eq!(addrs(&set), ["10.0.0.1:1", "10.0.0.2:1"]);

    // Its own client works again too.
    let _c = register(&registry, Instance::new("shop.Orders", "10.0.0.3:1")).await;
    wait_for(&mut watch, Duration::from_secs(5), "three instances", |s| {
        s.len() == 3
    })
    .await;
    drop(etcd);
}

#[tokio::test]
async fn registration_survives_an_etcd_restart() {
    support::init_logs();
    let etcd = EtcdServer::start();
    let endpoint = etcd.endpoint();
    let registry = connect(&endpoint).await;
    let _a = register(&registry, Instance::new("shop.Orders", "10.0.0.1:1")).await;

    let mut etcd = etcd;
    etcd.kill();
    // Down for longer than the TTL, while the keep-alive keeps failing.
    tokio::time::sleep(TTL + Duration::from_secs(1)).await;
    let etcd = restart(etcd).await;
    let restarted = Instant::now();

    let watcher = connect(&endpoint).await;
    let mut watch = watcher.watch(Query::new("shop.Orders")).await.unwrap();
    let (_, _) = wait_for(&mut watch, Duration::from_secs(5), "the instance", |s| {
        s.len() == 1
    })
    .await;
    // etcd restores leases with a fresh TTL on restart; staying for two more TTLs proves the
    // keep-alive reconnected.
    assert_quiet(&mut watch, TTL * 2, "the registrant is alive").await;
    assert_eq!(addrs(&watch.current()), ["10.0.0.1:1"]);
    println!(
        "still registered {:?} after the restart",
        restarted.elapsed()
    );
    drop(etcd);
}

#[tokio::test]
async fn expired_lease_is_granted_again() {
    support::init_logs();
    let etcd = EtcdServer::start();
    let proxy = Proxy::start(etcd.addr()).await;
    let registrant = connect(&proxy.endpoint()).await;
    let _a = register(&registrant, Instance::new("shop.Orders", "10.0.0.1:1")).await;
    let watcher = connect(&etcd.endpoint()).await;
    let mut watch = watcher.watch(Query::new("shop.Orders")).await.unwrap();
    assert_eq!(watch.current().len(), 1);

    // Cut the registrant off until its lease expires.
    proxy.cut();
    let (_, expired) = wait_for(
        &mut watch,
        TTL + Duration::from_secs(3),
        "the lease to expire",
        |s| s.is_empty(),
    )
    .await;
    proxy.restore();
    let (set, back) = wait_for(
        &mut watch,
        Duration::from_secs(10),
        "the registrant to register again",
        |s| s.len() == 1,
    )
    .await;
    assert_eq!(addrs(&set), ["10.0.0.1:1"]);
    println!("cut off: expired after {expired:?}; back {back:?} after reconnecting");
    // The new lease is kept alive.
    assert_quiet(&mut watch, TTL + Duration::from_secs(1), "re-registered").await;
}

#[tokio::test]
async fn watch_lists_again_when_its_revision_was_compacted() {
    support::init_logs();
    let etcd = EtcdServer::start();
    let proxy = Proxy::start(etcd.addr()).await;
    let direct = connect(&etcd.endpoint()).await;
    let _a = register(&direct, Instance::new("shop.Orders", "10.0.0.1:1")).await;
    let b = register(&direct, Instance::new("shop.Orders", "10.0.0.2:1")).await;
    let watcher = connect(&proxy.endpoint()).await;
    let mut watch = watcher.watch(Query::new("shop.Orders")).await.unwrap();
    assert_eq!(addrs(&watch.current()), ["10.0.0.1:1", "10.0.0.2:1"]);

    // While the watcher is cut off, the set changes and the history is compacted away.
    proxy.cut();
    b.deregister().await;
    let _c = register(&direct, Instance::new("shop.Orders", "10.0.0.3:1")).await;
    let mut plain = Client::connect([etcd.endpoint()], None).await.unwrap();
    let revision = plain
        .get("/", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    plain
        .compact(revision, Some(CompactionOptions::new().with_physical()))
        .await
        .unwrap();
    assert_eq!(addrs(&watch.current()), ["10.0.0.1:1", "10.0.0.2:1"]);

    proxy.restore();
    let (set, took) = wait_for(
        &mut watch,
        Duration::from_secs(10),
        "the set after compaction",
        |s| addrs(s) == ["10.0.0.1:1", "10.0.0.3:1"],
    )
    .await;
    assert_eq!(set.len(), 2);
    println!("re-listed {took:?} after the proxy was restored");
    // And it follows changes again.
    let _d = register(&direct, Instance::new("shop.Orders", "10.0.0.4:1")).await;
    wait_for(&mut watch, Duration::from_secs(5), "a later change", |s| {
        s.len() == 3
    })
    .await;
}

#[tokio::test]
async fn unreachable_etcd_is_reported() {
    support::init_logs();
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let registry = connect(&format!("http://127.0.0.1:{port}")).await;
    let start = Instant::now();
    let err = registry
        .register(Instance::new("shop.Orders", "10.0.0.1:1"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("etcd"), "{err}");
    let err = registry.watch(Query::new("shop.Orders")).await.unwrap_err();
    assert!(err.to_string().contains("etcd"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(5));
    // Invalid instances are refused before etcd is asked.
    let err = registry
        .register(Instance::new("shop/Orders", "10.0.0.1:1"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("invalid instance"), "{err}");
}
