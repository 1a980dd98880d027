//! A server that vanishes mid-call, seen from the client.

use super::*;

// ---------------------------------------------------------------------------------------------
// 9. A peer that vanishes mid-call
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn server_vanishing_mid_call_fails_the_call_unavailable_sent() {
    let panics = panic_baseline();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local_addr");
    let (got_request, request_seen) = oneshot::channel::<RequestFrame>();

    // A fake server: handshake, read one REQUEST, then drop the socket.
    let fake = tokio::spawn(async move {
        let (stream, _) = tokio::time::timeout(TIMEOUT, listener.accept())
            .await
            .expect("no client came")
            .expect("accept");
        let mut conn = RawConn::from_stream(stream);
        let preface = conn
            .read_preface()
            .await
            .expect("client closed before its preface");
        assert_eq!(preface, PREFACE);
        match conn.next_frame().await {
            Some(Frame::Settings(_)) => {}
            other => panic!("expected the client's SETTINGS, got {other:?}"),
        }
        let mut out = BytesMut::new();
        out.put_slice(&PREFACE);
        encode_settings(&mut out, &Settings::protocol_default());
        conn.send(&out).await;
        match conn.next_frame().await {
            Some(Frame::Request(r)) => {
                got_request.send(r).ok();
            }
            other => panic!("expected a REQUEST, got {other:?}"),
        }
        drop(conn);
    });

    let channel = Endpoint::tcp(addr).connect_lazy();
    let status = tokio::time::timeout(TIMEOUT, channel.unary(Request::new("demo.Echo/Echo", "x")))
        .await
        .expect("the call hung after the server vanished")
        .expect_err("nobody answered this call");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(status.delivery(), Delivery::Sent, "{status:?}");

    let req = tokio::time::timeout(TIMEOUT, request_seen)
        .await
        .expect("fake server hung")
        .expect("fake server did not see the request");
    assert_eq!(&req.path[..], b"demo.Echo/Echo");
    tokio::time::timeout(TIMEOUT, fake)
        .await
        .expect("fake server hung")
        .expect("fake server failed");
    assert_no_new_panics(panics);
}
