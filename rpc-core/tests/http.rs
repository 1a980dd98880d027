//! HTTP/JSON on a server's own port (issue 19, item 1, feature `http`): one TCP port serves
//! native and HTTP clients; HTTP/1.1 and HTTP/2 (h2c with prior knowledge); statuses, metadata,
//! deadlines and request ids as `docs/protocol.md` §18 says; and the bad input of the issue
//! (malformed JSON, wrong content type, unknown routes and methods, bodies over the limit,
//! request smuggling, header floods, clients that go away mid-call), each answered with its
//! status, never disturbing the other connections.
//!
//! HTTP/1.1 is spoken with raw bytes (so that hostile requests can be written as they are);
//! HTTP/2 with hyper's client. Every read is bounded by [`TIMEOUT`].

#![allow(missing_docs)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use rpc_core::http::HttpConfig;
use rpc_core::server::RawService;
use rpc_core::{Context, Endpoint, Request, Response, Sender, Server, Status};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

mod support;

use support::{serve, Running};

const TIMEOUT: Duration = Duration::from_secs(10);
const MAX_BODY: usize = 64 * 1024;

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Level {
    sku: String,
    available: u32,
}

#[derive(Debug, serde::Serialize, serde::Deserialize, thiserror::Error)]
enum StockError {
    #[error("unknown sku {sku}")]
    UnknownSku { sku: String },
    #[error("{0}")]
    #[serde(skip)]
    Rpc(Status),
}

impl rpc_core::ServiceError for StockError {
    fn into_status(self) -> Status {
        match self {
            StockError::Rpc(s) => s,
            e @ StockError::UnknownSku { .. } => Status::not_found(e.to_string()).with_details(&e),
        }
    }
    fn from_status(status: Status) -> Self {
        match status.details() {
            Ok(Some(e)) => e,
            _ => StockError::Rpc(status),
        }
    }
}

#[rpc_core::service(name = "shop.Stock")]
trait Stock {
    /// The level of one SKU.
    async fn check(&self, sku: String) -> Result<Level, StockError>;
    /// Never answers: for deadlines and cancellation.
    async fn hang(&self, note: String) -> Result<String, Status>;
    /// The value of a metadata key of the call.
    async fn metadata(&self, key: String) -> Result<Option<String>, Status>;
    /// Sends 1 to `n`, then ends; for `n` over 10, fails after 2.
    async fn count(&self, n: u32, out: Sender<u32>) -> Result<(), Status>;
}

struct Shelf {
    /// Told when a `hang` call starts.
    started: mpsc::UnboundedSender<String>,
    /// Told when a `hang` call's context is cancelled.
    cancelled: mpsc::UnboundedSender<String>,
}

impl Stock for Shelf {
    async fn check(&self, sku: String) -> Result<Level, StockError> {
        match sku.as_str() {
            "sku-1" => Ok(Level { sku, available: 42 }),
            _ => Err(StockError::UnknownSku { sku }),
        }
    }

    async fn hang(&self, note: String) -> Result<String, Status> {
        let token = Context::current()
            .and_then(|c| c.cancellation())
            .expect("a served call has a token");
        let tell = self.cancelled.clone();
        let _ = self.started.send(note.clone());
        // Outlives the handler (which is dropped): what a call made downstream would see.
        tokio::spawn(async move {
            token.cancelled().await;
            let _ = tell.send(note);
        });
        std::future::pending().await
    }

    async fn metadata(&self, key: String) -> Result<Option<String>, Status> {
        Ok(Context::current().and_then(|c| c.metadata().get_str(&key).map(str::to_owned)))
    }

    async fn count(&self, n: u32, mut out: Sender<u32>) -> Result<(), Status> {
        for i in 1..=n.min(10) {
            if n > 10 && i > 2 {
                return Err(Status::failed_precondition("counted too far"));
            }
            out.send(&i).await?;
        }
        Ok(())
    }
}

struct Fixture {
    addr: SocketAddr,
    running: Running,
    started: mpsc::UnboundedReceiver<String>,
    cancelled: mpsc::UnboundedReceiver<String>,
}

