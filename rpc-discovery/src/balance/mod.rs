//! A channel over a watched endpoint set: one connection per live endpoint, a pick per call,
//! passive health checks, canary routing.
//!
//! One concept per file; each imports only from those above it in this list:
//!
//! - `config`: [`BalanceConfig`] and [`Strategy`].
//! - `health`: one endpoint's health: peak-EWMA latency, failures in a row, ejection, probing.
//! - `node`: one live endpoint: its instance, connection, counters, health and breaker.
//! - `route`: canary routing ([`ROUTE_TAG`]): which endpoints may take a call.
//! - `pick`: the strategies, one file each, and the consistent-hash ring ([`HASH_KEY`]).
//! - `snapshot`: the endpoints of one set and the ring over them.
//! - `channel`: [`BalancedChannel`] itself.

mod channel;
mod config;
mod health;
mod node;
mod pick;
mod route;
mod snapshot;

pub use channel::{BalancedChannel, EndpointStats};
pub use config::{BalanceConfig, Strategy};
pub use pick::HASH_KEY;
pub use route::ROUTE_TAG;
