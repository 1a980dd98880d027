//! Unix domain sockets, for services on one host.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::net::{UnixListener, UnixStream};

use super::{BoxIo, Connector, Listener, PeerAddr};
use crate::BoxFuture;

/// Connects to a Unix socket path.
#[derive(Debug, Clone)]
pub struct UnixConnector {
    path: Arc<Path>,
}

impl UnixConnector {
    /// A connector for the socket at `path`.
    pub fn new(path: impl Into<PathBuf>) -> UnixConnector {
        UnixConnector {
            path: Arc::from(path.into()),
        }
    }
}

impl Connector for UnixConnector {
    fn connect(&self) -> BoxFuture<'static, io::Result<(BoxIo, PeerAddr)>> {
        let path = self.path.clone();
        Box::pin(async move {
            let stream = UnixStream::connect(&path).await?;
            Ok((Box::new(stream) as BoxIo, PeerAddr::Unix(Some(path))))
        })
    }

    fn target(&self) -> String {
        format!("unix:{}", self.path.display())
    }
}

impl Listener for UnixListener {
    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<(BoxIo, PeerAddr)>> {
        UnixListener::poll_accept(self, cx).map(|res| {
            let (stream, addr) = res?;
            let path = addr.as_pathname().map(Arc::from);
            Ok((Box::new(stream) as BoxIo, PeerAddr::Unix(path)))
        })
    }

    fn local_addr(&self) -> io::Result<PeerAddr> {
        let addr = UnixListener::local_addr(self)?;
        Ok(PeerAddr::Unix(addr.as_pathname().map(Arc::from)))
    }
}
