use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::{flags, frame_type, GoAwayCode, ProtocolError, Settings, HEADER_LEN};
use crate::metadata::Metadata;

/// Fixed bytes of a REQUEST payload besides the method, metadata and body:
/// method length (2), codec (1), timeout (8), metadata length (4).
const REQUEST_FIXED: usize = 2 + 1 + 8 + 4;
/// Fixed bytes of a RESPONSE payload besides the message, metadata and body:
/// status (1), message length (2), metadata length (4).
const RESPONSE_FIXED: usize = 1 + 2 + 4;
/// The most a decoder reserves ahead of the bytes of a frame it has seen the header of. A peer that
/// announces a large frame and sends it slowly (or never) holds only what it sent plus this;
/// the buffer grows (doubling) as the payload arrives.
const RESERVE_AHEAD: usize = 64 * 1024;

/// A decoded REQUEST frame. Method, metadata and body share the read buffer's memory.
#[derive(Debug, Clone)]
pub struct RequestFrame {
    /// The call id chosen by the caller; non-zero and increasing on a connection.
    pub call_id: u32,
    /// Flag bits, see [`super::flags`].
    pub flags: u8,
    /// `service/method`, as sent (UTF-8 is checked by the router, not here).
    pub path: Bytes,
    /// The codec id of the body.
    pub codec: u8,
    /// Relative deadline in microseconds; 0 means none.
    pub timeout_us: u64,
    /// Request metadata.
    pub metadata: Metadata,
    /// The encoded request message.
    pub body: Bytes,
}

/// A decoded RESPONSE frame.
#[derive(Debug, Clone)]
pub struct ResponseFrame {
    /// The call this answers.
    pub call_id: u32,
    /// Flag bits, see [`super::flags`].
    pub flags: u8,
    /// The status code (0 is Ok).
    pub code: u8,
    /// The status message, UTF-8 (invalid sequences are replaced when read).
    pub message: Bytes,
    /// Response (or status) metadata.
    pub metadata: Metadata,
    /// The encoded response message; empty when the status is not Ok.
    pub body: Bytes,
}

/// A decoded MESSAGE frame (protocol 1.1): one message of a call's stream.
#[derive(Debug, Clone)]
pub struct MessageFrame {
    /// The call whose stream it belongs to.
    pub call_id: u32,
    /// Flag bits: [`COMPRESSED`](super::flags::COMPRESSED), and on a client's message
    /// [`END_STREAM`](super::flags::END_STREAM).
    pub flags: u8,
    /// The encoded message, in the call's codec (compressed with the flag).
    pub body: Bytes,
}

/// A decoded GOAWAY frame.
#[derive(Debug, Clone)]
pub struct GoAway {
    /// The highest call id the sender has processed or will process; later calls were not.
    pub last_call_id: u32,
    /// Why.
    pub code: GoAwayCode,
    /// A human-readable explanation.
    pub message: Bytes,
}

/// One frame of the protocol.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Frame {
    /// The peer's settings.
    Settings(Settings),
    /// A call.
    Request(RequestFrame),
    /// A call's answer.
    Response(ResponseFrame),
    /// The caller gave up on this call.
    Cancel {
        /// The cancelled call.
        call_id: u32,
    },
    /// A liveness probe with an opaque value.
    Ping(u64),
    /// The answer to a ping, echoing its value.
    Pong(u64),
    /// The peer takes no new calls.
    GoAway(GoAway),
    /// Protocol 1.1: one message of a call's stream.
    Message(MessageFrame),
    /// Protocol 1.1: `increment` more bytes of credit for the call `call_id`, or for the
    /// connection when `call_id` is 0.
    WindowUpdate {
        /// The call, or 0 for the connection.
        call_id: u32,
        /// The credit added, 1..=2^31−1 bytes.
        increment: u32,
    },
    /// Protocol 1.1: the client's request stream of this call ends.
    HalfClose {
        /// The call.
        call_id: u32,
    },
}

