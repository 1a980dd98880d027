//! Deadlines: enforced on both sides, answered by the server on its own, and inherited by
//! nested calls.

use super::*;

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
