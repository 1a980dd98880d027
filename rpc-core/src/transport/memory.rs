//! The in-memory transport: connections inside one process, for tests and single-process apps.
//!
//! A [`MemoryListener`] is bound to a name in a process-wide table; a [`MemoryConnector`] for that
//! name opens a pair of in-memory pipes and hands one end to the listener.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! use rpc_core::transport::memory::{MemoryConnector, MemoryListener};
//! use rpc_core::transport::Connector;
//!
//! let listener = MemoryListener::bind("doc-example")?;
//! let (_io, peer) = MemoryConnector::new("doc-example").connect().await?;
//! assert_eq!(peer.to_string(), "memory:doc-example#1");
//! # drop(listener);
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};

use tokio::io::DuplexStream;
use tokio::sync::mpsc;

use super::{BoxIo, Connector, Listener, PeerAddr};
use crate::BoxFuture;

/// Bytes each direction of an in-memory pipe buffers before the writer waits.
const PIPE_CAPACITY: usize = 256 * 1024;
/// Connections waiting to be accepted before `connect` waits.
const BACKLOG: usize = 128;

type Table = Mutex<HashMap<Arc<str>, mpsc::Sender<DuplexStream>>>;

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(Default::default)
}

fn lock_table() -> std::sync::MutexGuard<'static, HashMap<Arc<str>, mpsc::Sender<DuplexStream>>> {
    // A panic while holding this lock cannot leave the map inconsistent, so poisoning is ignored.
    table().lock().unwrap_or_else(|e| e.into_inner())
}

/// Accepts in-memory connections made to its name. Dropping it frees the name.
#[derive(Debug)]
pub struct MemoryListener {
    name: Arc<str>,
    incoming: mpsc::Receiver<DuplexStream>,
    accepted: u64,
}

impl MemoryListener {
    /// Binds `name` in this process.
    ///
    /// # Errors
    /// `AddrInUse` if a live listener already has the name.
    pub fn bind(name: &str) -> io::Result<MemoryListener> {
        let mut table = lock_table();
        if let Some(existing) = table.get(name) {
            if !existing.is_closed() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("memory address {name:?} is already bound"),
                ));
            }
        }
        let (tx, rx) = mpsc::channel(BACKLOG);
        let name: Arc<str> = Arc::from(name);
        table.insert(name.clone(), tx);
        Ok(MemoryListener {
            name,
            incoming: rx,
            accepted: 0,
        })
    }

    /// The name this listener is bound to.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for MemoryListener {
    fn drop(&mut self) {
        // While this listener lives, `bind` refuses the name to anyone else, so the entry is ours.
        lock_table().remove(&self.name);
    }
}

impl Listener for MemoryListener {
    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<(BoxIo, PeerAddr)>> {
        match self.incoming.poll_recv(cx) {
            Poll::Ready(Some(stream)) => {
                self.accepted += 1;
                let peer = PeerAddr::Memory(self.name.clone(), self.accepted);
                Poll::Ready(Ok((Box::new(stream) as BoxIo, peer)))
            }
            // The table holds a sender until we drop, so the channel cannot end while we exist.
            Poll::Ready(None) => Poll::Pending,
            Poll::Pending => Poll::Pending,
        }
    }

    fn local_addr(&self) -> io::Result<PeerAddr> {
        Ok(PeerAddr::Memory(self.name.clone(), 0))
    }
}

/// Connects to the [`MemoryListener`] bound to a name.
#[derive(Debug, Clone)]
pub struct MemoryConnector {
    name: Arc<str>,
    serial: Arc<AtomicU64>,
}

impl MemoryConnector {
    /// A connector for the listener named `name` (which need not exist yet).
    pub fn new(name: &str) -> MemoryConnector {
        MemoryConnector {
            name: Arc::from(name),
            serial: Arc::new(AtomicU64::new(0)),
        }
    }
}

impl Connector for MemoryConnector {
    fn connect(&self) -> BoxFuture<'static, io::Result<(BoxIo, PeerAddr)>> {
        let name = self.name.clone();
        let serial = self.serial.fetch_add(1, Ordering::Relaxed) + 1;
        Box::pin(async move {
            let refused = || {
                io::Error::new(
                    io::ErrorKind::ConnectionRefused,
                    format!("no memory listener is bound to {name:?}"),
                )
            };
            let tx = lock_table().get(&name).cloned().ok_or_else(refused)?;
            let (ours, theirs) = tokio::io::duplex(PIPE_CAPACITY);
            tx.send(theirs).await.map_err(|_| refused())?;
            Ok((Box::new(ours) as BoxIo, PeerAddr::Memory(name, serial)))
        })
    }

    fn target(&self) -> String {
        format!("memory:{}", self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn connect_accept_and_talk() {
        let mut listener = MemoryListener::bind("memory-unit-1").unwrap();
        assert!(MemoryListener::bind("memory-unit-1").is_err());
        let (mut client, _) = MemoryConnector::new("memory-unit-1")
            .connect()
            .await
            .unwrap();
        let (mut server, peer) = std::future::poll_fn(|cx| listener.poll_accept(cx))
            .await
            .unwrap();
        assert_eq!(peer, PeerAddr::Memory(Arc::from("memory-unit-1"), 1));
        client.write_all(b"ping").await.unwrap();
        let mut buf = [0; 4];
        server.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        drop(listener);
        let err = MemoryConnector::new("memory-unit-1")
            .connect()
            .await
            .err()
            .unwrap();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
        assert!(MemoryListener::bind("memory-unit-1").is_ok());
    }
}
