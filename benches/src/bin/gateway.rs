//! The gateway's cost (issue 19): HTTP/JSON through the gateway to a native backend, against a
//! direct native call to that backend and against the same echo written directly in axum (no
//! gateway), at 1, 32 and 256 calls in flight, in one run.
//!
//! ```text
//! cargo run --release -p benches --bin gateway -- [--quick] [--secs S] [--payload BYTES]
//! ```
//!
//! Each server is a process of its own (this binary with a subcommand, on a current-thread
//! runtime, pinned to CPU 1 when `taskset` and two CPUs are there): the native backend
//! (`bench.Echo/Echo`, a raw echo), the gateway (`rpc_discovery::gateway::Gateway` over a
//! `DiscoveryRouter` with a deadline, the retry budget and a breaker, the backend found in a
//! static registry; `POST /bench.Echo/Echo` with a JSON string), and axum (`POST
//! /bench.Echo/Echo` answering the body it got). The load comes from this process: one
//! HTTP/1.1 connection per call in flight (hyper's client), or one native `Channel`.
//!
//! Per system and concurrency it prints the QPS, p50 and p99 latency, and the server
//! processes' CPU time per call (`/proc/<pid>/stat`): for the gateway its own process's, which is
//! what the target compares (the gateway's own cost per call ≤ 1.5 × a bare axum handler's).
//! Every reply is compared with its request. Without `--quick` it writes
//! `benches/RESULTS-gateway.md`.

#[path = "common/args.rs"]
mod args;
#[path = "common/child.rs"]
mod child;
#[path = "loadgen/cpu.rs"]
mod cpu;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use rpc_core::{CodecId, Endpoint, Request, Response};
use tower::ServiceExt;

use crate::args::{arg_value, parse, secs};
use crate::child::{can_pin, say, watch_stdin, Proc};

const PATH: &str = "bench.Echo/Echo";
const CONCURRENCY: [usize; 3] = [1, 32, 256];

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("serve-backend") => serve(Role::Backend, args.split_off(1)),
        Some("serve-gateway") => serve(Role::Gateway, args.split_off(1)),
        Some("serve-axum") => serve(Role::Axum, args.split_off(1)),
        Some("-h" | "--help") => {
            println!("{}", args::usage_from(include_str!("gateway.rs")));
            Ok(())
        }
        _ => orchestrate(args),
    };
    if let Err(e) = result {
        eprintln!("gateway bench: {e}");
        std::process::exit(1);
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Role {
    Backend,
    Gateway,
    Axum,
}

/// A server process: listens on a free loopback port, prints `listening ADDR`, serves until its
/// stdin closes.
fn serve(role: Role, args: Vec<String>) -> Result<(), String> {
    let mut backend = None;
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--backend" => backend = Some(arg_value(&mut it, &flag)?),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    watch_stdin(|_| {});
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        say(&format!("listening {addr}"));
        match role {
            Role::Backend => {
                let echo = rpc_core::server::RawService::new("bench.Echo")
                    .method("Echo", |req: Request| async move {
                        Ok(Response::new(req.into_body()))
                    });
                rpc_core::Server::builder()
                    .add_service(echo)
                    .serve(listener)
                    .await
                    .map_err(|e| e.to_string())
            }
            Role::Gateway => {
                use rpc_core::middleware::{CircuitBreakerLayer, DeadlineLayer, RetryLayer};
                use rpc_discovery::gateway::Gateway;
                use rpc_discovery::{DiscoveryRouter, Registry, StaticRegistry};
                let backend = backend.ok_or("--backend ADDR is required")?;
                let registry: Arc<dyn Registry> =
                    Arc::new(StaticRegistry::new("bench.Echo", [backend]));
                let stack = tower::ServiceBuilder::new()
                    .layer(DeadlineLayer::new(Duration::from_secs(5)))
                    .layer(RetryLayer::new())
                    .layer(CircuitBreakerLayer::new())
                    .into_inner();
                let gateway = Gateway::builder(DiscoveryRouter::new(registry, stack))
                    .build()
                    .map_err(|e| e.to_string())?;
                gateway
                    .serve(listener, std::future::pending())
                    .await
                    .map_err(|e| e.to_string())
            }
            Role::Axum => {
                use axum::routing::post;
                let app = axum::Router::new().route(
                    "/bench.Echo/Echo",
                    post(|body: Bytes| async move {
                        (
                            [(axum::http::header::CONTENT_TYPE, "application/json")],
                            body,
                        )
                    }),
                );
                axum::serve(listener, app).await.map_err(|e| e.to_string())
            }
        }
    })
}

struct Config {
    quick: bool,
    secs: Duration,
    payload: usize,
}

