//! The checks a side makes before it encodes a frame for its peer: the wire format's 16-bit length
//! fields, and the limits the peer announced in its SETTINGS (`docs/protocol.md`, "Settings").
//! A frame that breaks one is never sent: the peer would close the connection for it.

use crate::metadata::Metadata;
use crate::protocol::Settings;

/// The largest length a u16 length field of the protocol can carry.
pub(crate) const U16_MAX: usize = u16::MAX as usize;

/// Which limit a frame would break.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exceeded {
    /// A metadata key or value is longer than its u16 length field can say.
    MetadataEntry,
    /// The encoded metadata block is larger than the peer's `max_metadata_size`.
    Metadata { len: usize, max: u32 },
    /// The frame is larger than the peer's `max_frame_size`.
    Frame { len: usize, max: u32 },
}

/// Checks a metadata block against the wire format and the peer's limit.
pub(crate) fn check_metadata(md: &Metadata, peer: &Settings) -> Result<(), Exceeded> {
    if md
        .entries()
        .iter()
        .any(|(k, v)| k.len() > U16_MAX || v.len() > U16_MAX)
    {
        return Err(Exceeded::MetadataEntry);
    }
    let len = md.encoded_len();
    if len > peer.max_metadata_size as usize {
        return Err(Exceeded::Metadata {
            len,
            max: peer.max_metadata_size,
        });
    }
    Ok(())
}

/// Checks a whole frame's length (as `protocol::request_len`/`response_len` compute it).
pub(crate) fn check_frame(len: usize, peer: &Settings) -> Result<(), Exceeded> {
    if len > peer.max_frame_size as usize {
        return Err(Exceeded::Frame {
            len,
            max: peer.max_frame_size,
        });
    }
    Ok(())
}
