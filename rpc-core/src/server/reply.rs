//! Encoding a handler's reply for the client: within the client's limits (an oversized reply
//! becomes a `ResourceExhausted` status the client can read), compressed when both sides agree,
//! and flagged as not processed when the server refused the call before running it.

use bytes::BytesMut;

use super::service::Reply;
use crate::conn::{check_frame, check_metadata, compress_if_smaller, CompressRule};
use crate::metadata::Metadata;
use crate::protocol::{self, Settings};
use crate::status::{Code, Delivery};

/// Error messages are cut to this many bytes (on a character boundary) so an error always fits.
const MAX_MESSAGE: usize = 8 * 1024;

/// How replies on one connection are written: within the client's limits, compressed when both
/// sides agree.
#[derive(Clone, Copy)]
pub(super) struct ReplyRules {
    pub(super) peer: Settings,
    pub(super) compress: CompressRule,
}

/// Encodes a reply, replacing it with an error status when it does not fit the client's limits.
pub(super) fn encode_reply(dst: &mut BytesMut, id: u32, reply: Reply, rules: &ReplyRules) {
    let peer = &rules.peer;
    let empty = Metadata::new();
    match reply {
        Ok(resp) => {
            let md = resp.metadata();
            let compressed = compress_if_smaller(rules.compress, resp.body());
            let (body, flags): (&[u8], u8) = match &compressed {
                Some(c) => (c, protocol::flags::COMPRESSED),
                None => (resp.body(), 0),
            };
            let len = protocol::response_len(b"", md, body);
            if check_metadata(md, peer).is_ok() && check_frame(len, peer).is_ok() {
                protocol::encode_response(dst, id, flags, Code::Ok.as_u8(), b"", md, body);
            } else {
                let msg = format!(
                    "response of {len} bytes (metadata {} bytes) exceeds the client's limits \
                     (frame {} bytes, metadata {} bytes)",
                    md.encoded_len(),
                    peer.max_frame_size,
                    peer.max_metadata_size
                );
                tracing::warn!(call_id = id, "{msg}");
                let code = Code::ResourceExhausted.as_u8();
                protocol::encode_response(dst, id, 0, code, msg.as_bytes(), &empty, b"");
            }
        }
        Err(status) => {
            let text = status.message();
            let mut cut = text.len().min(MAX_MESSAGE);
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            let msg = &text.as_bytes()[..cut];
            // A call the server refused before running it says so, so that clients may retry it.
            let flagged;
            let md = if status.delivery() == Delivery::Sent {
                status.metadata()
            } else {
                let mut m = status.metadata().clone();
                m.insert(protocol::NOT_PROCESSED_KEY, "1");
                flagged = m;
                &flagged
            };
            let fits = check_metadata(md, peer).is_ok()
                && check_frame(protocol::response_len(msg, md, b""), peer).is_ok();
            let md = if fits { md } else { &empty };
            protocol::encode_response(dst, id, 0, status.code().as_u8(), msg, md, b"");
        }
    }
}
