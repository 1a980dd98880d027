//! Bad streaming frames (protocol 1.1, `docs/protocol.md` §17): stream frames or
//! flags where streaming is not negotiated, frames for calls never opened, windows overrun or
//! overflowed; and the harmless cases: a message for a call that ended is dropped with its
//! credit returned, a client stream is refused without running.

use rpc_core::protocol::{encode_message, encode_window_update, features, flags};

use super::*;

fn streaming() -> Settings {
    Settings {
        features: features::STREAMING,
        ..Settings::protocol_default()
    }
}

/// A REQUEST with these flags: raw codec, no deadline, no metadata.
fn request_flagged(call_id: u32, flags: u8, path: &str, body: &[u8]) -> BytesMut {
    let mut out = BytesMut::new();
    encode_request(
        &mut out,
        call_id,
        flags,
        path.as_bytes(),
        0,
        0,
        &Metadata::new(),
        body,
    );
    out
}

async fn assert_goaway(conn: &mut RawConn, code: GoAwayCode) {
    let goaway = single_goaway(conn.frames_until_eof().await);
    assert_eq!(goaway.code, code, "{goaway:?}");
}

#[tokio::test]
async fn stream_frames_and_flags_without_negotiation_are_protocol_errors() {
    let server = TestServer::start(Server::builder().add_service(echo_service())).await;
    // A 1.0 client (no FEATURES): a MESSAGE is an unknown frame type.
    let (mut conn, settings) = RawConn::handshake(server.addr).await;
    assert_eq!(
        settings.features,
        features::STREAMING,
        "the server offers streaming"
    );
    let mut out = BytesMut::new();
    encode_message(&mut out, 1, 0, b"x");
    conn.send(&out).await;
    assert_goaway(&mut conn, GoAwayCode::ProtocolError).await;
    // A 1.0 client setting SERVER_STREAM on a request.
    let (mut conn, _) = RawConn::handshake(server.addr).await;
    conn.send(&request_flagged(
        1,
        flags::SERVER_STREAM,
        "demo.Echo/Echo",
        b"",
    ))
    .await;
    assert_goaway(&mut conn, GoAwayCode::ProtocolError).await;
    server.assert_serves_fresh_channel().await;
    server.stop().await;
}

#[tokio::test]
async fn frames_for_calls_never_opened_are_protocol_errors() {
    let server = TestServer::start(Server::builder().add_service(echo_service())).await;
    for frame in [
        {
            let mut out = BytesMut::new();
            encode_message(&mut out, 7, 0, b"x");
            out
        },
        {
            let mut out = BytesMut::new();
            encode_window_update(&mut out, 7, 100);
            out
        },
    ] {
        let (mut conn, _) = RawConn::handshake_with(server.addr, streaming()).await;
        conn.send(&frame).await;
        assert_goaway(&mut conn, GoAwayCode::ProtocolError).await;
    }
    server.assert_serves_fresh_channel().await;
    server.stop().await;
}

#[tokio::test]
async fn a_window_pushed_past_its_maximum_is_a_flow_control_error() {
    let server = TestServer::start(Server::builder().add_service(echo_service())).await;
    let (mut conn, _) = RawConn::handshake_with(server.addr, streaming()).await;
    // The connection window starts at 16 MiB: 2^31 - 1 more overflows it.
    let mut out = BytesMut::new();
    encode_window_update(&mut out, 0, Settings::MAX_WINDOW);
    conn.send(&out).await;
    assert_goaway(&mut conn, GoAwayCode::FlowControlError).await;
    server.assert_serves_fresh_channel().await;
    server.stop().await;
}

#[tokio::test]
async fn a_message_over_the_connection_window_is_a_flow_control_error() {
    let server = TestServer::start(
        Server::builder()
            .add_service(echo_service())
            .max_frame_size(16 << 20),
    )
    .await;
    let (mut conn, settings) = RawConn::handshake_with(server.addr, streaming()).await;
    // Call 1 is refused (a client stream), so its messages are dropped, but they still spend
    // the connection's window: one larger than all of it is an error.
    conn.send(&request_flagged(
        1,
        flags::CLIENT_STREAM,
        "demo.Echo/Echo",
        b"",
    ))
    .await;
    let mut out = BytesMut::new();
    encode_message(
        &mut out,
        1,
        0,
        &vec![0; settings.connection_window as usize],
    );
    conn.send(&out).await;
    let frames = conn.frames_until_eof().await;
    let goaway = frames
        .iter()
        .find_map(|f| match f {
            Frame::GoAway(g) => Some(g),
            _ => None,
        })
        .expect("a GOAWAY");
    assert_eq!(goaway.code, GoAwayCode::FlowControlError);
    server.assert_serves_fresh_channel().await;
    server.stop().await;
}

