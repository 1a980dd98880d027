//! Three services that trust nobody by default: mutual TLS between every pair (one CA made at
//! start-up, one SPIFFE identity per service), JWTs for end users signed by the accounts
//! service, and a policy per method: the scopes written beside the methods in `#[rpc(scope)]`
//! for users, the orders service's identity for payments.
//!
//! ```text
//! cargo run --release --features secure --example secure
//! ```
//!
//! - `demo.Accounts/Login` signs a user in and returns a JWT (EdDSA, 10 minutes): alice may
//!   read and write orders; bob, support staff, may read and refund them.
//! - `demo.Orders` requires a token from a user (`JwtAuthenticator`) with the method's scope;
//!   `Place` charges the order through `demo.Payments`, calling as itself over mutual TLS.
//! - `demo.Payments/Charge` accepts only the orders service's certificate
//!   (`spiffe://shop.test/orders`), whatever token a caller sends.
//!
//! Every check prints one line (`ok` or `FAILED`); the last line counts the calls each
//! service's `AuthLayer` admitted and refused. The exit status is non-zero if a check failed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use examples::pki::{Identity, Pki};
use examples::tokens::TokenIssuer;
use rpc_core::middleware::auth::{AuthLayer, PeerCertificates, Policy, Rule, AUTHORIZATION};
use rpc_core::middleware::Stats;
use rpc_core::transport::tcp::TcpConnector;
use rpc_core::transport::tls::{ClientTlsConfig, TlsAcceptor, TlsConnector};
use rpc_core::{service, Channel, Code, Context, Endpoint, Server, Status};
use tower::Layer;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Signs users in.
#[service(name = "demo.Accounts")]
pub trait Accounts {
    /// Checks the password and returns a JWT for the user, valid for 10 minutes.
    async fn login(&self, user: String, password: String) -> Result<String, Status>;
}

/// Orders of the calling user.
#[service(name = "demo.Orders")]
pub trait Orders {
    /// Places an order for the caller and charges it; returns the receipt.
    #[rpc(scope = "orders:write")]
    async fn place(&self, ctx: &Context, sku: String, cents: u64) -> Result<String, Status>;

    /// How many orders the caller has placed.
    #[rpc(idempotent, scope = "orders:read")]
    async fn count(&self, ctx: &Context) -> Result<u64, Status>;

    /// Refunds an order (support staff).
    #[rpc(scope = "orders:refund")]
    async fn refund(&self, ctx: &Context, order: u64) -> Result<String, Status>;
}

/// Takes money.
#[service(name = "demo.Payments")]
pub trait Payments {
    /// Charges `cents` for `order`.
    async fn charge(&self, ctx: &Context, order: u64, cents: u64) -> Result<String, Status>;
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The subject of the call's principal (the auth layer ran before the handler).
fn caller(ctx: &Context) -> Result<String, Status> {
    ctx.principal()
        .map(|p| p.subject.clone())
        .ok_or_else(|| Status::unauthenticated("no principal"))
}

struct AccountsImpl {
    issuer: Arc<TokenIssuer>,
}

impl Accounts for AccountsImpl {
    async fn login(&self, user: String, password: String) -> Result<String, Status> {
        let (scopes, roles): (&[&str], &[&str]) = match (user.as_str(), password.as_str()) {
            ("alice", "wonderland") => (&["orders:read", "orders:write"], &[]),
            ("bob", "builder") => (&["orders:read", "orders:refund"], &["support"]),
            _ => return Err(Status::unauthenticated("unknown user or wrong password")),
        };
        self.issuer
            .issue(&user, scopes, roles, Duration::from_secs(600))
            .map_err(|e| Status::internal(e.to_string()))
    }
}

struct OrdersImpl {
    next: AtomicU64,
    by_user: Mutex<HashMap<String, u64>>,
    payments: PaymentsClient<Channel>,
}

impl Orders for OrdersImpl {
    async fn place(&self, ctx: &Context, sku: String, cents: u64) -> Result<String, Status> {
        let user = caller(ctx)?;
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        // Called as the orders service (its certificate), not with the user's token.
        let receipt = self.payments.charge(id, cents).await?;
        *lock(&self.by_user).entry(user.clone()).or_default() += 1;
        Ok(format!("order {id} ({sku}) for {user}; {receipt}"))
    }

    async fn count(&self, ctx: &Context) -> Result<u64, Status> {
        let user = caller(ctx)?;
        Ok(lock(&self.by_user).get(&user).copied().unwrap_or(0))
    }

