//! The etcd registry: instances live under leased keys, clients watch a key prefix.
//!
//! Layout: `/{prefix}/{env}/{service}/{group}/{addr}` → the [`Instance`] as JSON.
//!
//! - Registering grants a lease of [`EtcdConfig::ttl`], puts the key with it and renews the lease
//!   in the background (every third of the TTL). If etcd becomes unreachable the renewal is
//!   retried with backoff; if the lease expired meanwhile, a new one is granted and the key put
//!   again. Deregistering (or dropping the [`Registration`]) revokes the lease, which removes the
//!   key at once; a process that dies without deregistering disappears when its lease expires.
//! - Watching lists the prefix, then follows changes from the listed revision. While etcd is
//!   unreachable the watch keeps the last set it saw, and reconnects with backoff; it resumes from
//!   the last revision it saw, or lists again if that revision has been compacted away.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use etcd_client::{
    Client, ConnectOptions, EventType, GetOptions, PutOptions, WatchOptions, WatchResponse,
};
use rpc_core::transport::BoxFuture;
use tokio::sync::watch;
use tokio::time::{timeout, Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::instance::{EndpointSet, Instance, Query};
use crate::memory::validate;
use crate::registry::{DiscoveryError, Registration, Registry, Watch};

const BACKEND: &str = "etcd";

fn backend_error(message: impl fmt::Display) -> DiscoveryError {
    DiscoveryError::Backend {
        backend: BACKEND,
        message: message.to_string(),
    }
}

/// How an [`EtcdRegistry`] lays out its keys and talks to etcd.
///
/// ```
/// use std::time::Duration;
/// use rpc_discovery::{EtcdConfig, Instance};
///
/// let config = EtcdConfig::new().prefix("shop").ttl(Duration::from_secs(5));
/// let inst = Instance::new("shop.Orders", "10.0.0.7:7001").env("PROD");
/// assert_eq!(config.key(&inst), "/shop/PROD/shop.Orders/default/10.0.0.7:7001");
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct EtcdConfig {
    /// The first path segment of every key (default `rpc`). Leading and trailing `/` are ignored;
    /// an empty prefix puts keys at `/{env}/...`.
    pub prefix: String,
    /// How long a registration outlives its process: the lease TTL (default 10 s; etcd counts
    /// whole seconds, so this is rounded up, and a server may impose a minimum).
    pub ttl: Duration,
    /// The limit on each single request (grant, put, list, revoke, opening a stream);
    /// default 5 s.
    pub request_timeout: Duration,
    /// The limit on establishing a connection to an endpoint; default 2 s.
    pub connect_timeout: Duration,
    /// HTTP/2 keep-alive pings on open streams (watches, lease renewals): the interval and how
    /// long to wait for the answer before the connection counts as dead; default 10 s and 5 s.
    /// etcd rejects clients that ping more often than every 5 s.
    pub keep_alive: (Duration, Duration),
    /// The user name and password when etcd has authentication enabled.
    pub credentials: Option<(String, String)>,
}

impl fmt::Debug for EtcdConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdConfig")
            .field("prefix", &self.prefix)
            .field("ttl", &self.ttl)
            .field("request_timeout", &self.request_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("keep_alive", &self.keep_alive)
            .field("user", &self.credentials.as_ref().map(|(user, _)| user))
            .finish()
    }
}

impl Default for EtcdConfig {
    fn default() -> EtcdConfig {
        EtcdConfig {
            prefix: "rpc".to_owned(),
            ttl: Duration::from_secs(10),
            request_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
            keep_alive: (Duration::from_secs(10), Duration::from_secs(5)),
            credentials: None,
        }
    }
}

impl EtcdConfig {
    /// The defaults: prefix `rpc`, TTL 10 s.
    pub fn new() -> EtcdConfig {
        EtcdConfig::default()
    }

    /// Sets the key prefix.
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> EtcdConfig {
        self.prefix = prefix.into();
        self
    }

