//! Bad input on the wire: a real `Server` on TCP loopback, driven with raw protocol bytes.
//!
//! Every case checks what `docs/protocol.md` (sections 2, 3, 5, 8, 10) says must happen, and then
//! that the same server still answers a normal call on a fresh `Channel`: a bad peer may only
//! break its own connection.
//!
//! All tests run on `#[tokio::test]`'s current-thread runtime, so the server's tasks run on the
//! test's own thread. That is what lets a thread-local tracing subscriber (`set_default`) see the
//! server's logs, and a thread-local counter see panics of server tasks.
//!
//! Every read is bounded by [`TIMEOUT`], so a bug shows as a failure, not a hang.
//!
//! This file holds what the tests share: the panic counter, log capture, the server under test
//! and the raw protocol peer. The tests themselves are in `bad_input/`, by concept; their section
//! headings keep the case numbers.

use std::cell::Cell;
use std::io;
use std::net::SocketAddr;
use std::sync::Once;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use rpc_core::protocol::{
    encode_cancel, encode_ping, encode_request, encode_settings, frame_type, Frame, FrameDecoder,
    GoAway, GoAwayCode, RequestFrame, ResponseFrame, Settings, HEADER_LEN, PREFACE,
};
use rpc_core::{server::RawService, Code, Delivery, Endpoint, Metadata, Request, Response, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Upper bound for every single read, connect, write and call.
const TIMEOUT: Duration = Duration::from_secs(10);

#[path = "support/poll.rs"]
#[allow(dead_code, unreachable_pub)]
mod poll;

use poll::eventually;

// ---------------------------------------------------------------------------------------------
// Panics of server tasks
// ---------------------------------------------------------------------------------------------

thread_local! {
    static PANICS: Cell<usize> = const { Cell::new(0) };
}

/// Installs (once per process) a panic hook that counts panics per thread, and returns this
/// thread's count so far. Tokio catches panics of spawned tasks, so without this a panicking
/// connection task would look just like a closed connection.
fn panic_baseline() -> usize {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.with(|p| p.set(p.get() + 1));
            previous(info);
        }));
    });
    PANICS.with(Cell::get)
}

fn assert_no_new_panics(baseline: usize) {
    let now = PANICS.with(Cell::get);
    assert_eq!(
        now, baseline,
        "a task panicked on this test's runtime (see stderr)"
    );
}

// ---------------------------------------------------------------------------------------------
// Log capture
// ---------------------------------------------------------------------------------------------

#[path = "support/logs.rs"]
#[allow(dead_code, unreachable_pub)]
mod logs;

/// Captures this thread's logs at DEBUG and above.
fn capture_logs() -> (logs::LogCapture, tracing::subscriber::DefaultGuard) {
    logs::capture_logs(tracing::Level::DEBUG)
}

// ---------------------------------------------------------------------------------------------
// Server under test
// ---------------------------------------------------------------------------------------------

fn echo_service() -> RawService {
    RawService::new("demo.Echo")
        .method("Echo", |req: Request| async move {
            Ok(Response::new(req.into_body()))
        })
        .method("Slow", |_req: Request| async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(Response::default())
        })
}

struct TestServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<io::Result<()>>,
    panics: usize,
}

impl TestServer {
    /// Serves `demo.Echo` with the builder's limits on 127.0.0.1:0.
    async fn start(builder: Server) -> TestServer {
        let panics = panic_baseline();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local_addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(
            builder
                .drain_timeout(Duration::from_secs(5))
                .add_service(echo_service())
                .serve_with_shutdown(listener, async {
                    stopped.await.ok();
                }),
        );
        TestServer {
            addr,
            stop: Some(stop),
            task,
            panics,
        }
    }

    /// The server still answers a normal call from a brand-new channel (so a new connection).
    async fn assert_serves_fresh_channel(&self) {
        let channel = Endpoint::tcp(self.addr).connect_lazy();
        assert_echo(&channel, "still-alive").await;
    }

    /// Stops the server, waits for it, and checks that nothing panicked.
    async fn stop(mut self) {
        self.stop.take().unwrap().send(()).ok();
        let result = tokio::time::timeout(TIMEOUT, &mut self.task)
            .await
            .expect("server did not stop in time")
            .expect("server task panicked");
        result.expect("server returned an error");
        assert_no_new_panics(self.panics);
    }
}

