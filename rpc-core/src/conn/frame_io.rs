use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, BytesMut};
use tokio::io::AsyncWrite;

use crate::protocol::{Frame, FrameDecoder, ProtocolError};
use crate::transport::BoxIo;

/// Read size: one read can carry a large batch of frames.
const READ_CHUNK: usize = 64 * 1024;

/// A stream with a read buffer that frames are split from without copying, and a write buffer
/// that collects many frames for one write.
pub(crate) struct FrameIo {
    io: BoxIo,
    rbuf: BytesMut,
    wbuf: BytesMut,
    decoder: FrameDecoder,
    read_closed: bool,
    /// The handshake read past the peer's SETTINGS: the first fill reports those bytes without
    /// reading, so the driver decodes them before it waits for more.
    leftover: bool,
}

impl FrameIo {
    pub(crate) fn new(io: BoxIo, rbuf: BytesMut, decoder: FrameDecoder) -> FrameIo {
        FrameIo {
            leftover: !rbuf.is_empty(),
            io,
            rbuf,
            wbuf: BytesMut::with_capacity(READ_CHUNK),
            decoder,
            read_closed: false,
        }
    }

    /// Splits the next complete frame off the read buffer.
    pub(crate) fn next_frame(&mut self) -> Result<Option<Frame>, ProtocolError> {
        self.decoder.decode(&mut self.rbuf)
    }

    /// Reads once. `Ready(Ok(true))` means bytes arrived; `Ready(Ok(false))` a clean end of stream.
    ///
    /// # Errors
    /// An end of stream in the middle of a frame is [`ProtocolError::TruncatedFrame`].
    pub(crate) fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<Result<bool, ProtocolError>> {
        if std::mem::take(&mut self.leftover) {
            return Poll::Ready(Ok(true));
        }
        if self.read_closed {
            return Poll::Ready(Ok(false));
        }
        if self.rbuf.capacity() - self.rbuf.len() < READ_CHUNK / 8 {
            self.rbuf.reserve(READ_CHUNK);
        }
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
        Poll::Ready(Ok(true))
    }

    /// The buffer frames are encoded into before they are written.
    pub(crate) fn wbuf(&mut self) -> &mut BytesMut {
        &mut self.wbuf
    }

    pub(crate) fn write_pending(&self) -> usize {
        self.wbuf.len()
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
        // Nothing left to write: the next frames start at the front of the buffer again.
        self.wbuf.clear();
        ready!(Pin::new(&mut self.io).poll_flush(cx))?;
        Poll::Ready(Ok(true))
    }

    pub(crate) fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
