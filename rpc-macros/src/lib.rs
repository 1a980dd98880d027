//! Procedural macros for `rpc-core`.
//!
//! The `#[service]` attribute arrives with the service-definition work; this crate is a placeholder
//! so that the workspace layout is stable.