async fn assert_echo(channel: &rpc_core::Channel, body: &'static str) {
    let reply = tokio::time::timeout(TIMEOUT, channel.unary(Request::new("demo.Echo/Echo", body)))
        .await
        .expect("echo call hung")
        .unwrap_or_else(|s| panic!("echo call failed: {s:?}"));
    assert_eq!(&reply.body()[..], body.as_bytes());
}

// ---------------------------------------------------------------------------------------------
// Raw protocol peer
// ---------------------------------------------------------------------------------------------

/// One end of a connection, speaking bytes: used as a raw client and as a fake server.
struct RawConn {
    stream: TcpStream,
    rbuf: BytesMut,
    decoder: FrameDecoder,
    eof: bool,
}

impl RawConn {
    fn from_stream(stream: TcpStream) -> RawConn {
        RawConn {
            stream,
            rbuf: BytesMut::with_capacity(64 * 1024),
            decoder: FrameDecoder::new(&Settings::protocol_default()),
            eof: false,
        }
    }

    /// A TCP connection without any handshake.
    async fn connect(addr: SocketAddr) -> RawConn {
        let stream = tokio::time::timeout(TIMEOUT, TcpStream::connect(addr))
            .await
            .expect("connect timed out")
            .expect("connect");
        stream.set_nodelay(true).ok();
        RawConn::from_stream(stream)
    }

    /// Client side of the handshake: our preface and SETTINGS, then the server's preface and
    /// SETTINGS.
    async fn handshake(addr: SocketAddr) -> (RawConn, Settings) {
        RawConn::handshake_with(addr, Settings::protocol_default()).await
    }

