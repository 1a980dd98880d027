//! Calls that get no reply: a cancelled call reaches its handler, and one-way calls run
//! without a response.

use super::*;

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
    eventually(POLL_LIMIT, "the in-flight slot to be freed", || async {
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
