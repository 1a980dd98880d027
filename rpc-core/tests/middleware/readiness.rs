//! Readiness: the middleware that sends calls on clones keeps them until the answer.

use super::*;

/// The middleware that sends calls on clones of its inner service (retries, hedges, breakers)
/// keeps the service a call went out on until the answer: a layered channel used once, through
/// `oneshot`, as its only handle, still gets its answer although it had yet to connect.
#[tokio::test(start_paused = true)]
async fn calls_on_clones_outlive_the_layered_service() {
    let calls = Arc::new(AtomicUsize::new(0));
    let failing = Arc::new(AtomicBool::new(false));
    let (addr, _server) = serve_memory(
        "mw-oneshot",
        Server::builder().add_service(flaky(&calls, &failing)),
    );
    let lazy = || Endpoint::memory(addr).connect_lazy();

    let reply = RetryLayer::new().layer(lazy()).oneshot(flaky_call()).await;
    assert_eq!(body(&reply.unwrap()), "ok");
    let reply = CircuitBreakerLayer::new()
        .layer(lazy())
        .oneshot(flaky_call())
        .await;
    assert_eq!(body(&reply.unwrap()), "ok");
    let hedge = HedgeLayer::new(HedgeDelay::Fixed(Duration::from_secs(1)));
    let reply = hedge.layer(lazy()).oneshot(flaky_call()).await;
    assert_eq!(body(&reply.unwrap()), "ok");
    let reply = hedge
        .layer(lazy())
        .oneshot(flaky_call().with_idempotent(true))
        .await;
    assert_eq!(body(&reply.unwrap()), "ok");
    assert_eq!(count(&calls), 4);
}
