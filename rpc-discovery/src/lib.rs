//! Service discovery for `rpc-core`: registries where servers register themselves, watched
//! endpoint sets, and a balanced channel that spreads calls over the live instances.
//!
//! Registries: [`MemoryRegistry`] (in-process, needs nothing), [`StaticRegistry`] (a fixed list)
//! and, with the `etcd` feature, `EtcdRegistry`. Servers use [`serve_registered`] (or
//! [`ServeRegistered`] to choose how registry outages are handled); clients wrap a
//! [`Watch`] in a [`BalancedChannel`], optionally under a [`Cluster`] mode.
//!
//! ```
//! use rpc_discovery::{Instance, MemoryRegistry, Query, Registry};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), rpc_discovery::DiscoveryError> {
//! let registry = MemoryRegistry::global();
//! let _reg = registry.register(Instance::new("shop.Orders", "127.0.0.1:7001")).await?;
//! let watch = registry.watch(Query::new("shop.Orders")).await?;
//! assert_eq!(watch.current().instances()[0].addr, "127.0.0.1:7001");
//! # Ok(())
//! # }
//! ```
//!
//! # Feature flags
//!
//! No feature is on by default: the default build needs nothing but cargo.
//!
//! - `etcd`: the etcd registry, `EtcdRegistry` and `EtcdConfig`. It pulls in `etcd-client` (and
//!   through it tonic), whose build script needs `protoc` on the machine.

#![forbid(unsafe_code)]

mod balance;
mod cluster;
mod error;
#[cfg(feature = "etcd")]
mod etcd;
#[cfg(feature = "gateway")]
pub mod gateway;
mod instance;
mod memory;
mod registration_state;
mod registry;
mod router;
mod serve;
mod static_registry;

pub use balance::{BalanceConfig, BalancedChannel, EndpointStats, Strategy, HASH_KEY, ROUTE_TAG};
pub use cluster::{Cluster, ClusterChannel};
pub use error::DiscoveryError;
#[cfg(feature = "etcd")]
pub use etcd::{EtcdConfig, EtcdRegistry};
pub use instance::{EndpointSet, Instance, Query, DEFAULT};
pub use memory::MemoryRegistry;
pub use registration_state::{RegistrationState, RegistrationStatus};
pub use registry::{Registration, Registry, Watch};
pub use router::{DiscoveryRouter, DEFAULT_MAX_ROUTES};
pub use serve::{dial_addr, serve_registered, ServeRegistered};
pub use static_registry::StaticRegistry;
