//! Message codecs for `rpc-core`.
//!
//! This crate will hold the Protobuf, JSON and MessagePack codecs. For now it only names the codec ids
//! that travel on the wire, so that peers agree on them.
//!
//! ```
//! assert_eq!(rpc_codec::CodecId::JSON.get(), 2);
//! ```

/// The numeric id of a codec, carried in every request frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
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

    /// A human-readable name for known ids.
    pub const fn name(self) -> &'static str {
        match self.0 {
            0 => "raw",
            1 => "protobuf",
            2 => "json",
            3 => "msgpack",
            _ => "unknown",
        }
    }
}

impl std::fmt::Display for CodecId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}({})", self.name(), self.0)
    }
}
