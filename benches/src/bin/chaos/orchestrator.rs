//! The steps: etcd and three servers started, the load driven from this process, one fault per
//! step, and the report.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rpc_core::middleware::{DeadlineLayer, RetryLayer, RetryPolicy, Stats};
use rpc_core::{Endpoint, Status};
use rpc_discovery::{BalanceConfig, BalancedChannel, EtcdConfig, EtcdRegistry, Query, Registry};
use tower::Layer;

use crate::args::{arg_value, parse, secs};
use crate::child::Proc;
use crate::driver::{load, Tally};
use crate::etcd::Etcd;
use crate::hostile::{slow_reader, slowloris, Hostile};
use crate::server::{LEASE, SERVICE};

struct Config {
    scale: f64,
    outage: Duration,
    work_ms: u64,
    limit: usize,
    rss_bound_mib: u64,
}

fn parse_args(args: Vec<String>) -> Result<Config, String> {
    let mut c = Config {
        scale: 1.0,
        outage: Duration::from_secs(5),
        work_ms: 10,
        limit: 4,
        rss_bound_mib: 256,
    };
    let mut long = false;
    let mut outage = None;
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--long" => long = true,
            "--outage-secs" => outage = Some(secs(&arg_value(&mut it, &flag)?, &flag)?),
            "--work-ms" => c.work_ms = parse(&arg_value(&mut it, &flag)?, &flag)?,
            "--limit" => c.limit = parse(&arg_value(&mut it, &flag)?, &flag)?,
            "--rss-bound-mib" => c.rss_bound_mib = parse(&arg_value(&mut it, &flag)?, &flag)?,
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    if long {
        c.scale = 3.0;
        c.outage = Duration::from_secs(30);
    }
    if let Some(o) = outage {
        c.outage = o;
    }
    if c.work_ms == 0 || c.limit == 0 {
        return Err("--work-ms and --limit must be at least 1".into());
    }
    Ok(c)
}

/// A server process and its address.
struct Node {
    proc: Proc,
    addr: SocketAddr,
}

fn start_server(name: &str, etcd: &str, c: &Config) -> Result<Node, String> {
    let args = [
        "serve".to_owned(),
        "--etcd".to_owned(),
        etcd.to_owned(),
        "--work-ms".to_owned(),
        c.work_ms.to_string(),
        "--limit".to_owned(),
        c.limit.to_string(),
    ];
    let proc = Proc::start(name, None, &args)?;
    let line = proc.expect("listening ", Duration::from_secs(20))?;
    let addr = line["listening ".len()..]
        .trim()
        .parse()
        .map_err(|e| format!("{name}: bad address in {line:?}: {e}"))?;
    Ok(Node { proc, addr })
}

fn signal(pid: u32, sig: &str) -> Result<(), String> {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .map_err(|e| format!("kill {sig}: {e}"))?
        .success();
    if ok {
        Ok(())
    } else {
        Err(format!("kill {sig} {pid} failed"))
    }
}

/// Peak resident memory (`VmHWM`) of `pid`, in KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

struct Row {
    step: &'static str,
    what: String,
    tally: Tally,
    rss_mib: f64,
    /// Whether idempotent calls must all succeed in this step.
    strict: bool,
}

