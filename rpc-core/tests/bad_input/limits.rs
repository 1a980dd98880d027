//! The limit on calls in flight per connection: the server refuses calls over it, and a
//! `Channel` waits at it (backpressure).

use super::*;

// ---------------------------------------------------------------------------------------------
// 8. More calls in flight than allowed
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn calls_over_the_connection_limit_get_resource_exhausted() {
    let server = TestServer::start(Server::builder().max_concurrent_calls_per_connection(4)).await;

    let (mut conn, settings) = RawConn::handshake(server.addr).await;
    assert_eq!(settings.max_concurrent_calls, 4);
    let mut out = BytesMut::new();
    for id in 1..=5 {
        out.extend_from_slice(&request(id, "demo.Echo/Slow", b""));
    }
    out.extend_from_slice(&request(6, "demo.Echo/Echo", b"six"));
    conn.send(&out).await;

    // Calls 1-4 run (Slow sleeps for an hour). Call 5 is the fifth in flight and is refused at
    // once; so is call 6, which is also over the limit while 1-4 run (section 10: "that call is
    // answered with RESOURCE_EXHAUSTED; the connection stays open").
    let mut seen = Vec::new();
    let r5 = conn.response_for(5, &mut seen).await;
    assert_eq!(Code::from_u8(r5.code), Code::ResourceExhausted, "{r5:?}");
    let r6 = conn.response_for(6, &mut seen).await;
    assert_eq!(Code::from_u8(r6.code), Code::ResourceExhausted, "{r6:?}");
    conn.ping_sync(1, &mut seen).await;
    assert!(
        responses_to(&seen, &[1, 2, 3, 4]).is_empty(),
        "calls 1-4 should still be running: {seen:?}"
    );

    // Cancel the four slow calls; the slots are free again.
    let mut out = BytesMut::new();
    for id in 1..=4 {
        encode_cancel(&mut out, id);
    }
    out.extend_from_slice(&request(7, "demo.Echo/Echo", b"seven"));
    conn.send(&out).await;
    let r7 = conn.response_for(7, &mut seen).await;
    assert_ok_echo(&r7, b"seven");
    conn.ping_sync(2, &mut seen).await;
    assert!(
        responses_to(&seen, &[1, 2, 3, 4]).is_empty(),
        "cancelled calls must not be answered: {seen:?}"
    );

    server.assert_serves_fresh_channel().await;
    drop(conn);
    server.stop().await;
}

#[tokio::test]
async fn channel_applies_backpressure_at_the_servers_limit() {
    let server = TestServer::start(Server::builder().max_concurrent_calls_per_connection(2)).await;

    let channel = Endpoint::tcp(server.addr).connect_lazy();
    tokio::time::timeout(TIMEOUT, channel.ready())
        .await
        .expect("connect hung")
        .expect("connect failed");
    assert_eq!(
        channel.max_in_flight(),
        2,
        "the channel adopts the server's limit"
    );

    let calls: Vec<JoinHandle<_>> = (0..2)
        .map(|_| {
            let ch = channel.clone();
            tokio::spawn(async move { ch.unary(Request::new("demo.Echo/Slow", "")).await })
        })
        .collect();
    eventually(TIMEOUT, "two calls in flight", || async {
        channel.in_flight() == 2
    })
    .await;

    let mut probe = channel.clone();
    let mut cx = Context::from_waker(Waker::noop());
    let ready = tower::Service::<Request>::poll_ready(&mut probe, &mut cx);
    assert!(ready.is_pending(), "poll_ready at the limit: {ready:?}");
    assert!(
        calls.iter().all(|c| !c.is_finished()),
        "slow calls finished early"
    );

    // Dropping one call frees its slot.
    calls[0].abort();
    eventually(
        TIMEOUT,
        "poll_ready to become ready after a call ended",
        || {
            let mut cx = Context::from_waker(Waker::noop());
            std::future::ready(matches!(
                tower::Service::<Request>::poll_ready(&mut probe, &mut cx),
                Poll::Ready(Ok(()))
            ))
        },
    )
    .await;
    drop(probe);
    calls[1].abort();
    for call in calls {
        let joined = tokio::time::timeout(TIMEOUT, call)
            .await
            .expect("abort hung");
        assert!(joined.is_err_and(|e| e.is_cancelled()));
    }
    eventually(TIMEOUT, "no calls in flight", || async {
        channel.in_flight() == 0
    })
    .await;

    assert_echo(&channel, "after backpressure").await;
    server.assert_serves_fresh_channel().await;
    drop(channel);
    server.stop().await;
}
