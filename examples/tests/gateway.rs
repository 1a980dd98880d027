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

// ---------------------------------------------------------------------------------------------
// The Gateway: routes, auth, quotas, cache, CORS, metrics, readiness, OpenAPI, the console
// ---------------------------------------------------------------------------------------------

const SECRET: &str = "a test secret of at least thirty-two bytes";

const CONFIG: &str = r#"{
  "max_body": 1024,
  "api_keys": { "k-partner": "partner" },
  "cors": { "allow_origins": ["https://shop.example"] },
  "routes": [
    { "method": "GET", "path": "/api/stock/{sku}", "call": "shop.Inventory/Check",
      "message": "sku", "cache": { "ttl_ms": 60000 } },
    { "method": "GET", "path": "/api/limited/{sku}", "call": "shop.Inventory/Check",
      "message": "sku", "quota": { "per_second": 0.01, "burst": 2 } },
    { "method": "POST", "path": "/api/orders/{order_id}/reservation",
      "call": "shop.Inventory/Reserve", "params": { "order_id": "integer" }, "auth": true }
  ]
}"#;

fn token(sub: &str, secret: &str) -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()).unwrap();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &serde_json::json!({"sub": sub, "exp": exp}),
        &key,
    )
    .unwrap()
}

/// An HTTP/1.1 answer: status, headers (lower-case names) and body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[&str],
    body: &str,
) -> Answer {
    let mut raw = format!(
        "{method} {path} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for h in headers {
        raw.push_str(h);
        raw.push_str("\r\n");
    }
    raw.push_str("\r\n");
    raw.push_str(body);
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(raw.as_bytes()).await.unwrap();
    let mut all = Vec::new();
    tokio::time::timeout(TIMEOUT, tcp.read_to_end(&mut all))
        .await
        .expect("answered")
        .unwrap();
    let text = String::from_utf8_lossy(&all).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap()[9..12].parse().unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Answer {
        status,
        headers,
        body: body.to_owned(),
    }
}

async fn full_gateway(
    registry: Arc<dyn Registry>,
) -> (
    SocketAddr,
    rpc_discovery::gateway::Gateway,
    oneshot::Sender<()>,
) {
    use rpc_core::middleware::auth::{JwtAuthenticator, JwtKey};
    use rpc_discovery::gateway::{Gateway, GatewayConfig};
    let stack = ServiceBuilder::new()
        .layer(DeadlineLayer::new(Duration::from_secs(2)))
        .layer(RetryLayer::new())
        .layer(CircuitBreakerLayer::new())
        .into_inner();
    let gateway = Gateway::builder(DiscoveryRouter::new(registry, stack))
        .config(GatewayConfig::from_json(CONFIG).unwrap())
        .authenticator(JwtAuthenticator::new(
            JwtKey::hs256(SECRET.as_bytes()).unwrap(),
        ))
        .build()
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(gateway.clone().serve(listener, async {
        let _ = stopped.await;
    }));
    (addr, gateway, stop)
}

async fn inventory(registry: &Arc<dyn Registry>) -> Backend {
    let stock = Warehouse::with_stock([("sku-1", 42), ("sku 2", 5)]);
    backend(
        registry,
        "shop.Inventory",
        Server::builder().add_service(InventoryServer::new(stock)),
    )
    .await
}