pub(crate) fn orchestrate(args: Vec<String>) -> Result<(), String> {
    let c = parse_args(args)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let mut etcd = Etcd::start()?;
    let url = etcd.url();
    let mut nodes = Vec::new();
    for i in 1..=3 {
        nodes.push(start_server(&format!("server {i}"), &url, &c)?);
    }
    let capacity = 3.0 * c.limit as f64 * 1000.0 / c.work_ms as f64;
    println!(
        "chaos: etcd at {url}; servers {}; capacity {capacity:.0} calls/s ({} × {} in flight, {} ms each)",
        nodes.iter().map(|n| n.addr.to_string()).collect::<Vec<_>>().join(", "),
        nodes.len(),
        c.limit,
        c.work_ms
    );

    let registry = rt
        .block_on(EtcdRegistry::connect(
            [url.clone()],
            EtcdConfig::new().ttl(LEASE),
        ))
        .map_err(|e| format!("etcd: {e}"))?;
    let registry: Arc<dyn Registry> = Arc::new(registry);
    let stats = Stats::new();
    let (balanced, stack) = rt.block_on(async {
        let watch = registry
            .watch(Query::new(SERVICE))
            .await
            .map_err(|e| format!("watch: {e}"))?;
        // Keepalive finds a frozen server within 600 ms, and a connect (TCP and handshake: the
        // kernel accepts for a frozen process) gives up after 250 ms, so that a call whose
        // attempt meets either still has time for another attempt within its 1 s deadline.
        // Five attempts, not three: the calls a frozen server held fail together when keepalive
        // gives up on it, and their retries land together on the two servers left, which may
        // shed a few of them (a stall of this busy machine does the same); a retry that was shed
        // twice more failed 2 idempotent calls in one CI run out of many.
        let config = BalanceConfig::new()
            .keepalive(Duration::from_millis(200), Duration::from_millis(400))
            .endpoint(|instance| {
                Endpoint::from_uri(&instance.addr)
                    .map(|e| e.connect_timeout(Duration::from_millis(250)))
                    .map_err(|e| Status::invalid_argument(e.to_string()))
            });
        let balanced = BalancedChannel::with_config(watch, config);
        let stack = DeadlineLayer::new(Duration::from_secs(1)).layer(
            RetryLayer::new()
                .policy(
                    RetryPolicy::new()
                        .max_attempts(5)
                        .backoff(Duration::from_millis(5), Duration::from_millis(100)),
                )
                .stats(stats.clone())
                .layer(balanced.clone()),
        );
        Ok::<_, String>((balanced, stack))
    })?;
    wait_for(&rt, &registry, 3, Duration::from_secs(20))?;

    let step_secs = |s: f64| Duration::from_secs_f64(s * c.scale);
    let light = 0.3 * capacity;
    let mut rows = Vec::new();
    let rss = |nodes: &[Node]| {
        nodes
            .iter()
            .filter_map(|n| peak_rss_kib(n.proc.pid()))
            .max()
            .unwrap_or(0) as f64
            / 1024.0
    };

    // 1. baseline
    let tally = rt.block_on(load(stack.clone(), light, step_secs(3.0)));
    rows.push(Row {
        step: "baseline",
        what: "no fault".into(),
        tally,
        rss_mib: rss(&nodes),
        strict: true,
    });

    // 2. sigkill: server 3 killed, started again a second later.
    let run = rt.spawn(load(stack.clone(), light, step_secs(4.0)));
    std::thread::sleep(step_secs(1.0));
    let victim = nodes.pop().ok_or("no server")?;
    let old = victim.addr;
    drop(victim); // SIGKILL (Proc's drop), and wait
    std::thread::sleep(step_secs(1.0));
    nodes.push(start_server("server 3 (restarted)", &url, &c)?);
    let tally = rt.block_on(run).map_err(|e| e.to_string())?;
    rows.push(Row {
        step: "sigkill",
        what: format!("server 3 ({old}) SIGKILLed, restarted as {}", nodes[2].addr),
        tally,
        rss_mib: rss(&nodes),
        strict: true,
    });

    // 3. sigstop: server 2 frozen for 5 s.
    let frozen = Duration::from_secs(5);
    let before = stats.snapshot();
    let run = rt.spawn(load(stack.clone(), light, step_secs(2.0) + frozen));
    std::thread::sleep(step_secs(1.0));
    signal(nodes[1].proc.pid(), "-STOP")?;
    std::thread::sleep(frozen);
    signal(nodes[1].proc.pid(), "-CONT")?;
    let tally = rt.block_on(run).map_err(|e| e.to_string())?;
    let after = stats.snapshot();
    rows.push(Row {
        step: "sigstop",
        what: format!(
            "server 2 ({}) frozen for {frozen:?}; {} retries, {} refused by the budget",
            nodes[1].addr,
            after.retries - before.retries,
            after.retries_over_budget - before.retries_over_budget
        ),
        tally,
        rss_mib: rss(&nodes),
        strict: true,
    });

    // 4. etcd down.
    let run = rt.spawn(load(stack.clone(), light, step_secs(3.0) + c.outage));
    std::thread::sleep(step_secs(1.0));
    etcd.kill();
    std::thread::sleep(c.outage);
    etcd.restart()?;
    let tally = rt.block_on(run).map_err(|e| e.to_string())?;
    let back = Instant::now();
    wait_for(&rt, &registry, 3, Duration::from_secs(30))?;
    rows.push(Row {
        step: "etcd-down",
        what: format!(
            "etcd SIGKILLed for {:?}; all three registered again {:.1} s after the step",
            c.outage,
            back.elapsed().as_secs_f64()
        ),
        tally,
        rss_mib: rss(&nodes),
        strict: true,
    });

    // 5. hostile clients beside the load (before the overload, which spends the retry budget).
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Hostile::default());
    let mut hostile = Vec::new();
    for n in &nodes {
        for _ in 0..20 {
            hostile.push(rt.spawn(slowloris(n.addr, stop.clone(), seen.clone())));
        }
        for _ in 0..2 {
            hostile.push(rt.spawn(slow_reader(n.addr, stop.clone(), seen.clone())));
        }
    }
    let tally = rt.block_on(load(stack.clone(), light, step_secs(4.0)));
    stop.store(true, Ordering::Relaxed);
    for h in hostile {
        let _ = rt.block_on(h);
    }
    rows.push(Row {
        step: "hostile",
        what: format!(
            "20 slowloris and 2 slow readers per server ({} slowloris closed by servers, {:.1} MiB of requests taken from the readers)",
            seen.closed.load(Ordering::Relaxed),
            seen.flooded.load(Ordering::Relaxed) as f64 / 1048576.0
        ),
        tally,
        rss_mib: rss(&nodes),
        strict: true,
    });

    // 6. overload: 3 × capacity.
    let before = stats.snapshot();
    let tally = rt.block_on(load(stack.clone(), 3.0 * capacity, step_secs(4.0)));
    let after = stats.snapshot();
    rows.push(Row {
        step: "overload",
        what: format!(
            "3 × capacity ({:.0} calls/s), shedding on; {} retries, {} refused by the budget",
            3.0 * capacity,
            after.retries - before.retries,
            after.retries_over_budget - before.retries_over_budget
        ),
        tally,
        rss_mib: rss(&nodes),
        strict: false,
    });

    let (report, failures) = report(&rows, &c);
    print!("{report}");
    drop(balanced);
    for n in &mut nodes {
        let _ = n.proc.send("stop");
    }
    for n in &mut nodes {
        n.proc.finish(Duration::from_secs(10));
    }
    if failures.is_empty() {
        println!("chaos: ok");
        Ok(())
    } else {
        Err(failures.join("; "))
    }
}

