//! The reference shop: an e-commerce back end made of six services, each defined once with
//! `#[service]`, calling each other through balanced channels over a registry.
//!
//! | service | wire name | what it keeps | replicas in `--example shop` |
//! |---|---|---|---|
//! | [`users`] | `shop.Users` | accounts | 1 |
//! | [`catalogue`] | `shop.Catalogue` | products and prices, search by name | 1 |
//! | [`inventory`] | `shop.Inventory` | stock, and holds for orders that expire if not confirmed | 2 |
//! | [`orders`] | `shop.Orders` | orders; placing one is a saga across the others | 2 |
//! | [`payments`] | `shop.Payments` | wallets, charges (at most one per order) and refunds | 1 |
//! | [`notifications`] | `shop.Notifications` | what each customer was told | 1 |
//!
//! Every call between services goes through [`wiring::Wiring::stack`]: a generated client over
//! deadline and retry (with a budget) layers over a `BalancedChannel` that follows the registry,
//! with ejection and a circuit breaker per endpoint. Every method that changes state is
//! idempotent by a key the caller chooses (an order id, a top-up id, an e-mail address), so a
//! retry after a lost response, or a call repeated on another replica after a crash, applies its
//! effect once.
//!
//! The replicas of one service share its state, as they would share a database: inventory and
//! orders keep their records in a [`store::Store`] (compare-and-set), in memory when the whole
//! shop runs in one process ([`local`]), in etcd when each replica is a process of its own
//! (`cluster`, feature `etcd`). Killing a replica loses its connections and the calls it was
//! running, never the data.
//!
//! [`journey`] drives the shop with simulated customers and [`audit`] checks, through the
//! services' own `Audit` methods, that nothing was lost or applied twice.
//!
//! With `--secure` (feature `secure`) every process talks over mutual TLS with an identity of its
//! own, customers sign in for a JWT, and orders and payments authorize each call
//! ([`security`]).

pub mod audit;
pub mod catalogue;
#[cfg(feature = "etcd")]
pub mod cluster;
pub mod host;
pub mod inventory;
pub mod journey;
pub mod local;
pub mod metrics;
pub mod notifications;
pub mod orders;
pub mod payments;
pub mod security;
pub mod store;
pub mod users;
#[cfg(feature = "http")]
pub mod web;
pub mod wiring;

pub use inventory::{
    Delivery, Inventory, InventoryClient, InventoryError, InventoryServer, Reservation,
    ReserveRequest, StockLevel, Warehouse,
};

/// Locks a mutex whose data stays consistent even if a holder panicked (every update of the
/// shop's state is a few assignments under one lock).
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
