//! An API gateway (issue 19): outside callers send HTTP/JSON, the gateway finds the service they
//! name through a registry and calls one of its instances natively, under a deadline, the retry
//! budget and a circuit breaker per service. Server-side discovery, for callers (browsers,
//! partners, other languages) that cannot discover services themselves.
//!
//! ```text
//! cargo run --release --example gateway -- --listen 127.0.0.1:8080 [--etcd URL]
//!     [--config FILE] [--jwt-secret SECRET]
//! curl -s -X POST http://127.0.0.1:8080/shop.Inventory/Check -d '"sku-1"'
//! curl -s http://127.0.0.1:8080/api/stock/sku-1
//! ```
//!
//! It starts the quickstart's inventory service (`shop.Inventory`, stock sku-1: 42, sku-2: 0,
//! sku-3: 1) on a free loopback port and registers it in the in-process registry, or in etcd
//! with `--etcd URL` (feature `etcd`), where the gateway then also finds every other service
//! registered there. It serves `POST /{package.Service}/{Method}` (the mapping of
//! `docs/protocol.md` §18), the routes of `--config` (default `examples/gateway.json`: a cached
//! `GET /api/stock/{sku}`, and reservations that need a bearer token, HS256 with
//! `--jwt-secret`, a random one by default; a token for `demo-user` is printed at start),
//! `/healthz`, `/readyz`, `/metrics`, `/openapi.json` and the console page at `/`. Stops on
//! Ctrl-C.
//!
//! Built from library pieces: `rpc_discovery::gateway::Gateway` (routes, auth, quotas, cache,
//! CORS, metrics, console) over `rpc_discovery::DiscoveryRouter` (a call to the instances of
//! its service) and the client middleware of `rpc_core::middleware`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use examples::shop::{InventoryServer, Warehouse};
use rpc_core::middleware::auth::{JwtAuthenticator, JwtKey};
use rpc_core::middleware::{CircuitBreakerLayer, DeadlineLayer, RetryLayer, Stats};
use rpc_core::Server;
use rpc_discovery::gateway::{Gateway, GatewayConfig};
use rpc_discovery::{DiscoveryRouter, Instance, MemoryRegistry, Registry, ServeRegistered};
#[cfg(feature = "etcd")]
use rpc_discovery::{EtcdConfig, EtcdRegistry};
use tower::ServiceBuilder;

struct Args {
    listen: SocketAddr,
    etcd: Option<String>,
    config: Option<std::path::PathBuf>,
    jwt_secret: Option<String>,
}

const USAGE: &str =
    "usage: gateway [--listen ADDR] [--etcd URL] [--config FILE] [--jwt-secret SECRET]
  (defaults: --listen 127.0.0.1:8080, --config examples/gateway.json, a random secret)";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        listen: ([127, 0, 0, 1], 8080).into(),
        etcd: None,
        config: None,
        jwt_secret: None,
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
            "--config" => args.config = Some(value()?.into()),
            "--jwt-secret" => args.jwt_secret = Some(value()?),
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

    // The gateway: routes and HTTP/JSON → the service's instances, under deadline, retries
    // and breakers.
    let stats = Stats::new();
    let stack = ServiceBuilder::new()
        .layer(DeadlineLayer::new(Duration::from_secs(5)))
        .layer(RetryLayer::new().stats(stats.clone()))
        .layer(CircuitBreakerLayer::new().stats(stats.clone()))
        .into_inner();
    let config = match &args.config {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| format!("--config {}: {e}", path.display()))?,
        None => DEFAULT_CONFIG.to_owned(),
    };
    let config = GatewayConfig::from_json(&config)?;
    let secret = match args.jwt_secret.clone() {
        Some(secret) => secret,
        None => random_secret()?,
    };
    let authenticator = JwtAuthenticator::new(JwtKey::hs256(secret.as_bytes())?);
    let demo_token = demo_token(&secret)?;
    let gateway = Gateway::builder(DiscoveryRouter::new(registry.clone(), stack))
        .config(config)
        .authenticator(authenticator)
        .build()?;
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let addr = listener.local_addr()?;
    println!(
        "gateway: http://{addr} -> services in the {} registry; shop.Inventory at {backend_addr}",
        if args.etcd.is_some() {
            "etcd"
        } else {
            "in-process"
        }
    );
    println!("try: curl -s -X POST http://{addr}/shop.Inventory/Check -d '\"sku-1\"'");
    println!("     curl -s http://{addr}/api/stock/sku-1");
    println!(
        "     curl -s -H 'authorization: Bearer {demo_token}' -X POST http://{addr}/api/reservations -d '{{\"order_id\":1,\"sku\":\"sku-1\",\"quantity\":1}}'"
    );
    println!("     the console: http://{addr}/");

    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    gateway.serve(listener, ctrl_c).await?;
    println!("gateway: stopping");
    let _ = stop_tx.send(true);
    backend_task.await??;
    Ok(())
}

/// The default route table.
const DEFAULT_CONFIG: &str = include_str!("gateway.json");

/// 32 bytes of the operating system's randomness, in hex: the HS256 secret when none is given.
fn random_secret() -> Result<String, std::io::Error> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A token for `demo-user`, valid for an hour, signed with `secret` (HS256).
fn demo_token(secret: &str) -> Result<String, jsonwebtoken::errors::Error> {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        + 3600;
    let claims = serde_json::json!({"sub": "demo-user", "exp": exp});
    let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes())?;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &key,
    )
}
