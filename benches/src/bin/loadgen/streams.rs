//! `loadgen streams`: server streams of numbered messages (`benches::systems::feed`) in this
//! framework and in tonic: messages and bytes per second for each payload and number of
//! concurrent streams, and the memory an idle stream costs each side.
//!
//! The orchestrator starts a server per system (`loadgen serve`) and a client per workload
//! (`loadgen stream-client`). A throughput client opens its streams on one connection, checks
//! every message's size and number, and counts those that arrive in the measured window. An idle
//! client (`--idle N`) waits on stdin between steps so that the orchestrator can read both
//! processes' resident memory before and after it opens `N` idle streams.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{ChildStdin, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use benches::systems::feed::{check, template, FeedClient};
use benches::systems::System;

use crate::args::{arg_value, list, Runtime};
use crate::cpu::{cpu_ticks, rss_kib};
use crate::orchestrator::{
    command, expect_line, field, run_client, start_server, usage, ClientRun, Plan, ServerProc,
};
use crate::report::{environment, human_size};

const WARMUP: u8 = 0;
const MEASURE: u8 = 1;
const STOP: u8 = 2;

/// How long a message may take before a throughput client calls the feed stalled.
const STALL: Duration = Duration::from_secs(10);

struct StreamClientArgs {
    system: System,
    addr: SocketAddr,
    payload: usize,
    streams: usize,
    idle: usize,
    warmup: Duration,
    duration: Duration,
    runtime: Runtime,
}

/// `loadgen stream-client`: one throughput workload, or (`--idle N`) the idle-stream steps.
pub(crate) fn stream_client(args: Vec<String>) -> Result<(), String> {
    let mut a = StreamClientArgs {
        system: System::OursRaw,
        addr: "127.0.0.1:0".parse().map_err(|_| "addr")?,
        payload: 64,
        streams: 1,
        idle: 0,
        warmup: Duration::from_millis(500),
        duration: Duration::from_secs(2),
        runtime: Runtime::Current,
    };
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        let v = arg_value(&mut it, &flag)?;
        let number = |v: &str| {
            v.parse::<usize>()
                .map_err(|_| format!("{flag}: bad value {v:?}"))
        };
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
            "--payload" => a.payload = number(&v)?,
            "--streams" => a.streams = number(&v)?.max(1),
            "--idle" => a.idle = number(&v)?,
            "--warmup" => a.warmup = secs(&v)?,
            "--duration" => a.duration = secs(&v)?,
            "--runtime" => a.runtime = Runtime::parse(&v)?,
            other => return Err(format!("stream-client: unknown argument {other:?}")),
        }
    }
    let runtime = a.runtime;
    if a.idle > 0 {
        runtime.run(idle_client(a)).map_err(|e| e.to_string())?
    } else {
        runtime
            .run(throughput_client(a))
            .map_err(|e| e.to_string())?
    }
}

fn say(line: &str) -> Result<(), String> {
    let mut out = std::io::stdout();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(|e| e.to_string())
}

#[derive(Default)]
struct StreamResult {
    messages: u64,
    errors: u64,
    first_error: Option<String>,
}

impl StreamResult {
    /// This stream's result, ended by `error`.
    fn failed(mut self, error: String) -> StreamResult {
        self.errors += 1;
        self.first_error.get_or_insert(error);
        self
    }
}

