//! Failsafe: failures answered with a fallback.

use super::*;

#[tokio::test(start_paused = true)]
async fn failsafe_answers_failures_with_the_fallback() {
    let svc = RawService::new("demo.Maybe")
        .method("Fail", |_req| async { Err(Status::internal("boom")) })
        .method("Work", |_req| async { Ok(Response::new("real")) });
    let (addr, _server) = serve_memory("mw-failsafe", Server::builder().add_service(svc));
    let stats = Stats::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut client = FailsafeLayer::new({
        let seen = seen.clone();
        move |req: &Request, status: &Status| {
            seen.lock()
                .unwrap()
                .push((req.path().to_owned(), status.code()));
            Ok(Response::new("fallback"))
        }
    })
    .stats(stats.clone())
    .layer(Endpoint::memory(addr).connect_lazy());

    let reply = call(&mut client, Request::new("demo.Maybe/Fail", ""))
        .await
        .unwrap();
    assert_eq!(body(&reply), "fallback");
    assert_eq!(stats.snapshot().fallbacks, 1);
    assert_eq!(
        *seen.lock().unwrap(),
        vec![("demo.Maybe/Fail".to_owned(), Code::Internal)]
    );

    // Successes pass through untouched.
    let reply = call(&mut client, Request::new("demo.Maybe/Work", ""))
        .await
        .unwrap();
    assert_eq!(body(&reply), "real");
    assert_eq!(stats.snapshot().fallbacks, 1);
    assert_eq!(seen.lock().unwrap().len(), 1);
}
