//! A real server shutting down gracefully while one-way calls stream in.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use rpc_core::server::RawService;
use rpc_core::transport::Listener;
use rpc_core::{Response, Server};
use tokio::sync::mpsc;

use super::support::serve;
use super::*;

#[tokio::test(start_paused = true)]
async fn one_way_calls_cut_off_by_graceful_shutdown_are_never_ok_unless_run() {
    let listener = MemoryListener::bind("delivery-shutdown").unwrap();
    shut_down_while_one_way_calls_stream_in(listener, Endpoint::memory("delivery-shutdown")).await;
}

#[tokio::test]
async fn over_tcp_one_way_calls_cut_off_by_graceful_shutdown_are_never_ok_unless_run() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = Endpoint::tcp(listener.local_addr().unwrap());
    shut_down_while_one_way_calls_stream_in(listener, endpoint).await;
}

/// Streams one-way calls at a server that shuts down gracefully once it has run a few hundred:
/// a call reported `Ok` ran, and a call reported never processed did not.
async fn shut_down_while_one_way_calls_stream_in(listener: impl Listener, endpoint: Endpoint) {
    const CALLS: u32 = 10_000;
    const SHUT_DOWN_AFTER: usize = 200;
    let ran = Arc::new(Mutex::new(HashSet::new()));
    let (half_way, mut reached) = mpsc::unbounded_channel();
    let svc = {
        let ran = ran.clone();
        RawService::new("demo.Events").method("Publish", move |req: rpc_core::Request| {
            let i: u32 = std::str::from_utf8(req.body())
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            let mut ran = ran.lock().unwrap();
            ran.insert(i);
            if ran.len() == SHUT_DOWN_AFTER {
                let _ = half_way.send(());
            }
            async { Ok(Response::default()) }
        })
    };
    let server = serve(Server::builder().add_service(svc), listener);
    let channel = endpoint.connect_lazy();
    let calls: Vec<_> = (0..CALLS)
        .map(|i| {
            let channel = channel.clone();
            // Padded so that the calls in flight span many reads of the server.
            tokio::spawn(async move { (i, channel.unary(publish(format!("{i:>512}"))).await) })
        })
        .collect();

    reached.recv().await.unwrap();
    server.shutdown().await;

    let (mut ok, mut unprocessed, mut not_sent, mut other) = (0, 0, 0, 0);
    for call in calls {
        let (i, outcome) = tokio::time::timeout(POLL_LIMIT, call)
            .await
            .expect("a one-way call never resolved")
            .unwrap();
        let run = ran.lock().unwrap().contains(&i);
        match outcome {
            Ok(_) => {
                assert!(run, "call {i} was reported Ok but its handler never ran");
                ok += 1;
            }
            Err(status) => {
                assert_eq!(status.code(), Code::Unavailable, "call {i}: {status:?}");
                match status.delivery() {
                    Delivery::Unprocessed => unprocessed += 1,
                    Delivery::NotSent => not_sent += 1,
                    _ => other += 1,
                }
                if status.delivery().never_processed() {
                    assert!(
                        !run,
                        "call {i} ran but was reported not processed: {status:?}"
                    );
                }
            }
        }
    }
    eprintln!("ok {ok} unprocessed {unprocessed} not sent {not_sent} other {other}");
    assert!(ok >= SHUT_DOWN_AFTER, "ok {ok}");
    assert!(
        unprocessed + not_sent + other > 0,
        "the shutdown cut no call off (ok {ok}): the test did not exercise it"
    );
}
