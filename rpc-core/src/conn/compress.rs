//! Body compression on the way out: applied only where the peer reads the algorithm, only to
//! bodies at or above a threshold, and kept only when it made the body smaller.

use bytes::BytesMut;
use rpc_codec::Compression;

/// An algorithm and the smallest body worth compressing with it, in bytes.
pub(crate) type CompressRule = Option<(Compression, usize)>;

/// Compresses `body` under `rule`; `None` when the rule does not apply or the result would not be
/// smaller (the body is then sent as it is, without the COMPRESSED flag).
pub(crate) fn compress_if_smaller(rule: CompressRule, body: &[u8]) -> Option<BytesMut> {
    let (compression, threshold) = rule?;
    if body.len() < threshold {
        return None;
    }
    let mut out = BytesMut::new();
    compression.compress(body, &mut out);
    (out.len() < body.len()).then_some(out)
}
