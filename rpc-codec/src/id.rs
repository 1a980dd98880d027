use std::fmt;
use std::str::FromStr;

/// The numeric id of a codec, carried in every request frame.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CodecId(u8);

impl CodecId {
    /// Opaque bytes: the body is passed through untouched.
    pub const RAW: CodecId = CodecId(0);
    /// Protocol Buffers (prost).
    pub const PROTOBUF: CodecId = CodecId(1);
    /// JSON (serde_json).
    pub const JSON: CodecId = CodecId(2);
    /// MessagePack with structs as maps keyed by field name (rmp-serde).
    pub const MSGPACK: CodecId = CodecId(3);

    /// Wraps a raw id as read from the wire.
    pub const fn new(id: u8) -> CodecId {
        CodecId(id)
    }

    /// The raw id as written on the wire.
    pub const fn get(self) -> u8 {
        self.0
    }

    /// A human-readable name: `raw`, `protobuf`, `json`, `msgpack`, or `codec-N` for others.
    pub fn name(self) -> &'static str {
        match self.0 {
            0 => "raw",
            1 => "protobuf",
            2 => "json",
            3 => "msgpack",
            _ => "unknown",
        }
    }
}

impl fmt::Display for CodecId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            "unknown" => write!(f, "codec-{}", self.0),
            name => f.write_str(name),
        }
    }
}

impl fmt::Debug for CodecId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CodecId({}={})", self.0, self)
    }
}

/// A codec name [`CodecId::from_str`] does not know.
#[derive(Debug, thiserror::Error)]
#[error("unknown codec {0:?} (expected raw, protobuf, json or msgpack)")]
pub struct UnknownCodec(String);

impl FromStr for CodecId {
    type Err = UnknownCodec;

    /// Reads `raw`, `protobuf` (or `proto`), `json`, `msgpack` (or `messagepack`).
    fn from_str(s: &str) -> Result<CodecId, UnknownCodec> {
        match s.to_ascii_lowercase().as_str() {
            "raw" => Ok(CodecId::RAW),
            "protobuf" | "proto" => Ok(CodecId::PROTOBUF),
            "json" => Ok(CodecId::JSON),
            "msgpack" | "messagepack" => Ok(CodecId::MSGPACK),
            _ => Err(UnknownCodec(s.to_string())),
        }
    }
}

/// A set of codec ids, as announced in SETTINGS (bit `n` = codec id `n`).
///
/// ```
/// use rpc_codec::{CodecId, CodecSet};
///
/// let set = CodecSet::EMPTY.with(CodecId::JSON).with(CodecId::MSGPACK);
/// assert!(set.contains(CodecId::JSON) && !set.contains(CodecId::PROTOBUF));
/// assert_eq!(set.to_string(), "json, msgpack");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CodecSet(u32);

impl CodecSet {
    /// No codec.
    pub const EMPTY: CodecSet = CodecSet(0);
    /// The four codecs this crate implements.
    pub const ALL: CodecSet = CodecSet(0b1111);

    /// A set from its bitmask.
    pub const fn from_bits(bits: u32) -> CodecSet {
        CodecSet(bits)
    }

    /// The bitmask.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// This set plus `id` (ids above 31 cannot be represented and are ignored).
    #[must_use]
    pub const fn with(self, id: CodecId) -> CodecSet {
        if id.0 < 32 {
            CodecSet(self.0 | 1 << id.0)
        } else {
            self
        }
    }

    /// Whether `id` is in the set.
    pub const fn contains(self, id: CodecId) -> bool {
        id.0 < 32 && self.0 & (1 << id.0) != 0
    }

    /// The ids that are in both sets.
    #[must_use]
    pub const fn intersection(self, other: CodecSet) -> CodecSet {
        CodecSet(self.0 & other.0)
    }

    /// `true` if the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The ids in the set, lowest first.
    pub fn iter(self) -> impl Iterator<Item = CodecId> {
        (0..32u8)
            .filter(move |i| self.0 & (1 << i) != 0)
            .map(CodecId)
    }
}

impl FromIterator<CodecId> for CodecSet {
    fn from_iter<I: IntoIterator<Item = CodecId>>(iter: I) -> CodecSet {
        iter.into_iter().fold(CodecSet::EMPTY, CodecSet::with)
    }
}

impl fmt::Display for CodecSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("none");
        }
        for (i, id) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{id}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for CodecSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CodecSet[{self}]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_print() {
        for id in CodecSet::ALL.iter() {
            assert_eq!(id.to_string().parse::<CodecId>().unwrap(), id);
        }
        assert_eq!(CodecId::new(9).to_string(), "codec-9");
        assert!("yaml".parse::<CodecId>().is_err());
    }

    #[test]
    fn sets() {
        let s: CodecSet = [CodecId::PROTOBUF, CodecId::MSGPACK].into_iter().collect();
        assert_eq!(s.bits(), 0b1010);
        assert_eq!(s.to_string(), "protobuf, msgpack");
        assert!(!s.contains(CodecId::new(40)));
        assert_eq!(CodecSet::EMPTY.to_string(), "none");
        assert_eq!(s.intersection(CodecSet::ALL), s);
    }
}
