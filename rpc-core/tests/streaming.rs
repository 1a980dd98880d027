//! Streaming calls of every shape (protocol 1.1, `docs/protocol.md` §17) over the in-memory
//! transport: every message then the trailer, errors after messages, flow control end to end
//! (a reader that stops reading stops the handler, and unary calls go on), cancellation by
//! dropping the stream, the deadline over the whole stream, per-message compression, and calls
//! of the wrong shape. Time is tokio's paused clock: `sleep` returns once every task is idle.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rpc_core::codec::Compression;
use rpc_core::server::RawService;
use rpc_core::transport::memory::MemoryListener;
use rpc_core::{Channel, Code, Endpoint, Metadata, Request, Response, Server, Status};

fn serve(name: &str, server: Server) -> Channel {
    let listener = MemoryListener::bind(name).expect("a free memory address");
    tokio::spawn(server.serve(listener));
    Endpoint::memory(name).connect_lazy()
}

/// `demo.Clock`: `Ticks(n)` streams `tick 1` … `tick n` and ends with `ticks: n` in the trailer;
/// `Fail(n)` streams n ticks then fails; `Echo` is unary.
fn clock() -> RawService {
    let count = |req: &Request| -> u32 {
        std::str::from_utf8(req.body())
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    };
    RawService::new("demo.Clock")
        .server_streaming("Ticks", move |req, mut out| async move {
            let n = count(&req);
            for i in 1..=n {
                out.send(Bytes::from(format!("tick {i}"))).await?;
            }
            let mut md = Metadata::new();
            md.insert("ticks", n.to_string());
            Ok(Response::with_metadata(Bytes::new(), md))
        })
        .server_streaming("Fail", move |req, mut out| async move {
            for i in 1..=count(&req) {
                out.send(Bytes::from(format!("tick {i}"))).await?;
            }
            Err(Status::not_found("no more ticks"))
        })
        .method(
            "Echo",
            |req| async move { Ok(Response::new(req.into_body())) },
        )
}

async fn collect(
    channel: &Channel,
    path: &'static str,
    body: &'static str,
) -> (Vec<Bytes>, Result<(), Status>) {
    let mut stream = match channel.server_streaming(Request::new(path, body)).await {
        Ok(s) => s,
        Err(e) => return (Vec::new(), Err(e)),
    };
    let mut got = Vec::new();
    loop {
        match stream.message().await {
            Ok(Some(m)) => got.push(m),
            Ok(None) => return (got, Ok(())),
            Err(e) => return (got, Err(e)),
        }
    }
}

#[tokio::test]
async fn every_message_arrives_in_order_then_the_trailer() {
    let channel = serve("stream-ticks", Server::builder().add_service(clock()));
    let mut stream = channel
        .server_streaming(Request::new("demo.Clock/Ticks", "500"))
        .await
        .unwrap();
    let mut n = 0;
    while let Some(m) = stream.message().await.unwrap() {
        n += 1;
        assert_eq!(m, format!("tick {n}"));
    }
    assert_eq!(n, 500);
    assert_eq!(
        stream.trailers().and_then(|t| t.get_str("ticks")),
        Some("500")
    );
    // An empty stream is a stream too.
    let (got, end) = collect(&channel, "demo.Clock/Ticks", "0").await;
    assert!(got.is_empty() && end.is_ok());
}

#[tokio::test]
async fn an_error_after_some_messages_ends_the_stream_with_it() {
    let channel = serve("stream-fail", Server::builder().add_service(clock()));
    let (got, end) = collect(&channel, "demo.Clock/Fail", "3").await;
    assert_eq!(got.len(), 3);
    let status = end.unwrap_err();
    assert_eq!(
        (status.code(), status.message()),
        (Code::NotFound, "no more ticks")
    );
}

