//! `#[service]` end to end: every method shape in every codec over the in-memory transport and
//! TCP, typed errors, one-way calls, the call context, descriptions, and generated clients over
//! any tower service. Compiled with `deny(warnings)` and `missing_docs`, as a strict user would.
//!
//! Longer than the ~600 lines a file should have, on purpose: every test exercises the one
//! `Orders` definition at the top under those lints, and the point of the file is that one
//! definition's whole generated surface compiles and works together.

#![deny(warnings, missing_docs)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use bytes::Bytes;
use rpc_core::describe::{self, Format};
use rpc_core::server::{NamedService, RawService};
use rpc_core::transport::memory::MemoryListener;
use rpc_core::transport::Listener;
use rpc_core::{
    service, Channel, Code, CodecId, Context, Delivery, Endpoint, Request, Response, Server,
    ServiceError, Status,
};
use tokio::sync::{mpsc, oneshot};
use tower::Service;

/// An order: works in every codec.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
pub struct Order {
    /// Order id.
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// What was ordered.
    #[prost(string, repeated, tag = "2")]
    pub skus: Vec<String>,
}

/// A receipt: works in every codec.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
pub struct Receipt {
    /// Order id.
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// Total in cents.
    #[prost(uint64, tag = "2")]
    pub total: u64,
}

/// A typed error that crosses the wire.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub enum OrderError {
    /// No such order.
    NotFound {
        /// The id asked for.
        id: u64,
    },
    /// Not enough stock.
    OutOfStock {
        /// The SKU that ran out.
        sku: String,
        /// How many are missing.
        missing: u32,
    },
    /// Anything the transport or the server said.
    #[serde(skip)]
    Rpc(Status),
}

impl PartialEq for OrderError {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (OrderError::Rpc(a), OrderError::Rpc(b)) => {
                a.code() == b.code() && a.message() == b.message()
            }
            (OrderError::NotFound { id: a }, OrderError::NotFound { id: b }) => a == b,
            (
                OrderError::OutOfStock { sku, missing },
                OrderError::OutOfStock {
                    sku: sku2,
                    missing: missing2,
                },
            ) => sku == sku2 && missing == missing2,
            _ => false,
        }
    }
}

impl ServiceError for OrderError {
    fn into_status(self) -> Status {
        match self {
            OrderError::Rpc(status) => status,
            e @ OrderError::NotFound { .. } => Status::not_found("no such order").with_details(&e),
            e => Status::failed_precondition("cannot do that").with_details(&e),
        }
    }

    fn from_status(status: Status) -> Self {
        match status.details() {
            Ok(Some(e)) => e,
            _ => OrderError::Rpc(status),
        }
    }
}

/// Takes and tracks orders.
///
/// Second paragraph of the service docs.
#[service(name = "shop.Orders", version = "3")]
pub trait Orders {
    /// Places an order.
    #[rpc(idempotent, timeout = "2s")]
    async fn place(&self, order: Order) -> Result<Receipt, Status>;

    /// Prices `quantity` of `sku` (several arguments).
    async fn quote_price(&self, sku: String, quantity: u32) -> Result<u64, Status>;

    /// How many orders were placed (no arguments).
    async fn count(&self) -> Result<u64, Status>;

    /// Forgets an order (no reply body).
    async fn forget(&self, id: u64) -> Result<(), Status>;

    /// Tells the service about an order; nobody waits for an answer.
    #[rpc(one_way)]
    async fn notify(&self, order: Order) -> Result<(), Status>;

    /// Cancels an order, or says why not.
    #[rpc(scope = "orders:cancel")]
    async fn cancel(&self, id: u64) -> Result<Receipt, OrderError>;

    /// Who is calling, from the context's metadata.
    async fn whoami(&self, ctx: &Context) -> Result<String, Status>;

    /// Milliseconds left before the call's deadline, from a context taken by value.
    async fn budget_ms(&self, ctx: Context, label: String) -> Result<String, Status>;

    /// Never answers: the default timeout ends it.
    #[rpc(name = "Hang", timeout = "50ms")]
    async fn stall(&self) -> Result<(), Status>;

    /// Has a default body.
    async fn ping(&self) -> Result<String, Status> {
        Ok("pong".to_owned())
    }
}

struct Shop {
    placed: AtomicUsize,
    notified: mpsc::UnboundedSender<Order>,
}

impl Orders for Shop {
    async fn place(&self, order: Order) -> Result<Receipt, Status> {
        self.placed.fetch_add(1, Ordering::Relaxed);
        Ok(Receipt {
            id: order.id,
            total: 100 * order.skus.len() as u64,
        })
    }

