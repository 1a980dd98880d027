//! The shop as separate processes over etcd (feature `etcd`; `scripts/shop-cluster` runs it):
//! [`serve`] runs one replica of one service, [`drive`] runs the customers and the audit
//! against whatever is registered. The registry is etcd (leases of 2 s, so a killed replica's
//! entry goes away by itself), and the replicated services (inventory, orders) keep their state
//! in etcd too, under [`DATA_PREFIX`]: a replica killed and started again finds it.

use std::sync::Arc;
use std::time::Duration;

use rpc_core::Server;
use rpc_discovery::{serve_registered, EtcdConfig, EtcdRegistry, Instance, Query, Registry};
use tokio::time::Instant;

use super::catalogue::{CatalogueServer, MemoryCatalogue, Product};
use super::host::BoxError;
use super::inventory::{InventoryServer, Warehouse};
use super::journey::PRODUCTS;
use super::local::{restock, Outcome, RunConfig, SWEEP};
use super::notifications::{MemoryNotifications, NotificationsServer};
use super::orders::{OrderBook, OrdersReplica, OrdersServer, RECOVER_PERIOD};
use super::payments::{MemoryPayments, PaymentsServer};
use super::store::EtcdStore;
use super::users::{MemoryUsers, UsersServer};
use super::wiring::Wiring;

/// Where the replicated services keep their records in etcd.
pub const DATA_PREFIX: &str = "/shop/data/";

/// The services, by the name `serve` takes, with their wire names and replica counts.
pub const SERVICES: &[(&str, &str, usize)] = &[
    ("users", "shop.Users", 1),
    ("catalogue", "shop.Catalogue", 1),
    ("payments", "shop.Payments", 1),
    ("notifications", "shop.Notifications", 1),
    ("inventory", "shop.Inventory", 2),
    ("orders", "shop.Orders", 2),
];

async fn registry(etcd: &str) -> Result<Arc<dyn Registry>, BoxError> {
    let config = EtcdConfig::new().ttl(Duration::from_secs(2));
    Ok(Arc::new(EtcdRegistry::connect([etcd], config).await?))
}

/// Serves one replica of `service` (`users`, `catalogue`, `payments`, `notifications`,
/// `inventory` or `orders`) as `name` on a free port of 127.0.0.1, registered in etcd at `etcd`,
/// until SIGTERM or Ctrl-C (then it deregisters and drains). Prints `shop: NAME (WIRE NAME)
/// listening on ADDR` once it serves.
///
/// # Errors
/// An unknown service, etcd unreachable, or the listener's failure.
pub async fn serve(etcd: &str, service: &str, name: &str) -> Result<(), BoxError> {
    let Some(&(_, wire, _)) = SERVICES.iter().find(|s| s.0 == service) else {
        return Err(format!("unknown service {service:?}").into());
    };
    let registry = registry(etcd).await?;
    let endpoints = [etcd.to_owned()];
    let data = || EtcdStore::connect(&endpoints, DATA_PREFIX);
    let server = Server::builder();
    let server = match service {
        "users" => server.add_service(UsersServer::new(MemoryUsers::default())),
        "catalogue" => {
            let products = PRODUCTS.iter().map(|&(sku, name, price, _)| Product {
                sku: sku.to_owned(),
                name: name.to_owned(),
                price_cents: price,
            });
            server.add_service(CatalogueServer::new(MemoryCatalogue::new(products)))
        }
        "payments" => server.add_service(PaymentsServer::new(MemoryPayments::default())),
        "notifications" => {
            server.add_service(NotificationsServer::new(MemoryNotifications::default()))
        }
        "inventory" => {
            let warehouse = Warehouse::open(Arc::new(data().await?));
            warehouse
                .stock_if_new(PRODUCTS.iter().map(|&(sku, .., n)| (sku, n)))
                .await?;
            tokio::spawn(warehouse.clone().sweep(SWEEP));
            server.add_service(InventoryServer::new(warehouse))
        }
        _ => {
            let book = OrderBook::open(Arc::new(data().await?));
            let replica = OrdersReplica::new(book, &Wiring::new(registry.clone())).await?;
            tokio::spawn(replica.clone().recover(RECOVER_PERIOD));
            server.add_service(OrdersServer::new(replica))
        }
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!(
        "shop: {name} ({wire}) listening on {}",
        listener.local_addr()?
    );
    let instance = Instance::new(wire, "").tag("replica", name);
    let stop = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    };
    serve_registered(
        server,
        listener,
        &*registry,
        instance,
        Duration::from_millis(100),
        stop,
    )
    .await?;
    Ok(())
}

/// Waits until every service has its replicas registered in etcd at `etcd` (at most
/// `within`), then drives the shop as [`local::drive`](super::local::drive) does, with the
/// scarce products' delivery at a quarter of the run. Killing replicas is left to the caller
/// (`scripts/shop-cluster`), which waits for the line `  customers started`.
///
/// # Errors
/// Replicas missing after `within`, etcd unreachable, or what `drive` fails with.
pub async fn drive(etcd: &str, config: &RunConfig, within: Duration) -> Result<Outcome, BoxError> {
    let registry = registry(etcd).await?;
    let until = Instant::now() + within;
    for &(_, wire, replicas) in SERVICES {
        let mut watch = registry.watch(Query::new(wire)).await?;
        while watch.current().len() < replicas {
            let left = until.saturating_duration_since(Instant::now());
            if tokio::time::timeout(left, watch.changed()).await.is_err() {
                return Err(format!(
                    "{wire}: {} of {replicas} replicas registered after {within:?}",
                    watch.current().len()
                )
                .into());
            }
        }
    }
    println!(
        "shop: 8 replicas of 6 services as processes, etcd at {etcd}; {} customers for {:.1} s \
         (calls, latencies and middleware below: this process's clients; each replica counts its own)",
        config.customers,
        config.duration.as_secs_f64()
    );
    super::local::drive(
        config,
        registry,
        &super::security::Shield::default(),
        Vec::new(),
        |front, started, duration| async move {
            tokio::time::sleep_until(started + duration / 4).await;
            restock(&front).await
        },
    )
    .await
}
