//! The gateway's response cache: successful answers of idempotent routes, bounded in bytes, each
//! kept for its route's time to live (moka).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use moka::future::Cache;

/// A cached answer: its body and content type, and how long it is kept.
#[derive(Clone)]
pub(crate) struct Cached {
    pub(crate) body: Bytes,
    pub(crate) content_type: &'static str,
    ttl: Duration,
}

/// Per-entry expiry: each answer lives for its route's time to live.
struct PerRoute;

impl moka::Expiry<Arc<[u8]>, Cached> for PerRoute {
    fn expire_after_create(
        &self,
        _key: &Arc<[u8]>,
        value: &Cached,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// Answers by route, caller (when the route caches per caller) and request message.
pub(crate) struct ResponseCache {
    cache: Cache<Arc<[u8]>, Cached>,
}

impl ResponseCache {
    /// A cache of at most `max_bytes` of keys and bodies.
    pub(crate) fn new(max_bytes: u64) -> ResponseCache {
        let cache = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|k: &Arc<[u8]>, v: &Cached| {
                u32::try_from(k.len() + v.body.len() + 64).unwrap_or(u32::MAX)
            })
            .expire_after(PerRoute)
            .build();
        ResponseCache { cache }
    }

    /// The key of a call: the route, the caller's subject (empty when the route shares answers
    /// between callers) and the request message, each length-prefixed so that no two differ
    /// only in where one ends.
    pub(crate) fn key(route: usize, subject: &str, message: &[u8]) -> Arc<[u8]> {
        let mut key = Vec::with_capacity(16 + subject.len() + message.len());
        key.extend_from_slice(&(route as u64).to_be_bytes());
        key.extend_from_slice(&(subject.len() as u64).to_be_bytes());
        key.extend_from_slice(subject.as_bytes());
        key.extend_from_slice(message);
        key.into()
    }

    pub(crate) async fn get(&self, key: &Arc<[u8]>) -> Option<Cached> {
        self.cache.get(key).await
    }

    pub(crate) async fn insert(
        &self,
        key: Arc<[u8]>,
        body: Bytes,
        content_type: &'static str,
        ttl: Duration,
    ) {
        let value = Cached {
            body,
            content_type,
            ttl,
        };
        self.cache.insert(key, value).await;
    }
}