    /// Sets the lease TTL of registrations.
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> EtcdConfig {
        self.ttl = ttl;
        self
    }

    /// Sets the limit on each single request.
    #[must_use]
    pub fn request_timeout(mut self, limit: Duration) -> EtcdConfig {
        self.request_timeout = limit;
        self
    }

    /// Sets the limit on establishing a connection.
    #[must_use]
    pub fn connect_timeout(mut self, limit: Duration) -> EtcdConfig {
        self.connect_timeout = limit;
        self
    }

    /// Sets the HTTP/2 keep-alive interval and timeout of open streams.
    #[must_use]
    pub fn keep_alive(mut self, interval: Duration, timeout: Duration) -> EtcdConfig {
        self.keep_alive = (interval, timeout);
        self
    }

    /// Authenticates as `user`.
    #[must_use]
    pub fn credentials(
        mut self,
        user: impl Into<String>,
        password: impl Into<String>,
    ) -> EtcdConfig {
        self.credentials = Some((user.into(), password.into()));
        self
    }

    fn root(&self) -> String {
        let p = self.prefix.trim_matches('/');
        if p.is_empty() {
            String::new()
        } else {
            format!("/{p}")
        }
    }

    /// The key `instance` is stored under: `/{prefix}/{env}/{service}/{group}/{addr}`.
    pub fn key(&self, instance: &Instance) -> String {
        let (env, service, group, addr) = instance.key();
        format!("{}/{env}/{service}/{group}/{addr}", self.root())
    }

    /// The key prefix a watch of `query` follows: `/{prefix}/{env}/{service}/`, or
    /// `/{prefix}/{env}/{service}/{group}/` when the query names a group.
    pub fn query_prefix(&self, query: &Query) -> String {
        let mut p = format!("{}/{}/{}/", self.root(), query.env, query.service);
        if let Some(group) = &query.group {
            p.push_str(group);
            p.push('/');
        }
        p
    }

    /// The TTL in whole seconds, as etcd takes it.
    fn ttl_secs(&self) -> i64 {
        let ms = self.ttl.as_millis().max(1);
        i64::try_from(ms.div_ceil(1000)).unwrap_or(i64::MAX)
    }

    fn connect_options(&self) -> ConnectOptions {
        let mut options = ConnectOptions::new()
            .with_connect_timeout(self.connect_timeout)
            .with_keep_alive(self.keep_alive.0, self.keep_alive.1)
            .with_require_leader(true);
        if let Some((user, password)) = &self.credentials {
            options = options
                .with_user(user.clone(), password.clone())
                .with_auto_token_refresh(true);
        }
        options
    }
}