#[tokio::test(start_paused = true)]
async fn a_reader_that_stops_stops_the_handler_and_unary_calls_go_on() {
    let sent = Arc::new(AtomicUsize::new(0));
    let counter = sent.clone();
    let flood = RawService::new("demo.Flood")
        .server_streaming("Flood", move |_req, mut out| {
            let counter = counter.clone();
            async move {
                for _ in 0..5_000 {
                    out.send(Bytes::from(vec![7u8; 1_000])).await?;
                    counter.fetch_add(1, Ordering::SeqCst);
                }
                Ok(Response::default())
            }
        })
        .method(
            "Echo",
            |req| async move { Ok(Response::new(req.into_body())) },
        );
    let channel = serve("stream-flood", Server::builder().add_service(flood));
    let mut stream = channel
        .server_streaming(Request::new("demo.Flood/Flood", ""))
        .await
        .unwrap();
    // Every task idles once the handler waits for credit.
    tokio::time::sleep(Duration::from_secs(5)).await;
    // The client's call window (1 MiB) holds 1038 messages of 1,010 bytes on the wire.
    assert_eq!(sent.load(Ordering::SeqCst), (1 << 20) / 1_010);
    let echo = channel
        .unary(Request::new("demo.Flood/Echo", "still here"))
        .await
        .unwrap();
    assert_eq!(&echo.body()[..], b"still here");
    // Reading lets it finish.
    let mut n = 0;
    while stream.message().await.unwrap().is_some() {
        n += 1;
    }
    assert_eq!((n, sent.load(Ordering::SeqCst)), (5_000, 5_000));
}

#[tokio::test(start_paused = true)]
async fn dropping_the_stream_cancels_the_call() {
    type Ended = Arc<std::sync::Mutex<Option<tokio::sync::oneshot::Sender<Result<(), Status>>>>>;
    let (ended_tx, ended_rx) = tokio::sync::oneshot::channel::<Result<(), Status>>();
    let ended_tx: Ended = Arc::new(std::sync::Mutex::new(Some(ended_tx)));
    let forever = RawService::new("demo.Forever").server_streaming("Run", move |_req, mut out| {
        let ended_tx = ended_tx.clone();
        async move {
            // Reports how the loop ended, or that the task was dropped (aborted).
            struct Report(Ended, Option<Status>);
            impl Drop for Report {
                fn drop(&mut self) {
                    if let Some(tx) = self.0.lock().unwrap().take() {
                        let _ = tx.send(self.1.take().map_or(Ok(()), Err));
                    }
                }
            }
            let mut report = Report(ended_tx, None);
            loop {
                if let Err(e) = out.send(Bytes::from_static(b"again")).await {
                    report.1 = Some(e.clone());
                    return Err(e);
                }
            }
        }
    });
    let channel = serve("stream-drop", Server::builder().add_service(forever));
    let mut stream = channel
        .server_streaming(Request::new("demo.Forever/Run", ""))
        .await
        .unwrap();
    assert!(stream.message().await.unwrap().is_some());
    drop(stream);
    let ended = tokio::time::timeout(Duration::from_secs(5), ended_rx)
        .await
        .expect("the handler ends once the client cancels")
        .expect("reported");
    // Aborted by the CANCEL, or told by its sender: either way it stops.
    if let Err(status) = ended {
        assert_eq!(status.code(), Code::Cancelled);
    }
    assert_eq!(
        channel.in_flight(),
        0,
        "the stream's in-flight slot is free"
    );
}

#[tokio::test(start_paused = true)]
async fn the_deadline_bounds_the_whole_stream() {
    let slow = RawService::new("demo.Slow").server_streaming("Run", |_req, mut out| async move {
        out.send(Bytes::from_static(b"first")).await?;
        std::future::pending::<()>().await;
        Ok(Response::default())
    });
    let channel = serve("stream-deadline", Server::builder().add_service(slow));
    let request = Request::new("demo.Slow/Run", "").with_timeout(Duration::from_millis(200));
    let mut stream = channel.server_streaming(request).await.unwrap();
    assert_eq!(
        stream.message().await.unwrap().as_deref(),
        Some(&b"first"[..])
    );
    let status = stream.message().await.unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status}");
}

