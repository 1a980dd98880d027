//! Limits: message sizes, and the server-wide limit on calls in flight across connections.

use super::*;

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