async fn throughput_client(a: StreamClientArgs) -> Result<(), String> {
    let client = FeedClient::connect(a.system, a.addr).await?;
    let phase = Arc::new(AtomicU8::new(WARMUP));
    let template = template(a.payload);
    let mut workers = Vec::new();
    for _ in 0..a.streams {
        let client = client.clone();
        let phase = phase.clone();
        let template = template.clone();
        workers.push(a.runtime.spawn(async move {
            let mut r = StreamResult::default();
            let mut feed = match client.subscribe(template.len()).await {
                Ok(feed) => feed,
                Err(e) => return r.failed(format!("opening a stream: {e}")),
            };
            let mut n = 0;
            loop {
                let p = phase.load(Ordering::Relaxed);
                if p == STOP {
                    // Dropping the feed cancels its call.
                    return r;
                }
                // A timer only when the next message is not already there: arming one per
                // message would cost the client more than the message itself.
                let next = feed.next();
                tokio::pin!(next);
                let next = match futures::poll!(next.as_mut()) {
                    std::task::Poll::Ready(got) => Ok(got),
                    std::task::Poll::Pending => tokio::time::timeout(STALL, next).await,
                };
                let got = match next {
                    Ok(Ok(Some(got))) => got,
                    Ok(Ok(None)) => return r.failed(format!("ended after {n} messages")),
                    Ok(Err(e)) => return r.failed(format!("after {n} messages: {e}")),
                    Err(_) => return r.failed(format!("stalled after {n} messages")),
                };
                if let Err(e) = check(&got, &template, n) {
                    return r.failed(e);
                }
                n += 1;
                if p == MEASURE {
                    r.messages += 1;
                }
            }
        }));
    }
    tokio::time::sleep(a.warmup).await;
    let cpu0 = cpu_ticks("self").unwrap_or(0);
    say("measuring")?;
    phase.store(MEASURE, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(a.duration).await;
    phase.store(STOP, Ordering::Relaxed);
    let elapsed = started.elapsed();
    let cpu1 = cpu_ticks("self").unwrap_or(0);
    say("stopped")?;
    let mut total = StreamResult::default();
    for w in workers {
        let r = w.await.map_err(|e| e.to_string())?;
        total.messages += r.messages;
        total.errors += r.errors;
        if total.first_error.is_none() {
            total.first_error = r.first_error;
        }
    }
    if let Some(e) = &total.first_error {
        eprintln!("loadgen stream-client ({}): {e}", a.system);
    }
    say(&format!(
        "result messages={} errors={} secs={:.4} cpu_ticks={}",
        total.messages,
        total.errors,
        elapsed.as_secs_f64(),
        cpu1.saturating_sub(cpu0)
    ))
}

/// Reads one line from stdin: the orchestrator's go-ahead (it read the server's memory).
fn wait_for_go() -> Result<(), String> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    Ok(())
}

async fn idle_client(a: StreamClientArgs) -> Result<(), String> {
    let client = FeedClient::connect(a.system, a.addr).await?;
    // One stream first, so that what the connection itself costs is in the baseline.
    let first = client.hold().await?;
    let rss = |when| rss_kib("self").ok_or(format!("reading this process's memory {when}"));
    say(&format!("baseline rss_kib={}", rss("before")?))?;
    wait_for_go()?;
    let opened = futures::future::try_join_all((0..a.idle).map(|_| client.hold())).await?;
    say(&format!(
        "opened streams={} rss_kib={}",
        opened.len(),
        rss("after")?
    ))?;
    wait_for_go()?;
    drop((first, opened));
    say("result")
}

/// One throughput measurement.
struct StreamPoint {
    system: System,
    payload: usize,
    streams: usize,
    messages: u64,
    errors: u64,
    rate: f64,
    server_cpu_us: f64,
    client_cpu_us: f64,
}

/// The memory `streams` idle streams cost, per stream.
struct IdlePoint {
    system: System,
    streams: usize,
    server_kib: f64,
    client_kib: f64,
}

fn measure(
    plan: &Plan,
    server: &ServerProc,
    system: System,
    payload: usize,
    streams: usize,
) -> Result<StreamPoint, String> {
    let run = run_client(
        plan,
        server,
        "stream-client",
        system,
        &[
            ("--payload", payload.to_string()),
            ("--streams", streams.to_string()),
        ],
    )?;
    let result = &run.result;
    let messages = field(result, "messages")? as u64;
    let per_message_us = |t: f64| ClientRun::per_unit_us(t, messages);
    Ok(StreamPoint {
        system,
        payload,
        streams,
        messages,
        errors: field(result, "errors")? as u64,
        rate: messages as f64 / field(result, "secs")?,
        server_cpu_us: per_message_us(run.server_ticks as f64),
        client_cpu_us: per_message_us(field(result, "cpu_ticks")?),
    })
}

