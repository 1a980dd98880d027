//! Encode and decode through rpc-codec's per-type table next to the same library called directly.
//!
//! `cargo bench -p benches --bench codecs`; `python3 benches/codec_overhead.py` prints the ratios.

use std::hint::black_box;
use std::time::Duration;

use benches::{order, Order, SIZES};
use bytes::{BufMut, Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use prost::Message as _;
use rpc_core::codec::{CodecId, Message};

fn direct_encode(codec: CodecId, value: &Order, buf: &mut BytesMut) {
    match codec {
        CodecId::PROTOBUF => value.encode(buf).expect("BytesMut grows"),
        CodecId::JSON => serde_json::to_writer(buf.writer(), value).expect("json"),
        _ => rmp_serde::encode::write_named(&mut buf.writer(), value).expect("msgpack"),
    }
}

fn direct_decode(codec: CodecId, bytes: Bytes) -> Order {
    match codec {
        CodecId::PROTOBUF => Order::decode(bytes).expect("protobuf"),
        CodecId::JSON => serde_json::from_slice(&bytes).expect("json"),
        _ => rmp_serde::from_slice(&bytes).expect("msgpack"),
    }
}

fn bench(c: &mut Criterion) {
    let codecs = Order::codecs();
    for (size, items) in SIZES {
        let value = order(items);
        for codec in [CodecId::PROTOBUF, CodecId::JSON, CodecId::MSGPACK] {
            let encoded = codecs.encode_to_bytes(codec, &value).expect("encodes");
            let mut group = c.benchmark_group(format!("{codec}/{size}"));
            group.throughput(Throughput::Bytes(encoded.len() as u64));
            let mut buf = BytesMut::with_capacity(encoded.len() * 2);
            group.bench_function("encode/rpc_codec", |b| {
                b.iter(|| {
                    buf.clear();
                    codecs
                        .encode(codec, black_box(&value), &mut buf)
                        .expect("encodes");
                })
            });
            group.bench_function("encode/direct", |b| {
                b.iter(|| {
                    buf.clear();
                    direct_encode(codec, black_box(&value), &mut buf);
                })
            });
            group.bench_function("decode/rpc_codec", |b| {
                b.iter(|| {
                    codecs
                        .decode(codec, black_box(encoded.clone()))
                        .expect("decodes")
                })
            });
            group.bench_function("decode/direct", |b| {
                b.iter(|| direct_decode(codec, black_box(encoded.clone())))
            });
            group.finish();
        }
    }
}

criterion_group! {
    name = codecs;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        // Shorter runs swing by ±10% on a 2-core VM; 4 s keeps the ours/direct ratio steady.
        .measurement_time(Duration::from_secs(4))
        .sample_size(50);
    targets = bench
}
criterion_main!(codecs);
