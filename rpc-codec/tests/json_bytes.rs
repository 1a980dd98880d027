//! Byte strings in the JSON codec are base64 strings, as proto3's JSON mapping writes them
//! (<https://protobuf.dev/programming-guides/json/>: "bytes: base64 string ... standard base64
//! encoding with paddings; either standard or URL-safe base64 encoding with/without paddings are
//! accepted" — we accept the standard alphabet with or without padding).

use bytes::{Bytes, BytesMut};
use rpc_codec::{CodecError, Json};

#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Blob {
    name: String,
    data: Bytes,
    #[serde(with = "serde_bytes")]
    raw: Vec<u8>,
    maybe: Option<Bytes>,
    many: Vec<Bytes>,
}

fn blob() -> Blob {
    Blob {
        name: "b".into(),
        data: Bytes::from_static(&[0, 1, 2, 250, 251, 252, 253, 254, 255]),
        raw: b"hi!?".to_vec(),
        maybe: Some(Bytes::from_static(b"x")),
        many: vec![Bytes::new(), Bytes::from_static(b"ab")],
    }
}

fn encode(value: &Blob) -> String {
    let mut buf = BytesMut::new();
    Json::encode(value, &mut buf).unwrap();
    String::from_utf8(buf.to_vec()).unwrap()
}

#[test]
fn bytes_are_written_as_padded_standard_base64_and_read_back() {
    let json = encode(&blob());
    assert_eq!(
        json,
        r#"{"name":"b","data":"AAEC+vv8/f7/","raw":"aGkhPw==","maybe":"eA==","many":["","YWI="]}"#
    );
    let back: Blob = Json::decode(Bytes::from(json)).unwrap();
    assert_eq!(back, blob());
}

#[test]
fn unpadded_base64_and_arrays_of_numbers_are_read_too() {
    let json = r#"{"name":"b","data":[0,1,2,250,251,252,253,254,255],"raw":"aGkhPw","maybe":"eA","many":["","YWI"]}"#;
    let back: Blob = Json::decode(Bytes::from_static(json.as_bytes())).unwrap();
    assert_eq!(back, blob());
}

#[test]
fn a_string_that_is_not_base64_is_a_decode_error_naming_the_field() {
    let json = r#"{"name":"b","data":"not base64!","raw":"","maybe":null,"many":[]}"#;
    let err = Json::decode::<Blob>(Bytes::from_static(json.as_bytes())).unwrap_err();
    assert!(matches!(err, CodecError::Decode { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("data"), "{message}");
    assert!(message.contains("base64"), "{message}");
}

#[test]
fn trailing_text_after_the_value_is_still_an_error() {
    let mut json = encode(&blob());
    json.push_str(" {}");
    assert!(Json::decode::<Blob>(Bytes::from(json)).is_err());
}