fn go(stdin: &mut ChildStdin) -> Result<(), String> {
    writeln!(stdin, "go")
        .and_then(|()| stdin.flush())
        .map_err(|e| format!("the idle client's stdin: {e}"))
}

fn measure_idle(
    plan: &Plan,
    server: &ServerProc,
    system: System,
    streams: usize,
) -> Result<IdlePoint, String> {
    let server_pid = server.child.id().to_string();
    let mut child = command(plan, plan.pin.then_some(1))?
        .arg("stream-client")
        .args(["--system", system.name()])
        .args(["--addr", &server.addr.to_string()])
        .args(["--idle", &streams.to_string()])
        .args(["--runtime", &plan.runtime.arg()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("starting the {system} idle client: {e}"))?;
    let mut stdin = child.stdin.take().ok_or("no client stdin")?;
    let stdout = child.stdout.take().ok_or("no client stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let server_rss = || rss_kib(&server_pid).ok_or("reading the server's memory");
    let before = expect_line(&mut lines, "baseline")?;
    let server_before = server_rss()?;
    go(&mut stdin)?;
    let after = expect_line(&mut lines, "opened")?;
    let server_after = server_rss()?;
    go(&mut stdin)?;
    expect_line(&mut lines, "result")?;
    let status = child.wait().map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("the {system} idle client failed: {status}"));
    }
    let opened = field(&after, "streams")? as usize;
    if opened != streams {
        return Err(format!(
            "{system}: {opened} of {streams} idle streams opened"
        ));
    }
    let per_stream = |a: f64, b: f64| (b - a).max(0.0) / streams as f64;
    Ok(IdlePoint {
        system,
        streams,
        server_kib: per_stream(server_before as f64, server_after as f64),
        client_kib: per_stream(field(&before, "rss_kib")?, field(&after, "rss_kib")?),
    })
}