    async fn quote_price(&self, sku: String, quantity: u32) -> Result<u64, Status> {
        Ok(sku.len() as u64 * u64::from(quantity))
    }

    async fn count(&self) -> Result<u64, Status> {
        Ok(self.placed.load(Ordering::Relaxed) as u64)
    }

    async fn forget(&self, id: u64) -> Result<(), Status> {
        if id == 0 {
            return Err(Status::invalid_argument("id 0 is reserved"));
        }
        Ok(())
    }

    async fn notify(&self, order: Order) -> Result<(), Status> {
        let _ = self.notified.send(order);
        Ok(())
    }

    async fn cancel(&self, id: u64) -> Result<Receipt, OrderError> {
        match id {
            1 => Err(OrderError::NotFound { id }),
            2 => Err(OrderError::OutOfStock {
                sku: "A-1".into(),
                missing: 3,
            }),
            3 => Err(OrderError::Rpc(Status::permission_denied("not yours"))),
            _ => Ok(Receipt { id, total: 0 }),
        }
    }

    async fn whoami(&self, ctx: &Context) -> Result<String, Status> {
        Ok(ctx
            .metadata()
            .get_str("caller")
            .unwrap_or("anonymous")
            .to_owned())
    }

    async fn budget_ms(&self, ctx: Context, label: String) -> Result<String, Status> {
        let left = ctx.remaining().map(|d| d.as_millis());
        Ok(format!("{label}:{left:?}"))
    }

    async fn stall(&self) -> Result<(), Status> {
        std::future::pending().await
    }
}

struct Running {
    stop: oneshot::Sender<()>,
    join: tokio::task::JoinHandle<std::io::Result<()>>,
    notified: mpsc::UnboundedReceiver<Order>,
}

fn serve(listener: impl Listener) -> Running {
    let (tx, notified) = mpsc::unbounded_channel();
    let shop = Shop {
        placed: AtomicUsize::new(0),
        notified: tx,
    };
    let server = Server::builder()
        .add_service(OrdersServer::new(shop))
        .add_service(RawService::new("legacy.Handmade"));
    let (stop, stopped) = oneshot::channel::<()>();
    let join = tokio::spawn(server.serve_with_shutdown(listener, async {
        let _ = stopped.await;
    }));
    Running {
        stop,
        join,
        notified,
    }
}

impl Running {
    async fn shutdown(self) {
        let _ = self.stop.send(());
        self.join.await.unwrap().unwrap();
    }
}

fn memory(name: &str) -> (Running, OrdersClient) {
    let running = serve(MemoryListener::bind(name).unwrap());
    let client = OrdersClient::new(Endpoint::memory(name).connect_lazy());
    (running, client)
}

const CODECS: [CodecId; 3] = [CodecId::PROTOBUF, CodecId::JSON, CodecId::MSGPACK];

fn order(id: u64) -> Order {
    Order {
        id,
        skus: vec!["A-1".into(), "B-2".into()],
    }
}

#[tokio::test]
async fn every_method_shape_in_every_codec() {
    let (mut running, client) = memory("svc-shapes");
    for (i, codec) in CODECS.into_iter().enumerate() {
        let receipt = client.place(order(7)).codec(codec).await.unwrap();
        assert_eq!(receipt, Receipt { id: 7, total: 200 }, "{codec}");
        assert_eq!(client.count().codec(codec).await.unwrap(), i as u64 + 1);

        // Scalars and strings are Protobuf wrapper messages (UInt64Value, StringValue).
        client.forget(9).codec(codec).await.unwrap();
        let gone = client.forget(0).codec(codec).await.unwrap_err();
        assert_eq!(gone.code(), Code::InvalidArgument);
        assert_eq!(gone.message(), "id 0 is reserved");
        assert_eq!(client.ping().codec(codec).await.unwrap(), "pong");
        assert_eq!(client.whoami().codec(codec).await.unwrap(), "anonymous");

        client.notify(order(11)).codec(codec).await.unwrap();
        let got = running.notified.recv().await.unwrap();
        assert_eq!(got, order(11), "{codec}");
    }
    for codec in [CodecId::JSON, CodecId::MSGPACK] {
        let price = client.quote_price("ABCD".into(), 3).codec(codec).await;
        assert_eq!(price.unwrap(), 12, "{codec}");
    }
    running.shutdown().await;
}

