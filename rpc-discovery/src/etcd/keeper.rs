//! The lease keeper: keeps one registration's key alive under a lease, re-registers after the
//! lease expired, and revokes it at deregistration.

use std::time::Duration;

use etcd_client::{Client, PutOptions};
use rpc_core::backoff::Backoff;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::config::{retry_backoff, EtcdConfig};
use super::error::{limited, CallError, Cause};

/// Keeps one instance's key alive under a lease.
pub(super) struct Keeper {
    client: Client,
    key: String,
    value: Vec<u8>,
    ttl_secs: i64,
    request_timeout: Duration,
    /// The lease the key is attached to, once put.
    lease: Option<i64>,
    /// The TTL etcd granted for it.
    granted_ttl: Duration,
    /// Failed attempts since etcd last answered (for logs).
    failures: u32,
    /// The waits between attempts.
    retry: Backoff,
    /// Waits since a keep-alive stream last opened: the next wait is `retry.delay(waits)`.
    waits: u32,
}

/// How a keep-alive session ended.
enum Session {
    Stopped,
    Expired,
    Failed(CallError),
}

impl Keeper {
    /// A keeper of `value` under `key`, not yet registered.
    pub(super) fn new(client: Client, config: &EtcdConfig, key: String, value: Vec<u8>) -> Keeper {
        Keeper {
            client,
            key,
            value,
            ttl_secs: config.ttl_secs(),
            request_timeout: config.request_timeout,
            lease: None,
            granted_ttl: Duration::ZERO,
            failures: 0,
            retry: retry_backoff(),
            waits: 0,
        }
    }

    /// The key.
    pub(super) fn key(&self) -> &str {
        &self.key
    }

    /// The lease, once granted.
    pub(super) fn lease(&self) -> Option<i64> {
        self.lease
    }

    /// Grants a lease and puts the key under it.
    pub(super) async fn grant_and_put(&mut self) -> Result<(), CallError> {
        const GRANT: &str = "granting a lease";
        let t = self.request_timeout;
        let grant = limited(t, GRANT, self.client.lease_grant(self.ttl_secs, None)).await?;
        if !grant.error().is_empty() {
            return Err(CallError::new(
                GRANT,
                Cause::Refused(grant.error().to_owned()),
            ));
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
    pub(super) async fn run(mut self, stop: CancellationToken) {
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
                    if !self.pause(&stop).await {
                        break;
                    }
                    continue;
                }
                tracing::info!(key = %self.key, lease = ?self.lease, "registered in etcd again");
                fresh = true;
            }
            match self.keep_alive(&stop).await {
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
            if !self.pause(&stop).await {
                break;
            }
        }
        self.revoke().await;
    }

    /// Sleeps the next wait; `false` if `stop` came first.
    async fn pause(&mut self, stop: &CancellationToken) -> bool {
        let delay = self.retry.delay(self.waits);
        self.waits = self.waits.saturating_add(1);
        tokio::select! {
            biased;
            () = stop.cancelled() => false,
            () = tokio::time::sleep(delay) => true,
        }
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
    async fn keep_alive(&mut self, stop: &CancellationToken) -> Session {
        const STREAM: &str = "the keep-alive stream";
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
        self.waits = 0;
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
                    Ok(None) => return Session::Failed(CallError::new(STREAM, Cause::Ended)),
                    Err(e) => return Session::Failed(CallError::etcd(STREAM, e)),
                },
                _ = tick.tick() => {
                    let silent = last_renewal.elapsed();
                    if silent > self.granted_ttl {
                        return Session::Failed(CallError::new(STREAM, Cause::Silent(silent)));
                    }
                    if let Err(e) = keeper.keep_alive().await {
                        return Session::Failed(CallError::etcd("sending a keep-alive", e));
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
