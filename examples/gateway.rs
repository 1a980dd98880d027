//! An API gateway (issue 19): outside callers send HTTP/JSON, the gateway finds the service they
//! name through a registry and calls one of its instances natively, under a deadline, the retry
//! budget and a circuit breaker per endpoint. Server-side discovery, for callers (browsers,
//! partners, other languages) that cannot discover services themselves.
//!
//! ```text
//! cargo run --release --example gateway -- --listen 127.0.0.1:8080 [--etcd URL]
//! curl -s -X POST http://127.0.0.1:8080/shop.Inventory/Check -d '"sku-1"'
//! ```
//!
//! It starts the quickstart's inventory service (`shop.Inventory`, stock sku-1: 42, sku-2: 0,
//! sku-3: 1) on a free loopback port and registers it in the in-process registry, or in etcd
//! with `--etcd URL` (feature `etcd`), where the gateway then also finds every other service
//! registered there. Routes: `POST /{package.Service}/{Method}` (the mapping of
//! `docs/protocol.md` §18: JSON by default, statuses as HTTP statuses with a JSON error body),
//! `GET /healthz`. Stops on Ctrl-C.
//!
//! Built from library pieces: `rpc_core::http::HttpService` (HTTP to a call),
//! `rpc_discovery::DiscoveryRouter` (a call to the instances of its service) and the client
//! middleware of `rpc_core::middleware`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use examples::shop::{InventoryServer, Warehouse};
use http_body_util::Full;
use rpc_core::http::{HttpConfig, HttpService};
use rpc_core::middleware::{CircuitBreakerLayer, DeadlineLayer, RetryLayer, Stats};
use rpc_core::Server;
use rpc_discovery::{DiscoveryRouter, Instance, MemoryRegistry, Registry, ServeRegistered};
#[cfg(feature = "etcd")]
use rpc_discovery::{EtcdConfig, EtcdRegistry};
use tower::ServiceBuilder;

struct Args {
    listen: SocketAddr,
    etcd: Option<String>,
}

const USAGE: &str =
    "usage: gateway [--listen ADDR] [--etcd URL]   (default --listen 127.0.0.1:8080)";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        listen: ([127, 0, 0, 1], 8080).into(),
        etcd: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value\n{USAGE}"));
        match flag.as_str() {
            "--listen" => {
                let v = value()?;
                args.listen = v.parse().map_err(|e| format!("--listen {v:?}: {e}"))?;
            }
            "--etcd" => args.etcd = Some(value()?),
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(args)
}

async fn registry(etcd: Option<&str>) -> Result<Arc<dyn Registry>, Box<dyn std::error::Error>> {
    match etcd {
        #[cfg(feature = "etcd")]
        Some(url) => {
            let config = EtcdConfig::new().ttl(Duration::from_secs(5));
            Ok(Arc::new(EtcdRegistry::connect([url], config).await?))
        }
        #[cfg(not(feature = "etcd"))]
        Some(_) => {
            Err("--etcd needs the etcd feature: cargo run --example gateway --features etcd".into())
        }
        None => Ok(Arc::new(MemoryRegistry::global())),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    examples::init_tracing_or("info");
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let registry = registry(args.etcd.as_deref()).await?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };

    // The backend: the quickstart's inventory, registered once it listens.
    let backend = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let backend_addr = backend.local_addr()?;
    let stock = Warehouse::with_stock([("sku-1", 42), ("sku-2", 0), ("sku-3", 1)]);
    let serving = ServeRegistered::new(Instance::new("shop.Inventory", ""));
    let mut status = serving.status();
    let backend_task = {
        let registry = registry.clone();
        let signal = stopped(stop_rx.clone());
        tokio::spawn(async move {
            let server = Server::builder().add_service(InventoryServer::new(stock));
            serving
                .serve(server, backend, registry.as_ref(), signal)
                .await
        })
    };
    status.registered().await?;

    // The gateway: HTTP/JSON → the service's instances, under deadline, retries and breakers.
    let stats = Stats::new();
    let stack = ServiceBuilder::new()
        .layer(DeadlineLayer::new(Duration::from_secs(5)))
        .layer(RetryLayer::new().stats(stats.clone()))
        .layer(CircuitBreakerLayer::new().stats(stats.clone()))
        .into_inner();
    let router = DiscoveryRouter::new(registry.clone(), stack);
    let calls = HttpService::new(router, HttpConfig::new().max_body(1 << 20));
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    println!(
        "gateway: http://{} -> services in the {} registry; shop.Inventory at {backend_addr}",
        listener.local_addr()?,
        if args.etcd.is_some() {
            "etcd"
        } else {
            "in-process"
        }
    );
    println!(
        "try: curl -s -X POST http://{}/shop.Inventory/Check -d '\"sku-1\"'",
        listener.local_addr()?
    );

    let make = move |peer| {
        let calls = calls.clone().with_peer(peer);
        hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
            let calls = calls.clone();
            async move {
                if req.uri().path() == "/healthz" {
                    return Ok::<_, Infallible>(health());
                }
                hyper::service::Service::call(&calls, req).await
            }
        })
    };
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    rpc_core::http::serve(listener, make, ctrl_c).await?;
    println!("gateway: stopping");
    let _ = stop_tx.send(true);
    backend_task.await??;
    Ok(())
}

/// `GET /healthz`: the gateway is up.
fn health() -> http::Response<Full<Bytes>> {
    let mut resp = http::Response::new(Full::new(Bytes::from_static(b"{\"status\":\"ok\"}")));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}
