//! [`ServerStats`]: what a server's connections hold right now (how many, how many still in
//! their handshake, the bytes they buffer), readable while it serves.
//!
//! Each connection reports changes to its share once per wake-up of its task, not per call, so
//! the figures cost the fast path nothing but a comparison.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

/// Live figures of a [`Server`](super::Server): connections and the memory their buffers hold.
///
/// Taken from the builder with [`Server::stats`](super::Server::stats) before serving; a cheap
/// handle (clone it freely) that reads the serving server's counters.
///
/// ```
/// let server = rpc_core::Server::builder();
/// let stats = server.stats();
/// assert_eq!(stats.connections(), 0);
/// assert_eq!(stats.unwritten_bytes(), 0);
/// ```
#[derive(Clone, Default)]
pub struct ServerStats(Arc<Counters>);

#[derive(Default)]
struct Counters {
    connections: AtomicUsize,
    handshaking: AtomicUsize,
    unwritten: AtomicUsize,
    buffers: AtomicUsize,
    /// Woken when a connection or a handshake ends (room under the caps).
    room: Notify,
}

impl fmt::Debug for ServerStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerStats")
            .field("connections", &self.connections())
            .field("handshaking", &self.handshaking())
            .field("unwritten_bytes", &self.unwritten_bytes())
            .field("buffer_bytes", &self.buffer_bytes())
            .finish()
    }
}

impl ServerStats {
    /// Connections open now, including those still in their handshake.
    pub fn connections(&self) -> usize {
        self.0.connections.load(Ordering::Relaxed)
    }

    /// Connections accepted whose handshake has not finished yet.
    pub fn handshaking(&self) -> usize {
        self.0.handshaking.load(Ordering::Relaxed)
    }

    /// Bytes of replies (and other frames) encoded but not yet written to the transport, over all
    /// connections: what peers that do not read make the server hold. A connection stops taking
    /// requests while its own share is over 1 MiB.
    pub fn unwritten_bytes(&self) -> usize {
        self.0.unwritten.load(Ordering::Relaxed)
    }

    /// Bytes of read and write buffers the established connections hold (their capacity; the
    /// kernel's socket buffers are not counted). A connection with nothing in flight keeps at most
    /// 8 KiB of them (4 KiB each for reading and writing).
    pub fn buffer_bytes(&self) -> usize {
        self.0.buffers.load(Ordering::Relaxed)
    }

    /// Counts a connection from accept to close, and its handshake until [`Open::established`].
    pub(super) fn open(&self) -> Open {
        self.0.connections.fetch_add(1, Ordering::Relaxed);
        self.0.handshaking.fetch_add(1, Ordering::Relaxed);
        Open {
            stats: self.clone(),
            handshaking: true,
        }
    }

    /// Waits until a connection or a handshake ends (or returns at once if one ended since the
    /// last wait).
    pub(super) async fn room(&self) {
        self.0.room.notified().await;
    }
}

/// One accepted connection, counted until dropped.
pub(super) struct Open {
    stats: ServerStats,
    handshaking: bool,
}

impl Open {
    /// The handshake finished (well or not).
    pub(super) fn established(&mut self) {
        if std::mem::take(&mut self.handshaking) {
            self.stats.0.handshaking.fetch_sub(1, Ordering::Relaxed);
            self.stats.0.room.notify_one();
        }
    }

    /// This connection's share of the byte figures, reported as it changes.
    pub(super) fn gauge(&self) -> ConnGauge {
        ConnGauge {
            stats: self.stats.clone(),
            unwritten: 0,
            buffers: 0,
        }
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.established();
        self.stats.0.connections.fetch_sub(1, Ordering::Relaxed);
        self.stats.0.room.notify_one();
    }
}

/// One connection's share of [`ServerStats::unwritten_bytes`] and [`ServerStats::buffer_bytes`]:
/// changes are added to the server's counters, and the share is taken back when dropped.
pub(super) struct ConnGauge {
    stats: ServerStats,
    unwritten: usize,
    buffers: usize,
}

impl ConnGauge {
    /// Reports this connection's figures now; touches the shared counters only when they changed.
    pub(super) fn set(&mut self, unwritten: usize, buffers: usize) {
        let c = &self.stats.0;
        if unwritten != self.unwritten {
            // Two's complement: adding the wrapped difference subtracts when it shrank.
            c.unwritten
                .fetch_add(unwritten.wrapping_sub(self.unwritten), Ordering::Relaxed);
            self.unwritten = unwritten;
        }
        if buffers != self.buffers {
            c.buffers
                .fetch_add(buffers.wrapping_sub(self.buffers), Ordering::Relaxed);
            self.buffers = buffers;
        }
    }
}

impl Drop for ConnGauge {
    fn drop(&mut self) {
        self.set(0, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up_and_leave_with_their_connection() {
        let stats = ServerStats::default();
        let mut a = stats.open();
        let b = stats.open();
        assert_eq!((stats.connections(), stats.handshaking()), (2, 2));
        a.established();
        a.established();
        assert_eq!((stats.connections(), stats.handshaking()), (2, 1));
        let mut ga = a.gauge();
        let mut gb = b.gauge();
        ga.set(100, 4096);
        gb.set(50, 1024);
        ga.set(10, 8192);
        assert_eq!(stats.unwritten_bytes(), 60);
        assert_eq!(stats.buffer_bytes(), 9216);
        drop(ga);
        drop(a);
        assert_eq!(stats.unwritten_bytes(), 50);
        assert_eq!(stats.buffer_bytes(), 1024);
        drop(gb);
        drop(b);
        assert_eq!(stats.connections(), 0);
        assert_eq!(stats.handshaking(), 0);
        assert_eq!(stats.unwritten_bytes(), 0);
    }
}
