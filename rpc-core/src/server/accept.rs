//! Taking connections in: the server-wide caps on open connections and on connections still in
//! their handshake, backing off while the process is out of file descriptors, and each
//! connection's life (handshake, then the connection driver).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio_util::sync::CancellationToken;

use super::connection::{ConnShared, ServerRole};
use super::stats::{Open, ServerStats};
use crate::backoff::Backoff;
use crate::conn::{server_handshake_after, Driver};
use crate::protocol::ProtocolError;
#[cfg(feature = "http")]
use crate::protocol::PREFACE;
use crate::transport::{BoxIo, Listener, PeerAddr};

/// Waits between accept attempts while the process is out of file descriptors (or kernel
/// memory): from 5 ms, doubling to 500 ms. A connection of ours closing retries at once.
const OUT_OF_FDS: Backoff = Backoff::new(Duration::from_millis(5), Duration::from_millis(500));

/// The server-wide caps on connections.
#[derive(Debug, Clone, Copy)]
pub(super) struct Caps {
    /// Open connections, handshaking or established.
    pub(super) connections: usize,
    /// Connections still in their handshake.
    pub(super) handshaking: usize,
}

/// Accepts connections until `signal` completes, handing each to `spawn`.
///
/// At a cap it stops accepting (new connections wait in the listener's backlog) until a
/// connection or a handshake ends, with one log line when the cap is reached and one when it is
/// left. Out of file descriptors (`EMFILE`, `ENFILE`) or kernel memory (`ENOBUFS`, `ENOMEM`), it
/// backs off ([`OUT_OF_FDS`]) and retries, early when one of its connections closes; connections
/// already open are served all along.
///
/// # Errors
/// The listener's error when it is neither transient nor resource exhaustion.
pub(super) async fn accept_until<L, F>(
    listener: &mut L,
    signal: Pin<&mut F>,
    caps: Caps,
    stats: &ServerStats,
    mut spawn: impl FnMut(BoxIo, PeerAddr, Open),
) -> io::Result<()>
where
    L: Listener,
    F: Future<Output = ()>,
{
    let mut signal = signal;
    let mut at_cap: Option<&'static str> = None;
    let mut exhausted: u32 = 0;
    loop {
        if let Some(cap) = over_cap(caps, stats) {
            if at_cap != Some(cap) {
                at_cap = Some(cap);
                tracing::warn!(
                    connections = stats.connections(),
                    handshaking = stats.handshaking(),
                    max_connections = caps.connections,
                    max_handshaking = caps.handshaking,
                    "{cap} limit reached: not accepting; new connections wait in the listen \
                     backlog until one closes"
                );
            }
            tokio::select! {
                () = &mut signal => return Ok(()),
                () = stats.room() => continue,
            }
        }
        if let Some(cap) = at_cap.take() {
            tracing::info!(
                connections = stats.connections(),
                handshaking = stats.handshaking(),
                "below the {cap} limit again: accepting"
            );
        }
        let accepted = tokio::select! {
            () = &mut signal => return Ok(()),
            res = std::future::poll_fn(|cx| listener.poll_accept(cx)) => res,
        };
        match accepted {
            Ok((io, peer)) => {
                if exhausted > 0 {
                    tracing::info!(
                        failed_accepts = exhausted,
                        "accepting again after running out of file descriptors"
                    );
                    exhausted = 0;
                }
                spawn(io, peer, stats.open());
            }
            Err(e) if out_of_resources(&e) => {
                if exhausted == 0 {
                    tracing::warn!(
                        error = %e,
                        connections = stats.connections(),
                        "out of file descriptors: accepting paused, open connections are still \
                         served; retrying with backoff"
                    );
                }
                let wait = OUT_OF_FDS.ceiling(exhausted);
                exhausted = exhausted.saturating_add(1);
                tokio::select! {
                    () = &mut signal => return Ok(()),
                    () = tokio::time::sleep(wait) => {}
                    () = stats.room() => {}
                }
            }
            Err(e) if is_transient(&e) => {
                tracing::debug!(error = %e, "accept failed; continuing");
            }
            Err(e) => return Err(e),
        }
    }
}

/// The cap that is reached, if one is.
fn over_cap(caps: Caps, stats: &ServerStats) -> Option<&'static str> {
    if stats.connections() >= caps.connections {
        Some("connection")
    } else if stats.handshaking() >= caps.handshaking {
        Some("handshake")
    } else {
        None
    }
}

/// What one connection shares with the server and listens to.
pub(super) struct ConnSetup {
    pub(super) shared: Arc<ConnShared>,
    pub(super) handshake_timeout: Duration,
    /// Graceful shutdown: a go-away, then drain.
    pub(super) shutdown: CancellationToken,
    /// The drain timeout ran out: close now.
    pub(super) hard_stop: CancellationToken,
    /// HTTP/JSON on this port too ([`Server::http`](super::Server::http)).
    #[cfg(feature = "http")]
    pub(super) http: Option<(crate::http::HttpConfig, crate::Channel)>,
}