/// Splits frames off a read buffer, enforcing the receiver's limits before any allocation.
///
/// Like tokio-util's `Decoder`, [`FrameDecoder::decode`] returns `Ok(None)` when more bytes are
/// needed.
#[derive(Debug, Clone, Copy)]
pub struct FrameDecoder {
    max_frame_size: u32,
    max_metadata_size: u32,
    /// Both peers announced streaming: the frame types and flags of protocol 1.1 are known.
    streaming: bool,
}

impl FrameDecoder {
    /// A decoder enforcing these limits (what this side announced in its SETTINGS), for the
    /// frames of protocol 1.0: a MESSAGE, WINDOW_UPDATE or HALF_CLOSE frame, or a REQUEST with
    /// a stream flag, is a protocol error.
    pub fn new(local: &Settings) -> FrameDecoder {
        FrameDecoder {
            max_frame_size: local.max_frame_size,
            max_metadata_size: local.max_metadata_size,
            streaming: false,
        }
    }

    /// A decoder for a connection whose SETTINGS were exchanged: it also reads the streaming
    /// frames of protocol 1.1 when both sides announced them ([`Settings::streaming_with`]).
    pub fn negotiated(local: &Settings, peer: &Settings) -> FrameDecoder {
        FrameDecoder {
            streaming: local.streaming_with(peer),
            ..FrameDecoder::new(local)
        }
    }

    /// Whether this decoder reads the streaming frames of protocol 1.1.
    pub fn streaming(&self) -> bool {
        self.streaming
    }