#[tokio::test]
async fn routes_map_paths_and_parameters_with_their_errors() {
    let registry: Arc<dyn Registry> = Arc::new(MemoryRegistry::new());
    let backend = inventory(&registry).await;
    let (addr, _gw, _stop) = full_gateway(registry).await;

    let a = request(addr, "GET", "/api/stock/sku-1", &[], "").await;
    assert_eq!(
        (a.status, &a.json()["available"]),
        (200, &serde_json::json!(42))
    );
    // A percent-encoded path parameter.
    let a = request(addr, "GET", "/api/stock/sku%202", &[], "").await;
    assert_eq!(
        (a.status, &a.json()["available"]),
        (200, &serde_json::json!(5))
    );
    // The backend's typed error, through the route.
    let a = request(addr, "GET", "/api/stock/nope", &[], "").await;
    assert_eq!(a.status, 404, "{}", a.body);
    assert_eq!(a.json()["details"]["UnknownSku"]["sku"], "nope");

    // An unknown route, a route's path with another method.
    let a = request(addr, "GET", "/api/nothing", &[], "").await;
    assert_eq!(a.status, 404);
    let a = request(addr, "DELETE", "/api/stock/sku-1", &[], "").await;
    assert_eq!((a.status, a.header("allow")), (405, Some("GET")));

    // A path parameter of the wrong type: 400 naming it.
    let auth = format!("authorization: Bearer {}", token("alice", SECRET));
    let a = request(
        addr,
        "POST",
        "/api/orders/x7/reservation",
        &[&auth],
        r#"{"sku":"sku-1","quantity":1}"#,
    )
    .await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.json()["message"]
        .as_str()
        .unwrap()
        .contains("\"order_id\""));
    // A body that is not JSON by its content type: 415.
    let a = request(
        addr,
        "POST",
        "/api/orders/7/reservation",
        &[&auth, "content-type: text/plain"],
        r#"{"sku":"sku-1","quantity":1}"#,
    )
    .await;
    assert_eq!(a.status, 415, "{}", a.body);
    // Malformed JSON in the body.
    let a = request(
        addr,
        "POST",
        "/api/orders/7/reservation",
        &[&auth],
        "{\"sku",
    )
    .await;
    assert_eq!(a.status, 400, "{}", a.body);
    // A body over the limit.
    let big = format!(r#"{{"sku":"{}"}}"#, "s".repeat(2000));
    let a = request(addr, "POST", "/api/orders/7/reservation", &[&auth], &big).await;
    assert_eq!(a.status, 413, "{}", a.body);
    // And the call itself: the order id from the path, the rest from the body.
    let a = request(
        addr,
        "POST",
        "/api/orders/7/reservation",
        &[&auth],
        r#"{"sku":"sku-1","quantity":2}"#,
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.json()["order_id"], 7);
    assert_eq!(a.json()["remaining"], 40);
    backend.stop().await;
}

