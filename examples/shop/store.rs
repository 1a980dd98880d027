//! Where the state of a replicated service lives: a key-value store with compare-and-set, shared
//! by its replicas as a database would be. [`MemoryStore`] keeps it in the process (the replicas
//! of the one-process shop share one); `EtcdStore` (feature `etcd`) keeps it in etcd, so replicas
//! in separate processes share it and a restarted replica finds it.
//!
//! Services change records with [`transact`]: read the keys, decide, write only if none of them
//! changed meanwhile, or read again and decide again (optimistic concurrency).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rpc_core::{BoxFuture, Status};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// A record's bytes and its version (changes with every write; never 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    /// The record.
    pub value: Vec<u8>,
    /// Its version.
    pub version: u64,
}

/// A write of a commit: a new value, or `None` to delete.
pub type Write = (String, Option<Vec<u8>>);

/// A key and its record, as [`Store::list`] returns them.
pub type Record = (String, Vec<u8>);

/// A key-value store with compare-and-set. Errors are `Unavailable` statuses (the store could
/// not be reached), which handlers return as they are.
pub trait Store: Send + Sync + 'static {
    /// The record at `key`, if any.
    fn get(&self, key: &str) -> BoxFuture<'_, Result<Option<Versioned>, Status>>;

    /// The records at `keys`, in order, as of one moment (one round trip where the store allows).
    fn get_many(&self, keys: &[&str]) -> BoxFuture<'_, Result<Vec<Option<Versioned>>, Status>>;

    /// Applies `writes` if every key of `expect` still has the given version (0: absent);
    /// `Ok(false)` (and nothing written) otherwise.
    fn commit(
        &self,
        expect: Vec<(String, u64)>,
        writes: Vec<Write>,
    ) -> BoxFuture<'_, Result<bool, Status>>;

    /// Every record whose key starts with `prefix`, sorted by key.
    fn list(&self, prefix: &str) -> BoxFuture<'_, Result<Vec<Record>, Status>>;
}

/// A [`Store`] in memory; clones share it.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    records: Arc<Mutex<Records>>,
}

#[derive(Debug, Default)]
struct Records {
    map: BTreeMap<String, Versioned>,
    next_version: u64,
}

impl MemoryStore {
    /// Writes a record at once (setting up a store before any replica uses it).
    pub fn seed<T: Serialize>(&self, key: &str, value: &T) {
        let mut r = super::lock(&self.records);
        r.next_version += 1;
        let version = r.next_version;
        // Our records always encode.
        let value = serde_json::to_vec(value).unwrap_or_default();
        r.map.insert(key.to_owned(), Versioned { value, version });
    }
}

impl Store for MemoryStore {
    fn get(&self, key: &str) -> BoxFuture<'_, Result<Option<Versioned>, Status>> {
        let found = super::lock(&self.records).map.get(key).cloned();
        Box::pin(std::future::ready(Ok(found)))
    }

    fn get_many(&self, keys: &[&str]) -> BoxFuture<'_, Result<Vec<Option<Versioned>>, Status>> {
        let r = super::lock(&self.records);
        let found = keys.iter().map(|k| r.map.get(*k).cloned()).collect();
        Box::pin(std::future::ready(Ok(found)))
    }

    fn commit(
        &self,
        expect: Vec<(String, u64)>,
        writes: Vec<Write>,
    ) -> BoxFuture<'_, Result<bool, Status>> {
        let mut r = super::lock(&self.records);
        let unchanged = expect
            .iter()
            .all(|(k, v)| r.map.get(k).map_or(0, |x| x.version) == *v);
        if unchanged {
            for (key, value) in writes {
                match value {
                    Some(value) => {
                        r.next_version += 1;
                        let version = r.next_version;
                        r.map.insert(key, Versioned { value, version });
                    }
                    None => {
                        r.map.remove(&key);
                    }
                }
            }
        }
        Box::pin(std::future::ready(Ok(unchanged)))
    }

    fn list(&self, prefix: &str) -> BoxFuture<'_, Result<Vec<Record>, Status>> {
        let found = super::lock(&self.records)
            .map
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.value.clone()))
            .collect();
        Box::pin(std::future::ready(Ok(found)))
    }
}

/// The records a [`transact`] read, and what it decided to write.
#[derive(Debug, Default)]
pub struct Tx {
    read: HashMap<String, Option<Versioned>>,
    writes: BTreeMap<String, Option<Vec<u8>>>,
}

