//! `overload client`: one workload against a running server, then a `result …` line.
//!
//! - `--mode closed`: `--concurrency` callers, each making its next call when the last ends
//!   (capacity). Latency counts from the call's start.
//! - `--mode open`: calls start at `--rate` per second whatever the server does, at Poisson
//!   times (exponential gaps), each spawned as its own task. Latency counts from when the client
//!   started the call; how late that was against the schedule is reported apart (`lag_p99_us`),
//!   to show whether the client kept up.
//!
//! Every call carries a deadline of `--deadline-ms` from its start. Calls started in
//! the `--warmup` are not counted; after the measured window the client waits for the calls
//! still in flight (at most their deadline) before it prints.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hdrhistogram::Histogram;
use rpc_core::{Channel, Code, Delivery, Endpoint, Request, Status};
use tokio::time::Instant;

use crate::args::{arg_value, parse, secs};
use crate::child::say;
use crate::cpu::cpu_ticks;
use crate::server::Handler;

/// How close to a call's due time the open loop stops sleeping and starts yielding.
const SPIN: Duration = Duration::from_millis(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Closed,
    Open,
}

struct ClientArgs {
    addr: SocketAddr,
    path: &'static str,
    mode: Mode,
    concurrency: usize,
    rate: f64,
    warmup: Duration,
    duration: Duration,
    deadline: Duration,
    connections: usize,
}

/// What the measured calls ended with.
struct Tally {
    ok: Histogram<u64>,
    refused: Histogram<u64>,
    /// `DeadlineExceeded` from the server, not processed (its deadline passed before it started).
    expired_unstarted: u64,
    /// Any other `DeadlineExceeded` (the client's timer, or a handler that ran late).
    expired: u64,
    other: u64,
    first_error: Option<String>,
}

impl Tally {
    fn new() -> Tally {
        let h = || Histogram::new_with_bounds(1, 120_000_000, 3).expect("static bounds");
        Tally {
            ok: h(),
            refused: h(),
            expired_unstarted: 0,
            expired: 0,
            other: 0,
            first_error: None,
        }
    }

    fn record(&mut self, result: &Result<Bytes, Status>, took: Duration) {
        let us = (took.as_micros() as u64).max(1);
        match result {
            Ok(_) => {
                let _ = self.ok.record(us);
            }
            Err(s) if s.code() == Code::ResourceExhausted => {
                let _ = self.refused.record(us);
            }
            Err(s) if s.code() == Code::DeadlineExceeded => {
                if s.delivery() == Delivery::Unprocessed {
                    self.expired_unstarted += 1;
                } else {
                    self.expired += 1;
                }
            }
            Err(s) => {
                self.other += 1;
                self.first_error.get_or_insert_with(|| s.to_string());
            }
        }
    }
}

