//! What can go wrong talking to a registry.

use std::error::Error;

/// What can go wrong talking to a registry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// The backend cannot do this (e.g. registering in a static registry).
    #[error("{backend} registry does not support {what}")]
    Unsupported {
        /// The backend.
        backend: &'static str,
        /// The operation.
        what: &'static str,
    },
    /// The instance is not valid for this registry.
    #[error("invalid instance: {0}")]
    InvalidInstance(String),
    /// The backend failed or is unreachable. The cause is kept as the [`source`](Error::source);
    /// build one with [`DiscoveryError::backend`].
    #[error("{backend} registry: {context}: {source}")]
    Backend {
        /// The backend.
        backend: &'static str,
        /// What the registry was doing, e.g. `granting a lease`.
        context: String,
        /// Why it failed: the backend client's error (for etcd, an `etcd_client::Error` when the
        /// client reported one).
        #[source]
        source: Box<dyn Error + Send + Sync>,
    },
    /// The watch ended: its registry was dropped.
    #[error("the watch ended")]
    Closed,
}

impl DiscoveryError {
    /// A [`DiscoveryError::Backend`]: `backend` failed while `context`, because of `source`
    /// (an error, or a message).
    ///
    /// ```
    /// use std::error::Error as _;
    /// use rpc_discovery::DiscoveryError;
    ///
    /// let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
    /// let err = DiscoveryError::backend("consul", "listing services", io);
    /// assert_eq!(err.to_string(), "consul registry: listing services: refused");
    /// assert!(err.source().unwrap().downcast_ref::<std::io::Error>().is_some());
    /// ```
    pub fn backend(
        backend: &'static str,
        context: impl Into<String>,
        source: impl Into<Box<dyn Error + Send + Sync>>,
    ) -> DiscoveryError {
        DiscoveryError::Backend {
            backend,
            context: context.into(),
            source: source.into(),
        }
    }
}
