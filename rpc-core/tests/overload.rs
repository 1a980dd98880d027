//! Overload (issue 12, item 10): a server never starts a call whose deadline passed, counting it
//! from the read of the frame, and with `Server::max_queue_delay` refuses calls that waited too
//! long for a handler, before any handler or layer sees them.
//!
//! Deterministic: the in-memory transport on a current-thread runtime with tokio's clock paused.
//! A raw client writes several REQUEST frames in one write, so the server reads them in one
//! batch; the first call's handler holds the connection's task while the clock moves on (what a
//! CPU-bound handler does), so the calls read with it wait behind it, exactly as long as the test
//! says.

#![allow(missing_docs)]

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Waker};
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use rpc_core::protocol::{
    encode_request, encode_settings, flags, Frame, FrameDecoder, ResponseFrame, Settings, PREFACE,
};
use rpc_core::server::RawService;
use rpc_core::transport::memory::{MemoryConnector, MemoryListener};
use rpc_core::transport::{BoxIo, Connector};
use rpc_core::{
    Code, Delivery, Endpoint, Metadata, Request, Response, Server, Status, NOT_PROCESSED_KEY,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod support;

use support::{serve, Running};

/// Holds the current task (here: the connection's, where a handler runs its first poll) while
/// `d` passes on the paused clock, as a handler busy on the CPU for `d` would.
fn stall(d: Duration) {
    let mut advance = std::pin::pin!(tokio::time::advance(d));
    let _ = advance
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()));
}

/// `demo.Work`: `Stall` holds its thread for the milliseconds in its body; `AwaitStall` does the
/// same after one yield, so it finishes on its own task; `Count` counts the calls its handler
/// started.
fn work(started: Arc<AtomicUsize>) -> RawService {
    RawService::new("demo.Work")
        .method("Stall", |req: Request| async move {
            let ms: u64 = std::str::from_utf8(req.body()).unwrap().parse().unwrap();
            stall(Duration::from_millis(ms));
            Ok(Response::new(req.into_body()))
        })
        .method("AwaitStall", |req: Request| async move {
            tokio::task::yield_now().await;
            let ms: u64 = std::str::from_utf8(req.body()).unwrap().parse().unwrap();
            stall(Duration::from_millis(ms));
            Ok(Response::new(req.into_body()))
        })
        .method("Count", move |req: Request| {
            started.fetch_add(1, Ordering::SeqCst);
            async move { Ok(Response::new(req.into_body())) }
        })
}

fn start(name: &str, builder: Server) -> (Arc<AtomicUsize>, Running) {
    let started = Arc::new(AtomicUsize::new(0));
    let server = serve(
        builder.add_service(work(started.clone())),
        MemoryListener::bind(name).unwrap(),
    );
    (started, server)
}

/// A client speaking raw frames over the in-memory transport.
struct RawClient {
    io: BoxIo,
    rbuf: BytesMut,
    decoder: FrameDecoder,
}

impl RawClient {
    async fn connect(name: &str) -> RawClient {
        let (mut io, _) = MemoryConnector::new(name).connect().await.unwrap();
        let mut out = BytesMut::new();
        out.put_slice(&PREFACE);
        encode_settings(&mut out, &Settings::protocol_default());
        io.write_all(&out).await.unwrap();
        let mut client = RawClient {
            io,
            rbuf: BytesMut::new(),
            decoder: FrameDecoder::new(&Settings::protocol_default()),
        };
        while client.rbuf.len() < PREFACE.len() {
            assert!(client.io.read_buf(&mut client.rbuf).await.unwrap() > 0);
        }
        assert_eq!(&client.rbuf.split_to(PREFACE.len())[..], PREFACE);
        assert!(matches!(client.next_frame().await, Frame::Settings(_)));
        client
    }

