//! Memory one peer can make a server hold (issue 12, items 5, 7 and 8): output for a peer that
//! never reads stays under the high-water mark, idle connections give back their buffers, and the
//! server caps connections and handshakes and rides out running out of file descriptors.
//!
//! Figures come from [`ServerStats`], never from the process's RSS.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use rpc_core::protocol::Frame;
use rpc_core::server::{RawService, ServerStats};
use rpc_core::transport::memory::{MemoryConnector, MemoryListener};
use rpc_core::transport::{BoxIo, Connector, Listener, PeerAddr};
use rpc_core::{Code, Endpoint, Request, Response, Server};
use tokio::net::{TcpListener, TcpStream};

mod support;

#[path = "support/raw.rs"]
#[allow(dead_code, unreachable_pub)]
mod raw;

use raw::{client_hello, request, send, FrameReader};
use support::logs::LogCapture;
use support::poll::eventually;
use support::{echo, serve};

/// How long a test waits for a condition it polls for.
const POLL_LIMIT: Duration = Duration::from_secs(20);
/// The output a connection may hold before it stops taking requests (`conn::WRITE_HIGH_WATER`).
const HIGH_WATER: usize = 1 << 20;

// ---------------------------------------------------------------------------------------------
// Item 5: a peer that never reads
// ---------------------------------------------------------------------------------------------

const BLOB: usize = 32 * 1024;
static BLOB_BYTES: [u8; BLOB] = [7; BLOB];
const CONN_LIMIT: u32 = 16;

/// `Get` answers at once (inline), `Later` after yielding once (on a task of its own): a few bytes
/// of request, 32 KiB of reply. Counts the handlers started.
fn blobs(started: Arc<AtomicUsize>) -> RawService {
    let later = started.clone();
    RawService::new("demo.Blob")
        .method("Get", move |_req| {
            started.fetch_add(1, Ordering::SeqCst);
            async { Ok(Response::new(Bytes::from_static(&BLOB_BYTES))) }
        })
        .method("Later", move |_req| {
            later.fetch_add(1, Ordering::SeqCst);
            async {
                tokio::task::yield_now().await;
                Ok(Response::new(Bytes::from_static(&BLOB_BYTES)))
            }
        })
}

/// A client sends `calls` small requests, each asking for 32 KiB, and reads nothing. The server
/// stops taking requests once its unwritten output reaches the high-water mark, with at most one
/// reply per call in flight (16 on the connection) beyond it; once the client reads, every call
/// is answered.
async fn a_peer_that_never_reads(method: &str, calls: u32) {
    let started = Arc::new(AtomicUsize::new(0));
    let server = Server::builder()
        .max_concurrent_calls_per_connection(CONN_LIMIT)
        .add_service(blobs(started.clone()));
    let stats = server.stats();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = serve(server, listener);
    let stream = TcpStream::connect(addr).await.unwrap();
    let (rd, mut wr) = stream.into_split();
    let mut out = client_hello();
    for id in 1..=calls {
        request(&mut out, id, method, b"");
    }
    let writer = tokio::spawn(async move {
        send(&mut wr, &out).await.unwrap();
        wr
    });

    // The server fills its output up to the mark, then stops: nothing changes any more.
    eventually(
        POLL_LIMIT,
        "the output to reach the high-water mark",
        || async { stats.unwritten_bytes() >= HIGH_WATER },
    )
    .await;
    let mut last = (usize::MAX, usize::MAX);
    eventually(POLL_LIMIT, "the server to stop taking requests", || {
        let now = (started.load(Ordering::SeqCst), stats.unwritten_bytes());
        let still = now == last;
        last = now;
        async move { still }
    })
    .await;
    let held = stats.unwritten_bytes();
    let bound = HIGH_WATER + CONN_LIMIT as usize * BLOB + 64 * 1024;
    assert!(held <= bound, "{held} bytes unwritten, over {bound}");
    let taken = started.load(Ordering::SeqCst);
    assert!(taken < calls as usize / 2, "{taken} requests taken");

    // Now the client reads: the requests left unread are taken and every call is answered, in
    // full or, beyond the connection's limit, with RESOURCE_EXHAUSTED.
    let mut reader = FrameReader::new(rd);
    reader.read_hello().await;
    let mut answered = 0;
    while answered < calls {
        match reader.next_frame().await {
            Some(Frame::Response(r)) => {
                match Code::from_u8(r.code) {
                    Code::Ok => assert_eq!(r.body.len(), BLOB),
                    Code::ResourceExhausted => assert_eq!(method, "demo.Blob/Later"),
                    other => panic!("call {} failed with {other:?}", r.call_id),
                }
                answered += 1;
            }
            other => panic!("expected a RESPONSE, got {other:?}"),
        }
    }
    eventually(POLL_LIMIT, "the output to drain", || async {
        stats.unwritten_bytes() == 0
    })
    .await;
    drop((reader, writer.await.unwrap()));
    server.shutdown().await;
}

