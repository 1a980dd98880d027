//! The registry abstraction: register an instance and keep it alive; watch a service's endpoints.

use std::fmt;

use rpc_core::BoxFuture;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::error::DiscoveryError;
use crate::instance::{EndpointSet, Instance, Query};

/// A service registry: where servers register and clients watch.
///
/// Backends: [`StaticRegistry`](crate::StaticRegistry) (a fixed list),
/// [`MemoryRegistry`](crate::MemoryRegistry) (in-process, the default) and, with the `etcd`
/// feature, `EtcdRegistry`.
pub trait Registry: Send + Sync + 'static {
    /// Registers `instance` and keeps it registered (renewing any lease in the background) until
    /// the returned handle is dropped or [`Registration::deregister`]ed.
    fn register(&self, instance: Instance) -> BoxFuture<'_, Result<Registration, DiscoveryError>>;

    /// Watches the instances `query` selects: the current set first, then every change. While the
    /// backend is unreachable the watch keeps the last set it saw.
    fn watch(&self, query: Query) -> BoxFuture<'_, Result<Watch, DiscoveryError>>;
}

/// The live endpoint set of a query, updated in the background.
///
/// Changes that happen faster than the reader looks are coalesced: [`Watch::changed`] always
/// returns the newest set.
#[derive(Debug, Clone)]
pub struct Watch {
    rx: watch::Receiver<EndpointSet>,
}

impl Watch {
    /// A watch fed by `rx`. Backends keep the sender in a task that ends when every receiver is
    /// gone ([`watch::Sender::closed`]).
    pub fn new(rx: watch::Receiver<EndpointSet>) -> Watch {
        Watch { rx }
    }

    /// A watch of a set that never changes. Call it within a tokio runtime: a small task keeps the
    /// set published while any receiver lives.
    pub fn fixed(set: EndpointSet) -> Watch {
        let (tx, rx) = watch::channel(set);
        // Keep the sender alive for as long as any receiver: dropping it would end the watch.
        tokio::spawn(async move { tx.closed().await });
        Watch { rx }
    }

    /// The newest set.
    pub fn current(&self) -> EndpointSet {
        self.rx.borrow().clone()
    }

    /// Waits for a set newer than the last one this watch returned, and returns it.
    ///
    /// # Errors
    /// [`DiscoveryError::Closed`] when the backend stopped feeding the watch.
    pub async fn changed(&mut self) -> Result<EndpointSet, DiscoveryError> {
        self.rx
            .changed()
            .await
            .map_err(|_| DiscoveryError::Closed)?;
        Ok(self.rx.borrow_and_update().clone())
    }
}

/// Keeps an instance registered. Dropping it deregisters in the background;
/// [`Registration::deregister`] does it and waits until the registry has removed the instance.
pub struct Registration {
    instance: Instance,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

impl Registration {
    /// For backends: `task` keeps `instance` registered until `stop` is cancelled, then removes it
    /// and ends.
    pub fn new(instance: Instance, stop: CancellationToken, task: JoinHandle<()>) -> Registration {
        Registration {
            instance,
            stop,
            task: Some(task),
        }
    }

    /// The registered instance.
    pub fn instance(&self) -> &Instance {
        &self.instance
    }

    /// Removes the instance and waits until the registry has done so.
    pub async fn deregister(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
