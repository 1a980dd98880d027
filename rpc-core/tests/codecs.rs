//! Codecs chosen per call, the server answering in the request's codec, codec negotiation and
//! compressed bodies.

#![allow(missing_docs)]

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use rpc_core::codec::{impl_message, Compression};
use rpc_core::protocol::{self, flags, Frame, FrameDecoder, ResponseFrame, Settings};
use rpc_core::server::RawService;
use rpc_core::transport::memory::{MemoryConnector, MemoryListener};
use rpc_core::transport::{BoxIo, Connector};
use rpc_core::{
    CallOptions, Code, CodecId, CodecSet, Delivery, Endpoint, Metadata, Request, Response, Server,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Works in every codec: derives prost and serde.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
pub struct Order {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(string, tag = "2")]
    pub customer: String,
    #[prost(string, repeated, tag = "3")]
    pub skus: Vec<String>,
}

/// Serde only: JSON and MessagePack.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Note {
    pub text: String,
    pub stars: u8,
}

impl_message!(Order, Note);

mod support;

use support::serve;

fn shop() -> RawService {
    RawService::new("shop.Orders")
        .typed("Echo", |order: Order, _ctx| async move { Ok(order) })
        .typed("Rate", |note: Note, _ctx| async move {
            Ok(Note {
                text: format!("rated: {}", note.text),
                stars: note.stars,
            })
        })
        .method("WhichCodec", |req: Request| async move {
            // Reports the codec the request arrived in, as a Note encoded in that codec.
            let seen = Note {
                text: req.codec().to_string(),
                stars: 0,
            };
            let codecs = rpc_core::codec::message_codecs!(Note);
            Ok(Response::new(codecs.encode_to_bytes(req.codec(), &seen)?))
        })
}

fn order() -> Order {
    Order {
        id: 42,
        customer: "ada".into(),
        skus: vec!["tea".into(), "cup".into()],
    }
}