    /// The handshake announcing `ours`; the frames read afterwards are those both settings
    /// allow (protocol 1.1's streaming frames when both announce streaming).
    async fn handshake_with(addr: SocketAddr, ours: Settings) -> (RawConn, Settings) {
        let mut conn = RawConn::connect(addr).await;
        let mut out = BytesMut::new();
        out.put_slice(&PREFACE);
        encode_settings(&mut out, &ours);
        conn.send(&out).await;
        let preface = conn
            .read_preface()
            .await
            .expect("server closed instead of its preface");
        assert_eq!(preface, PREFACE, "server preface");
        match conn.next_frame().await {
            Some(Frame::Settings(s)) => {
                conn.decoder = FrameDecoder::negotiated(&ours, &s);
                (conn, s)
            }
            other => panic!("expected the server's SETTINGS, got {other:?}"),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        tokio::time::timeout(TIMEOUT, self.stream.write_all(bytes))
            .await
            .expect("write timed out")
            .expect("write failed");
    }

    /// Half-closes our side: the peer reads end of stream.
    async fn shutdown_write(&mut self) {
        tokio::time::timeout(TIMEOUT, self.stream.shutdown())
            .await
            .expect("shutdown timed out")
            .expect("shutdown failed");
    }

    /// One read into the buffer; `false` at end of stream. A reset counts as end of stream too:
    /// a peer that closes with unread bytes in its receive buffer resets instead of sending FIN.
    async fn read_more(&mut self) -> bool {
        if self.eof {
            return false;
        }
        self.rbuf.reserve(16 * 1024);
        match tokio::time::timeout(TIMEOUT, self.stream.read_buf(&mut self.rbuf)).await {
            Err(_) => panic!(
                "no data and no end of stream within {TIMEOUT:?} ({} bytes buffered)",
                self.rbuf.len()
            ),
            Ok(Ok(0)) => {
                self.eof = true;
                false
            }
            Ok(Ok(_)) => true,
            Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionReset => {
                self.eof = true;
                false
            }
            Ok(Err(e)) => panic!("read failed: {e}"),
        }
    }

    /// The peer's 8-byte preface, or `None` if the stream ended first.
    async fn read_preface(&mut self) -> Option<[u8; 8]> {
        while self.rbuf.len() < PREFACE.len() {
            if !self.read_more().await {
                return None;
            }
        }
        let mut preface = [0; 8];
        self.rbuf.copy_to_slice(&mut preface);
        Some(preface)
    }

    /// The next frame, or `None` at end of stream (which must fall between frames).
    async fn next_frame(&mut self) -> Option<Frame> {
        loop {
            match self.decoder.decode(&mut self.rbuf) {
                Ok(Some(frame)) => return Some(frame),
                Ok(None) => {}
                Err(e) => panic!("peer sent an undecodable frame: {e}"),
            }
            if !self.read_more().await {
                assert!(
                    self.rbuf.is_empty(),
                    "stream ended in the middle of a frame ({} bytes left)",
                    self.rbuf.len()
                );
                return None;
            }
        }
    }

    /// Every frame until end of stream.
    async fn frames_until_eof(&mut self) -> Vec<Frame> {
        let mut frames = Vec::new();
        while let Some(frame) = self.next_frame().await {
            frames.push(frame);
        }
        frames
    }

    /// Reads until the RESPONSE for `call_id`; other frames go to `seen`.
    async fn response_for(&mut self, call_id: u32, seen: &mut Vec<Frame>) -> ResponseFrame {
        loop {
            match self.next_frame().await {
                Some(Frame::Response(r)) if r.call_id == call_id => return r,
                Some(Frame::GoAway(g)) => {
                    panic!("GOAWAY while waiting for the response to call {call_id}: {g:?}")
                }
                Some(other) => seen.push(other),
                None => panic!("end of stream while waiting for the response to call {call_id}"),
            }
        }
    }

    /// Sends a PING and reads up to its PONG; frames before it go to `seen`. A sync point: the
    /// server answers frames in order, so everything it had to say about earlier frames is in
    /// `seen`.
    async fn ping_sync(&mut self, value: u64, seen: &mut Vec<Frame>) {
        let mut out = BytesMut::new();
        encode_ping(&mut out, value);
        self.send(&out).await;
        loop {
            match self.next_frame().await {
                Some(Frame::Pong(v)) if v == value => return,
                Some(Frame::GoAway(g)) => panic!("GOAWAY while waiting for a PONG: {g:?}"),
                Some(other) => seen.push(other),
                None => panic!("end of stream while waiting for a PONG"),
            }
        }
    }
}

fn request(call_id: u32, path: &str, body: &[u8]) -> BytesMut {
    let mut out = BytesMut::new();
    encode_request(
        &mut out,
        call_id,
        0,
        path.as_bytes(),
        0,
        0,
        &Metadata::new(),
        body,
    );
    out
}

fn header(len: u32, kind: u8, flags: u8, call_id: u32) -> [u8; HEADER_LEN] {
    let mut h = [0; HEADER_LEN];
    h[..4].copy_from_slice(&len.to_be_bytes());
    h[4] = kind;
    h[5] = flags;
    h[6..].copy_from_slice(&call_id.to_be_bytes());
    h
}

/// The frames before end of stream must be exactly one GOAWAY; returns it.
fn single_goaway(frames: Vec<Frame>) -> GoAway {
    match <[Frame; 1]>::try_from(frames) {
        Ok([Frame::GoAway(g)]) => g,
        Ok(other) => panic!("expected one GOAWAY then end of stream, got {other:?}"),
        Err(frames) => panic!("expected one GOAWAY then end of stream, got {frames:?}"),
    }
}

fn assert_ok_echo(r: &ResponseFrame, body: &[u8]) {
    assert_eq!(
        Code::from_u8(r.code),
        Code::Ok,
        "call {} failed: {}",
        r.call_id,
        String::from_utf8_lossy(&r.message)
    );
    assert_eq!(&r.body[..], body);
}

fn responses_to<'a>(frames: &'a [Frame], ids: &[u32]) -> Vec<&'a ResponseFrame> {
    frames
        .iter()
        .filter_map(|f| match f {
            Frame::Response(r) if ids.contains(&r.call_id) => Some(r),
            _ => None,
        })
        .collect()
}

// The tests, by concept. (`#[path]`: this file is a test crate's root, and a file directly in
// `tests/` would be a test crate of its own.)
#[path = "bad_input/frames.rs"]
mod frames;
#[path = "bad_input/handshake.rs"]
mod handshake;
#[path = "bad_input/limits.rs"]
mod limits;
#[path = "bad_input/routing.rs"]
mod routing;
#[path = "bad_input/streams.rs"]
mod streams;
#[path = "bad_input/vanishing_peer.rs"]
mod vanishing_peer;
