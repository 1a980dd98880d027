//! Overload: a server at 3 × its capacity, with and without `Server::max_queue_delay`, printed as
//! a Markdown table (admitted p50/p99, refusal p99, share shed, answered in time).
//!
//! `cargo bench -p benches --bench overload [-- --quick]`
//!
//! One server on its own current-thread runtime (one core of capacity), its handler busy on the
//! CPU for 40 µs (inline: finishes in its first poll) or yielding once first (awaiting: moves to
//! its own task). The client, on another runtime, first measures the server's capacity with a
//! closed loop (shedding off), then sends open loop at 0.3 × (unloaded) and 3 × that rate over 8 TCP
//! connections, every call with a 1 s deadline. A small measurement, not a test: on a machine
//! with fewer than two free cores its figures are meaningless.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rpc_core::server::RawService;
use rpc_core::{Channel, Code, Endpoint, Request, Response, Server};

const WORK: Duration = Duration::from_micros(40);
const CONNECTIONS: usize = 8;
const DEADLINE: Duration = Duration::from_secs(1);

fn spin(d: Duration) {
    let t = Instant::now();
    while t.elapsed() < d {
        std::hint::spin_loop();
    }
}

fn server(awaiting: bool, max_delay: Option<Duration>) -> SocketAddr {
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
                RawService::new("bench.Work").method("Work", move |req: Request| async move {
                    if awaiting {
                        tokio::task::yield_now().await;
                    }
                    spin(WORK);
                    Ok(Response::new(req.into_body()))
                });
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            let mut builder = Server::builder().add_service(svc);
            if let Some(d) = max_delay {
                builder = builder.max_queue_delay(d);
            }
            let _ = builder.serve(listener).await;
        });
    });
    addr
}

async fn channels(addr: SocketAddr) -> Vec<Channel> {
    let mut out = Vec::new();
    for _ in 0..CONNECTIONS {
        let ch = Endpoint::tcp(addr)
            .max_concurrent_calls(1 << 20)
            .connect()
            .await
            .expect("connect");
        out.push(ch);
    }
    out
}

fn req() -> Request {
    Request::new("bench.Work/Work", "x").with_timeout(DEADLINE)
}

/// Calls per second in a closed loop with 64 calls in flight per connection.
async fn capacity(chs: &[Channel], secs: f64) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for ch in chs {
        for _ in 0..64 {
            let (ch, stop) = (ch.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    if ch.unary(req()).await.is_ok() {
                        n += 1;
                    }
                }
                n
            }));
        }
    }
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    total as f64 / secs
}

struct Outcome {
    ok: Histogram<u64>,
    refused: Histogram<u64>,
    in_time: u64,
    sent: u64,
}

/// Sends at `rate` calls per second for `secs`, open loop (every millisecond, that many calls).
async fn open_loop(chs: &[Channel], rate: f64, secs: f64) -> Outcome {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let per_ms = rate / 1000.0;
    let mut owed = 0.0;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let start = Instant::now();
    let mut sent = 0u64;
    while start.elapsed().as_secs_f64() < secs {
        tick.tick().await;
        owed += per_ms;
        while owed >= 1.0 {
            owed -= 1.0;
            let ch = chs[sent as usize % chs.len()].clone();
            let tx = tx.clone();
            sent += 1;
            tokio::spawn(async move {
                let t0 = Instant::now();
                let result = ch.unary(req()).await;
                let _ = tx.send((t0.elapsed(), result.map(|_| ()).map_err(|s| s.code())));
            });
        }
    }
    drop(tx);
    let mut out = Outcome {
        ok: Histogram::new(3).unwrap(),
        refused: Histogram::new(3).unwrap(),
        in_time: 0,
        sent,
    };
    while let Some((took, result)) = rx.recv().await {
        let us = took.as_micros() as u64;
        match result {
            Ok(()) => {
                out.ok.record(us).unwrap();
                if took <= DEADLINE {
                    out.in_time += 1;
                }
            }
            Err(Code::ResourceExhausted) => out.refused.record(us).unwrap(),
            Err(_) => {}
        }
    }
    out
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let secs = if quick { 2.0 } else { 5.0 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    println!("| handler | max_queue_delay | load | calls/s sent | admitted p50 | admitted p99 | refusal p99 | shed | answered in time (of capacity) |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for awaiting in [false, true] {
        // Capacity without shedding (a closed loop at capacity would be shed).
        let cap = rt.block_on(async {
            let chs = channels(server(awaiting, None)).await;
            capacity(&chs, secs / 2.0).await
        });
        for max_delay in [None, Some(Duration::from_millis(5))] {
            let addr = server(awaiting, max_delay);
            rt.block_on(async {
                let chs = channels(addr).await;
                for load in [0.3, 3.0] {
                    let o = open_loop(&chs, cap * load, secs).await;
                    let handler = if awaiting { "awaiting" } else { "inline" };
                    let shed = o.refused.len() as f64 / o.sent.max(1) as f64;
                    let p = |h: &Histogram<u64>, q: f64| {
                        if h.is_empty() {
                            "-".to_owned()
                        } else {
                            format!("{:.2} ms", h.value_at_quantile(q) as f64 / 1000.0)
                        }
                    };
                    println!(
                        "| {handler} | {max_delay:?} | {load} × | {:.0} | {} | {} | {} | {:.0} % | {:.0} % |",
                        o.sent as f64 / secs,
                        p(&o.ok, 0.5),
                        p(&o.ok, 0.99),
                        p(&o.refused, 0.99),
                        shed * 100.0,
                        o.in_time as f64 / secs / cap * 100.0,
                    );
                    // Let the backlog of this run drain before the next.
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            });
        }
    }
}