impl Tx {
    /// The record at `key` as of this attempt (or as written earlier in it). `key` must be one
    /// of the keys given to [`transact`].
    ///
    /// # Errors
    /// `Internal` for a record that does not decode, or a key that was not read.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, Status> {
        let bytes = match self.writes.get(key) {
            Some(written) => written.as_deref(),
            None => match self.read.get(key) {
                Some(read) => read.as_ref().map(|v| v.value.as_slice()),
                None => return Err(Status::internal(format!("{key:?} was not read"))),
            },
        };
        bytes
            .map(serde_json::from_slice)
            .transpose()
            .map_err(|e| Status::internal(format!("record {key:?} does not decode: {e}")))
    }

    /// Writes `value` at `key` when the transaction commits.
    pub fn put<T: Serialize>(&mut self, key: &str, value: &T) {
        // Our records always encode.
        let bytes = serde_json::to_vec(value).unwrap_or_default();
        self.writes.insert(key.to_owned(), Some(bytes));
    }

    /// Deletes `key` when the transaction commits.
    pub fn delete(&mut self, key: &str) {
        self.writes.insert(key.to_owned(), None);
    }
}

/// How many times a transaction is tried before it gives up (`Aborted`): each conflict means
/// another replica changed one of its records in between.
const TRIES: usize = 64;

/// The first wait after a conflict is up to this long; it doubles with each conflict in a row
/// (up to 64 times this).
const BACKOFF_UNIT: Duration = Duration::from_micros(50);

/// A random duration in `0..max` (the randomness of the standard library's hash keys).
fn jitter(max: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(u64::from(std::process::id()));
    let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX).max(1);
    Duration::from_nanos(h.finish() % nanos)
}

/// Reads `keys`, runs `decide` on them, and commits its writes if none of the keys changed
/// meanwhile; otherwise runs again on fresh reads. `decide` must only read and write through
/// the [`Tx`]: it may run several times. An `Err` from it ends the transaction without writing.
///
/// # Errors
/// `decide`'s error; the store's (`Unavailable`), or `Aborted` after 64 conflicts in a
/// row, as `E`.
pub async fn transact<S, R, E, F>(store: &S, keys: &[&str], mut decide: F) -> Result<R, E>
where
    S: Store + ?Sized,
    E: From<Status>,
    F: FnMut(&mut Tx) -> Result<R, E>,
{
    for tries in 0..TRIES {
        let mut tx = Tx::default();
        let found = store.get_many(keys).await?;
        for (key, found) in keys.iter().zip(found) {
            tx.read.insert((*key).to_owned(), found);
        }
        let result = decide(&mut tx)?;
        if tx.writes.is_empty() {
            return Ok(result);
        }
        let expect = keys
            .iter()
            .map(|k| {
                let version = tx
                    .read
                    .get(*k)
                    .and_then(|v| v.as_ref())
                    .map_or(0, |v| v.version);
                ((*k).to_owned(), version)
            })
            .collect();
        if store
            .commit(expect, tx.writes.into_iter().collect())
            .await?
        {
            return Ok(result);
        }
        // Lost to another writer: wait a random while, longer after each loss, so that
        // writers contending for one record do not keep colliding (and none starves).
        tokio::time::sleep(jitter(BACKOFF_UNIT * (1 << tries.min(6)))).await;
    }
    Err(Status::aborted(format!("too many conflicting writes on {keys:?}")).into())
}

/// Every record under `prefix`, decoded.
///
/// # Errors
/// The store's, or `Internal` for a record that does not decode.
pub async fn list<S, T>(store: &S, prefix: &str) -> Result<Vec<T>, Status>
where
    S: Store + ?Sized,
    T: DeserializeOwned,
{
    store
        .list(prefix)
        .await?
        .into_iter()
        .map(|(k, v)| {
            serde_json::from_slice(&v)
                .map_err(|e| Status::internal(format!("record {k:?} does not decode: {e}")))
        })
        .collect()
}

#[cfg(feature = "etcd")]
pub use self::etcd::EtcdStore;

#[cfg(feature = "etcd")]
mod etcd {
    use etcd_client::{Client, Compare, CompareOp, GetOptions, Txn, TxnOp, TxnOpResponse};
    use rpc_core::{BoxFuture, Status};

    use super::{Record, Store, Versioned, Write};

    fn unavailable(e: etcd_client::Error) -> Status {
        Status::unavailable(format!("etcd: {e}"))
    }

    /// A [`Store`] in etcd, under a key prefix; versions are etcd's mod revisions.
    #[derive(Clone)]
    pub struct EtcdStore {
        client: Client,
        prefix: String,
    }

