//! The gateway's pieces together (issue 19, item 2 and its bad input): `HttpService` over a
//! `DiscoveryRouter` over the in-process registry, served by `rpc_core::http::serve` on real
//! TCP, in front of the quickstart's inventory and a service that never answers. A backend that
//! is down is `503` at once, one that times out `504`, and a client that goes away mid-request
//! cancels the backend call.

#![cfg(feature = "http")]
#![allow(missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use examples::shop::{InventoryServer, Warehouse};
use rpc_core::http::{HttpConfig, HttpService};
use rpc_core::middleware::{CircuitBreakerLayer, DeadlineLayer, RetryLayer};
use rpc_core::server::RawService;
use rpc_core::{Context, Request, Server, Status};
use rpc_discovery::{DiscoveryRouter, Instance, MemoryRegistry, Registry, ServeRegistered};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tower::ServiceBuilder;

const TIMEOUT: Duration = Duration::from_secs(10);

struct Backend {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Backend {
    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }
}

async fn backend(registry: &Arc<dyn Registry>, name: &str, server: Server) -> Backend {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let serving = ServeRegistered::new(Instance::new(name, ""));
    let mut status = serving.status();
    let (stop, stopped) = oneshot::channel::<()>();
    let registry = registry.clone();
    let task = tokio::spawn(async move {
        serving
            .serve(server, listener, registry.as_ref(), async {
                let _ = stopped.await;
            })
            .await
    });
    status.registered().await.unwrap();
    Backend { stop, task }
}

/// The gateway on a free port; dropping the sender stops it.
async fn gateway(
    registry: Arc<dyn Registry>,
    deadline: Duration,
) -> (SocketAddr, oneshot::Sender<()>) {
    let stack = ServiceBuilder::new()
        .layer(DeadlineLayer::new(deadline))
        .layer(RetryLayer::new())
        .layer(CircuitBreakerLayer::new())
        .into_inner();
    let calls = HttpService::new(DiscoveryRouter::new(registry, stack), HttpConfig::new());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(rpc_core::http::serve(
        listener,
        move |peer| calls.clone().with_peer(peer),
        async {
            let _ = stopped.await;
        },
    ));
    (addr, stop)
}

/// POSTs `body` as JSON and returns the status and body (the request says `Connection: close`).
async fn post(addr: SocketAddr, path: &str, body: &str) -> (u16, serde_json::Value) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let raw = format!(
        "POST {path} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(raw.as_bytes()).await.unwrap();
    let mut all = Vec::new();
    tokio::time::timeout(TIMEOUT, tcp.read_to_end(&mut all))
        .await
        .expect("answered")
        .unwrap();
    let text = String::from_utf8_lossy(&all);
    let status = text[9..12].parse().unwrap();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
    (
        status,
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test]
async fn the_gateway_calls_backends_it_finds_in_the_registry() {
    let registry: Arc<dyn Registry> = Arc::new(MemoryRegistry::new());
    let stock = Warehouse::with_stock([("sku-1", 42)]);
    let inventory = backend(
        &registry,
        "shop.Inventory",
        Server::builder().add_service(InventoryServer::new(stock)),
    )
    .await;
    let (addr, _stop) = gateway(registry.clone(), Duration::from_secs(2)).await;

    let (status, body) = post(addr, "/shop.Inventory/Check", r#""sku-1""#).await;
    assert_eq!((status, &body["available"]), (200, &serde_json::json!(42)));
    // A typed error of the backend keeps its details through the gateway.
    let (status, body) = post(addr, "/shop.Inventory/Check", r#""sku-404""#).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["details"]["UnknownSku"]["sku"], "sku-404");
    // A service nobody registered: 503 at once.
    let (status, body) = post(addr, "/shop.Nobody/Check", r#""x""#).await;
    assert_eq!(status, 503, "{body}");

    // The backend goes away (deregistered, then stopped): 503, not a hang.
    inventory.stop().await;
    let (status, body) =
        tokio::time::timeout(TIMEOUT, post(addr, "/shop.Inventory/Check", r#""sku-1""#))
            .await
            .expect("no hang");
    assert_eq!(status, 503, "{body}");
}

#[tokio::test]
async fn a_slow_backend_is_504_and_a_client_that_leaves_cancels_the_backend_call() {
    let registry: Arc<dyn Registry> = Arc::new(MemoryRegistry::new());
    let (started_tx, mut started) = mpsc::unbounded_channel::<()>();
    let (cancelled_tx, mut cancelled) = mpsc::unbounded_channel::<()>();
    let slow = RawService::new("demo.Slow").method("Hang", move |_req: Request| {
        let (started_tx, cancelled_tx) = (started_tx.clone(), cancelled_tx.clone());
        async move {
            let token = Context::current().and_then(|c| c.cancellation()).unwrap();
            let _ = started_tx.send(());
            tokio::spawn(async move {
                token.cancelled().await;
                let _ = cancelled_tx.send(());
            });
            std::future::pending::<Result<rpc_core::Response, Status>>().await
        }
    });
    let server = Server::builder()
        .drain_timeout(Duration::from_secs(1))
        .add_service(slow);
    let backend = backend(&registry, "demo.Slow", server).await;
    let (addr, _stop) = gateway(registry.clone(), Duration::from_millis(300)).await;

    // The gateway's 300 ms deadline: 504, and the backend's call is cancelled.
    let (status, body) = post(addr, "/demo.Slow/Hang", "null").await;
    assert_eq!(status, 504, "{body}");
    tokio::time::timeout(TIMEOUT, cancelled.recv())
        .await
        .expect("the timed-out call is cancelled on the backend");
    started.recv().await.unwrap();

    // A client that leaves before the answer (long before a minute's deadline): the backend
    // call is cancelled.
    let (addr, _stop) = gateway(registry, Duration::from_secs(60)).await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let raw = "POST /demo.Slow/Hang HTTP/1.1\r\nHost: gw\r\nContent-Length: 4\r\n\r\nnull";
    tcp.write_all(raw.as_bytes()).await.unwrap();
    tokio::time::timeout(TIMEOUT, started.recv())
        .await
        .expect("the call reaches the backend");
    drop(tcp);
    tokio::time::timeout(TIMEOUT, cancelled.recv())
        .await
        .expect("the backend call is cancelled when the HTTP client leaves");
    backend.stop().await;
}