    /// Splits one frame off the front of `buf`.
    ///
    /// # Errors
    /// Any [`ProtocolError`] is fatal for the connection.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Frame>, ProtocolError> {
        if buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
        let kind = buf[4];
        if len > self.max_frame_size {
            return Err(ProtocolError::FrameTooLarge {
                len,
                max: self.max_frame_size,
            });
        }
        let last = if self.streaming {
            frame_type::HALF_CLOSE
        } else {
            frame_type::GOAWAY
        };
        if !(frame_type::SETTINGS..=last).contains(&kind) {
            return Err(ProtocolError::UnknownFrameType(kind));
        }
        let total = HEADER_LEN + len as usize;
        if buf.len() < total {
            buf.reserve((total - buf.len()).min(RESERVE_AHEAD));
            return Ok(None);
        }
        let flags = buf[5];
        let call_id = u32::from_be_bytes([buf[6], buf[7], buf[8], buf[9]]);
        buf.advance(HEADER_LEN);
        let payload = buf.split_to(len as usize).freeze();
        self.parse(kind, flags, call_id, payload).map(Some)
    }

    fn parse(
        &self,
        kind: u8,
        flags: u8,
        call_id: u32,
        payload: Bytes,
    ) -> Result<Frame, ProtocolError> {
        let connection_level = matches!(
            kind,
            frame_type::SETTINGS | frame_type::PING | frame_type::PONG | frame_type::GOAWAY
        );
        if connection_level && call_id != 0 {
            return Err(ProtocolError::Malformed(
                "connection-level frame with a non-zero call id",
            ));
        }
        // WINDOW_UPDATE is either: call id 0 is the connection's window.
        if !connection_level && call_id == 0 && kind != frame_type::WINDOW_UPDATE {
            return Err(ProtocolError::Malformed("call frame with call id 0"));
        }
        match kind {
            frame_type::SETTINGS => Settings::decode_payload(&payload).map(Frame::Settings),
            frame_type::REQUEST => self.parse_request(flags, call_id, payload),
            frame_type::RESPONSE => self.parse_response(flags, call_id, payload),
            frame_type::CANCEL => {
                if !payload.is_empty() {
                    return Err(ProtocolError::Malformed("CANCEL frame with a payload"));
                }
                Ok(Frame::Cancel { call_id })
            }
            frame_type::MESSAGE => Ok(Frame::Message(MessageFrame {
                call_id,
                flags,
                body: payload,
            })),
            frame_type::WINDOW_UPDATE => {
                let value: [u8; 4] = payload[..].try_into().map_err(|_| {
                    ProtocolError::Malformed("WINDOW_UPDATE payload is not 4 bytes")
                })?;
                let increment = u32::from_be_bytes(value);
                if increment == 0 || increment > Settings::MAX_WINDOW {
                    return Err(ProtocolError::Malformed(
                        "WINDOW_UPDATE increment outside 1..=2^31-1",
                    ));
                }
                Ok(Frame::WindowUpdate { call_id, increment })
            }
            frame_type::HALF_CLOSE => {
                if !payload.is_empty() {
                    return Err(ProtocolError::Malformed("HALF_CLOSE frame with a payload"));
                }
                Ok(Frame::HalfClose { call_id })
            }
            frame_type::PING | frame_type::PONG => {
                let value: [u8; 8] = payload[..]
                    .try_into()
                    .map_err(|_| ProtocolError::Malformed("PING/PONG payload is not 8 bytes"))?;
                let value = u64::from_be_bytes(value);
                Ok(if kind == frame_type::PING {
                    Frame::Ping(value)
                } else {
                    Frame::Pong(value)
                })
            }
            _ => {
                let mut p = payload;
                if p.len() < 8 {
                    return Err(ProtocolError::Malformed(
                        "GOAWAY payload shorter than 8 bytes",
                    ));
                }
                let last_call_id = p.get_u32();
                let code = GoAwayCode::from_u32(p.get_u32());
                Ok(Frame::GoAway(GoAway {
                    last_call_id,
                    code,
                    message: p,
                }))
            }
        }
    }

    fn parse_request(&self, flags: u8, call_id: u32, mut p: Bytes) -> Result<Frame, ProtocolError> {
        const SHORT: ProtocolError =
            ProtocolError::Malformed("REQUEST payload shorter than its fields");
        let stream = flags & (flags::CLIENT_STREAM | flags::SERVER_STREAM);
        if stream != 0 {
            // A 1.0 server would ignore the bits and answer as for a unary call, in a form the
            // client could not read: without streaming negotiated they are an error.
            if !self.streaming {
                return Err(ProtocolError::Malformed(
                    "REQUEST with a stream flag where streaming is not negotiated",
                ));
            }
            if flags & flags::ONE_WAY != 0 {
                return Err(ProtocolError::Malformed(
                    "REQUEST both one-way and streaming",
                ));
            }
        }
        if p.len() < REQUEST_FIXED {
            return Err(SHORT);
        }
        let path_len = p.get_u16() as usize;
        if p.len() < path_len + REQUEST_FIXED - 2 {
            return Err(SHORT);
        }
        let path = p.split_to(path_len);
        let codec = p.get_u8();
        let timeout_us = p.get_u64();
        let metadata = self.parse_metadata(&mut p)?;
        if flags & flags::CLIENT_STREAM != 0 && !p.is_empty() {
            return Err(ProtocolError::Malformed(
                "REQUEST of a client stream with a body",
            ));
        }
        Ok(Frame::Request(RequestFrame {
            call_id,
            flags,
            path,
            codec,
            timeout_us,
            metadata,
            body: p,
        }))
    }

    fn parse_response(
        &self,
        flags: u8,
        call_id: u32,
        mut p: Bytes,
    ) -> Result<Frame, ProtocolError> {
        const SHORT: ProtocolError =
            ProtocolError::Malformed("RESPONSE payload shorter than its fields");
        if p.len() < RESPONSE_FIXED {
            return Err(SHORT);
        }
        let code = p.get_u8();
        let msg_len = p.get_u16() as usize;
        if p.len() < msg_len + 4 {
            return Err(SHORT);
        }
        let message = p.split_to(msg_len);
        let metadata = self.parse_metadata(&mut p)?;
        Ok(Frame::Response(ResponseFrame {
            call_id,
            flags,
            code,
            message,
            metadata,
            body: p,
        }))
    }

    /// Reads a metadata block (length u32, then entries), checking its size before anything else.
    fn parse_metadata(&self, p: &mut Bytes) -> Result<Metadata, ProtocolError> {
        let len = p.get_u32();
        if len > self.max_metadata_size {
            return Err(ProtocolError::MetadataTooLarge {
                len,
                max: self.max_metadata_size,
            });
        }
        if len as usize > p.len() {
            return Err(ProtocolError::Malformed(
                "metadata block longer than the frame",
            ));
        }
        let mut md = Metadata::new();
        if len == 0 {
            return Ok(md);
        }
        let mut block = p.split_to(len as usize);
        while block.has_remaining() {
            let key = take_u16_prefixed(&mut block)?;
            if key.is_empty() || std::str::from_utf8(&key).is_err() {
                return Err(ProtocolError::Malformed(
                    "metadata key is empty or not UTF-8",
                ));
            }
            let value = take_u16_prefixed(&mut block)?;
            md.push_raw(key, value);
        }
        Ok(md)
    }
}

