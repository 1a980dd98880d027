//! The wire protocol: connection preface, settings, frames and their limits.
//!
//! `docs/protocol.md` at the repository root is the normative description; this module is its
//! implementation. Everything here is synchronous and allocation-aware: decoding checks every length
//! against the configured limits before it reserves memory, and bodies are split out of the read
//! buffer without copying.

mod error;
pub mod flow;
mod frame;
mod settings;

pub use error::{GoAwayCode, ProtocolError};
pub use frame::{
    encode_cancel, encode_goaway, encode_half_close, encode_message, encode_ping, encode_pong,
    encode_request, encode_response, encode_settings, encode_window_update, request_len,
    response_len, Frame, FrameDecoder, GoAway, MessageFrame, RequestFrame, ResponseFrame,
};
pub use settings::Settings;

/// The four magic bytes that open every connection, in both directions.
pub const MAGIC: [u8; 4] = [0x7f, b'R', b'P', b'C'];
/// The protocol major version this implementation speaks. Peers with another major version are refused.
pub const VERSION_MAJOR: u8 = 1;
/// The protocol minor version. Minor versions only add negotiated features.
pub const VERSION_MINOR: u8 = 0;
/// Length of the connection preface: magic, major, minor, two reserved zero bytes.
pub const PREFACE_LEN: usize = 8;
/// Length of every frame header: length (4), type (1), flags (1), call id (4).
pub const HEADER_LEN: usize = 10;

/// The preface this implementation sends.
pub const PREFACE: [u8; PREFACE_LEN] = [
    MAGIC[0],
    MAGIC[1],
    MAGIC[2],
    MAGIC[3],
    VERSION_MAJOR,
    VERSION_MINOR,
    0,
    0,
];

/// The RESPONSE metadata key by which a server says it refused a call without running it (shed,
/// rate-limited, unknown method…); clients read it as
/// [`Delivery::Unprocessed`](crate::Delivery::Unprocessed). See `docs/protocol.md`, §16 "Calls refused
/// without running".
pub const NOT_PROCESSED_KEY: &str = "rpc-not-processed";

/// The RESPONSE metadata key by which a server says it left out metadata entries of an error
/// status because they did not fit the client's limits (MAX_METADATA_SIZE, MAX_FRAME_SIZE). Its
/// value is the number of entries left out, as decimal text. See `docs/protocol.md`, §16 "Error
/// metadata over the client's limit".
pub const METADATA_TRUNCATED_KEY: &str = "rpc-metadata-truncated";

/// Frame type codes (the byte at offset 4 of a frame header).
pub mod frame_type {
    /// Settings of the sender; the first frame after the preface, call id 0.
    pub const SETTINGS: u8 = 0x01;
    /// A call: method, codec, deadline, metadata and body.
    pub const REQUEST: u8 = 0x02;
    /// The answer to a call: status, metadata and body.
    pub const RESPONSE: u8 = 0x03;
    /// The caller gave up on a call; the server drops its handler.
    pub const CANCEL: u8 = 0x04;
    /// Liveness probe; the peer answers with [`PONG`] carrying the same 8 bytes.
    pub const PING: u8 = 0x05;
    /// Answer to [`PING`].
    pub const PONG: u8 = 0x06;
    /// The sender will accept no new calls; calls above `last_call_id` were not processed.
    pub const GOAWAY: u8 = 0x07;
    /// Protocol 1.1, where both peers announce streaming: one message of a call's stream.
    pub const MESSAGE: u8 = 0x08;
    /// Protocol 1.1: flow-control credit, for one call or (call id 0) the connection.
    pub const WINDOW_UPDATE: u8 = 0x09;
    /// Protocol 1.1: the client's request stream ends (without a last message).
    pub const HALF_CLOSE: u8 = 0x0a;
}

/// Bits of the FEATURES setting (protocol 1.1): what the sender supports beyond 1.0.
pub mod features {
    /// Streaming calls: MESSAGE, WINDOW_UPDATE and HALF_CLOSE frames, and the stream flags on
    /// REQUEST. Used on a connection only when both SETTINGS frames set it.
    pub const STREAMING: u32 = 0x01;
}

/// Flag bits (the byte at offset 5 of a frame header).
pub mod flags {
    /// On a request: the caller expects no response.
    pub const ONE_WAY: u8 = 0x01;
    /// On a request or response: the body is compressed. It then starts with the compression id
    /// (1 byte) and the uncompressed length (u32), followed by the compressed data.
    pub const COMPRESSED: u8 = 0x02;
    /// Protocol 1.1, on a request: the client sends its request messages in MESSAGE frames; the
    /// REQUEST body is empty.
    pub const CLIENT_STREAM: u8 = 0x04;
    /// Protocol 1.1, on a request: the server sends its response messages in MESSAGE frames,
    /// then a RESPONSE with an empty body (the trailer).
    pub const SERVER_STREAM: u8 = 0x08;
    /// Protocol 1.1, on a client's MESSAGE: the last message of the request stream.
    pub const END_STREAM: u8 = 0x10;
}

/// Parses a connection preface.
///
/// # Errors
/// [`ProtocolError::BadMagic`] if the bytes are not our magic, [`ProtocolError::UnsupportedVersion`]
/// if the major version differs from ours.
pub fn check_preface(bytes: &[u8; PREFACE_LEN]) -> Result<(u8, u8), ProtocolError> {
    if bytes[..4] != MAGIC {
        return Err(ProtocolError::BadMagic);
    }
    let (major, minor) = (bytes[4], bytes[5]);
    if major != VERSION_MAJOR {
        return Err(ProtocolError::UnsupportedVersion { major, minor });
    }
    Ok((major, minor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preface_checks() {
        assert_eq!(check_preface(&PREFACE).unwrap(), (1, 0));
        let mut bad = PREFACE;
        bad[0] = b'G';
        assert!(matches!(check_preface(&bad), Err(ProtocolError::BadMagic)));
        let mut v2 = PREFACE;
        v2[4] = 2;
        assert!(matches!(
            check_preface(&v2),
            Err(ProtocolError::UnsupportedVersion { major: 2, .. })
        ));
        let mut minor = PREFACE;
        minor[5] = 9;
        assert!(check_preface(&minor).is_ok());
    }
}