fn throughput_table(points: &[StreamPoint]) -> String {
    let mut out = String::from(
        "| system | payload | streams | messages/s | MB/s | × tonic | server CPU µs/message | client CPU µs/message | errors |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let mut rows: Vec<&StreamPoint> = points.iter().collect();
    rows.sort_by_key(|p| (p.payload, p.streams, p.system));
    for p in rows {
        let tonic = points
            .iter()
            .find(|t| t.system == System::Tonic && (t.payload, t.streams) == (p.payload, p.streams))
            .filter(|t| t.rate > 0.0)
            .map_or_else(|| "-".to_owned(), |t| format!("{:.2}", p.rate / t.rate));
        out.push_str(&format!(
            "| {} | {} | {} | {:.0} | {:.1} | {} | {:.2} | {:.2} | {} |\n",
            p.system,
            human_size(p.payload),
            p.streams,
            p.rate,
            p.rate * p.payload as f64 / 1e6,
            tonic,
            p.server_cpu_us,
            p.client_cpu_us,
            p.errors
        ));
    }
    out
}

fn idle_table(points: &[IdlePoint]) -> String {
    let mut out = String::from(
        "| system | idle streams | server KiB/stream | client KiB/stream |\n|---|---:|---:|---:|\n",
    );
    for p in points {
        out.push_str(&format!(
            "| {} | {} | {:.2} | {:.2} |\n",
            p.system, p.streams, p.server_kib, p.client_kib
        ));
    }
    out
}

/// `loadgen streams`: the whole streaming run.
pub(crate) fn orchestrate_streams(args: Vec<String>) -> Result<(), String> {
    let mut plan = Plan {
        systems: FeedClient::SYSTEMS.to_vec(),
        payloads: vec![64, 4096],
        concurrency: vec![1, 256],
        warmup: Duration::from_millis(500),
        duration: Duration::from_secs(2),
        runtime: Runtime::Current,
        pin: false,
        quick: false,
        out: concat!(env!("CARGO_MANIFEST_DIR"), "/RESULTS-streaming.md").into(),
        chart: String::new(),
        pki: None,
    };
    let mut idle = 10_000;
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        if plan.take_flag(&flag, &mut it)? {
            continue;
        }
        match flag.as_str() {
            "--streams" => plan.concurrency = list(&arg_value(&mut it, &flag)?, &flag)?,
            "--idle" => idle = list(&arg_value(&mut it, &flag)?, &flag)?[0],
            "-h" | "--help" => {
                println!("{}", usage());
                return Ok(());
            }
            other => return Err(format!("streams: unknown argument {other:?} (try --help)")),
        }
    }
    plan.check_pin()?;
    if let Some(s) = plan
        .systems
        .iter()
        .find(|s| !FeedClient::SYSTEMS.contains(s))
    {
        return Err(format!(
            "streams: {s} does not stream; the streaming systems are ours-raw, ours-protobuf and tonic"
        ));
    }
    if plan.quick {
        plan.payloads = vec![64];
        plan.concurrency = vec![1, 8];
        plan.warmup = Duration::from_millis(200);
        plan.duration = Duration::from_millis(500);
        idle = idle.min(100);
    }
    let mut points = Vec::new();
    let mut idle_points = Vec::new();
    for &system in &plan.systems {
        let server = start_server(&plan, system)?;
        for &payload in &plan.payloads {
            for &streams in &plan.concurrency {
                let p = measure(&plan, &server, system, payload, streams)?;
                eprintln!(
                    "{:<14} {:>6} B {:>4} streams: {:>10.0} messages/s {:>8.1} MB/s  errors {}",
                    system.name(),
                    payload,
                    streams,
                    p.rate,
                    p.rate * payload as f64 / 1e6,
                    p.errors
                );
                points.push(p);
            }
        }
        if idle > 0 {
            let p = measure_idle(&plan, &server, system, idle)?;
            eprintln!(
                "{:<14} {} idle streams: server {:.2} KiB/stream, client {:.2} KiB/stream",
                system.name(),
                idle,
                p.server_kib,
                p.client_kib
            );
            idle_points.push(p);
        }
    }
    let tables = format!(
        "{}\n{}",
        throughput_table(&points),
        if idle_points.is_empty() {
            String::new()
        } else {
            idle_table(&idle_points)
        }
    );
    if plan.quick {
        print!("{tables}");
    } else {
        let report = format!(
            "# Streaming results\n\n{}\
             - One server stream per call: messages of the payload's size, numbered in their first 8 bytes, sent as fast as flow control lets them; the client checks every message's size and number. `streams` concurrent streams share one connection (one HTTP/2 channel for tonic). `× tonic` is the ratio of messages per second to tonic's at the same payload and number of streams, in the same run. CPU times come from `/proc/<pid>/stat` (10 ms ticks) over the measured window.\n\
             - Idle streams: each has received one empty message and waits; KiB/stream is the growth of each process's resident memory (`VmRSS`) while they opened, divided by their number.\n\n{tables}",
            environment(&plan)
        );
        std::fs::write(&plan.out, report).map_err(|e| format!("{}: {e}", plan.out))?;
        println!("wrote {}", plan.out);
    }
    let failed: Vec<String> = points
        .iter()
        .filter(|p| p.errors > 0 || p.messages == 0)
        .map(|p| {
            format!(
                "{} ({} B, {} streams): {} messages, {} errors",
                p.system, p.payload, p.streams, p.messages, p.errors
            )
        })
        .collect();
    if !failed.is_empty() {
        return Err(format!(
            "some streams did not deliver every message correctly:\n  {}",
            failed.join("\n  ")
        ));
    }
    if plan.quick {
        println!("loadgen streams --quick: every stream delivered every message correctly");
    }
    Ok(())
}