#[tokio::test]
async fn tokens_quotas_and_the_cache_are_enforced() {
    let registry: Arc<dyn Registry> = Arc::new(MemoryRegistry::new());
    let backend = inventory(&registry).await;
    let (addr, gateway, _stop) = full_gateway(registry).await;
    let body = r#"{"sku":"sku-1","quantity":1}"#;
    let path = "/api/orders/1/reservation";

    // No token, a token signed with another secret: 401 with a Bearer challenge.
    let a = request(addr, "POST", path, &[], body).await;
    assert_eq!(
        (a.status, a.header("www-authenticate")),
        (401, Some("Bearer"))
    );
    let forged = format!(
        "authorization: Bearer {}",
        token("mallory", "another secret of at least thirty-two bytes")
    );
    let a = request(addr, "POST", path, &[&forged], body).await;
    assert_eq!(a.status, 401, "{}", a.body);
    let good = format!("authorization: Bearer {}", token("alice", SECRET));
    assert_eq!(
        request(addr, "POST", path, &[&good], body).await.status,
        200
    );
    // The method the route guards is not callable around it, through /{Service}/{Method}.
    let around = r#"{"order_id":3,"sku":"sku-1","quantity":1}"#;
    let a = request(addr, "POST", "/shop.Inventory/Reserve", &[], around).await;
    assert_eq!(a.status, 403, "{}", a.body);
    assert!(
        a.body.contains("/api/orders/{order_id}/reservation"),
        "{}",
        a.body
    );
    // Methods no route authenticates are.
    let a = request(addr, "POST", "/shop.Inventory/Check", &[], r#""sku-1""#).await;
    assert_eq!(a.status, 200, "{}", a.body);

    // An API key stands for a caller too; an unknown one is refused.
    let a = request(addr, "POST", path, &["x-api-key: k-partner"], body).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let a = request(addr, "POST", path, &["x-api-key: k-nobody"], body).await;
    assert_eq!(a.status, 401, "{}", a.body);

    // The quota: a burst of 2, then 429 with Retry-After.
    for _ in 0..2 {
        assert_eq!(
            request(addr, "GET", "/api/limited/sku-1", &[], "")
                .await
                .status,
            200
        );
    }
    let a = request(addr, "GET", "/api/limited/sku-1", &[], "").await;
    assert_eq!(a.status, 429, "{}", a.body);
    let wait: u64 = a
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!(wait >= 1);
    // Quotas are per caller: the partner's API key has a burst of its own.
    let partner = "x-api-key: k-partner";
    let a = request(addr, "GET", "/api/limited/sku-1", &[partner], "").await;
    assert_eq!(a.status, 200, "{}", a.body);

    // The cache: a miss, then hits that do not reach the backend (its stock moved meanwhile).
    let a = request(addr, "GET", "/api/stock/sku-1", &[], "").await;
    assert_eq!((a.status, a.header("x-cache")), (200, Some("miss")));
    let cached = a.json()["available"].clone();
    // Another order's reservation (a repeat of order 1's would hold nothing more).
    let other = "/api/orders/2/reservation";
    assert_eq!(
        request(addr, "POST", other, &[&good], body).await.status,
        200
    );
    let a = request(addr, "GET", "/api/stock/sku-1", &[], "").await;
    assert_eq!(
        (a.header("x-cache"), &a.json()["available"]),
        (Some("hit"), &cached)
    );
    // `Cache-Control: no-cache` goes to the backend, and sees the new level.
    let a = request(
        addr,
        "GET",
        "/api/stock/sku-1",
        &["cache-control: no-cache"],
        "",
    )
    .await;
    assert_eq!(a.header("x-cache"), Some("miss"));
    assert_ne!(a.json()["available"], cached);

    // Metadata headers may change the answer: such a request bypasses the cache.
    let a = request(
        addr,
        "GET",
        "/api/stock/sku-1",
        &["rpc-md-tenant: acme"],
        "",
    )
    .await;
    assert_eq!((a.status, a.header("x-cache")), (200, None));

    let metrics = gateway.metrics_text();
    assert!(metrics.contains("gateway_cache_hits_total 1"), "{metrics}");
    assert!(
        metrics.contains("gateway_cache_misses_total 2"),
        "{metrics}"
    );
    assert!(metrics
        .contains("gateway_requests_total{route=\"GET /api/limited/{sku}\",status=\"429\"} 1"));
    backend.stop().await;
}

#[tokio::test]
async fn cors_readiness_openapi_and_metrics_are_served() {
    let registry: Arc<dyn Registry> = Arc::new(MemoryRegistry::new());
    let backend = inventory(&registry).await;
    let (addr, _gw, _stop) = full_gateway(registry).await;

    // A preflight from an allowed origin, and one from another.
    let a = request(
        addr,
        "OPTIONS",
        "/api/stock/sku-1",
        &[
            "origin: https://shop.example",
            "access-control-request-method: GET",
        ],
        "",
    )
    .await;
    assert_eq!(a.status, 204);
    assert_eq!(
        a.header("access-control-allow-origin"),
        Some("https://shop.example")
    );
    assert!(a
        .header("access-control-allow-headers")
        .unwrap()
        .contains("authorization"));
    let a = request(
        addr,
        "OPTIONS",
        "/api/stock/sku-1",
        &[
            "origin: https://evil.example",
            "access-control-request-method: GET",
        ],
        "",
    )
    .await;
    assert_eq!(a.status, 403);
    assert_eq!(a.header("access-control-allow-origin"), None);
    let a = request(
        addr,
        "GET",
        "/api/stock/sku-1",
        &["origin: https://shop.example"],
        "",
    )
    .await;
    assert_eq!(
        a.header("access-control-allow-origin"),
        Some("https://shop.example")
    );

    let a = request(addr, "GET", "/healthz", &[], "").await;
    assert_eq!(a.status, 200);
    let a = request(addr, "GET", "/readyz", &[], "").await;
    assert_eq!(
        (a.status, &a.json()["ready"]),
        (200, &serde_json::json!(true))
    );
    let a = request(addr, "GET", "/openapi.json", &[], "").await;
    let doc = a.json();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"].get("/shop.Inventory/Check").is_some(), "{doc}");
    assert_eq!(doc["x-gateway-routes"][0]["path"], "/api/stock/{sku}");
    let a = request(addr, "GET", "/metrics", &[], "").await;
    assert!(a.header("content-type").unwrap().starts_with("text/plain"));
    assert!(a
        .body
        .contains("gateway_requests_total{route=\"healthz\",status=\"200\"} 1"));

    // The backend gone: not ready.
    backend.stop().await;
    let until = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let a = request(addr, "GET", "/readyz", &[], "").await;
        if a.status == 503 {
            assert_eq!(a.json()["ready"], false);
            break;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "still ready: {}",
            a.body
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The console page in a real headless browser (Debian's `chromium`, which `scripts/deps`
/// installs): it lists the inventory's methods and a call made from its form shows the reply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_page_lists_methods_and_tries_a_call_in_a_headless_browser() {
    let registry: Arc<dyn Registry> = Arc::new(MemoryRegistry::new());
    let backend = inventory(&registry).await;
    let (addr, _gw, _stop) = full_gateway(registry).await;
    let chromium = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|c| {
            std::process::Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .expect("chromium is installed (bash scripts/deps installs it)");
    let profile = std::env::temp_dir().join(format!("rpc-console-{}", std::process::id()));
    let url = format!("http://{addr}/#try=shop.Inventory/Check&body=%22sku-1%22");
    let out = tokio::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--virtual-time-budget=10000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(&url)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), out)
        .await
        .expect("chromium finishes")
        .expect("chromium runs");
    let _ = std::fs::remove_dir_all(&profile);
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(dom.contains("<code>shop.Inventory/Check</code>"), "{dom}");
    assert!(dom.contains("<code>shop.Inventory/Reserve</code>"), "{dom}");
    assert!(
        dom.contains(r#"data-status="200">{"sku":"sku-1","available":42}"#),
        "the reply of the call tried from the page: {dom}"
    );
    backend.stop().await;
}

/// A server-streaming method through the gateway as Server-Sent Events: the inventory's watch of
/// a stock level sends the current level first.
#[tokio::test]
async fn a_watch_streams_through_the_gateway_as_server_sent_events() {
    let registry: Arc<dyn Registry> = Arc::new(MemoryRegistry::new());
    let backend = inventory(&registry).await;
    let (addr, _gw, _stop) = full_gateway(registry).await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let raw = "POST /shop.Inventory/Watch HTTP/1.1\r\nHost: gw\r\nAccept: text/event-stream\r\n\
               Content-Type: application/json\r\nContent-Length: 7\r\n\r\n\"sku-1\"";
    tcp.write_all(raw.as_bytes()).await.unwrap();
    let mut seen = Vec::new();
    let until = tokio::time::Instant::now() + TIMEOUT;
    while !String::from_utf8_lossy(&seen).contains("\n\n") {
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout_at(until, tcp.read(&mut buf))
            .await
            .expect("the first event comes")
            .unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&seen);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("text/event-stream"), "{text}");
    assert!(
        text.contains(r#"data: {"sku":"sku-1","available":42}"#),
        "{text}"
    );
    drop(tcp);
    backend.stop().await;
}
