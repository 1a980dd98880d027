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

use std::cell::Cell;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Once};
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
use tracing_subscriber::fmt::MakeWriter;

/// Upper bound for every single read, connect, write and call.
const TIMEOUT: Duration = Duration::from_secs(10);

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

/// Collects everything a `fmt` subscriber writes.
#[derive(Clone, Default)]
struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogCapture {
    type Writer = LogCapture;

    fn make_writer(&'a self) -> LogCapture {
        self.clone()
    }
}

/// A subscriber for this thread only (the current-thread runtime runs the server here too).
fn capture_logs() -> (LogCapture, tracing::subscriber::DefaultGuard) {
    let capture = LogCapture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(capture.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    (capture, guard)
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

/// Polls `cond` until it holds, failing after [`TIMEOUT`].
async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
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
        let mut conn = RawConn::connect(addr).await;
        let mut out = BytesMut::new();
        out.put_slice(&PREFACE);
        encode_settings(&mut out, &Settings::protocol_default());
        conn.send(&out).await;
        let preface = conn
            .read_preface()
            .await
            .expect("server closed instead of its preface");
        assert_eq!(preface, PREFACE, "server preface");
        match conn.next_frame().await {
            Some(Frame::Settings(s)) => (conn, s),
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

// ---------------------------------------------------------------------------------------------
// 1. Garbage instead of a preface
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn garbage_preface_is_closed_without_a_reply() {
    let server = TestServer::start(Server::builder()).await;

    let mut conn = RawConn::connect(server.addr).await;
    conn.send(b"GET / HTTP/1.1\r\n\r\n").await;
    // Spec section 2: wrong magic, close without writing anything.
    while conn.read_more().await {}
    assert!(
        conn.rbuf.is_empty(),
        "server wrote {} bytes to a peer with a wrong magic: {:?}",
        conn.rbuf.len(),
        &conn.rbuf[..]
    );

    server.assert_serves_fresh_channel().await;
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 2. Wrong major version
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn wrong_major_version_gets_goaway_unsupported_version() {
    let server = TestServer::start(Server::builder()).await;

    let mut conn = RawConn::connect(server.addr).await;
    let mut out = BytesMut::new();
    let mut v2 = PREFACE;
    v2[4] = 2;
    out.put_slice(&v2);
    encode_settings(&mut out, &Settings::protocol_default());
    conn.send(&out).await;

    let preface = conn
        .read_preface()
        .await
        .expect("closed before the server's preface");
    assert_eq!(preface, PREFACE, "the server answers with its own preface");
    let goaway = single_goaway(conn.frames_until_eof().await);
    assert_eq!(goaway.code, GoAwayCode::UnsupportedVersion);
    assert_eq!(goaway.last_call_id, 0);

    server.assert_serves_fresh_channel().await;
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 3. Frame larger than the server's max frame size
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn oversized_frame_gets_goaway_frame_too_large_from_the_header_alone() {
    let (logs, _guard) = capture_logs();
    let server = TestServer::start(Server::builder().max_frame_size(16 * 1024)).await;

    let (mut conn, settings) = RawConn::handshake(server.addr).await;
    assert_eq!(settings.max_frame_size, 16 * 1024);
    // Only the header of a 1 MiB REQUEST: the server must decide without the payload.
    conn.send(&header(1 << 20, frame_type::REQUEST, 0, 1)).await;

    let goaway = single_goaway(conn.frames_until_eof().await);
    assert_eq!(goaway.code, GoAwayCode::FrameTooLarge);
    assert_eq!(goaway.last_call_id, 0);

    let text = logs.text();
    assert!(
        text.contains("protocol error"),
        "not logged; captured logs:\n{text}"
    );
    assert!(
        text.contains("exceeds the maximum frame size"),
        "the log does not say why; captured logs:\n{text}"
    );

    server.assert_serves_fresh_channel().await;
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 4. Truncated frame, then end of stream
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn truncated_frame_then_eof_closes_only_that_connection() {
    let server = TestServer::start(Server::builder()).await;

    // A connection that is already up before the bad one, and must stay up.
    let bystander = Endpoint::tcp(server.addr).connect_lazy();
    assert_echo(&bystander, "before").await;

    let (mut conn, _) = RawConn::handshake(server.addr).await;
    let full = request(1, "demo.Echo/Echo", b"0123456789abcdef");
    conn.send(&full[..full.len() / 2]).await;
    conn.shutdown_write().await;

    // The connection is dead (section 10): the server closes it and answers nothing. A GOAWAY
    // telling why is allowed.
    let frames = conn.frames_until_eof().await;
    assert!(
        frames.iter().all(|f| matches!(f, Frame::GoAway(_))),
        "only a GOAWAY may come back for a truncated frame, got {frames:?}"
    );

    assert_echo(&bystander, "after").await;
    server.assert_serves_fresh_channel().await;
    drop(bystander);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 5. Metadata over the server's limit
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn oversized_metadata_gets_goaway_metadata_too_large() {
    let (logs, _guard) = capture_logs();
    let server = TestServer::start(Server::builder().max_metadata_size(64)).await;

    let (mut conn, settings) = RawConn::handshake(server.addr).await;
    assert_eq!(settings.max_metadata_size, 64);
    let mut md = Metadata::new();
    md.insert("k", "v".repeat(195)); // 2 + 1 + 2 + 195 = 200 bytes of metadata block
    assert_eq!(md.encoded_len(), 200);
    let mut out = BytesMut::new();
    encode_request(&mut out, 1, 0, b"demo.Echo/Echo", 0, 0, &md, b"x");
    conn.send(&out).await;

    let goaway = single_goaway(conn.frames_until_eof().await);
    assert_eq!(goaway.code, GoAwayCode::MetadataTooLarge);

    let text = logs.text();
    assert!(
        text.contains("protocol error"),
        "not logged; captured logs:\n{text}"
    );
    assert!(
        text.contains("metadata block of 200 bytes"),
        "the log does not say why; captured logs:\n{text}"
    );

    server.assert_serves_fresh_channel().await;
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 6. Unknown frame type
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn unknown_frame_type_gets_goaway_protocol_error() {
    let (logs, _guard) = capture_logs();
    let server = TestServer::start(Server::builder()).await;

    let (mut conn, _) = RawConn::handshake(server.addr).await;
    // Announces a payload that never comes: the type is rejected from the header alone.
    conn.send(&header(100, 0x42, 0, 0)).await;

    let goaway = single_goaway(conn.frames_until_eof().await);
    assert_eq!(goaway.code, GoAwayCode::ProtocolError);

    let text = logs.text();
    assert!(
        text.contains("protocol error"),
        "not logged; captured logs:\n{text}"
    );
    assert!(
        text.contains("unknown frame type 0x42"),
        "the log does not say why; captured logs:\n{text}"
    );

    server.assert_serves_fresh_channel().await;
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 7. Unknown service, unknown method
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn unknown_service_and_method_are_unimplemented_and_the_connection_stays_usable() {
    let server = TestServer::start(Server::builder()).await;

    // Raw.
    let (mut conn, _) = RawConn::handshake(server.addr).await;
    let mut out = request(1, "nope.Missing/Echo", b"a");
    out.extend_from_slice(&request(2, "demo.Echo/Missing", b"b"));
    out.extend_from_slice(&request(3, "demo.Echo/Echo", b"still here"));
    conn.send(&out).await;
    let mut seen = Vec::new();
    for id in [1, 2] {
        let r = conn.response_for(id, &mut seen).await;
        assert_eq!(
            Code::from_u8(r.code),
            Code::Unimplemented,
            "call {id}: {r:?}"
        );
        assert!(r.body.is_empty(), "an error response has no body");
    }
    let r = conn.response_for(3, &mut seen).await;
    assert_ok_echo(&r, b"still here");
    assert!(seen.is_empty(), "unexpected frames: {seen:?}");

    // Through a Channel.
    let channel = Endpoint::tcp(server.addr).connect_lazy();
    for path in ["nope.Missing/Echo", "demo.Echo/Missing"] {
        let status = tokio::time::timeout(TIMEOUT, channel.unary(Request::new(path, "x")))
            .await
            .expect("call hung")
            .expect_err("an unknown method cannot succeed");
        assert_eq!(status.code(), Code::Unimplemented, "{path}: {status:?}");
    }
    assert_echo(&channel, "same channel").await;

    server.assert_serves_fresh_channel().await;
    drop(conn);
    drop(channel);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 8. More calls in flight than allowed
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn calls_over_the_connection_limit_get_resource_exhausted() {
    let server = TestServer::start(Server::builder().max_concurrent_calls_per_connection(4)).await;

    let (mut conn, settings) = RawConn::handshake(server.addr).await;
    assert_eq!(settings.max_concurrent_calls, 4);
    let mut out = BytesMut::new();
    for id in 1..=5 {
        out.extend_from_slice(&request(id, "demo.Echo/Slow", b""));
    }
    out.extend_from_slice(&request(6, "demo.Echo/Echo", b"six"));
    conn.send(&out).await;

    // Calls 1-4 run (Slow sleeps for an hour). Call 5 is the fifth in flight and is refused at
    // once; so is call 6, which is also over the limit while 1-4 run (section 10: "that call is
    // answered with RESOURCE_EXHAUSTED; the connection stays open").
    let mut seen = Vec::new();
    let r5 = conn.response_for(5, &mut seen).await;
    assert_eq!(Code::from_u8(r5.code), Code::ResourceExhausted, "{r5:?}");
    let r6 = conn.response_for(6, &mut seen).await;
    assert_eq!(Code::from_u8(r6.code), Code::ResourceExhausted, "{r6:?}");
    conn.ping_sync(1, &mut seen).await;
    assert!(
        responses_to(&seen, &[1, 2, 3, 4]).is_empty(),
        "calls 1-4 should still be running: {seen:?}"
    );

    // Cancel the four slow calls; the slots are free again.
    let mut out = BytesMut::new();
    for id in 1..=4 {
        encode_cancel(&mut out, id);
    }
    out.extend_from_slice(&request(7, "demo.Echo/Echo", b"seven"));
    conn.send(&out).await;
    let r7 = conn.response_for(7, &mut seen).await;
    assert_ok_echo(&r7, b"seven");
    conn.ping_sync(2, &mut seen).await;
    assert!(
        responses_to(&seen, &[1, 2, 3, 4]).is_empty(),
        "cancelled calls must not be answered: {seen:?}"
    );

    server.assert_serves_fresh_channel().await;
    drop(conn);
    server.stop().await;
}

#[tokio::test]
async fn channel_applies_backpressure_at_the_servers_limit() {
    let server = TestServer::start(Server::builder().max_concurrent_calls_per_connection(2)).await;

    let channel = Endpoint::tcp(server.addr).connect_lazy();
    tokio::time::timeout(TIMEOUT, channel.ready())
        .await
        .expect("connect hung")
        .expect("connect failed");
    assert_eq!(
        channel.max_in_flight(),
        2,
        "the channel adopts the server's limit"
    );

    let calls: Vec<JoinHandle<_>> = (0..2)
        .map(|_| {
            let ch = channel.clone();
            tokio::spawn(async move { ch.unary(Request::new("demo.Echo/Slow", "")).await })
        })
        .collect();
    wait_until("two calls in flight", || channel.in_flight() == 2).await;

    let mut probe = channel.clone();
    let mut cx = Context::from_waker(Waker::noop());
    let ready = tower::Service::<Request>::poll_ready(&mut probe, &mut cx);
    assert!(ready.is_pending(), "poll_ready at the limit: {ready:?}");
    assert!(
        calls.iter().all(|c| !c.is_finished()),
        "slow calls finished early"
    );

    // Dropping one call frees its slot.
    calls[0].abort();
    wait_until("poll_ready to become ready after a call ended", || {
        let mut cx = Context::from_waker(Waker::noop());
        matches!(
            tower::Service::<Request>::poll_ready(&mut probe, &mut cx),
            Poll::Ready(Ok(()))
        )
    })
    .await;
    drop(probe);
    calls[1].abort();
    for call in calls {
        let joined = tokio::time::timeout(TIMEOUT, call)
            .await
            .expect("abort hung");
        assert!(joined.is_err_and(|e| e.is_cancelled()));
    }
    wait_until("no calls in flight", || channel.in_flight() == 0).await;

    assert_echo(&channel, "after backpressure").await;
    server.assert_serves_fresh_channel().await;
    drop(channel);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 9. A peer that vanishes mid-call
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn server_vanishing_mid_call_fails_the_call_unavailable_sent() {
    let panics = panic_baseline();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local_addr");
    let (got_request, request_seen) = oneshot::channel::<RequestFrame>();

    // A fake server: handshake, read one REQUEST, then drop the socket.
    let fake = tokio::spawn(async move {
        let (stream, _) = tokio::time::timeout(TIMEOUT, listener.accept())
            .await
            .expect("no client came")
            .expect("accept");
        let mut conn = RawConn::from_stream(stream);
        let preface = conn
            .read_preface()
            .await
            .expect("client closed before its preface");
        assert_eq!(preface, PREFACE);
        match conn.next_frame().await {
            Some(Frame::Settings(_)) => {}
            other => panic!("expected the client's SETTINGS, got {other:?}"),
        }
        let mut out = BytesMut::new();
        out.put_slice(&PREFACE);
        encode_settings(&mut out, &Settings::protocol_default());
        conn.send(&out).await;
        match conn.next_frame().await {
            Some(Frame::Request(r)) => {
                got_request.send(r).ok();
            }
            other => panic!("expected a REQUEST, got {other:?}"),
        }
        drop(conn);
    });

    let channel = Endpoint::tcp(addr).connect_lazy();
    let status = tokio::time::timeout(TIMEOUT, channel.unary(Request::new("demo.Echo/Echo", "x")))
        .await
        .expect("the call hung after the server vanished")
        .expect_err("nobody answered this call");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(status.delivery(), Delivery::Sent, "{status:?}");

    let req = tokio::time::timeout(TIMEOUT, request_seen)
        .await
        .expect("fake server hung")
        .expect("fake server did not see the request");
    assert_eq!(&req.path[..], b"demo.Echo/Echo");
    tokio::time::timeout(TIMEOUT, fake)
        .await
        .expect("fake server hung")
        .expect("fake server failed");
    assert_no_new_panics(panics);
}

// ---------------------------------------------------------------------------------------------
// 10. Call ids that do not increase
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn decreasing_call_id_gets_goaway_protocol_error() {
    let server = TestServer::start(Server::builder()).await;

    let (mut conn, _) = RawConn::handshake(server.addr).await;
    let mut out = request(5, "demo.Echo/Echo", b"five");
    out.extend_from_slice(&request(3, "demo.Echo/Echo", b"three"));
    conn.send(&out).await;

    let mut frames = conn.frames_until_eof().await;
    let Some(Frame::GoAway(goaway)) = frames.pop() else {
        panic!("expected a GOAWAY last, got {frames:?}");
    };
    assert_eq!(goaway.code, GoAwayCode::ProtocolError);
    assert_eq!(goaway.last_call_id, 5, "call 5 was processed");
    // Call 5 was valid; if its answer came, it is the echo. Call 3 is never answered.
    match &frames[..] {
        [] => {}
        [Frame::Response(r)] if r.call_id == 5 => assert_ok_echo(r, b"five"),
        other => panic!("unexpected frames before the GOAWAY: {other:?}"),
    }

    server.assert_serves_fresh_channel().await;
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 11. PING
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn ping_gets_pong_with_the_same_value() {
    let server = TestServer::start(Server::builder()).await;

    let (mut conn, _) = RawConn::handshake(server.addr).await;
    let value = 0xdead_beef_0123_4567;
    let mut out = BytesMut::new();
    encode_ping(&mut out, value);
    conn.send(&out).await;
    match conn.next_frame().await {
        Some(Frame::Pong(v)) => assert_eq!(v, value),
        other => panic!("expected PONG({value:#x}), got {other:?}"),
    }
    // And the connection still works.
    conn.send(&request(1, "demo.Echo/Echo", b"after ping"))
        .await;
    let r = conn.response_for(1, &mut Vec::new()).await;
    assert_ok_echo(&r, b"after ping");

    server.assert_serves_fresh_channel().await;
    drop(conn);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Extra: frames that arrive in the same read as the client's SETTINGS
// ---------------------------------------------------------------------------------------------

/// Not one of the bad-input cases: legal input that a byte stream may deliver in any
/// segmentation. The client sends its preface, waits for the server's SETTINGS (section 2, rule 6),
/// then sends its SETTINGS and a REQUEST in one write, so the server reads both at once while it
/// is still in the handshake.
#[tokio::test]
async fn request_in_the_same_segment_as_client_settings_is_answered() {
    let server = TestServer::start(Server::builder()).await;

    let mut conn = RawConn::connect(server.addr).await;
    conn.send(&PREFACE).await;
    assert_eq!(conn.read_preface().await, Some(PREFACE));
    match conn.next_frame().await {
        Some(Frame::Settings(_)) => {}
        other => panic!("expected the server's SETTINGS, got {other:?}"),
    }
    let mut out = BytesMut::new();
    encode_settings(&mut out, &Settings::protocol_default());
    out.extend_from_slice(&request(1, "demo.Echo/Echo", b"coalesced"));
    conn.send(&out).await;

    let r = conn.response_for(1, &mut Vec::new()).await;
    assert_ok_echo(&r, b"coalesced");

    server.assert_serves_fresh_channel().await;
    drop(conn);
    server.stop().await;
}