    async fn next_frame(&mut self) -> Frame {
        loop {
            if let Some(frame) = self.decoder.decode(&mut self.rbuf).unwrap() {
                return frame;
            }
            let n = self.io.read_buf(&mut self.rbuf).await.unwrap();
            assert!(n > 0, "the server closed the connection");
        }
    }

    /// Writes these calls (id, method, flags, timeout in µs, body) in one write: one read batch.
    async fn send_batch(&mut self, calls: &[(u32, &str, u8, u64, &str)]) {
        let mut out = BytesMut::new();
        for &(id, method, flags, timeout_us, body) in calls {
            let path = format!("demo.Work/{method}");
            let md = Metadata::new();
            encode_request(
                &mut out,
                id,
                flags,
                path.as_bytes(),
                0,
                timeout_us,
                &md,
                body.as_bytes(),
            );
        }
        self.io.write_all(&out).await.unwrap();
    }

    /// The responses to `n` calls, by call id.
    async fn responses(&mut self, n: usize) -> Vec<ResponseFrame> {
        let mut out = Vec::new();
        while out.len() < n {
            match self.next_frame().await {
                Frame::Response(r) => out.push(r),
                other => panic!("expected a RESPONSE, got {other:?}"),
            }
        }
        out.sort_by_key(|r| r.call_id);
        out
    }
}

fn code(r: &ResponseFrame) -> Code {
    Code::from_u8(r.code)
}

fn not_processed(r: &ResponseFrame) -> bool {
    r.metadata.get_str(NOT_PROCESSED_KEY) == Some("1")
}

