//! How calls end when connections end (issue 12, items 2 and 3): a graceful shutdown while the
//! client is still sending loses nothing (a lingering close, never a reset), and calls whose client
//! went away or gave up stop running, together with the calls they made.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use rpc_core::protocol::{Frame, GoAwayCode};
use rpc_core::server::RawService;
use rpc_core::transport::memory::MemoryListener;
use rpc_core::{Code, Context, Delivery, Endpoint, Request, Response, Server};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

mod support;

#[path = "support/raw.rs"]
#[allow(dead_code, unreachable_pub)]
mod raw;

use raw::{client_hello, request, send, End, FrameReader};
use support::poll::eventually;
use support::{echo, serve, DropSignal};

/// How long a test waits for a condition it polls for.
const POLL_LIMIT: Duration = Duration::from_secs(20);

/// A service whose `Hold` handler never finishes: it reports when it starts (with its body), and
/// when it is dropped and when its call's cancellation token fires (each with its body).
#[derive(Clone)]
struct Holds {
    started: mpsc::UnboundedSender<String>,
    dropped: mpsc::UnboundedSender<String>,
    cancelled: mpsc::UnboundedSender<String>,
}

impl Holds {
    fn service(self, name: &str) -> RawService {
        RawService::new(name).method("Hold", move |req: Request| {
            let me = self.clone();
            async move {
                let body = String::from_utf8_lossy(req.body()).into_owned();
                let (tx, rx) = oneshot::channel();
                let _guard = DropSignal(Some(tx));
                let dropped = me.dropped.clone();
                let name = body.clone();
                tokio::spawn(async move {
                    let _ = rx.await;
                    let _ = dropped.send(name);
                });
                // The token, taken while the call runs, outlives the handler in a task of its own.
                let token = Context::current()
                    .and_then(|c| c.cancellation())
                    .expect("a served call has a cancellation token");
                let cancelled = me.cancelled.clone();
                let name = body.clone();
                tokio::spawn(async move {
                    token.cancelled().await;
                    let _ = cancelled.send(name);
                });
                let _ = me.started.send(body);
                std::future::pending::<()>().await;
                Ok(Response::default())
            }
        })
    }
}

struct Observed {
    started: mpsc::UnboundedReceiver<String>,
    dropped: mpsc::UnboundedReceiver<String>,
    cancelled: mpsc::UnboundedReceiver<String>,
}

fn holds() -> (Holds, Observed) {
    let (started, started_rx) = mpsc::unbounded_channel();
    let (dropped, dropped_rx) = mpsc::unbounded_channel();
    let (cancelled, cancelled_rx) = mpsc::unbounded_channel();
    (
        Holds {
            started,
            dropped,
            cancelled,
        },
        Observed {
            started: started_rx,
            dropped: dropped_rx,
            cancelled: cancelled_rx,
        },
    )
}

/// Receives `n` names within [`POLL_LIMIT`], sorted.
async fn receive(rx: &mut mpsc::UnboundedReceiver<String>, n: usize, what: &str) -> Vec<String> {
    let mut got = Vec::new();
    while got.len() < n {
        match tokio::time::timeout(POLL_LIMIT, rx.recv()).await {
            Ok(Some(name)) => got.push(name),
            _ => panic!("only {got:?} of {n} {what}"),
        }
    }
    got.sort();
    got
}

// ---------------------------------------------------------------------------------------------
// Item 2: graceful shutdown while the client is still sending
// ---------------------------------------------------------------------------------------------

const ECHO: &str = "demo.Echo/Echo";
/// Bytes the client writes at full speed after the shutdown starts, before it slows down.
const BURST_AFTER_SHUTDOWN: usize = 1 << 20;
/// Bytes the client writes at full speed before the shutdown starts, before it slows down: what
/// the server has not read yet when it sends its go-away counts toward its lingering-close bound
/// (4 MiB), so the client stays well within it whatever the machine's speed.
const BURST_BEFORE_SHUTDOWN: usize = 1 << 20;

