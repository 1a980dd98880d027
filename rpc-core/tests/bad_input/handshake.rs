//! The handshake (spec section 2): garbage instead of a preface, a wrong major version, and a
//! REQUEST that arrives in the same read as the client's SETTINGS.

use super::*;

// ---------------------------------------------------------------------------------------------
// 1. Garbage instead of a preface
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn garbage_preface_is_closed_without_a_reply() {
    let server = TestServer::start(Server::builder()).await;

    let mut conn = RawConn::connect(server.addr).await;
    conn.send(b"GET / HTTP/1.1\r\n\r\n").await;
    // Spec section 2: wrong magic, close without writing anything.
    while conn.read_more().await {}
    assert!(
        conn.rbuf.is_empty(),
        "server wrote {} bytes to a peer with a wrong magic: {:?}",
        conn.rbuf.len(),
        &conn.rbuf[..]
    );

    server.assert_serves_fresh_channel().await;
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 2. Wrong major version
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn wrong_major_version_gets_goaway_unsupported_version() {
    let server = TestServer::start(Server::builder()).await;

    let mut conn = RawConn::connect(server.addr).await;
    let mut out = BytesMut::new();
    let mut v2 = PREFACE;
    v2[4] = 2;
    out.put_slice(&v2);
    encode_settings(&mut out, &Settings::protocol_default());
    conn.send(&out).await;

    let preface = conn
        .read_preface()
        .await
        .expect("closed before the server's preface");
    assert_eq!(preface, PREFACE, "the server answers with its own preface");
    let goaway = single_goaway(conn.frames_until_eof().await);
    assert_eq!(goaway.code, GoAwayCode::UnsupportedVersion);
    assert_eq!(goaway.last_call_id, 0);

    server.assert_serves_fresh_channel().await;
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Extra: frames that arrive in the same read as the client's SETTINGS
// ---------------------------------------------------------------------------------------------

/// Not one of the bad-input cases: legal input that a byte stream may deliver in any
/// segmentation. The client sends its preface, waits for the server's SETTINGS (section 2, rule 6),
/// then sends its SETTINGS and a REQUEST in one write, so the server reads both at once while it
/// is still in the handshake.
#[tokio::test]
async fn request_in_the_same_segment_as_client_settings_is_answered() {
    let server = TestServer::start(Server::builder()).await;

    let mut conn = RawConn::connect(server.addr).await;
    conn.send(&PREFACE).await;
    assert_eq!(conn.read_preface().await, Some(PREFACE));
    match conn.next_frame().await {
        Some(Frame::Settings(_)) => {}
        other => panic!("expected the server's SETTINGS, got {other:?}"),
    }
    let mut out = BytesMut::new();
    encode_settings(&mut out, &Settings::protocol_default());
    out.extend_from_slice(&request(1, "demo.Echo/Echo", b"coalesced"));
    conn.send(&out).await;

    let r = conn.response_for(1, &mut Vec::new()).await;
    assert_ok_echo(&r, b"coalesced");

    server.assert_serves_fresh_channel().await;
    drop(conn);
    server.stop().await;
}
