//! Behaviour of calls end to end: concurrency, deadlines, cancellation, one-way calls, shutdown,
//! reconnection and every transport. Timing assertions only run on tokio's paused clock.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rpc_core::server::RawService;
use rpc_core::transport::memory::MemoryListener;
use rpc_core::transport::Listener;
use rpc_core::{
    Channel, Code, Context, Delivery, Endpoint, Metadata, Request, Response, Server, Status,
};
use tokio::sync::{mpsc, oneshot, Barrier};
use tokio::time::Instant;

mod support;

use support::{serve, Running};

fn echo() -> RawService {
    RawService::new("demo.Echo").method(
        "Echo",
        |req| async move { Ok(Response::new(req.into_body())) },
    )
}

/// Sends `()` on the channel when dropped: tells a test that a handler future was dropped.
struct DropSignal(Option<oneshot::Sender<()>>);

impl Drop for DropSignal {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

/// Waits for `cond` to hold, polling, failing the test after 10 s of real or virtual time.
async fn eventually<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_concurrent_calls_on_one_connection() {
    const N: usize = 10_000;
    // Every handler waits until all N calls have arrived: proof they were all in flight at once.
    let barrier = Arc::new(Barrier::new(N));
    let svc = RawService::new("demo.Echo").method("Echo", move |req| {
        let barrier = barrier.clone();
        async move {
            barrier.wait().await;
            Ok(Response::new(req.into_body()))
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = serve(
        Server::builder()
            .max_concurrent_calls_per_connection(N as u32)
            .add_service(svc),
        listener,
    );
    let channel = Endpoint::tcp(addr)
        .max_concurrent_calls(N)
        .connect()
        .await
        .unwrap();
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..N {
        let channel = channel.clone();
        calls.spawn(async move {
            let body = Bytes::from(format!("call-{i}"));
            let reply = channel
                .unary(Request::new("demo.Echo/Echo", body.clone()))
                .await?;
            assert_eq!(reply.body(), &body, "reply {i} went to the wrong caller");
            Ok::<_, Status>(())
        });
    }
    let mut ok = 0;
    while let Some(res) = calls.join_next().await {
        res.unwrap().unwrap();
        ok += 1;
    }
    assert_eq!(ok, N);
    drop(channel);
    server.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn server_enforces_deadline_and_client_fails_on_time() {
    let (dropped_tx, dropped_rx) = oneshot::channel();
    let dropped_tx = Arc::new(std::sync::Mutex::new(Some(dropped_tx)));
    let svc = RawService::new("demo.Slow").method("Wait", move |_req| {
        let guard = DropSignal(dropped_tx.lock().unwrap().take());
        async move {
            let _guard = guard;
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(Response::default())
        }
    });
    let server = serve(
        Server::builder().add_service(svc),
        MemoryListener::bind("deadline-1").unwrap(),
    );
    let channel = Endpoint::memory("deadline-1").connect().await.unwrap();

    let t0 = Instant::now();
    let err = channel
        .unary(Request::new("demo.Slow/Wait", "").with_timeout(Duration::from_millis(100)))
        .await
        .unwrap_err();
    let waited = t0.elapsed();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err}");
    assert!(
        waited >= Duration::from_millis(100) && waited < Duration::from_millis(105),
        "answered after {waited:?}"
    );
    // The server dropped the handler (deadline enforcement and/or the client's cancel).
    tokio::time::timeout(Duration::from_secs(1), dropped_rx)
        .await
        .unwrap()
        .unwrap();
    drop(channel);
    server.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn server_answers_deadline_exceeded_itself() {
    // A raw client with no timer of its own: whatever arrives is the server's doing.
    use bytes::{BufMut, BytesMut};
    use rpc_core::protocol::{self, Frame, FrameDecoder, Settings};
    use rpc_core::transport::{memory::MemoryConnector, Connector};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let svc = RawService::new("demo.Slow").method("Wait", |_req| async {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Ok(Response::default())
    });
    let server = serve(
        Server::builder().add_service(svc),
        MemoryListener::bind("deadline-2").unwrap(),
    );
    let (mut io, _) = MemoryConnector::new("deadline-2").connect().await.unwrap();
    let settings = Settings::protocol_default();
    let mut out = BytesMut::new();
    out.put_slice(&protocol::PREFACE);
    protocol::encode_settings(&mut out, &settings);
    protocol::encode_request(
        &mut out,
        1,
        0,
        b"demo.Slow/Wait",
        0,
        50_000,
        &Metadata::new(),
        b"",
    );
    let t0 = Instant::now();
    io.write_all(&out).await.unwrap();

    let decoder = FrameDecoder::new(&settings);
    let mut buf = BytesMut::new();
    let mut preface_seen = false;
    let response = loop {
        if !preface_seen && buf.len() >= protocol::PREFACE_LEN {
            let _ = buf.split_to(protocol::PREFACE_LEN);
            preface_seen = true;
        }
        if preface_seen {
            match decoder.decode(&mut buf).unwrap() {
                Some(Frame::Response(r)) => break r,
                Some(_) => continue,
                None => {}
            }
        }
        assert!(
            io.read_buf(&mut buf).await.unwrap() > 0,
            "server closed early"
        );
    };
    assert_eq!(response.call_id, 1);
    assert_eq!(Code::from_u8(response.code), Code::DeadlineExceeded);
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(50) && waited < Duration::from_millis(55),
        "{waited:?}"
    );
    drop(io);
    server.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn nested_calls_inherit_the_remaining_deadline() {
    // B reports the deadline it sees; A waits 300 ms, then calls B without setting any deadline.
    let b = RawService::new("demo.B")
        .method("Remaining", |_req| async {
            let left = Context::current()
                .and_then(|c| c.remaining())
                .expect("B has a deadline");
            Ok(Response::new(left.as_micros().to_string()))
        })
        .method("Slow", |_req| async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(Response::default())
        });
    let server_b = serve(
        Server::builder().add_service(b),
        MemoryListener::bind("nested-b").unwrap(),
    );
    let to_b = Endpoint::memory("nested-b").connect_lazy();
    let a = RawService::new("demo.A").method("Relay", move |req: Request| {
        let to_b = to_b.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let method = String::from_utf8(req.body().to_vec()).unwrap();
            to_b.unary(Request::new(format!("demo.B/{method}"), ""))
                .await
        }
    });
    let server_a = serve(
        Server::builder().add_service(a),
        MemoryListener::bind("nested-a").unwrap(),
    );
    let to_a = Endpoint::memory("nested-a").connect().await.unwrap();

    let reply = to_a
        .unary(Request::new("demo.A/Relay", "Remaining").with_timeout(Duration::from_secs(1)))
        .await
        .unwrap();
    let left_us: u64 = String::from_utf8(reply.body().to_vec())
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (690_000..=700_000).contains(&left_us),
        "B saw {left_us} us left; expected about 700 ms"
    );

    // When B is too slow, A's caller gets DeadlineExceeded at its own deadline, not B's.
    let t0 = Instant::now();
    let err = to_a
        .unary(Request::new("demo.A/Relay", "Slow").with_timeout(Duration::from_secs(1)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded);
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_secs(1) && waited < Duration::from_millis(1010),
        "{waited:?}"
    );
    drop(to_a);
    server_a.shutdown().await;
    server_b.shutdown().await;
}

#[tokio::test]
async fn cancellation_reaches_the_handler() {
    let (started_tx, mut started_rx) = mpsc::unbounded_channel();
    let (dropped_tx, dropped_rx) = oneshot::channel();
    let dropped_tx = Arc::new(std::sync::Mutex::new(Some(dropped_tx)));
    let svc = RawService::new("demo.Slow").method("Wait", move |_req| {
        let guard = DropSignal(dropped_tx.lock().unwrap().take());
        let started_tx = started_tx.clone();
        async move {
            let _guard = guard;
            let _ = started_tx.send(());
            std::future::pending::<()>().await;
            Ok(Response::default())
        }
    });
    let server = serve(
        Server::builder().add_service(svc),
        MemoryListener::bind("cancel-1").unwrap(),
    );
    let channel = Endpoint::memory("cancel-1").connect().await.unwrap();
    let call = {
        let channel = channel.clone();
        tokio::spawn(async move { channel.unary(Request::new("demo.Slow/Wait", "")).await })
    };
    started_rx.recv().await.unwrap();
    assert_eq!(channel.in_flight(), 1);
    call.abort(); // the caller gives up: its future is dropped
    tokio::time::timeout(Duration::from_secs(10), dropped_rx)
        .await
        .expect("handler was not dropped")
        .unwrap();
    eventually("the in-flight slot to be freed", || async {
        channel.in_flight() == 0
    })
    .await;
    drop(channel);
    server.shutdown().await;
}

#[tokio::test]
async fn one_way_calls_run_without_a_response() {
    let (seen_tx, mut seen_rx) = mpsc::unbounded_channel();
    let svc = RawService::new("demo.Events").method("Publish", move |req: Request| {
        let seen_tx = seen_tx.clone();
        async move {
            let _ = seen_tx.send(req.body().clone());
            Ok(Response::new("ignored"))
        }
    });
    let server = serve(
        Server::builder().add_service(svc),
        MemoryListener::bind("oneway-1").unwrap(),
    );
    let channel = Endpoint::memory("oneway-1").connect().await.unwrap();
    for i in 0..3 {
        let reply = channel
            .unary(Request::new("demo.Events/Publish", format!("event-{i}")).with_one_way(true))
            .await
            .unwrap();
        assert!(
            reply.body().is_empty(),
            "one-way calls have no response body"
        );
    }
    for i in 0..3 {
        let got = tokio::time::timeout(Duration::from_secs(10), seen_rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, Bytes::from(format!("event-{i}")));
    }
    // A one-way call to an unknown method is dropped quietly; the connection stays healthy.
    channel
        .unary(Request::new("demo.Events/Nope", "").with_one_way(true))
        .await
        .unwrap();
    assert_eq!(channel.in_flight(), 0);
    drop(channel);
    server.shutdown().await;
}

#[tokio::test]
async fn graceful_shutdown_lets_in_flight_calls_finish() {
    let (started_tx, mut started_rx) = mpsc::unbounded_channel();
    let release = Arc::new(tokio::sync::Notify::new());
    let release2 = release.clone();
    let svc = echo().method("Hold", move |req: Request| {
        let started_tx = started_tx.clone();
        let release = release2.clone();
        async move {
            let _ = started_tx.send(());
            release.notified().await;
            Ok(Response::new(req.into_body()))
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = serve(Server::builder().add_service(svc), listener);
    let channel = Endpoint::tcp(addr).connect().await.unwrap();
    let held = {
        let channel = channel.clone();
        tokio::spawn(async move { channel.unary(Request::new("demo.Echo/Hold", "held")).await })
    };
    started_rx.recv().await.unwrap();

    let Running { stop, join } = server;
    stop.unwrap().send(()).unwrap();
    // The listener closes: a new channel cannot connect.
    eventually("the listener to close", || async {
        let fresh = Endpoint::tcp(addr).connect_timeout(Duration::from_millis(500));
        fresh.connect().await.is_err()
    })
    .await;
    // The call in flight still completes.
    assert!(!held.is_finished());
    release.notify_one();
    let reply = held.await.unwrap().unwrap();
    assert_eq!(&reply.body()[..], b"held");
    join.await.unwrap().unwrap();
    // After the go-away the old channel does not send more calls to that server.
    let err = channel
        .unary(Request::new("demo.Echo/Echo", "late"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert!(err.delivery().never_processed(), "{err:?}");
}

#[tokio::test(start_paused = true)]
async fn drain_timeout_closes_stuck_calls() {
    let (started_tx, mut started_rx) = mpsc::unbounded_channel();
    let svc = RawService::new("demo.Stuck").method("Forever", move |_req| {
        let started_tx = started_tx.clone();
        async move {
            let _ = started_tx.send(());
            std::future::pending::<()>().await;
            Ok(Response::default())
        }
    });
    let server = serve(
        Server::builder()
            .drain_timeout(Duration::from_secs(2))
            .add_service(svc),
        MemoryListener::bind("drain-1").unwrap(),
    );
    let channel = Endpoint::memory("drain-1").connect().await.unwrap();
    let stuck = {
        let channel = channel.clone();
        tokio::spawn(async move { channel.unary(Request::new("demo.Stuck/Forever", "")).await })
    };
    started_rx.recv().await.unwrap();
    let t0 = Instant::now();
    server.shutdown().await;
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_millis(2100),
        "{took:?}"
    );
    let err = stuck.await.unwrap().unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert_eq!(err.delivery(), Delivery::Sent);
}

#[tokio::test]
async fn channel_reconnects_after_server_restart() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = serve(Server::builder().add_service(echo()), listener);
    let channel = Endpoint::tcp(addr)
        .backoff(Duration::from_millis(10), Duration::from_millis(100))
        .connect_lazy();
    channel
        .unary(Request::new("demo.Echo/Echo", "1"))
        .await
        .unwrap();

    server.shutdown().await;
    let err = channel
        .unary(Request::new("demo.Echo/Echo", "2"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert!(err.delivery().never_processed(), "{err:?}");

    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let server = serve(Server::builder().add_service(echo()), listener);
    eventually("the channel to reconnect", || async {
        channel
            .unary(Request::new("demo.Echo/Echo", "3"))
            .await
            .is_ok()
    })
    .await;
    drop(channel);
    server.shutdown().await;
}

#[cfg(unix)]
#[tokio::test]
async fn unix_socket_transport() {
    let dir = std::env::temp_dir().join(format!("rpc-core-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("echo.sock");
    let _ = std::fs::remove_file(&path);
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    let server = serve(Server::builder().add_service(echo()), listener);
    let channel = Endpoint::unix(&path).connect_lazy();
    let reply = channel
        .unary(Request::new("demo.Echo/Echo", "over unix"))
        .await
        .unwrap();
    assert_eq!(&reply.body()[..], b"over unix");
    drop(channel);
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn status_and_metadata_cross_the_wire_unchanged() {
    let svc = RawService::new("demo.Meta")
        .method("Fail", |_req| async {
            let mut md = Metadata::new();
            md.insert("retry-after-ms", "250");
            md.insert("bin", Bytes::from_static(&[0, 255, 7]));
            Err(Status::failed_precondition("stock is frozen: ünïcode ok").with_metadata(md))
        })
        .method("Context", |req: Request| async move {
            let ctx = Context::current().unwrap();
            assert_eq!(ctx.call_id(), req.context().call_id());
            let mut md = Metadata::new();
            md.insert(
                "peer-seen",
                ctx.peer().map(|p| p.to_string()).unwrap_or_default(),
            );
            md.insert(
                "echo-caller",
                ctx.metadata().get("caller").cloned().unwrap_or_default(),
            );
            Ok(Response::with_metadata(Bytes::new(), md))
        });
    let server = serve(
        Server::builder().add_service(svc),
        MemoryListener::bind("meta-1").unwrap(),
    );
    let channel = Endpoint::memory("meta-1").connect_lazy();
    let err = channel
        .unary(Request::new("demo.Meta/Fail", ""))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(err.message(), "stock is frozen: ünïcode ok");
    assert_eq!(err.metadata().get_str("retry-after-ms"), Some("250"));
    assert_eq!(
        err.metadata().get("bin").map(|b| &b[..]),
        Some(&[0, 255, 7][..])
    );

    let mut req = Request::new("demo.Meta/Context", "");
    req.metadata_mut().insert("caller", "order-center");
    let reply = channel.unary(req).await.unwrap();
    assert_eq!(
        reply.metadata().get_str("echo-caller"),
        Some("order-center")
    );
    assert!(reply
        .metadata()
        .get_str("peer-seen")
        .unwrap()
        .starts_with("memory:meta-1"));
    drop(channel);
    server.shutdown().await;
}

#[tokio::test]
async fn message_size_limits_fail_locally_or_with_a_status() {
    let server = serve(
        Server::builder()
            .max_frame_size(64 * 1024)
            .add_service(echo()),
        MemoryListener::bind("size-1").unwrap(),
    );
    // 1 MiB responses need a client that accepts them; requests must fit the server's 64 KiB.
    let channel = Endpoint::memory("size-1").connect().await.unwrap();
    let big = Bytes::from(vec![7u8; 60 * 1024]);
    let reply = channel
        .unary(Request::new("demo.Echo/Echo", big.clone()))
        .await
        .unwrap();
    assert_eq!(reply.body(), &big);

    let too_big = Bytes::from(vec![7u8; 100 * 1024]);
    let err = channel
        .unary(Request::new("demo.Echo/Echo", too_big))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert_eq!(err.delivery(), Delivery::NotSent);
    assert!(err.message().contains("max frame size"), "{err}");
    // The connection is unaffected.
    channel
        .unary(Request::new("demo.Echo/Echo", "small"))
        .await
        .unwrap();
    drop(channel);
    server.shutdown().await;
}

#[tokio::test]
async fn server_wide_limit_spans_connections() {
    let (started_tx, mut started_rx) = mpsc::unbounded_channel();
    let release = Arc::new(tokio::sync::Notify::new());
    let r2 = release.clone();
    let svc = echo().method("Hold", move |_req| {
        let started_tx = started_tx.clone();
        let release = r2.clone();
        async move {
            let _ = started_tx.send(());
            release.notified().await;
            Ok(Response::default())
        }
    });
    let server = serve(
        Server::builder().max_concurrent_calls(2).add_service(svc),
        MemoryListener::bind("global-1").unwrap(),
    );
    let a = Endpoint::memory("global-1").connect_lazy();
    let b = Endpoint::memory("global-1").connect_lazy();
    let mut held = Vec::new();
    for ch in [&a, &b] {
        let ch = ch.clone();
        held.push(tokio::spawn(async move {
            ch.unary(Request::new("demo.Echo/Hold", "")).await
        }));
        started_rx.recv().await.unwrap();
    }
    let err = a
        .unary(Request::new("demo.Echo/Echo", "x"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err}");
    release.notify_waiters();
    for h in held {
        h.await.unwrap().unwrap();
    }
    a.unary(Request::new("demo.Echo/Echo", "x")).await.unwrap();
    drop((a, b));
    server.shutdown().await;
}

#[tokio::test]
async fn channel_is_a_tower_service() {
    use tower::Service;
    let server = serve(
        Server::builder().add_service(echo()),
        MemoryListener::bind("tower-1").unwrap(),
    );
    let mut channel: Channel = Endpoint::memory("tower-1").connect_lazy();
    std::future::poll_fn(|cx| channel.poll_ready(cx))
        .await
        .unwrap();
    let reply = channel
        .call(Request::new("demo.Echo/Echo", "via tower"))
        .await
        .unwrap();
    assert_eq!(&reply.body()[..], b"via tower");
    drop(channel);
    server.shutdown().await;
}

#[tokio::test]
async fn unreachable_server_fails_fast_with_not_sent() {
    // Bind then drop, so the port is (very likely) closed.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let channel = Endpoint::tcp(addr)
        .backoff(Duration::from_secs(60), Duration::from_secs(60))
        .connect_lazy();
    let calls = Arc::new(AtomicUsize::new(0));
    for _ in 0..3 {
        let err = channel
            .unary(Request::new("demo.Echo/Echo", ""))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unavailable);
        assert_eq!(err.delivery(), Delivery::NotSent);
        calls.fetch_add(1, Ordering::Relaxed);
    }
    assert_eq!(
        channel.state(),
        rpc_core::client::ChannelState::TransientFailure
    );
}

#[tokio::test(start_paused = true)]
async fn keepalive_detects_a_silent_peer() {
    use bytes::{BufMut, BytesMut};
    use rpc_core::protocol::{self, Settings};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    // A fake server: completes the handshake, then reads and discards everything, never answering
    // and never closing, like a host that vanished behind a partition.
    let mut listener = MemoryListener::bind("silent-1").unwrap();
    let _fake = tokio::spawn(async move {
        let (mut io, _) = std::future::poll_fn(|cx| listener.poll_accept(cx))
            .await
            .unwrap();
        let mut out = BytesMut::new();
        out.put_slice(&protocol::PREFACE);
        protocol::encode_settings(&mut out, &Settings::protocol_default());
        io.write_all(&out).await.unwrap();
        let mut sink = vec![0u8; 4096];
        while let Ok(n) = io.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
        drop(listener);
    });
    let channel = Endpoint::memory("silent-1")
        .keepalive(Duration::from_millis(200), Duration::from_millis(100))
        .connect()
        .await
        .unwrap();
    let t0 = Instant::now();
    let err = channel
        .unary(Request::new("demo.Echo/Echo", "x"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert_eq!(err.delivery(), Delivery::Sent);
    assert!(err.message().contains("keepalive"), "{err}");
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_millis(310),
        "{waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn keepalive_keeps_a_healthy_idle_connection() {
    let server = serve(
        Server::builder().add_service(echo()),
        MemoryListener::bind("alive-1").unwrap(),
    );
    let channel = Endpoint::memory("alive-1")
        .keepalive(Duration::from_millis(100), Duration::from_millis(50))
        .connect()
        .await
        .unwrap();
    // Ten quiet intervals: pings go out and are answered.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(channel.state(), rpc_core::client::ChannelState::Ready);
    channel
        .unary(Request::new("demo.Echo/Echo", "still here"))
        .await
        .unwrap();
    drop(channel);
    server.shutdown().await;
}
