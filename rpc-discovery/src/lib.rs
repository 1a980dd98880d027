//! Service discovery for `rpc-core`.
//!
//! Registries (static, in-process, etcd) and balancers arrive with the discovery work; this crate is a
//! placeholder so that the workspace layout is stable.
//!
//! ```
//! // The crate builds on rpc-core's Channel.
//! let _ = std::any::type_name::<rpc_core::Channel>();
//! ```
