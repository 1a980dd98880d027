//! Calls to an unknown service or method.

use super::*;

// ---------------------------------------------------------------------------------------------
// 7. Unknown service, unknown method
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn unknown_service_and_method_are_unimplemented_and_the_connection_stays_usable() {
    let server = TestServer::start(Server::builder()).await;

    // Raw.
    let (mut conn, _) = RawConn::handshake(server.addr).await;
    let mut out = request(1, "nope.Missing/Echo", b"a");
    out.extend_from_slice(&request(2, "demo.Echo/Missing", b"b"));
    out.extend_from_slice(&request(3, "demo.Echo/Echo", b"still here"));
    conn.send(&out).await;
    let mut seen = Vec::new();
    for id in [1, 2] {
        let r = conn.response_for(id, &mut seen).await;
        assert_eq!(
            Code::from_u8(r.code),
            Code::Unimplemented,
            "call {id}: {r:?}"
        );
        assert!(r.body.is_empty(), "an error response has no body");
    }
    let r = conn.response_for(3, &mut seen).await;
    assert_ok_echo(&r, b"still here");
    assert!(seen.is_empty(), "unexpected frames: {seen:?}");

    // Through a Channel.
    let channel = Endpoint::tcp(server.addr).connect_lazy();
    for path in ["nope.Missing/Echo", "demo.Echo/Missing"] {
        let status = tokio::time::timeout(TIMEOUT, channel.unary(Request::new(path, "x")))
            .await
            .expect("call hung")
            .expect_err("an unknown method cannot succeed");
        assert_eq!(status.code(), Code::Unimplemented, "{path}: {status:?}");
    }
    assert_echo(&channel, "same channel").await;

    server.assert_serves_fresh_channel().await;
    drop(conn);
    drop(channel);
    server.stop().await;
}
