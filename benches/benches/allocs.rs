//! Heap allocations per unary call, counted by an instrumented global allocator, on the client
//! side and on the server side separately: a raw call (`Channel::unary` to a `RawService` echo)
//! and a call through a `#[service]`-generated client and server (Protobuf), next to what the
//! codec alone allocates on each side.
//!
//! `cargo bench -p benches --bench allocs`
//!
//! The target (from the issue) is **at most 4 heap allocations per unary call outside the
//! codec**; the last row of the per-side table is that figure for the generated path.
//!
//! How the sides are told apart, given that the allocator counts the whole process:
//!
//! - The server runs on a current-thread runtime on its own thread, on TCP 127.0.0.1:0.
//! - **Server alone**: a hand-written raw client on another std thread (a blocking
//!   `std::net::TcpStream`) does the handshake, then for each call writes one pre-encoded REQUEST
//!   frame (only its call id is patched in place) and reads the response into a preallocated
//!   buffer. It allocates nothing per call (checked below against a trivial echo peer, which
//!   allocates nothing either: that pair counts 0), so everything counted is the server's.
//! - **Client + server**: a `Channel` on a current-thread runtime on the main thread calls the
//!   same server over TCP. The client's share is this total minus the server alone.
//!
//! The codec's own allocations are measured per side the same way: the client encodes the
//! request and decodes the response, the server decodes the request and encodes the response.
//!
//! A second table keeps the older total-only figures, client and server on one runtime over the
//! in-memory transport, including the hand-written typed path (`Channel::typed` +
//! `RawService::typed`). Calls are always made one at a time, after a warm-up.

use std::alloc::System;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};

use benches::{item, EchoClient, EchoServer, Echoer, Item};
use bytes::{BufMut, BytesMut};
use rpc_core::codec::{message_codecs, CodecId, Message};
use rpc_core::protocol::{
    encode_request, encode_response, encode_settings, frame_type, Settings, HEADER_LEN, PREFACE,
};
use rpc_core::server::RawService;
use rpc_core::transport::memory::MemoryListener;
use rpc_core::{Channel, Endpoint, Metadata, Request, Response, Server, Status};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const WARMUP: usize = 2_000;
const CALLS: usize = 20_000;
/// Path of the raw echo method.
const RAW_ECHO: &str = "bench.Raw/Echo";
/// Body of the raw calls.
const RAW_BODY: [u8; 64] = [7; 64];

/// The server of every measurement: a raw echo, a typed echo and the generated `Echo`.
fn server() -> Server {
    let raw_echo = RawService::new("bench.Raw")
        .method("Echo", |req: Request| async move {
            Ok(Response::new(req.into_body()))
        })
        .typed("Typed", |item: Item, _ctx| async move { Ok(item) });
    Server::builder()
        .add_service(raw_echo)
        .add_service(EchoServer::new(Echoer))
}

/// Allocations per call of `call`, after a warm-up.
async fn per_call<F, Fut>(mut call: F) -> f64
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for _ in 0..WARMUP {
        call().await;
    }
    let region = Region::new(GLOBAL);
    for _ in 0..CALLS {
        call().await;
    }
    region.change().allocations as f64 / CALLS as f64
}

/// Allocations per raw `Channel::unary` echo of [`RAW_BODY`].
async fn raw_call(channel: &Channel) -> f64 {
    let body = bytes::Bytes::from_static(&RAW_BODY);
    per_call(|| {
        let body = body.clone();
        async move {
            let r = channel.unary(Request::new(RAW_ECHO, body)).await;
            std::hint::black_box(r.unwrap());
        }
    })
    .await
}

/// Allocations per call through the generated client (the caller's `item()` included).
async fn generated_call(client: &EchoClient) -> f64 {
    per_call(|| async move {
        std::hint::black_box(client.echo(item()).await.unwrap());
    })
    .await
}

/// Allocations per call of a blocking `call`, after a warm-up.
fn per_call_blocking(mut call: impl FnMut()) -> f64 {
    for _ in 0..WARMUP {
        call();
    }
    let region = Region::new(GLOBAL);
    for _ in 0..CALLS {
        call();
    }
    region.change().allocations as f64 / CALLS as f64
}

/// Starts [`server`] on TCP 127.0.0.1:0, on a current-thread runtime on its own thread, which
/// lives as long as the process.
fn spawn_tcp_server() -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("server".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("server runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                tx.send(listener.local_addr().expect("local_addr"))
                    .expect("main thread waits");
                server().serve(listener).await.expect("server");
            });
        })
        .expect("spawn server thread");
    rx.recv().expect("server address")
}

