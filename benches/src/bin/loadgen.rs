//! The load generator: our framework beside a raw TCP floor, tonic and tarpc, in one run.
//!
//! ```text
//! cargo run --release -p benches --bin loadgen -- [--quick] [--pin] [--runtime current|N]
//!     [--systems raw-tcp,ours-raw,...] [--payloads 64,1024,4096,65536]
//!     [--concurrency 1,32,256,1024] [--duration SECS] [--warmup SECS]
//!     [--out benches/RESULTS.md] [--chart benches/results.svg]
//! ```
//!
//! For each system it starts a server process and, for each workload, a client process, both
//! over TCP loopback with one connection (`--pin` pins the server to CPU 0 and the client to
//! CPU 1 with `taskset`). Each client warms up, then runs for the measured duration; every reply
//! is compared with its request. Server and client CPU time per call come from
//! `/proc/<pid>/stat`, read at the start and end of the measured window.
//!
//! The full run writes a Markdown report (`--out`) and an SVG chart (`--chart`). `--quick` runs
//! every system once at 64 B and 32 in flight for half a second, prints the table, writes nothing,
//! and fails if any call failed or any reply was wrong: CI runs it so that the harness cannot rot.
//!
//! The subcommands `serve` and `client` are what the orchestrator starts.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use benches::systems::{Client, System};
use bytes::{Bytes, BytesMut};
use hdrhistogram::Histogram;

// ---------------------------------------------------------------------------------------------
// Shared pieces

/// `current` (a current-thread runtime) or a number of worker threads.
#[derive(Debug, Clone, Copy)]
enum Runtime {
    Current,
    Workers(usize),
}

impl Runtime {
    fn parse(s: &str) -> Result<Runtime, String> {
        match s {
            "current" | "1" => Ok(Runtime::Current),
            n => n
                .parse::<usize>()
                .map(|n| Runtime::Workers(n.max(1)))
                .map_err(|_| format!("--runtime: expected `current` or a number, got {n:?}")),
        }
    }

    fn arg(self) -> String {
        match self {
            Runtime::Current => "current".into(),
            Runtime::Workers(n) => n.to_string(),
        }
    }

    fn build(self) -> std::io::Result<tokio::runtime::Runtime> {
        match self {
            Runtime::Current => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build(),
            Runtime::Workers(n) => tokio::runtime::Builder::new_multi_thread()
                .worker_threads(n)
                .enable_all()
                .build(),
        }
    }
}

/// CPU time (user + system) of a process, in clock ticks, from `/proc/<pid>/stat`.
fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces; fields after it are space-separated.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

fn clock_ticks_per_sec() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .unwrap_or(100.0)
}

fn arg_value(it: &mut impl Iterator<Item = String>, flag: &str) -> Result<String, String> {
    it.next().ok_or_else(|| format!("{flag} needs a value"))
}

fn list<T: std::str::FromStr>(s: &str, flag: &str) -> Result<Vec<T>, String> {
    s.split(',')
        .map(|v| {
            v.trim()
                .parse::<T>()
                .map_err(|_| format!("{flag}: bad value {v:?}"))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// `loadgen serve`

fn serve(args: Vec<String>) -> Result<(), String> {
    let mut system = None;
    let mut runtime = Runtime::Current;
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--system" => system = Some(arg_value(&mut it, &flag)?.parse::<System>()?),
            "--runtime" => runtime = Runtime::parse(&arg_value(&mut it, &flag)?)?,
            other => return Err(format!("serve: unknown argument {other:?}")),
        }
    }
    let system = system.ok_or("serve: --system is required")?;
    let rt = runtime.build().map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        println!("listening {addr}");
        std::io::stdout().flush().map_err(|e| e.to_string())?;
        benches::systems::serve(system, listener).await
    })
}

// ---------------------------------------------------------------------------------------------
// `loadgen client`

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

/// A payload that differs per call: a fixed pattern with the call's number stamped in front.
fn payload(template: &[u8], n: u64) -> Bytes {
    let mut b = BytesMut::from(template);
    let tag = n.to_be_bytes();
    let k = tag.len().min(b.len());
    b[..k].copy_from_slice(&tag[..k]);
    b.freeze()
}

