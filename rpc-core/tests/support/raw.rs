//! A raw protocol peer over any byte stream, for tests that must see the wire: it does the client
//! side of the handshake and reads frames, telling a clean end of stream from a reset.
//!
//! Included with `#[path]` by the test crates that use it (`lifecycle.rs`, `memory.rs`).

use std::io;
use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use rpc_core::protocol::{encode_request, encode_settings, Frame, FrameDecoder, Settings, PREFACE};
use rpc_core::Metadata;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Upper bound for every single read and write.
pub const IO_TIMEOUT: Duration = Duration::from_secs(20);

/// How a stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// A clean end of stream (the peer shut its write side down).
    Eof,
    /// The peer reset the connection (it closed with our bytes unread).
    Reset,
}

/// The client preface and SETTINGS with the protocol defaults.
pub fn client_hello() -> BytesMut {
    let mut out = BytesMut::new();
    out.put_slice(&PREFACE);
    encode_settings(&mut out, &Settings::protocol_default());
    out
}

/// One REQUEST frame: raw codec, no deadline, no metadata.
pub fn request(out: &mut BytesMut, call_id: u32, path: &str, body: &[u8]) {
    encode_request(
        out,
        call_id,
        0,
        path.as_bytes(),
        0,
        0,
        &Metadata::new(),
        body,
    );
}

/// The reading half of a raw peer.
pub struct FrameReader<R> {
    io: R,
    buf: BytesMut,
    decoder: FrameDecoder,
    end: Option<End>,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub fn new(io: R) -> FrameReader<R> {
        FrameReader {
            io,
            buf: BytesMut::with_capacity(64 * 1024),
            decoder: FrameDecoder::new(&Settings::protocol_default()),
            end: None,
        }
    }

    /// Reads the server's preface and SETTINGS.
    pub async fn read_hello(&mut self) -> Settings {
        while self.buf.len() < PREFACE.len() {
            assert!(self.read_more().await, "stream ended before the preface");
        }
        assert_eq!(&self.buf[..PREFACE.len()], &PREFACE[..], "server preface");
        self.buf.advance(PREFACE.len());
        match self.next_frame().await {
            Some(Frame::Settings(s)) => s,
            other => panic!("expected SETTINGS, got {other:?}"),
        }
    }

    async fn read_more(&mut self) -> bool {
        if self.end.is_some() {
            return false;
        }
        self.buf.reserve(64 * 1024);
        match tokio::time::timeout(IO_TIMEOUT, self.io.read_buf(&mut self.buf)).await {
            Err(_) => panic!("no data and no end of stream within {IO_TIMEOUT:?}"),
            Ok(Ok(0)) => {
                self.end = Some(End::Eof);
                false
            }
            Ok(Ok(_)) => true,
            Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionReset => {
                self.end = Some(End::Reset);
                false
            }
            Ok(Err(e)) => panic!("read failed: {e}"),
        }
    }

    /// The next frame, or `None` once the stream ended (see [`FrameReader::end`]).
    pub async fn next_frame(&mut self) -> Option<Frame> {
        loop {
            match self.decoder.decode(&mut self.buf) {
                Ok(Some(frame)) => return Some(frame),
                Ok(None) => {}
                Err(e) => panic!("undecodable frame: {e}"),
            }
            if !self.read_more().await {
                return None;
            }
        }
    }

    /// How the stream ended, once it did.
    pub fn end(&self) -> Option<End> {
        self.end
    }
}

/// Writes `bytes` within [`IO_TIMEOUT`].
pub async fn send<W: AsyncWrite + Unpin>(io: &mut W, bytes: &[u8]) -> io::Result<()> {
    tokio::time::timeout(IO_TIMEOUT, io.write_all(bytes))
        .await
        .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
}
