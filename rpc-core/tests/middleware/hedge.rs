//! Hedging: a second attempt wins, and the loser is cancelled.

use super::*;

#[tokio::test(start_paused = true)]
async fn hedge_second_attempt_wins_and_the_first_is_cancelled() {
    let calls = Arc::new(AtomicUsize::new(0));
    let stall_next = Arc::new(AtomicBool::new(true));
    let dropped = Arc::new(AtomicUsize::new(0));
    let svc = RawService::new("demo.Hedged").method("Get", {
        let (calls, stall_next, dropped) = (calls.clone(), stall_next.clone(), dropped.clone());
        move |_req| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            let stall = stall_next.swap(false, Ordering::SeqCst);
            let guard = stall.then(|| DropCount(dropped.clone()));
            async move {
                if let Some(_guard) = guard {
                    std::future::pending::<()>().await;
                }
                Ok(Response::new(format!("answer-{n}")))
            }
        }
    });
    let (addr, _server) = serve_memory("mw-hedge", Server::builder().add_service(svc));
    let stats = Stats::new();
    let mut client = HedgeLayer::new(HedgeDelay::Fixed(Duration::from_millis(20)))
        .stats(stats.clone())
        .layer(Endpoint::memory(addr).connect_lazy());
    let get = || Request::new("demo.Hedged/Get", "");

    // The first attempt stalls; the hedge answers.
    let reply = call(&mut client, get().with_idempotent(true))
        .await
        .unwrap();
    assert_eq!(body(&reply), "answer-1");
    let s = stats.snapshot();
    assert_eq!((s.hedges, s.hedge_wins), (1, 1), "{s}");
    assert_eq!(count(&calls), 2);
    // The losing attempt is cancelled on the server.
    eventually(LIMIT, "the stalled handler to be dropped", || async {
        count(&dropped) == 1
    })
    .await;

    // A quick answer is not hedged.
    let reply = call(&mut client, get().with_idempotent(true))
        .await
        .unwrap();
    assert_eq!(body(&reply), "answer-2");
    assert_eq!(stats.snapshot().hedges, 1);
    assert_eq!(count(&calls), 3);

    // Not idempotent: never hedged, however long it takes.
    stall_next.store(true, Ordering::SeqCst);
    let err = call(&mut client, get().with_timeout(Duration::from_millis(200)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err}");
    assert_eq!(count(&calls), 4, "a non-idempotent call was sent twice");
    let s = stats.snapshot();
    assert_eq!((s.hedges, s.hedge_wins), (1, 1), "{s}");
    eventually(LIMIT, "the timed-out handler to be dropped", || async {
        count(&dropped) == 2
    })
    .await;
}

/// A refusal about the call itself (here PermissionDenied) from either attempt is the answer at
/// once: the other attempt would get it too, so it is not waited for.
#[tokio::test(start_paused = true)]
async fn a_refusal_from_the_hedge_is_the_answer_at_once() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let inner = tower::service_fn(move |_req: Request| {
        let n = counted.fetch_add(1, Ordering::SeqCst);
        async move {
            if n == 0 {
                // The first attempt would answer, ten seconds later.
                tokio::time::sleep(Duration::from_secs(10)).await;
                Ok(Response::new("late"))
            } else {
                Err(Status::permission_denied("not for you"))
            }
        }
    });
    let mut client = HedgeLayer::new(HedgeDelay::Fixed(Duration::from_millis(20))).layer(inner);
    let started = tokio::time::Instant::now();
    let err = call(
        &mut client,
        Request::new("demo.Hedged/Get", "").with_idempotent(true),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err}");
    assert_eq!(count(&calls), 2);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "waited {:?} for the slow attempt",
        started.elapsed()
    );
}
