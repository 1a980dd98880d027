//! Transports: where the bytes go. A [`Connector`] opens streams to one address and a [`Listener`]
//! accepts them; both hand out boxed [`Io`] streams so that the protocol layer above is the same for
//! TCP, Unix sockets and the in-memory transport, and TLS over any of them (feature `tls`).

use std::fmt;
use std::io;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite};

use crate::BoxFuture;

mod identity;
pub mod memory;
#[cfg(feature = "sim")]
pub mod sim;
pub mod tcp;
#[cfg(feature = "tls")]
pub mod tls;
#[cfg(unix)]
pub mod unix;

pub use identity::PeerIdentity;

/// A bidirectional byte stream a connection runs over.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// A boxed stream, as transports hand them to the protocol layer.
pub type BoxIo = Box<dyn Io>;

/// The address of the other end of a connection.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PeerAddr {
    /// A TCP peer.
    Tcp(std::net::SocketAddr),
    /// A Unix-socket peer (its path, when it has one).
    Unix(Option<Arc<std::path::Path>>),
    /// An in-memory peer: the listener's name and the connection's serial number.
    Memory(Arc<str>, u64),
    /// A peer over TLS: the address of the stream under it, and the identity its verified
    /// certificate proves (`None` when it presented none, as a client does where client
    /// certificates are optional, or for a listener's own address).
    Tls(Box<PeerAddr>, Option<Arc<PeerIdentity>>),
}

impl PeerAddr {
    /// The identity the peer proved with its TLS certificate, if it did.
    pub fn identity(&self) -> Option<&PeerIdentity> {
        match self {
            PeerAddr::Tls(_, id) => id.as_deref(),
            _ => None,
        }
    }
}

impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerAddr::Tcp(a) => write!(f, "{a}"),
            PeerAddr::Unix(Some(p)) => write!(f, "unix:{}", p.display()),
            PeerAddr::Unix(None) => f.write_str("unix:(unnamed)"),
            PeerAddr::Memory(name, n) => write!(f, "memory:{name}#{n}"),
            PeerAddr::Tls(addr, _) => write!(f, "tls:{addr}"),
        }
    }
}

/// Opens new streams to one remote address. A `Channel` calls it on first use and after every
/// connection loss.
pub trait Connector: Send + Sync + fmt::Debug + 'static {
    /// Opens one stream and says who is at the other end.
    fn connect(&self) -> BoxFuture<'static, io::Result<(BoxIo, PeerAddr)>>;

    /// The address this connector reaches, for logs.
    fn target(&self) -> String;
}

/// Accepts incoming streams for a `Server`.
pub trait Listener: Send + 'static {
    /// Polls for the next incoming stream.
    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<(BoxIo, PeerAddr)>>;

    /// The address this listener is bound to.
    fn local_addr(&self) -> io::Result<PeerAddr>;
}

impl<L: Listener + ?Sized> Listener for Box<L> {
    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<(BoxIo, PeerAddr)>> {
        (**self).poll_accept(cx)
    }

    fn local_addr(&self) -> io::Result<PeerAddr> {
        (**self).local_addr()
    }
}
