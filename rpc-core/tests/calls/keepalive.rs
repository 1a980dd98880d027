//! Keepalive: a silent peer is detected, a healthy idle connection is kept.

use super::*;

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
