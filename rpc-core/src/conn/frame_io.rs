//! [`FrameIo`]: a stream with a read buffer frames are split from without copying, and a write
//! buffer many frames leave in one write. Its buffers are sized by use: a read grows to 64 KiB only
//! while reads keep filling it, and a connection with nothing in flight gives large buffers back
//! ([`FrameIo::shrink_idle`]), so that an idle connection holds a few KiB, not its peak.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, BytesMut};
use tokio::io::AsyncWrite;

use crate::protocol::{Frame, FrameDecoder, ProtocolError};
use crate::transport::BoxIo;

/// Read size of a busy connection: one read can carry a large batch of frames.
const READ_CHUNK: usize = 64 * 1024;
/// Read size of a connection that was idle: doubled after each read that fills the buffer, up to
/// [`READ_CHUNK`].
const READ_MIN: usize = 4 * 1024;
/// Capacity each buffer of an idle connection may keep; a larger one is given back.
pub(crate) const IDLE_BUFFER: usize = 4 * 1024;

/// A stream with a read buffer that frames are split from without copying, and a write buffer
/// that collects many frames for one write.
pub(crate) struct FrameIo {
    io: BoxIo,
    rbuf: BytesMut,
    wbuf: BytesMut,
    decoder: FrameDecoder,
    read_closed: bool,
    /// Frames are in the read buffer that the role has not been handed yet (the handshake read
    /// past the peer's SETTINGS, or the role stopped taking frames): the next fill reports them
    /// without reading, so the driver hands them over before it waits for more.
    unread: bool,
    /// How much the next read reserves.
    read_size: usize,
    /// The largest capacity the read buffer had since it was last given back. Frames split off
    /// share its allocation, so its capacity alone can understate what it holds.
    rbuf_peak: usize,
}

impl FrameIo {
    pub(crate) fn new(io: BoxIo, rbuf: BytesMut, decoder: FrameDecoder) -> FrameIo {
        FrameIo {
            unread: !rbuf.is_empty(),
            rbuf_peak: rbuf.capacity(),
            io,
            rbuf,
            wbuf: BytesMut::new(),
            decoder,
            read_closed: false,
            read_size: READ_MIN,
        }
    }

    /// Splits the next complete frame off the read buffer.
    pub(crate) fn next_frame(&mut self) -> Result<Option<Frame>, ProtocolError> {
        let frame = self.decoder.decode(&mut self.rbuf)?;
        if frame.is_none() {
            // The decoder reserves (a bounded part of) the rest of a frame whose header it read.
            self.rbuf_peak = self.rbuf_peak.max(self.rbuf.capacity());
        }
        Ok(frame)
    }

    /// The role stops taking frames for now (its output is over the high-water mark): those
    /// still in the read buffer are handed over by the next fill, before anything is read.
    pub(crate) fn keep_unread(&mut self) {
        self.unread = true;
    }

    /// Reads once. `Ready(Ok(true))` means bytes arrived (or frames kept unread are there);
    /// `Ready(Ok(false))` a clean end of stream.
    ///
    /// # Errors
    /// An end of stream in the middle of a frame is [`ProtocolError::TruncatedFrame`].
    pub(crate) fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<Result<bool, ProtocolError>> {
        if std::mem::take(&mut self.unread) {
            return Poll::Ready(Ok(true));
        }
        if self.read_closed {
            return Poll::Ready(Ok(false));
        }
        if self.rbuf.capacity() - self.rbuf.len() < self.read_size / 8 {
            self.rbuf.reserve(self.read_size);
            self.rbuf_peak = self.rbuf_peak.max(self.rbuf.capacity());
        }
        let room = self.rbuf.capacity() - self.rbuf.len();
        let n = ready!(tokio_util::io::poll_read_buf(
            Pin::new(&mut self.io),
            cx,
            &mut self.rbuf
        ))?;
        if n == 0 {
            self.read_closed = true;
            if !self.rbuf.is_empty() {
                return Poll::Ready(Err(ProtocolError::TruncatedFrame {
                    buffered: self.rbuf.len(),
                }));
            }
            return Poll::Ready(Ok(false));
        }
        if n >= room && self.read_size < READ_CHUNK {
            // The read filled the buffer: more is probably waiting.
            self.read_size *= 2;
        }
        Poll::Ready(Ok(true))
    }

    /// `true` once the peer's end of stream was read.
    pub(crate) fn read_closed(&self) -> bool {
        self.read_closed
    }

    /// Reads once and throws the bytes away (a closing connection waiting for the peer's end of
    /// stream). `Ready(Ok(0))` is the end of stream.
    pub(crate) fn poll_discard(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.read_closed {
            return Poll::Ready(Ok(0));
        }
        self.rbuf.clear();
        if self.rbuf.capacity() < READ_MIN {
            self.rbuf.reserve(READ_MIN);
        }
        let n = ready!(tokio_util::io::poll_read_buf(
            Pin::new(&mut self.io),
            cx,
            &mut self.rbuf
        ))?;
        self.rbuf.clear();
        if n == 0 {
            self.read_closed = true;
        }
        Poll::Ready(Ok(n))
    }

