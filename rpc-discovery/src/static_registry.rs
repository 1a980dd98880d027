//! A registry of a fixed list of instances, for when addresses come from configuration.

use rpc_core::BoxFuture;

use crate::error::DiscoveryError;
use crate::instance::{EndpointSet, Instance, Query};
use crate::registry::{Registration, Registry, Watch};

/// A fixed list of addresses: no registration, no changes.
///
/// ```
/// use rpc_discovery::{Query, Registry, StaticRegistry};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), rpc_discovery::DiscoveryError> {
/// let registry = StaticRegistry::new("shop.Inventory", ["10.0.0.1:7001", "10.0.0.2:7001"]);
/// let watch = registry.watch(Query::new("shop.Inventory")).await?;
/// assert_eq!(watch.current().len(), 2);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct StaticRegistry {
    instances: Vec<Instance>,
}

impl StaticRegistry {
    /// Instances of `service` at `addrs`, in the default environment and group.
    pub fn new<A: Into<String>>(
        service: impl Into<String>,
        addrs: impl IntoIterator<Item = A>,
    ) -> StaticRegistry {
        let service = service.into();
        StaticRegistry {
            instances: addrs
                .into_iter()
                .map(|a| Instance::new(service.clone(), a))
                .collect(),
        }
    }

    /// These instances.
    pub fn from_instances(instances: impl IntoIterator<Item = Instance>) -> StaticRegistry {
        StaticRegistry {
            instances: instances.into_iter().collect(),
        }
    }
}

impl Registry for StaticRegistry {
    fn register(&self, _instance: Instance) -> BoxFuture<'_, Result<Registration, DiscoveryError>> {
        Box::pin(async {
            Err(DiscoveryError::Unsupported {
                backend: "static",
                what: "registration",
            })
        })
    }

    fn watch(&self, query: Query) -> BoxFuture<'_, Result<Watch, DiscoveryError>> {
        let set = EndpointSet::new(self.instances.iter().filter(|i| query.matches(i)).cloned());
        Box::pin(async move { Ok(Watch::fixed(set)) })
    }
}
