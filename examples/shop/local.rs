//! The whole shop in one process (`cargo run --release --example shop`): every replica on its
//! own runtime and port ([`Host`]), the in-process registry, simulated customers, replicas killed
//! mid-run, and the report. With `--secure` (feature `secure`), over mutual TLS with customers
//! signed in ([`super::security`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rpc_core::Server;
use rpc_discovery::{MemoryRegistry, Registry};
use tokio::time::Instant;
use tower::Layer;

use super::audit::{invariants, Check, Snapshot};
use super::catalogue::{CatalogueServer, MemoryCatalogue, Product};
use super::host::{BoxError, Host};
use super::inventory::{Delivery, InventoryServer, Warehouse};
use super::journey::{customer, Frontend, Tally, PRODUCTS};
use super::metrics::MethodFigures;
use super::notifications::{MemoryNotifications, NotificationsServer};
use super::orders::{OrderBook, OrderState, OrdersReplica, OrdersServer, RECOVER_PERIOD};
use super::payments::{MemoryPayments, PaymentsServer};
use super::security::Shield;
use super::users::{MemoryUsers, UsersServer};
use super::wiring::Wiring;

/// A server hosting `service`, behind the auth layer `auth` (an `Option<AuthLayer>`) if there
/// is one.
macro_rules! guarded {
    ($auth:expr, $service:expr) => {
        match $auth {
            Some(auth) => Server::builder().add_service(auth.layer($service)),
            None => Server::builder().add_service($service),
        }
    };
}

/// How often an inventory replica releases expired holds.
pub const SWEEP: Duration = Duration::from_millis(100);

/// What to run.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Simulated customers, all at once.
    pub customers: u64,
    /// How long they keep shopping.
    pub duration: Duration,
    /// Seeds the customers' choices.
    pub seed: u64,
    /// Kill `inventory-2` at 35 % of the run and `orders-2` at 55 %.
    pub kill: bool,
    /// Mutual TLS between the services, customers signed in, orders and payments authorized
    /// ([`super::security`]; needs the feature `secure`).
    pub secure: bool,
}

impl Default for RunConfig {
    /// 300 customers for 6 s, seed 1, with the kills.
    fn default() -> Self {
        RunConfig {
            customers: 300,
            duration: Duration::from_secs(6),
            seed: 1,
            kill: true,
            secure: false,
        }
    }
}

/// How a run ended.
#[derive(Debug)]
pub struct Outcome {
    /// What the customers did.
    pub tally: Arc<Tally>,
    /// What the services hold at the end.
    pub snapshot: Snapshot,
    /// The invariants, checked on `snapshot`.
    pub checks: Vec<Check>,
    /// The report, several lines, without the summary.
    pub report: String,
    /// The last line: `shop: customers=C orders=O paid=P cancelled=X refused=R failed=F
    /// invariants=ok` (or `invariants=violated`).
    pub summary: String,
}

impl Outcome {
    /// Every invariant holds (with `--secure`, every forbidden call was refused) and no
    /// customer operation failed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(Check::ok) && self.tally.failed.load(Ordering::Relaxed) == 0
    }
}