#[tokio::test]
async fn several_arguments_in_protobuf_are_a_clear_error() {
    let (running, client) = memory("svc-protobuf-args");
    let err = client
        .quote_price("A".into(), 1)
        .codec(CodecId::PROTOBUF)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented);
    assert_eq!(err.delivery(), Delivery::NotSent);
    assert!(
        err.message()
            .contains("shop.Orders/QuotePrice takes 2 arguments")
            && err
                .message()
                .contains("Protobuf needs a single prost message"),
        "{err}"
    );

    // A client in another language that sends Protobuf anyway gets the same explanation.
    let raw = Endpoint::memory("svc-protobuf-args").connect_lazy();
    let err = raw
        .unary(Request::new("shop.Orders/QuotePrice", "x").with_codec(CodecId::PROTOBUF))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented);
    assert!(err.message().contains("takes 2 arguments"), "{err}");
    running.shutdown().await;
}

#[tokio::test]
async fn default_codec_falls_back_to_what_both_types_support() {
    let (running, client) = memory("svc-default-codec");
    // No codec asked: Protobuf for prost types, JSON for the rest.
    assert_eq!(client.place(order(1)).await.unwrap().id, 1);
    assert_eq!(client.quote_price("AB".into(), 2).await.unwrap(), 4);
    let json_client = client.clone().with_codec(CodecId::JSON);
    assert_eq!(json_client.place(order(2)).await.unwrap().id, 2);
    assert_eq!(json_client.count().await.unwrap(), 2);
    running.shutdown().await;
}