struct Shared {
    client: Client,
    config: EtcdConfig,
    /// One etcd watch per query, shared by every [`Watch`] of it.
    watches: Mutex<HashMap<Query, watch::Sender<EndpointSet>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update leaves the map consistent, so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
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
    /// authentication fails.
    pub async fn connect<I, S>(
        endpoints: I,
        config: EtcdConfig,
    ) -> Result<EtcdRegistry, DiscoveryError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let endpoints: Vec<String> = endpoints
            .into_iter()
            .map(|e| e.as_ref().to_owned())
            .collect();
        if endpoints.is_empty() {
            return Err(backend_error("no endpoints given"));
        }
        let client = Client::connect(&endpoints, Some(config.connect_options()))
            .await
            .map_err(backend_error)?;
        Ok(EtcdRegistry::from_client(client, config))
    }

    /// A registry over an etcd client built by the caller (e.g. with TLS). The connection
    /// settings of `config` (timeouts, keep-alive, credentials) are then not used.
    pub fn from_client(client: Client, config: EtcdConfig) -> EtcdRegistry {
        EtcdRegistry {
            shared: Arc::new(Shared {
                client,
                config,
                watches: Mutex::new(HashMap::new()),
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
            validate(&instance)?;
            let config = &self.shared.config;
            let value = serde_json::to_vec(&instance)
                .map_err(|e| DiscoveryError::InvalidInstance(e.to_string()))?;
            let mut keeper = Keeper {
                client: self.shared.client.clone(),
                key: config.key(&instance),
                value,
                ttl_secs: config.ttl_secs(),
                request_timeout: config.request_timeout,
                lease: None,
                granted_ttl: Duration::ZERO,
                failures: 0,
            };
            keeper.grant_and_put().await.map_err(backend_error)?;
            tracing::debug!(key = %keeper.key, lease = ?keeper.lease, "registered in etcd");
            let stop = CancellationToken::new();
            let task = tokio::spawn(keeper.run(stop.clone()));
            Ok(Registration::new(instance, stop, task))
        })
    }

    fn watch(&self, query: Query) -> BoxFuture<'_, Result<Watch, DiscoveryError>> {
        Box::pin(async move {
            if let Some(tx) = lock(&self.shared.watches).get(&query) {
                return Ok(Watch::new(tx.subscribe()));
            }
            let config = &self.shared.config;
            let mut follower = Follower {
                client: self.shared.client.clone(),
                prefix: config.query_prefix(&query),
                query,
                request_timeout: config.request_timeout,
                entries: BTreeMap::new(),
                next_revision: 0,
                relist: false,
                failures: 0,
                shared: self.shared.clone(),
            };
            follower.list().await.map_err(backend_error)?;

            let mut watches = lock(&self.shared.watches);
            if let Some(tx) = watches.get(&follower.query) {
                // Another watch of the same query got there first: share it.
                return Ok(Watch::new(tx.subscribe()));
            }
            let (tx, rx) = watch::channel(follower.set());
            watches.insert(follower.query.clone(), tx.clone());
            drop(watches);
            tokio::spawn(follower.run(tx));
            Ok(Watch::new(rx))
        })
    }
}

/// Runs `call` under `limit`, turning both failures into a message.
async fn limited<T>(
    limit: Duration,
    what: &str,
    call: impl Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, CallError> {
    match timeout(limit, call).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(CallError::Etcd(what.to_owned(), e)),
        Err(_) => Err(CallError::Timeout(what.to_owned(), limit)),
    }
}

#[derive(Debug)]
enum CallError {
    Etcd(String, etcd_client::Error),
    Timeout(String, Duration),
    Other(String),
}

impl CallError {
    /// `true` if etcd says the lease does not exist (it expired or was revoked).
    fn lease_not_found(&self) -> bool {
        match self {
            CallError::Etcd(_, etcd_client::Error::LeaseKeepAliveError(m)) => {
                m.contains("not found")
            }
            CallError::Etcd(_, etcd_client::Error::GRpcStatus(s)) => {
                s.message().contains("lease not found")
            }
            _ => false,
        }
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Etcd(what, e) => write!(f, "{what}: {e}"),
            CallError::Timeout(what, limit) => write!(f, "{what}: no answer within {limit:?}"),
            CallError::Other(m) => f.write_str(m),
        }
    }
}

/// Exponential backoff from 50 ms, capped at 1 s, with jitter.
#[derive(Debug)]
struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(50);
    const MAX: Duration = Duration::from_secs(1);

    fn new() -> Backoff {
        Backoff {
            next: Backoff::FIRST,
        }
    }

    fn reset(&mut self) {
        self.next = Backoff::FIRST;
    }

    /// The next delay: between 3/4 and all of the current step, which then doubles.
    fn delay(&mut self) -> Duration {
        let step = self.next;
        self.next = (step * 2).min(Backoff::MAX);
        step.mul_f64(0.75 + 0.25 * fastrand::f64())
    }
}

/// Keeps one instance's key alive under a lease.
struct Keeper {
    client: Client,
    key: String,
    value: Vec<u8>,
    ttl_secs: i64,
    request_timeout: Duration,
    /// The lease the key is attached to, once put.
    lease: Option<i64>,
    /// The TTL etcd granted for it.
    granted_ttl: Duration,
    /// Failed attempts since etcd last answered.
    failures: u32,
}

