//! The floor: a length-prefixed multiplexed echo written directly on tokio, no framework.
//!
//! A frame is `u32 length | u64 call id | payload` (length counts the id and payload). Each
//! connection has one reader task and one writer task on each side; writers batch every frame
//! queued since their last write into one `write_all`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

const MAX_FRAME: usize = 16 << 20;

/// Reads frames into `buf` and hands each `(id, payload)` to `out`; returns at EOF or error.
async fn read_frames(
    mut rd: OwnedReadHalf,
    mut on_frame: impl FnMut(u64, Bytes) -> bool,
) -> std::io::Result<()> {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    loop {
        while buf.len() >= 4 {
            let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
            if !(8..=MAX_FRAME).contains(&len) {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "bad frame length",
                ));
            }
            if buf.len() < 4 + len {
                buf.reserve(4 + len - buf.len());
                break;
            }
            buf.advance(4);
            let id = buf.get_u64();
            let payload = buf.split_to(len - 8).freeze();
            if !on_frame(id, payload) {
                return Ok(());
            }
        }
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(64 * 1024);
        }
        if rd.read_buf(&mut buf).await? == 0 {
            return Ok(());
        }
    }
}

/// Writes every queued frame, batching what is queued into one write.
async fn write_frames(mut wr: OwnedWriteHalf, mut rx: mpsc::UnboundedReceiver<(u64, Bytes)>) {
    let mut out = BytesMut::with_capacity(64 * 1024);
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some((id, payload)) = next {
            out.put_u32((8 + payload.len()) as u32);
            out.put_u64(id);
            out.extend_from_slice(&payload);
            next = rx.try_recv().ok();
        }
        if wr.write_all(&out).await.is_err() {
            return;
        }
        out.clear();
    }
}

/// Serves the echo.
///
/// # Errors
/// The listener's failure.
pub async fn serve(listener: tokio::net::TcpListener) -> Result<(), String> {
    loop {
        let (stream, _) = listener.accept().await.map_err(|e| e.to_string())?;
        let _ = stream.set_nodelay(true);
        let (rd, wr) = stream.into_split();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(write_frames(wr, rx));
        tokio::spawn(async move {
            let _ = read_frames(rd, |id, payload| tx.send((id, payload)).is_ok()).await;
        });
    }
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Bytes>>>>;

/// A client over one connection.
#[derive(Clone, Debug)]
pub struct Client {
    tx: mpsc::UnboundedSender<(u64, Bytes)>,
    pending: Pending,
    next: Arc<AtomicU64>,
}

impl Client {
    /// Connects.
    ///
    /// # Errors
    /// The connection failure.
    pub async fn connect(addr: SocketAddr) -> Result<Client, String> {
        let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let (rd, wr) = stream.into_split();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(write_frames(wr, rx));
        let pending: Pending = Arc::default();
        let readers = pending.clone();
        tokio::spawn(async move {
            let _ = read_frames(rd, |id, payload| {
                let waiter = readers
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&id);
                if let Some(w) = waiter {
                    let _ = w.send(payload);
                }
                true
            })
            .await;
            // The connection ended: fail every waiting call.
            readers.lock().unwrap_or_else(|e| e.into_inner()).clear();
        });
        Ok(Client {
            tx,
            pending,
            next: Arc::new(AtomicU64::new(1)),
        })
    }

    /// One call.
    ///
    /// # Errors
    /// The connection closed.
    pub async fn echo(&self, payload: Bytes) -> Result<Bytes, String> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, tx);
        self.tx
            .send((id, payload))
            .map_err(|_| "connection closed".to_owned())?;
        rx.await.map_err(|_| "connection closed".to_owned())
    }
}