/// A blocking client speaking raw frames, which allocates nothing per call: the request frame is
/// encoded once and its call id patched in place, the response is read into a preallocated buffer.
struct RawClient {
    stream: TcpStream,
    request: Vec<u8>,
    call_id: u32,
    response: Vec<u8>,
}

impl RawClient {
    /// Connects and does the client side of the handshake. Every call sends `path` with `body`
    /// in `codec`, no deadline, no metadata: the frame a `Channel` writes for the same call.
    fn connect(addr: SocketAddr, path: &str, codec: CodecId, body: &[u8]) -> RawClient {
        let mut stream = TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        let mut out = BytesMut::new();
        out.put_slice(&PREFACE);
        encode_settings(&mut out, &Settings::protocol_default());
        stream.write_all(&out).expect("send preface");
        let mut preface = [0; PREFACE.len()];
        stream.read_exact(&mut preface).expect("server preface");
        assert_eq!(preface, PREFACE, "server preface");
        let mut request = BytesMut::new();
        encode_request(
            &mut request,
            1,
            0,
            path.as_bytes(),
            codec.get(),
            0,
            &Metadata::new(),
            body,
        );
        let mut client = RawClient {
            stream,
            request: request.to_vec(),
            call_id: 0,
            response: vec![0; 64 * 1024],
        };
        let (kind, _) = client.read_frame();
        assert_eq!(kind, frame_type::SETTINGS, "the server's first frame");
        client
    }

    /// Reads one frame into the response buffer: its type and payload length.
    fn read_frame(&mut self) -> (u8, usize) {
        let mut header = [0; HEADER_LEN];
        self.stream.read_exact(&mut header).expect("frame header");
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        assert!(len <= self.response.len(), "a {len}-byte frame");
        self.stream
            .read_exact(&mut self.response[..len])
            .expect("frame payload");
        let call_id = u32::from_be_bytes([header[6], header[7], header[8], header[9]]);
        if header[4] == frame_type::RESPONSE {
            assert_eq!(call_id, self.call_id, "response to the call in flight");
        }
        (header[4], len)
    }

    /// One call: returns the response's status code.
    fn call(&mut self) -> u8 {
        self.call_id += 1;
        self.request[6..HEADER_LEN].copy_from_slice(&self.call_id.to_be_bytes());
        self.stream.write_all(&self.request).expect("send request");
        let (kind, _) = self.read_frame();
        assert_eq!(kind, frame_type::RESPONSE, "a response");
        self.response[0]
    }
}

/// Server allocations per call: a [`RawClient`] on its own thread drives the server at `addr`.
/// The main thread only waits, so nothing but the server allocates while it counts.
fn server_alone(addr: SocketAddr, path: &'static str, codec: CodecId, body: Vec<u8>) -> f64 {
    std::thread::spawn(move || {
        let mut client = RawClient::connect(addr, path, codec, &body);
        assert_eq!(client.call(), 0, "{path} answers Ok");
        per_call_blocking(|| {
            std::hint::black_box(client.call());
        })
    })
    .join()
    .expect("raw client thread")
}

/// Allocations per call of a [`RawClient`] talking to a trivial blocking echo peer that also
/// allocates nothing per call: both sides together, so 0 proves that the raw client allocates
/// nothing in its loop.
fn raw_client_self_check() -> f64 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("local_addr");
    let peer = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        stream.set_nodelay(true).expect("nodelay");
        let mut response = BytesMut::new();
        encode_response(&mut response, 1, 0, 0, b"", &Metadata::new(), &RAW_BODY);
        let mut response = response.to_vec();
        let mut buf = vec![0; 64 * 1024];
        stream
            .read_exact(&mut buf[..PREFACE.len()])
            .expect("preface");
        let mut hello = BytesMut::new();
        hello.put_slice(&PREFACE);
        encode_settings(&mut hello, &Settings::protocol_default());
        stream.write_all(&hello).expect("send preface");
        loop {
            let mut header = [0; HEADER_LEN];
            if stream.read_exact(&mut header).is_err() {
                return; // the client is done
            }
            let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
            stream.read_exact(&mut buf[..len]).expect("payload");
            if header[4] == frame_type::REQUEST {
                response[6..HEADER_LEN].copy_from_slice(&header[6..HEADER_LEN]);
                stream.write_all(&response).expect("send response");
            }
        }
    });
    let count = server_alone(addr, RAW_ECHO, CodecId::RAW, RAW_BODY.to_vec());
    peer.join().expect("echo peer");
    count
}

/// Client and server side of one call's codec work, per call.
struct CodecSplit {
    client: f64,
    server: f64,
}