#[tokio::test]
async fn messages_are_compressed_one_by_one() {
    let big = RawService::new("demo.Big").server_streaming("Run", |_req, mut out| async move {
        for i in 0..20u8 {
            // Compressible and not: each message chooses.
            let body = if i % 2 == 0 {
                vec![i; 64 * 1024]
            } else {
                (0..64 * 1024).map(|j| (j * 7919 % 251) as u8 ^ i).collect()
            };
            out.send(Bytes::from(body)).await?;
        }
        Ok(Response::default())
    });
    let server = Server::builder()
        .compression(Compression::Lz4, 1024)
        .add_service(big);
    let listener = MemoryListener::bind("stream-lz4").unwrap();
    tokio::spawn(server.serve(listener));
    let channel = Endpoint::memory("stream-lz4")
        .compression(Compression::Lz4, 1024)
        .connect_lazy();
    let mut stream = channel
        .server_streaming(Request::new("demo.Big/Run", ""))
        .await
        .unwrap();
    for i in 0..20u8 {
        let m = stream.message().await.unwrap().expect("a message");
        assert_eq!(m.len(), 64 * 1024);
        if i % 2 == 0 {
            assert!(m.iter().all(|b| *b == i));
        } else {
            assert_eq!(m[1], (7919 % 251) as u8 ^ i);
        }
    }
    assert!(stream.message().await.unwrap().is_none());
}

#[tokio::test]
async fn a_call_of_the_wrong_shape_is_refused() {
    let channel = serve("stream-shape", Server::builder().add_service(clock()));
    // A streaming method called as unary.
    let status = channel
        .unary(Request::new("demo.Clock/Ticks", "3"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented, "{status}");
    // A unary method called as a stream.
    let (got, end) = collect(&channel, "demo.Clock/Echo", "x").await;
    assert!(got.is_empty());
    assert_eq!(end.unwrap_err().code(), Code::Unimplemented);
    // An unknown method as a stream: refused before any handler.
    let (_, end) = collect(&channel, "demo.Clock/Nope", "").await;
    assert_eq!(end.unwrap_err().code(), Code::Unimplemented);
    // The connection still serves.
    let (got, end) = collect(&channel, "demo.Clock/Ticks", "2").await;
    assert_eq!((got.len(), end.is_ok()), (2, true));
}

#[tokio::test]
async fn many_streams_share_one_connection() {
    let channel = serve("stream-many", Server::builder().add_service(clock()));
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let channel = channel.clone();
        tasks.push(tokio::spawn(async move {
            collect(&channel, "demo.Clock/Ticks", "200").await
        }));
    }
    for t in tasks {
        let (got, end) = t.await.unwrap();
        assert_eq!((got.len(), end.is_ok()), (200, true));
    }
}

/// `demo.Sum`: `Sum` adds the client's numbers; `Upper` answers each message upper-cased;
/// `Count` counts the messages, and `Early` answers after the first.
fn sums() -> RawService {
    RawService::new("demo.Sum")
        .client_streaming("Sum", |_req, mut numbers| async move {
            let mut total = 0u64;
            while let Some(n) = numbers.message().await? {
                let n: u64 = std::str::from_utf8(&n)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| Status::invalid_argument("not a number"))?;
                total += n;
            }
            Ok(Response::new(total.to_string()))
        })
        .client_streaming("Early", |_req, mut numbers| async move {
            let first = numbers.message().await?.unwrap_or_default();
            Ok(Response::new(first))
        })
        .bidi_streaming("Upper", |_req, mut lines, mut out| async move {
            while let Some(line) = lines.message().await? {
                out.send(Bytes::from(line.to_ascii_uppercase())).await?;
            }
            Ok(Response::default())
        })
}