/// One measured run.
struct Run {
    system: &'static str,
    concurrency: usize,
    qps: f64,
    p50_us: f64,
    p99_us: f64,
    /// Server CPU per call: (process, µs).
    cpu: Vec<(&'static str, f64)>,
}

fn orchestrate(args: Vec<String>) -> Result<(), String> {
    let mut c = Config {
        quick: false,
        secs: Duration::from_secs(2),
        payload: 64,
    };
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--quick" => c.quick = true,
            "--secs" => c.secs = secs(&arg_value(&mut it, &flag)?, &flag)?,
            "--payload" => c.payload = parse(&arg_value(&mut it, &flag)?, &flag)?,
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    if c.quick {
        c.secs = Duration::from_millis(300);
    }
    let cpu = can_pin().then_some(1);
    let mut backend = Proc::start("backend", cpu, &["serve-backend".to_owned()])?;
    let backend_addr = addr_of(&backend)?;
    let mut gateway = Proc::start(
        "gateway",
        cpu,
        &[
            "serve-gateway".to_owned(),
            "--backend".to_owned(),
            backend_addr.to_string(),
        ],
    )?;
    let gateway_addr = addr_of(&gateway)?;
    let mut axum = Proc::start("axum", cpu, &["serve-axum".to_owned()])?;
    let axum_addr = addr_of(&axum)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    // A JSON string of `payload` bytes: the same body for every system.
    let body = Bytes::from(format!("\"{}\"", "x".repeat(c.payload.saturating_sub(2))));
    let ticks = cpu::clock_ticks_per_sec();
    let mut runs = Vec::new();
    for &n in &CONCURRENCY {
        for system in ["axum", "gateway", "native"] {
            let procs: Vec<(&'static str, u32)> = match system {
                "axum" => vec![("axum", axum.pid())],
                "gateway" => vec![("gateway", gateway.pid()), ("backend", backend.pid())],
                _ => vec![("backend", backend.pid())],
            };
            let target = match system {
                "axum" => Target::Http(axum_addr),
                "gateway" => Target::Http(gateway_addr),
                _ => Target::Native(backend_addr),
            };
            // Warm up (connections, caches), then measure.
            rt.block_on(load(&target, n, &body, c.secs / 4))?;
            let before: Vec<u64> = procs
                .iter()
                .map(|(_, pid)| cpu::cpu_ticks(&pid.to_string()).unwrap_or(0))
                .collect();
            let (calls, hist, took) = rt.block_on(load(&target, n, &body, c.secs))?;
            let cpu = procs
                .iter()
                .zip(before)
                .map(|((name, pid), b)| {
                    let a = cpu::cpu_ticks(&pid.to_string()).unwrap_or(b);
                    let us = (a.saturating_sub(b)) as f64 / ticks * 1e6 / calls.max(1) as f64;
                    (*name, us)
                })
                .collect();
            let run = Run {
                system,
                concurrency: n,
                qps: calls as f64 / took.as_secs_f64(),
                p50_us: hist.value_at_quantile(0.5) as f64,
                p99_us: hist.value_at_quantile(0.99) as f64,
                cpu,
            };
            println!(
                "{system:8} c={n:3}: {:>9.0} calls/s  p50 {:>8.0} µs  p99 {:>8.0} µs  server CPU/call {}",
                run.qps,
                run.p50_us,
                run.p99_us,
                run.cpu
                    .iter()
                    .map(|(p, us)| format!("{p} {us:.1} µs"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            runs.push(run);
        }
    }
    for p in [&mut gateway, &mut axum, &mut backend] {
        p.finish(Duration::from_secs(5));
    }
    let report = report(&runs, &c, cpu.is_some());
    print!("{report}");
    if !c.quick {
        std::fs::write("benches/RESULTS-gateway.md", &report)
            .map_err(|e| format!("writing benches/RESULTS-gateway.md: {e}"))?;
        println!("wrote benches/RESULTS-gateway.md");
    }
    Ok(())
}

fn addr_of(p: &Proc) -> Result<SocketAddr, String> {
    let line = p.expect("listening ", Duration::from_secs(20))?;
    line["listening ".len()..]
        .trim()
        .parse()
        .map_err(|e| format!("bad address in {line:?}: {e}"))
}

enum Target {
    Http(SocketAddr),
    Native(SocketAddr),
}

/// `n` callers in a loop for `secs`: the calls made, their latencies (µs) and the time taken.
async fn load(
    target: &Target,
    n: usize,
    body: &Bytes,
    secs: Duration,
) -> Result<(u64, Histogram<u64>, Duration), String> {
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let mut tasks = Vec::new();
    let channel = match target {
        Target::Native(addr) => Some(Endpoint::tcp(*addr).connect_lazy()),
        Target::Http(_) => None,
    };
    for _ in 0..n {
        let stop = stop.clone();
        let body = body.clone();
        match target {
            Target::Http(addr) => {
                let addr = *addr;
                tasks.push(tokio::spawn(
                    async move { http_caller(addr, body, stop).await },
                ));
            }
            Target::Native(_) => {
                let channel = channel.clone().ok_or("no channel")?;
                tasks.push(tokio::spawn(async move {
                    native_caller(channel, body, stop).await
                }));
            }
        }
    }
    tokio::time::sleep(secs).await;
    stop.store(true, Ordering::Relaxed);
    let mut hist =
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).map_err(|e| e.to_string())?;
    let mut calls = 0;
    for t in tasks {
        let h = t.await.map_err(|e| e.to_string())??;
        calls += h.len();
        hist.add(&h).map_err(|e| e.to_string())?;
    }
    Ok((calls, hist, start.elapsed()))
}

fn new_hist() -> Result<Histogram<u64>, String> {
    Histogram::new_with_bounds(1, 60_000_000, 3).map_err(|e| e.to_string())
}

async fn http_caller(
    addr: SocketAddr,
    body: Bytes,
    stop: Arc<AtomicBool>,
) -> Result<Histogram<u64>, String> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let _ = tcp.set_nodelay(true);
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let mut hist = new_hist()?;
    while !stop.load(Ordering::Relaxed) {
        let req = http::Request::post(format!("http://{addr}/{PATH}"))
            .header("content-type", "application/json")
            .body(Full::new(body.clone()))
            .map_err(|e| e.to_string())?;
        let t = Instant::now();
        send.ready().await.map_err(|e| e.to_string())?;
        let resp = send.send_request(req).await.map_err(|e| e.to_string())?;
        if resp.status() != 200 {
            return Err(format!("HTTP {}", resp.status()));
        }
        let got = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        if got != body {
            return Err("the reply is not the request's body".into());
        }
        let _ = hist.record((t.elapsed().as_micros() as u64).max(1));
    }
    Ok(hist)
}

async fn native_caller(
    channel: rpc_core::Channel,
    body: Bytes,
    stop: Arc<AtomicBool>,
) -> Result<Histogram<u64>, String> {
    let mut hist = new_hist()?;
    while !stop.load(Ordering::Relaxed) {
        let req = Request::new(PATH, body.clone()).with_codec(CodecId::JSON);
        let t = Instant::now();
        let resp = channel
            .clone()
            .oneshot(req)
            .await
            .map_err(|e| e.to_string())?;
        if resp.body() != &body {
            return Err("the reply is not the request's body".into());
        }
        let _ = hist.record((t.elapsed().as_micros() as u64).max(1));
    }
    Ok(hist)
}

fn report(runs: &[Run], c: &Config, pinned: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# The gateway against axum and a direct native call\n");
    let _ = writeln!(
        out,
        "`cargo run --release -p benches --bin gateway{}`: {} B JSON echo, {:?} per run, servers {} (current-thread runtimes), the load from one more process; one HTTP/1.1 connection per call in flight, one native connection.\n",
        if c.quick { " -- --quick" } else { "" },
        c.payload,
        c.secs,
        if pinned { "pinned to CPU 1" } else { "not pinned" }
    );
    let _ = writeln!(
        out,
        "| system | in flight | calls/s | p50 µs | p99 µs | server CPU µs/call |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---|");
    for r in runs {
        let _ = writeln!(
            out,
            "| {} | {} | {:.0} | {:.0} | {:.0} | {} |",
            r.system,
            r.concurrency,
            r.qps,
            r.p50_us,
            r.p99_us,
            r.cpu
                .iter()
                .map(|(p, us)| format!("{p} {us:.1}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let _ = writeln!(
        out,
        "\nThe gateway's own CPU per call against axum's (target ≤ 1.5 ×):\n"
    );
    for &n in &CONCURRENCY {
        let own = |system: &str, process: &str| {
            runs.iter()
                .find(|r| r.system == system && r.concurrency == n)
                .and_then(|r| r.cpu.iter().find(|(p, _)| *p == process))
                .map(|(_, us)| *us)
        };
        if let (Some(g), Some(a)) = (own("gateway", "gateway"), own("axum", "axum")) {
            let ratio = g / a.max(0.001);
            let _ = writeln!(
                out,
                "- {n} in flight: gateway {g:.1} µs, axum {a:.1} µs: {ratio:.2} × ({})",
                if ratio <= 1.5 { "met" } else { "not met" }
            );
        }
    }
    out
}
