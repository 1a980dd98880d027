//! Rate limits and per-caller quotas, with their retry-after hints.

use super::*;

fn counted(name: &str, calls: &Arc<AtomicUsize>) -> RawService {
    let calls = calls.clone();
    RawService::new(name).method("Get", move |req: Request| {
        calls.fetch_add(1, Ordering::SeqCst);
        async move { Ok(Response::new(req.into_body())) }
    })
}

fn from_caller(path: &'static str, caller: Option<&str>) -> Request {
    let mut req = Request::new(path, "hi");
    if let Some(caller) = caller {
        req.metadata_mut().insert("caller", caller.to_owned());
    }
    req
}

/// Asserts `err` is a rate-limit refusal with a retry-after hint in `1..=max_ms`; returns it.
fn retry_after(err: &Status, max_ms: u64) -> u64 {
    assert_eq!(err.code(), Code::ResourceExhausted, "{err}");
    let ms: u64 = err
        .metadata()
        .get_str(RETRY_AFTER_MS)
        .unwrap_or_else(|| panic!("no {RETRY_AFTER_MS} in {err:?}"))
        .parse()
        .unwrap();
    assert!(ms > 0 && ms <= max_ms, "retry after {ms} ms");
    ms
}

#[tokio::test(start_paused = true)]
async fn quota_per_caller() {
    let calls = Arc::new(AtomicUsize::new(0));
    let stats = Stats::new();
    let limited = RateLimitLayer::new()
        .per_caller(1.0, 3.0)
        .caller_key("caller")
        .stats(stats.clone())
        .layer(counted("demo.Quota", &calls));
    let (addr, _server) = serve_memory("mw-quota", Server::builder().add_service(limited));
    let channel = Endpoint::memory(addr).connect_lazy();
    let get = |caller| from_caller("demo.Quota/Get", caller);

    for i in 0..3 {
        let reply = channel.unary(get(Some("a"))).await;
        assert!(reply.is_ok(), "call {i} of a: {reply:?}");
    }
    let err = channel.unary(get(Some("a"))).await.unwrap_err();
    retry_after(&err, 1_000);
    assert_eq!(count(&calls), 3, "a refused call reached the service");

    // Another caller has its own quota, and so do calls naming no caller.
    for caller in [Some("b"), None] {
        for i in 0..3 {
            let reply = channel.unary(get(caller)).await;
            assert!(reply.is_ok(), "call {i} of {caller:?}: {reply:?}");
        }
        let err = channel.unary(get(caller)).await.unwrap_err();
        retry_after(&err, 1_000);
    }
    // "a" is still over its quota.
    let err = channel.unary(get(Some("a"))).await.unwrap_err();
    retry_after(&err, 1_000);
    assert_eq!(count(&calls), 9);
    assert_eq!(stats.snapshot().rate_limited, 4);
}

#[tokio::test(start_paused = true)]
async fn global_rate_limit_and_retry_after() {
    let calls = Arc::new(AtomicUsize::new(0));
    let stats = Stats::new();
    let limited = RateLimitLayer::new()
        .global(10.0, 2.0)
        .stats(stats.clone())
        .layer(counted("demo.Quota", &calls));
    let (addr, _server) = serve_memory("mw-global-limit", Server::builder().add_service(limited));
    let channel = Endpoint::memory(addr).connect_lazy();
    let get = |caller| from_caller("demo.Quota/Get", caller);

    channel.unary(get(Some("a"))).await.unwrap();
    channel.unary(get(Some("b"))).await.unwrap();
    // The bucket is shared: a third caller is refused too.
    let err = channel.unary(get(Some("c"))).await.unwrap_err();
    let wait = retry_after(&err, 100);
    assert_eq!(count(&calls), 2);
    assert_eq!(stats.snapshot().rate_limited, 1);

    // After the hint (exactly, on the paused clock), a token is back.
    tokio::time::sleep(Duration::from_millis(wait)).await;
    let reply = channel.unary(get(Some("c"))).await;
    assert!(
        reply.is_ok(),
        "no token came back after {wait} ms: {reply:?}"
    );
    assert_eq!(count(&calls), 3);
}

#[tokio::test(start_paused = true)]
async fn calls_refused_by_the_global_limit_do_not_spend_the_callers_quota() {
    let calls = Arc::new(AtomicUsize::new(0));
    let limited = RateLimitLayer::new()
        .global(0.001, 1.0)
        .per_caller(0.001, 2.0)
        .caller_key("caller")
        .layer(counted("demo.Quota", &calls));
    let (addr, _server) = serve_memory("mw-limit-order", Server::builder().add_service(limited));
    let channel = Endpoint::memory(addr).connect_lazy();
    let get = || from_caller("demo.Quota/Get", Some("a"));

    // Served: one token of each bucket; the global one is now empty, "a" has one left.
    channel.unary(get()).await.unwrap();
    let err = channel.unary(get()).await.unwrap_err();
    assert!(err.message().contains("rate limit"), "{err}");
    // "a" has been served once out of a quota of 2: it is still the global limit that refuses
    // it, not its quota.
    let err = channel.unary(get()).await.unwrap_err();
    assert!(
        err.message().contains("rate limit"),
        "the caller's quota was spent by a refused call: {err}"
    );
    assert_eq!(count(&calls), 1);
}

/// A rate of zero (or one too small to wait for) refuses past the burst with a retry-after of
/// "a very long time" instead of panicking on the wait it computes (found by the token bucket's
/// property test).
#[tokio::test(start_paused = true)]
async fn a_zero_rate_refuses_past_the_burst_without_panicking() {
    let calls = Arc::new(AtomicUsize::new(0));
    let limited = RateLimitLayer::new()
        .global(0.0, 2.0)
        .layer(counted("demo.Zero", &calls));
    let (addr, _server) = serve_memory("mw-zero-rate", Server::builder().add_service(limited));
    let channel = Endpoint::memory(addr).connect_lazy();
    for i in 0..2 {
        let reply = channel.unary(from_caller("demo.Zero/Get", None)).await;
        assert!(reply.is_ok(), "call {i} within the burst: {reply:?}");
    }
    let err = channel
        .unary(from_caller("demo.Zero/Get", None))
        .await
        .unwrap_err();
    retry_after(&err, u64::MAX);
    assert_eq!(count(&calls), 2);
}
