//! The worked examples in `docs/protocol.md` are the bytes this implementation produces and reads.

use bytes::BytesMut;
use rpc_core::protocol::{self, Frame, FrameDecoder, Settings};
use rpc_core::Metadata;

const DOC: &str = include_str!("../../docs/protocol.md");

fn hex_block(tag: &str) -> Vec<u8> {
    let fence = format!("```hex {tag}\n");
    let start = DOC.find(&fence).unwrap_or_else(|| panic!("no {tag} block")) + fence.len();
    let end = start + DOC[start..].find("```").expect("closing fence");
    DOC[start..end]
        .split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).expect("hex byte"))
        .collect()
}

#[test]
fn request_example_matches_the_encoder() {
    let mut md = Metadata::new();
    md.insert("caller", "quickstart");
    let mut buf = BytesMut::new();
    protocol::encode_request(&mut buf, 1, 0, b"demo.Echo/Echo", 0, 250_000, &md, b"hi");
    assert_eq!(&buf[..], &hex_block("request-example")[..]);

    let mut wire = BytesMut::from(&hex_block("request-example")[..]);
    let Some(Frame::Request(r)) = FrameDecoder::new(&Settings::protocol_default())
        .decode(&mut wire)
        .unwrap()
    else {
        panic!("not a request")
    };
    assert_eq!(
        (&r.path[..], r.timeout_us, &r.body[..]),
        (&b"demo.Echo/Echo"[..], 250_000, &b"hi"[..])
    );
    assert_eq!(r.metadata.get_str("caller"), Some("quickstart"));
}

#[test]
fn response_example_matches_the_encoder() {
    let mut buf = BytesMut::new();
    protocol::encode_response(&mut buf, 1, 0, 0, b"", &Metadata::new(), b"hi");
    assert_eq!(&buf[..], &hex_block("response-example")[..]);
}

#[test]
fn preface_example_matches() {
    assert!(DOC.contains("```hex\n7f 52 50 43 01 00 00 00\n```"));
    assert_eq!(protocol::PREFACE, [0x7f, 0x52, 0x50, 0x43, 1, 0, 0, 0]);
}

/// The SETTINGS example is what a default server and a default client really send.
#[tokio::test]
async fn settings_example_is_what_the_reference_sends_by_default() {
    use rpc_core::transport::memory::{MemoryConnector, MemoryListener};
    use rpc_core::transport::{Connector, Listener};
    use rpc_core::{Endpoint, Server};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let expected = hex_block("settings-example");
    let len = protocol::PREFACE_LEN + expected.len();
    let read_preface_and_settings = |mut io: rpc_core::transport::BoxIo| async move {
        let mut buf = vec![0u8; len];
        io.read_exact(&mut buf).await.expect("preface and SETTINGS");
        (io, buf.split_off(protocol::PREFACE_LEN))
    };

    // The server's SETTINGS, answering a client preface and default SETTINGS.
    let listener = MemoryListener::bind("doc-settings-server").unwrap();
    let server = tokio::spawn(Server::builder().serve(listener));
    let (mut io, _) = MemoryConnector::new("doc-settings-server")
        .connect()
        .await
        .unwrap();
    let mut hello = BytesMut::from(&protocol::PREFACE[..]);
    protocol::encode_settings(&mut hello, &Settings::protocol_default());
    io.write_all(&hello).await.unwrap();
    let (_io, sent_by_server) = read_preface_and_settings(io).await;
    assert_eq!(sent_by_server, expected, "server");
    server.abort();

    // A default client's SETTINGS, read by a listener that never answers.
    let mut listener = MemoryListener::bind("doc-settings-client").unwrap();
    let client = tokio::spawn(async move {
        let _ = Endpoint::memory("doc-settings-client").connect().await;
    });
    let (io, _) = std::future::poll_fn(|cx| listener.poll_accept(cx))
        .await
        .unwrap();
    let (_io, sent_by_client) = read_preface_and_settings(io).await;
    assert_eq!(sent_by_client, expected, "client");
    client.abort();
}

/// The streaming examples of protocol 1.1 (`docs/protocol.md` §17.10, issue 18) are the bytes
/// the frame layer writes and reads.
mod streaming {
    use bytes::BytesMut;
    use rpc_core::protocol::{self, flags, flow, Frame, FrameDecoder, ProtocolError, Settings};
    use rpc_core::Metadata;

    use super::hex_block;

    fn negotiated() -> FrameDecoder {
        let local = Settings {
            features: protocol::features::STREAMING,
            ..Settings::protocol_default()
        };
        FrameDecoder::negotiated(&local, &local)
    }

    #[test]
    fn stream_request_example_matches_the_encoder() {
        let mut buf = BytesMut::new();
        let md = Metadata::new();
        let path = b"demo.Clock/Ticks";
        protocol::encode_request(
            &mut buf,
            1,
            flags::SERVER_STREAM,
            path,
            0,
            1_000_000,
            &md,
            b"2",
        );
        assert_eq!(&buf[..], &hex_block("stream-request-example")[..]);
        let Some(Frame::Request(r)) = negotiated().decode(&mut buf).unwrap() else {
            panic!("not a request")
        };
        assert_eq!((r.flags, &r.body[..]), (flags::SERVER_STREAM, &b"2"[..]));
    }

    #[test]
    fn stream_reply_example_is_two_messages_and_a_trailer() {
        let wire = hex_block("stream-reply-example");
        let mut buf = BytesMut::from(&wire[..]);
        let d = negotiated();
        for text in ["tick 1", "tick 2"] {
            let Some(Frame::Message(m)) = d.decode(&mut buf).unwrap() else {
                panic!("not a message")
            };
            assert_eq!((m.call_id, m.flags, &m.body[..]), (1, 0, text.as_bytes()));
        }
        let Some(Frame::Response(t)) = d.decode(&mut buf).unwrap() else {
            panic!("not the trailer")
        };
        assert_eq!((t.code, t.body.len()), (0, 0));
        assert_eq!(t.metadata.get_str("ticks"), Some("2"));
        assert!(buf.is_empty());

        let mut again = BytesMut::new();
        protocol::encode_message(&mut again, 1, 0, b"tick 1");
        protocol::encode_message(&mut again, 1, 0, b"tick 2");
        let mut md = Metadata::new();
        md.insert("ticks", "2");
        protocol::encode_response(&mut again, 1, 0, 0, b"", &md, b"");
        assert_eq!(&again[..], &wire[..]);

        // A 1.0 decoder refuses the first MESSAGE by its type.
        let mut buf = BytesMut::from(&wire[..]);
        let old = FrameDecoder::new(&Settings::protocol_default());
        assert!(matches!(
            old.decode(&mut buf),
            Err(ProtocolError::UnknownFrameType(0x08))
        ));
    }

    #[test]
    fn window_update_example_returns_the_two_messages() {
        let mut buf = BytesMut::new();
        protocol::encode_window_update(&mut buf, 0, 2 * flow::size(6));
        assert_eq!(&buf[..], &hex_block("window-update-example")[..]);
        assert!(matches!(
            negotiated().decode(&mut buf).unwrap(),
            Some(Frame::WindowUpdate {
                call_id: 0,
                increment: 32
            })
        ));
    }
}
