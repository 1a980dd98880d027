//! When a one-way call's future resolves, and with what, seen from a fake server.

use rpc_core::protocol::flags;
use rpc_core::Channel;
use tokio::task::JoinHandle;

use super::fake::FakeServer;
use super::*;

fn spawn_call(
    channel: &Channel,
    request: Request,
) -> JoinHandle<Result<rpc_core::Response, rpc_core::Status>> {
    let channel = channel.clone();
    tokio::spawn(async move { channel.unary(request).await })
}

/// Lets every task run until all wait (the clock is paused: this ends as soon as they all do).
async fn settle() {
    tokio::time::sleep(Duration::from_millis(100)).await;
}

#[tokio::test(start_paused = true)]
async fn one_way_call_resolves_only_once_the_server_answers_the_ping_written_after_it() {
    let mut listener = MemoryListener::bind("delivery-ack-pong").unwrap();
    let channel = Endpoint::memory("delivery-ack-pong").connect_lazy();
    let call = spawn_call(&channel, publish("e1"));
    let mut fake = FakeServer::accept(&mut listener).await;

    // The request, then a PING the client writes after it.
    let (requests, ping) = tokio::time::timeout(POLL_LIMIT, fake.requests_until_ping())
        .await
        .expect("the client wrote no PING after its one-way request");
    assert_eq!(requests.len(), 1);
    assert_ne!(requests[0].flags & flags::ONE_WAY, 0);
    settle().await;
    assert!(
        !call.is_finished(),
        "a one-way call resolved before the server showed it read the request"
    );
    assert_eq!(channel.in_flight(), 1, "the call holds its in-flight slot");

    fake.pong(ping).await;
    let reply = tokio::time::timeout(POLL_LIMIT, call)
        .await
        .unwrap()
        .unwrap();
    assert!(reply.unwrap().body().is_empty());
    assert_eq!(channel.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_response_to_a_later_call_confirms_earlier_one_way_calls() {
    let mut listener = MemoryListener::bind("delivery-ack-response").unwrap();
    let channel = Endpoint::memory("delivery-ack-response").connect_lazy();
    let one_way = spawn_call(&channel, publish("e1"));
    let mut fake = FakeServer::accept(&mut listener).await;
    let first = fake.requests(1).await.remove(0);

    let two_way = spawn_call(&channel, Request::new("demo.Events/Count", ""));
    let second = fake.requests(1).await.remove(0);
    assert!(second.call_id > first.call_id);
    settle().await;
    assert!(!one_way.is_finished());

    // No PONG: the RESPONSE to the later call proves the server read the one-way request.
    fake.respond_ok(second.call_id).await;
    let reply = tokio::time::timeout(POLL_LIMIT, two_way)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&reply.unwrap().body()[..], b"done");
    let confirmed = tokio::time::timeout(POLL_LIMIT, one_way)
        .await
        .unwrap()
        .unwrap();
    assert!(confirmed.is_ok(), "{confirmed:?}");
}

#[tokio::test(start_paused = true)]
async fn one_way_calls_past_the_go_away_last_call_id_fail_unprocessed() {
    let mut listener = MemoryListener::bind("delivery-goaway").unwrap();
    let channel = Endpoint::memory("delivery-goaway").connect_lazy();
    let calls: Vec<_> = (0..3)
        .map(|i| spawn_call(&channel, publish(format!("e{i}"))))
        .collect();
    let mut fake = FakeServer::accept(&mut listener).await;
    let mut requests = fake.requests(3).await;
    requests.sort_by_key(|r| r.call_id);
    let processed = requests[0].body.clone();

    // The server goes away having processed only the first call; the PINGs stay unanswered.
    fake.goaway(requests[0].call_id).await;
    for (i, call) in calls.into_iter().enumerate() {
        let outcome = tokio::time::timeout(POLL_LIMIT, call)
            .await
            .unwrap()
            .unwrap();
        if format!("e{i}").as_bytes() == &processed[..] {
            assert!(outcome.is_ok(), "call {i}: {outcome:?}");
        } else {
            let status = outcome.expect_err("the server said it did not process this call");
            assert_eq!(status.code(), Code::Unavailable, "{status:?}");
            assert_eq!(status.delivery(), Delivery::Unprocessed, "{status:?}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_connection_lost_before_confirmation_fails_the_one_way_call_as_sent() {
    let mut listener = MemoryListener::bind("delivery-lost").unwrap();
    let channel = Endpoint::memory("delivery-lost").connect_lazy();
    let call = spawn_call(&channel, publish("e1"));
    let mut fake = FakeServer::accept(&mut listener).await;
    fake.requests(1).await;
    // The server vanishes: the request was written, and nobody knows whether it ran.
    drop(fake);
    let status = tokio::time::timeout(POLL_LIMIT, call)
        .await
        .unwrap()
        .unwrap()
        .expect_err("nothing confirmed the call");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(status.delivery(), Delivery::Sent, "{status:?}");
}
