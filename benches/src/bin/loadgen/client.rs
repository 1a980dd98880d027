//! `loadgen client`: one workload against a running server: warm-up, then the measured window,
//! every reply compared with its request; prints the result line the orchestrator reads.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use benches::systems::feed::numbered;
use benches::systems::{Client, System};
use hdrhistogram::Histogram;

use crate::args::{arg_value, Runtime};
use crate::cpu::cpu_ticks;

struct ClientArgs {
    system: System,
    addr: SocketAddr,
    payload: usize,
    concurrency: usize,
    warmup: Duration,
    duration: Duration,
    runtime: Runtime,
}

const WARMUP: u8 = 0;
const MEASURE: u8 = 1;
const STOP: u8 = 2;

pub(crate) fn client(args: Vec<String>) -> Result<(), String> {
    let mut a = ClientArgs {
        system: System::Raw,
        addr: "127.0.0.1:0".parse().map_err(|_| "addr")?,
        payload: 64,
        concurrency: 1,
        warmup: Duration::from_millis(500),
        duration: Duration::from_secs(2),
        runtime: Runtime::Current,
    };
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        let v = arg_value(&mut it, &flag)?;
        let secs = |v: &str| {
            v.parse::<f64>()
                .map(Duration::from_secs_f64)
                .map_err(|_| format!("{flag}: bad value {v:?}"))
        };
        match flag.as_str() {
            "--system" => a.system = v.parse()?,
            "--addr" => {
                a.addr = v
                    .parse()
                    .map_err(|_| format!("--addr: bad address {v:?}"))?
            }
            "--payload" => a.payload = v.parse().map_err(|_| "--payload: bad value")?,
            "--concurrency" => a.concurrency = v.parse().map_err(|_| "--concurrency: bad value")?,
            "--warmup" => a.warmup = secs(&v)?,
            "--duration" => a.duration = secs(&v)?,
            "--runtime" => a.runtime = Runtime::parse(&v)?,
            other => return Err(format!("client: unknown argument {other:?}")),
        }
    }
    a.runtime.run(run_client(a)).map_err(|e| e.to_string())?
}

struct WorkerResult {
    hist: Histogram<u64>,
    calls: u64,
    errors: u64,
    first_error: Option<String>,
}

async fn run_client(a: ClientArgs) -> Result<(), String> {
    let client = Client::connect(a.system, a.addr).await?;
    let phase = Arc::new(AtomicU8::new(WARMUP));
    let counter = Arc::new(AtomicU64::new(0));
    let template: Arc<[u8]> = (0..a.payload).map(|i| (i % 251) as u8).collect();
    let mut workers = Vec::new();
    for _ in 0..a.concurrency.max(1) {
        let client = client.clone();
        let phase = phase.clone();
        let counter = counter.clone();
        let template = template.clone();
        workers.push(a.runtime.spawn(async move {
            let mut r = WorkerResult {
                hist: Histogram::new_with_bounds(1, 60_000_000, 3).expect("static bounds"),
                calls: 0,
                errors: 0,
                first_error: None,
            };
            loop {
                let p = phase.load(Ordering::Relaxed);
                if p == STOP {
                    return r;
                }
                let n = counter.fetch_add(1, Ordering::Relaxed);
                // A payload that differs per call: the call's number stamped in front.
                let body = numbered(&template, n);
                let t0 = Instant::now();
                let reply = client.echo(body.clone()).await;
                let us = t0.elapsed().as_micros() as u64;
                let wrong = match reply {
                    Ok(got) if got == body => None,
                    Ok(got) => Some(format!(
                        "call {n}: reply of {} bytes differs from the request",
                        got.len()
                    )),
                    Err(e) => Some(format!("call {n}: {e}")),
                };
                if let Some(e) = wrong {
                    r.errors += 1;
                    r.first_error.get_or_insert(e);
                } else if p == MEASURE {
                    r.calls += 1;
                    let _ = r.hist.record(us.max(1));
                }
            }
        }));
    }
    tokio::time::sleep(a.warmup).await;
    let self_cpu0 = cpu_ticks("self").unwrap_or(0);
    println!("measuring");
    std::io::stdout().flush().map_err(|e| e.to_string())?;
    phase.store(MEASURE, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(a.duration).await;
    phase.store(STOP, Ordering::Relaxed);
    let elapsed = started.elapsed();
    let self_cpu1 = cpu_ticks("self").unwrap_or(0);
    println!("stopped");
    std::io::stdout().flush().map_err(|e| e.to_string())?;
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("static bounds");
    let (mut calls, mut errors, mut first_error) = (0, 0, None);
    for w in workers {
        let r = w.await.map_err(|e| e.to_string())?;
        hist.add(&r.hist).map_err(|e| e.to_string())?;
        calls += r.calls;
        errors += r.errors;
        if first_error.is_none() {
            first_error = r.first_error;
        }
    }
    if let Some(e) = &first_error {
        eprintln!("loadgen client ({}): {e}", a.system);
    }
    println!(
        "result calls={calls} errors={errors} secs={:.4} p50_us={} p99_us={} p999_us={} cpu_ticks={}",
        elapsed.as_secs_f64(),
        hist.value_at_quantile(0.5),
        hist.value_at_quantile(0.99),
        hist.value_at_quantile(0.999),
        self_cpu1.saturating_sub(self_cpu0),
    );
    Ok(())
}