fn client(args: Vec<String>) -> Result<(), String> {
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
    let rt = a.runtime.build().map_err(|e| e.to_string())?;
    rt.block_on(run_client(a))
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
        workers.push(tokio::spawn(async move {
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
                let body = payload(&template, n);
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

// ---------------------------------------------------------------------------------------------
// The orchestrator

#[derive(Debug, Clone)]
struct Point {
    system: System,
    payload: usize,
    concurrency: usize,
    calls: u64,
    errors: u64,
    qps: f64,
    p50: u64,
    p99: u64,
    p999: u64,
    server_cpu_us: f64,
    client_cpu_us: f64,
}

struct Plan {
    systems: Vec<System>,
    payloads: Vec<usize>,
    concurrency: Vec<usize>,
    warmup: Duration,
    duration: Duration,
    runtime: Runtime,
    pin: bool,
    quick: bool,
    out: String,
    chart: String,
}

fn command(pin_cpu: Option<u32>) -> Result<Command, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    Ok(match pin_cpu {
        Some(cpu) => {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(cpu.to_string()).arg(exe);
            c
        }
        None => Command::new(exe),
    })
}

struct ServerProc {
    child: Child,
    addr: SocketAddr,
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(plan: &Plan, system: System) -> Result<ServerProc, String> {
    let mut child = command(plan.pin.then_some(0))?
        .arg("serve")
        .arg("--system")
        .arg(system.name())
        .arg("--runtime")
        .arg(plan.runtime.arg())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("starting the {system} server: {e}"))?;
    let stdout = child.stdout.take().ok_or("no server stdout")?;
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let addr = line
        .trim()
        .strip_prefix("listening ")
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| format!("the {system} server did not report its address (got {line:?})"))?;
    Ok(ServerProc { child, addr })
}

fn expect_line(
    lines: &mut std::io::Lines<BufReader<ChildStdout>>,
    want: &str,
) -> Result<String, String> {
    for line in lines.by_ref() {
        let line = line.map_err(|e| e.to_string())?;
        if line.starts_with(want) {
            return Ok(line);
        }
    }
    Err(format!("the client ended before printing {want:?}"))
}

fn field(line: &str, key: &str) -> Result<f64, String> {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("missing {key} in {line:?}"))
}

fn measure(
    plan: &Plan,
    server: &ServerProc,
    system: System,
    payload: usize,
    concurrency: usize,
    ticks: f64,
) -> Result<Point, String> {
    let server_pid = server.child.id().to_string();
    let mut child = command(plan.pin.then_some(1))?
        .arg("client")
        .args(["--system", system.name()])
        .args(["--addr", &server.addr.to_string()])
        .args(["--payload", &payload.to_string()])
        .args(["--concurrency", &concurrency.to_string()])
        .args(["--warmup", &plan.warmup.as_secs_f64().to_string()])
        .args(["--duration", &plan.duration.as_secs_f64().to_string()])
        .args(["--runtime", &plan.runtime.arg()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("starting the {system} client: {e}"))?;
    let stdout = child.stdout.take().ok_or("no client stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    expect_line(&mut lines, "measuring")?;
    let s0 = cpu_ticks(&server_pid).unwrap_or(0);
    expect_line(&mut lines, "stopped")?;
    let s1 = cpu_ticks(&server_pid).unwrap_or(0);
    let result = expect_line(&mut lines, "result")?;
    let status = child.wait().map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("the {system} client failed: {status}"));
    }
    let calls = field(&result, "calls")? as u64;
    let secs = field(&result, "secs")?;
    let per_call_us = |t: f64| {
        if calls == 0 {
            0.0
        } else {
            t / ticks * 1e6 / calls as f64
        }
    };
    Ok(Point {
        system,
        payload,
        concurrency,
        calls,
        errors: field(&result, "errors")? as u64,
        qps: calls as f64 / secs,
        p50: field(&result, "p50_us")? as u64,
        p99: field(&result, "p99_us")? as u64,
        p999: field(&result, "p999_us")? as u64,
        server_cpu_us: per_call_us(s1.saturating_sub(s0) as f64),
        client_cpu_us: per_call_us(field(&result, "cpu_ticks")?),
    })
}

fn human_size(n: usize) -> String {
    if n >= 1024 && n.is_multiple_of(1024) {
        format!("{} KiB", n / 1024)
    } else {
        format!("{n} B")
    }
}

fn table(points: &[Point], payload: usize) -> String {
    let mut out = String::new();
    out.push_str(&format!("### Payload {}\n\n", human_size(payload)));
    out.push_str("| system | in flight | QPS | × raw | p50 µs | p99 µs | p999 µs | server CPU µs/call | client CPU µs/call | errors |\n");
    out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    let raw: BTreeMap<usize, f64> = points
        .iter()
        .filter(|p| p.system == System::Raw && p.payload == payload)
        .map(|p| (p.concurrency, p.qps))
        .collect();
    let mut rows: Vec<&Point> = points.iter().filter(|p| p.payload == payload).collect();
    rows.sort_by_key(|p| (p.concurrency, p.system));
    for p in rows {
        let ratio = raw
            .get(&p.concurrency)
            .filter(|r| **r > 0.0)
            .map_or_else(|| "-".to_owned(), |r| format!("{:.2}", p.qps / r));
        out.push_str(&format!(
            "| {} | {} | {:.0} | {} | {} | {} | {} | {:.2} | {:.2} | {} |\n",
            p.system,
            p.concurrency,
            p.qps,
            ratio,
            p.p50,
            p.p99,
            p.p999,
            p.server_cpu_us,
            p.client_cpu_us,
            p.errors
        ));
    }
    out.push('\n');
    out
}

fn command_output(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| "unknown".into())
}

