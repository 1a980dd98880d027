//! The worked examples in `docs/protocol.md` are the bytes this implementation produces and reads.

use bytes::BytesMut;
use rpc_core::protocol::{self, Frame, FrameDecoder, Settings};
use rpc_core::Metadata;

const DOC: &str = include_str!("../../docs/protocol.md");

fn hex_block(tag: &str) -> Vec<u8> {
    let fence = format!("```hex {tag}\n");
    let start = DOC.find(&fence).unwrap_or_else(|| panic!("no {tag} block")) + fence.len();
    let end = start + DOC[start..].find("```").expect("closing fence");
    DOC[start..end]
        .split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).expect("hex byte"))
        .collect()
}

#[test]
fn request_example_matches_the_encoder() {
    let mut md = Metadata::new();
    md.insert("caller", "quickstart");
    let mut buf = BytesMut::new();
    protocol::encode_request(&mut buf, 1, 0, b"demo.Echo/Echo", 0, 250_000, &md, b"hi");
    assert_eq!(&buf[..], &hex_block("request-example")[..]);

    let mut wire = BytesMut::from(&hex_block("request-example")[..]);
    let Some(Frame::Request(r)) = FrameDecoder::new(&Settings::protocol_default())
        .decode(&mut wire)
        .unwrap()
    else {
        panic!("not a request")
    };
    assert_eq!(
        (&r.path[..], r.timeout_us, &r.body[..]),
        (&b"demo.Echo/Echo"[..], 250_000, &b"hi"[..])
    );
    assert_eq!(r.metadata.get_str("caller"), Some("quickstart"));
}

#[test]
fn response_example_matches_the_encoder() {
    let mut buf = BytesMut::new();
    protocol::encode_response(&mut buf, 1, 0, 0, b"", &Metadata::new(), b"hi");
    assert_eq!(&buf[..], &hex_block("response-example")[..]);
}

#[test]
fn preface_example_matches() {
    assert!(DOC.contains("```hex\n7f 52 50 43 01 00 00 00\n```"));
    assert_eq!(protocol::PREFACE, [0x7f, 0x52, 0x50, 0x43, 1, 0, 0, 0]);
}
