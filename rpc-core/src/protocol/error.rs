use std::io;

/// Why a connection is being closed: the error code carried by a go-away frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GoAwayCode {
    /// Graceful shutdown.
    NoError,
    /// The peer broke the protocol (malformed frame, unknown frame type, bad call id).
    ProtocolError,
    /// A frame exceeded the receiver's maximum frame size.
    FrameTooLarge,
    /// A metadata block exceeded the receiver's maximum metadata size.
    MetadataTooLarge,
    /// The peer speaks a protocol major version we do not.
    UnsupportedVersion,
    /// The sender hit an internal error.
    Internal,
    /// The peer exceeded a flow-control window, or made one exceed 2^31−1 (protocol 1.1,
    /// `docs/protocol.md` §17.5).
    FlowControlError,
    /// A code this implementation does not know.
    Other(u32),
}

impl GoAwayCode {
    /// Decodes a wire value.
    pub const fn from_u32(v: u32) -> GoAwayCode {
        match v {
            0 => GoAwayCode::NoError,
            1 => GoAwayCode::ProtocolError,
            2 => GoAwayCode::FrameTooLarge,
            3 => GoAwayCode::MetadataTooLarge,
            4 => GoAwayCode::UnsupportedVersion,
            5 => GoAwayCode::Internal,
            6 => GoAwayCode::FlowControlError,
            other => GoAwayCode::Other(other),
        }
    }

    /// The wire value.
    pub const fn as_u32(self) -> u32 {
        match self {
            GoAwayCode::NoError => 0,
            GoAwayCode::ProtocolError => 1,
            GoAwayCode::FrameTooLarge => 2,
            GoAwayCode::MetadataTooLarge => 3,
            GoAwayCode::UnsupportedVersion => 4,
            GoAwayCode::Internal => 5,
            GoAwayCode::FlowControlError => 6,
            GoAwayCode::Other(v) => v,
        }
    }
}

/// A violation of the wire protocol, or the I/O failure that ended a connection.
///
/// Any of these closes the connection (after a go-away frame where the peer can still read one);
/// none of them affects other connections.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The connection did not start with the protocol's magic bytes.
    #[error("connection preface has wrong magic bytes (not this protocol)")]
    BadMagic,
    /// The server answered a plaintext client with a TLS record (RFC 8446 §5.1: content type
    /// 21 or 22, legacy version 3.x): it serves TLS only.
    #[error(
        "the server speaks TLS on this port: connect with TLS (a tls:// address or a TlsConnector)"
    )]
    TlsPeer,
    /// A TLS client (its first bytes are a TLS handshake record) on a plaintext listener.
    #[error("a TLS client on a plaintext port (its first bytes are a TLS ClientHello)")]
    TlsClient,
    /// The peer speaks another major version.
    #[error(
        "unsupported protocol version {major}.{minor} (this peer speaks {}.{})",
        super::VERSION_MAJOR,
        super::VERSION_MINOR
    )]
    UnsupportedVersion {
        /// The peer's major version.
        major: u8,
        /// The peer's minor version.
        minor: u8,
    },
    /// A frame header announced more payload than the receiver allows.
    #[error("frame of {len} bytes exceeds the maximum frame size of {max} bytes")]
    FrameTooLarge {
        /// Announced payload length.
        len: u32,
        /// The receiver's limit.
        max: u32,
    },
    /// A metadata block is larger than the receiver allows.
    #[error("metadata block of {len} bytes exceeds the limit of {max} bytes")]
    MetadataTooLarge {
        /// Announced metadata length.
        len: u32,
        /// The receiver's limit.
        max: u32,
    },
    /// A frame type this version does not know.
    #[error("unknown frame type 0x{0:02x}")]
    UnknownFrameType(u8),
    /// A frame whose fields do not fit its length, or that breaks a rule of the protocol.
    #[error("malformed frame: {0}")]
    Malformed(&'static str),
    /// The peer sent more than a flow-control window allowed, or a WINDOW_UPDATE that takes a
    /// window above 2^31−1.
    #[error("flow control: {0}")]
    FlowControl(&'static str),
    /// The first frame after the preface was not SETTINGS.
    #[error("expected a SETTINGS frame after the preface")]
    ExpectedSettings,
    /// The stream ended in the middle of a frame or the preface.
    #[error("connection closed in the middle of a frame ({buffered} bytes buffered)")]
    TruncatedFrame {
        /// Bytes of the incomplete frame that had arrived.
        buffered: usize,
    },
    /// The peer sent go-away with an error code.
    #[error("peer closed the connection: {code:?}: {message}")]
    PeerGoAway {
        /// The peer's code.
        code: GoAwayCode,
        /// The peer's explanation.
        message: String,
    },
    /// The handshake did not complete in time.
    #[error("handshake timed out")]
    HandshakeTimeout,
    /// The peer did not answer a keepalive ping in time.
    #[error("no answer to a keepalive ping within {0:?}")]
    KeepaliveTimeout(std::time::Duration),
    /// The transport failed.
    #[error("transport error: {0}")]
    Io(#[from] io::Error),
}

impl ProtocolError {
    /// The go-away code that reports this error to the peer.
    pub fn goaway_code(&self) -> GoAwayCode {
        match self {
            ProtocolError::FrameTooLarge { .. } => GoAwayCode::FrameTooLarge,
            ProtocolError::MetadataTooLarge { .. } => GoAwayCode::MetadataTooLarge,
            ProtocolError::UnsupportedVersion { .. } => GoAwayCode::UnsupportedVersion,
            ProtocolError::FlowControl(_) => GoAwayCode::FlowControlError,
            ProtocolError::Io(_)
            | ProtocolError::HandshakeTimeout
            | ProtocolError::KeepaliveTimeout(_) => GoAwayCode::Internal,
            _ => GoAwayCode::ProtocolError,
        }
    }
}
