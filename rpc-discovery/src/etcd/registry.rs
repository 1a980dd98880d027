//! The etcd registry itself: registrations handed to lease keepers, watches to followers.

use std::fmt;
use std::sync::Arc;

use etcd_client::Client;
use rpc_core::BoxFuture;
use tokio_util::sync::CancellationToken;

use super::config::EtcdConfig;
use super::error::{CallError, BACKEND};
use super::follower::{Follower, WatchTable};
use super::keeper::Keeper;
use crate::error::DiscoveryError;
use crate::instance::{Instance, Query};
use crate::registry::{Registration, Registry, Watch};

struct Shared {
    client: Client,
    config: EtcdConfig,
    watches: WatchTable,
}

/// A registry in etcd: servers register under leased keys, clients watch key prefixes.
///
/// Cheap to clone (clones share one connection). Registrations and watches run in background
/// tasks on the Tokio runtime that created them.
///
/// ```no_run
/// use std::time::Duration;
/// use rpc_discovery::{EtcdConfig, EtcdRegistry, Instance, Query, Registry};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), rpc_discovery::DiscoveryError> {
/// let registry = EtcdRegistry::connect(["http://127.0.0.1:2379"], EtcdConfig::new()).await?;
/// let reg = registry.register(Instance::new("shop.Orders", "10.0.0.7:7001")).await?;
/// let mut watch = registry.watch(Query::new("shop.Orders")).await?;
/// assert_eq!(watch.current().len(), 1);
/// reg.deregister().await;
/// assert!(watch.changed().await?.is_empty());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct EtcdRegistry {
    shared: Arc<Shared>,
}

impl fmt::Debug for EtcdRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdRegistry")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl EtcdRegistry {
    /// A registry on the etcd cluster at `endpoints` (`http://host:port` or `host:port`).
    ///
    /// The connection is made lazily: this succeeds even if no endpoint is up yet (unless
    /// credentials are configured, which are checked at once); the first registration or watch
    /// reports an unreachable cluster.
    ///
    /// # Errors
    /// [`DiscoveryError::Backend`] if there is no endpoint, an endpoint is malformed, or
    /// authentication fails; its source is the `etcd_client::Error`.
    pub async fn connect<I, S>(
        endpoints: I,
        config: EtcdConfig,
    ) -> Result<EtcdRegistry, DiscoveryError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        const CONNECT: &str = "connecting";
        let endpoints: Vec<String> = endpoints
            .into_iter()
            .map(|e| e.as_ref().to_owned())
            .collect();
        if endpoints.is_empty() {
            let e = etcd_client::Error::InvalidArgs("no endpoints given".to_owned());
            return Err(CallError::etcd(CONNECT, e).into());
        }
        let client = Client::connect(&endpoints, Some(config.connect_options()))
            .await
            .map_err(|e| CallError::etcd(CONNECT, e))?;
        Ok(EtcdRegistry::from_client(client, config))
    }

    /// A registry over an etcd client built by the caller (e.g. with TLS). The connection
    /// settings of `config` (timeouts, keep-alive, credentials) are then not used.
    pub fn from_client(client: Client, config: EtcdConfig) -> EtcdRegistry {
        EtcdRegistry {
            shared: Arc::new(Shared {
                client,
                config,
                watches: WatchTable::default(),
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &EtcdConfig {
        &self.shared.config
    }
}

impl Registry for EtcdRegistry {
    fn register(&self, instance: Instance) -> BoxFuture<'_, Result<Registration, DiscoveryError>> {
        Box::pin(async move {
            instance.validate()?;
            let config = &self.shared.config;
            let value = serde_json::to_vec(&instance).map_err(|e| {
                DiscoveryError::backend(BACKEND, "encoding the instance as JSON", e)
            })?;
            let key = config.key(&instance);
            let mut keeper = Keeper::new(self.shared.client.clone(), config, key, value);
            keeper.grant_and_put().await?;
            tracing::debug!(key = %keeper.key(), lease = ?keeper.lease(), "registered in etcd");
            let stop = CancellationToken::new();
            let task = tokio::spawn(keeper.run(stop.clone()));
            Ok(Registration::new(instance, stop, task))
        })
    }

    fn watch(&self, query: Query) -> BoxFuture<'_, Result<Watch, DiscoveryError>> {
        Box::pin(async move {
            let watches = &self.shared.watches;
            if let Some(watch) = watches.subscribe(&query) {
                return Ok(watch);
            }
            let client = self.shared.client.clone();
            let follower = Follower::new(client, &self.shared.config, query, watches.clone());
            Ok(follower.start().await?)
        })
    }
}
