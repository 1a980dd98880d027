//! Server shutdown: calls in flight finish gracefully, and the drain timeout ends stuck ones.

use super::*;

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
    eventually(POLL_LIMIT, "the listener to close", || async {
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