#[tokio::test(start_paused = true)]
async fn a_call_whose_deadline_passed_while_it_queued_never_starts() {
    let (started, server) = start("overload-deadline", Server::builder());
    let mut client = RawClient::connect("overload-deadline").await;

    // Read together: call 1 holds the connection for 300 ms; call 2 has 100 ms from the read,
    // so its deadline has passed when its turn comes; call 3 has 1 s and still runs; call 4 is
    // one-way with 100 ms: it is dropped unanswered.
    client
        .send_batch(&[
            (1, "Stall", 0, 0, "300"),
            (2, "Count", 0, 100_000, "late"),
            (3, "Count", 0, 1_000_000, "in time"),
            (4, "Count", flags::ONE_WAY, 100_000, "late one-way"),
            (5, "Count", 0, 0, "no deadline"),
        ])
        .await;
    let r = client.responses(4).await;
    assert_eq!(
        r.iter().map(|r| r.call_id).collect::<Vec<_>>(),
        [1, 2, 3, 5]
    );
    assert_eq!(code(&r[0]), Code::Ok);
    assert_eq!(code(&r[1]), Code::DeadlineExceeded, "{:?}", r[1]);
    assert!(not_processed(&r[1]), "{:?}", r[1]);
    assert!(r[1].body.is_empty());
    assert_eq!(code(&r[2]), Code::Ok);
    assert_eq!(&r[2].body[..], b"in time");
    assert_eq!(code(&r[3]), Code::Ok);
    // Calls 3 and 5 ran; 2 and 4 never reached their handler.
    assert_eq!(started.load(Ordering::SeqCst), 2);

    drop(client);
    server.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_call_queued_longer_than_the_max_queue_delay_is_refused_unprocessed() {
    let (started, server) = start(
        "overload-queue",
        Server::builder().max_queue_delay(Duration::from_millis(20)),
    );
    let mut client = RawClient::connect("overload-queue").await;

    // Within the limit: 5 ms behind call 1, call 2 runs.
    client
        .send_batch(&[(1, "Stall", 0, 0, "5"), (2, "Count", 0, 0, "a")])
        .await;
    let r = client.responses(2).await;
    assert!(r.iter().all(|r| code(r) == Code::Ok), "{r:?}");
    assert_eq!(started.load(Ordering::SeqCst), 1);

    // Over it: 50 ms behind call 3, calls 4 and 5 are refused before their handler starts.
    client
        .send_batch(&[
            (3, "Stall", 0, 0, "50"),
            (4, "Count", 0, 0, "b"),
            (5, "Count", 0, 0, "c"),
        ])
        .await;
    let r = client.responses(3).await;
    assert_eq!(code(&r[0]), Code::Ok);
    for refused in &r[1..] {
        assert_eq!(code(refused), Code::ResourceExhausted, "{refused:?}");
        assert!(not_processed(refused), "{refused:?}");
        let msg = String::from_utf8_lossy(&refused.message);
        assert!(msg.contains("max queue delay"), "{msg}");
    }
    assert_eq!(started.load(Ordering::SeqCst), 1, "a refused call started");

    // The 50 ms stall held the whole (single-threaded) runtime: the server's probe measured
    // that, and a read counts it until the probe's next measure, a few ms later. After 30 quiet
    // (virtual) milliseconds the runtime is known to have caught up: a new batch with nothing
    // queued is admitted again.
    tokio::time::sleep(Duration::from_millis(30)).await;
    client.send_batch(&[(6, "Count", 0, 0, "d")]).await;
    let r = client.responses(1).await;
    assert_eq!(code(&r[0]), Code::Ok);
    assert_eq!(started.load(Ordering::SeqCst), 2);

    drop(client);
    server.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn handlers_that_await_are_admitted_only_as_many_as_can_start_within_the_limit() {
    let (_, server) = start(
        "overload-await",
        Server::builder().max_queue_delay(Duration::from_micros(3_500)),
    );
    let mut client = RawClient::connect("overload-await").await;

    // Each handler yields, then holds the thread for 1 ms on its own task. The server has not
    // yet seen what one costs a task queued behind it, so it admits all four; each task learns,
    // as it starts, that it waited 1 ms for every task ahead of it.
    let first: Vec<_> = (1..=4).map(|id| (id, "AwaitStall", 0, 0, "1")).collect();
    client.send_batch(&first).await;
    let r = client.responses(4).await;
    assert!(r.iter().all(|r| code(r) == Code::Ok), "{r:?}");

    // Let the runtime's probe see it idle again, then send six at once: the fourth would start
    // 3 ms after its read (three ahead), within the 3.5 ms limit; the fifth and sixth would wait
    // 4 and 5 ms, so they are refused before their handlers start, not admitted to wait.
    tokio::time::sleep(Duration::from_millis(30)).await;
    let second: Vec<_> = (5..=10).map(|id| (id, "AwaitStall", 0, 0, "1")).collect();
    client.send_batch(&second).await;
    let r = client.responses(6).await;
    let codes: Vec<Code> = r.iter().map(code).collect();
    assert_eq!(
        codes,
        [
            Code::Ok,
            Code::Ok,
            Code::Ok,
            Code::Ok,
            Code::ResourceExhausted,
            Code::ResourceExhausted
        ],
        "{r:?}"
    );
    assert!(r[4..].iter().all(not_processed), "{r:?}");

    drop(client);
    server.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_channel_reads_a_queue_delay_refusal_as_not_processed() {
    let (started, server) = start(
        "overload-channel",
        Server::builder().max_queue_delay(Duration::from_millis(20)),
    );
    let channel = Endpoint::memory("overload-channel")
        .connect()
        .await
        .unwrap();

    // Both calls are queued before the channel's connection task writes, so they leave in one
    // write and arrive in one read.
    let stall = tokio::spawn({
        let channel = channel.clone();
        async move { channel.unary(Request::new("demo.Work/Stall", "50")).await }
    });
    let count = tokio::spawn({
        let channel = channel.clone();
        async move { channel.unary(Request::new("demo.Work/Count", "x")).await }
    });
    stall.await.unwrap().unwrap();
    let refused: Status = count.await.unwrap().unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert_eq!(refused.delivery(), Delivery::Unprocessed, "{refused:?}");
    assert_eq!(started.load(Ordering::SeqCst), 0);

    drop(channel);
    server.shutdown().await;
}