#[tokio::test]
async fn user_errors_cross_the_wire_typed() {
    let (running, client) = memory("svc-errors");
    for codec in CODECS {
        let e = client.cancel(1).codec(codec).await;
        assert_eq!(e.unwrap_err(), OrderError::NotFound { id: 1 }, "{codec}");
        assert_eq!(
            client.cancel(2).codec(codec).await.unwrap_err(),
            OrderError::OutOfStock {
                sku: "A-1".into(),
                missing: 3
            }
        );
        match client.cancel(3).codec(codec).await.unwrap_err() {
            OrderError::Rpc(s) => {
                assert_eq!(s.code(), Code::PermissionDenied);
                assert_eq!(s.message(), "not yours");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(client.cancel(4).codec(codec).await.unwrap().id, 4);
    }
    // The status underneath keeps its code and message for callers that only look at those.
    let raw = Endpoint::memory("svc-errors").connect_lazy();
    let status = raw
        .unary(Request::new("shop.Orders/Cancel", "2").with_codec(CodecId::JSON))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(status.message(), "cannot do that");
    running.shutdown().await;

    // Transport failures reach typed callers as their Rpc variant.
    let err = client.cancel(4).codec(CodecId::JSON).await.unwrap_err();
    match err {
        OrderError::Rpc(s) => assert_eq!(s.code(), Code::Unavailable),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn context_metadata_and_deadline_reach_the_handler() {
    let (running, client) = memory("svc-context");
    let who = client
        .whoami()
        .codec(CodecId::JSON)
        .metadata("caller", "checkout")
        .await
        .unwrap();
    assert_eq!(who, "checkout");

    let budget = client
        .budget_ms("b".into())
        .timeout(Duration::from_secs(30))
        .await
        .unwrap();
    let ms: u128 = budget
        .strip_prefix("b:Some(")
        .and_then(|s| s.strip_suffix(')'))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{budget}"));
    assert!(ms > 20_000 && ms <= 30_000, "{budget}");
    assert_eq!(client.budget_ms("n".into()).await.unwrap(), "n:None");
    running.shutdown().await;
}

#[tokio::test]
async fn method_default_timeout_applies_and_a_call_can_override_it() {
    let (running, client) = memory("svc-timeout");
    let err = client.stall().await.unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err}");
    let err = client
        .stall()
        .timeout(Duration::from_millis(10))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err}");
    running.shutdown().await;
}

#[tokio::test]
async fn bad_input_to_a_generated_server_gets_clear_statuses() {
    let (running, client) = memory("svc-bad-input");
    let raw = Endpoint::memory("svc-bad-input").connect_lazy();

    let undecodable = raw
        .unary(Request::new("shop.Orders/Place", "{not json").with_codec(CodecId::JSON))
        .await
        .unwrap_err();
    assert_eq!(undecodable.code(), Code::InvalidArgument, "{undecodable}");

    let garbage_pb = raw
        .unary(Request::new("shop.Orders/Place", vec![0xff_u8; 5]).with_codec(CodecId::PROTOBUF))
        .await
        .unwrap_err();
    assert_eq!(garbage_pb.code(), Code::InvalidArgument, "{garbage_pb}");

    let unknown = raw
        .unary(Request::new("shop.Orders/Refund", "").with_codec(CodecId::JSON))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::Unimplemented);
    assert!(unknown.message().contains("\"Refund\""), "{unknown}");

    let raw_codec = raw
        .unary(Request::new("shop.Orders/Place", "x"))
        .await
        .unwrap_err();
    assert_eq!(raw_codec.code(), Code::Unimplemented, "{raw_codec}");

    // The Rust method name is not the wire name.
    let rust_name = raw
        .unary(Request::new("shop.Orders/stall", "").with_codec(CodecId::JSON))
        .await
        .unwrap_err();
    assert_eq!(rust_name.code(), Code::Unimplemented);

    // Nothing above disturbed the service.
    assert_eq!(client.place(order(5)).await.unwrap().id, 5);
    running.shutdown().await;
}

#[tokio::test]
async fn descriptions_are_generated_and_served() {
    let d = OrdersServer::<Shop>::DESCRIPTOR;
    assert_eq!(OrdersClient::<Channel>::DESCRIPTOR, d);
    assert_eq!(
        (d.name, d.version, d.rust_name),
        ("shop.Orders", "3", "Orders")
    );
    assert_eq!(
        d.docs,
        "Takes and tracks orders.\n\nSecond paragraph of the service docs."
    );
    let names: Vec<&str> = d.methods.iter().map(|m| m.name).collect();
    assert_eq!(
        names,
        [
            "Place",
            "QuotePrice",
            "Count",
            "Forget",
            "Notify",
            "Cancel",
            "Whoami",
            "BudgetMs",
            "Hang",
            "Ping"
        ]
    );
    let place = d.method("Place").unwrap();
    assert_eq!(place.path, "shop.Orders/Place");
    assert_eq!(
        (place.request, place.response, place.error),
        ("Order", "Receipt", "Status")
    );
    assert!(place.idempotent && !place.one_way);
    assert_eq!(place.timeout, Some(Duration::from_secs(2)));
    assert_eq!(place.docs, "Places an order.");
    let quote = d.method("QuotePrice").unwrap();
    assert_eq!(quote.args, &[("sku", "String"), ("quantity", "u32")]);
    assert_eq!(quote.request, "{ sku: String, quantity: u32 }");
    assert_eq!(quote.rust_name, "quote_price");
    let budget = d.method("BudgetMs").unwrap();
    assert_eq!(
        budget.args,
        &[("label", "String")],
        "the context is not an argument"
    );
    assert!(d.method("Notify").unwrap().one_way);
    assert_eq!(d.method("Cancel").unwrap().error, "OrderError");
    assert_eq!(d.method("Cancel").unwrap().scope, Some("orders:cancel"));
    assert_eq!(place.scope, None);
    assert_eq!(d.method("Count").unwrap().request, "()");

    let md = describe::to_markdown(&[d]);
    assert!(md.contains("## shop.Orders (version 3)"), "{md}");
    assert!(
        md.contains("| `Place` | `Order` | `Receipt` | idempotent, timeout = \"2s\" |"),
        "{md}"
    );
    assert!(md.contains("### `shop.Orders/QuotePrice`"), "{md}");
    assert!(
        md.contains("`quote_price(sku: String, quantity: u32) -> Result<u64, Status>`"),
        "{md}"
    );
    assert!(
        md.contains("Prices `quantity` of `sku` (several arguments)."),
        "{md}"
    );

    // A running server answers with what it hosts, in either format.
    let (running, client) = memory("svc-describe");
    let channel = client.get_ref().clone();
    let json = describe::fetch(channel.clone(), Format::Json)
        .await
        .unwrap();
    assert!(json.contains("\"name\":\"shop.Orders\""), "{json}");
    assert!(
        json.contains("\"undescribed\":[\"legacy.Handmade\"]"),
        "{json}"
    );
    assert!(json.contains("\"timeout_ms\":50.0"), "{json}");
    assert!(json.contains("\"scope\":\"orders:cancel\""), "{json}");
    let served_md = describe::fetch(channel.clone(), Format::Markdown)
        .await
        .unwrap();
    assert!(served_md.starts_with(&md), "{served_md}");
    assert!(served_md.contains("- `legacy.Handmade`"), "{served_md}");
    let bad = channel
        .unary(Request::new(describe::DESCRIBE_PATH, "yaml"))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    running.shutdown().await;
}

#[tokio::test]
async fn the_scope_named_on_a_method_is_the_one_enforced() {
    use rpc_core::middleware::auth::{AuthLayer, BearerLayer, Policy, Rule, StaticTokens};
    use rpc_core::{AuthMethod, Principal};
    use tower::Layer as _;

    let (tx, _notified) = mpsc::unbounded_channel();
    let shop = Shop {
        placed: AtomicUsize::new(0),
        notified: tx,
    };
    let tokens = StaticTokens::new()
        .token("clerk", Principal::new("clerk", AuthMethod::BearerToken))
        .token(
            "manager",
            Principal::new("manager", AuthMethod::BearerToken).with_scopes(["orders:cancel"]),
        );
    let d = OrdersServer::<Shop>::DESCRIPTOR;
    let policy = Policy::new()
        .service("shop.Orders", Rule::Authenticated)
        .scopes_of(d);
    let auth = AuthLayer::new().authenticator(tokens).policy(policy);
    let server = Server::builder().add_service(auth.layer(OrdersServer::new(shop)));
    let listener = MemoryListener::bind("svc-scopes").unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let join = tokio::spawn(server.serve_with_shutdown(listener, async {
        let _ = stopped.await;
    }));
    let as_user = |token: &str| {
        OrdersClient::new(
            BearerLayer::new(Arc::<str>::from(token))
                .layer(Endpoint::memory("svc-scopes").connect_lazy()),
        )
    };

    // Methods without a scope need only a principal.
    let clerk = as_user("clerk");
    assert_eq!(clerk.place(order(1)).await.unwrap().id, 1);
    // The scoped method needs the scope.
    match clerk.cancel(1).await {
        Err(OrderError::Rpc(status)) => {
            assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
            assert!(status.message().contains("orders:cancel"), "{status:?}");
        }
        other => panic!("the clerk cancelled: {other:?}"),
    }
    let manager = as_user("manager");
    assert_eq!(manager.cancel(4).await.unwrap().id, 4);
    let _ = stop.send(());
    join.await.unwrap().unwrap();
}

/// A tower service in front of a channel: counts calls and records what the client marked.
#[derive(Clone)]
struct Recorder {
    inner: Channel,
    seen: Arc<Mutex<Vec<(String, bool, bool)>>>,
}

impl Service<Request> for Recorder {
    type Response = Response;
    type Error = Status;
    type Future = rpc_core::client::ResponseFuture;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Status>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let described = req.descriptor().is_some_and(|d| d.path == req.path());
        self.seen
            .lock()
            .unwrap()
            .push((req.path().to_owned(), req.is_idempotent(), described));
        req.metadata_mut().insert("caller", "recorder");
        self.inner.call(req)
    }
}