/// 2 000 calls would be 64 MiB of replies.
#[tokio::test]
async fn a_peer_that_never_reads_cannot_grow_inline_replies() {
    a_peer_that_never_reads("demo.Blob/Get", 2_000).await;
}

/// Replies of handlers on their own tasks keep their call's slot until they are taken for
/// writing, so at most 16 of them wait; the calls refused meanwhile (small replies) fill the
/// output up to the mark.
#[tokio::test]
async fn a_peer_that_never_reads_cannot_grow_replies_of_spawned_handlers() {
    a_peer_that_never_reads("demo.Blob/Later", 30_000).await;
}

// ---------------------------------------------------------------------------------------------
// Item 7: idle connections
// ---------------------------------------------------------------------------------------------

/// Ten connections each make one 64 KiB call, then idle: together they keep at most 16 KiB of
/// buffers each (their peak was over 128 KiB each).
#[tokio::test]
async fn idle_connections_give_back_their_buffers() {
    const CONNS: usize = 10;
    let server = Server::builder().add_service(echo());
    let stats = server.stats();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = serve(server, listener);
    let body = Bytes::from(vec![9u8; 64 * 1024]);
    let mut channels = Vec::new();
    for _ in 0..CONNS {
        let channel = Endpoint::tcp(addr).connect().await.unwrap();
        let reply = channel
            .unary(Request::new("demo.Echo/Echo", body.clone()))
            .await
            .unwrap();
        assert_eq!(reply.body().len(), body.len());
        channels.push(channel);
    }
    assert_eq!(stats.connections(), CONNS);
    eventually(POLL_LIMIT, "idle connections to shrink", || async {
        stats.buffer_bytes() <= CONNS * 16 * 1024
    })
    .await;
    // Still serving.
    let reply = channels[3]
        .unary(Request::new("demo.Echo/Echo", body.clone()))
        .await
        .unwrap();
    assert_eq!(reply.body().len(), body.len());
    drop(channels);
    server.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Item 8: caps on connections and handshakes, running out of descriptors
// ---------------------------------------------------------------------------------------------

/// Captures this thread's logs at INFO and above.
fn capture_logs() -> (LogCapture, tracing::subscriber::DefaultGuard) {
    support::logs::capture_logs(tracing::Level::INFO)
}

async fn assert_echo(channel: &rpc_core::Channel) {
    let reply = channel
        .unary(Request::new("demo.Echo/Echo", "hi"))
        .await
        .unwrap();
    assert_eq!(&reply.body()[..], b"hi");
}

/// At `max_connections` the server stops accepting, says so once, and takes the next connection
/// as soon as one closes.
#[tokio::test(start_paused = true)]
async fn connections_over_the_cap_wait_until_one_closes() {
    let (logs, _guard) = capture_logs();
    let server = Server::builder().max_connections(2).add_service(echo());
    let stats = server.stats();
    let server = serve(server, MemoryListener::bind("cap-connections").unwrap());
    let ep = Endpoint::memory("cap-connections").connect_timeout(Duration::from_secs(60));
    let first = ep.connect().await.unwrap();
    let second = ep.connect().await.unwrap();
    assert_echo(&first).await;
    let third = tokio::spawn({
        let ep = ep.clone();
        async move { ep.connect().await }
    });
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(!third.is_finished(), "a third connection was served");
    assert_eq!(stats.connections(), 2);
    assert_echo(&second).await;
    assert_eq!(logs.count("connection limit reached"), 1);

    drop(first);
    let third = tokio::time::timeout(Duration::from_secs(1), third)
        .await
        .expect("the third connection was not served after one closed")
        .unwrap()
        .unwrap();
    assert_echo(&third).await;
    assert_eq!(logs.count("below the connection limit again"), 1);
    drop((second, third));
    server.shutdown().await;
}

/// At `max_handshaking` (peers that connect and say nothing) the server stops accepting, says so
/// once, and serves again when the silent ones time out; established connections are served all
/// along.
#[tokio::test(start_paused = true)]
async fn handshakes_over_the_cap_wait_for_a_slot() {
    let (logs, _guard) = capture_logs();
    let server = Server::builder()
        .max_handshaking(2)
        .handshake_timeout(Duration::from_secs(5))
        .add_service(echo());
    let stats = server.stats();
    let server = serve(server, MemoryListener::bind("cap-handshakes").unwrap());
    let ep = Endpoint::memory("cap-handshakes").connect_timeout(Duration::from_secs(60));
    let established = ep.connect().await.unwrap();
    let silent = MemoryConnector::new("cap-handshakes");
    let (quiet1, _) = silent.connect().await.unwrap();
    let (quiet2, _) = silent.connect().await.unwrap();
    eventually(POLL_LIMIT, "two handshakes in progress", || async {
        stats.handshaking() == 2
    })
    .await;
    let fresh = tokio::spawn({
        let ep = ep.clone();
        async move { ep.connect().await }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!fresh.is_finished(), "served past the handshake cap");
    assert_echo(&established).await;

    // The silent peers time out; the fresh client is served.
    let fresh = tokio::time::timeout(Duration::from_secs(10), fresh)
        .await
        .expect("the fresh client was not served after the silent ones timed out")
        .unwrap()
        .unwrap();
    assert_echo(&fresh).await;
    assert_eq!(logs.count("handshake limit reached"), 1);
    drop((quiet1, quiet2, established, fresh));
    server.shutdown().await;
}

/// A graceful shutdown closes connections still in their handshake at once, instead of waiting for
/// the handshake timeout (or the drain timeout) on peers that say nothing.
#[tokio::test(start_paused = true)]
async fn shutdown_does_not_wait_for_silent_connections() {
    let server = Server::builder()
        .handshake_timeout(Duration::from_secs(60))
        .add_service(echo());
    let stats = server.stats();
    let server = serve(server, MemoryListener::bind("silent-at-shutdown").unwrap());
    let (quiet, _) = MemoryConnector::new("silent-at-shutdown")
        .connect()
        .await
        .unwrap();
    eventually(POLL_LIMIT, "a handshake in progress", || async {
        stats.handshaking() == 1
    })
    .await;
    let t0 = tokio::time::Instant::now();
    server.shutdown().await;
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    assert_eq!(stats.connections(), 0);
    drop(quiet);
}

/// A listener that fails with `EMFILE` while told to, counting its attempts.
struct OutOfFds {
    inner: MemoryListener,
    failing: Arc<AtomicBool>,
    attempts: Arc<AtomicUsize>,
}

impl Listener for OutOfFds {
    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<(BoxIo, PeerAddr)>> {
        if self.failing.load(Ordering::SeqCst) {
            self.attempts.fetch_add(1, Ordering::SeqCst);
            return Poll::Ready(Err(io::Error::from_raw_os_error(24)));
        }
        self.inner.poll_accept(cx)
    }

    fn local_addr(&self) -> io::Result<PeerAddr> {
        self.inner.local_addr()
    }
}

/// Out of file descriptors, the server backs off (a few dozen attempts in 10 s, not hundreds),
/// logs it once, keeps serving its connections, and serves new clients once descriptors free up.
#[tokio::test(start_paused = true)]
async fn out_of_file_descriptors_backs_off_and_keeps_serving() {
    let (logs, _guard) = capture_logs();
    let failing = Arc::new(AtomicBool::new(false));
    let attempts = Arc::new(AtomicUsize::new(0));
    let listener = OutOfFds {
        inner: MemoryListener::bind("out-of-fds").unwrap(),
        failing: failing.clone(),
        attempts: attempts.clone(),
    };
    let server = serve(Server::builder().add_service(echo()), listener);
    let ep = Endpoint::memory("out-of-fds").connect_timeout(Duration::from_secs(60));
    let open = ep.connect().await.unwrap();

    // Descriptors run out; a new client waits in the backlog, and every accept fails.
    failing.store(true, Ordering::SeqCst);
    let fresh = tokio::spawn({
        let ep = ep.clone();
        async move { ep.connect().await }
    });
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_echo(&open).await;
    }
    let tries = attempts.load(Ordering::SeqCst);
    assert!((5..=40).contains(&tries), "{tries} accept attempts in 10 s");
    assert_eq!(logs.count("out of file descriptors"), 1);
    assert!(!fresh.is_finished());

    // Descriptors free up: the waiting client is served within one backoff step.
    failing.store(false, Ordering::SeqCst);
    let fresh = tokio::time::timeout(Duration::from_secs(1), fresh)
        .await
        .expect("a new client was not served once descriptors freed up")
        .unwrap()
        .unwrap();
    assert_echo(&fresh).await;
    assert_eq!(logs.count("accepting again"), 1);
    drop((open, fresh));
    server.shutdown().await;
}

#[test]
fn stats_start_at_zero() {
    let stats: ServerStats = Server::builder().stats();
    assert_eq!((stats.connections(), stats.buffer_bytes()), (0, 0));
}