/// How a keep-alive session ended.
enum Session {
    Stopped,
    Expired,
    Failed(CallError),
}

impl Keeper {
    async fn grant_and_put(&mut self) -> Result<(), CallError> {
        let t = self.request_timeout;
        let grant = limited(
            t,
            "granting a lease",
            self.client.lease_grant(self.ttl_secs, None),
        )
        .await?;
        if !grant.error().is_empty() {
            return Err(CallError::Other(format!(
                "granting a lease: {}",
                grant.error()
            )));
        }
        // Known before the put, so that a stop while it is in flight still revokes the lease.
        self.lease = Some(grant.id());
        self.granted_ttl = Duration::from_secs(u64::try_from(grant.ttl()).unwrap_or(1).max(1));
        let put = self.client.put(
            self.key.clone(),
            self.value.clone(),
            Some(PutOptions::new().with_lease(grant.id())),
        );
        if let Err(e) = limited(t, "putting the instance", put).await {
            // Nothing is attached to the lease: let it expire, and grant a new one next time.
            self.lease = None;
            return Err(e);
        }
        Ok(())
    }

    /// Renews the lease until `stop`, re-registering when needed; then revokes it.
    async fn run(mut self, stop: CancellationToken) {
        let mut backoff = Backoff::new();
        // The lease was granted in this round: if etcd does not know it, wait before the next.
        let mut fresh = true;
        loop {
            if self.lease.is_none() {
                let result = tokio::select! {
                    biased;
                    () = stop.cancelled() => break,
                    r = self.grant_and_put() => r,
                };
                if let Err(e) = result {
                    self.failed("etcd registration failed; retrying", &e);
                    if !pause(&mut backoff, &stop).await {
                        break;
                    }
                    continue;
                }
                tracing::info!(key = %self.key, lease = ?self.lease, "registered in etcd again");
                fresh = true;
            }
            match self.keep_alive(&stop, &mut backoff).await {
                Session::Stopped => break,
                Session::Expired => {
                    tracing::warn!(
                        key = %self.key, lease = ?self.lease,
                        "etcd lease expired; registering again"
                    );
                    self.lease = None;
                    if !std::mem::take(&mut fresh) {
                        // etcd answered: register again at once.
                        continue;
                    }
                }
                Session::Failed(e) => {
                    self.failed("etcd lease renewal failed; retrying", &e);
                    fresh = false;
                }
            }
            if !pause(&mut backoff, &stop).await {
                break;
            }
        }
        self.revoke().await;
    }

    /// Logs a failure: the first of an outage as a warning, the retries at debug level.
    fn failed(&mut self, what: &str, e: &CallError) {
        self.failures += 1;
        if self.failures == 1 {
            tracing::warn!(key = %self.key, error = %e, "{what}");
        } else {
            tracing::debug!(key = %self.key, error = %e, attempt = self.failures, "{what}");
        }
    }

