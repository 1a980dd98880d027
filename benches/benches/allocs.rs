//! Heap allocations per unary call, counted by an instrumented global allocator: a raw call, a
//! typed call through the hand-written path (`Channel::typed` + `RawService::typed`), and a call
//! through a `#[service]`-generated client and server, next to what the codec alone allocates.
//!
//! `cargo bench -p benches --bench allocs`
//!
//! Client and server run on one current-thread runtime over the in-memory transport, so each
//! figure is the sum of both sides. Calls are made one at a time after a warm-up.

use std::alloc::System;

use benches::Item;
use rpc_core::codec::{message_codecs, CodecId};
use rpc_core::server::RawService;
use rpc_core::transport::memory::MemoryListener;
use rpc_core::{service, Channel, Endpoint, Request, Response, Server, Status};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const WARMUP: usize = 2_000;
const CALLS: usize = 20_000;

/// Echoes an item.
#[service(name = "bench.Echo")]
pub trait Echo {
    /// Returns the item.
    async fn echo(&self, item: Item) -> Result<Item, Status>;
}

struct Echoer;

impl Echo for Echoer {
    async fn echo(&self, item: Item) -> Result<Item, Status> {
        Ok(item)
    }
}

fn item() -> Item {
    Item {
        sku: "sku-00012345".into(),
        quantity: 3,
        price_cents: 1999,
    }
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

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let raw_echo = RawService::new("bench.Raw")
            .method("Echo", |req: Request| async move {
                Ok(Response::new(req.into_body()))
            })
            .typed("Typed", |item: Item, _ctx| async move { Ok(item) });
        let listener = MemoryListener::bind("allocs").expect("bind");
        tokio::spawn(
            Server::builder()
                .add_service(raw_echo)
                .add_service(EchoServer::new(Echoer))
                .serve(listener),
        );
        let channel: Channel = Endpoint::memory("allocs").connect_lazy();
        channel.ready().await.expect("connects");
        let client = EchoClient::new(channel.clone());
        let body = bytes::Bytes::from_static(&[7u8; 64]);

        let codecs = message_codecs!(Item);
        let value = item();
        let codec_only = per_call(|| {
            let value = &value;
            async move {
                let req = codecs.encode_to_bytes(CodecId::PROTOBUF, value).unwrap();
                let decoded = codecs.decode(CodecId::PROTOBUF, req).unwrap();
                let resp = codecs.encode_to_bytes(CodecId::PROTOBUF, &decoded).unwrap();
                std::hint::black_box(codecs.decode(CodecId::PROTOBUF, resp).unwrap());
            }
        })
        .await;
        let raw = per_call(|| {
            let channel = &channel;
            let body = body.clone();
            async move {
                let r = channel.unary(Request::new("bench.Raw/Echo", body)).await;
                std::hint::black_box(r.unwrap());
            }
        })
        .await;
        let typed = per_call(|| {
            let channel = &channel;
            async move {
                let r: Result<Item, Status> = channel.typed("bench.Raw/Typed", &item()).await;
                std::hint::black_box(r.unwrap());
            }
        })
        .await;
        let generated = per_call(|| {
            let client = &client;
            async move {
                std::hint::black_box(client.echo(item()).await.unwrap());
            }
        })
        .await;
        // `item()` itself allocates its String once per call in the two typed cases.
        let make_item = per_call(|| async {
            std::hint::black_box(item());
        })
        .await;

        println!("allocations per unary call (client + server, one at a time, protobuf):");
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
