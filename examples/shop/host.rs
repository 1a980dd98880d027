//! A replica of a service as a stand-in for a process: its own tokio runtime (one worker
//! thread), its own listener on a free loopback port, registered in the registry. [`Host::kill`]
//! drops the runtime without any shutdown: connections close with no go-away, handlers stop
//! wherever they were, and the registry entry stays (as after a crash, until a lease would
//! expire), so clients find out by failing calls and eject it.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rpc_core::Server;
use rpc_discovery::{serve_registered, Instance, Registry};
use tokio::runtime::Runtime;

/// The error a replica's set-up may fail with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How a replica takes connections.
#[derive(Clone, Default)]
pub enum Listen {
    /// Plain TCP (registered as `tcp://…`).
    #[default]
    Plain,
    /// TLS over TCP with this acceptor's configuration (registered as `tls://…`).
    #[cfg(feature = "tls")]
    Tls(rpc_core::transport::tls::TlsAcceptor),
}

impl std::fmt::Debug for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Listen::Plain => f.write_str("Plain"),
            #[cfg(feature = "tls")]
            Listen::Tls(_) => f.write_str("Tls"),
        }
    }
}

/// A running replica.
pub struct Host {
    /// Its name in reports and logs, such as `inventory-2`.
    pub name: String,
    /// Where it listens.
    pub addr: SocketAddr,
    runtime: Option<Runtime>,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("name", &self.name)
            .field("addr", &self.addr)
            .field("alive", &self.runtime.is_some())
            .finish()
    }
}

impl Host {
    /// Starts replica `name` of `service`: `server` builds its [`Server`] on the replica's own
    /// runtime (so clients it makes live there too), then it serves on a free port of 127.0.0.1
    /// and registers as `service` with the tag `replica=name`; `listen` says whether over TLS.
    ///
    /// # Errors
    /// Building the runtime or binding the listener.
    pub fn start<F, Fut>(
        name: &str,
        service: &str,
        registry: Arc<dyn Registry>,
        listen: Listen,
        server: F,
    ) -> std::io::Result<Host>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<Server, BoxError>> + Send + 'static,
    {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(name)
            .enable_all()
            .build()?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let instance = Instance::new(service, "").tag("replica", name);
        let label = name.to_owned();
        runtime.spawn(async move {
            let result = async {
                let listener = tokio::net::TcpListener::from_std(listener)?;
                let server = server().await?;
                match listen {
                    Listen::Plain => serve(server, listener, &*registry, instance).await?,
                    #[cfg(feature = "tls")]
                    Listen::Tls(acceptor) => {
                        let listener = acceptor.listener(listener);
                        serve(server, listener, &*registry, instance).await?
                    }
                }
                Ok::<(), BoxError>(())
            }
            .await;
            if let Err(e) = result {
                eprintln!("{label}: {e}");
            }
        });
        Ok(Host {
            name: name.to_owned(),
            addr,
            runtime: Some(runtime),
        })
    }

    /// Whether it still runs.
    pub fn is_alive(&self) -> bool {
        self.runtime.is_some()
    }

    /// Stops it abruptly (see the module docs).
    pub fn kill(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Serves `server` on `listener`, registered as `instance`, until the runtime is dropped (no
/// signal ends it: a replica ends by [`Host::kill`]).
async fn serve<L: rpc_core::transport::Listener>(
    server: Server,
    listener: L,
    registry: &dyn Registry,
    instance: Instance,
) -> std::io::Result<()> {
    serve_registered(
        server,
        listener,
        registry,
        instance,
        Duration::ZERO,
        std::future::pending(),
    )
    .await
}

impl Drop for Host {
    fn drop(&mut self) {
        self.kill();
    }
}
