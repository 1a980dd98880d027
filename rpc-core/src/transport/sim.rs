//! A transport over [turmoil](https://docs.rs/turmoil)'s simulated network (feature `sim`), for
//! deterministic simulation tests: many hosts run the real client and server code on one thread,
//! with simulated time, and the test partitions links, holds or delays their messages, loses
//! them, and crashes and restarts hosts, all from a seed that replays exactly.
//!
//! Both types must be used from inside a turmoil host or client (they panic elsewhere, as
//! turmoil's sockets do). Streams are turmoil's simulated TCP, reported as [`PeerAddr::Tcp`].
//! A message lost on a link (turmoil's `fail_rate`, or a partition while it was in flight) is
//! never retransmitted: the stream stalls as a black-holed TCP connection does, which is what
//! keepalive and deadlines exist to detect.
//!
//! ```
//! use std::time::Duration;
//! use rpc_core::server::RawService;
//! use rpc_core::transport::sim::{SimConnector, SimListener};
//! use rpc_core::{Endpoint, Request, Response, Server};
//!
//! let mut sim = turmoil::Builder::new().rng_seed(7).build();
//! sim.host("server", || async {
//!     let svc = RawService::new("demo.Echo")
//!         .method("Echo", |req: Request| async move { Ok(Response::new(req.into_body())) });
//!     let listener = SimListener::bind(9000).await?;
//!     Server::builder().add_service(svc).serve(listener).await?;
//!     Ok(())
//! });
//! sim.client("client", async {
//!     let channel = Endpoint::new(SimConnector::new("server:9000")).connect_lazy();
//!     let reply = channel.unary(Request::new("demo.Echo/Echo", "hi")).await?;
//!     assert_eq!(&reply.body()[..], b"hi");
//!     Ok(())
//! });
//! sim.run().unwrap();
//! ```

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::task::{Context, Poll};

use super::{BoxIo, Connector, Listener, PeerAddr};
use crate::BoxFuture;

/// Connects to `host:port` on the simulated network (a turmoil host name or an address).
#[derive(Debug, Clone)]
pub struct SimConnector {
    target: Arc<str>,
}

impl SimConnector {
    /// A connector for `target`, resolved by turmoil's simulated DNS at each connect.
    pub fn new(target: &str) -> SimConnector {
        SimConnector {
            target: Arc::from(target),
        }
    }
}

impl Connector for SimConnector {
    fn connect(&self) -> BoxFuture<'static, io::Result<(BoxIo, PeerAddr)>> {
        let target = self.target.clone();
        Box::pin(async move {
            let stream = turmoil::net::TcpStream::connect(&*target).await?;
            let peer = stream.peer_addr()?;
            Ok((Box::new(stream) as BoxIo, PeerAddr::Tcp(peer)))
        })
    }

    fn target(&self) -> String {
        self.target.to_string()
    }
}

type Accept = BoxFuture<'static, io::Result<(turmoil::net::TcpStream, SocketAddr)>>;

/// Accepts simulated TCP connections on one port of the current turmoil host.
pub struct SimListener {
    inner: Arc<turmoil::net::TcpListener>,
    pending: Option<Accept>,
}

impl fmt::Debug for SimListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimListener")
            .field("local_addr", &self.inner.local_addr().ok())
            .finish_non_exhaustive()
    }
}

impl SimListener {
    /// Binds `port` (0: any free port) on every address of the current host.
    ///
    /// # Errors
    /// `AddrInUse` if the port is taken on this host.
    pub async fn bind(port: u16) -> io::Result<SimListener> {
        let inner = turmoil::net::TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).await?;
        Ok(SimListener {
            inner: Arc::new(inner),
            pending: None,
        })
    }
}

impl Listener for SimListener {
    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<(BoxIo, PeerAddr)>> {
        let inner = &self.inner;
        let accept = self.pending.get_or_insert_with(|| {
            let inner = inner.clone();
            Box::pin(async move { inner.accept().await })
        });
        let res = std::task::ready!(accept.as_mut().poll(cx));
        self.pending = None;
        let (stream, peer) = res?;
        Poll::Ready(Ok((Box::new(stream) as BoxIo, PeerAddr::Tcp(peer))))
    }

    fn local_addr(&self) -> io::Result<PeerAddr> {
        self.inner.local_addr().map(PeerAddr::Tcp)
    }
}
