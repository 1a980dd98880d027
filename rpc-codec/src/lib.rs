//! Message codecs for `rpc-core`: Protobuf (prost), JSON (serde_json) and MessagePack
//! (rmp-serde), chosen per call by a numeric [`CodecId`] on the wire, plus optional LZ4 body
//! [`Compression`].
//!
//! One message type serves every codec it supports: [`message_codecs!`] inspects a concrete type
//! at compile time and builds its [`MessageCodecs`] table; [`impl_message!`] makes that the type's
//! [`Message`] implementation.
//!
//! ```
//! use rpc_codec::{impl_message, CodecId, Message};
//!
//! // Derive both prost and serde, and the type works in all three codecs.
//! #[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
//! pub struct Item {
//!     #[prost(string, tag = "1")]
//!     pub sku: String,
//!     #[prost(uint32, tag = "2")]
//!     pub quantity: u32,
//! }
//! impl_message!(Item);
//!
//! let item = Item { sku: "tea".into(), quantity: 3 };
//! for codec in [CodecId::PROTOBUF, CodecId::JSON, CodecId::MSGPACK] {
//!     let bytes = Item::codecs().encode_to_bytes(codec, &item).unwrap();
//!     assert_eq!(Item::codecs().decode(codec, bytes).unwrap(), item);
//! }
//! ```
//!
//! Wire forms are the ones other languages read: plain JSON with serde's field names, MessagePack
//! with structs as maps keyed by field name, and Protobuf exactly as protoc-generated code writes
//! it. Codec ids: 0 raw, 1 protobuf, 2 json, 3 msgpack (see `docs/protocol.md`).

#![forbid(unsafe_code)]

#[cfg(feature = "build")]
pub mod build;
mod compression;
mod error;
mod id;
mod json;
mod message;
mod msgpack;
#[doc(hidden)]
pub mod probe;
mod protobuf;
pub mod schema;
mod table;

pub use compression::{decompress, Compression, DecompressError};
pub use error::CodecError;
pub use id::{CodecId, CodecSet, UnknownCodec};
pub use json::Json;
pub use message::Message;
pub use msgpack::MsgPack;
pub use protobuf::Protobuf;
pub use table::{Entry, MessageCodecs};

/// Support for the macros; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::probe;
}

impl_message!(bytes::Bytes);

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct SerdeOnly {
        name: String,
        tags: Vec<String>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    struct ProstOnly {
        #[prost(string, tag = "1")]
        name: String,
    }

    #[test]
    fn probes_find_the_right_codecs() {
        assert_eq!(
            message_codecs!(SerdeOnly).supported().to_string(),
            "json, msgpack"
        );
        assert_eq!(
            message_codecs!(ProstOnly).supported().to_string(),
            "protobuf"
        );
        // prost implements `Message` for `Bytes` as the BytesValue wrapper, so Protobuf applies
        // too; with bytes' `serde` feature on (feature unification in a workspace) JSON and
        // MessagePack do as well.
        let bytes = Bytes::codecs().supported();
        assert!(
            bytes.contains(CodecId::RAW) && bytes.contains(CodecId::PROTOBUF),
            "{bytes}"
        );
    }

    #[test]
    fn unsupported_codec_is_an_error_naming_the_alternatives() {
        let err = message_codecs!(SerdeOnly)
            .decode(CodecId::PROTOBUF, Bytes::new())
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("SerdeOnly") && text.contains("json, msgpack"),
            "{text}"
        );
        assert!(message_codecs!(ProstOnly)
            .encode_to_bytes(CodecId::new(77), &ProstOnly::default())
            .is_err());
    }

    #[test]
    fn decode_errors_name_the_field() {
        let codecs = message_codecs!(SerdeOnly);
        let err = codecs
            .decode(
                CodecId::JSON,
                Bytes::from_static(br#"{"name":"a","tags":["x",7]}"#),
            )
            .unwrap_err();
        assert!(err.to_string().contains("at tags[1]"), "{err}");
        let err = codecs
            .decode(CodecId::JSON, Bytes::from_static(b"{\"name\":"))
            .unwrap_err();
        assert!(matches!(err, CodecError::Decode { .. }), "{err}");
        // MessagePack: {"name": "a", "tags": [1]} — an int where a string belongs.
        let bad = Bytes::from_static(&[
            0x82, 0xa4, b'n', b'a', b'm', b'e', 0xa1, b'a', 0xa4, b't', b'a', b'g', b's', 0x91,
            0x01,
        ]);
        let err = codecs.decode(CodecId::MSGPACK, bad).unwrap_err();
        assert!(err.to_string().contains("at tags[0]"), "{err}");
        let err = message_codecs!(ProstOnly)
            .decode(CodecId::PROTOBUF, Bytes::from_static(&[0x0a, 0x05, b'a']))
            .unwrap_err();
        assert!(err.to_string().contains("ProstOnly"), "{err}");
    }

    #[test]
    fn garbage_never_panics() {
        let codecs = message_codecs!(SerdeOnly);
        let proto = message_codecs!(ProstOnly);
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..5000 {
            let bytes: Vec<u8> = (0..rng.usize(0..40)).map(|_| rng.u8(..)).collect();
            let b = Bytes::from(bytes);
            let _ = codecs.decode(CodecId::JSON, b.clone());
            let _ = codecs.decode(CodecId::MSGPACK, b.clone());
            let _ = proto.decode(CodecId::PROTOBUF, b);
        }
    }
}
