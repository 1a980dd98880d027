//! Registries that need nothing outside the process: in-process and static.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

use rpc_core::transport::BoxFuture;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::instance::{EndpointSet, Instance, Query};
use crate::registry::{DiscoveryError, Registration, Registry, Watch};

type Key = (String, String, String, String);

#[derive(Default)]
struct State {
    instances: BTreeMap<Key, Instance>,
    watchers: HashMap<Query, watch::Sender<EndpointSet>>,
}

impl State {
    fn set_for(&self, query: &Query) -> EndpointSet {
        EndpointSet::new(
            self.instances
                .values()
                .filter(|i| query.matches(i))
                .cloned(),
        )
    }

    fn publish(&mut self) {
        self.watchers.retain(|_, tx| tx.receiver_count() > 0);
        for (query, tx) in &self.watchers {
            let set = self.set_for(query);
            tx.send_if_modified(|old| {
                if *old == set {
                    false
                } else {
                    *old = set;
                    true
                }
            });
        }
    }
}

fn key_of(i: &Instance) -> Key {
    let (e, s, g, a) = i.key();
    (e.to_owned(), s.to_owned(), g.to_owned(), a.to_owned())
}

/// The in-process registry: everything in one process (tests, demos, small deployments) shares
/// it through [`MemoryRegistry::global`], or a private one from [`MemoryRegistry::new`].
///
/// ```
/// use rpc_discovery::{Instance, MemoryRegistry, Query, Registry};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), rpc_discovery::DiscoveryError> {
/// let registry = MemoryRegistry::new();
/// let mut watch = registry.watch(Query::new("shop.Inventory")).await?;
/// assert!(watch.current().is_empty());
///
/// let reg = registry.register(Instance::new("shop.Inventory", "127.0.0.1:7001")).await?;
/// assert_eq!(watch.changed().await?.len(), 1);
///
/// reg.deregister().await;
/// assert!(watch.changed().await?.is_empty());
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Default)]
pub struct MemoryRegistry {
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for MemoryRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.lock().instances.len();
        f.debug_struct("MemoryRegistry")
            .field("instances", &n)
            .finish()
    }
}

impl MemoryRegistry {
    /// A registry of its own.
    pub fn new() -> MemoryRegistry {
        MemoryRegistry::default()
    }

    /// The process-wide registry.
    pub fn global() -> MemoryRegistry {
        static GLOBAL: OnceLock<MemoryRegistry> = OnceLock::new();
        GLOBAL.get_or_init(MemoryRegistry::new).clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Every update leaves the maps consistent, so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every registered instance.
    pub fn instances(&self) -> Vec<Instance> {
        self.lock().instances.values().cloned().collect()
    }
}

impl Registry for MemoryRegistry {
    fn register(&self, instance: Instance) -> BoxFuture<'_, Result<Registration, DiscoveryError>> {
        Box::pin(async move {
            validate(&instance)?;
            let key = key_of(&instance);
            {
                let mut state = self.lock();
                state.instances.insert(key.clone(), instance.clone());
                state.publish();
            }
            let stop = CancellationToken::new();
            let registry = self.clone();
            let cancelled = stop.clone();
            let task = tokio::spawn(async move {
                cancelled.cancelled().await;
                let mut state = registry.lock();
                state.instances.remove(&key);
                state.publish();
            });
            Ok(Registration::new(instance, stop, task))
        })
    }

    fn watch(&self, query: Query) -> BoxFuture<'_, Result<Watch, DiscoveryError>> {
        Box::pin(async move {
            let mut state = self.lock();
            if let Some(tx) = state.watchers.get(&query) {
                return Ok(Watch::new(tx.subscribe()));
            }
            let (tx, rx) = watch::channel(state.set_for(&query));
            state.watchers.insert(query, tx);
            Ok(Watch::new(rx))
        })
    }
}

/// Checks what every registry needs of an instance.
pub(crate) fn validate(i: &Instance) -> Result<(), DiscoveryError> {
    let bad = |what: &str| Err(DiscoveryError::InvalidInstance(what.to_owned()));
    for (name, v) in [
        ("service", &i.service),
        ("env", &i.env),
        ("group", &i.group),
        ("addr", &i.addr),
    ] {
        if v.is_empty() {
            return bad(&format!("{name} is empty"));
        }
        if name != "addr" && v.contains('/') {
            return bad(&format!("{name} {v:?} contains '/'"));
        }
    }
    Ok(())
}

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
