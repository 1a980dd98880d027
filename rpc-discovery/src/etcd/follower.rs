//! The watch follower: follows one query's key prefix and publishes its endpoint set to every
//! [`Watch`] of the query, riding out etcd outages, compactions and restores from a backup.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use etcd_client::{Client, EventType, GetOptions, ResponseHeader, WatchOptions, WatchResponse};
use rpc_core::backoff::Backoff;
use tokio::sync::watch;

use super::config::{retry_backoff, EtcdConfig};
use super::error::{limited, CallError, Cause};
use crate::instance::{EndpointSet, Instance, Query};
use crate::registry::Watch;

/// The followed queries of one registry: one etcd watch per query, shared by every [`Watch`] of
/// it. Cheap to clone.
#[derive(Clone, Default)]
pub(super) struct WatchTable {
    senders: Arc<Mutex<HashMap<Query, watch::Sender<EndpointSet>>>>,
}

impl WatchTable {
    fn lock(&self) -> MutexGuard<'_, HashMap<Query, watch::Sender<EndpointSet>>> {
        // Every update leaves the map consistent, so a poisoned lock is still usable.
        self.senders.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new watch of `query` if it is followed already.
    pub(super) fn subscribe(&self, query: &Query) -> Option<Watch> {
        self.lock().get(query).map(|tx| Watch::new(tx.subscribe()))
    }

    /// Forgets `query` if `tx` still feeds it and no [`Watch`] of it is left; `true` if so.
    fn remove_if_unwatched(&self, query: &Query, tx: &watch::Sender<EndpointSet>) -> bool {
        let mut senders = self.lock();
        if tx.receiver_count() > 0 {
            return false;
        }
        if senders.get(query).is_some_and(|t| t.same_channel(tx)) {
            senders.remove(query);
        }
        true
    }
}

/// Follows one query's prefix and publishes its endpoint set.
pub(super) struct Follower {
    client: Client,
    prefix: String,
    query: Query,
    request_timeout: Duration,
    /// The instances by key.
    entries: BTreeMap<Vec<u8>, Instance>,
    /// Where the watch resumes: one past the newest revision seen.
    next_revision: i64,
    /// The cluster the entries were listed from (0 until listed).
    cluster_id: u64,
    /// The revision to resume from is gone: list again before watching.
    relist: bool,
    /// Failed attempts since etcd last answered; the wait after the n-th is
    /// `retry.delay(n - 1)`.
    failures: u32,
    retry: Backoff,
    watches: WatchTable,
}

impl Follower {
    /// A follower of `query`, registering itself in `watches` once listed.
    pub(super) fn new(
        client: Client,
        config: &EtcdConfig,
        query: Query,
        watches: WatchTable,
    ) -> Follower {
        Follower {
            client,
            prefix: config.query_prefix(&query),
            query,
            request_timeout: config.request_timeout,
            entries: BTreeMap::new(),
            next_revision: 0,
            cluster_id: 0,
            relist: false,
            failures: 0,
            retry: retry_backoff(),
            watches,
        }
    }

    /// Lists the prefix, then follows it in a background task: the watch of the query. If another
    /// follower of the same query got there first, a watch of that one instead.
    pub(super) async fn start(mut self) -> Result<Watch, CallError> {
        self.list().await?;
        let mut senders = self.watches.lock();
        if let Some(tx) = senders.get(&self.query) {
            return Ok(Watch::new(tx.subscribe()));
        }
        let (tx, rx) = watch::channel(self.set());
        senders.insert(self.query.clone(), tx.clone());
        drop(senders);
        tokio::spawn(self.run(tx));
        Ok(Watch::new(rx))
    }

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
        const LIST: &str = "listing instances";
        let get = self
            .client
            .get(self.prefix.clone(), Some(GetOptions::new().with_prefix()));
        let resp = limited(self.request_timeout, LIST, get).await?;
        let Some(header) = resp.header() else {
            return Err(CallError::new(LIST, Cause::Missing("header")));
        };
        if self.cluster_id != 0 && header.cluster_id() != self.cluster_id {
            tracing::warn!(
                query = %self.query, old = self.cluster_id, new = header.cluster_id(),
                "etcd is another cluster now (restored from a backup, or replaced)"
            );
        }
        self.cluster_id = header.cluster_id();
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
        loop {
            tokio::select! {
                biased;
                () = tx.closed() => {
                    if self.watches.remove_if_unwatched(&self.query, &tx) {
                        return;
                    }
                    // Someone subscribed meanwhile: go on.
                    continue;
                }
                e = self.follow(&tx) => {
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
            let delay = self.retry.delay(self.failures - 1);
            tokio::select! {
                biased;
                () = tx.closed() => {
                    if self.watches.remove_if_unwatched(&self.query, &tx) {
                        return;
                    }
                }
                () = tokio::time::sleep(delay) => {}
            }
        }
    }

    /// (Re-)lists if needed, watches from the next revision and applies the changes; returns why
    /// it stopped.
    async fn follow(&mut self, tx: &watch::Sender<EndpointSet>) -> CallError {
        const WATCH: &str = "the watch stream";
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
                Ok(None) => return CallError::new(WATCH, Cause::Ended),
                Err(e) => return CallError::etcd(WATCH, e),
            };
            if let Some(cause) = resp.header().and_then(|h| self.history_lost(h)) {
                // A watch from our revision on would miss what the restored store holds.
                self.relist = true;
                let e = CallError::new(WATCH, cause);
                if self.failures > 0 {
                    // `run` logs only an outage's first failure as a warning; this matters too.
                    tracing::warn!(query = %self.query, error = %e, "etcd watch reconnected");
                }
                return e;
            }
            if resp.compact_revision() > 0 {
                self.relist = true;
                return CallError::new(
                    WATCH,
                    Cause::Compacted {
                        revision: self.next_revision,
                        oldest: resp.compact_revision(),
                    },
                );
            }
            if resp.canceled() {
                // Whatever the reason, a fresh listing is the safe restart.
                self.relist = true;
                let reason = resp.cancel_reason().to_owned();
                return CallError::new(WATCH, Cause::Canceled(reason));
            }
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

    /// Why the history the entries were built from is gone, if a response's header says so:
    /// etcd answers from another cluster, or from a store older than the newest revision seen
    /// (restored from a backup). The first answer of every watch (its creation) carries the
    /// store's current revision, so this is seen as soon as the watch reconnects.
    fn history_lost(&self, header: &ResponseHeader) -> Option<Cause> {
        let seen = self.next_revision - 1;
        if header.cluster_id() != 0
            && self.cluster_id != 0
            && header.cluster_id() != self.cluster_id
        {
            Some(Cause::NewCluster {
                old: self.cluster_id,
                new: header.cluster_id(),
            })
        } else if header.revision() > 0 && header.revision() < seen {
            Some(Cause::RevisionWentBack {
                seen,
                now: header.revision(),
            })
        } else {
            None
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
