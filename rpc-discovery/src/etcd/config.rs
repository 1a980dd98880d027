//! How the etcd registry lays out its keys and talks to etcd.

use std::fmt;
use std::time::Duration;

use etcd_client::ConnectOptions;
use rpc_core::backoff::Backoff;

use crate::instance::{Instance, Query};

/// The waits between attempts while etcd is unreachable (renewing a lease, following a watch):
/// from 50 ms, doubling up to 1 s, each shortened by up to a quarter at random so that clients
/// cut off together do not come back together.
pub(super) fn retry_backoff() -> Backoff {
    Backoff::new(Duration::from_millis(50), Duration::from_secs(1)).jitter(0.25)
}

/// How an [`EtcdRegistry`](crate::EtcdRegistry) lays out its keys and talks to etcd.
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
    pub(super) fn ttl_secs(&self) -> i64 {
        let ms = self.ttl.as_millis().max(1);
        i64::try_from(ms.div_ceil(1000)).unwrap_or(i64::MAX)
    }

    /// The etcd client's connection settings.
    pub(super) fn connect_options(&self) -> ConnectOptions {
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
