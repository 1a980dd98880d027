//! The circuit breaker: opening on failures in a row and on a failure rate, failing fast,
//! probing, closing.

use super::*;

#[tokio::test(start_paused = true)]
async fn breaker_opens_fails_fast_probes_reopens_and_closes() {
    let calls = Arc::new(AtomicUsize::new(0));
    let failing = Arc::new(AtomicBool::new(true));
    let (addr, _server) = serve_memory(
        "mw-breaker",
        Server::builder().add_service(flaky(&calls, &failing)),
    );
    let stats = Stats::new();
    let open_for = Duration::from_millis(400);
    let mut client = CircuitBreakerLayer::new()
        .config(
            BreakerConfig::new()
                .consecutive_failures(3)
                .open_for(open_for),
        )
        .stats(stats.clone())
        .layer(Endpoint::memory(addr).connect_lazy());
    let breaker = client.breaker("demo.Flaky");
    assert_eq!(breaker.state(), BreakerState::Closed);

    // Three failures in a row reach the server, then the breaker opens.
    for i in 0..3 {
        let err = call(&mut client, flaky_call()).await.unwrap_err();
        assert_eq!(err.code(), Code::Unavailable, "call {i}: {err}");
        assert_eq!(err.delivery(), Delivery::Sent, "call {i}: {err:?}");
        let expected = if i < 2 {
            BreakerState::Closed
        } else {
            BreakerState::Open
        };
        assert_eq!(breaker.state(), expected, "after failure {}", i + 1);
    }
    // The clock is paused and calls take no virtual time: the breaker opened at this instant.
    let opened_at = Instant::now();
    assert_eq!(count(&calls), 3);
    assert_eq!(stats.snapshot().breaker_opened, 1);

    // While open: fail fast, nothing sent.
    for i in 0..5 {
        let err = call(&mut client, flaky_call()).await.unwrap_err();
        assert_eq!(err.code(), Code::Unavailable, "fast call {i}: {err}");
        assert_eq!(err.delivery(), Delivery::NotSent, "fast call {i}: {err:?}");
    }
    assert_eq!(count(&calls), 3, "an open breaker let calls through");
    assert_eq!(stats.snapshot().breaker_rejected, 5);
    assert_eq!(breaker.state(), BreakerState::Open);

    // A breaker is per service: another service through the same client is not refused (the
    // server does not host it, and says so).
    let err = call(&mut client, Request::new("demo.Other/Call", ""))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented, "{err}");
    assert_eq!(client.breaker("demo.Other").state(), BreakerState::Closed);

    // It stays open for `open_for` of virtual time, to the millisecond...
    tokio::time::sleep_until(opened_at + open_for - Duration::from_millis(1)).await;
    assert_eq!(
        breaker.state(),
        BreakerState::Open,
        "half-open before open_for"
    );

    // ...then it half-opens; the one probe reaches the server, fails, and reopens it.
    eventually(LIMIT, "half-open", || async {
        breaker.state() == BreakerState::HalfOpen
    })
    .await;
    assert!(opened_at.elapsed() >= open_for);
    let err = call(&mut client, flaky_call()).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err}");
    assert_eq!(
        err.delivery(),
        Delivery::Sent,
        "the probe was not sent: {err:?}"
    );
    assert_eq!(count(&calls), 4, "the probe did not reach the server");
    assert_eq!(breaker.state(), BreakerState::Open);
    assert_eq!(stats.snapshot().breaker_opened, 2);
    let err = call(&mut client, flaky_call()).await.unwrap_err();
    assert_eq!(err.delivery(), Delivery::NotSent, "{err:?}");
    assert_eq!(count(&calls), 4);
    assert_eq!(stats.snapshot().breaker_rejected, 6);

    // The server recovers: the next probe succeeds and closes the breaker; calls flow again.
    failing.store(false, Ordering::SeqCst);
    eventually(LIMIT, "half-open again", || async {
        breaker.state() == BreakerState::HalfOpen
    })
    .await;
    let ok = call(&mut client, flaky_call()).await.unwrap();
    assert_eq!(body(&ok), "ok");
    assert_eq!(count(&calls), 5);
    assert_eq!(breaker.state(), BreakerState::Closed);
    for _ in 0..5 {
        call(&mut client, flaky_call()).await.unwrap();
    }
    assert_eq!(count(&calls), 10);

    let s = stats.snapshot();
    assert_eq!(
        (s.breaker_opened, s.breaker_rejected, s.breaker_closed),
        (2, 6, 1),
        "{s}"
    );
}