/// Waits until `n` instances are registered (a fresh watch each time: etcd may be coming back).
fn wait_for(
    rt: &tokio::runtime::Runtime,
    registry: &Arc<dyn Registry>,
    n: usize,
    limit: Duration,
) -> Result<(), String> {
    let until = Instant::now() + limit;
    loop {
        let seen = rt
            .block_on(registry.watch(Query::new(SERVICE)))
            .map(|w| w.current().len())
            .unwrap_or(0);
        if seen == n {
            return Ok(());
        }
        if Instant::now() > until {
            return Err(format!("{seen} of {n} servers registered after {limit:?}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn report(rows: &[Row], c: &Config) -> (String, Vec<String>) {
    let unloaded = rows[0].tally.ms(0.99);
    let mut out = String::new();
    let mut failures = Vec::new();
    out.push_str("\n| step | fault | calls | failed idempotent | failed other | shed | admitted p50 ms | p99 ms | p99 / unloaded | server peak RSS MiB |\n");
    out.push_str("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for r in rows {
        let t = &r.tally;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {:.1} % | {:.2} | {:.2} | {:.2} | {:.1} |",
            r.step,
            r.what,
            t.calls,
            t.failed_idempotent,
            t.failed_other,
            100.0 * t.shed as f64 / t.calls.max(1) as f64,
            t.ms(0.5),
            t.ms(0.99),
            t.ms(0.99) / unloaded.max(0.001),
            r.rss_mib
        );
        if !t.codes.is_empty() {
            let _ = writeln!(
                out,
                "|  | failures by code: {:?} | | | | | | | | |",
                t.codes
            );
        }
        if r.strict {
            for f in &t.idempotent_failures {
                let _ = writeln!(out, "|  | failed idempotent call {f} | | | | | | | | |");
            }
        }
        if r.strict && t.failed_idempotent > 0 {
            failures.push(format!(
                "{}: {} idempotent calls failed",
                r.step, t.failed_idempotent
            ));
        }
        if r.rss_mib > c.rss_bound_mib as f64 {
            failures.push(format!(
                "{}: a server reached {:.0} MiB, over {} MiB",
                r.step, r.rss_mib, c.rss_bound_mib
            ));
        }
        if t.admitted.is_empty() {
            failures.push(format!("{}: no call succeeded", r.step));
        }
    }
    if let Some(o) = rows.iter().find(|r| r.step == "overload") {
        let ratio = o.tally.ms(0.99) / unloaded.max(0.001);
        let _ = writeln!(
            out,
            "\noverload: admitted p99 {:.2} ms = {ratio:.2} × the unloaded {unloaded:.2} ms (target ≤ 2: {})",
            o.tally.ms(0.99),
            if ratio <= 2.0 { "met" } else { "not met" }
        );
    }
    (out, failures)
}
