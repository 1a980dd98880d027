//! Connections and transports: reconnecting after a server restart, the Unix-socket
//! transport, and failing fast when the server is unreachable.

use super::*;

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
    eventually(POLL_LIMIT, "the channel to reconnect", || async {
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