fn take_u16_prefixed(block: &mut Bytes) -> Result<Bytes, ProtocolError> {
    const BAD: ProtocolError = ProtocolError::Malformed("metadata entry overruns its block");
    if block.len() < 2 {
        return Err(BAD);
    }
    let n = block.get_u16() as usize;
    if block.len() < n {
        return Err(BAD);
    }
    Ok(block.split_to(n))
}

fn put_header(dst: &mut BytesMut, len: usize, kind: u8, flags: u8, call_id: u32) {
    debug_assert!(u32::try_from(len).is_ok());
    dst.put_u32(len as u32);
    dst.put_u8(kind);
    dst.put_u8(flags);
    dst.put_u32(call_id);
}

fn put_metadata(dst: &mut BytesMut, md: &Metadata) {
    dst.put_u32(md.encoded_len() as u32);
    for (k, v) in md.entries() {
        dst.put_u16(k.len() as u16);
        dst.put_slice(k);
        dst.put_u16(v.len() as u16);
        dst.put_slice(v);
    }
}

/// The payload length of a REQUEST frame with these parts.
pub fn request_len(path: &[u8], metadata: &Metadata, body: &[u8]) -> usize {
    REQUEST_FIXED + path.len() + metadata.encoded_len() + body.len()
}

/// The payload length of a RESPONSE frame with these parts.
pub fn response_len(message: &[u8], metadata: &Metadata, body: &[u8]) -> usize {
    RESPONSE_FIXED + message.len() + metadata.encoded_len() + body.len()
}

/// Appends a REQUEST frame. The caller has checked the sizes against the peer's settings
/// (see [`request_len`]); the path and every metadata key and value fit in 65535 bytes.
#[allow(clippy::too_many_arguments)]
pub fn encode_request(
    dst: &mut BytesMut,
    call_id: u32,
    flags: u8,
    path: &[u8],
    codec: u8,
    timeout_us: u64,
    metadata: &Metadata,
    body: &[u8],
) {
    let len = request_len(path, metadata, body);
    dst.reserve(HEADER_LEN + len);
    put_header(dst, len, frame_type::REQUEST, flags, call_id);
    dst.put_u16(path.len() as u16);
    dst.put_slice(path);
    dst.put_u8(codec);
    dst.put_u64(timeout_us);
    put_metadata(dst, metadata);
    dst.put_slice(body);
}

