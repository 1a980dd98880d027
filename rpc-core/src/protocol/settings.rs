use bytes::{Buf, BufMut, BytesMut};

use super::ProtocolError;

/// Setting identifiers carried in a SETTINGS frame.
mod id {
    pub(super) const MAX_FRAME_SIZE: u16 = 0x01;
    pub(super) const MAX_CONCURRENT_CALLS: u16 = 0x02;
    pub(super) const MAX_METADATA_SIZE: u16 = 0x03;
    pub(super) const CODECS: u16 = 0x04;
    pub(super) const COMPRESSIONS: u16 = 0x05;
    pub(super) const FEATURES: u16 = 0x06;
    pub(super) const INITIAL_CALL_WINDOW: u16 = 0x07;
    pub(super) const CONNECTION_WINDOW: u16 = 0x08;
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
    /// Protocol 1.1 features the sender supports, bits of [`super::features`]; 0 from a 1.0
    /// peer.
    pub features: u32,
    /// Protocol 1.1: flow-control credit in bytes the sender grants each stream it receives, at
    /// the start of a call (16384..=2^31−1).
    pub initial_call_window: u32,
    /// Protocol 1.1: flow-control credit in bytes the sender grants all streams it receives on
    /// the connection together, at its start (16384..=2^31−1).
    pub connection_window: u32,
}

impl Settings {
    /// The smallest max frame size a peer may announce.
    pub const MIN_FRAME_SIZE: u32 = 16 * 1024;
    /// The smallest flow-control window a peer may announce (protocol 1.1): a message of up to
    /// `MIN_WINDOW - 10` bytes can always be streamed.
    pub const MIN_WINDOW: u32 = 16 * 1024;
    /// The largest flow-control window, as in HTTP/2 (RFC 9113 §6.9.1).
    pub const MAX_WINDOW: u32 = (1 << 31) - 1;

    /// The entries sent: the five of protocol 1.0, and the three of 1.1 when the sender announces
    /// a feature (a sender without one sends exactly what a 1.0 peer sends).
    fn entries(&self) -> impl Iterator<Item = (u16, u32)> {
        let v11 = if self.features != 0 { 3 } else { 0 };
        [
            (id::MAX_FRAME_SIZE, self.max_frame_size),
            (id::MAX_CONCURRENT_CALLS, self.max_concurrent_calls),
            (id::MAX_METADATA_SIZE, self.max_metadata_size),
            (id::CODECS, self.codecs),
            (id::COMPRESSIONS, self.compressions),
            (id::FEATURES, self.features),
            (id::INITIAL_CALL_WINDOW, self.initial_call_window),
            (id::CONNECTION_WINDOW, self.connection_window),
        ]
        .into_iter()
        .take(5 + v11)
    }

    /// Encodes the settings as a SETTINGS payload.
    pub(crate) fn encode_payload(&self, dst: &mut BytesMut) {
        for (id, value) in self.entries() {
            dst.put_u16(id);
            dst.put_u32(value);
        }
    }

    pub(crate) fn payload_len(&self) -> usize {
        self.entries().count() * 6
    }

    /// Whether streaming calls may be used on a connection between this side and `peer`: both
    /// announced [`STREAMING`](super::features::STREAMING).
    pub fn streaming_with(&self, peer: &Settings) -> bool {
        self.features & peer.features & super::features::STREAMING != 0
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
                id::FEATURES => s.features = value,
                id::INITIAL_CALL_WINDOW | id::CONNECTION_WINDOW => {
                    if !(Settings::MIN_WINDOW..=Settings::MAX_WINDOW).contains(&value) {
                        return Err(ProtocolError::Malformed(
                            "SETTINGS flow-control window outside 16384..=2^31-1",
                        ));
                    }
                    if id == id::INITIAL_CALL_WINDOW {
                        s.initial_call_window = value;
                    } else {
                        s.connection_window = value;
                    }
                }
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
            features: 0,
            initial_call_window: 1 << 20,
            connection_window: 16 << 20,
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
            ..Settings::protocol_default()
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
    fn the_1_1_entries_are_sent_only_with_a_feature() {
        let mut buf = BytesMut::new();
        let v10 = Settings::protocol_default();
        v10.encode_payload(&mut buf);
        assert_eq!((buf.len(), v10.payload_len()), (30, 30));
        let v11 = Settings {
            features: crate::protocol::features::STREAMING | 0x8000_0000,
            initial_call_window: 65_536,
            connection_window: Settings::MAX_WINDOW,
            ..v10
        };
        buf.clear();
        v11.encode_payload(&mut buf);
        assert_eq!((buf.len(), v11.payload_len()), (48, 48));
        let back = Settings::decode_payload(&buf).unwrap();
        assert_eq!(
            back, v11,
            "unknown feature bits are kept, and ignored by who reads them"
        );
        assert!(back.streaming_with(&v11));
        assert!(!back.streaming_with(&v10), "both sides must announce it");
        // An empty SETTINGS (a minimal client's) leaves streaming off.
        assert_eq!(Settings::decode_payload(&[]).unwrap().features, 0);
    }

    #[test]
    fn windows_outside_their_range_are_refused() {
        for (id, value, ok) in [
            (id::INITIAL_CALL_WINDOW, 16_383, false),
            (id::INITIAL_CALL_WINDOW, 16_384, true),
            (id::CONNECTION_WINDOW, Settings::MAX_WINDOW, true),
            (id::CONNECTION_WINDOW, 1 << 31, false),
            (id::CONNECTION_WINDOW, 0, false),
        ] {
            let mut buf = BytesMut::new();
            buf.put_u16(id);
            buf.put_u32(value);
            assert_eq!(Settings::decode_payload(&buf).is_ok(), ok, "{id} = {value}");
        }
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