/// The version of a package in the workspace's Cargo.lock.
fn locked_version(lock: &str, name: &str) -> String {
    let needle = format!("name = \"{name}\"\nversion = \"");
    lock.find(&needle)
        .and_then(|i| lock[i + needle.len()..].split('"').next())
        .unwrap_or("?")
        .to_owned()
}

fn report(plan: &Plan, points: &[Point]) -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock"))
        .unwrap_or_default();
    let mut out = String::new();
    out.push_str("# Load generator results\n\n");
    out.push_str(&format!(
        "Written by `cargo run --release -p benches --bin loadgen -- {}` on {}.\n\n",
        std::env::args().skip(1).collect::<Vec<_>>().join(" "),
        command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"])
    ));
    out.push_str(&format!(
        "- Machine: {model}, {cpus} CPUs; {}\n",
        command_output("uname", &["-sr"])
    ));
    out.push_str(&format!(
        "- Toolchain: {}; tokio {}, rpc-core {}, tonic {}, tarpc {}\n",
        command_output("rustc", &["-V"]),
        locked_version(&lock, "tokio"),
        env!("CARGO_PKG_VERSION"),
        locked_version(&lock, "tonic"),
        locked_version(&lock, "tarpc")
    ));
    out.push_str(&format!(
        "- One TCP connection (one HTTP/2 channel for tonic) per run; tokio runtime `{}` in server and client; {}; {:.1} s warm-up (excluded), {:.1} s measured.\n",
        plan.runtime.arg(),
        if plan.pin {
            "server pinned to CPU 0 and client to CPU 1 (`taskset`)"
        } else {
            "processes not pinned"
        },
        plan.warmup.as_secs_f64(),
        plan.duration.as_secs_f64()
    ));
    out.push_str("- Every reply is compared with its request. `× raw` is the QPS ratio to the raw TCP floor at the same payload and concurrency, measured in the same run. CPU times come from `/proc/<pid>/stat` (10 ms ticks) over the measured window.\n\n");
    out.push_str("![QPS and p99 latency against calls in flight](results.svg)\n\n");
    for &payload in &plan.payloads {
        out.push_str(&table(points, payload));
    }
    out
}

