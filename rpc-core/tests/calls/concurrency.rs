//! Concurrency: ten thousand calls in flight at once on one connection.

use super::*;

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