#[tokio::test]
async fn a_client_stream_to_a_unary_method_is_refused_and_its_messages_dropped_with_credit() {
    let server = TestServer::start(Server::builder().add_service(echo_service())).await;
    let (mut conn, _) = RawConn::handshake_with(server.addr, streaming()).await;
    conn.send(&request_flagged(
        1,
        flags::CLIENT_STREAM,
        "demo.Echo/Echo",
        b"",
    ))
    .await;
    let mut seen = Vec::new();
    let refusal = conn.response_for(1, &mut seen).await;
    assert_eq!(Code::from_u8(refusal.code), Code::Unimplemented);
    // Messages that were already on their way: dropped, and the connection's credit comes back
    // once everything received was taken (here at once).
    let mut out = BytesMut::new();
    encode_message(&mut out, 1, 0, &[1; 90]);
    encode_message(&mut out, 1, flags::END_STREAM, &[2; 90]);
    conn.send(&out).await;
    conn.ping_sync(9, &mut seen).await;
    let returned: u32 = seen
        .iter()
        .filter_map(|f| match f {
            Frame::WindowUpdate {
                call_id: 0,
                increment,
            } => Some(*increment),
            _ => None,
        })
        .sum();
    assert_eq!(returned, 200, "10 + 90 bytes per message");
    // The connection still serves.
    conn.send(&request(3, "demo.Echo/Echo", b"still")).await;
    let r = conn.response_for(3, &mut seen).await;
    assert_ok_echo(&r, b"still");
    server.stop().await;
}

/// A server whose `demo.Hold/Take` takes a client stream and `demo.Hold/Watch` sends a server
/// stream, and neither ever ends.
async fn holding_server() -> TestServer {
    let hold = RawService::new("demo.Hold")
        .client_streaming("Take", |_req, msgs| async move {
            // Holds the request stream (dropped, it would discard what comes).
            let _msgs = msgs;
            std::future::pending::<()>().await;
            Ok(Response::default())
        })
        .server_streaming("Watch", |_req, out| async move {
            let _out = out;
            std::future::pending::<()>().await;
            Ok(Response::default())
        });
    TestServer::start(Server::builder().add_service(hold)).await
}

#[tokio::test]
async fn messages_after_the_end_of_a_live_stream_are_protocol_errors() {
    let server = holding_server().await;
    // A MESSAGE after END_STREAM.
    let (mut conn, _) = RawConn::handshake_with(server.addr, streaming()).await;
    let mut out = request_flagged(1, flags::CLIENT_STREAM, "demo.Hold/Take", b"");
    encode_message(&mut out, 1, flags::END_STREAM, b"last");
    encode_message(&mut out, 1, 0, b"one too many");
    conn.send(&out).await;
    assert_goaway(&mut conn, GoAwayCode::ProtocolError).await;
    // HALF_CLOSE twice.
    let (mut conn, _) = RawConn::handshake_with(server.addr, streaming()).await;
    let mut out = request_flagged(1, flags::CLIENT_STREAM, "demo.Hold/Take", b"");
    rpc_core::protocol::encode_half_close(&mut out, 1);
    rpc_core::protocol::encode_half_close(&mut out, 1);
    conn.send(&out).await;
    assert_goaway(&mut conn, GoAwayCode::ProtocolError).await;
    // A MESSAGE on a live call that receives no stream.
    let (mut conn, _) = RawConn::handshake_with(server.addr, streaming()).await;
    let mut out = request_flagged(1, flags::SERVER_STREAM, "demo.Hold/Watch", b"");
    encode_message(&mut out, 1, 0, b"x");
    conn.send(&out).await;
    let frames = conn.frames_until_eof().await;
    assert!(
        frames
            .iter()
            .any(|f| matches!(f, Frame::GoAway(g) if g.code == GoAwayCode::ProtocolError)),
        "{frames:?}"
    );
    server.assert_serves_fresh_channel().await;
    server.stop().await;
}

#[tokio::test]
async fn a_message_over_the_call_window_is_a_flow_control_error() {
    let server = holding_server().await;
    let (mut conn, _) = RawConn::handshake_with(server.addr, streaming()).await;
    let mut out = request_flagged(1, flags::CLIENT_STREAM, "demo.Hold/Take", b"");
    // The call window is 1 MiB: a message of 1 MiB is 10 bytes over it.
    encode_message(&mut out, 1, 0, &vec![0; 1 << 20]);
    conn.send(&out).await;
    assert_goaway(&mut conn, GoAwayCode::FlowControlError).await;
    server.assert_serves_fresh_channel().await;
    server.stop().await;
}