    /// One keep-alive stream: renews every third of the TTL until it fails or `stop`.
    async fn keep_alive(&mut self, stop: &CancellationToken, backoff: &mut Backoff) -> Session {
        let Some(lease) = self.lease else {
            return Session::Expired;
        };
        let open = limited(
            self.request_timeout,
            "opening the lease keep-alive stream",
            self.client.lease_keep_alive(lease),
        );
        let opened = tokio::select! {
            biased;
            () = stop.cancelled() => return Session::Stopped,
            r = open => r,
        };
        let (mut keeper, mut stream) = match opened {
            Ok(pair) => pair,
            Err(e) if e.lease_not_found() => return Session::Expired,
            Err(e) => return Session::Failed(e),
        };
        // Opening the stream renewed the lease once.
        backoff.reset();
        if self.failures > 0 {
            tracing::info!(
                key = %self.key, failed_attempts = self.failures,
                "etcd lease renewal resumed"
            );
            self.failures = 0;
        }
        let mut last_renewal = Instant::now();
        let every = (self.granted_ttl / 3).max(Duration::from_millis(100));
        let mut tick = tokio::time::interval_at(Instant::now() + every, every);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = stop.cancelled() => return Session::Stopped,
                message = stream.message() => match message {
                    Ok(Some(resp)) if resp.ttl() <= 0 => return Session::Expired,
                    Ok(Some(_)) => last_renewal = Instant::now(),
                    Ok(None) => {
                        let e = CallError::Other("the keep-alive stream ended".into());
                        return Session::Failed(e);
                    }
                    Err(e) => {
                        return Session::Failed(CallError::Etcd("the keep-alive stream".into(), e));
                    }
                },
                _ = tick.tick() => {
                    let silent = last_renewal.elapsed();
                    if silent > self.granted_ttl {
                        let e = CallError::Other(format!("no keep-alive answer for {silent:?}"));
                        return Session::Failed(e);
                    }
                    if let Err(e) = keeper.keep_alive().await {
                        return Session::Failed(CallError::Etcd("sending a keep-alive".into(), e));
                    }
                }
            }
        }
    }

    /// Revokes the lease, which deletes the key.
    async fn revoke(&mut self) {
        let Some(lease) = self.lease.take() else {
            return;
        };
        let revoke = self.client.lease_revoke(lease);
        match limited(self.request_timeout, "revoking the lease", revoke).await {
            Ok(_) => tracing::debug!(key = %self.key, lease, "deregistered from etcd"),
            Err(e) if e.lease_not_found() => {
                tracing::debug!(key = %self.key, lease, "lease already gone at deregistration");
            }
            Err(e) => tracing::warn!(
                key = %self.key, error = %e,
                "could not revoke the etcd lease; the instance disappears when it expires"
            ),
        }
    }
}

/// Sleeps the next backoff delay; `false` if `stop` came first.
async fn pause(backoff: &mut Backoff, stop: &CancellationToken) -> bool {
    tokio::select! {
        biased;
        () = stop.cancelled() => false,
        () = tokio::time::sleep(backoff.delay()) => true,
    }
}

/// Follows one query's prefix and publishes its endpoint set.
struct Follower {
    client: Client,
    prefix: String,
    query: Query,
    request_timeout: Duration,
    /// The instances by key.
    entries: BTreeMap<Vec<u8>, Instance>,
    /// Where the watch resumes.
    next_revision: i64,
    /// The revision to resume from is gone: list again before watching.
    relist: bool,
    /// Failed attempts since etcd last answered.
    failures: u32,
    shared: Arc<Shared>,
}

impl Follower {
    fn set(&self) -> EndpointSet {
        EndpointSet::new(self.entries.values().cloned())
    }

    fn publish(&self, tx: &watch::Sender<EndpointSet>) {
        let set = self.set();
        tx.send_if_modified(|old| {
            if *old == set {
                false
            } else {
                *old = set;
                true
            }
        });
    }

    /// The instance a value holds, if it is one of this query's.
    fn parse(&self, key: &[u8], value: &[u8]) -> Option<Instance> {
        match serde_json::from_slice::<Instance>(value) {
            Ok(i) if self.query.matches(&i) => Some(i),
            Ok(i) => {
                tracing::debug!(
                    key = %String::from_utf8_lossy(key), instance = ?i.key(), query = %self.query,
                    "ignoring an etcd entry that belongs to another query"
                );
                None
            }
            Err(e) => {
                tracing::warn!(
                    key = %String::from_utf8_lossy(key), error = %e,
                    "ignoring an etcd value that is not an instance"
                );
                None
            }
        }
    }

    /// Replaces the entries with a fresh listing of the prefix.
    async fn list(&mut self) -> Result<(), CallError> {
        let get = self
            .client
            .get(self.prefix.clone(), Some(GetOptions::new().with_prefix()));
        let resp = limited(self.request_timeout, "listing instances", get).await?;
        let Some(header) = resp.header() else {
            return Err(CallError::Other(
                "listing instances: no header in the answer".into(),
            ));
        };
        self.next_revision = header.revision() + 1;
        self.entries = resp
            .kvs()
            .iter()
            .filter_map(|kv| Some((kv.key().to_vec(), self.parse(kv.key(), kv.value())?)))
            .collect();
        self.relist = false;
        Ok(())
    }