/// A client pipelines requests without pause; the server is shut down after 200 responses. The
/// client keeps sending (1 MiB at full speed before and after, a trickle otherwise) and reads
/// everything only later.
/// Every call must end with its response or be covered by the go-away's last call id (not
/// processed), and the stream must end cleanly: a reset would let the kernel destroy the go-away
/// and responses the client had not read yet.
#[tokio::test]
async fn shutdown_while_the_client_sends_answers_or_disowns_every_call() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut server = serve(Server::builder().add_service(echo()), listener);
    let stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (rd, mut wr) = stream.into_split();
    send(&mut wr, &client_hello()).await.unwrap();
    let mut reader = FrameReader::new(rd);
    reader.read_hello().await;

    let written = Arc::new(AtomicUsize::new(0));
    let shutdown_at = Arc::new(AtomicUsize::new(usize::MAX));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (written, shutdown_at, stop) = (written.clone(), shutdown_at.clone(), stop.clone());
        tokio::spawn(async move {
            let body = [b'x'; 512];
            let mut batch = BytesMut::new();
            let mut id = 0u32;
            while !stop.load(Ordering::SeqCst) {
                let total = written.load(Ordering::SeqCst);
                let started = shutdown_at.load(Ordering::SeqCst);
                let burst = if started == usize::MAX {
                    total < BURST_BEFORE_SHUTDOWN
                } else {
                    total.saturating_sub(started) < BURST_AFTER_SHUTDOWN
                };
                batch.clear();
                for _ in 0..if burst { 32 } else { 1 } {
                    id += 1;
                    request(&mut batch, id, ECHO, &body);
                }
                send(&mut wr, &batch).await.map_err(|e| (id, e))?;
                written.fetch_add(batch.len(), Ordering::SeqCst);
                if !burst {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
            Ok::<_, (u32, std::io::Error)>((id, wr))
        })
    };

    let mut answered = Vec::new();
    let mut goaway = None;
    let mut stop_server = server.stop.take();
    while let Some(frame) = reader.next_frame().await {
        match frame {
            Frame::Response(r) => {
                assert_eq!(Code::from_u8(r.code), Code::Ok, "call {}", r.call_id);
                answered.push(r.call_id);
                if answered.len() == 200 {
                    if let Some(stop) = stop_server.take() {
                        shutdown_at.store(written.load(Ordering::SeqCst), Ordering::SeqCst);
                        stop.send(()).unwrap();
                        // Read nothing while the client sends on: whatever the server wrote
                        // meanwhile waits, unread, in the socket buffers.
                        eventually(POLL_LIMIT, "the client to send on", || async {
                            let since =
                                written.load(Ordering::SeqCst) - shutdown_at.load(Ordering::SeqCst);
                            since >= BURST_AFTER_SHUTDOWN || writer.is_finished()
                        })
                        .await;
                    }
                }
            }
            Frame::GoAway(g) => {
                assert!(goaway.is_none(), "two GOAWAYs");
                goaway = Some(g);
            }
            other => panic!("unexpected frame {other:?}"),
        }
    }
    stop.store(true, Ordering::SeqCst);
    let end = reader.end();
    let sent = writer.await.unwrap();

    assert_eq!(
        end,
        Some(End::Eof),
        "the server reset the connection instead of closing it"
    );
    let g = goaway.expect("the server's GOAWAY was lost");
    assert_eq!(g.code, GoAwayCode::NoError);
    let expected: Vec<u32> = (1..=g.last_call_id).collect();
    assert_eq!(
        answered, expected,
        "every call up to the go-away's last call id, and none after, has its response"
    );
    let (last_sent, wr) = sent.unwrap_or_else(|(id, e)| {
        panic!("the server stopped reading the client (write of call {id} failed: {e})")
    });
    assert!(
        last_sent > g.last_call_id,
        "the client was still sending after the go-away"
    );
    drop(wr);
    tokio::time::timeout(POLL_LIMIT, server.join)
        .await
        .expect("server did not stop")
        .unwrap()
        .unwrap();
}

/// The same through a `Channel`: thousands of calls, the server shut down in the middle. Each
/// call ends with its response or fails as never processed; none is left in doubt
/// (`Delivery::Sent`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_under_load_leaves_no_call_in_doubt() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = serve(Server::builder().add_service(echo()), listener);
    let channel = Endpoint::tcp(addr).connect().await.unwrap();
    let answered = Arc::new(AtomicUsize::new(0));
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..4_000u32 {
        let (channel, answered) = (channel.clone(), answered.clone());
        calls.spawn(async move {
            let body = format!("call-{i}");
            let result = channel.unary(Request::new(ECHO, body.clone())).await;
            answered.fetch_add(1, Ordering::SeqCst);
            (body, result)
        });
    }
    eventually(POLL_LIMIT, "500 calls answered", || async {
        answered.load(Ordering::SeqCst) >= 500
    })
    .await;
    server.shutdown().await;
    let (mut ok, mut unprocessed) = (0, 0);
    while let Some(joined) = calls.join_next().await {
        let (body, result) = joined.unwrap();
        match result {
            Ok(reply) => {
                assert_eq!(reply.body(), body.as_bytes());
                ok += 1;
            }
            Err(s) => {
                assert_eq!(s.code(), Code::Unavailable, "{s:?}");
                assert!(s.delivery().never_processed(), "call left in doubt: {s:?}");
                unprocessed += 1;
            }
        }
    }
    assert!(ok >= 500, "{ok} answered, {unprocessed} not processed");
}

// ---------------------------------------------------------------------------------------------
// Item 3: calls whose client went away, and the calls they made
// ---------------------------------------------------------------------------------------------