/// Appends a RESPONSE frame. The caller has checked the sizes (see [`response_len`]); the message
/// fits in 65535 bytes.
#[allow(clippy::too_many_arguments)]
pub fn encode_response(
    dst: &mut BytesMut,
    call_id: u32,
    flags: u8,
    code: u8,
    message: &[u8],
    metadata: &Metadata,
    body: &[u8],
) {
    let len = response_len(message, metadata, body);
    dst.reserve(HEADER_LEN + len);
    put_header(dst, len, frame_type::RESPONSE, flags, call_id);
    dst.put_u8(code);
    dst.put_u16(message.len() as u16);
    dst.put_slice(message);
    put_metadata(dst, metadata);
    dst.put_slice(body);
}

/// Appends a SETTINGS frame.
pub fn encode_settings(dst: &mut BytesMut, settings: &Settings) {
    put_header(dst, settings.payload_len(), frame_type::SETTINGS, 0, 0);
    settings.encode_payload(dst);
}

/// Appends a CANCEL frame.
pub fn encode_cancel(dst: &mut BytesMut, call_id: u32) {
    put_header(dst, 0, frame_type::CANCEL, 0, call_id);
}

/// Appends a PING frame.
pub fn encode_ping(dst: &mut BytesMut, value: u64) {
    put_header(dst, 8, frame_type::PING, 0, 0);
    dst.put_u64(value);
}

/// Appends a PONG frame.
pub fn encode_pong(dst: &mut BytesMut, value: u64) {
    put_header(dst, 8, frame_type::PONG, 0, 0);
    dst.put_u64(value);
}

/// Appends a MESSAGE frame (protocol 1.1). The caller has checked the body against the peer's
/// MAX_FRAME_SIZE and flow-control credit ([`flow::size`](super::flow::size)).
pub fn encode_message(dst: &mut BytesMut, call_id: u32, flags: u8, body: &[u8]) {
    dst.reserve(HEADER_LEN + body.len());
    put_header(dst, body.len(), frame_type::MESSAGE, flags, call_id);
    dst.put_slice(body);
}

/// Appends a WINDOW_UPDATE frame (protocol 1.1): `increment` (1..=2^31−1) more bytes of credit
/// for `call_id`, or for the connection when it is 0.
pub fn encode_window_update(dst: &mut BytesMut, call_id: u32, increment: u32) {
    debug_assert!((1..=Settings::MAX_WINDOW).contains(&increment));
    put_header(dst, 4, frame_type::WINDOW_UPDATE, 0, call_id);
    dst.put_u32(increment);
}

/// Appends a HALF_CLOSE frame (protocol 1.1): the client's request stream ends.
pub fn encode_half_close(dst: &mut BytesMut, call_id: u32) {
    put_header(dst, 0, frame_type::HALF_CLOSE, 0, call_id);
}