    async fn refund(&self, ctx: &Context, order: u64) -> Result<String, Status> {
        Ok(format!("order {order} refunded by {}", caller(ctx)?))
    }
}

struct PaymentsImpl;

impl Payments for PaymentsImpl {
    async fn charge(&self, ctx: &Context, order: u64, cents: u64) -> Result<String, Status> {
        Ok(format!(
            "charged {cents} cents for order {order}, called by {}",
            caller(ctx)?
        ))
    }
}

/// Serves `server` over mutual TLS as `id` on a free loopback port.
async fn serve(server: Server, pki: &Pki, id: &Identity) -> Result<SocketAddr, BoxError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let acceptor = TlsAcceptor::new(pki.server_tls(id))?;
    tokio::spawn(server.serve(acceptor.listener(listener)));
    Ok(addr)
}

/// Connects to `addr` over TLS with `config`, checking the server's certificate for `localhost`.
async fn connect(addr: SocketAddr, config: ClientTlsConfig) -> Result<Channel, Status> {
    let connector = TlsConnector::new(TcpConnector::new(addr), "localhost", config)
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
    Endpoint::new(connector)
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await
}

/// A token, shown by its first characters and length.
#[derive(Debug, Default)]
struct Token(String);

impl std::fmt::Display for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let head: String = self.0.chars().take(12).collect();
        write!(f, "a JWT ({head}…, {} bytes)", self.0.len())
    }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// The checks and their verdicts.
#[derive(Default)]
struct Checks {
    passed: usize,
    failed: usize,
}

impl Checks {
    /// Records a call that should succeed; returns its value.
    fn ok<T: std::fmt::Display>(&mut self, what: &str, r: Result<T, Status>) -> Option<T> {
        match r {
            Ok(v) => {
                self.passed += 1;
                println!("  ok      {what:<52} {v}");
                Some(v)
            }
            Err(e) => {
                self.failed += 1;
                println!("  FAILED  {what:<52} {}: {}", e.code(), e.message());
                None
            }
        }
    }

    /// Records a call that should fail with `code`.
    fn refused<T: std::fmt::Debug>(&mut self, what: &str, code: Code, r: Result<T, Status>) {
        match r {
            Err(e) if e.code() == code => {
                self.passed += 1;
                println!("  ok      {what:<52} {}: {}", e.code(), e.message());
            }
            other => {
                self.failed += 1;
                println!("  FAILED  {what:<52} wanted {code}, got {other:?}");
            }
        }
    }
}