/// A client closes its connection with three calls in flight: their handlers are dropped and
/// their cancellation tokens fire, as on CANCEL.
#[tokio::test]
async fn a_client_that_goes_away_takes_its_calls_with_it() {
    let (holds, mut seen) = holds();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = serve(
        Server::builder().add_service(holds.service("demo.Slow")),
        listener,
    );
    let stream = TcpStream::connect(addr).await.unwrap();
    let (rd, mut wr) = stream.into_split();
    let mut out = client_hello();
    for (id, name) in [(1, "a"), (2, "b"), (3, "c")] {
        request(&mut out, id, "demo.Slow/Hold", name.as_bytes());
    }
    send(&mut wr, &out).await.unwrap();
    let mut reader = FrameReader::new(rd);
    reader.read_hello().await;
    assert_eq!(
        receive(&mut seen.started, 3, "started").await,
        ["a", "b", "c"]
    );

    // The client process goes away: its socket closes.
    drop((reader, wr));
    assert_eq!(
        receive(&mut seen.dropped, 3, "dropped").await,
        ["a", "b", "c"]
    );
    assert_eq!(
        receive(&mut seen.cancelled, 3, "cancelled").await,
        ["a", "b", "c"]
    );
    server.shutdown().await;
}

/// How the client of [`cascade`] gives up on its call to the front.
#[derive(Clone, Copy, Debug)]
enum GiveUp {
    /// Its `Channel` drops the call (a CANCEL).
    Cancel,
    /// Its process goes away: the socket closes with the call in flight, nothing else sent.
    Disconnect,
}

/// A front service calls a backend twice while handling one call: once awaiting the call, once
/// from a task it spawned in the call's context scope. When the client gives up on its call to
/// the front, both backend calls are cancelled: their handlers are dropped and the spawned one
/// ends `Cancelled`.
async fn cascade(backend_name: &'static str, give_up: GiveUp) {
    let (holds, mut seen) = holds();
    let backend = serve(
        Server::builder().add_service(holds.service("demo.Backend")),
        MemoryListener::bind(backend_name).unwrap(),
    );
    let backend_channel = Endpoint::memory(backend_name).connect_lazy();
    let (spawned_tx, spawned_rx) = oneshot::channel();
    let spawned_tx = Arc::new(Mutex::new(Some(spawned_tx)));
    let front_svc = RawService::new("demo.Front").method("Fan", move |_req: Request| {
        let backend = backend_channel.clone();
        let spawned_tx = spawned_tx.clone();
        async move {
            let ctx = Context::current().expect("a handler runs in its call's context");
            let for_task = backend.clone();
            tokio::spawn(ctx.scope(async move {
                let result = for_task
                    .unary(Request::new("demo.Backend/Hold", "spawned"))
                    .await;
                if let Some(tx) = spawned_tx.lock().unwrap().take() {
                    let _ = tx.send(result);
                }
            }));
            backend
                .unary(Request::new("demo.Backend/Hold", "awaited"))
                .await
        }
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let front = serve(Server::builder().add_service(front_svc), listener);
    match give_up {
        GiveUp::Cancel => {
            let client = Endpoint::tcp(addr).connect().await.unwrap();
            let call =
                tokio::spawn(async move { client.unary(Request::new("demo.Front/Fan", "")).await });
            assert_eq!(
                receive(&mut seen.started, 2, "started").await,
                ["awaited", "spawned"]
            );
            call.abort(); // the client gives up on its call to the front
        }
        GiveUp::Disconnect => {
            let (rd, mut wr) = TcpStream::connect(addr).await.unwrap().into_split();
            let mut out = client_hello();
            request(&mut out, 1, "demo.Front/Fan", b"");
            send(&mut wr, &out).await.unwrap();
            let mut reader = FrameReader::new(rd);
            reader.read_hello().await;
            assert_eq!(
                receive(&mut seen.started, 2, "started").await,
                ["awaited", "spawned"]
            );
            drop((reader, wr)); // the client process goes away
        }
    }
    assert_eq!(
        receive(&mut seen.dropped, 2, "dropped").await,
        ["awaited", "spawned"]
    );
    let spawned = tokio::time::timeout(POLL_LIMIT, spawned_rx)
        .await
        .expect("the spawned call did not end")
        .unwrap()
        .expect_err("the spawned call was cancelled");
    assert_eq!(spawned.code(), Code::Cancelled, "{spawned:?}");
    assert_eq!(spawned.delivery(), Delivery::Sent);
    front.shutdown().await;
    backend.shutdown().await;
}

#[tokio::test]
async fn cancelling_a_call_cancels_the_calls_it_made() {
    cascade("cascade-backend", GiveUp::Cancel).await;
}

/// Issue 12, item 3: a client that disconnects (no CANCEL) takes its handlers' outgoing calls
/// with them, also those made from spawned work.
#[tokio::test]
async fn a_client_that_disconnects_cancels_the_calls_its_calls_made() {
    cascade("cascade-backend-disconnect", GiveUp::Disconnect).await;
}
