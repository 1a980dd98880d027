//! Serving with registration: register once the listener is bound (retrying in the background
//! while the registry is down), deregister before draining.

use std::future::Future;
use std::io;
use std::time::Duration;

use rpc_core::backoff::Backoff;
use rpc_core::transport::{Listener, PeerAddr};
use rpc_core::Server;
use tokio::sync::watch;

use crate::error::DiscoveryError;
use crate::instance::Instance;
use crate::registration_state::{RegistrationState, RegistrationStatus};
use crate::registry::{Registration, Registry};

/// The address clients should dial for a listener: `host:port` for TCP, `unix:PATH`,
/// `memory://NAME`, and `tls://` before the address under TLS.
pub fn dial_addr(local: &PeerAddr) -> Option<String> {
    match local {
        PeerAddr::Tls(inner, _) => dial_addr(inner).map(|a| format!("tls://{a}")),
        PeerAddr::Tcp(a) => Some(a.to_string()),
        PeerAddr::Unix(Some(p)) => Some(format!("unix:{}", p.display())),
        PeerAddr::Unix(None) => None,
        PeerAddr::Memory(name, _) => Some(format!("memory://{name}")),
        _ => None,
    }
}

/// Serves `server` on `listener` and registers `instance` in `registry` once the listener is
/// bound: [`ServeRegistered`] with its defaults and `grace`. An instance with an empty address,
/// or one ending in `:0`, takes the listener's.
///
/// The server serves even while the registry is unreachable: registration is retried in the
/// background with backoff (and logged) until it succeeds; [`ServeRegistered::fail_fast`] makes
/// a first failure end serving instead, and [`ServeRegistered::status`] tells whether the
/// instance is registered yet.
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
/// As [`ServeRegistered::serve`].
pub async fn serve_registered<L, R, F>(
    server: Server,
    listener: L,
    registry: &R,
    instance: Instance,
    grace: Duration,
    signal: F,
) -> io::Result<()>
where
    L: Listener,
    R: Registry + ?Sized,
    F: Future<Output = ()>,
{
    ServeRegistered::new(instance)
        .grace(grace)
        .serve(server, listener, registry, signal)
        .await
}

/// Serving with registration, configured: how long to keep answering after deregistering,
/// whether an unreachable registry stops the server, and how registration is retried.
///
/// ```
/// use std::time::Duration;
/// use rpc_core::{server::RawService, transport::memory::MemoryListener, Server};
/// use rpc_discovery::{Instance, MemoryRegistry, ServeRegistered};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let registry = MemoryRegistry::new();
/// let serve = ServeRegistered::new(Instance::new("demo.Echo", ""))
///     .grace(Duration::from_millis(200));
/// let mut status = serve.status();
/// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
/// let serving = tokio::spawn({
///     let registry = registry.clone();
///     async move {
///         let server = Server::builder().add_service(RawService::new("demo.Echo"));
///         let listener = MemoryListener::bind("serve-registered-doc")?;
///         serve.serve(server, listener, &registry, async { stopped.await.ok(); }).await
///     }
/// });
/// status.registered().await?;
/// assert_eq!(registry.instances()[0].addr, "memory://serve-registered-doc");
/// stop.send(()).ok();
/// serving.await??;
/// assert!(!status.is_registered());
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct ServeRegistered {
    instance: Instance,
    grace: Duration,
    fail_fast: bool,
    retry: Backoff,
    state: watch::Sender<RegistrationState>,
}

impl ServeRegistered {
    /// Serving that registers `instance`: no grace period, serving through registry outages,
    /// registration retried after 100 ms, doubling up to 10 s, each wait shortened by up to a
    /// fifth at random.
    pub fn new(instance: Instance) -> ServeRegistered {
        let (state, _) = watch::channel(RegistrationState::Registering {
            attempts: 0,
            last_error: None,
        });
        ServeRegistered {
            instance,
            grace: Duration::ZERO,
            fail_fast: false,
            retry: Backoff::new(Duration::from_millis(100), Duration::from_secs(10)).jitter(0.2),
            state,
        }
    }

    /// How long the server keeps answering between deregistering and draining.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use rpc_discovery::{Instance, ServeRegistered};
    /// let serve = ServeRegistered::new(Instance::new("demo.Echo", ""))
    ///     .grace(Duration::from_millis(500));
    /// # let _ = serve;
    /// ```
    #[must_use]
    pub fn grace(mut self, grace: Duration) -> ServeRegistered {
        self.grace = grace;
        self
    }

    /// With `true`, a first registration that fails ends [`serve`](ServeRegistered::serve) with
    /// the error before anything is served, as Dubbo's registry `check` does; with `false` (the
    /// default), the server serves and registration is retried in the background.
    ///
    /// ```
    /// # use rpc_discovery::{Instance, ServeRegistered};
    /// let serve = ServeRegistered::new(Instance::new("demo.Echo", "")).fail_fast(true);
    /// # let _ = serve;
    /// ```
    #[must_use]
    pub fn fail_fast(mut self, fail_fast: bool) -> ServeRegistered {
        self.fail_fast = fail_fast;
        self
    }

