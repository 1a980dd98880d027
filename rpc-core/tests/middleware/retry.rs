//! Retries: which calls are retried, and the retry budget.

use super::*;

/// `demo.Flaky/Call`, failing with `Unavailable` while `failures_left` is above zero (each call
/// takes one), counting calls.
fn fails_first(calls: &Arc<AtomicUsize>, failures_left: &Arc<AtomicUsize>) -> RawService {
    let (calls, left) = (calls.clone(), failures_left.clone());
    RawService::new("demo.Flaky").method("Call", move |_req| {
        calls.fetch_add(1, Ordering::SeqCst);
        let fail = left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        async move {
            if fail {
                Err(Status::unavailable("not yet"))
            } else {
                Ok(Response::new("ok"))
            }
        }
    })
}

fn quick_retries() -> RetryPolicy {
    RetryPolicy::new()
        .max_attempts(3)
        .backoff(Duration::from_millis(1), Duration::from_millis(4))
}

#[tokio::test(start_paused = true)]
async fn retry_idempotent_calls_and_unsent_calls_only() {
    let calls = Arc::new(AtomicUsize::new(0));
    let failures_left = Arc::new(AtomicUsize::new(2));
    let (addr, _server) = serve_memory(
        "mw-retry",
        Server::builder().add_service(fails_first(&calls, &failures_left)),
    );
    let channel = Endpoint::memory(addr).connect_lazy();

    // Idempotent: two retries, then the answer.
    let stats = Stats::new();
    let mut client = RetryLayer::new()
        .policy(quick_retries())
        .stats(stats.clone())
        .layer(channel.clone());
    let reply = call(&mut client, flaky_call().with_idempotent(true))
        .await
        .unwrap();
    assert_eq!(body(&reply), "ok");
    assert_eq!(count(&calls), 3);
    let s = stats.snapshot();
    assert_eq!(
        (s.calls, s.retries, s.retries_over_budget),
        (1, 2, 0),
        "{s}"
    );

    // Not idempotent, and it reached the server: the first error is the answer.
    calls.store(0, Ordering::SeqCst);
    failures_left.store(2, Ordering::SeqCst);
    let stats = Stats::new();
    let mut client = RetryLayer::new()
        .policy(quick_retries())
        .stats(stats.clone())
        .layer(channel.clone());
    let err = call(&mut client, flaky_call()).await.unwrap_err();
    assert_eq!(
        (err.code(), err.delivery()),
        (Code::Unavailable, Delivery::Sent)
    );
    assert_eq!(count(&calls), 1);
    let s = stats.snapshot();
    assert_eq!((s.calls, s.retries), (1, 0), "{s}");

    // Not idempotent, but it never left: a server that is not running is retried anyway.
    let stats = Stats::new();
    let mut client = RetryLayer::new()
        .policy(quick_retries())
        .stats(stats.clone())
        .layer(Endpoint::memory("mw-retry-nobody-listens").connect_lazy());
    let err = call(&mut client, flaky_call()).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err}");
    assert_eq!(err.delivery(), Delivery::NotSent, "{err:?}");
    let s = stats.snapshot();
    assert_eq!((s.calls, s.retries), (1, 2), "{s}");
}

#[tokio::test(start_paused = true)]
async fn retry_budget_caps_retries_at_its_ratio() {
    // Always failing.
    let calls = Arc::new(AtomicUsize::new(0));
    let failures_left = Arc::new(AtomicUsize::new(usize::MAX));
    let (addr, _server) = serve_memory(
        "mw-retry-budget",
        Server::builder().add_service(fails_first(&calls, &failures_left)),
    );
    let stats = Stats::new();
    // No reserve (0 per second), 10% of calls: each call earns a tenth of a retry, and a retry
    // is taken only when the calls of the window cover it. Within the 10 s window nothing
    // expires, so retries <= calls / 10 exactly.
    let mut client = RetryLayer::new()
        .policy(quick_retries())
        .budget(RetryBudget::new(Duration::from_secs(10), 0, 0.1))
        .stats(stats.clone())
        .layer(Endpoint::memory(addr).connect_lazy());
    let t0 = Instant::now();
    for i in 0..100 {
        let err = call(&mut client, flaky_call().with_idempotent(true))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unavailable, "call {i}: {err}");
    }
    // On the paused clock only the backoff sleeps pass time: the whole run stays inside the
    // budget's window, so no deposit expired.
    assert!(
        t0.elapsed() < Duration::from_secs(9),
        "the run outlasted the budget window: {:?} of virtual time",
        t0.elapsed()
    );
    let s = stats.snapshot();
    assert_eq!(s.calls, 100, "{s}");
    assert!(
        s.retries <= 10,
        "the budget let {} retries through: {s}",
        s.retries
    );
    // One call at a time, every 10th call finds the balance at 10 and gets one retry, after which
    // the balance is 0 again: exactly 10 retries, and every other wish for a retry is refused (90
    // first retries, plus the 10 second ones).
    assert_eq!(s.retries, 10, "{s}");
    assert_eq!(s.retries_over_budget, 100, "{s}");
    assert_eq!(count(&calls), 110);
}

/// A refusal that reached no handler is safe to repeat, but a refusal about the request or the
/// caller (bad arguments, refused credentials, a cancelled call) gets the same answer again: it
/// is the answer at once. A server that does not serve the method may be a replica mid-deploy,
/// one that sheds may have room a moment later, and an attempt's own deadline may pass on a
/// replica that never took the call: those are repeated.
#[tokio::test(start_paused = true)]
async fn refusals_a_repeat_cannot_change_are_not_retried() {
    for (code, retried) in [
        (Code::PermissionDenied, false),
        (Code::Unauthenticated, false),
        (Code::InvalidArgument, false),
        (Code::Cancelled, false),
        (Code::DeadlineExceeded, true),
        (Code::Unimplemented, true),
        (Code::ResourceExhausted, true),
        (Code::Unavailable, true),
    ] {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        // What a server's middleware answers before any handler runs (as `AuthLayer` does).
        let refusing = tower::service_fn(move |_req: Request| {
            counted.fetch_add(1, Ordering::SeqCst);
            async move {
                Err::<Response, _>(
                    Status::new(code, "refused").with_delivery(Delivery::Unprocessed),
                )
            }
        });
        let stats = Stats::new();
        let mut client = RetryLayer::new()
            .policy(quick_retries())
            .stats(stats.clone())
            .layer(refusing);
        let err = call(&mut client, flaky_call()).await.unwrap_err();
        assert_eq!(err.code(), code, "{err}");
        let attempts = if retried { 3 } else { 1 };
        assert_eq!(count(&calls), attempts, "{code}");
        assert_eq!(stats.snapshot().retries, attempts as u64 - 1, "{code}");
    }
}