/// Runs the shop: starts it, lets the customers shop, kills replicas as configured, audits.
/// Progress lines (the start, the kills) are printed as they happen.
///
/// # Errors
/// A replica that could not start or register within 10 s, an audit that could not be read, or
/// `secure` without the feature `secure`.
pub async fn run(config: &RunConfig) -> Result<Outcome, BoxError> {
    let memory = MemoryRegistry::new();
    let registry: Arc<dyn Registry> = Arc::new(memory.clone());
    let shield = Shield::when(config.secure)?;

    // Each service's state, shared by its replicas (their database).
    let users = shield
        .tokens()
        .map_or_else(MemoryUsers::default, MemoryUsers::with_tokens);
    let catalogue = MemoryCatalogue::new(PRODUCTS.iter().map(|&(sku, name, price, _)| Product {
        sku: sku.to_owned(),
        name: name.to_owned(),
        price_cents: price,
    }));
    let inventory = Warehouse::with_stock(PRODUCTS.iter().map(|&(sku, .., n)| (sku, n)));
    let payments = MemoryPayments::default();
    let notifications = MemoryNotifications::default();
    let book = OrderBook::default();

    let mut hosts = Vec::new();
    let mut wirings = Vec::new();
    let r = || registry.clone();
    hosts.push(Host::start(
        "users-1",
        "shop.Users",
        r(),
        shield.listen("users")?,
        {
            let auth = shield.auth("shop.Users")?;
            move || async move { Ok(guarded!(auth, UsersServer::new(users))) }
        },
    )?);
    hosts.push(Host::start(
        "catalogue-1",
        "shop.Catalogue",
        r(),
        shield.listen("catalogue")?,
        {
            let auth = shield.auth("shop.Catalogue")?;
            move || async move { Ok(guarded!(auth, CatalogueServer::new(catalogue))) }
        },
    )?);
    hosts.push(Host::start(
        "payments-1",
        "shop.Payments",
        r(),
        shield.listen("payments")?,
        {
            let auth = shield.auth("shop.Payments")?;
            move || async move { Ok(guarded!(auth, PaymentsServer::new(payments))) }
        },
    )?);
    hosts.push(Host::start(
        "notifications-1",
        "shop.Notifications",
        r(),
        shield.listen("notifications")?,
        {
            let auth = shield.auth("shop.Notifications")?;
            move || async move { Ok(guarded!(auth, NotificationsServer::new(notifications))) }
        },
    )?);
    for i in 1..=2 {
        let inventory = inventory.clone();
        let name = format!("inventory-{i}");
        let auth = shield.auth("shop.Inventory")?;
        hosts.push(Host::start(
            &name,
            "shop.Inventory",
            r(),
            shield.listen("inventory")?,
            move || async move {
                // Every replica sweeps expired holds: the store keeps them from doing it twice.
                tokio::spawn(inventory.clone().sweep(SWEEP));
                Ok(guarded!(auth, InventoryServer::new(inventory)))
            },
        )?);
    }
    for i in 1..=2 {
        let wiring = shield.wiring(r(), "orders")?;
        wirings.push(wiring.clone());
        let book = book.clone();
        let name = format!("orders-{i}");
        let auth = shield.auth("shop.Orders")?;
        hosts.push(Host::start(
            &name,
            "shop.Orders",
            r(),
            shield.listen("orders")?,
            move || async move {
                let replica = OrdersReplica::new(book, &wiring).await?;
                tokio::spawn(replica.clone().recover(RECOVER_PERIOD));
                Ok(guarded!(auth, OrdersServer::new(replica)))
            },
        )?);
    }
    let replicas = hosts.len();
    let ready_by = Instant::now() + Duration::from_secs(10);
    while memory.instances().len() < replicas {
        if Instant::now() >= ready_by {
            let n = memory.instances().len();
            return Err(format!("only {n} of {replicas} replicas registered within 10 s").into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!(
        "shop: {replicas} replicas of 6 services on 127.0.0.1{}, in-process registry; {} customers for {:.1} s",
        if shield.is_on() {
            " over mutual TLS"
        } else {
            ""
        },
        config.customers,
        config.duration.as_secs_f64()
    );

    let hosts = Arc::new(std::sync::Mutex::new(hosts));
    let kill = config.kill;
    let faults = {
        let hosts = hosts.clone();
        move |front: Frontend, started: Instant, duration: Duration| async move {
            let at = |share: f64| started + duration.mul_f64(share);
            tokio::time::sleep_until(at(0.25)).await;
            restock(&front).await?;
            if kill {
                let mut killed = Vec::new();
                for (share, name) in [(0.35, "inventory-2"), (0.55, "orders-2")] {
                    tokio::time::sleep_until(at(share)).await;
                    let mut hosts = super::lock(&hosts);
                    if let Some(h) = hosts.iter_mut().find(|h| h.name == name) {
                        h.kill();
                        let secs = started.elapsed().as_secs_f64();
                        killed.push(format!("{name} ({}) at {secs:.1} s", h.addr));
                    }
                }
                println!("  killed without warning: {}", killed.join(", "));
            }
            Ok(())
        }
    };
    let outcome = drive(config, registry, &shield, wirings, faults).await;
    drop(hosts);
    outcome
}

/// The scarce products' delivery, sent mid-run (one-way).
///
/// # Errors
/// The call's, if it could not be written.
pub async fn restock(front: &Frontend) -> Result<(), BoxError> {
    for &(sku, ..) in &PRODUCTS[PRODUCTS.len() - 2..] {
        let delivery = Delivery {
            sku: sku.to_owned(),
            quantity: 10,
        };
        front.inventory.restock(delivery).await?;
    }
    Ok(())
}

/// Drives a running shop found through `registry`: the customers shop for the configured time
/// while `faults` runs (given the customers' clients, when they started, and for how long),
/// then the audits are read and checked. `wirings` are those of the shop's own clients in this
/// process, whose figures join the report's. The customers call as `web` and the audit as
/// `auditor` through `shield`.
///
/// # Errors
/// `faults`' error, a customer task that panicked, or an audit that could not be read.
pub async fn drive<F, Fut>(
    config: &RunConfig,
    registry: Arc<dyn Registry>,
    shield: &Shield,
    mut wirings: Vec<Wiring>,
    faults: F,
) -> Result<Outcome, BoxError>
where
    F: FnOnce(Frontend, Instant, Duration) -> Fut,
    Fut: Future<Output = Result<(), BoxError>>,
{
    let front_wiring = shield.wiring(registry.clone(), "web")?;
    wirings.push(front_wiring.clone());
    let mut front = Frontend::new(&front_wiring).await?;
    if shield.is_on() {
        front = front.signing_in();
    }
    // Customers browse through the shop's API gateway (its own wiring: its calls count apart).
    #[cfg(feature = "http")]
    let web = {
        let gateway_wiring = shield.wiring(registry.clone(), "web")?;
        wirings.push(gateway_wiring.clone());
        let web = super::web::Web::start(&gateway_wiring).await?;
        front.web = Some(web.client());
        web
    };
    let tally = Arc::new(Tally::default());
    let started = Instant::now();
    let end = started + config.duration;
    let mut customers = tokio::task::JoinSet::new();
    for n in 1..=config.customers {
        let (front, tally, seed) = (front.clone(), tally.clone(), config.seed);
        customers.spawn(async move { customer(front, &tally, n, seed, end).await });
    }
    println!("  customers started");
    faults(front, started, config.duration).await?;
    while let Some(joined) = customers.join_next().await {
        joined?;
    }
    let ran = started.elapsed();

    // The audits answer with every record at once: the auditor takes frames up to 256 MiB.
    let auditor = shield
        .wiring(registry, "auditor")?
        .max_frame_size(256 << 20);
    let auditor = Frontend::new(&auditor).await?;
    let snapshot = Snapshot::take(&auditor, &Tally::default(), Duration::from_secs(15)).await?;
    let mut checks = invariants(&snapshot);
    if shield.is_on() {
        let (tried, refused) = (
            tally.forbidden.load(Ordering::Relaxed),
            tally.forbidden_refused.load(Ordering::Relaxed),
        );
        let mut violations = Vec::new();
        if refused < tried || tried == 0 {
            violations.push(format!("{refused} of {tried} forbidden calls refused"));
        }
        checks.push(Check {
            name: "every call for another customer's account or without a token was refused",
            violations,
        });
    }
    let (watched, disagreed) = (
        tally.watched.load(Ordering::Relaxed),
        tally.watch_disagreed.load(Ordering::Relaxed),
    );
    checks.push(Check {
        name: "every order followed through Orders/Watch ended as its placing returned",
        violations: if disagreed > 0 {
            vec![format!(
                "{disagreed} of {watched} watches ended in another state"
            )]
        } else {
            Vec::new()
        },
    });
    let mut report = render(&tally, &snapshot, &wirings, ran);
    #[cfg(feature = "http")]
    {
        let g = web.stats();
        let looked_up = g.cache_hits + g.cache_misses;
        let _ = writeln!(
            report,
            "gateway     {} HTTP requests ({}); cache hit rate {:.1} % of {looked_up} cacheable; p99 ≤ {}",
            g.requests,
            g.by_status
                .iter()
                .map(|(s, n)| format!("{s}: {n}"))
                .collect::<Vec<_>>()
                .join(", "),
            100.0 * g.cache_hits as f64 / looked_up.max(1) as f64,
            g.p99_at_most
                .map_or("-".to_owned(), |d| format!("{:.1} ms", d.as_secs_f64() * 1000.0)),
        );
    }
    if let Some(line) = shield.report() {
        let _ = writeln!(
            report,
            "{line}; customers' calls for another account or without a token {}, refused {}",
            tally.forbidden.load(Ordering::Relaxed),
            tally.forbidden_refused.load(Ordering::Relaxed)
        );
    }
    report.push_str("invariants\n");
    for c in &checks {
        let verdict = if c.ok() { "ok" } else { "VIOLATED" };
        let _ = writeln!(report, "  {verdict:<8} {}", c.name);
        for v in c.violations.iter().take(5) {
            let _ = writeln!(report, "           {v}");
        }
        if c.violations.len() > 5 {
            let _ = writeln!(report, "           ... and {} more", c.violations.len() - 5);
        }
    }
    let holds = checks.iter().all(Check::ok);
    let count = |s| snapshot.count(s);
    let summary = format!(
        "shop: customers={} orders={} paid={} cancelled={} refused={} failed={} invariants={}",
        config.customers,
        snapshot.orders.orders.len(),
        count(OrderState::Paid),
        count(OrderState::Cancelled),
        count(OrderState::Refused),
        tally.failed.load(Ordering::Relaxed),
        if holds { "ok" } else { "violated" }
    );
    Ok(Outcome {
        tally,
        snapshot,
        checks,
        report,
        summary,
    })
}

/// Per-method figures of every wiring, merged.
fn merged(wirings: &[Wiring]) -> BTreeMap<String, MethodFigures> {
    let mut methods: BTreeMap<String, MethodFigures> = BTreeMap::new();
    for w in wirings {
        for (path, m) in w.metrics.snapshot() {
            match methods.get_mut(&path) {
                Some(all) => {
                    all.calls += m.calls;
                    all.errors += m.errors;
                    // Same bounds on both sides: adding cannot fail.
                    let _ = all.latency_us.add(&m.latency_us);
                }
                None => {
                    methods.insert(path, m);
                }
            }
        }
    }
    methods
}

fn render(tally: &Tally, s: &Snapshot, wirings: &[Wiring], ran: Duration) -> String {
    let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "customers   {} finished in {:.1} s; operations {}, repeated by the customer {}, failed {}",
        load(&tally.customers),
        ran.as_secs_f64(),
        load(&tally.operations),
        load(&tally.repeats),
        load(&tally.failed)
    );
    let _ = writeln!(
        out,
        "orders      placed {}: paid {} (then cancelled {}), refused {} (out of stock {}, payment declined {}, other {})",
        load(&tally.placed),
        load(&tally.paid),
        load(&tally.cancelled),
        tally.refused(),
        load(&tally.refused_stock),
        load(&tally.refused_payment),
        load(&tally.refused_other)
    );
    let _ = writeln!(
        out,
        "watches     {} orders followed to their end through Orders/Watch as they were placed",
        load(&tally.watched)
    );
    let methods = merged(wirings);
    let mut per_service: BTreeMap<&str, u64> = BTreeMap::new();
    for (path, m) in &methods {
        let service = path.split('/').next().unwrap_or(path);
        *per_service.entry(service).or_default() += m.calls;
    }
    out.push_str("calls per service (as their callers saw them; the stack's retries inside)\n");
    for (service, calls) in &per_service {
        let _ = writeln!(out, "  {service:<22} {calls:>7}");
    }
    let _ = writeln!(
        out,
        "  {:<32} {:>7} {:>7} {:>8} {:>8}",
        "method", "calls", "errors", "p50 ms", "p99 ms"
    );
    for (path, m) in &methods {
        let ms = |q| m.latency_us.value_at_quantile(q) as f64 / 1000.0;
        let _ = writeln!(
            out,
            "  {path:<32} {:>7} {:>7} {:>8.2} {:>8.2}",
            m.calls,
            m.errors,
            ms(0.5),
            ms(0.99)
        );
    }
    let (mut retries, mut over_budget, mut opened, mut rejected, mut ejections) = (0, 0, 0, 0, 0);
    for w in wirings {
        let st = w.stats.snapshot();
        retries += st.retries;
        over_budget += st.retries_over_budget;
        opened += st.breaker_opened;
        rejected += st.breaker_rejected;
        ejections += w.ejections();
    }
    let _ = writeln!(
        out,
        "middleware  retries {retries} (refused by the budget {over_budget}), breakers opened {opened} (calls refused {rejected}), endpoints ejected {ejections}"
    );
    let live = s.payments.charges.iter().filter(|c| !c.refunded).count();
    let repeats: u32 = s
        .payments
        .charges
        .iter()
        .map(|c| c.requests.saturating_sub(1))
        .sum();
    let _ = writeln!(
        out,
        "payments    {live} live charges, {} refunded; {repeats} repeated charge requests applied once",
        s.payments.charges.len() - live
    );
    out
}