async fn start() -> Fixture {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, cancelled) = mpsc::unbounded_channel();
    let (started_tx, started) = mpsc::unbounded_channel();
    let echo = RawService::new("demo.Echo").method("Echo", |req: Request| async move {
        Ok(Response::new(req.into_body()))
    });
    let server = Server::builder()
        .http(HttpConfig::new().max_body(MAX_BODY))
        .handshake_timeout(Duration::from_secs(5))
        .add_service(StockServer::new(Shelf {
            started: started_tx,
            cancelled: tx,
        }))
        .add_service(echo);
    Fixture {
        addr,
        running: serve(server, listener),
        started,
        cancelled,
    }
}

/// An HTTP/1.1 answer.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// Writes `raw` on a new connection and reads everything until the server closes it (requests
/// say `Connection: close`), then parses the first answer.
async fn exchange(addr: SocketAddr, raw: &[u8]) -> Answer {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(raw).await.unwrap();
    let mut all = Vec::new();
    tokio::time::timeout(TIMEOUT, tcp.read_to_end(&mut all))
        .await
        .expect("the server closes the connection")
        .expect("read");
    parse(&all).unwrap_or_else(|| panic!("no HTTP answer in {:?}", String::from_utf8_lossy(&all)))
}

fn parse(all: &[u8]) -> Option<Answer> {
    let end = all.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&all[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let rest = &all[end + 4..];
    let len = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(rest.len())
        .min(rest.len());
    Some(Answer {
        status,
        headers,
        body: rest[..len].to_vec(),
    })
}

/// A POST with `Connection: close` and the given extra header lines.
fn post(path: &str, headers: &[&str], body: &[u8]) -> Vec<u8> {
    let mut raw = format!(
        "POST {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for h in headers {
        raw.push_str(h);
        raw.push_str("\r\n");
    }
    raw.push_str("\r\n");
    let mut raw = raw.into_bytes();
    raw.extend_from_slice(body);
    raw
}

const JSON: &str = "Content-Type: application/json";

#[tokio::test]
async fn one_port_serves_native_and_http_clients() {
    let f = start().await;
    // Native, on the port.
    let client = StockClient::new(Endpoint::tcp(f.addr).connect_lazy());
    let level = client.check("sku-1".into()).await.unwrap();
    assert_eq!(level.available, 42);

    // HTTP/1.1 on the same port, JSON both ways.
    let a = exchange(f.addr, &post("/shop.Stock/Check", &[JSON], br#""sku-1""#)).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.header("content-type"), Some("application/json"));
    assert_eq!(
        a.json(),
        serde_json::json!({"sku": "sku-1", "available": 42})
    );
    let id = a.header("x-request-id").expect("a request id is made");
    assert_eq!(id.len(), 32);

    // `curl -d` sends a form content type: read as JSON all the same.
    let form = "Content-Type: application/x-www-form-urlencoded";
    let a = exchange(f.addr, &post("/shop.Stock/Check", &[form], br#""sku-1""#)).await;
    assert_eq!(a.status, 200, "{a:?}");

    // MessagePack by content type, answered in MessagePack.
    let body = rmp_serde::to_vec("sku-1").unwrap();
    let mp = "Content-Type: application/msgpack";
    let a = exchange(f.addr, &post("/shop.Stock/Check", &[mp], &body)).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.header("content-type"), Some("application/msgpack"));
    let level: Level = rmp_serde::from_slice(&a.body).unwrap();
    assert_eq!(level.available, 42);

    // The native connection still works after all that.
    assert_eq!(client.check("sku-1".into()).await.unwrap().available, 42);
    f.running.shutdown().await;
}

#[tokio::test]
async fn http2_with_prior_knowledge_is_served_too() {
    let f = start().await;
    let tcp = TcpStream::connect(f.addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    for _ in 0..3 {
        let req = http::Request::post("http://test/shop.Stock/Check")
            .header("content-type", "application/json")
            .header("x-request-id", "req-7")
            .body(Full::new(Bytes::from_static(br#""sku-1""#)))
            .unwrap();
        let resp = tokio::time::timeout(TIMEOUT, send.send_request(req))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["x-request-id"], "req-7");
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let level: Level = serde_json::from_slice(&body).unwrap();
        assert_eq!(level.available, 42);
    }
    f.running.shutdown().await;
}

#[tokio::test]
async fn failed_calls_map_to_http_statuses_with_json_bodies() {
    let f = start().await;
    // A typed error: 404 from NotFound, its details as JSON.
    let a = exchange(f.addr, &post("/shop.Stock/Check", &[JSON], br#""sku-404""#)).await;
    assert_eq!(a.status, 404, "{a:?}");
    assert_eq!(a.header("rpc-status"), Some("5"));
    let body = a.json();
    assert_eq!(body["code"], 5);
    assert_eq!(body["status"], "NotFound");
    assert_eq!(
        body["details"],
        serde_json::json!({"UnknownSku": {"sku": "sku-404"}})
    );

    // Unknown method and service: 404.
    let a = exchange(f.addr, &post("/shop.Stock/Nope", &[JSON], b"1")).await;
    assert_eq!(
        (a.status, a.json()["status"].as_str()),
        (404, Some("Unimplemented"))
    );
    let a = exchange(f.addr, &post("/shop.Nothing/Check", &[JSON], b"1")).await;
    assert_eq!(a.status, 404, "{a:?}");
    // Not a method path at all.
    let a = exchange(f.addr, &post("/favicon.ico", &[JSON], b"")).await;
    assert_eq!(a.status, 404, "{a:?}");

    // Another HTTP method: 405, Allow: POST.
    let raw = b"GET /shop.Stock/Check HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    let a = exchange(f.addr, raw).await;
    assert_eq!((a.status, a.header("allow")), (405, Some("POST")));

    // Malformed JSON: 400 InvalidArgument, naming what is wrong.
    let a = exchange(f.addr, &post("/shop.Stock/Check", &[JSON], b"{\"sku")).await;
    assert_eq!(a.status, 400, "{a:?}");
    assert_eq!(a.json()["status"], "InvalidArgument");
    // A JSON value of the wrong type.
    let a = exchange(f.addr, &post("/shop.Stock/Check", &[JSON], b"17")).await;
    assert_eq!(a.status, 400, "{a:?}");

    // A content type that names no codec: 415.
    let a = exchange(
        f.addr,
        &post("/shop.Stock/Check", &["Content-Type: text/xml"], b"<a/>"),
    )
    .await;
    assert_eq!(a.status, 415, "{a:?}");
    assert!(a.json()["message"]
        .as_str()
        .unwrap()
        .contains("application/json"));

    // A malformed deadline: 400.
    let a = exchange(
        f.addr,
        &post(
            "/shop.Stock/Check",
            &[JSON, "rpc-timeout: soon"],
            br#""sku-1""#,
        ),
    )
    .await;
    assert_eq!(a.status, 400, "{a:?}");
    f.running.shutdown().await;
}

#[tokio::test]
async fn bodies_over_the_limit_are_413_announced_or_chunked() {
    let f = start().await;
    let big = vec![b'1'; MAX_BODY + 1];
    let a = exchange(f.addr, &post("/demo.Echo/Echo", &[JSON], &big)).await;
    assert_eq!(a.status, 413, "{a:?}");

    // Chunked, with no length announced: cut off at the limit.
    let mut raw = b"POST /demo.Echo/Echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\
        Transfer-Encoding: chunked\r\nContent-Type: application/octet-stream\r\n\r\n"
        .to_vec();
    for _ in 0..(MAX_BODY / 4096 + 2) {
        raw.extend_from_slice(b"1000\r\n");
        raw.extend_from_slice(&[b'x'; 4096]);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    let a = exchange(f.addr, &raw).await;
    assert_eq!(a.status, 413, "{a:?}");

    // Just under the limit is served, raw bytes echoed.
    let fits = vec![b'y'; MAX_BODY];
    let ct = "Content-Type: application/octet-stream";
    let a = exchange(f.addr, &post("/demo.Echo/Echo", &[ct], &fits)).await;
    assert_eq!((a.status, a.body.len()), (200, MAX_BODY));
    f.running.shutdown().await;
}

#[tokio::test]
async fn metadata_request_ids_and_deadlines_come_from_headers() {
    let f = start().await;
    let a = exchange(
        f.addr,
        &post(
            "/shop.Stock/Metadata",
            &[JSON, "rpc-md-tenant: acme", "x-other: dropped"],
            br#""tenant""#,
        ),
    )
    .await;
    assert_eq!((a.status, a.json()), (200, serde_json::json!("acme")));
    let a = exchange(
        f.addr,
        &post(
            "/shop.Stock/Metadata",
            &[JSON, "x-other: dropped"],
            br#""x-other""#,
        ),
    )
    .await;
    assert_eq!(
        a.json(),
        serde_json::Value::Null,
        "other headers are not passed"
    );
    let a = exchange(
        f.addr,
        &post(
            "/shop.Stock/Metadata",
            &[JSON, "X-Request-Id: abc-123"],
            br#""request-id""#,
        ),
    )
    .await;
    assert_eq!(a.json(), serde_json::json!("abc-123"));
    assert_eq!(a.header("x-request-id"), Some("abc-123"));
    let a = exchange(
        f.addr,
        &post(
            "/shop.Stock/Metadata",
            &[JSON, "Traceparent: 00-ab-cd-01"],
            br#""traceparent""#,
        ),
    )
    .await;
    assert_eq!(a.json(), serde_json::json!("00-ab-cd-01"));

    // A call that never answers ends at the deadline its header gives: 504.
    let a = exchange(
        f.addr,
        &post(
            "/shop.Stock/Hang",
            &[JSON, "rpc-timeout: 50m"],
            br#""deadline""#,
        ),
    )
    .await;
    assert_eq!(a.status, 504, "{a:?}");
    assert_eq!(a.json()["status"], "DeadlineExceeded");
    f.running.shutdown().await;
}

#[tokio::test]
async fn a_client_that_goes_away_cancels_its_call() {
    let mut f = start().await;
    let mut tcp = TcpStream::connect(f.addr).await.unwrap();
    tcp.write_all(&post("/shop.Stock/Hang", &[JSON], br#""gone""#))
        .await
        .unwrap();
    // Once the call runs, the client leaves.
    let started = tokio::time::timeout(TIMEOUT, f.started.recv())
        .await
        .unwrap();
    assert_eq!(started.as_deref(), Some("gone"));
    drop(tcp);
    let note = tokio::time::timeout(TIMEOUT, f.cancelled.recv())
        .await
        .expect("the call's token is cancelled when its client goes away");
    assert_eq!(note.as_deref(), Some("gone"));
    f.running.shutdown().await;
}

#[tokio::test]
async fn smuggling_attempts_and_header_floods_are_refused() {
    let f = start().await;
    // Content-Length and Transfer-Encoding together, with a second request hidden behind what
    // Content-Length would call the body: hyper reads the body as chunked, as RFC 9112 §6.1
    // says, answers that one request and closes the connection, so the hidden request never
    // runs as one.
    let raw = b"POST /demo.Echo/Echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\
        Transfer-Encoding: chunked\r\nContent-Type: application/octet-stream\r\n\r\n\
        0\r\n\r\nPOST /shop.Stock/Check HTTP/1.1\r\nHost: t\r\nContent-Length: 7\r\n\r\n\"sku-1\"";
    let mut tcp = TcpStream::connect(f.addr).await.unwrap();
    tcp.write_all(raw).await.unwrap();
    let mut all = Vec::new();
    let _ = tokio::time::timeout(TIMEOUT, tcp.read_to_end(&mut all)).await;
    let text = String::from_utf8_lossy(&all);
    assert_eq!(text.matches("HTTP/1.1 ").count(), 1, "one answer: {text:?}");
    assert!(
        text.starts_with("HTTP/1.1 400") || text.contains("connection: close"),
        "conflicting framing is refused or ends the connection: {text:?}"
    );
    assert!(
        !text.contains("available"),
        "the smuggled request never ran: {text:?}"
    );

    // Two different Content-Lengths.
    let raw = b"POST /demo.Echo/Echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab";
    let mut tcp = TcpStream::connect(f.addr).await.unwrap();
    tcp.write_all(raw).await.unwrap();
    let mut all = Vec::new();
    let _ = tokio::time::timeout(TIMEOUT, tcp.read_to_end(&mut all)).await;
    assert!(String::from_utf8_lossy(&all).starts_with("HTTP/1.1 400"));

    // A flood of headers: 431, not a server that holds them all.
    let mut flood =
        String::from("POST /demo.Echo/Echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\n");
    for i in 0..500 {
        flood.push_str(&format!("x-flood-{i}: {}\r\n", "v".repeat(32)));
    }
    flood.push_str("Content-Length: 0\r\n\r\n");
    let a = exchange(f.addr, flood.as_bytes()).await;
    assert_eq!(a.status, 431, "{a:?}");

    // Garbage that is neither protocol: the connection closes; others are served.
    let mut tcp = TcpStream::connect(f.addr).await.unwrap();
    tcp.write_all(b"\x16\x03\x01\x00\x05hello\r\n\r\n")
        .await
        .unwrap();
    let mut all = Vec::new();
    let _ = tokio::time::timeout(TIMEOUT, tcp.read_to_end(&mut all)).await;
    let client = StockClient::new(Endpoint::tcp(f.addr).connect_lazy());
    assert_eq!(client.check("sku-1".into()).await.unwrap().available, 42);
    let a = exchange(f.addr, &post("/shop.Stock/Check", &[JSON], br#""sku-1""#)).await;
    assert_eq!(a.status, 200);
    f.running.shutdown().await;
}

#[tokio::test]
async fn servers_without_http_refuse_it_as_before() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let running = serve(Server::builder().add_service(support::echo()), listener);
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(&post("/demo.Echo/Echo", &[JSON], b"1"))
        .await
        .unwrap();
    let mut all = Vec::new();
    let _ = tokio::time::timeout(TIMEOUT, tcp.read_to_end(&mut all)).await;
    assert!(!String::from_utf8_lossy(&all).starts_with("HTTP/"));
    running.shutdown().await;
}

#[tokio::test]
async fn server_streams_are_served_as_server_sent_events() {
    let f = start().await;
    let events = "Accept: text/event-stream";
    let a = exchange(f.addr, &post("/shop.Stock/Count", &[JSON, events], b"3")).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.header("content-type"), Some("text/event-stream"));
    let body = String::from_utf8_lossy(&a.body).into_owned();
    let at = |needle: &str| {
        body.find(needle)
            .unwrap_or_else(|| panic!("{needle:?} in {body:?}"))
    };
    assert!(at("data: 1\n\n") < at("data: 2\n\n"));
    assert!(at("data: 2\n\n") < at("data: 3\n\n"));
    assert!(at("data: 3\n\n") < at("event: end\ndata: {}\n\n"));

    // A stream that fails midway ends with an error event carrying the status.
    let a = exchange(f.addr, &post("/shop.Stock/Count", &[JSON, events], b"99")).await;
    let body = String::from_utf8_lossy(&a.body).into_owned();
    assert!(
        body.contains("data: 2\n\n") && !body.contains("data: 3"),
        "{body:?}"
    );
    assert!(body.contains("event: error\ndata: {\"code\":9"), "{body:?}");

    // A unary method asked for events: answered as a unary call.
    let a = exchange(
        f.addr,
        &post("/shop.Stock/Check", &[JSON, events], br#""sku-1""#),
    )
    .await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.json()["available"], 42);
    // Events weighted zero: the stream is not opened (a streaming method called as unary is
    // refused as the wrong shape).
    let no = "Accept: text/event-stream;q=0";
    let a = exchange(f.addr, &post("/shop.Stock/Count", &[JSON, no], b"3")).await;
    assert_eq!(a.status, 404, "{a:?}");
    // Events carry JSON only.
    let mp = "Content-Type: application/msgpack";
    let a = exchange(f.addr, &post("/shop.Stock/Count", &[mp, events], &[3])).await;
    assert_eq!(a.status, 406, "{a:?}");
    f.running.shutdown().await;
}