#[tokio::test]
async fn clients_work_over_any_tower_service() {
    let (running, _) = memory("svc-tower");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let client = OrdersClient::new(Recorder {
        inner: Endpoint::memory("svc-tower").connect_lazy(),
        seen: seen.clone(),
    });
    assert_eq!(client.place(order(3)).await.unwrap().id, 3);
    assert_eq!(client.whoami().await.unwrap(), "recorder");
    assert_eq!(
        *seen.lock().unwrap(),
        [
            ("shop.Orders/Place".to_owned(), true, true),
            ("shop.Orders/Whoami".to_owned(), false, true)
        ]
    );
    running.shutdown().await;
}

#[tokio::test]
async fn a_generated_server_is_a_tower_service_too() {
    let (tx, _rx) = mpsc::unbounded_channel();
    let mut server = OrdersServer::new(Shop {
        placed: AtomicUsize::new(0),
        notified: tx,
    });
    assert_eq!(server.service_name(), "shop.Orders");
    assert!(server.descriptor().is_some());
    std::future::poll_fn(|cx| server.poll_ready(cx))
        .await
        .unwrap();
    let body = Bytes::from_static(br#"{"sku":"AB","quantity":5}"#);
    let reply = server
        .call(Request::new("shop.Orders/QuotePrice", body).with_codec(CodecId::JSON))
        .await
        .unwrap();
    assert_eq!(&reply.body()[..], b"10");
}

#[tokio::test]
async fn over_tcp_with_concurrent_calls() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let running = serve(listener);
    let client = OrdersClient::new(Endpoint::tcp(addr).connect_lazy());
    let calls: Vec<_> = (0..200u64)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                let codec = CODECS[i as usize % 3];
                client.place(order(i)).codec(codec).await
            })
        })
        .collect();
    for (i, call) in calls.into_iter().enumerate() {
        assert_eq!(call.await.unwrap().unwrap().id, i as u64);
    }
    assert_eq!(client.count().await.unwrap(), 200);
    running.shutdown().await;
}
