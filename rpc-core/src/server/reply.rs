//! Encoding a handler's reply for the client: within the client's limits (an oversized reply
//! becomes a `ResourceExhausted` status the client can read; error metadata over the limits is
//! cut, with a marker, never dropped silently), compressed when both sides agree, and flagged as
//! not processed when the server refused the call before running it.

use std::sync::LazyLock;

use bytes::BytesMut;

use super::service::Reply;
use crate::conn::{check_frame, check_metadata, compress_if_smaller, CompressRule, U16_MAX};
use crate::metadata::Metadata;
use crate::protocol::{self, Settings, METADATA_TRUNCATED_KEY, NOT_PROCESSED_KEY};
use crate::service_error::DETAILS_KEY;
use crate::status::{Code, Delivery};

/// Error messages are cut to this many bytes (on a character boundary) so an error always fits.
const MAX_MESSAGE: usize = 8 * 1024;

/// The fixed part of a RESPONSE payload: status (1), message length (2), metadata length (4).
const RESPONSE_FIXED: usize = 7;

/// The metadata of a refusal that carries nothing else, built once: `rpc-not-processed: 1`.
static NOT_PROCESSED: LazyLock<Metadata> = LazyLock::new(|| {
    let mut md = Metadata::new();
    md.insert(NOT_PROCESSED_KEY, "1");
    md
});

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
                protocol::encode_response(dst, id, 0, code, msg.as_bytes(), &Metadata::new(), b"");
            }
        }
        Err(status) => {
            // A call the server refused before running it says so, so that clients may retry it.
            let unprocessed = status.delivery() != Delivery::Sent;
            encode_status(
                dst,
                id,
                status.code(),
                status.message(),
                status.metadata(),
                unprocessed,
                peer,
            );
        }
    }
}

/// Encodes the refusal of a call no handler saw, flagged not processed (`rpc-not-processed: 1`).
/// Allocates nothing: the refusals of an overloaded server must cost less than the calls.
pub(super) fn encode_refusal(
    dst: &mut BytesMut,
    id: u32,
    code: Code,
    message: &str,
    rules: &ReplyRules,
) {
    encode_status(dst, id, code, message, &Metadata::new(), true, &rules.peer);
}

/// Encodes an error status. Metadata over the client's limits is cut by [`truncate`] rather than
/// dropped, and where not even the marker fits the message says what was left out.
fn encode_status(
    dst: &mut BytesMut,
    id: u32,
    code: Code,
    message: &str,
    md: &Metadata,
    unprocessed: bool,
    peer: &Settings,
) {
    let msg = cut(message);
    let flagged;
    let md = match (unprocessed, md.is_empty()) {
        (false, _) => md,
        (true, true) => &*NOT_PROCESSED,
        (true, false) => {
            let mut m = md.clone();
            m.insert(NOT_PROCESSED_KEY, "1");
            flagged = m;
            &flagged
        }
    };
    let code = code.as_u8();
    if check_metadata(md, peer).is_ok()
        && check_frame(protocol::response_len(msg.as_bytes(), md, b""), peer).is_ok()
    {
        protocol::encode_response(dst, id, 0, code, msg.as_bytes(), md, b"");
        return;
    }
    // The frame's budget for metadata, after the fixed part and the (already cut) message.
    let budget = (peer.max_metadata_size as usize)
        .min((peer.max_frame_size as usize).saturating_sub(RESPONSE_FIXED + msg.len()));
    match truncate(md, budget) {
        Some((kept, left_out)) => {
            tracing::warn!(
                call_id = id,
                left_out,
                metadata_bytes = md.encoded_len(),
                limit = budget,
                "error metadata over the client's limits: sent what fits, marked {METADATA_TRUNCATED_KEY}"
            );
            protocol::encode_response(dst, id, 0, code, msg.as_bytes(), &kept, b"");
        }
        None => {
            // Not even the marker fits: the message, which always fits, says it instead.
            let note = format!(
                "{msg} [all {} metadata entries left out: over the client's metadata limit of {} bytes]",
                md.len(),
                peer.max_metadata_size
            );
            tracing::warn!(call_id = id, limit = budget, "{note}");
            let note = cut(&note);
            protocol::encode_response(dst, id, 0, code, note.as_bytes(), &Metadata::new(), b"");
        }
    }
}

