//! Fault-tolerance benchmarks, printed as Markdown tables:
//!
//! 1. latency of a balanced client over three servers where one answers 50 ms late on 10% of its
//!    calls, with and without hedging;
//! 2. the cost of the full middleware stack on a healthy call, next to a bare `Channel`.
//!
//! `cargo bench -p benches --bench fault_tolerance`
//!
//! Servers and client share one process over TCP loopback; each server has its own runtime thread.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use rpc_core::middleware::{
    BreakerConfig, CircuitBreakerLayer, DeadlineLayer, HedgeDelay, HedgeLayer, RateLimitLayer,
    RetryLayer, Stats,
};
use rpc_core::server::RawService;
use rpc_core::{Endpoint, Request, Response, Server, Status};
use rpc_discovery::{BalanceConfig, BalancedChannel, EndpointSet, Instance, Strategy, Watch};
use tower::{Layer, Service, ServiceBuilder, ServiceExt};

/// Starts an echo server on its own runtime thread; `slow` answers 50 ms late on 10% of calls.
fn server(slow: bool) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let svc =
                RawService::new("bench.Echo").method("Echo", move |req: Request| async move {
                    if slow && fastrand::u32(..10) == 0 {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Ok(Response::new(req.into_body()))
                });
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            let _ = Server::builder().add_service(svc).serve(listener).await;
        });
    });
    addr
}

async fn call<S>(svc: &S, req: Request) -> Result<Response, Status>
where
    S: Service<Request, Response = Response, Error = Status> + Clone,
{
    svc.clone().oneshot(req).await
}

struct Run {
    qps: f64,
    hist: Histogram<u64>,
}

/// `calls` idempotent echo calls from `concurrency` tasks; latencies in µs.
async fn run<S>(svc: S, calls: usize, concurrency: usize) -> Run
where
    S: Service<Request, Response = Response, Error = Status> + Clone + Send + Sync + 'static,
    S::Future: Send,
{
    let body = Bytes::from_static(&[7u8; 64]);
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let svc = svc.clone();
            let body = body.clone();
            tokio::spawn(async move {
                let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
                for _ in 0..calls / concurrency {
                    let req = Request::new("bench.Echo/Echo", body.clone()).with_idempotent(true);
                    let t0 = Instant::now();
                    let reply = call(&svc, req).await.expect("call");
                    assert_eq!(reply.body().len(), 64);
                    let _ = h.record(t0.elapsed().as_micros() as u64);
                }
                h
            })
        })
        .collect();
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
    for t in tasks {
        hist.add(t.await.expect("task")).expect("same bounds");
    }
    Run {
        qps: (calls / concurrency * concurrency) as f64 / started.elapsed().as_secs_f64(),
        hist,
    }
}

fn row(name: &str, r: &Run) {
    println!(
        "| {name} | {:.0} | {} | {} | {} |",
        r.qps,
        r.hist.value_at_quantile(0.5),
        r.hist.value_at_quantile(0.99),
        r.hist.value_at_quantile(0.999)
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        // 1. Hedging over three servers, one of which is slow on 10% of its calls.
        let addrs = [server(false), server(false), server(true)];
        let set = || {
            Watch::fixed(EndpointSet::new(
                addrs.iter().map(|a| Instance::new("bench.Echo", a.to_string())),
            ))
        };
        let calls = 20_000;
        let concurrency = 8;
        println!("## One of three servers answers 50 ms late on 10% of calls ({calls} calls, {concurrency} in flight)\n");
        println!("| client | qps | p50 µs | p99 µs | p999 µs |\n|---|---|---|---|---|");
        for strategy in [Strategy::RoundRobin, Strategy::P2cPeakEwma] {
            let balanced = || BalancedChannel::with_config(set(), BalanceConfig::new().strategy(strategy));
            let name = format!("{strategy:?}");
            let plain = balanced();
            let _ = run(plain.clone(), 2_000, concurrency).await; // warm-up
            row(&format!("{name}, no hedging"), &run(plain, calls, concurrency).await);
            for (label, delay) in [
                ("hedging after 2 ms", HedgeDelay::Fixed(Duration::from_millis(2))),
                (
                    "hedging at p99 (1-20 ms)",
                    HedgeDelay::Percentile {
                        quantile: 0.99,
                        min: Duration::from_millis(1),
                        max: Duration::from_millis(20),
                        min_samples: 100,
                    },
                ),
            ] {
                let stats = Stats::new();
                let hedged = HedgeLayer::new(delay).stats(stats.clone()).layer(balanced());
                let _ = run(hedged.clone(), 2_000, concurrency).await;
                let r = run(hedged, calls, concurrency).await;
                row(&format!("{name}, {label} ({})", stats.snapshot()), &r);
            }
        }
        println!();

        // 2. The full stack on a healthy call, next to a bare channel.
        let addr = server(false);
        let bare = Endpoint::tcp(addr).connect_lazy();
        let stats = Stats::new();
        let balanced = BalancedChannel::new(Watch::fixed(EndpointSet::new([Instance::new(
            "bench.Echo",
            addr.to_string(),
        )])));
        let full = ServiceBuilder::new()
            .layer(DeadlineLayer::new(Duration::from_secs(5)))
            .layer(RateLimitLayer::new().global(1e9, 1e9).per_caller(1e9, 1e9))
            .layer(RetryLayer::new().stats(stats.clone()))
            .layer(HedgeLayer::new(HedgeDelay::Fixed(Duration::from_secs(1))).stats(stats.clone()))
            .layer(
                CircuitBreakerLayer::new()
                    .config(BreakerConfig::new())
                    .stats(stats.clone()),
            )
            .service(balanced.clone());
        for (concurrency, calls) in [(1usize, 20_000usize), (32, 200_000)] {
            println!("## A healthy call: full middleware stack vs a bare Channel ({calls} calls, {concurrency} in flight)\n");
            println!("| client | qps | p50 µs | p99 µs | p999 µs |\n|---|---|---|---|---|");
            let _ = run(bare.clone(), calls / 10, concurrency).await;
            row("bare Channel", &run(bare.clone(), calls, concurrency).await);
            let _ = run(balanced.clone(), calls / 10, concurrency).await;
            row("BalancedChannel (one endpoint)", &run(balanced.clone(), calls, concurrency).await);
            let _ = run(full.clone(), calls / 10, concurrency).await;
            row(
                "deadline + rate limit + retry + hedge + breaker + balancer",
                &run(full.clone(), calls, concurrency).await,
            );
            println!();
        }
        println!("full-stack counters (expect no retries, hedges or rejections): {}", stats.snapshot());
    });
}
