//! Deadlines: propagation across two hops, and the defaults `DeadlineLayer` gives.

use super::*;

#[tokio::test(start_paused = true)]
async fn deadline_propagates_across_two_hops() {
    // B reports the budget it sees, then takes far too long.
    let (b_seen_tx, mut b_seen) = mpsc::unbounded_channel::<Option<Duration>>();
    let b_dropped = Arc::new(AtomicUsize::new(0));
    let svc_b = RawService::new("demo.B").method("Slow", {
        let b_dropped = b_dropped.clone();
        move |_req| {
            let seen = b_seen_tx.clone();
            let guard = DropCount(b_dropped.clone());
            async move {
                let _guard = guard;
                let _ = seen.send(Context::current().and_then(|c| c.remaining()));
                tokio::time::sleep(Duration::from_secs(30)).await;
                Ok(Response::new("too late"))
            }
        }
    });
    let (addr_b, _server_b) = serve_memory("mw-deadline-b", Server::builder().add_service(svc_b));

    // A forwards to B through its own channel, without passing any deadline along.
    let (a_seen_tx, mut a_seen) = mpsc::unbounded_channel::<Option<Duration>>();
    let to_b = Endpoint::memory(addr_b).connect_lazy();
    let svc_a = RawService::new("demo.A").method("Forward", move |_req| {
        let to_b = to_b.clone();
        let seen = a_seen_tx.clone();
        async move {
            let _ = seen.send(Context::current().and_then(|c| c.remaining()));
            to_b.unary(Request::new("demo.B/Slow", "")).await
        }
    });
    let (addr_a, _server_a) = serve_memory("mw-deadline-a", Server::builder().add_service(svc_a));

    let budget = Duration::from_millis(300);
    let mut client = DeadlineLayer::new(budget).layer(Endpoint::memory(addr_a).connect_lazy());
    let t0 = Instant::now();
    let err = call(&mut client, Request::new("demo.A/Forward", ""))
        .await
        .unwrap_err();
    let elapsed = t0.elapsed();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err}");
    // On the paused clock the call fails when its budget runs out, to the millisecond.
    assert!(
        elapsed.abs_diff(budget) <= Duration::from_millis(1),
        "failed after {elapsed:?} of virtual time"
    );

    let a = a_seen.recv().await.unwrap().expect("A saw no deadline");
    let b = b_seen.recv().await.unwrap().expect("B saw no deadline");
    assert!(a <= budget && !a.is_zero(), "A's budget: {a:?}");
    assert!(b <= budget && !b.is_zero(), "B's budget: {b:?}");
    // B's server stops B's handler once the deadline is past.
    eventually(LIMIT, "B's handler dropped", || async {
        count(&b_dropped) == 1
    })
    .await;
}

/// Calls that report the deadline they run under.
#[service(name = "test.Budget")]
trait Budget {
    /// Milliseconds left, `u64::MAX` without a deadline; 150 ms by default.
    #[rpc(timeout = "150ms")]
    async fn short(&self, ctx: &Context) -> Result<u64, Status>;

    /// Milliseconds left, `u64::MAX` without a deadline; no default timeout.
    async fn plain(&self, ctx: &Context) -> Result<u64, Status>;
}

struct Reporter;

fn left_ms(ctx: &Context) -> u64 {
    ctx.remaining().map_or(u64::MAX, |d| d.as_millis() as u64)
}

impl Budget for Reporter {
    async fn short(&self, ctx: &Context) -> Result<u64, Status> {
        Ok(left_ms(ctx))
    }

    async fn plain(&self, ctx: &Context) -> Result<u64, Status> {
        Ok(left_ms(ctx))
    }
}

/// A hand-made request for a method of `Budget`, with its descriptor and no deadline.
fn budget_request(method: &str, with_descriptor: bool) -> Request {
    let m = BudgetClient::<Channel>::DESCRIPTOR.method(method).unwrap();
    let req = Request::new(m.path, Bytes::new()).with_codec(CodecId::JSON);
    if with_descriptor {
        req.with_descriptor(m)
    } else {
        req
    }
}

async fn left_of<S>(svc: &mut S, req: Request) -> u64
where
    S: Service<Request, Response = Response, Error = Status>,
{
    let reply = call(svc, req).await.unwrap();
    body(&reply).parse().unwrap()
}

#[tokio::test(start_paused = true)]
async fn deadline_layer_uses_the_method_timeout_from_the_descriptor() {
    let (addr, _server) = serve_memory(
        "mw-deadline-default",
        Server::builder().add_service(BudgetServer::new(Reporter)),
    );
    let channel = Endpoint::memory(addr).connect_lazy();
    let mut client = DeadlineLayer::new(Duration::from_secs(20)).layer(channel.clone());

    // With the descriptor: the method's `#[rpc(timeout = "150ms")]`.
    let ms = left_of(&mut client, budget_request("Short", true)).await;
    assert!(ms > 0 && ms <= 150, "{ms} ms");
    // Without a method timeout, or without the descriptor: the layer's.
    let ms = left_of(&mut client, budget_request("Plain", true)).await;
    assert!(ms > 10_000 && ms <= 20_000, "{ms} ms");
    let ms = left_of(&mut client, budget_request("Short", false)).await;
    assert!(ms > 10_000 && ms <= 20_000, "{ms} ms");
    // A deadline the caller set is kept.
    let req = budget_request("Short", true).with_timeout(Duration::from_secs(5));
    let ms = left_of(&mut client, req).await;
    assert!(ms > 1_000 && ms <= 5_000, "{ms} ms");
    // So is the deadline of the call being handled (here, a context made current by hand).
    let ms = Context::new()
        .with_timeout(Duration::from_secs(3))
        .scope(left_of(&mut client, budget_request("Short", true)))
        .await;
    assert!(ms > 1_000 && ms <= 3_000, "{ms} ms");

    // Per method, with no default: only the configured method gets a deadline.
    let mut per_method = DeadlineLayer::per_method(
        PerMethod::new(None).method("test.Budget/Plain", Some(Duration::from_secs(2))),
    )
    .layer(channel.clone());
    let ms = left_of(&mut per_method, budget_request("Plain", false)).await;
    assert!(ms > 1_000 && ms <= 2_000, "{ms} ms");
    let ms = left_of(&mut per_method, budget_request("Short", false)).await;
    assert_eq!(ms, u64::MAX, "a deadline where none was configured");
    let ms = left_of(&mut per_method, budget_request("Short", true)).await;
    assert!(ms > 0 && ms <= 150, "{ms} ms");

    // The generated client over the layer: the method default, else the layer's timeout.
    let typed = BudgetClient::new(
        ServiceBuilder::new()
            .layer(DeadlineLayer::new(Duration::from_secs(20)))
            .service(channel),
    );
    let ms = typed.short().await.unwrap();
    assert!(ms > 0 && ms <= 150, "{ms} ms");
    let ms = typed.plain().await.unwrap();
    assert!(ms > 10_000 && ms <= 20_000, "{ms} ms");
}