async fn run() -> Result<Checks, BoxError> {
    let pki = Pki::new("shop.test")?;
    let [accounts_id, orders_id, payments_id, web_id] =
        ["accounts", "orders", "payments", "web"].map(|n| pki.issue(n));
    let (accounts_id, orders_id, payments_id, web_id) =
        (accounts_id?, orders_id?, payments_id?, web_id?);
    let issuer = Arc::new(TokenIssuer::generate("demo.Accounts", "shop.test")?);
    let stats = Stats::new();

    let accounts = Server::builder().add_service(AccountsServer::new(AccountsImpl {
        issuer: issuer.clone(),
    }));
    let accounts_addr = serve(accounts, &pki, &accounts_id).await?;

    // Payments: only the orders service's certificate may charge.
    let payments_auth = AuthLayer::new()
        .authenticator(PeerCertificates::new())
        .policy(Policy::new().method("demo.Payments/Charge", Rule::subject(&orders_id.spiffe_id)))
        .stats(stats.clone());
    let payments =
        Server::builder().add_service(payments_auth.layer(PaymentsServer::new(PaymentsImpl)));
    let payments_addr = serve(payments, &pki, &payments_id).await?;

    // Orders: a user's token, with the scope each method names.
    let orders_auth = AuthLayer::new()
        .authenticator(issuer.authenticator()?)
        .policy(
            Policy::new()
                .service("demo.Orders", Rule::Authenticated)
                .scopes_of(OrdersServer::<OrdersImpl>::DESCRIPTOR),
        )
        .stats(stats.clone());
    let to_payments = connect(payments_addr, pki.client_tls(&orders_id)).await?;
    let orders = Server::builder().add_service(orders_auth.layer(OrdersServer::new(OrdersImpl {
        next: AtomicU64::new(0),
        by_user: Mutex::default(),
        payments: PaymentsClient::new(to_payments),
    })));
    let orders_addr = serve(orders, &pki, &orders_id).await?;
    println!(
        "secure: demo.Accounts, demo.Orders, demo.Payments on 127.0.0.1 over mutual TLS; one CA, \
         identities spiffe://shop.test/{{accounts,orders,payments,web}}; user tokens EdDSA"
    );

    // The web front calls for its users, as itself.
    let web = pki.client_tls(&web_id);
    let accounts = AccountsClient::new(connect(accounts_addr, web.clone()).await?);
    let orders = OrdersClient::new(connect(orders_addr, web.clone()).await?);
    let payments = PaymentsClient::new(connect(payments_addr, web).await?);

    let mut checks = Checks::default();
    let login = |user: &str, password: &str| {
        let accounts = accounts.clone();
        let (user, password) = (user.to_owned(), password.to_owned());
        async move { accounts.login(user, password).await.map(Token) }
    };
    let alice = checks
        .ok("alice signs in", login("alice", "wonderland").await)
        .unwrap_or_default()
        .0;
    let bob = checks
        .ok("bob (support) signs in", login("bob", "builder").await)
        .unwrap_or_default()
        .0;
    checks.refused(
        "a wrong password",
        Code::Unauthenticated,
        login("alice", "guess").await,
    );
    checks.ok(
        "alice places an order (orders:write)",
        orders
            .place("sku-1".into(), 1299)
            .metadata(AUTHORIZATION, bearer(&alice))
            .await,
    );
    checks.ok(
        "alice counts her orders (orders:read)",
        orders.count().metadata(AUTHORIZATION, bearer(&alice)).await,
    );
    checks.refused(
        "alice refunds (needs orders:refund)",
        Code::PermissionDenied,
        orders
            .refund(1)
            .metadata(AUTHORIZATION, bearer(&alice))
            .await,
    );
    checks.ok(
        "bob refunds (orders:refund)",
        orders.refund(1).metadata(AUTHORIZATION, bearer(&bob)).await,
    );
    checks.refused(
        "bob places an order (no orders:write)",
        Code::PermissionDenied,
        orders
            .place("sku-2".into(), 500)
            .metadata(AUTHORIZATION, bearer(&bob))
            .await,
    );
    checks.refused(
        "an order without a token",
        Code::Unauthenticated,
        orders.place("sku-1".into(), 1299).await,
    );
    let mut forged = alice.clone();
    let last = forged
        .pop()
        .map_or('A', |c| if c == 'A' { 'B' } else { 'A' });
    forged.push(last);
    checks.refused(
        "an order with a forged signature",
        Code::Unauthenticated,
        orders
            .place("sku-1".into(), 1)
            .metadata(AUTHORIZATION, bearer(&forged))
            .await,
    );
    let expired = issuer.issue_expired("alice", Duration::from_secs(3600))?;
    checks.refused(
        "an order with a token expired an hour ago",
        Code::Unauthenticated,
        orders
            .place("sku-1".into(), 1)
            .metadata(AUTHORIZATION, bearer(&expired))
            .await,
    );
    checks.refused(
        "alice's token straight to Payments/Charge",
        Code::PermissionDenied,
        payments
            .charge(99, 1)
            .metadata(AUTHORIZATION, bearer(&alice))
            .await,
    );
    let no_cert = ClientTlsConfig::new().ca_pem(pki.ca_pem());
    checks.refused(
        "a client without a certificate",
        Code::Unavailable,
        connect(orders_addr, no_cert).await.map(|_| ()),
    );
    let stranger = Pki::new("elsewhere.test")?;
    let stranger_id = stranger.issue("web")?;
    let other_ca = ClientTlsConfig::new()
        .ca_pem(pki.ca_pem())
        .identity_pem(stranger_id.cert_pem, stranger_id.key_pem);
    checks.refused(
        "a client certificate from another CA",
        Code::Unavailable,
        connect(orders_addr, other_ca).await.map(|_| ()),
    );

    let s = stats.snapshot();
    println!(
        "secure: checks={} passed={} authenticated={} refused={} (unauthenticated {}, permission denied {})",
        checks.passed + checks.failed,
        checks.passed,
        s.authenticated,
        s.unauthenticated + s.permission_denied,
        s.unauthenticated,
        s.permission_denied
    );
    Ok(checks)
}

#[tokio::main]
async fn main() -> ExitCode {
    examples::init_tracing_or("error");
    match run().await {
        Ok(checks) if checks.failed == 0 => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("secure: {e}");
            ExitCode::FAILURE
        }
    }
}
