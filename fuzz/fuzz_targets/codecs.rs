//! Message bodies in each codec, and typed error details: decoding arbitrary bytes as a
//! realistic message never panics, and a message that decodes encodes and decodes again to an
//! equal one (in the same codec).
//!
//! The first byte picks the path: 0 Protobuf, 1 JSON, 2 MessagePack, 3 typed error details (the
//! `rpc-error-bin` metadata entry of a status); the rest is the body.

#![no_main]

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use rpc_codec::{Json, MsgPack, Protobuf};
use rpc_core::{Code, Metadata, Status, DETAILS_KEY};

/// A line of an order.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
pub struct Line {
    #[prost(string, tag = "1")]
    pub sku: String,
    #[prost(uint32, tag = "2")]
    pub quantity: u32,
    #[prost(int64, tag = "3")]
    pub price_minor: i64,
    #[prost(string, optional, tag = "4")]
    pub note: Option<String>,
}

/// An order: nested and repeated messages, a map, optional fields, bytes and an enum.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
pub struct Order {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(string, tag = "2")]
    pub customer: String,
    #[prost(message, repeated, tag = "3")]
    pub lines: Vec<Line>,
    #[prost(btree_map = "string, string", tag = "4")]
    pub tags: BTreeMap<String, String>,
    #[prost(bytes = "bytes", tag = "5")]
    pub token: Bytes,
    #[prost(bool, optional, tag = "6")]
    pub gift: Option<bool>,
    #[prost(enumeration = "State", tag = "7")]
    pub state: i32,
}

/// Where an order stands.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    prost::Enumeration,
    serde::Serialize,
    serde::Deserialize,
)]
#[repr(i32)]
pub enum State {
    Open = 0,
    Paid = 1,
}

/// A typed service error, as `#[service]` errors are.
#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum ShopError {
    NotFound { sku: String },
    Insufficient { sku: String, available: u32 },
    Declined(u64),
}

fn round_trip<T: PartialEq + std::fmt::Debug>(
    value: T,
    encode: impl Fn(&T, &mut BytesMut) -> Result<(), rpc_codec::CodecError>,
    decode: impl Fn(Bytes) -> Result<T, rpc_codec::CodecError>,
) {
    let mut out = BytesMut::new();
    encode(&value, &mut out).expect("a decoded message encodes");
    let again = decode(out.freeze()).expect("what we encode decodes");
    assert_eq!(again, value);
}

fuzz_target!(|data: &[u8]| {
    let Some((&path, body)) = data.split_first() else {
        return;
    };
    let body = Bytes::copy_from_slice(body);
    match path % 4 {
        0 => {
            if let Ok(order) = Protobuf::decode::<Order>(body) {
                round_trip(order, |v, d| Protobuf::encode(v, d), Protobuf::decode);
            }
        }
        1 => {
            if let Ok(order) = Json::decode::<Order>(body) {
                round_trip(order, |v, d| Json::encode(v, d), Json::decode);
            }
        }
        2 => {
            if let Ok(order) = MsgPack::decode::<Order>(body) {
                round_trip(order, |v, d| MsgPack::encode(v, d), MsgPack::decode);
            }
        }
        _ => {
            let mut metadata = Metadata::default();
            metadata.insert(DETAILS_KEY, body);
            let status = Status::new(Code::FailedPrecondition, "refused").with_metadata(metadata);
            if let Ok(Some(e)) = status.details::<ShopError>() {
                let again = Status::new(Code::FailedPrecondition, "refused").with_details(&e);
                assert_eq!(again.details::<ShopError>().ok().flatten(), Some(e));
            }
        }
    }
});
