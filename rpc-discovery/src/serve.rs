//! Serving with registration: register once the listener is bound, deregister before draining.

use std::future::Future;
use std::io;
use std::time::Duration;

use rpc_core::transport::{Listener, PeerAddr};
use rpc_core::Server;

use crate::error::DiscoveryError;
use crate::instance::Instance;
use crate::registry::Registry;

/// The address clients should dial for a listener: `host:port` for TCP, `unix:PATH`,
/// `memory://NAME`.
pub fn dial_addr(local: &PeerAddr) -> Option<String> {
    match local {
        PeerAddr::Tcp(a) => Some(a.to_string()),
        PeerAddr::Unix(Some(p)) => Some(format!("unix:{}", p.display())),
        PeerAddr::Unix(None) => None,
        PeerAddr::Memory(name, _) => Some(format!("memory://{name}")),
        _ => None,
    }
}

/// Serves `server` on `listener` and registers `instance` in `registry` once the listener is
/// bound. An instance with an empty address, or one ending in `:0`, takes the listener's.
///
/// When `signal` completes, the instance is deregistered first, so that clients stop picking this
/// server; the server keeps answering for `grace` (time for clients to see the change: the
/// in-process registry is immediate, etcd takes milliseconds), and only then sends go-away and
/// drains its calls.
///
/// ```
/// use std::time::Duration;
/// use rpc_core::{server::RawService, transport::memory::MemoryListener, Server};
/// use rpc_discovery::{serve_registered, Instance, MemoryRegistry, Query, Registry};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let registry = MemoryRegistry::new();
/// let watch = registry.watch(Query::new("demo.Echo")).await?;
/// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
/// let server = Server::builder().add_service(RawService::new("demo.Echo"));
/// let serving = tokio::spawn({
///     let registry = registry.clone();
///     async move {
///         let listener = MemoryListener::bind("serve-doc")?;
///         let signal = async { stopped.await.ok(); };
///         let instance = Instance::new("demo.Echo", "");
///         serve_registered(server, listener, &registry, instance, Duration::ZERO, signal).await
///     }
/// });
/// # let mut watch = watch;
/// # while watch.current().is_empty() { watch.changed().await?; }
/// assert_eq!(watch.current().instances()[0].addr, "memory://serve-doc");
/// stop.send(()).ok();
/// serving.await??;
/// assert!(watch.current().is_empty());
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// Registration failures (as `io::Error` of kind `Other`), or the server's error.
pub async fn serve_registered<L, R, F>(
    server: Server,
    listener: L,
    registry: &R,
    mut instance: Instance,
    grace: Duration,
    signal: F,
) -> io::Result<()>
where
    L: Listener,
    R: Registry + ?Sized,
    F: Future<Output = ()>,
{
    if instance.addr.is_empty() || instance.addr.ends_with(":0") {
        let local = listener.local_addr()?;
        instance.addr = dial_addr(&local).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("listener address {local} cannot be dialled; give the instance an address"),
            )
        })?;
    }
    let registration = registry
        .register(instance)
        .await
        .map_err(|e: DiscoveryError| io::Error::other(e))?;
    tracing::info!(addr = %registration.instance().addr, service = %registration.instance().service, "registered");
    server
        .serve_with_shutdown(listener, async move {
            signal.await;
            let addr = registration.instance().addr.clone();
            registration.deregister().await;
            tracing::info!(%addr, "deregistered");
            tokio::time::sleep(grace).await;
        })
        .await
}