    /// The buffer frames are encoded into before they are written.
    pub(crate) fn wbuf(&mut self) -> &mut BytesMut {
        &mut self.wbuf
    }

    pub(crate) fn write_pending(&self) -> usize {
        self.wbuf.len()
    }

    /// Bytes of buffer this connection holds (both buffers' capacity; the read buffer's largest
    /// since it was last given back).
    pub(crate) fn buffer_bytes(&self) -> usize {
        self.rbuf_peak.max(self.rbuf.capacity()) + self.wbuf.capacity()
    }

    /// Gives back buffers larger than [`IDLE_BUFFER`], and starts reads small again. For a
    /// connection with nothing in flight: a buffer that still holds bytes is kept.
    pub(crate) fn shrink_idle(&mut self) {
        if self.rbuf.is_empty() && !self.unread {
            if self.rbuf_peak.max(self.rbuf.capacity()) > IDLE_BUFFER {
                self.rbuf = BytesMut::new();
                self.rbuf_peak = 0;
            }
            self.read_size = READ_MIN;
        }
        if self.wbuf.is_empty() && self.wbuf.capacity() > IDLE_BUFFER {
            self.wbuf = BytesMut::new();
        }
    }

    /// Writes the write buffer out. `Ready(Ok(true))` if anything was written.
    pub(crate) fn poll_write(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        if self.wbuf.is_empty() {
            return Poll::Ready(Ok(false));
        }
        while !self.wbuf.is_empty() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.wbuf))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.wbuf.advance(n);
        }
        // Nothing left to write: the next frames start at the front of the buffer again (and its
        // capacity counts the whole of it). No allocation: the buffer is ours alone.
        self.wbuf.clear();
        let _ = self.wbuf.try_reclaim(self.wbuf.capacity() + 1);
        ready!(Pin::new(&mut self.io).poll_flush(cx))?;
        Poll::Ready(Ok(true))
    }

    pub(crate) fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{encode_request, Settings};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn pair() -> (FrameIo, tokio::io::DuplexStream) {
        let (a, b) = tokio::io::duplex(1 << 20);
        let decoder = FrameDecoder::new(&Settings::protocol_default());
        (FrameIo::new(Box::new(a), BytesMut::new(), decoder), b)
    }

    async fn fill(io: &mut FrameIo) -> bool {
        std::future::poll_fn(|cx| io.poll_fill(cx)).await.unwrap()
    }

    /// One 64 KiB call in each direction, then nothing in flight: the connection keeps at most
    /// [`IDLE_BUFFER`] per buffer (issue 12: an idle connection costs at most 16 KiB).
    #[tokio::test]
    async fn an_idle_connection_gives_back_its_peak_buffers() {
        let (mut io, mut peer) = pair();
        let body = vec![7u8; 64 * 1024];
        let mut req = BytesMut::new();
        encode_request(&mut req, 1, 0, b"a.B/C", 0, 0, &Default::default(), &body);
        peer.write_all(&req).await.unwrap();
        let frame = loop {
            assert!(fill(&mut io).await);
            if let Some(f) = io.next_frame().unwrap() {
                break f;
            }
        };
        // The handler's reply, as large, goes out through the write buffer.
        io.wbuf().extend_from_slice(&req);
        let written = std::future::poll_fn(|cx| io.poll_write(cx)).await.unwrap();
        assert!(written);
        let mut echoed = vec![0; req.len()];
        peer.read_exact(&mut echoed).await.unwrap();
        drop(frame);
        assert!(io.buffer_bytes() >= 128 * 1024, "{}", io.buffer_bytes());

        io.shrink_idle();
        assert!(io.buffer_bytes() <= 16 * 1024, "{}", io.buffer_bytes());
        // And the connection still works, starting with small reads.
        peer.write_all(&req[..100]).await.unwrap();
        assert!(fill(&mut io).await);
        assert!(io.buffer_bytes() <= 16 * 1024, "{}", io.buffer_bytes());
    }

    /// Reads start small and grow while they fill the buffer.
    #[tokio::test]
    async fn reads_grow_while_they_fill_the_buffer() {
        let (mut io, mut peer) = pair();
        peer.write_all(&vec![0u8; 512 * 1024]).await.unwrap();
        assert!(fill(&mut io).await);
        assert!(io.rbuf.len() <= READ_MIN, "{}", io.rbuf.len());
        for _ in 0..8 {
            io.rbuf.clear();
            assert!(fill(&mut io).await);
        }
        assert_eq!(io.read_size, READ_CHUNK);
    }

    /// Frames the role left unread are handed over again before anything else is read.
    #[tokio::test]
    async fn kept_frames_come_back_without_a_read() {
        let (mut io, _peer) = pair();
        io.rbuf.extend_from_slice(b"partial");
        io.keep_unread();
        assert!(fill(&mut io).await);
        assert_eq!(&io.rbuf[..], b"partial");
    }
}
