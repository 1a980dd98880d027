//! Bad frames on an open connection: too large, truncated, with metadata over the limit, of an
//! unknown type, with call ids that do not increase; and a PING, answered with its value.

use super::*;

// ---------------------------------------------------------------------------------------------
// 3. Frame larger than the server's max frame size
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn oversized_frame_gets_goaway_frame_too_large_from_the_header_alone() {
    let (logs, _guard) = capture_logs();
    let server = TestServer::start(Server::builder().max_frame_size(16 * 1024)).await;

    let (mut conn, settings) = RawConn::handshake(server.addr).await;
    assert_eq!(settings.max_frame_size, 16 * 1024);
    // Only the header of a 1 MiB REQUEST: the server must decide without the payload.
    conn.send(&header(1 << 20, frame_type::REQUEST, 0, 1)).await;

    let goaway = single_goaway(conn.frames_until_eof().await);
    assert_eq!(goaway.code, GoAwayCode::FrameTooLarge);
    assert_eq!(goaway.last_call_id, 0);

    let text = logs.text();
    assert!(
        text.contains("protocol error"),
        "not logged; captured logs:\n{text}"
    );
    assert!(
        text.contains("exceeds the maximum frame size"),
        "the log does not say why; captured logs:\n{text}"
    );

    server.assert_serves_fresh_channel().await;
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 4. Truncated frame, then end of stream
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn truncated_frame_then_eof_closes_only_that_connection() {
    let server = TestServer::start(Server::builder()).await;

    // A connection that is already up before the bad one, and must stay up.
    let bystander = Endpoint::tcp(server.addr).connect_lazy();
    assert_echo(&bystander, "before").await;

    let (mut conn, _) = RawConn::handshake(server.addr).await;
    let full = request(1, "demo.Echo/Echo", b"0123456789abcdef");
    conn.send(&full[..full.len() / 2]).await;
    conn.shutdown_write().await;

    // The connection is dead (section 10): the server closes it and answers nothing. A GOAWAY
    // telling why is allowed.
    let frames = conn.frames_until_eof().await;
    assert!(
        frames.iter().all(|f| matches!(f, Frame::GoAway(_))),
        "only a GOAWAY may come back for a truncated frame, got {frames:?}"
    );

    assert_echo(&bystander, "after").await;
    server.assert_serves_fresh_channel().await;
    drop(bystander);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 5. Metadata over the server's limit
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn oversized_metadata_gets_goaway_metadata_too_large() {
    let (logs, _guard) = capture_logs();
    let server = TestServer::start(Server::builder().max_metadata_size(64)).await;

    let (mut conn, settings) = RawConn::handshake(server.addr).await;
    assert_eq!(settings.max_metadata_size, 64);
    let mut md = Metadata::new();
    md.insert("k", "v".repeat(195)); // 2 + 1 + 2 + 195 = 200 bytes of metadata block
    assert_eq!(md.encoded_len(), 200);
    let mut out = BytesMut::new();
    encode_request(&mut out, 1, 0, b"demo.Echo/Echo", 0, 0, &md, b"x");
    conn.send(&out).await;

    let goaway = single_goaway(conn.frames_until_eof().await);
    assert_eq!(goaway.code, GoAwayCode::MetadataTooLarge);

    let text = logs.text();
    assert!(
        text.contains("protocol error"),
        "not logged; captured logs:\n{text}"
    );
    assert!(
        text.contains("metadata block of 200 bytes"),
        "the log does not say why; captured logs:\n{text}"
    );

    server.assert_serves_fresh_channel().await;
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 6. Unknown frame type
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn unknown_frame_type_gets_goaway_protocol_error() {
    let (logs, _guard) = capture_logs();
    let server = TestServer::start(Server::builder()).await;

    let (mut conn, _) = RawConn::handshake(server.addr).await;
    // Announces a payload that never comes: the type is rejected from the header alone.
    conn.send(&header(100, 0x42, 0, 0)).await;

    let goaway = single_goaway(conn.frames_until_eof().await);
    assert_eq!(goaway.code, GoAwayCode::ProtocolError);

    let text = logs.text();
    assert!(
        text.contains("protocol error"),
        "not logged; captured logs:\n{text}"
    );
    assert!(
        text.contains("unknown frame type 0x42"),
        "the log does not say why; captured logs:\n{text}"
    );

    server.assert_serves_fresh_channel().await;
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 10. Call ids that do not increase
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn decreasing_call_id_gets_goaway_protocol_error() {
    let server = TestServer::start(Server::builder()).await;

    let (mut conn, _) = RawConn::handshake(server.addr).await;
    let mut out = request(5, "demo.Echo/Echo", b"five");
    out.extend_from_slice(&request(3, "demo.Echo/Echo", b"three"));
    conn.send(&out).await;

    let mut frames = conn.frames_until_eof().await;
    let Some(Frame::GoAway(goaway)) = frames.pop() else {
        panic!("expected a GOAWAY last, got {frames:?}");
    };
    assert_eq!(goaway.code, GoAwayCode::ProtocolError);
    assert_eq!(goaway.last_call_id, 5, "call 5 was processed");
    // Call 5 was valid; if its answer came, it is the echo. Call 3 is never answered.
    match &frames[..] {
        [] => {}
        [Frame::Response(r)] if r.call_id == 5 => assert_ok_echo(r, b"five"),
        other => panic!("unexpected frames before the GOAWAY: {other:?}"),
    }

    server.assert_serves_fresh_channel().await;
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 11. PING
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn ping_gets_pong_with_the_same_value() {
    let server = TestServer::start(Server::builder()).await;

    let (mut conn, _) = RawConn::handshake(server.addr).await;
    let value = 0xdead_beef_0123_4567;
    let mut out = BytesMut::new();
    encode_ping(&mut out, value);
    conn.send(&out).await;
    match conn.next_frame().await {
        Some(Frame::Pong(v)) => assert_eq!(v, value),
        other => panic!("expected PONG({value:#x}), got {other:?}"),
    }
    // And the connection still works.
    conn.send(&request(1, "demo.Echo/Echo", b"after ping"))
        .await;
    let r = conn.response_for(1, &mut Vec::new()).await;
    assert_ok_echo(&r, b"after ping");

    server.assert_serves_fresh_channel().await;
    drop(conn);
    server.stop().await;
}
