//! The frame decoder on arbitrary bytes: the preface check, then frame after frame (SETTINGS,
//! REQUEST and RESPONSE with their metadata blocks, CANCEL, PING, PONG, GOAWAY) until it needs
//! more bytes or refuses. It must never panic; and where the encoder is public (REQUEST, PING,
//! PONG, CANCEL), encoding an accepted frame is stable: what it encodes to decodes and encodes
//! to the same bytes again.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use rpc_core::protocol::{self, Frame, FrameDecoder, Settings};

/// The bytes `frame` encodes to, for the kinds with a public encoder.
fn encode(frame: &Frame) -> Option<BytesMut> {
    let mut out = BytesMut::new();
    match frame {
        Frame::Request(r) => protocol::encode_request(
            &mut out,
            r.call_id,
            r.flags,
            &r.path,
            r.codec,
            r.timeout_us,
            &r.metadata,
            &r.body,
        ),
        Frame::Ping(v) => protocol::encode_ping(&mut out, *v),
        Frame::Pong(v) => protocol::encode_pong(&mut out, *v),
        Frame::Cancel { call_id } => protocol::encode_cancel(&mut out, *call_id),
        _ => return None,
    }
    Some(out)
}

fuzz_target!(|data: &[u8]| {
    if let Some(preface) = data.first_chunk::<{ protocol::PREFACE_LEN }>() {
        let _ = protocol::check_preface(preface);
    }
    // Small limits, so that the limits' own paths are reached often.
    let settings = Settings {
        max_frame_size: Settings::MIN_FRAME_SIZE,
        max_metadata_size: 512,
        ..Settings::default()
    };
    let decoder = FrameDecoder::new(&settings);
    let mut buf = BytesMut::from(data);
    while let Ok(Some(frame)) = decoder.decode(&mut buf) {
        let Some(once) = encode(&frame) else { continue };
        let mut wire = once.clone();
        let again = decoder.decode(&mut wire);
        let Ok(Some(again)) = again else {
            panic!("{frame:?} encodes to bytes that decode as {again:?}");
        };
        let twice = encode(&again);
        assert_eq!(
            twice.as_deref(),
            Some(&once[..]),
            "{frame:?} does not encode stably"
        );
    }
});