#[tokio::test]
async fn a_client_stream_gets_one_reply() {
    let channel = serve("stream-sum", Server::builder().add_service(sums()));
    let (mut tx, mut reply) = channel
        .client_streaming(Request::new("demo.Sum/Sum", ""))
        .await
        .unwrap();
    for n in 1..100u64 {
        tx.send(Bytes::from(n.to_string())).await.unwrap();
    }
    tx.send_last(Bytes::from_static(b"100")).await.unwrap();
    let sum = reply.response().await.unwrap();
    assert_eq!(&sum.body()[..], b"5050");
    // Dropping the sender ends the stream too.
    let (tx, mut reply) = channel
        .client_streaming(Request::new("demo.Sum/Sum", ""))
        .await
        .unwrap();
    drop(tx);
    assert_eq!(&reply.response().await.unwrap().body()[..], b"0");
    // A body in the request is refused before anything is sent.
    let err = channel
        .client_streaming(Request::new("demo.Sum/Sum", "1"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn a_server_that_answers_early_ends_the_client_stream() {
    let channel = serve("stream-early", Server::builder().add_service(sums()));
    let (mut tx, mut reply) = channel
        .client_streaming(Request::new("demo.Sum/Early", ""))
        .await
        .unwrap();
    tx.send(Bytes::from_static(b"first")).await.unwrap();
    assert_eq!(&reply.response().await.unwrap().body()[..], b"first");
    // The server answered: what the client sends now has nowhere to go.
    let err = tx.send(Bytes::from_static(b"late")).await.unwrap_err();
    assert_eq!(err.code(), Code::Cancelled, "{err}");
}

#[tokio::test]
async fn bidirectional_streams_interleave() {
    let channel = serve("stream-bidi", Server::builder().add_service(sums()));
    let (mut tx, mut rx) = channel
        .bidi_streaming(Request::new("demo.Sum/Upper", ""))
        .await
        .unwrap();
    for i in 0..100 {
        let line = format!("line {i}");
        tx.send(Bytes::from(line.clone())).await.unwrap();
        let back = rx.message().await.unwrap().expect("an answer per line");
        assert_eq!(back, line.to_uppercase());
    }
    tx.close();
    assert!(rx.message().await.unwrap().is_none());
}

#[tokio::test(start_paused = true)]
async fn a_handler_that_stops_reading_stops_the_client() {
    let gate = Arc::new(tokio::sync::Notify::new());
    let opened = gate.clone();
    let slow = RawService::new("demo.Slow").client_streaming("Take", move |_req, mut msgs| {
        let opened = opened.clone();
        async move {
            opened.notified().await;
            let mut n = 0u32;
            while msgs.message().await?.is_some() {
                n += 1;
            }
            Ok(Response::new(n.to_string()))
        }
    });
    let channel = serve("stream-slow-reader", Server::builder().add_service(slow));
    let (tx, mut reply) = channel
        .client_streaming(Request::new("demo.Slow/Take", ""))
        .await
        .unwrap();
    let sent = Arc::new(AtomicUsize::new(0));
    let counter = sent.clone();
    let sending = tokio::spawn(async move {
        let mut tx = tx;
        for _ in 0..3_000 {
            tx.send(Bytes::from(vec![1u8; 1_000])).await?;
            counter.fetch_add(1, Ordering::SeqCst);
        }
        tx.close();
        Ok::<_, Status>(())
    });
    tokio::time::sleep(Duration::from_secs(5)).await;
    // The server's call window (1 MiB) holds 1038 messages of 1,010 bytes on the wire.
    assert_eq!(sent.load(Ordering::SeqCst), (1 << 20) / 1_010);
    gate.notify_one();
    sending.await.unwrap().unwrap();
    assert_eq!(&reply.response().await.unwrap().body()[..], b"3000");
}

#[tokio::test]
async fn a_unary_method_called_as_a_stream_is_unimplemented() {
    let echo = RawService::new("demo.Echo").method("Echo", |req| async move {
        Ok(Response::new(req.into_body()))
    });
    let channel = serve("stream-not-streaming", Server::builder().add_service(echo));
    let (_tx, mut reply) = channel
        .client_streaming(Request::new("demo.Echo/Echo", ""))
        .await
        .unwrap();
    assert_eq!(
        reply.response().await.unwrap_err().code(),
        Code::Unimplemented
    );
    let (got, end) = collect(&channel, "demo.Echo/Echo", "").await;
    assert!(got.is_empty());
    assert_eq!(end.unwrap_err().code(), Code::Unimplemented);
}

#[tokio::test]
async fn ten_thousand_streams_share_one_connection() {
    let server = Server::builder()
        .max_concurrent_calls_per_connection(20_000)
        .max_concurrent_calls(20_000)
        .add_service(clock());
    let listener = MemoryListener::bind("stream-10k").unwrap();
    tokio::spawn(server.serve(listener));
    let channel = Endpoint::memory("stream-10k")
        .max_concurrent_calls(20_000)
        .connect_lazy();
    // All open at once, each holding its first message unread, then all read to the end.
    let mut streams = Vec::new();
    for _ in 0..10_000 {
        let mut s = channel
            .server_streaming(Request::new("demo.Clock/Ticks", "2"))
            .await
            .unwrap();
        assert!(s.message().await.unwrap().is_some());
        streams.push(s);
    }
    assert_eq!(channel.in_flight(), 10_000);
    for mut s in streams {
        assert_eq!(s.message().await.unwrap().as_deref(), Some(&b"tick 2"[..]));
        assert!(s.message().await.unwrap().is_none());
    }
    assert_eq!(channel.in_flight(), 0);
}

#[tokio::test]
async fn a_server_that_closes_without_a_trailer_ends_the_stream_with_an_error() {
    // One message of the stream, then the server closes.
    raw_server("stream-no-trailer", |id, out| {
        rpc_core::protocol::encode_message(out, id, 0, b"only one");
    });
    let (got, status) = messages_then_error("stream-no-trailer").await;
    assert_eq!(got, [&b"only one"[..]]);
    assert_eq!(status.code(), Code::Unavailable, "{status}");
}

#[tokio::test]
async fn a_trailer_with_a_body_is_a_protocol_error() {
    // One message, then a trailer that carries a body (`docs/protocol.md` §6: it must not).
    raw_server("stream-trailer-body", |id, out| {
        use rpc_core::protocol::encode_response;
        rpc_core::protocol::encode_message(out, id, 0, b"only one");
        encode_response(out, id, 0, 0, b"", &Metadata::new(), b"a body");
    });
    // The message that came before is delivered; the call then fails with the connection.
    let (got, status) = messages_then_error("stream-trailer-body").await;
    assert_eq!(got, [&b"only one"[..]]);
    assert_eq!(status.code(), Code::Unavailable, "{status}");
    assert!(status.message().contains("trailer"), "{status}");
}

#[tokio::test]
async fn messages_read_before_a_bad_frame_are_delivered_before_the_error() {
    // Two messages, then a frame a server must never send, all in one write: the client reads
    // them in one pass and fails the connection at the third.
    raw_server("stream-then-bad-frame", |id, out| {
        rpc_core::protocol::encode_message(out, id, 0, b"one");
        rpc_core::protocol::encode_message(out, id, 0, b"two");
        rpc_core::protocol::encode_half_close(out, id);
    });
    let (got, status) = messages_then_error("stream-then-bad-frame").await;
    assert_eq!(got, [&b"one"[..], &b"two"[..]]);
    assert_eq!(status.code(), Code::Unavailable, "{status}");
}

/// Opens a server stream on the raw server at memory address `name` and reads it to its end:
/// the messages, then the error it must end with.
async fn messages_then_error(name: &str) -> (Vec<Bytes>, Status) {
    let channel = Endpoint::memory(name).connect_lazy();
    let mut stream = channel
        .server_streaming(Request::new("demo.Clock/Ticks", "5"))
        .await
        .unwrap();
    let mut got = Vec::new();
    loop {
        match stream.message().await {
            Ok(Some(m)) => got.push(m),
            Ok(None) => panic!("the stream ended cleanly after {got:?}"),
            Err(status) => return (got, status),
        }
    }
}

/// A raw server at memory address `name`: the handshake (streaming on), then, for the first
/// request, the frames `reply` appends, then it closes its side.
fn raw_server(name: &str, reply: impl FnOnce(u32, &mut bytes::BytesMut) + Send + 'static) {
    use rpc_core::protocol::{self, Frame, FrameDecoder, Settings};
    use rpc_core::transport::Listener as _;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut listener = MemoryListener::bind(name).unwrap();
    tokio::spawn(async move {
        let (mut io, _) = std::future::poll_fn(|cx| listener.poll_accept(cx))
            .await
            .expect("a client");
        let local = Settings {
            features: protocol::features::STREAMING,
            ..Settings::protocol_default()
        };
        let mut out = bytes::BytesMut::new();
        out.extend_from_slice(&protocol::PREFACE);
        protocol::encode_settings(&mut out, &local);
        io.write_all(&out).await.unwrap();
        let decoder = FrameDecoder::negotiated(&local, &local);
        let mut buf = bytes::BytesMut::new();
        let mut id = None;
        while id.is_none() {
            assert!(io.read_buf(&mut buf).await.unwrap() > 0);
            if buf.len() >= protocol::PREFACE_LEN && buf[..4] == protocol::MAGIC {
                let _ = buf.split_to(protocol::PREFACE_LEN);
            }
            while let Ok(Some(frame)) = decoder.decode(&mut buf) {
                if let Frame::Request(r) = frame {
                    id = Some(r.call_id);
                }
            }
        }
        let mut out = bytes::BytesMut::new();
        reply(id.unwrap(), &mut out);
        io.write_all(&out).await.unwrap();
        io.shutdown().await.unwrap();
    });
}

#[tokio::test]
async fn a_bidi_handler_replies_after_reading_every_request() {
    // Reads the whole request stream first, then answers: its sender outlives the requests.
    let sorter = RawService::new("demo.Sort").bidi_streaming(
        "Sort",
        |_req, mut input, mut out| async move {
            let mut all = Vec::new();
            while let Some(m) = input.message().await? {
                all.push(m);
            }
            drop(input);
            all.sort();
            for m in all {
                out.send(m).await?;
            }
            Ok(Response::default())
        },
    );
    let channel = serve("stream-sort", Server::builder().add_service(sorter));
    let (mut tx, mut rx) = channel
        .bidi_streaming(Request::new("demo.Sort/Sort", ""))
        .await
        .unwrap();
    for word in ["pear", "apple", "fig"] {
        tx.send(Bytes::from(word)).await.unwrap();
    }
    tx.close();
    let mut got = Vec::new();
    while let Some(m) = rx.message().await.unwrap() {
        got.push(m);
    }
    assert_eq!(got, ["apple", "fig", "pear"]);
}

#[tokio::test(start_paused = true)]
async fn a_handler_that_drops_its_requests_does_not_hold_up_the_client() {
    // Takes the first request only, drops the stream, and answers later: what the client goes
    // on sending is discarded with its credit returned, so the client is never blocked.
    let first =
        RawService::new("demo.First").client_streaming("First", |_req, mut input| async move {
            let first = input.message().await?.unwrap_or_default();
            drop(input);
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok(Response::new(first))
        });
    let channel = serve("stream-first", Server::builder().add_service(first));
    let (mut tx, mut reply) = channel
        .client_streaming(Request::new("demo.First/First", ""))
        .await
        .unwrap();
    // Three call windows' worth: without the credit coming back, this would block.
    for i in 0..3_000u32 {
        tx.send(Bytes::from(format!("{i:01000}"))).await.unwrap();
    }
    tx.close();
    let got = reply.response().await.unwrap();
    assert_eq!(got.body().len(), 1_000);
}

#[tokio::test]
async fn a_server_streaming_method_called_both_ways_is_unimplemented() {
    let channel = serve("stream-shape-bidi", Server::builder().add_service(clock()));
    let (tx, mut rx) = channel
        .bidi_streaming(Request::new("demo.Clock/Ticks", ""))
        .await
        .unwrap();
    drop(tx);
    let mut end = Ok(());
    loop {
        match rx.message().await {
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(e) => {
                end = Err(e);
                break;
            }
        }
    }
    assert_eq!(end.unwrap_err().code(), Code::Unimplemented);
}

/// A graceful shutdown tells handlers through `Context::draining`: an endless stream ends with
/// `Unavailable` at once, and the server stops without waiting out its drain timeout.
#[tokio::test(start_paused = true)]
async fn a_draining_server_ends_its_endless_streams() {
    let feed =
        RawService::new("demo.Feed").server_streaming("Forever", |req, mut out| async move {
            let ctx = req.context().clone();
            assert!(!ctx.is_draining());
            out.send(Bytes::from_static(b"first")).await?;
            ctx.draining().await;
            assert!(ctx.is_draining());
            Err(Status::unavailable("draining"))
        });
    let listener = MemoryListener::bind("stream-draining").expect("a free memory address");
    let stop = tokio_util::sync::CancellationToken::new();
    let server = Server::builder()
        .drain_timeout(Duration::from_secs(60))
        .add_service(feed)
        .serve_with_shutdown(listener, stop.clone().cancelled_owned());
    let server = tokio::spawn(server);
    let channel = Endpoint::memory("stream-draining").connect_lazy();
    let mut stream = channel
        .server_streaming(Request::new("demo.Feed/Forever", Bytes::new()))
        .await
        .expect("the stream opens");
    assert_eq!(
        stream.message().await.expect("a message").as_deref(),
        Some(&b"first"[..])
    );

    let started = tokio::time::Instant::now();
    stop.cancel();
    let end = stream
        .message()
        .await
        .expect_err("the stream ends with an error");
    assert_eq!(end.code(), Code::Unavailable, "{end}");
    assert_eq!(end.message(), "draining");
    server
        .await
        .expect("the server task")
        .expect("the server stops cleanly");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the server waited {:?} for a stream that the drain should have ended",
        started.elapsed()
    );
}
