//! Call metadata: ordered key/value pairs sent with requests and responses.

use std::fmt;

use bytes::Bytes;

/// Key/value pairs carried with a request or a response (trace ids, caller identity, hints).
///
/// Keys are UTF-8 strings compared exactly (use lowercase by convention); values are bytes, usually
/// UTF-8 text. Keys may repeat; [`Metadata::get`] returns the first. An empty map allocates nothing.
///
/// ```
/// use rpc_core::Metadata;
///
/// let mut md = Metadata::new();
/// md.insert("caller", "order-center");
/// assert_eq!(md.get_str("caller"), Some("order-center"));
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    entries: Vec<(Bytes, Bytes)>,
}

impl Metadata {
    /// An empty map.
    pub const fn new() -> Metadata {
        Metadata {
            entries: Vec::new(),
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// `true` if there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Sets `key` to `value`, replacing earlier entries with that key.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<Bytes>) {
        let key: String = key.into();
        self.entries.retain(|(k, _)| k.as_ref() != key.as_bytes());
        self.entries.push((Bytes::from(key), value.into()));
    }

    /// Adds an entry without removing earlier ones with the same key.
    pub fn append(&mut self, key: impl Into<String>, value: impl Into<Bytes>) {
        self.entries.push((Bytes::from(key.into()), value.into()));
    }

    /// The first value stored under `key`.
    pub fn get(&self, key: &str) -> Option<&Bytes> {
        self.entries
            .iter()
            .find(|(k, _)| k.as_ref() == key.as_bytes())
            .map(|(_, v)| v)
    }

    /// The first value under `key`, if it is UTF-8 text.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Removes every entry under `key` and returns the first removed value.
    pub fn remove(&mut self, key: &str) -> Option<Bytes> {
        let mut first = None;
        self.entries.retain(|(k, v)| {
            if k.as_ref() == key.as_bytes() {
                first.get_or_insert_with(|| v.clone());
                false
            } else {
                true
            }
        });
        first
    }

    /// Iterates over the entries in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Bytes)> + '_ {
        self.entries
            .iter()
            .map(|(k, v)| (std::str::from_utf8(k).unwrap_or_default(), v))
    }

    /// The number of bytes these entries take in a frame's metadata block.
    pub fn encoded_len(&self) -> usize {
        self.entries
            .iter()
            .map(|(k, v)| 4 + k.len() + v.len())
            .sum()
    }

    pub(crate) fn entries(&self) -> &[(Bytes, Bytes)] {
        &self.entries
    }

    /// Adds an entry whose key the protocol decoder already checked to be UTF-8.
    pub(crate) fn push_raw(&mut self, key: Bytes, value: Bytes) {
        self.entries.push((key, value));
    }
}

impl fmt::Debug for Metadata {
    /// Every entry, but credentials (`authorization`) as `<redacted>`, so that logging a
    /// request or a context never logs a token.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (k, v) in self.iter() {
            if k.eq_ignore_ascii_case("authorization") {
                map.entry(&k, &"<redacted>");
                continue;
            }
            match std::str::from_utf8(v) {
                Ok(s) => map.entry(&k, &s),
                Err(_) => map.entry(&k, v),
            };
        }
        map.finish()
    }
}

impl<K: Into<String>, V: Into<Bytes>> FromIterator<(K, V)> for Metadata {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Metadata {
        let mut md = Metadata::new();
        for (k, v) in iter {
            md.append(k, v);
        }
        md
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_credentials() {
        let md: Metadata = [("authorization", "Bearer s3cr3t"), ("caller", "web")]
            .into_iter()
            .collect();
        let shown = format!("{md:?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(
            shown.contains("<redacted>") && shown.contains("web"),
            "{shown}"
        );
    }

    #[test]
    fn insert_replaces_append_keeps() {
        let mut md = Metadata::new();
        md.append("k", "1");
        md.append("k", "2");
        assert_eq!(md.len(), 2);
        assert_eq!(md.get_str("k"), Some("1"));
        md.insert("k", "3");
        assert_eq!(md.len(), 1);
        assert_eq!(md.remove("k").as_deref(), Some(&b"3"[..]));
        assert!(md.is_empty());
    }

    #[test]
    fn binary_values_are_kept() {
        let md: Metadata = [("bin", Bytes::from_static(&[0xff, 0x00]))]
            .into_iter()
            .collect();
        assert_eq!(md.get("bin").map(|b| b.as_ref()), Some(&[0xff, 0x00][..]));
        assert_eq!(md.get_str("bin"), None);
        assert_eq!(md.encoded_len(), 4 + 3 + 2);
    }
}