/// Appends a GOAWAY frame. The message is cut to 1024 bytes.
pub fn encode_goaway(dst: &mut BytesMut, last_call_id: u32, code: GoAwayCode, message: &str) {
    let message = &message.as_bytes()[..message.len().min(1024)];
    put_header(dst, 8 + message.len(), frame_type::GOAWAY, 0, 0);
    dst.put_u32(last_call_id);
    dst.put_u32(code.as_u32());
    dst.put_slice(message);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoder() -> FrameDecoder {
        FrameDecoder::new(&Settings::protocol_default())
    }

    #[test]
    fn request_round_trip_shares_memory() {
        let mut md = Metadata::new();
        md.insert("trace-id", "abc");
        let mut buf = BytesMut::new();
        encode_request(&mut buf, 7, 1, b"shop.Orders/Get", 2, 1500, &md, b"hello");
        let Frame::Request(r) = decoder().decode(&mut buf).unwrap().unwrap() else {
            panic!("not a request")
        };
        assert!(buf.is_empty());
        assert_eq!((r.call_id, r.flags, r.codec, r.timeout_us), (7, 1, 2, 1500));
        assert_eq!(&r.path[..], b"shop.Orders/Get");
        assert_eq!(r.metadata.get_str("trace-id"), Some("abc"));
        assert_eq!(&r.body[..], b"hello");
    }

    #[test]
    fn response_round_trip() {
        let mut buf = BytesMut::new();
        encode_response(&mut buf, 9, 0, 5, b"nope", &Metadata::new(), b"");
        let Frame::Response(r) = decoder().decode(&mut buf).unwrap().unwrap() else {
            panic!("not a response")
        };
        assert_eq!((r.call_id, r.code), (9, 5));
        assert_eq!(&r.message[..], b"nope");
        assert!(r.body.is_empty() && r.metadata.is_empty());
    }

    #[test]
    fn partial_frames_need_more() {
        let mut full = BytesMut::new();
        encode_request(&mut full, 1, 0, b"a/b", 0, 0, &Metadata::new(), &[7; 100]);
        let d = decoder();
        for cut in 0..full.len() {
            let mut part = BytesMut::from(&full[..cut]);
            assert!(d.decode(&mut part).unwrap().is_none(), "cut at {cut}");
        }
    }

    #[test]
    fn limits_checked_from_the_header_alone() {
        let d = FrameDecoder::new(&Settings {
            max_frame_size: 16 * 1024,
            ..Settings::protocol_default()
        });
        let mut buf = BytesMut::new();
        buf.put_u32(u32::MAX);
        buf.put_u8(frame_type::REQUEST);
        buf.put_u8(0);
        buf.put_u32(1);
        let cap = buf.capacity();
        assert!(matches!(
            d.decode(&mut buf),
            Err(ProtocolError::FrameTooLarge { .. })
        ));
        assert_eq!(
            buf.capacity(),
            cap,
            "nothing reserved for an oversized frame"
        );
    }

    #[test]
    fn an_announced_frame_reserves_only_a_bounded_amount_ahead() {
        let d = FrameDecoder::new(&Settings::protocol_default());
        let mut buf = BytesMut::new();
        buf.put_u32(4 * 1024 * 1024 - 1);
        buf.put_u8(frame_type::REQUEST);
        buf.put_u8(0);
        buf.put_u32(1);
        buf.put_slice(&[0; 100]);
        assert!(d.decode(&mut buf).unwrap().is_none());
        assert!(
            buf.capacity() <= HEADER_LEN + 100 + RESERVE_AHEAD + 1024,
            "a 4 MiB header reserved {} bytes",
            buf.capacity()
        );
    }

    #[test]
    fn metadata_limit() {
        let d = FrameDecoder::new(&Settings {
            max_metadata_size: 8,
            ..Settings::protocol_default()
        });
        let mut md = Metadata::new();
        md.insert("long-key", "long-value");
        let mut buf = BytesMut::new();
        encode_request(&mut buf, 1, 0, b"a/b", 0, 0, &md, b"");
        assert!(matches!(
            d.decode(&mut buf),
            Err(ProtocolError::MetadataTooLarge { len: 22, max: 8 })
        ));
    }

    #[test]
    fn rejects_unknown_types_and_bad_ids() {
        let d = decoder();
        let mut buf = BytesMut::from(&[0, 0, 0, 0, 0x42, 0, 0, 0, 0, 0][..]);
        assert!(matches!(
            d.decode(&mut buf),
            Err(ProtocolError::UnknownFrameType(0x42))
        ));
        let mut buf = BytesMut::new();
        encode_cancel(&mut buf, 0);
        assert!(matches!(
            d.decode(&mut buf),
            Err(ProtocolError::Malformed(_))
        ));
        let mut buf = BytesMut::new();
        put_header(&mut buf, 0, frame_type::PING, 0, 0);
        assert!(matches!(
            d.decode(&mut buf),
            Err(ProtocolError::Malformed(_))
        ));
    }

    #[test]
    fn overrunning_lengths_are_malformed_not_panics() {
        let d = decoder();
        // A request whose method length points past the payload.
        let mut buf = BytesMut::new();
        put_header(&mut buf, 15, frame_type::REQUEST, 0, 1);
        buf.put_u16(500);
        buf.put_slice(&[0; 13]);
        assert!(matches!(
            d.decode(&mut buf),
            Err(ProtocolError::Malformed(_))
        ));
        // A metadata entry whose value length overruns its block.
        let mut buf = BytesMut::new();
        put_header(&mut buf, 15 + 3 + 5, frame_type::REQUEST, 0, 1);
        buf.put_u16(0);
        buf.put_u8(0);
        buf.put_u64(0);
        buf.put_u32(5);
        buf.put_slice(&[0, 1, b'k', 0, 9]);
        buf.put_slice(&[0; 3]);
        assert!(matches!(
            d.decode(&mut buf),
            Err(ProtocolError::Malformed(_))
        ));
    }

    fn streaming_decoder() -> FrameDecoder {
        let local = Settings {
            features: crate::protocol::features::STREAMING,
            ..Settings::protocol_default()
        };
        FrameDecoder::negotiated(&local, &local)
    }

    #[test]
    fn streaming_frames_round_trip_once_negotiated() {
        let d = streaming_decoder();
        assert!(d.streaming());
        let mut buf = BytesMut::new();
        encode_message(&mut buf, 5, flags::END_STREAM, b"tick");
        encode_window_update(&mut buf, 0, 32);
        encode_window_update(&mut buf, 5, Settings::MAX_WINDOW);
        encode_half_close(&mut buf, 5);
        let Ok(Some(Frame::Message(m))) = d.decode(&mut buf) else {
            panic!("not a message")
        };
        assert_eq!(
            (m.call_id, m.flags, &m.body[..]),
            (5, flags::END_STREAM, &b"tick"[..])
        );
        assert!(matches!(
            d.decode(&mut buf),
            Ok(Some(Frame::WindowUpdate {
                call_id: 0,
                increment: 32
            }))
        ));
        assert!(matches!(
            d.decode(&mut buf),
            Ok(Some(Frame::WindowUpdate {
                call_id: 5,
                increment: Settings::MAX_WINDOW
            }))
        ));
        assert!(matches!(
            d.decode(&mut buf),
            Ok(Some(Frame::HalfClose { call_id: 5 }))
        ));
        assert!(buf.is_empty());
    }

    #[test]
    fn streaming_frames_are_unknown_unless_negotiated() {
        let one_side = Settings {
            features: crate::protocol::features::STREAMING,
            ..Settings::protocol_default()
        };
        let d = FrameDecoder::negotiated(&one_side, &Settings::protocol_default());
        assert!(!d.streaming(), "both sides must announce streaming");
        for kind in [
            frame_type::MESSAGE,
            frame_type::WINDOW_UPDATE,
            frame_type::HALF_CLOSE,
        ] {
            let mut buf = BytesMut::new();
            put_header(&mut buf, 0, kind, 0, 1);
            assert!(matches!(
                d.decode(&mut buf),
                Err(ProtocolError::UnknownFrameType(k)) if k == kind
            ));
        }
        for flag in [flags::CLIENT_STREAM, flags::SERVER_STREAM] {
            let mut buf = BytesMut::new();
            encode_request(&mut buf, 1, flag, b"a/b", 0, 0, &Metadata::new(), b"");
            assert!(matches!(
                d.decode(&mut buf),
                Err(ProtocolError::Malformed(_))
            ));
        }
    }

    #[test]
    fn malformed_streaming_frames_are_refused() {
        let d = streaming_decoder();
        let malformed =
            |buf: &mut BytesMut| matches!(d.decode(buf), Err(ProtocolError::Malformed(_)));
        // WINDOW_UPDATE of 3 or 5 bytes, of 0, of 2^31.
        for payload in [
            &[0, 0, 1][..],
            &[0, 0, 0, 1, 0],
            &[0, 0, 0, 0],
            &[0x80, 0, 0, 0],
        ] {
            let mut buf = BytesMut::new();
            put_header(&mut buf, payload.len(), frame_type::WINDOW_UPDATE, 0, 1);
            buf.put_slice(payload);
            assert!(malformed(&mut buf), "{payload:?}");
        }
        // HALF_CLOSE with a payload; MESSAGE and HALF_CLOSE on call id 0.
        let mut buf = BytesMut::new();
        put_header(&mut buf, 1, frame_type::HALF_CLOSE, 0, 1);
        buf.put_u8(0);
        assert!(malformed(&mut buf));
        let mut buf = BytesMut::new();
        encode_message(&mut buf, 0, 0, b"x");
        assert!(malformed(&mut buf));
        let mut buf = BytesMut::new();
        encode_half_close(&mut buf, 0);
        assert!(malformed(&mut buf));
        // One-way and streaming; a client stream's REQUEST with a body.
        let mut buf = BytesMut::new();
        let one_way_stream = flags::ONE_WAY | flags::SERVER_STREAM;
        encode_request(
            &mut buf,
            1,
            one_way_stream,
            b"a/b",
            0,
            0,
            &Metadata::new(),
            b"",
        );
        assert!(malformed(&mut buf));
        let mut buf = BytesMut::new();
        encode_request(
            &mut buf,
            1,
            flags::CLIENT_STREAM,
            b"a/b",
            0,
            0,
            &Metadata::new(),
            b"x",
        );
        assert!(malformed(&mut buf));
        // Well-formed stream requests pass.
        let mut buf = BytesMut::new();
        let bidi = flags::CLIENT_STREAM | flags::SERVER_STREAM;
        encode_request(&mut buf, 1, bidi, b"a/b", 0, 0, &Metadata::new(), b"");
        assert!(matches!(d.decode(&mut buf), Ok(Some(Frame::Request(_)))));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        for d in [decoder(), streaming_decoder()] {
            arbitrary_bytes_never_panic_in(d);
        }
    }

    fn arbitrary_bytes_never_panic_in(d: FrameDecoder) {
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..20_000 {
            let n = rng.usize(0..64);
            let mut bytes: Vec<u8> = (0..n).map(|_| rng.u8(..)).collect();
            if n >= 4 {
                // Keep lengths small so that the payload is present.
                bytes[0] = 0;
                bytes[1] = 0;
                bytes[2] = 0;
                bytes[3] = (n as u8).saturating_sub(10);
            }
            if n >= 5 {
                bytes[4] = rng.u8(1..=10);
            }
            let mut buf = BytesMut::from(&bytes[..]);
            while let Ok(Some(_)) = d.decode(&mut buf) {}
        }
    }

    #[test]
    fn control_frames_round_trip() {
        let d = decoder();
        let mut buf = BytesMut::new();
        encode_settings(&mut buf, &Settings::protocol_default());
        encode_ping(&mut buf, 42);
        encode_pong(&mut buf, 43);
        encode_goaway(&mut buf, 17, GoAwayCode::NoError, "bye");
        encode_cancel(&mut buf, 3);
        assert!(matches!(d.decode(&mut buf), Ok(Some(Frame::Settings(_)))));
        assert!(matches!(d.decode(&mut buf), Ok(Some(Frame::Ping(42)))));
        assert!(matches!(d.decode(&mut buf), Ok(Some(Frame::Pong(43)))));
        let Ok(Some(Frame::GoAway(g))) = d.decode(&mut buf) else {
            panic!()
        };
        assert_eq!((g.last_call_id, g.code), (17, GoAwayCode::NoError));
        assert_eq!(&g.message[..], b"bye");
        assert!(matches!(
            d.decode(&mut buf),
            Ok(Some(Frame::Cancel { call_id: 3 }))
        ));
        assert!(d.decode(&mut buf).unwrap().is_none());
    }
}