/// `text` cut to [`MAX_MESSAGE`] bytes on a character boundary.
fn cut(text: &str) -> &str {
    let mut end = text.len().min(MAX_MESSAGE);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Keeps what fits of an error's metadata in `budget` bytes, in this order of priority:
/// `rpc-not-processed`, the typed error details (`rpc-error-bin`), then the other entries in
/// their order (an entry that does not fit is skipped, a later smaller one may still be kept).
/// The kept entries stay in their original order, followed by the marker
/// `rpc-metadata-truncated: <entries left out>`. `None` when the budget cannot hold the marker.
fn truncate(md: &Metadata, budget: usize) -> Option<(Metadata, usize)> {
    let entries = md.entries();
    let marker_len = |left_out: usize| 4 + METADATA_TRUNCATED_KEY.len() + digits(left_out);
    let mut room = budget.checked_sub(marker_len(entries.len()))?;
    let mut keep = vec![false; entries.len()];
    let priority = |key: &[u8]| match key {
        k if k == NOT_PROCESSED_KEY.as_bytes() => 0,
        k if k == DETAILS_KEY.as_bytes() => 1,
        _ => 2,
    };
    for pass in 0..3 {
        for (i, (k, v)) in entries.iter().enumerate() {
            let size = 4 + k.len() + v.len();
            if priority(k) == pass && k.len() <= U16_MAX && v.len() <= U16_MAX && size <= room {
                keep[i] = true;
                room -= size;
            }
        }
    }
    let mut kept = Metadata::new();
    for ((k, v), _) in entries.iter().zip(&keep).filter(|(_, keep)| **keep) {
        kept.push_raw(k.clone(), v.clone());
    }
    let left_out = entries.len() - kept.len();
    kept.append(METADATA_TRUNCATED_KEY, left_out.to_string());
    Some((kept, left_out))
}

/// Decimal digits of `n`.
fn digits(n: usize) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry_len(k: &str, v: &[u8]) -> usize {
        4 + k.len() + v.len()
    }

    #[test]
    fn truncation_keeps_details_first_then_order_and_marks_the_rest() {
        let mut md = Metadata::new();
        md.append("a", vec![b'x'; 100]);
        md.append(DETAILS_KEY, vec![b'd'; 50]);
        md.append("b", vec![b'y'; 10]);
        md.append(NOT_PROCESSED_KEY, "1");
        let marker = 4 + METADATA_TRUNCATED_KEY.len() + 1;
        let budget = marker
            + entry_len(NOT_PROCESSED_KEY, b"1")
            + entry_len(DETAILS_KEY, &[0; 50])
            + entry_len("b", &[0; 10])
            + 20;
        let (kept, left_out) = truncate(&md, budget).unwrap();
        assert_eq!(left_out, 1);
        let keys: Vec<&str> = kept.iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [DETAILS_KEY, "b", NOT_PROCESSED_KEY, METADATA_TRUNCATED_KEY]
        );
        assert_eq!(kept.get_str(METADATA_TRUNCATED_KEY), Some("1"));
        assert!(kept.encoded_len() <= budget);
    }

    #[test]
    fn truncation_needs_room_for_the_marker() {
        let mut md = Metadata::new();
        md.append("a", "b");
        assert!(truncate(&md, 10).is_none());
        let (kept, left_out) = truncate(&md, 4 + METADATA_TRUNCATED_KEY.len() + 1).unwrap();
        assert_eq!((kept.len(), left_out), (1, 1));
    }

    #[test]
    fn digits_counts_decimal_digits() {
        assert_eq!([0, 9, 10, 99, 100].map(digits), [1, 1, 2, 2, 3]);
    }
}
