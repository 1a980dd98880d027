//! Load shedding: a fixed concurrency limit and an adaptive (AIMD) one.

use super::*;

#[tokio::test(start_paused = true)]
async fn load_shed_fixed_limit_fails_fast_beyond_it() {
    let entered = Arc::new(AtomicUsize::new(0));
    let (release, released) = watch::channel(false);
    let svc = RawService::new("demo.Busy").method("Work", {
        let entered = entered.clone();
        move |req: Request| {
            let entered = entered.clone();
            let mut released = released.clone();
            async move {
                entered.fetch_add(1, Ordering::SeqCst);
                let ok = released.wait_for(|r| *r).await.is_ok();
                assert!(ok, "release sender dropped");
                Ok(Response::new(req.into_body()))
            }
        }
    });
    let stats = Stats::new();
    let shed = LoadShedLayer::new(ShedLimit::Fixed(4))
        .stats(stats.clone())
        .layer(svc);
    let (addr, _server) =
        serve_memory("mw-shed-fixed", Server::builder().add_service(shed.clone()));
    let channel = Endpoint::memory(addr).connect_lazy();
    let work = |i: usize| Request::new("demo.Busy/Work", format!("work-{i}"));

    let held: Vec<_> = (0..4)
        .map(|i| {
            let channel = channel.clone();
            tokio::spawn(async move { channel.unary(work(i)).await })
        })
        .collect();
    eventually(LIMIT, "4 calls in the handler", || async {
        count(&entered) == 4 && shed.in_flight() == 4
    })
    .await;
    assert_eq!(shed.limit(), 4);

    // Beyond the limit: refused at once, while the 4 are still held.
    for i in 4..14 {
        let err = channel.unary(work(i)).await.unwrap_err();
        assert_eq!(err.code(), Code::ResourceExhausted, "call {i}: {err}");
        // The server says it did not run the call, so a client may retry it anywhere.
        assert_eq!(err.delivery(), Delivery::Unprocessed, "call {i}");
        assert!(err.metadata().get(rpc_core::NOT_PROCESSED_KEY).is_none());
    }
    assert_eq!(count(&entered), 4, "a shed call reached the handler");
    assert_eq!(shed.in_flight(), 4);
    assert_eq!(stats.snapshot().shed, 10);
    assert!(held.iter().all(|h| !h.is_finished()));

    // Released, the admitted calls complete with their own answers.
    release.send(true).unwrap();
    for (i, h) in held.into_iter().enumerate() {
        let reply = h.await.unwrap().unwrap();
        assert_eq!(body(&reply), format!("work-{i}"));
    }
    eventually(LIMIT, "slots released", || async { shed.in_flight() == 0 }).await;

    // And calls are admitted again, up to the limit at once.
    let again: Vec<_> = (100..104)
        .map(|i| {
            let channel = channel.clone();
            tokio::spawn(async move { channel.unary(work(i)).await })
        })
        .collect();
    for h in again {
        h.await.unwrap().unwrap();
    }
    assert_eq!(count(&entered), 8);
    assert_eq!(stats.snapshot().shed, 10);
}

fn sleeper(name: &str) -> RawService {
    // The body is how long to take, in milliseconds.
    RawService::new(name).method("Work", |req: Request| async move {
        let ms: u64 = std::str::from_utf8(req.body()).unwrap().parse().unwrap();
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(Response::new(req.into_body()))
    })
}

#[tokio::test(start_paused = true)]
async fn load_shed_aimd_limit_shrinks_when_slow_and_recovers() {
    let stats = Stats::new();
    let shed = LoadShedLayer::new(ShedLimit::Aimd {
        initial: 10,
        min: 2,
        max: 20,
        target: Duration::from_millis(50),
    })
    .stats(stats.clone())
    .layer(sleeper("demo.Aimd"));
    let _server = serve(
        Server::builder().add_service(shed.clone()),
        MemoryListener::bind("mw-aimd").unwrap(),
    );
    let channel = Endpoint::memory("mw-aimd").connect().await.unwrap();
    let work = |ms: u64| Request::new("demo.Aimd/Work", ms.to_string());
    assert_eq!(shed.limit(), 10);

    // Slower than the target: the limit shrinks by 10% a call, down to `min`.
    channel.unary(work(100)).await.unwrap();
    let after_one = shed.limit();
    assert!((8..10).contains(&after_one), "limit {after_one}");
    let mut last = after_one;
    for _ in 0..30 {
        channel.unary(work(100)).await.unwrap();
        let l = shed.limit();
        assert!(l <= last, "the limit grew on a slow call: {last} -> {l}");
        last = l;
    }
    assert_eq!(shed.limit(), 2, "the limit did not shrink to its minimum");

    // At the shrunken limit, a third concurrent call is shed.
    let slow: Vec<_> = (0..2)
        .map(|_| {
            let channel = channel.clone();
            tokio::spawn(async move { channel.unary(work(1_000)).await })
        })
        .collect();
    eventually(LIMIT, "2 calls in flight", || async {
        shed.in_flight() == 2
    })
    .await;
    let err = channel.unary(work(0)).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err}");
    assert_eq!(stats.snapshot().shed, 1);
    for h in slow {
        h.await.unwrap().unwrap();
    }

    // Fast calls: the limit grows back (by about one per `limit` calls), up to `max`.
    let mut fast = 0;
    while shed.limit() < 10 {
        channel.unary(work(0)).await.unwrap();
        fast += 1;
        assert!(fast < 1_000, "the limit did not recover: {}", shed.limit());
    }
    for _ in 0..500 {
        channel.unary(work(0)).await.unwrap();
    }
    assert_eq!(shed.limit(), 20, "the limit should stop at its maximum");
    assert_eq!(stats.snapshot().shed, 1);
}

#[tokio::test(start_paused = true)]
async fn load_shed_aimd_shrinks_on_calls_that_time_out_on_the_server() {
    let shed = LoadShedLayer::new(ShedLimit::Aimd {
        initial: 10,
        min: 2,
        max: 20,
        target: Duration::from_millis(50),
    })
    .layer(sleeper("demo.Aimd"));
    let _server = serve(
        Server::builder().add_service(shed.clone()),
        MemoryListener::bind("mw-aimd-timeout").unwrap(),
    );
    let channel = Endpoint::memory("mw-aimd-timeout").connect().await.unwrap();
    // Each call takes 10 s, far past both its 200 ms deadline and the 50 ms target.
    for _ in 0..5 {
        let err = channel
            .unary(Request::new("demo.Aimd/Work", "10000").with_timeout(Duration::from_millis(200)))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::DeadlineExceeded, "{err}");
    }
    eventually(LIMIT, "slots released", || async { shed.in_flight() == 0 }).await;
    assert!(
        shed.limit() < 10,
        "5 calls timed out, yet the AIMD limit stayed at {}",
        shed.limit()
    );
}
