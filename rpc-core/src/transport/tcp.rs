//! TCP: streams with `TCP_NODELAY` set, since the protocol batches its own writes.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::net::{TcpListener, TcpStream};

use super::{BoxIo, Connector, Listener, PeerAddr};
use crate::BoxFuture;

/// Connects over TCP to one address: a socket address, or `host:port` resolved at each connect.
#[derive(Debug, Clone)]
pub struct TcpConnector {
    target: Arc<str>,
}

impl TcpConnector {
    /// A connector for a socket address.
    pub fn new(addr: SocketAddr) -> TcpConnector {
        TcpConnector {
            target: Arc::from(addr.to_string()),
        }
    }

    /// A connector for `host:port`; the name is resolved again on every connect.
    pub fn from_host(target: &str) -> TcpConnector {
        TcpConnector {
            target: Arc::from(target),
        }
    }
}

impl Connector for TcpConnector {
    fn connect(&self) -> BoxFuture<'static, io::Result<(BoxIo, PeerAddr)>> {
        let target = self.target.clone();
        Box::pin(async move {
            let stream = TcpStream::connect(&*target).await?;
            stream.set_nodelay(true)?;
            let peer = stream.peer_addr()?;
            Ok((Box::new(stream) as BoxIo, PeerAddr::Tcp(peer)))
        })
    }

    fn target(&self) -> String {
        self.target.to_string()
    }
}

/// tokio's listener serves directly; accepted streams get `TCP_NODELAY`.
impl Listener for TcpListener {
    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<(BoxIo, PeerAddr)>> {
        TcpListener::poll_accept(self, cx).map(|res| {
            let (stream, addr) = res?;
            stream.set_nodelay(true)?;
            Ok((Box::new(stream) as BoxIo, PeerAddr::Tcp(addr)))
        })
    }

    fn local_addr(&self) -> io::Result<PeerAddr> {
        TcpListener::local_addr(self).map(PeerAddr::Tcp)
    }
}
