//! A peer that stops reading: the bytes a connection queues are bounded, and callers wait for room
//! or fail at once, as the endpoint says.

use std::future::{poll_fn, Future};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;

use tower::{Service, ServiceExt};

use super::fake::FakeServer;
use super::*;

const LIMIT: usize = 64 * 1024;
const BODY: usize = 16 * 1024;
const CALLS: usize = 64;
/// What the in-memory pipe buffers (`PIPE_CAPACITY`), the limit, the one request admitted below it,
/// the batch being written and frame headers: all a non-reading peer may cost.
const BOUND: usize = 256 * 1024 + 2 * LIMIT + 2 * BODY;

fn big_publish() -> Request {
    publish(vec![7u8; BODY])
}

#[tokio::test(start_paused = true)]
async fn callers_wait_for_room_while_the_peer_does_not_read() {
    let mut listener = MemoryListener::bind("delivery-wait").unwrap();
    let channel = Endpoint::memory("delivery-wait")
        .max_unwritten_bytes(LIMIT)
        .connect_lazy();
    let connected = {
        let channel = channel.clone();
        tokio::spawn(async move { channel.ready().await })
    };
    // Handshake, then read nothing.
    let fake = FakeServer::accept(&mut listener).await;
    connected.await.unwrap().unwrap();

    let issued = Arc::new(AtomicUsize::new(0));
    let producer = {
        let issued = issued.clone();
        let mut svc = channel.clone();
        tokio::spawn(async move {
            let mut calls = Vec::new();
            for _ in 0..CALLS {
                let ready = ServiceExt::ready(&mut svc).await.expect("ready");
                calls.push(tokio::spawn(ready.call(big_publish())));
                issued.fetch_add(1, Ordering::SeqCst);
            }
            calls
        })
    };
    // Let the client write what the pipe takes and queue up to its limit; the rest must wait.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let queued = issued.load(Ordering::SeqCst);
    assert!(
        queued < CALLS,
        "every call was queued: nothing bounds the queue"
    );
    assert!(
        queued * BODY <= BOUND,
        "{queued} calls of {BODY} bytes taken, beyond {BOUND} bytes"
    );

    // The peer reads again (and answers the acknowledgement pings): every caller proceeds.
    let serving = tokio::spawn(fake.serve());
    let calls = tokio::time::timeout(POLL_LIMIT, producer)
        .await
        .unwrap()
        .unwrap();
    for call in calls {
        let outcome = tokio::time::timeout(POLL_LIMIT, call)
            .await
            .unwrap()
            .unwrap();
        assert!(outcome.is_ok(), "{outcome:?}");
    }
    drop(channel);
    let served = tokio::time::timeout(POLL_LIMIT, serving)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(served, CALLS);
}

#[tokio::test(start_paused = true)]
async fn callers_that_asked_not_to_wait_fail_resource_exhausted_not_sent() {
    let mut listener = MemoryListener::bind("delivery-no-wait").unwrap();
    let mut channel = Endpoint::memory("delivery-no-wait")
        .max_unwritten_bytes(LIMIT)
        .wait_for_write_capacity(false)
        .connect_lazy();
    let connected = {
        let channel = channel.clone();
        tokio::spawn(async move { channel.ready().await })
    };
    let fake = FakeServer::accept(&mut listener).await;
    connected.await.unwrap().unwrap();

    let mut pending = Vec::new();
    let mut refused = None;
    for i in 0..CALLS {
        let ready = ServiceExt::ready(&mut channel)
            .await
            .expect("poll_ready does not wait for room");
        let mut call = Box::pin(ready.call(big_publish()));
        match poll_fn(|cx| Poll::Ready(call.as_mut().poll(cx))).await {
            Poll::Ready(Err(status)) => {
                refused = Some((i, status));
                break;
            }
            Poll::Ready(Ok(_)) => panic!("a one-way call resolved before the server read it"),
            Poll::Pending => pending.push(call),
        }
        // Let the connection write what the pipe takes.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let (i, status) = refused.expect("no call was refused: nothing bounds the queue");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(status.delivery(), Delivery::NotSent, "{status:?}");
    assert!(
        i * BODY <= BOUND,
        "{i} calls of {BODY} bytes taken before the refusal"
    );

    // Once the peer reads, the queued calls complete and new ones are taken again.
    let taken = pending.len();
    let serving = tokio::spawn(fake.serve());
    for call in pending {
        let outcome = tokio::time::timeout(POLL_LIMIT, call).await.unwrap();
        assert!(outcome.is_ok(), "{outcome:?}");
    }
    let late = ServiceExt::ready(&mut channel)
        .await
        .unwrap()
        .call(big_publish());
    let late = tokio::time::timeout(POLL_LIMIT, late).await.unwrap();
    assert!(late.is_ok(), "{late:?}");
    drop(channel);
    let served = tokio::time::timeout(POLL_LIMIT, serving)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(served, taken + 1, "the refused call was not sent");
}
