//! HTTP/JSON on a server's own port (feature `http`, [`Server::http`](super::Server::http)): a
//! connection whose first byte is not our preface's is served by hyper (HTTP/1.1, or HTTP/2 with
//! prior knowledge), each request a call to the hosted services through [`HttpService`].

use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::sync::CancellationToken;

use super::connection::ConnShared;
use super::service::handler_ran;
use crate::http::{HttpConfig, HttpService};
use crate::message::{Request, Response};
use crate::status::{Delivery, Status};
use crate::transport::{BoxIo, PeerAddr};
use crate::BoxFuture;

/// The hosted services as one tower service, for calls that come over HTTP: routed by service
/// name, under the server's codecs and its limit on calls in flight, with each call's deadline.
#[derive(Clone)]
pub(super) struct Hosted {
    pub(super) shared: Arc<ConnShared>,
}

impl tower::Service<Request> for Hosted {
    type Response = Response;
    type Error = Status;
    type Future = BoxFuture<'static, Result<Response, Status>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let shared = self.shared.clone();
        Box::pin(async move {
            let Some(svc) = shared.router.get(req.service()).cloned() else {
                return Err(
                    Status::unimplemented(format!("unknown service {:?}", req.service()))
                        .with_delivery(Delivery::Unprocessed),
                );
            };
            let accepted = shared.local.codec_set();
            if !accepted.contains(req.codec()) {
                return Err(Status::unimplemented(format!(
                    "this server does not accept the {} codec; it accepts: {accepted}",
                    req.codec()
                ))
                .with_delivery(Delivery::Unprocessed));
            }
            if shared.in_flight.fetch_add(1, Ordering::AcqRel) >= shared.max_calls {
                shared.in_flight.fetch_sub(1, Ordering::AcqRel);
                return Err(Status::resource_exhausted(format!(
                    "server is at its limit of {} calls in flight",
                    shared.max_calls
                ))
                .with_delivery(Delivery::Unprocessed));
            }
            let _slot = Slot(shared.clone());
            let ctx = req.context().clone();
            let deadline = ctx.deadline();
            if deadline.is_some_and(|d| d <= tokio::time::Instant::now()) {
                return Err(Status::deadline_exceeded(
                    "deadline exceeded before a handler could start the call; not processed",
                )
                .with_delivery(Delivery::Unprocessed));
            }
            svc.dispatch(req, ctx, deadline)
                .await
                .map_err(|s| match s.delivery() {
                    // Refusals of the service's own (an unknown method) stay unprocessed.
                    Delivery::Unprocessed => s,
                    _ => handler_ran(s),
                })
        })
    }
}

/// Counts an HTTP call against the server's limit on calls in flight until dropped.
struct Slot(Arc<ConnShared>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Release);
    }
}

/// What [`serve`] needs besides the connection.
pub(super) struct HttpSetup {
    pub(super) shared: Arc<ConnShared>,
    pub(super) config: HttpConfig,
    /// Where server-streaming calls are opened: the server itself, over memory.
    pub(super) streams: crate::Channel,
    /// How long a client has to send a request's headers (HTTP/1.1).
    pub(super) header_timeout: Duration,
    pub(super) shutdown: CancellationToken,
    pub(super) hard_stop: CancellationToken,
}

/// Serves one HTTP connection whose first bytes, `first`, were read already: until the client
/// closes it, or, once the server shuts down, until the requests in flight are answered (HTTP/1.1
/// closes after its current response; HTTP/2 sends GOAWAY) or the drain timeout runs out.
pub(super) async fn serve(io: BoxIo, first: BytesMut, peer: PeerAddr, setup: HttpSetup) {
    let HttpSetup {
        shared,
        config,
        streams,
        header_timeout,
        shutdown,
        hard_stop,
    } = setup;
    let service = HttpService::new(Hosted { shared }, config)
        .with_peer(peer.clone())
        .with_streams(streams);
    let io = Rewind { first, io };
    crate::http::serve_connection(io, service, header_timeout, shutdown, hard_stop, &peer).await;
}

/// A name for a server's in-memory listener of HTTP streams, unique in the process.
pub(super) fn loopback_name() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    format!("rpc-http-streams-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A connection with the bytes read to recognise it put back in front.
struct Rewind {
    first: BytesMut,
    io: BoxIo,
}

impl AsyncRead for Rewind {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.first.is_empty() {
            let n = self.first.len().min(buf.remaining());
            buf.put_slice(&self.first[..n]);
            self.first.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Rewind {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
