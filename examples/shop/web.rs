//! The shop's web front (feature `http`, issue 19): an API gateway in front of the services, found
//! through the shop's registry, and the HTTP client the simulated customers browse it with.
//!
//! Customers read the catalogue and stock levels over HTTP/JSON through the gateway
//! ([`ROUTES`]: cached product searches and pages, a quota per caller); everything else they do
//! goes to the services natively.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use rpc_core::{Code, Status};
use rpc_discovery::gateway::{Gateway, GatewayConfig, GatewayStats};
use rpc_discovery::DiscoveryRouter;
use serde::de::DeserializeOwned;
use tokio::sync::oneshot;

use super::catalogue::{Product, Products};
use super::inventory::StockLevel;
use super::wiring::Wiring;

/// The public routes: product search and pages (cached for two seconds: the catalogue changes
/// rarely) and stock levels (never cached), each under a generous quota per caller.
pub const ROUTES: &str = r#"{
  "timeout_ms": 2000,
  "routes": [
    { "method": "GET", "path": "/api/products", "call": "shop.Catalogue/Search",
      "params": { "q": "string" }, "message": "q",
      "cache": { "ttl_ms": 2000 }, "quota": { "per_second": 100000, "burst": 10000 } },
    { "method": "GET", "path": "/api/products/{sku}", "call": "shop.Catalogue/Get",
      "message": "sku", "cache": { "ttl_ms": 2000 } },
    { "method": "GET", "path": "/api/stock/{sku}", "call": "shop.Inventory/Check",
      "message": "sku" }
  ]
}"#;

/// The gateway, serving on a free loopback port until stopped.
#[derive(Debug)]
pub struct Web {
    addr: SocketAddr,
    gateway: Gateway,
    stop: Option<oneshot::Sender<()>>,
}

impl Web {
    /// Starts the gateway over `wiring`'s registry and connections (plain or mutual TLS).
    ///
    /// # Errors
    /// The route table's or the listener's.
    pub async fn start(wiring: &Wiring) -> Result<Web, Box<dyn std::error::Error + Send + Sync>> {
        let router = DiscoveryRouter::new(wiring.registry().clone(), wiring.layers())
            .balance(wiring.balance_config());
        let gateway = Gateway::builder(router)
            .config(GatewayConfig::from_json(ROUTES)?)
            .build()?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(gateway.clone().serve(listener, async {
            let _ = stopped.await;
        }));
        Ok(Web {
            addr,
            gateway,
            stop: Some(stop),
        })
    }

    /// A client of the gateway.
    pub fn client(&self) -> WebClient {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        WebClient {
            base: format!("http://{}", self.addr),
            http: Client::builder(hyper_util::rt::TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .build(connector),
        }
    }

    /// What the gateway answered so far.
    pub fn stats(&self) -> GatewayStats {
        self.gateway.stats()
    }
}

impl Drop for Web {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The customers' HTTP client of the gateway (connections pooled).
#[derive(Clone, Debug)]
pub struct WebClient {
    base: String,
    http: Client<HttpConnector, Empty<Bytes>>,
}

impl WebClient {
    /// `GET /api/products?q=…`.
    ///
    /// # Errors
    /// The status the gateway answered with, or `Unavailable` when it could not be reached.
    pub async fn search(&self, query: &str) -> Result<Products, Status> {
        self.get(&format!("/api/products?q={}", encode(query)))
            .await
    }

    /// `GET /api/products/{sku}`.
    ///
    /// # Errors
    /// As [`WebClient::search`].
    pub async fn product(&self, sku: &str) -> Result<Product, Status> {
        self.get(&format!("/api/products/{}", encode(sku))).await
    }

    /// `GET /api/stock/{sku}`.
    ///
    /// # Errors
    /// As [`WebClient::search`].
    pub async fn stock(&self, sku: &str) -> Result<StockLevel, Status> {
        self.get(&format!("/api/stock/{}", encode(sku))).await
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, Status> {
        let uri: http::Uri = format!("{}{path}", self.base)
            .parse()
            .map_err(|e| Status::invalid_argument(format!("{path}: {e}")))?;
        let resp = self
            .http
            .get(uri)
            .await
            .map_err(|e| Status::unavailable(format!("the gateway: {e}")))?;
        let ok = resp.status().is_success();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| Status::unavailable(format!("the gateway's answer: {e}")))?
            .to_bytes();
        if ok {
            return serde_json::from_slice(&body)
                .map_err(|e| Status::internal(format!("the gateway's answer to {path}: {e}")));
        }
        // `{"code", "message", …}` (docs/protocol.md §18.3).
        let error: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let code = error["code"].as_u64().and_then(|c| u8::try_from(c).ok());
        Err(Status::new(
            code.map_or(Code::Unknown, Code::from_u8),
            error["message"].as_str().unwrap_or("no message"),
        ))
    }
}

/// Percent-encodes all but unreserved characters (RFC 3986 §2.3).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
