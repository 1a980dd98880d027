//! The etcd registry when etcd's history goes back (restored from a backup, or replaced by a new
//! cluster on the same address), and serving while etcd is unreachable; against a real,
//! throwaway etcd (see `support`).
//!
//! Needs the `etcd` binary (Debian package `etcd-server`); `.ci/run` installs it.

#![cfg(feature = "etcd")]
#![allow(missing_docs)]

mod support;

use std::time::{Duration, Instant};

use etcd_client::Client;
use rpc_core::server::RawService;
use rpc_core::transport::memory::MemoryListener;
use rpc_core::{Endpoint, Request, Response, Server};
use rpc_discovery::{
    serve_registered, EndpointSet, EtcdConfig, EtcdRegistry, Instance, Query, Registry, Watch,
};
use support::{EtcdServer, Proxy};

const SVC: &str = "shop.Orders";

async fn connect(endpoint: &str) -> EtcdRegistry {
    EtcdRegistry::connect([endpoint], EtcdConfig::new().ttl(Duration::from_secs(2)))
        .await
        .expect("connecting to etcd")
}

fn addrs(set: &EndpointSet) -> Vec<String> {
    set.instances().iter().map(|i| i.addr.clone()).collect()
}

/// The key of the instance of `SVC` at `addr`, in the default layout.
fn key(addr: &str) -> String {
    format!("/rpc/default/{SVC}/default/{addr}")
}

/// Puts the instance at `addr` without a lease (it stays until deleted).
async fn put(client: &mut Client, addr: &str) {
    let value = serde_json::to_vec(&Instance::new(SVC, addr)).unwrap();
    client.put(key(addr), value, None).await.expect("put");
}

/// Waits until the watch's addresses are `want`, at most `limit`; returns how long it took.
async fn wait_for(watch: &mut Watch, limit: Duration, want: &[&str]) -> Duration {
    let start = Instant::now();
    let deadline = tokio::time::Instant::from_std(start + limit);
    let mut set = watch.current();
    while addrs(&set) != want {
        match tokio::time::timeout_at(deadline, watch.changed()).await {
            Ok(Ok(s)) => set = s,
            Ok(Err(e)) => panic!("the watch ended while waiting for {want:?}: {e}"),
            Err(_) => panic!(
                "timed out after {limit:?} waiting for {want:?}; the watch still has {:?}",
                addrs(&set)
            ),
        }
    }
    start.elapsed()
}

/// Runs a blocking step on etcd (stopping, copying, starting) off the runtime.
async fn on_etcd(mut etcd: EtcdServer, step: fn(&mut EtcdServer)) -> EtcdServer {
    tokio::task::spawn_blocking(move || {
        step(&mut etcd);
        etcd
    })
    .await
    .expect("etcd step")
}

#[tokio::test]
async fn a_watch_lists_again_when_etcd_is_restored_from_a_backup() {
    support::init_logs();
    let etcd = EtcdServer::start();
    let endpoint = etcd.endpoint();
    let mut plain = Client::connect([&endpoint], None).await.unwrap();
    put(&mut plain, "10.0.0.1:1").await;
    let registry = connect(&endpoint).await;
    let mut watch = registry.watch(Query::new(SVC)).await.unwrap();
    assert_eq!(addrs(&watch.current()), ["10.0.0.1:1"]);

    // A backup of this moment; then the set moves on (and the revision with it).
    let etcd = on_etcd(etcd, EtcdServer::backup).await;
    let mut plain = Client::connect([&endpoint], None).await.unwrap();
    put(&mut plain, "10.0.0.2:1").await;
    put(&mut plain, "10.0.0.3:1").await;
    plain.delete(key("10.0.0.1:1"), None).await.unwrap();
    wait_for(
        &mut watch,
        Duration::from_secs(10),
        &["10.0.0.2:1", "10.0.0.3:1"],
    )
    .await;

    // etcd is restored from the backup: its revision goes back, and the watch must not wait
    // for the old revision to come round again.
    let etcd = on_etcd(etcd, EtcdServer::restore_backup).await;
    let took = wait_for(&mut watch, Duration::from_secs(10), &["10.0.0.1:1"]).await;
    println!("the watch published the restored set {took:?} after etcd came back");

    // And it follows the restored store.
    let mut plain = Client::connect([&endpoint], None).await.unwrap();
    put(&mut plain, "10.0.0.4:1").await;
    wait_for(
        &mut watch,
        Duration::from_secs(10),
        &["10.0.0.1:1", "10.0.0.4:1"],
    )
    .await;
    drop(etcd);
}