pub(crate) fn client(args: Vec<String>) -> Result<(), String> {
    let mut a = ClientArgs {
        addr: "127.0.0.1:0".parse().map_err(|_| "addr")?,
        path: Handler::Inline.path(),
        mode: Mode::Closed,
        concurrency: 32,
        rate: 1000.0,
        warmup: Duration::from_millis(500),
        duration: Duration::from_secs(2),
        deadline: Duration::from_secs(1),
        connections: 1,
    };
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        let v = arg_value(&mut it, &flag)?;
        match flag.as_str() {
            "--addr" => a.addr = parse(&v, &flag)?,
            "--handler" => a.path = Handler::parse(&v)?.path(),
            "--mode" => {
                a.mode = match v.as_str() {
                    "closed" => Mode::Closed,
                    "open" => Mode::Open,
                    _ => return Err(format!("--mode: expected closed or open, got {v:?}")),
                }
            }
            "--concurrency" => a.concurrency = parse(&v, &flag)?,
            "--rate" => a.rate = parse(&v, &flag)?,
            "--warmup" => a.warmup = secs(&v, &flag)?,
            "--secs" => a.duration = secs(&v, &flag)?,
            "--deadline-ms" => a.deadline = Duration::from_millis(parse(&v, &flag)?),
            "--connections" => a.connections = parse(&v, &flag)?,
            other => return Err(format!("client: unknown argument {other:?}")),
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(run(a))
}

async fn run(a: ClientArgs) -> Result<(), String> {
    let mut channels = Vec::new();
    for _ in 0..a.connections.max(1) {
        let channel = Endpoint::tcp(a.addr)
            .max_concurrent_calls(1_000_000)
            .connect()
            .await
            .map_err(|e| e.to_string())?;
        channels.push(channel);
    }
    let tally = Arc::new(Mutex::new(Tally::new()));
    let offered = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let measure_from = start + a.warmup;
    let measure_to = measure_from + a.duration;
    let window = tokio::spawn(window(measure_from, measure_to));
    let lag_p99_us = match a.mode {
        Mode::Closed => {
            closed(&a, &channels, &tally, &offered, measure_from, measure_to).await;
            0
        }
        Mode::Open => open(&a, &channels, &tally, &offered, measure_from, measure_to)
            .await
            .value_at_quantile(0.99),
    };
    let cpu = window.await.map_err(|e| e.to_string())?;
    let t = tally.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(e) = &t.first_error {
        eprintln!("overload client: {e}");
    }
    let q = |h: &Histogram<u64>, q: f64| {
        if h.is_empty() {
            0
        } else {
            h.value_at_quantile(q)
        }
    };
    let in_time = t.ok.count_between(0, a.deadline.as_micros() as u64);
    say(&format!(
        "result offered={} ok={} in_time={in_time} refused={} expired_unstarted={} expired={} other={} secs={:.4} ok_p50_us={} ok_p99_us={} ok_p999_us={} refused_p50_us={} refused_p99_us={} lag_p99_us={lag_p99_us} cpu_ticks={cpu}",
        offered.load(Ordering::Relaxed),
        t.ok.len(),
        t.refused.len(),
        t.expired_unstarted,
        t.expired,
        t.other,
        a.duration.as_secs_f64(),
        q(&t.ok, 0.5),
        q(&t.ok, 0.99),
        q(&t.ok, 0.999),
        q(&t.refused, 0.5),
        q(&t.refused, 0.99),
    ));
    Ok(())
}

/// Prints `measuring` and `stopped` at the edges of the measured window (the orchestrator reads
/// the server's CPU time then); returns this process's CPU ticks within it.
async fn window(from: Instant, to: Instant) -> u64 {
    tokio::time::sleep_until(from).await;
    let t0 = cpu_ticks("self").unwrap_or(0);
    say("measuring");
    tokio::time::sleep_until(to).await;
    let t1 = cpu_ticks("self").unwrap_or(0);
    say("stopped");
    t1.saturating_sub(t0)
}

fn request(a: &ClientArgs, body: &Bytes, start: Instant) -> Request {
    Request::new(a.path, body.clone()).with_deadline(start + a.deadline)
}

async fn closed(
    a: &ClientArgs,
    channels: &[Channel],
    tally: &Arc<Mutex<Tally>>,
    offered: &Arc<AtomicU64>,
    from: Instant,
    to: Instant,
) {
    let body = Bytes::from_static(b"overload");
    let mut workers = Vec::new();
    for i in 0..a.concurrency.max(1) {
        let channel = channels[i % channels.len()].clone();
        let (tally, offered) = (tally.clone(), offered.clone());
        let (path, deadline, body) = (a.path, a.deadline, body.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let t0 = Instant::now();
                if t0 >= to {
                    return;
                }
                let req = Request::new(path, body.clone()).with_deadline(t0 + deadline);
                let result = channel.unary(req).await.map(|r| r.into_body());
                if t0 >= from {
                    offered.fetch_add(1, Ordering::Relaxed);
                    let mut t = tally.lock().unwrap_or_else(|e| e.into_inner());
                    t.record(&result, t0.elapsed());
                }
            }
        }));
    }
    for w in workers {
        let _ = w.await;
    }
}

/// A small xorshift generator for the arrival times (no dependency, no need for quality).
struct Rng(u64);

impl Rng {
    fn seeded() -> Rng {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        Rng(t | 1)
    }

    /// Uniform in (0, 1].
    fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }

    /// An exponential gap for `rate` arrivals per second.
    fn gap(&mut self, rate: f64) -> Duration {
        Duration::from_secs_f64(-self.next_f64().ln() / rate)
    }
}

async fn open(
    a: &ClientArgs,
    channels: &[Channel],
    tally: &Arc<Mutex<Tally>>,
    offered: &Arc<AtomicU64>,
    from: Instant,
    to: Instant,
) -> Histogram<u64> {
    let body = Bytes::from_static(b"overload");
    let in_flight = Arc::new(AtomicU64::new(0));
    let rate = a.rate.max(1.0);
    let mut rng = Rng::seeded();
    let mut lag = Histogram::<u64>::new_with_bounds(1, 120_000_000, 3).expect("static bounds");
    let mut due = Instant::now();
    let mut n = 0usize;
    while due < to {
        let now = Instant::now();
        if due > now {
            // Tokio's timers fire on millisecond ticks: sleep only while the next call is far
            // off, then yield (letting the replies in) until it is due, so that calls leave
            // when they are due, not in bursts a tick late. The client spins on its own core.
            if due - now > SPIN {
                tokio::time::sleep_until(due - SPIN).await;
            } else {
                tokio::task::yield_now().await;
            }
            continue;
        }
        // Every call due by now.
        while due <= now && due < to {
            if due >= from {
                let _ = lag.record((now.saturating_duration_since(due).as_micros() as u64).max(1));
            }
            let channel = channels[n % channels.len()].clone();
            n += 1;
            let started = Instant::now();
            let req = request(a, &body, started);
            let measured = due >= from;
            if measured {
                offered.fetch_add(1, Ordering::Relaxed);
            }
            let (tally, in_flight) = (tally.clone(), in_flight.clone());
            in_flight.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                let result = channel.unary(req).await.map(|r| r.into_body());
                if measured {
                    let mut t = tally.lock().unwrap_or_else(|e| e.into_inner());
                    t.record(&result, started.elapsed());
                }
                in_flight.fetch_sub(1, Ordering::Relaxed);
            });
            due += rng.gap(rate);
        }
    }
    // The calls still in flight end by their deadlines (plus a margin for the last answers).
    let until = Instant::now() + a.deadline + Duration::from_secs(2);
    while in_flight.load(Ordering::Relaxed) > 0 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    lag
}
