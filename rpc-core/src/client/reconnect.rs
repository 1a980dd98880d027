//! A channel's connection slot: connecting on first use, reconnecting after a loss with backoff,
//! and failing calls fast while it waits.

use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::time::Instant;

use super::connection::{ClientConn, ClientRole};
use super::endpoint::ChannelConfig;
use crate::conn::{client_handshake, Driver, Keepalive};
use crate::limit::Limiter;
use crate::protocol::ProtocolError;
use crate::status::{Delivery, Status};
use crate::transport::Connector;

/// What the connection slot of a channel holds.
#[derive(Debug)]
pub(super) enum Slot {
    Idle {
        failures: u32,
    },
    Connecting {
        waiters: Vec<Waker>,
    },
    Ready(Arc<ClientConn>),
    Backoff {
        until: Instant,
        failures: u32,
        error: Status,
    },
    Shutdown,
}

/// The connection state of a [`Channel`](super::Channel).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChannelState {
    /// Not connected; the next call connects.
    Idle,
    /// A connection attempt is under way.
    Connecting,
    /// Connected and taking calls.
    Ready,
    /// The last attempt failed; calls fail fast until the backoff ends.
    TransientFailure,
}

#[derive(Debug)]
pub(super) struct Shared {
    pub(super) connector: Arc<dyn Connector>,
    pub(super) config: ChannelConfig,
    pub(super) limiter: Arc<Limiter>,
    pub(super) slot: Mutex<Slot>,
}

/// Every `Channel` clone holds one, and so does every call still waiting for a connection; when
/// the last goes, the connection drains and closes.
#[derive(Debug)]
pub(super) struct Handle {
    pub(super) shared: Arc<Shared>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        let old = std::mem::replace(&mut *self.shared.lock(), Slot::Shutdown);
        if let Slot::Ready(conn) = old {
            conn.drain();
        }
    }
}

impl Shared {
    pub(super) fn lock(&self) -> MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The live connection, connecting (and parking `cx`) when there is none.
    pub(super) fn poll_conn(
        self: &Arc<Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Arc<ClientConn>, Status>> {
        let mut slot = self.lock();
        loop {
            match &mut *slot {
                Slot::Ready(conn) if conn.is_usable() => return Poll::Ready(Ok(conn.clone())),
                Slot::Ready(_) => *slot = Slot::Idle { failures: 0 },
                Slot::Idle { failures } => {
                    let failures = *failures;
                    *slot = Slot::Connecting {
                        waiters: vec![cx.waker().clone()],
                    };
                    tokio::spawn(connect(self.clone(), failures));
                    return Poll::Pending;
                }
                Slot::Connecting { waiters } => {
                    if !waiters.iter().any(|w| w.will_wake(cx.waker())) {
                        waiters.push(cx.waker().clone());
                    }
                    return Poll::Pending;
                }
                Slot::Backoff {
                    until,
                    failures,
                    error,
                } => {
                    if Instant::now() < *until {
                        return Poll::Ready(Err(error.clone()));
                    }
                    *slot = Slot::Idle {
                        failures: *failures,
                    };
                }
                Slot::Shutdown => {
                    return Poll::Ready(Err(Status::unavailable("channel is shut down")
                        .with_delivery(Delivery::NotSent)))
                }
            }
        }
    }

    pub(super) fn state(&self) -> ChannelState {
        match &*self.lock() {
            Slot::Ready(c) if c.is_usable() => ChannelState::Ready,
            Slot::Ready(_) | Slot::Idle { .. } | Slot::Shutdown => ChannelState::Idle,
            Slot::Connecting { .. } => ChannelState::Connecting,
            Slot::Backoff { .. } => ChannelState::TransientFailure,
        }
    }
}

/// Why a connection attempt failed: the [`source`](std::error::Error::source) of the
/// `Unavailable` status calls fail with while a channel cannot connect.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The transport could not connect, or the handshake failed (the error says which).
    #[error(transparent)]
    Protocol(ProtocolError),
    /// Connecting and the handshake together took longer than
    /// [`Endpoint::connect_timeout`](super::Endpoint::connect_timeout).
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}

/// One connection attempt: transport, handshake, then the driver is spawned and waiters woken.
async fn connect(shared: Arc<Shared>, failures: u32) {
    let local = shared.config.local_settings();
    let attempt = async {
        let (io, peer) = shared.connector.connect().await?;
        let (io, peer_settings) = client_handshake(io, &local).await?;
        Ok::<_, ProtocolError>((io, peer, peer_settings))
    };
    let result = match tokio::time::timeout(shared.config.connect_timeout, attempt).await {
        Ok(Ok(ok)) => Ok(ok),
        Ok(Err(e)) => Err(ConnectError::Protocol(e)),
        Err(_) => Err(ConnectError::Timeout(shared.config.connect_timeout)),
    };
    let target = shared.connector.target();
    let (next, conn) = match result {
        Ok((io, peer, peer_settings)) => {
            tracing::debug!(%target, %peer, "connected");
            let compress = shared.config.compression_for(&peer_settings);
            let conn = ClientConn::new(
                peer,
                &local,
                peer_settings,
                compress,
                shared.config.max_unwritten_bytes,
            );
            let max_body = local.max_frame_size as usize;
            let keepalive = shared
                .config
                .keepalive
                .map(|(interval, timeout)| Keepalive::new(interval, timeout));
            let role = ClientRole::new(conn.clone(), max_body, keepalive);
            tokio::spawn(Driver::new(io, role));
            shared.limiter.set_limit(
                shared
                    .config
                    .max_concurrent_calls
                    .min(peer_settings.max_concurrent_calls as usize),
            );
            (Slot::Ready(conn.clone()), Some(conn))
        }
        Err(e) => {
            let wait = shared.config.backoff(failures);
            tracing::warn!(%target, error = %e, retry_in = ?wait, "connect failed");
            let error = Status::unavailable(format!("cannot connect to {target}: {e}"))
                .with_delivery(Delivery::NotSent)
                .with_source(e);
            (
                Slot::Backoff {
                    until: Instant::now() + wait,
                    failures: failures.saturating_add(1),
                    error,
                },
                None,
            )
        }
    };
    let mut slot = shared.lock();
    if matches!(*slot, Slot::Shutdown) {
        drop(slot);
        if let Some(conn) = conn {
            conn.drain();
        }
        return;
    }
    let old = std::mem::replace(&mut *slot, next);
    drop(slot);
    if let Slot::Connecting { waiters } = old {
        for w in waiters {
            w.wake();
        }
    }
}