    impl std::fmt::Debug for EtcdStore {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("EtcdStore")
                .field("prefix", &self.prefix)
                .finish_non_exhaustive()
        }
    }

    impl EtcdStore {
        /// Connects to etcd at `endpoints`; keys live under `prefix`.
        ///
        /// # Errors
        /// `Unavailable` if etcd cannot be reached.
        pub async fn connect(endpoints: &[String], prefix: &str) -> Result<EtcdStore, Status> {
            let client = Client::connect(endpoints, None)
                .await
                .map_err(unavailable)?;
            Ok(EtcdStore {
                client,
                prefix: prefix.to_owned(),
            })
        }

        fn key(&self, key: &str) -> String {
            format!("{}{key}", self.prefix)
        }

        /// A KV client taking answers up to 256 MiB (an audit lists every record at once;
        /// tonic's default stops at 4 MiB).
        fn kv(&self) -> etcd_client::KvClient {
            self.client.kv_client().max_decoding_message_size(256 << 20)
        }
    }

    impl Store for EtcdStore {
        fn get(&self, key: &str) -> BoxFuture<'_, Result<Option<Versioned>, Status>> {
            let key = self.key(key);
            let mut kv = self.kv();
            Box::pin(async move {
                let resp = kv.get(key, None).await.map_err(unavailable)?;
                Ok(resp.kvs().first().map(|kv| Versioned {
                    value: kv.value().to_vec(),
                    version: u64::try_from(kv.mod_revision()).unwrap_or(0),
                }))
            })
        }

        fn get_many(&self, keys: &[&str]) -> BoxFuture<'_, Result<Vec<Option<Versioned>>, Status>> {
            // One transaction of reads: one round trip, one revision.
            let ops: Vec<TxnOp> = keys.iter().map(|k| TxnOp::get(self.key(k), None)).collect();
            let n = keys.len();
            let mut kv = self.kv();
            Box::pin(async move {
                let resp = kv
                    .txn(Txn::new().and_then(ops))
                    .await
                    .map_err(unavailable)?;
                let mut found = Vec::with_capacity(n);
                for op in resp.op_responses() {
                    let TxnOpResponse::Get(get) = op else {
                        return Err(Status::internal("etcd answered a read with something else"));
                    };
                    found.push(get.kvs().first().map(|kv| Versioned {
                        value: kv.value().to_vec(),
                        version: u64::try_from(kv.mod_revision()).unwrap_or(0),
                    }));
                }
                if found.len() != n {
                    return Err(Status::internal("etcd answered fewer reads than asked"));
                }
                Ok(found)
            })
        }

        fn commit(
            &self,
            expect: Vec<(String, u64)>,
            writes: Vec<Write>,
        ) -> BoxFuture<'_, Result<bool, Status>> {
            let when: Vec<Compare> = expect
                .into_iter()
                .map(|(k, v)| match v {
                    0 => Compare::version(self.key(&k), CompareOp::Equal, 0),
                    v => Compare::mod_revision(
                        self.key(&k),
                        CompareOp::Equal,
                        i64::try_from(v).unwrap_or(i64::MAX),
                    ),
                })
                .collect();
            let ops: Vec<TxnOp> = writes
                .into_iter()
                .map(|(k, v)| match v {
                    Some(v) => TxnOp::put(self.key(&k), v, None),
                    None => TxnOp::delete(self.key(&k), None),
                })
                .collect();
            let mut kv = self.kv();
            Box::pin(async move {
                let resp = kv
                    .txn(Txn::new().when(when).and_then(ops))
                    .await
                    .map_err(unavailable)?;
                Ok(resp.succeeded())
            })
        }

        fn list(&self, prefix: &str) -> BoxFuture<'_, Result<Vec<Record>, Status>> {
            let full = self.key(prefix);
            let strip = self.prefix.len();
            let mut kv = self.kv();
            Box::pin(async move {
                let resp = kv
                    .get(full, Some(GetOptions::new().with_prefix()))
                    .await
                    .map_err(unavailable)?;
                let mut found: Vec<Record> = resp
                    .kvs()
                    .iter()
                    .map(|kv| {
                        let key = String::from_utf8_lossy(kv.key());
                        (
                            key.get(strip..).unwrap_or("").to_owned(),
                            kv.value().to_vec(),
                        )
                    })
                    .collect();
                found.sort_by(|a, b| a.0.cmp(&b.0));
                Ok(found)
            })
        }
    }
}
