use bytes::{Buf, BufMut, BytesMut};

use super::ProtocolError;

/// Setting identifiers carried in a SETTINGS frame.
mod id {
    pub(super) const MAX_FRAME_SIZE: u16 = 0x01;
    pub(super) const MAX_CONCURRENT_CALLS: u16 = 0x02;
    pub(super) const MAX_METADATA_SIZE: u16 = 0x03;
    pub(super) const CODECS: u16 = 0x04;
    pub(super) const COMPRESSIONS: u16 = 0x05;
}

/// What one side of a connection announces about itself in its SETTINGS frame: the limits it
/// enforces on what it receives, and the codecs and compressions it understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// The largest frame payload (bytes after the 10-byte header) the sender accepts.
    pub max_frame_size: u32,
    /// How many calls the sender will run at once on this connection.
    pub max_concurrent_calls: u32,
    /// The largest metadata block the sender accepts, in bytes.
    pub max_metadata_size: u32,
    /// Bit `n` set: codec id `n` is accepted.
    pub codecs: u32,
    /// Bit `n` set: compression id `n` is accepted (bit 0, "none", is always set).
    pub compressions: u32,
}

impl Settings {
    /// The smallest max frame size a peer may announce.
    pub const MIN_FRAME_SIZE: u32 = 16 * 1024;
    const WIRE_LEN: usize = 5 * 6;

    /// Encodes the settings as a SETTINGS payload.
    pub(crate) fn encode_payload(&self, dst: &mut BytesMut) {
        for (id, value) in [
            (id::MAX_FRAME_SIZE, self.max_frame_size),
            (id::MAX_CONCURRENT_CALLS, self.max_concurrent_calls),
            (id::MAX_METADATA_SIZE, self.max_metadata_size),
            (id::CODECS, self.codecs),
            (id::COMPRESSIONS, self.compressions),
        ] {
            dst.put_u16(id);
            dst.put_u32(value);
        }
    }

    pub(crate) fn payload_len(&self) -> usize {
        Self::WIRE_LEN
    }

    /// Decodes a SETTINGS payload. Unknown identifiers are ignored so that newer peers can add
    /// settings; a missing setting keeps the protocol default.
    pub(crate) fn decode_payload(mut payload: &[u8]) -> Result<Settings, ProtocolError> {
        if !payload.len().is_multiple_of(6) {
            return Err(ProtocolError::Malformed(
                "SETTINGS payload is not a whole number of 6-byte entries",
            ));
        }
        let mut s = Settings::protocol_default();
        while payload.has_remaining() {
            let id = payload.get_u16();
            let value = payload.get_u32();
            match id {
                id::MAX_FRAME_SIZE => {
                    if value < Settings::MIN_FRAME_SIZE {
                        return Err(ProtocolError::Malformed(
                            "SETTINGS max frame size below 16384",
                        ));
                    }
                    s.max_frame_size = value;
                }
                id::MAX_CONCURRENT_CALLS => s.max_concurrent_calls = value,
                id::MAX_METADATA_SIZE => s.max_metadata_size = value,
                id::CODECS => s.codecs = value,
                id::COMPRESSIONS => s.compressions = value | 1,
                _ => {}
            }
        }
        Ok(s)
    }

    /// The values a peer is assumed to have for settings it does not send.
    pub const fn protocol_default() -> Settings {
        Settings {
            max_frame_size: 4 * 1024 * 1024,
            max_concurrent_calls: 1024,
            max_metadata_size: 16 * 1024,
            codecs: 0b1111,
            compressions: 1,
        }
    }

    /// The codecs the sender accepts.
    pub fn codec_set(&self) -> rpc_codec::CodecSet {
        rpc_codec::CodecSet::from_bits(self.codecs)
    }

    /// Whether the sender can read bodies compressed with `c`.
    pub fn accepts_compression(&self, c: rpc_codec::Compression) -> bool {
        self.compressions & c.bit() != 0
    }
}

impl Default for Settings {
    fn default() -> Settings {
        Settings::protocol_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_unknown_ids() {
        let s = Settings {
            max_frame_size: 1 << 20,
            max_concurrent_calls: 7,
            max_metadata_size: 99,
            codecs: 0b101,
            compressions: 0,
        };
        let mut buf = BytesMut::new();
        s.encode_payload(&mut buf);
        buf.put_u16(0x7777);
        buf.put_u32(5);
        let back = Settings::decode_payload(&buf).unwrap();
        assert_eq!(back.max_frame_size, 1 << 20);
        assert_eq!(back.max_concurrent_calls, 7);
        assert_eq!(back.codecs, 0b101);
        assert_eq!(back.compressions, 1, "none is always accepted");
    }

    #[test]
    fn rejects_ragged_and_tiny_frames() {
        assert!(Settings::decode_payload(&[0, 1, 0]).is_err());
        let mut buf = BytesMut::new();
        buf.put_u16(0x01);
        buf.put_u32(100);
        assert!(Settings::decode_payload(&buf).is_err());
    }
}