fn codec_split() -> CodecSplit {
    let codecs = message_codecs!(Item);
    let value = item();
    let request = codecs.encode_to_bytes(CodecId::PROTOBUF, &value).unwrap();
    let response = request.clone();
    let client = per_call_blocking(|| {
        let req = codecs.encode_to_bytes(CodecId::PROTOBUF, &value).unwrap();
        std::hint::black_box(req);
        let decoded = codecs.decode(CodecId::PROTOBUF, response.clone()).unwrap();
        std::hint::black_box(decoded);
    });
    let server = per_call_blocking(|| {
        let decoded = codecs.decode(CodecId::PROTOBUF, request.clone()).unwrap();
        let resp = codecs.encode_to_bytes(CodecId::PROTOBUF, &decoded).unwrap();
        std::hint::black_box(resp);
    });
    CodecSplit { client, server }
}

/// The older figures: client and server on one runtime over the in-memory transport.
fn in_memory_totals(rt: &tokio::runtime::Runtime, codec_only: f64, make_item: f64) {
    rt.block_on(async {
        let listener = MemoryListener::bind("allocs").expect("bind");
        tokio::spawn(server().serve(listener));
        let channel: Channel = Endpoint::memory("allocs").connect_lazy();
        channel.ready().await.expect("connects");
        let client = EchoClient::new(channel.clone());

        let raw = raw_call(&channel).await;
        let typed = per_call(|| {
            let channel = &channel;
            async move {
                let r: Result<Item, Status> = channel.typed("bench.Raw/Typed", &item()).await;
                std::hint::black_box(r.unwrap());
            }
        })
        .await;
        let generated = generated_call(&client).await;

        println!(
            "allocations per unary call, client + server on one runtime, in-memory transport:"
        );
        println!();
        println!("| path | allocations | beyond the codec |");
        println!("|---|---|---|");
        println!("| codec alone: encode + decode, request and response | {codec_only:.2} | - |");
        println!("| raw Channel::unary, 64 B body (no codec) | {raw:.2} | {raw:.2} |");
        let typed_net = typed - make_item;
        println!(
            "| Channel::typed + RawService::typed | {typed_net:.2} | {:.2} |",
            typed_net - codec_only
        );
        let generated_net = generated - make_item;
        println!(
            "| #[service] client + server | {generated_net:.2} | {:.2} |",
            generated_net - codec_only
        );
    });
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");

    let codec = codec_split();
    let codec_only = codec.client + codec.server;
    // `item()` allocates its String once per call in the typed cases; that is the caller's.
    let make_item = per_call_blocking(|| {
        std::hint::black_box(item());
    });
    let self_check = raw_client_self_check();

    // Client + server over TCP: the channel on this thread, the server on its own.
    let addr = spawn_tcp_server();
    let (raw_total, generated_total) = rt.block_on(async {
        let channel: Channel = Endpoint::tcp(addr).connect_lazy();
        channel.ready().await.expect("connects");
        let client = EchoClient::new(channel.clone());
        let raw = raw_call(&channel).await;
        let generated = generated_call(&client).await;
        (raw, generated - make_item)
    });

    // The server alone, driven by the raw client; this thread's runtime is idle meanwhile.
    let raw_server = server_alone(addr, RAW_ECHO, CodecId::RAW, RAW_BODY.to_vec());
    let echo_path = EchoClient::<Channel>::DESCRIPTOR
        .method("Echo")
        .expect("the echo method")
        .path;
    let item_body = Item::codecs()
        .encode_to_bytes(CodecId::PROTOBUF, &item())
        .expect("encodes")
        .to_vec();
    let generated_server = server_alone(addr, echo_path, CodecId::PROTOBUF, item_body);

    let raw_client = raw_total - raw_server;
    let generated_client = generated_total - generated_server;

    println!("heap allocations per unary call, client and server side (TCP loopback, one call at a time):");
    println!();
    println!("| path | client allocs/call | server allocs/call | total |");
    println!("|---|---|---|---|");
    println!(
        "| raw Channel::unary, 64 B body, RawService echo | {raw_client:.2} | {raw_server:.2} | {raw_total:.2} |"
    );
    println!(
        "| #[service] client + server, protobuf | {generated_client:.2} | {generated_server:.2} | {generated_total:.2} |"
    );
    println!(
        "| codec alone (client: req encode + resp decode; server: req decode + resp encode) | {:.2} | {:.2} | {codec_only:.2} |",
        codec.client, codec.server
    );
    println!(
        "| #[service] beyond the codec (target: at most 4 per call) | {:.2} | {:.2} | {:.2} |",
        generated_client - codec.client,
        generated_server - codec.server,
        generated_total - codec_only
    );
    println!();
    println!(
        "(raw client against a trivial echo peer, both sides: {self_check:.2} allocations per call; \
         the caller's `item()` ({make_item:.2}) is not counted for the generated client)"
    );
    println!();

    in_memory_totals(&rt, codec_only, make_item);
}