#[tokio::test]
async fn a_watch_lists_again_when_a_new_cluster_answers_at_the_same_address() {
    support::init_logs();
    let etcd = EtcdServer::start();
    let proxy = Proxy::start(etcd.addr()).await;
    let mut plain = Client::connect([etcd.endpoint()], None).await.unwrap();
    put(&mut plain, "10.0.0.1:1").await;
    put(&mut plain, "10.0.0.2:1").await;
    let watcher = connect(&proxy.endpoint()).await;
    let mut watch = watcher.watch(Query::new(SVC)).await.unwrap();
    assert_eq!(addrs(&watch.current()), ["10.0.0.1:1", "10.0.0.2:1"]);

    // While the watcher is cut off, a new cluster replaces the old one and gets past the
    // revision the watch had seen: only its cluster id tells it apart.
    proxy.cut();
    let etcd = on_etcd(etcd, EtcdServer::replace_with_new_cluster).await;
    let mut plain = Client::connect([etcd.endpoint()], None).await.unwrap();
    let fresh = [
        "10.0.1.1:1",
        "10.0.1.2:1",
        "10.0.1.3:1",
        "10.0.1.4:1",
        "10.0.1.5:1",
    ];
    for addr in fresh {
        put(&mut plain, addr).await;
    }
    proxy.restore();
    let took = wait_for(&mut watch, Duration::from_secs(10), &fresh).await;
    println!("the watch published the new cluster's set {took:?} after reconnecting");
    drop(etcd);
}

#[tokio::test]
async fn a_server_serves_while_etcd_is_unreachable_and_registers_when_it_is_back() {
    support::init_logs();
    let etcd = EtcdServer::start();
    let proxy = Proxy::start(etcd.addr()).await;
    proxy.cut();
    let registrant = connect(&proxy.endpoint()).await;
    let watcher = connect(&etcd.endpoint()).await;
    let mut watch = watcher.watch(Query::new(SVC)).await.unwrap();

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(async move {
        let echo = RawService::new(SVC).method("Echo", |req: Request| async move {
            Ok(Response::new(req.into_body()))
        });
        let server = Server::builder().add_service(echo);
        let listener = MemoryListener::bind("etcd-unreachable").unwrap();
        let signal = async {
            stopped.await.ok();
        };
        let instance = Instance::new(SVC, "");
        serve_registered(
            server,
            listener,
            &registrant,
            instance,
            Duration::ZERO,
            signal,
        )
        .await
    });

    // It answers while unregistered.
    let channel = Endpoint::memory("etcd-unreachable").connect_lazy();
    support::eventually(Duration::from_secs(10), "the server to answer", || async {
        channel
            .unary(Request::new("shop.Orders/Echo", "hi"))
            .await
            .is_ok()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(watch.current().is_empty());
    assert!(!serving.is_finished());

    proxy.restore();
    let took = wait_for(
        &mut watch,
        Duration::from_secs(20),
        &["memory://etcd-unreachable"],
    )
    .await;
    println!("registered {took:?} after etcd became reachable");

    stop.send(()).unwrap();
    serving.await.unwrap().unwrap();
    wait_for(&mut watch, Duration::from_secs(5), &[]).await;
    drop(etcd);
}
