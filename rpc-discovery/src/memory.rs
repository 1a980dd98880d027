//! The in-process registry: needs nothing outside the process.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

use rpc_core::BoxFuture;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::error::DiscoveryError;
use crate::instance::{EndpointSet, Instance, Query};
use crate::registry::{Registration, Registry, Watch};

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
            instance.validate()?;
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