/// One connection, from its handshake to its close; counted in the server's stats throughout. A
/// connection still in its handshake when the server shuts down is closed at once: it has no
/// call to finish, and it would only be told to go away.
pub(super) async fn serve_connection(io: BoxIo, peer: PeerAddr, mut open: Open, setup: ConnSetup) {
    let ConnSetup {
        shared,
        handshake_timeout,
        shutdown,
        hard_stop,
        #[cfg(feature = "http")]
        http,
    } = setup;
    #[cfg(feature = "http")]
    let (io, first) = match http {
        None => (io, BytesMut::new()),
        Some((config, streams)) => {
            let Some((io, first)) = first_bytes(io, handshake_timeout, &shutdown, &peer).await
            else {
                return;
            };
            if first.first() != Some(&PREFACE[0]) {
                open.established();
                let setup = super::http::HttpSetup {
                    shared,
                    config,
                    streams,
                    header_timeout: handshake_timeout,
                    shutdown,
                    hard_stop,
                };
                super::http::serve(io, first, peer, setup).await;
                return;
            }
            (io, first)
        }
    };
    #[cfg(not(feature = "http"))]
    let first = BytesMut::new();
    let handshake = tokio::select! {
        hs = server_handshake_after(io, first, &shared.local, handshake_timeout) => hs,
        () = shutdown.cancelled() => {
            tracing::debug!(%peer, "shutting down: closing a connection still in its handshake");
            return;
        }
    };
    open.established();
    match handshake {
        Ok(hs) => {
            tracing::debug!(%peer, "connection accepted");
            let gauge = open.gauge();
            let hard_stop = hard_stop.cancelled_owned();
            let role = ServerRole::new(shared, peer, hs.peer, shutdown, hard_stop, gauge);
            Driver::new(hs.io, role).await;
        }
        Err(ProtocolError::Io(e)) => {
            tracing::debug!(%peer, error = %e, "connection lost during handshake")
        }
        Err(e) => tracing::warn!(%peer, error = %e, "handshake failed"),
    }
}

/// Serves the connections of the in-memory listener of HTTP streams until the server shuts
/// down, each as a native connection of the server.
#[cfg(feature = "http")]
pub(super) async fn accept_loopback(
    mut listener: crate::transport::memory::MemoryListener,
    setup: ConnSetup,
    stats: ServerStats,
    tracker: tokio_util::task::TaskTracker,
) {
    use crate::transport::Listener;
    let shutdown = setup.shutdown.clone();
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => return,
            res = std::future::poll_fn(|cx| listener.poll_accept(cx)) => res,
        };
        let Ok((io, peer)) = accepted else {
            return;
        };
        let setup = ConnSetup {
            shared: setup.shared.clone(),
            handshake_timeout: setup.handshake_timeout,
            shutdown: setup.shutdown.clone(),
            hard_stop: setup.hard_stop.clone(),
            http: None,
        };
        tracker.spawn(serve_connection(io, peer, stats.open(), setup));
    }
}

/// The first bytes a client sends (one read), which tell our preface from HTTP (HTTP never
/// starts with `0x7f`); `None` when the client closes, fails or sends nothing within the
/// handshake timeout, or the server shuts down first.
#[cfg(feature = "http")]
async fn first_bytes(
    mut io: BoxIo,
    timeout: Duration,
    shutdown: &CancellationToken,
    peer: &PeerAddr,
) -> Option<(BoxIo, BytesMut)> {
    use tokio::io::AsyncReadExt;
    let mut first = BytesMut::with_capacity(crate::conn::HANDSHAKE_BUFFER);
    let read = tokio::select! {
        read = tokio::time::timeout(timeout, io.read_buf(&mut first)) => read,
        () = shutdown.cancelled() => return None,
    };
    match read {
        Ok(Ok(n)) if n > 0 => Some((io, first)),
        Ok(Ok(_)) => None,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "connection lost before its first bytes");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, "no first bytes within the handshake timeout: closing");
            None
        }
    }
}

/// `ENOBUFS`, whose number differs between Linux and the BSDs.
#[cfg(any(target_os = "linux", target_os = "android"))]
const ENOBUFS: i32 = 105;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const ENOBUFS: i32 = 55;

/// Out of file descriptors (`EMFILE` 24, `ENFILE` 23) or kernel memory (`ENOBUFS`, `ENOMEM` 12):
/// accepting again at once would fail again.
fn out_of_resources(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::OutOfMemory
        || e.raw_os_error()
            .is_some_and(|code| matches!(code, 24 | 23 | 12) || code == ENOBUFS)
}

/// Failures of one accept that leave the listener working: the next accept may succeed.
fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}
