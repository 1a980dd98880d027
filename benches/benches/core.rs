//! The core of rpc-core without the codecs: frame encode and decode, and one unary call over the
//! in-memory transport, raw (`Channel::unary` to a `RawService` echo) and through a
//! `#[service]`-generated client and server (Protobuf).
//!
//! `cargo bench -p benches --bench core`
//!
//! Codec encode and decode are in `codecs.rs`. The calls run one at a time on a current-thread
//! runtime, client and server on the same thread, so a unary figure is the full round trip of
//! both sides (no network, no thread hop).

use std::hint::black_box;
use std::time::{Duration, Instant};

use benches::{item, EchoClient, EchoServer, Echoer};
use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rpc_core::protocol::{encode_request, FrameDecoder, Settings};
use rpc_core::server::RawService;
use rpc_core::transport::memory::MemoryListener;
use rpc_core::{Channel, Endpoint, Metadata, Request, Response, Server};

/// Body sizes of the frame and raw-call benchmarks.
const BODIES: [(&str, usize); 2] = [("64B", 64), ("4KiB", 4096)];
/// The method path written in the frames.
const PATH: &str = "bench.Raw/Echo";

fn frames(c: &mut Criterion) {
    let metadata = Metadata::new();
    let decoder = FrameDecoder::new(&Settings::protocol_default());
    for (size, len) in BODIES {
        let body = vec![7u8; len];
        let mut encoded = BytesMut::new();
        encode_request(&mut encoded, 1, 0, PATH.as_bytes(), 0, 0, &metadata, &body);
        let encoded: Bytes = encoded.freeze();

        let mut group = c.benchmark_group(format!("frame/{size}"));
        group.throughput(Throughput::Bytes(encoded.len() as u64));
        let mut buf = BytesMut::with_capacity(encoded.len());
        group.bench_function("encode_request", |b| {
            b.iter(|| {
                buf.clear();
                encode_request(
                    &mut buf,
                    black_box(1),
                    0,
                    black_box(PATH.as_bytes()),
                    0,
                    0,
                    &metadata,
                    black_box(&body),
                );
            })
        });
        // The decoded frame shares `buf`'s memory; once it is dropped, `clear` + `extend` reuse
        // the same allocation, as the connection's read buffer does.
        let mut buf = BytesMut::with_capacity(encoded.len());
        group.bench_function("decode", |b| {
            b.iter(|| {
                buf.clear();
                buf.extend_from_slice(&encoded);
                decoder
                    .decode(black_box(&mut buf))
                    .expect("decodes")
                    .expect("a whole frame")
            })
        });
        group.finish();
    }
}

fn unary(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (channel, client) = rt.block_on(async {
        let raw_echo = RawService::new("bench.Raw").method("Echo", |req: Request| async move {
            Ok(Response::new(req.into_body()))
        });
        let listener = MemoryListener::bind("core-bench").expect("bind");
        tokio::spawn(
            Server::builder()
                .add_service(raw_echo)
                .add_service(EchoServer::new(Echoer))
                .serve(listener),
        );
        let channel: Channel = Endpoint::memory("core-bench").connect_lazy();
        channel.ready().await.expect("connects");
        let client = EchoClient::new(channel.clone());
        (channel, client)
    });

    let mut group = c.benchmark_group("unary/memory");
    for (size, len) in BODIES {
        let req = Request::new(PATH, vec![7u8; len]);
        group.bench_function(format!("raw/{size}"), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let t = Instant::now();
                    for _ in 0..iters {
                        black_box(channel.unary(req.clone()).await.unwrap());
                    }
                    t.elapsed()
                })
            })
        });
    }
    let value = item();
    group.bench_function("service/protobuf", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let t = Instant::now();
                for _ in 0..iters {
                    black_box(client.echo(value.clone()).await.unwrap());
                }
                t.elapsed()
            })
        })
    });
    group.finish();
}

criterion_group! {
    name = core;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = frames, unary
}
criterion_main!(core);
