//! The Markdown report: one table per payload, and the machine and toolchain it ran on.

use std::collections::BTreeMap;
use std::process::Command;

use benches::systems::System;

use crate::orchestrator::{Plan, Point};

pub(crate) fn human_size(n: usize) -> String {
    if n >= 1024 && n.is_multiple_of(1024) {
        format!("{} KiB", n / 1024)
    } else {
        format!("{n} B")
    }
}

pub(crate) fn table(points: &[Point], payload: usize) -> String {
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

pub(crate) fn report(plan: &Plan, points: &[Point]) -> String {
    let mut out = String::new();
    out.push_str("# Load generator results\n\n");
    out.push_str(&environment(plan));
    out.push_str("- Every reply is compared with its request. `× raw` is the QPS ratio to the raw TCP floor at the same payload and concurrency, measured in the same run. CPU times come from `/proc/<pid>/stat` (10 ms ticks) over the measured window.\n\n");
    out.push_str("![QPS and p99 latency against calls in flight](results.svg)\n\n");
    for &payload in &plan.payloads {
        out.push_str(&table(points, payload));
    }
    out
}

/// The command that wrote a report and when, then a Markdown list of the machine, toolchain and
/// settings it ran with.
pub(crate) fn environment(plan: &Plan) -> String {
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
    out
}