    /// Follows changes until every [`Watch`] is gone, riding out etcd outages.
    async fn run(mut self, tx: watch::Sender<EndpointSet>) {
        let mut backoff = Backoff::new();
        loop {
            tokio::select! {
                biased;
                () = tx.closed() => {
                    if self.finish(&tx) {
                        return;
                    }
                    // Someone subscribed meanwhile: go on.
                    continue;
                }
                e = self.follow(&tx, &mut backoff) => {
                    self.failures += 1;
                    if self.failures == 1 {
                        tracing::warn!(
                            query = %self.query, error = %e,
                            "etcd watch interrupted; keeping the last endpoint set and reconnecting"
                        );
                    } else {
                        tracing::debug!(
                            query = %self.query, error = %e, attempt = self.failures,
                            "etcd watch still interrupted"
                        );
                    }
                }
            }
            tokio::select! {
                biased;
                () = tx.closed() => {
                    if self.finish(&tx) {
                        return;
                    }
                }
                () = tokio::time::sleep(backoff.delay()) => {}
            }
        }
    }

    /// `true` (and unlisted) if no [`Watch`] is left.
    fn finish(&self, tx: &watch::Sender<EndpointSet>) -> bool {
        let mut watches = lock(&self.shared.watches);
        if tx.receiver_count() > 0 {
            return false;
        }
        if watches.get(&self.query).is_some_and(|t| t.same_channel(tx)) {
            watches.remove(&self.query);
        }
        true
    }

    /// (Re-)lists if needed, watches from the next revision and applies the changes; returns why
    /// it stopped.
    async fn follow(
        &mut self,
        tx: &watch::Sender<EndpointSet>,
        backoff: &mut Backoff,
    ) -> CallError {
        if self.relist {
            if let Err(e) = self.list().await {
                return e;
            }
            tracing::info!(
                query = %self.query, revision = self.next_revision - 1,
                "etcd watch listed again"
            );
            self.publish(tx);
        }
        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(self.next_revision);
        let open = self.client.watch(self.prefix.clone(), Some(options));
        let mut stream = match limited(self.request_timeout, "opening the watch", open).await {
            Ok(stream) => stream,
            Err(e) => return e,
        };
        loop {
            let resp = match stream.message().await {
                Ok(Some(resp)) => resp,
                Ok(None) => return CallError::Other("the watch stream ended".into()),
                Err(e) => return CallError::Etcd("the watch stream".into(), e),
            };
            if resp.compact_revision() > 0 {
                self.relist = true;
                return CallError::Other(format!(
                    "revision {} was compacted (oldest kept: {}); listing again",
                    self.next_revision,
                    resp.compact_revision()
                ));
            }
            if resp.canceled() {
                // Whatever the reason, a fresh listing is the safe restart.
                self.relist = true;
                return CallError::Other(format!(
                    "etcd canceled the watch: {}",
                    resp.cancel_reason()
                ));
            }
            backoff.reset();
            if self.failures > 0 {
                tracing::info!(
                    query = %self.query, failed_attempts = self.failures,
                    revision = self.next_revision, "etcd watch resumed"
                );
                self.failures = 0;
            }
            self.apply(&resp);
            self.publish(tx);
        }
    }

    fn apply(&mut self, resp: &WatchResponse) {
        for event in resp.events() {
            let Some(kv) = event.kv() else { continue };
            self.next_revision = self.next_revision.max(kv.mod_revision() + 1);
            let key = kv.key().to_vec();
            let instance = match event.event_type() {
                EventType::Put => self.parse(&key, kv.value()),
                EventType::Delete => None,
            };
            match instance {
                Some(i) => self.entries.insert(key, i),
                None => self.entries.remove(&key),
            };
        }
    }
}