fn chart(path: &str, plan: &Plan, points: &[Point]) -> Result<(), String> {
    use plotters::prelude::*;
    let rows = plan.payloads.len().max(1);
    let root = SVGBackend::new(path, (1100, 330 * rows as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let cells = root.split_evenly((rows, 2));
    let colors = [
        RGBColor(0, 0, 0),
        RGBColor(31, 119, 180),
        RGBColor(44, 160, 44),
        RGBColor(23, 190, 207),
        RGBColor(148, 103, 189),
        RGBColor(214, 39, 40),
        RGBColor(255, 127, 14),
    ];
    let max_c = plan.concurrency.iter().copied().max().unwrap_or(1).max(2) as u32;
    for (row, &payload) in plan.payloads.iter().enumerate() {
        for (col, metric) in ["QPS", "p99 µs"].iter().enumerate() {
            let area = &cells[row * 2 + col];
            let value = |p: &Point| if col == 0 { p.qps } else { p.p99 as f64 };
            let here: Vec<&Point> = points.iter().filter(|p| p.payload == payload).collect();
            let max_v = here.iter().map(|p| value(p)).fold(1.0, f64::max) * 1.5;
            let min_v = here.iter().map(|p| value(p)).fold(max_v, f64::min).max(1.0) / 1.5;
            let mut c = ChartBuilder::on(area)
                .caption(
                    format!("{metric}, payload {}", human_size(payload)),
                    ("sans-serif", 16),
                )
                .margin(8)
                .x_label_area_size(30)
                .y_label_area_size(60)
                .build_cartesian_2d((1u32..max_c).log_scale(), (min_v..max_v).log_scale())
                .map_err(|e| e.to_string())?;
            c.configure_mesh()
                .x_desc("calls in flight")
                .draw()
                .map_err(|e| e.to_string())?;
            for (i, sys) in plan.systems.iter().enumerate() {
                let color = colors[i % colors.len()];
                let mut series: Vec<(u32, f64)> = here
                    .iter()
                    .filter(|p| p.system == *sys)
                    .map(|p| (p.concurrency as u32, value(p)))
                    .collect();
                series.sort_by_key(|(c, _)| *c);
                c.draw_series(LineSeries::new(series.clone(), color.stroke_width(2)))
                    .map_err(|e| e.to_string())?
                    .label(sys.name())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
                c.draw_series(
                    series
                        .iter()
                        .map(|&(x, y)| Circle::new((x, y), 3, color.filled())),
                )
                .map_err(|e| e.to_string())?;
            }
            c.configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .position(if col == 0 {
                    SeriesLabelPosition::LowerRight
                } else {
                    SeriesLabelPosition::UpperLeft
                })
                .draw()
                .map_err(|e| e.to_string())?;
        }
    }
    root.present().map_err(|e| e.to_string())
}

fn orchestrate(args: Vec<String>) -> Result<(), String> {
    let mut plan = Plan {
        systems: System::ALL.to_vec(),
        payloads: vec![64, 1024, 4096, 65536],
        concurrency: vec![1, 32, 256, 1024],
        warmup: Duration::from_millis(500),
        duration: Duration::from_secs(2),
        runtime: Runtime::Current,
        pin: false,
        quick: false,
        out: concat!(env!("CARGO_MANIFEST_DIR"), "/RESULTS.md").into(),
        chart: concat!(env!("CARGO_MANIFEST_DIR"), "/results.svg").into(),
    };
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--quick" => plan.quick = true,
            "--pin" => plan.pin = true,
            "--systems" => plan.systems = list(&arg_value(&mut it, &flag)?, &flag)?,
            "--payloads" => plan.payloads = list(&arg_value(&mut it, &flag)?, &flag)?,
            "--concurrency" => plan.concurrency = list(&arg_value(&mut it, &flag)?, &flag)?,
            "--duration" => {
                plan.duration =
                    Duration::from_secs_f64(list::<f64>(&arg_value(&mut it, &flag)?, &flag)?[0])
            }
            "--warmup" => {
                plan.warmup =
                    Duration::from_secs_f64(list::<f64>(&arg_value(&mut it, &flag)?, &flag)?[0])
            }
            "--runtime" => plan.runtime = Runtime::parse(&arg_value(&mut it, &flag)?)?,
            "--out" => plan.out = arg_value(&mut it, &flag)?,
            "--chart" => plan.chart = arg_value(&mut it, &flag)?,
            "-h" | "--help" => {
                println!(
                    "{}",
                    include_str!("loadgen.rs")
                        .lines()
                        .take_while(|l| l.starts_with("//!"))
                        .map(|l| l.trim_start_matches("//!").trim_start_matches(' '))
                        .collect::<Vec<_>>()
                        .join("\n")
                );
                return Ok(());
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    if plan.quick {
        plan.payloads = vec![64];
        plan.concurrency = vec![32];
        plan.warmup = Duration::from_millis(200);
        plan.duration = Duration::from_millis(500);
    }
    if plan.pin && Command::new("taskset").arg("-V").output().is_err() {
        return Err("--pin needs taskset (util-linux)".into());
    }
    let ticks = clock_ticks_per_sec();
    let mut points = Vec::new();
    for &system in &plan.systems {
        let server = start_server(&plan, system)?;
        for &payload in &plan.payloads {
            for &concurrency in &plan.concurrency {
                let p = measure(&plan, &server, system, payload, concurrency, ticks)?;
                eprintln!(
                    "{:<14} {:>6} B {:>5} in flight: {:>9.0} qps  p50 {:>6} µs  p99 {:>6} µs  p999 {:>6} µs  errors {}",
                    system.name(), payload, concurrency, p.qps, p.p50, p.p99, p.p999, p.errors
                );
                points.push(p);
            }
        }
    }
    let failed: Vec<String> = points
        .iter()
        .filter(|p| p.errors > 0 || p.calls == 0)
        .map(|p| {
            format!(
                "{} ({} B, {} in flight): {} calls, {} errors",
                p.system, p.payload, p.concurrency, p.calls, p.errors
            )
        })
        .collect();
    if plan.quick {
        for &payload in &plan.payloads {
            print!("{}", table(&points, payload));
        }
    } else {
        std::fs::write(&plan.out, report(&plan, &points))
            .map_err(|e| format!("{}: {e}", plan.out))?;
        chart(&plan.chart, &plan, &points)?;
        println!("wrote {} and {}", plan.out, plan.chart);
    }
    if !failed.is_empty() {
        return Err(format!(
            "some systems did not answer every call correctly:\n  {}",
            failed.join("\n  ")
        ));
    }
    if plan.quick {
        println!("loadgen --quick: every system answered every call correctly");
    }
    Ok(())
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("serve") => serve(args.split_off(1)),
        Some("client") => client(args.split_off(1)),
        _ => orchestrate(args),
    };
    if let Err(e) = result {
        eprintln!("loadgen: {e}");
        std::process::exit(1);
    }
}