#[tokio::test]
async fn one_service_in_every_codec_answered_in_the_same_codec() {
    let server = serve(
        Server::builder().add_service(shop()),
        MemoryListener::bind("codec-1").unwrap(),
    );
    let channel = Endpoint::memory("codec-1").connect_lazy();
    for codec in [CodecId::PROTOBUF, CodecId::JSON, CodecId::MSGPACK] {
        let back: Order = channel
            .typed_with(
                "shop.Orders/Echo",
                &order(),
                CallOptions::new().codec(codec),
            )
            .await
            .unwrap();
        assert_eq!(back, order(), "{codec}");
    }
    // The reply is in the request's codec: a JSON request gets JSON text back.
    let json = Bytes::from_static(br#"{"id":7,"customer":"bo","skus":[]}"#);
    let reply = channel
        .unary(Request::new("shop.Orders/Echo", json).with_codec(CodecId::JSON))
        .await
        .unwrap();
    assert_eq!(&reply.body()[..], br#"{"id":7,"customer":"bo","skus":[]}"#);
    // MessagePack replies are maps keyed by field name.
    let reply = channel
        .unary(
            Request::new(
                "shop.Orders/Rate",
                rmp_named(&Note {
                    text: "ok".into(),
                    stars: 5,
                }),
            )
            .with_codec(CodecId::MSGPACK),
        )
        .await
        .unwrap();
    assert_eq!(reply.body()[0], 0x82, "a fixmap of two entries");
    drop(channel);
    server.shutdown().await;
}

fn rmp_named(note: &Note) -> Bytes {
    let mut buf = BytesMut::new();
    rpc_core::codec::MsgPack::encode(note, &mut buf).unwrap();
    buf.freeze()
}

#[tokio::test]
async fn channel_default_codec_and_per_call_override() {
    let server = serve(
        Server::builder().add_service(shop()),
        MemoryListener::bind("codec-2").unwrap(),
    );
    let json_channel = Endpoint::memory("codec-2")
        .codec(CodecId::JSON)
        .connect_lazy();
    assert_eq!(json_channel.default_codec(), CodecId::JSON);
    let probe = Note {
        text: String::new(),
        stars: 0,
    };
    let seen: Note = json_channel
        .typed("shop.Orders/WhichCodec", &probe)
        .await
        .unwrap();
    assert_eq!(seen.text, "json", "the channel default");
    let seen: Note = json_channel
        .typed_with(
            "shop.Orders/WhichCodec",
            &probe,
            CallOptions::new().codec(CodecId::MSGPACK),
        )
        .await
        .unwrap();
    assert_eq!(seen.text, "msgpack", "the per-call override");

    // Order supports json: the channel default is used.
    let back: Order = json_channel
        .typed("shop.Orders/Echo", &order())
        .await
        .unwrap();
    assert_eq!(back, order());
    // A serde-only type on a protobuf-default channel falls back to a codec it supports.
    let proto_channel = Endpoint::memory("codec-2").connect_lazy();
    assert_eq!(proto_channel.default_codec(), CodecId::PROTOBUF);
    let seen: Note = proto_channel
        .typed("shop.Orders/WhichCodec", &probe)
        .await
        .unwrap();
    // Issue 11 fixed one order for every typed call: Protobuf when the types have it, else JSON.
    assert_eq!(
        seen.text, "json",
        "protobuf is not possible for Note; json is next"
    );
    drop((json_channel, proto_channel));
    server.shutdown().await;
}

/// The client side of `shop()`'s `WhichCodec`, generated.
#[rpc_core::service(name = "shop.Orders")]
pub trait Orders {
    /// Answers with the codec the request arrived in.
    #[rpc(name = "WhichCodec")]
    async fn which_codec(&self, probe: Note) -> Result<Note, rpc_core::Status>;
}

#[tokio::test]
async fn generated_clients_choose_the_codec_in_the_same_order() {
    let server = serve(
        Server::builder().add_service(shop()),
        MemoryListener::bind("codec-order").unwrap(),
    );
    let probe = || Note {
        text: String::new(),
        stars: 0,
    };
    let msgpack_endpoint = OrdersClient::new(
        Endpoint::memory("codec-order")
            .codec(CodecId::MSGPACK)
            .connect_lazy(),
    );
    let seen = msgpack_endpoint.which_codec(probe()).await.unwrap();
    assert_eq!(seen.text, "msgpack", "the channel's Endpoint::codec");
    let per_client = msgpack_endpoint.clone().with_codec(CodecId::JSON);
    let seen = per_client.which_codec(probe()).await.unwrap();
    assert_eq!(seen.text, "json", "the client's codec over the channel's");
    let seen = per_client
        .which_codec(probe())
        .codec(CodecId::MSGPACK)
        .await
        .unwrap();
    assert_eq!(seen.text, "msgpack", "the call's codec over the client's");
    let default = OrdersClient::new(Endpoint::memory("codec-order").connect_lazy());
    let seen = default.which_codec(probe()).await.unwrap();
    assert_eq!(seen.text, "json", "no Protobuf for Note: JSON is next");
    drop((msgpack_endpoint, per_client, default));
    server.shutdown().await;
}

#[tokio::test]
async fn serde_only_type_asked_for_protobuf_gets_a_clear_error() {
    let server = serve(
        Server::builder().add_service(shop()),
        MemoryListener::bind("codec-3").unwrap(),
    );
    let channel = Endpoint::memory("codec-3").connect_lazy();
    // Caught before sending.
    let err = channel
        .typed_with::<Note, Note>(
            "shop.Orders/Rate",
            &Note {
                text: "x".into(),
                stars: 1,
            },
            CallOptions::new().codec(CodecId::PROTOBUF),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented);
    assert_eq!(err.delivery(), Delivery::NotSent);
    assert!(err.message().contains("json, msgpack"), "{err}");
    // And by the server, for a caller that sends protobuf bytes anyway.
    let err = channel
        .unary(
            Request::new("shop.Orders/Rate", Bytes::from_static(&[0x0a, 0x01, b'x']))
                .with_codec(CodecId::PROTOBUF),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented);
    assert!(
        err.message().contains("Note") && err.message().contains("json, msgpack"),
        "{err}"
    );
    // The connection is fine afterwards.
    let note: Note = channel
        .typed(
            "shop.Orders/Rate",
            &Note {
                text: "y".into(),
                stars: 2,
            },
        )
        .await
        .unwrap();
    assert_eq!(note.stars, 2);
    drop(channel);
    server.shutdown().await;
}

#[tokio::test]
async fn undecodable_bodies_are_invalid_argument_with_the_field_path() {
    let server = serve(
        Server::builder().add_service(shop()),
        MemoryListener::bind("codec-4").unwrap(),
    );
    let channel = Endpoint::memory("codec-4").connect_lazy();
    let cases: [(CodecId, &[u8], &str); 3] = [
        (
            CodecId::JSON,
            br#"{"id":1,"customer":"a","skus":["x",2]}"#,
            "skus[1]",
        ),
        (CodecId::JSON, b"{\"id\":", "EOF"),
        (CodecId::PROTOBUF, &[0x12, 0x09, b'a'], "Order"),
    ];
    for (codec, body, needle) in cases {
        let err = channel
            .unary(Request::new("shop.Orders/Echo", Bytes::copy_from_slice(body)).with_codec(codec))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{codec}: {err}");
        assert!(err.message().contains(needle), "{codec}: {err}");
    }
    let back: Order = channel.typed("shop.Orders/Echo", &order()).await.unwrap();
    assert_eq!(back, order(), "the connection survived every bad body");
    drop(channel);
    server.shutdown().await;
}

#[tokio::test]
async fn server_names_the_codecs_it_accepts() {
    let json_only = CodecSet::EMPTY.with(CodecId::JSON);
    let server = serve(
        Server::builder()
            .accept_codecs(json_only)
            .add_service(shop()),
        MemoryListener::bind("codec-5").unwrap(),
    );
    let channel = Endpoint::memory("codec-5").connect_lazy();
    let err = channel
        .typed_with::<Order, Order>(
            "shop.Orders/Echo",
            &order(),
            CallOptions::new().codec(CodecId::MSGPACK),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented);
    assert_eq!(
        err.delivery(),
        Delivery::NotSent,
        "the client knew from the settings"
    );
    assert!(err.message().contains("it accepts: json"), "{err}");

    // A peer that ignores the settings is answered by the server.
    let mut raw = RawClient::connect("codec-5", Settings::protocol_default()).await;
    raw.request(1, 0, b"shop.Orders/Echo", CodecId::MSGPACK.get(), b"\x80")
        .await;
    let r = raw.response().await;
    assert_eq!(Code::from_u8(r.code), Code::Unimplemented);
    assert!(String::from_utf8_lossy(&r.message).contains("it accepts: json"));
    drop(channel);
    server.shutdown().await;
}

#[tokio::test]
async fn compressed_bodies_round_trip_when_both_sides_agree() {
    let server = serve(
        Server::builder()
            .compression(Compression::Lz4, 1024)
            .add_service(shop()),
        MemoryListener::bind("codec-6").unwrap(),
    );
    let channel = Endpoint::memory("codec-6")
        .compression(Compression::Lz4, 1024)
        .connect_lazy();
    let big = Order {
        id: 1,
        customer: "c".repeat(10_000),
        skus: (0..2_000).map(|i| format!("sku-{}", i % 10)).collect(),
    };
    for codec in [CodecId::PROTOBUF, CodecId::JSON, CodecId::MSGPACK] {
        let back: Order = channel
            .typed_with("shop.Orders/Echo", &big, CallOptions::new().codec(codec))
            .await
            .unwrap();
        assert_eq!(back, big, "{codec}");
    }

    // On the wire: a client that announces lz4 gets compressed responses above the threshold,
    // and its compressed requests are read.
    let mut settings = Settings::protocol_default();
    settings.compressions = Compression::SUPPORTED_BITS;
    let mut raw = RawClient::connect("codec-6", settings).await;
    let body = order_json(&big);
    let mut compressed = BytesMut::new();
    Compression::Lz4.compress(&body, &mut compressed);
    raw.request(
        1,
        flags::COMPRESSED,
        b"shop.Orders/Echo",
        CodecId::JSON.get(),
        &compressed,
    )
    .await;
    let r = raw.response().await;
    assert_eq!(
        Code::from_u8(r.code),
        Code::Ok,
        "{:?}",
        String::from_utf8_lossy(&r.message)
    );
    assert_ne!(
        r.flags & flags::COMPRESSED,
        0,
        "the response was compressed"
    );
    assert!(r.body.len() < body.len() / 4);
    assert_eq!(rpc_core::codec::decompress(&r.body, 1 << 22).unwrap(), body);

    // A small response stays uncompressed.
    raw.request(
        2,
        0,
        b"shop.Orders/Echo",
        CodecId::JSON.get(),
        &order_json(&order()),
    )
    .await;
    let r = raw.response().await;
    assert_eq!(r.flags & flags::COMPRESSED, 0);
    drop(channel);
    server.shutdown().await;
}

#[tokio::test]
async fn bad_compressed_bodies_are_refused_and_the_connection_survives() {
    let server = serve(
        Server::builder()
            .max_frame_size(64 * 1024)
            .add_service(shop()),
        MemoryListener::bind("codec-7").unwrap(),
    );
    let mut raw = RawClient::connect("codec-7", Settings::protocol_default()).await;
    let mut bomb = BytesMut::new();
    bomb.put_u8(Compression::Lz4.id());
    bomb.put_u32(1 << 30); // claims 1 GiB: refused before any allocation
    bomb.put_slice(&[0; 16]);
    let mut unknown = BytesMut::from(&[9u8, 0, 0, 0, 4, 1, 2, 3, 4][..]);
    let mut corrupt = BytesMut::new();
    Compression::Lz4.compress(&order_json(&order()), &mut corrupt);
    let n = corrupt.len();
    corrupt[n - 3] ^= 0xff;
    corrupt[6] ^= 0x55;
    for (id, body) in [(1u32, &mut bomb), (2, &mut unknown), (3, &mut corrupt)] {
        raw.request(
            id,
            flags::COMPRESSED,
            b"shop.Orders/Echo",
            CodecId::JSON.get(),
            body,
        )
        .await;
        let r = raw.response().await;
        assert_eq!(r.call_id, id);
        assert_eq!(
            Code::from_u8(r.code),
            Code::InvalidArgument,
            "{:?}",
            String::from_utf8_lossy(&r.message)
        );
        assert!(String::from_utf8_lossy(&r.message).contains("decompress"));
    }
    raw.request(
        4,
        0,
        b"shop.Orders/Echo",
        CodecId::JSON.get(),
        &order_json(&order()),
    )
    .await;
    assert_eq!(Code::from_u8(raw.response().await.code), Code::Ok);
    server.shutdown().await;
}

fn order_json(o: &Order) -> Bytes {
    let mut buf = BytesMut::new();
    rpc_core::codec::Json::encode(o, &mut buf).unwrap();
    buf.freeze()
}

/// A client speaking raw frames over the in-memory transport.
struct RawClient {
    io: BoxIo,
    buf: BytesMut,
    decoder: FrameDecoder,
}

impl RawClient {
    async fn connect(name: &str, settings: Settings) -> RawClient {
        let (mut io, _) = MemoryConnector::new(name).connect().await.unwrap();
        let mut out = BytesMut::new();
        out.put_slice(&protocol::PREFACE);
        protocol::encode_settings(&mut out, &settings);
        io.write_all(&out).await.unwrap();
        let mut client = RawClient {
            io,
            buf: BytesMut::new(),
            decoder: FrameDecoder::new(&settings),
        };
        while client.buf.len() < protocol::PREFACE_LEN {
            client.fill().await;
        }
        let _ = client.buf.split_to(protocol::PREFACE_LEN);
        assert!(matches!(client.frame().await, Frame::Settings(_)));
        client
    }

    async fn fill(&mut self) {
        let n = tokio::time::timeout(Duration::from_secs(10), self.io.read_buf(&mut self.buf))
            .await
            .expect("read timed out")
            .unwrap();
        assert!(n > 0, "server closed the connection");
    }

    async fn frame(&mut self) -> Frame {
        loop {
            if let Some(f) = self.decoder.decode(&mut self.buf).unwrap() {
                return f;
            }
            self.fill().await;
        }
    }

    async fn response(&mut self) -> ResponseFrame {
        loop {
            if let Frame::Response(r) = self.frame().await {
                return r;
            }
        }
    }

    async fn request(&mut self, id: u32, flags: u8, path: &[u8], codec: u8, body: &[u8]) {
        let mut out = BytesMut::new();
        protocol::encode_request(&mut out, id, flags, path, codec, 0, &Metadata::new(), body);
        self.io.write_all(&out).await.unwrap();
    }
}