    /// The waits between registration attempts while the registry fails: `retry.delay(n)` after
    /// the `n + 1`-th failure in a row.
    ///
    /// ```
    /// # use std::time::Duration;
    /// use rpc_core::backoff::Backoff;
    /// # use rpc_discovery::{Instance, ServeRegistered};
    /// let serve = ServeRegistered::new(Instance::new("demo.Echo", ""))
    ///     .retry(Backoff::new(Duration::from_millis(50), Duration::from_secs(5)).jitter(0.25));
    /// # let _ = serve;
    /// ```
    #[must_use]
    pub fn retry(mut self, retry: Backoff) -> ServeRegistered {
        self.retry = retry;
        self
    }

    /// A view of the registration's state, to tell (e.g. in a readiness check) whether the
    /// instance is registered yet.
    pub fn status(&self) -> RegistrationStatus {
        RegistrationStatus {
            rx: self.state.subscribe(),
        }
    }

    /// Serves `server` on `listener` and registers the instance in `registry` once the listener
    /// is bound (see [`serve_registered`]), until `signal` completes.
    ///
    /// # Errors
    /// - `InvalidInput` if the instance has no address and the listener's cannot be dialled, or
    ///   the instance is invalid;
    /// - a registration failure (as kind `Other`, the [`DiscoveryError`] as its source): with
    ///   [`fail_fast`](ServeRegistered::fail_fast), the first one, before serving; otherwise
    ///   only a refusal that retrying cannot fix (the registry does not support registration, or
    ///   rejects the instance), which ends serving;
    /// - the server's error.
    pub async fn serve<L, R, F>(
        self,
        server: Server,
        listener: L,
        registry: &R,
        signal: F,
    ) -> io::Result<()>
    where
        L: Listener,
        R: Registry + ?Sized,
        F: Future<Output = ()>,
    {
        let ServeRegistered {
            mut instance,
            grace,
            fail_fast,
            retry,
            state,
        } = self;
        let result = async {
            take_listener_addr(&mut instance, &listener)?;
            instance
                .validate()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            let first = if fail_fast {
                let registration = registry
                    .register(instance.clone())
                    .await
                    .map_err(io::Error::other)?;
                registered(&registration, &state, 0);
                Some(registration)
            } else {
                None
            };
            let mut refused = None;
            let shutdown = async {
                let mut signal = std::pin::pin!(signal);
                let registration = match first {
                    Some(r) => r,
                    None => tokio::select! {
                        biased;
                        // Stopped before registering: nothing to deregister, no one to warn.
                        () = &mut signal => return,
                        r = register(registry, &instance, &retry, &state) => match r {
                            Ok(r) => r,
                            Err(e) => {
                                refused = Some(e);
                                return;
                            }
                        },
                    },
                };
                signal.await;
                let addr = registration.instance().addr.clone();
                registration.deregister().await;
                state.send_replace(RegistrationState::Deregistered);
                tracing::info!(%addr, "deregistered");
                tokio::time::sleep(grace).await;
            };
            server.serve_with_shutdown(listener, shutdown).await?;
            match refused {
                Some(e) => {
                    tracing::error!(
                        addr = %instance.addr, service = %instance.service, error = %e,
                        "the registry refused the instance; stopped serving"
                    );
                    Err(io::Error::other(e))
                }
                None => Ok(()),
            }
        }
        .await;
        state.send_replace(RegistrationState::Deregistered);
        result
    }
}

/// Gives `instance` the listener's address if it has none (empty, or a port 0).
fn take_listener_addr<L: Listener>(instance: &mut Instance, listener: &L) -> io::Result<()> {
    if instance.addr.is_empty() || instance.addr.ends_with(":0") {
        let local = listener.local_addr()?;
        instance.addr = dial_addr(&local).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("listener address {local} cannot be dialled; give the instance an address"),
            )
        })?;
    }
    Ok(())
}

/// Records that `registration` succeeded after `failures` failed attempts.
fn registered(
    registration: &Registration,
    state: &watch::Sender<RegistrationState>,
    failures: u32,
) {
    let instance = registration.instance();
    tracing::info!(
        addr = %instance.addr, service = %instance.service, failed_attempts = failures,
        "registered"
    );
    state.send_replace(RegistrationState::Registered);
}

/// Registers `instance`, retrying with `retry` while the registry fails in a way retrying may
/// fix; fails with a refusal that it cannot fix.
async fn register<R: Registry + ?Sized>(
    registry: &R,
    instance: &Instance,
    retry: &Backoff,
    state: &watch::Sender<RegistrationState>,
) -> Result<Registration, DiscoveryError> {
    let mut failures = 0u32;
    loop {
        match registry.register(instance.clone()).await {
            Ok(registration) => {
                registered(&registration, state, failures);
                return Ok(registration);
            }
            Err(e @ (DiscoveryError::Unsupported { .. } | DiscoveryError::InvalidInstance(_))) => {
                return Err(e)
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                let wait = retry.delay(failures - 1);
                // The first failure and then ever more rarely (the 2nd, 4th, 8th...): an outage
                // stays visible without flooding the log.
                if failures.is_power_of_two() {
                    tracing::warn!(
                        addr = %instance.addr, service = %instance.service, error = %e,
                        attempts = failures, retry_in = ?wait,
                        "registration failed; serving unregistered and retrying"
                    );
                } else {
                    tracing::debug!(
                        addr = %instance.addr, error = %e, attempts = failures, retry_in = ?wait,
                        "registration failed again"
                    );
                }
                state.send_replace(RegistrationState::Registering {
                    attempts: failures,
                    last_error: Some(e.to_string()),
                });
                tokio::time::sleep(wait).await;
            }
        }
    }
}