#[tokio::test(start_paused = true)]
async fn breaker_opens_on_failure_rate() {
    // Odd calls (1st, 3rd, ...) succeed, even ones fail: a failure rate of exactly 50%.
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = RawService::new("demo.Flaky").method("Call", {
        let calls = calls.clone();
        move |_req| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if n.is_multiple_of(2) {
                    Ok(Response::new("ok"))
                } else {
                    Err(Status::unavailable("every other call fails"))
                }
            }
        }
    });
    let (addr, _server) = serve_memory("mw-breaker-rate", Server::builder().add_service(svc));
    let stats = Stats::new();
    let mut client = CircuitBreakerLayer::new()
        .config(
            BreakerConfig::new()
                .consecutive_failures(100)
                .failure_rate(0.5, 10, Duration::from_secs(10))
                .open_for(Duration::from_secs(60)),
        )
        .stats(stats.clone())
        .layer(Endpoint::memory(addr).connect_lazy());
    let breaker = client.breaker("demo.Flaky");

    for i in 1..=10 {
        let result = call(&mut client, flaky_call()).await;
        assert_eq!(result.is_ok(), i % 2 == 1, "call {i}: {result:?}");
        let expected = if i < 10 {
            BreakerState::Closed
        } else {
            BreakerState::Open
        };
        assert_eq!(breaker.state(), expected, "after call {i}");
    }
    assert_eq!(stats.snapshot().breaker_opened, 1);
    let err = call(&mut client, flaky_call()).await.unwrap_err();
    assert_eq!(
        (err.code(), err.delivery()),
        (Code::Unavailable, Delivery::NotSent)
    );
    assert_eq!(count(&calls), 10);
    let s = stats.snapshot();
    assert_eq!(
        (s.breaker_opened, s.breaker_rejected, s.breaker_closed),
        (1, 1, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn breaker_probe_that_was_never_sent_does_not_close_it() {
    let calls = Arc::new(AtomicUsize::new(0));
    let failing = Arc::new(AtomicBool::new(true));
    let (addr, server) = serve_memory(
        "mw-breaker-probe",
        Server::builder().add_service(flaky(&calls, &failing)),
    );
    let stats = Stats::new();
    let mut client = CircuitBreakerLayer::new()
        .config(
            BreakerConfig::new()
                .consecutive_failures(2)
                .open_for(Duration::from_millis(100)),
        )
        .stats(stats.clone())
        .layer(Endpoint::memory(addr).connect_lazy());
    let breaker = client.breaker("demo.Flaky");
    for _ in 0..2 {
        call(&mut client, flaky_call()).await.unwrap_err();
    }
    assert_eq!(breaker.state(), BreakerState::Open);

    // The server goes away altogether: the probe cannot even connect.
    server.shutdown().await;
    eventually(LIMIT, "half-open", || async {
        breaker.state() == BreakerState::HalfOpen
    })
    .await;
    let err = call(&mut client, flaky_call()).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err}");
    assert!(err.delivery().never_processed(), "{err:?}");

    // Nothing was learnt about the server: the breaker must not have closed.
    assert_ne!(
        breaker.state(),
        BreakerState::Closed,
        "a probe that never reached the server closed the breaker"
    );
    assert_eq!(stats.snapshot().breaker_closed, 0);
}
