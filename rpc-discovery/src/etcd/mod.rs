//! The etcd registry: instances live under leased keys, clients watch a key prefix.
//!
//! Layout: `/{prefix}/{env}/{service}/{group}/{addr}` → the [`Instance`](crate::Instance) as
//! JSON.
//!
//! - Registering grants a lease of [`EtcdConfig::ttl`], puts the key with it and renews the lease
//!   in the background (every third of the TTL). If etcd becomes unreachable the renewal is
//!   retried with backoff; if the lease expired meanwhile, a new one is granted and the key put
//!   again. Deregistering (or dropping the [`Registration`](crate::Registration)) revokes the
//!   lease, which removes the key at once; a process that dies without deregistering disappears
//!   when its lease expires.
//! - Watching lists the prefix, then follows changes from the listed revision. While etcd is
//!   unreachable the watch keeps the last set it saw, and reconnects with backoff; it resumes from
//!   the last revision it saw, or lists again (and publishes the fresh set) if that revision has
//!   been compacted away, or if etcd comes back with an older revision than the watch had seen
//!   or as another cluster (restored from a backup, or replaced).
//!
//! One concept per file; each imports only from those above it in this list:
//!
//! - `config`: [`EtcdConfig`] (key layout, connection settings) and the retry backoff.
//! - `error`: a failed etcd call, and how it becomes a [`DiscoveryError`](crate::DiscoveryError).
//! - `keeper`: the lease keeper of one registration.
//! - `follower`: the watch follower of one query.
//! - `registry`: [`EtcdRegistry`].

mod config;
mod error;
mod follower;
mod keeper;
mod registry;

pub use config::EtcdConfig;
pub use registry::EtcdRegistry;
