//! Every system echoes correctly under concurrency: 2000 calls from 256 tasks over one client
//! (one connection), payloads of 64 B and 64 KiB that differ per call (the order systems send
//! their order, numbered after the payload, whatever its size).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use benches::systems::{self, Client, System};
use bytes::Bytes;

const CALLS: usize = 2000;
const TASKS: usize = 256;

/// A payload of `len` bytes unique to call `call`.
fn payload(call: usize, len: usize) -> Bytes {
    let mut v = Vec::with_capacity(len);
    let seed = (call as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut x = seed;
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    // The call number up front, so payloads differ even if the generator collided.
    let n = (call as u32).to_le_bytes();
    v[..4].copy_from_slice(&n);
    Bytes::from(v)
}

async fn check(system: System, len: usize) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let server = tokio::spawn(systems::serve(system, listener));
    let client = Client::connect(system, addr)
        .await
        .unwrap_or_else(|e| panic!("{system}: connect: {e}"));
    let next = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let client = client.clone();
            let next = next.clone();
            tokio::spawn(async move {
                let mut done = 0;
                loop {
                    let call = next.fetch_add(1, Ordering::Relaxed);
                    if call >= CALLS {
                        return done;
                    }
                    let sent = payload(call, len);
                    let got = client
                        .echo(sent.clone())
                        .await
                        .unwrap_or_else(|e| panic!("{system} {len} B call {call}: {e}"));
                    assert!(got == sent, "{system} {len} B call {call}: reply differs");
                    done += 1;
                }
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await.expect("task");
    }
    assert_eq!(total, CALLS, "{system}");
    assert!(!server.is_finished(), "{system}: server stopped");
    server.abort();
}

async fn run(system: System) {
    for len in [64, 64 * 1024] {
        let start = std::time::Instant::now();
        check(system, len).await;
        eprintln!(
            "{system}: {CALLS} calls of {len} B from {TASKS} tasks in {:?}",
            start.elapsed()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw() {
    run(System::Raw).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ours_raw() {
    run(System::OursRaw).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ours_protobuf() {
    run(System::OursProtobuf).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tonic() {
    run(System::Tonic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tarpc() {
    run(System::Tarpc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ours_order_protobuf() {
    run(System::OursOrderProtobuf).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ours_order_json() {
    run(System::OursOrderJson).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ours_order_msgpack() {
    run(System::OursOrderMsgpack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tonic_order() {
    run(System::TonicOrder).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tarpc_order() {
    run(System::TarpcOrder).await;
}
