//! The orchestrator: parses the plan, starts a server process per system and a client process
//! per workload, measures each, then prints or writes the results.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use benches::systems::{System, PKI_ENV};

use crate::args::{arg_value, list, Runtime};
use crate::chart::chart;
use crate::cpu::{clock_ticks_per_sec, cpu_ticks};
use crate::report::{report, table};

#[derive(Debug, Clone)]
pub(crate) struct Point {
    pub(crate) system: System,
    pub(crate) payload: usize,
    pub(crate) concurrency: usize,
    pub(crate) calls: u64,
    pub(crate) errors: u64,
    pub(crate) qps: f64,
    pub(crate) p50: u64,
    pub(crate) p99: u64,
    pub(crate) p999: u64,
    pub(crate) server_cpu_us: f64,
    pub(crate) client_cpu_us: f64,
}

pub(crate) struct Plan {
    pub(crate) systems: Vec<System>,
    pub(crate) payloads: Vec<usize>,
    pub(crate) concurrency: Vec<usize>,
    pub(crate) warmup: Duration,
    pub(crate) duration: Duration,
    pub(crate) runtime: Runtime,
    pub(crate) pin: bool,
    pub(crate) quick: bool,
    pub(crate) out: String,
    pub(crate) chart: String,
    /// The PKI of the TLS systems, shared with the children.
    pub(crate) pki: Option<Pki>,
}

/// `loadgen`'s help: the doc comment of `loadgen.rs`.
pub(crate) fn usage() -> String {
    include_str!("../loadgen.rs")
        .lines()
        .take_while(|l| l.starts_with("//!"))
        .map(|l| l.trim_start_matches("//!").trim_start_matches(' '))
        .collect::<Vec<_>>()
        .join("\n")
}

impl Plan {
    /// `--pin` needs `taskset`: an error when it is asked for and missing.
    pub(crate) fn check_pin(&self) -> Result<(), String> {
        if self.pin && Command::new("taskset").arg("-V").output().is_err() {
            return Err("--pin needs taskset (util-linux)".into());
        }
        Ok(())
    }

    /// Takes one of the flags every orchestrator shares (`--quick`, `--pin`, `--systems`,
    /// `--payloads`, `--duration`, `--warmup`, `--runtime`, `--out`), with its value from `it`;
    /// `false` for any other flag.
    pub(crate) fn take_flag(
        &mut self,
        flag: &str,
        it: &mut impl Iterator<Item = String>,
    ) -> Result<bool, String> {
        let secs = |v: String| -> Result<Duration, String> {
            Ok(Duration::from_secs_f64(list::<f64>(&v, flag)?[0]))
        };
        match flag {
            "--quick" => self.quick = true,
            "--pin" => self.pin = true,
            "--systems" => self.systems = System::parse_list(&arg_value(it, flag)?)?,
            "--payloads" => self.payloads = list(&arg_value(it, flag)?, flag)?,
            "--duration" => self.duration = secs(arg_value(it, flag)?)?,
            "--warmup" => self.warmup = secs(arg_value(it, flag)?)?,
            "--runtime" => self.runtime = Runtime::parse(&arg_value(it, flag)?)?,
            "--out" => self.out = arg_value(it, flag)?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// A throwaway PKI directory for the TLS systems, deleted when the run ends.
pub(crate) struct Pki(PathBuf);

impl Pki {
    #[cfg(feature = "tls")]
    fn create() -> Result<Pki, String> {
        let dir = std::env::temp_dir().join(format!("loadgen-pki-{}", std::process::id()));
        benches::systems::ours_tls::write_pki(&dir)?;
        Ok(Pki(dir))
    }

    #[cfg(not(feature = "tls"))]
    fn create() -> Result<Pki, String> {
        Err("the TLS systems need the `tls` feature: \
             cargo run --release -p benches --features tls --bin loadgen -- ..."
            .into())
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(crate) fn command(plan: &Plan, pin_cpu: Option<u32>) -> Result<Command, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut c = match pin_cpu {
        Some(cpu) => {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(cpu.to_string()).arg(exe);
            c
        }
        None => Command::new(exe),
    };
    if let Some(Pki(dir)) = &plan.pki {
        c.env(PKI_ENV, dir);
    }
    Ok(c)
}

pub(crate) struct ServerProc {
    pub(crate) child: Child,
    pub(crate) addr: SocketAddr,
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn start_server(plan: &Plan, system: System) -> Result<ServerProc, String> {
    let mut child = command(plan, plan.pin.then_some(0))?
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

pub(crate) fn expect_line(
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

pub(crate) fn field(line: &str, key: &str) -> Result<f64, String> {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("missing {key} in {line:?}"))
}

/// One measuring client's run: its `result` line and the server's CPU ticks over the window
/// it measured.
pub(crate) struct ClientRun {
    pub(crate) result: String,
    pub(crate) server_ticks: u64,
}

impl ClientRun {
    /// CPU µs per unit (call or message) from `ticks` over `units`.
    pub(crate) fn per_unit_us(ticks: f64, units: u64) -> f64 {
        if units == 0 {
            0.0
        } else {
            static TICKS_PER_SEC: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
            ticks / *TICKS_PER_SEC.get_or_init(clock_ticks_per_sec) * 1e6 / units as f64
        }
    }
}

/// Runs a measuring client (`subcommand`: `client` or `stream-client`) of `system` pinned to
/// CPU 1 when the plan pins, against `server`, with the plan's warm-up, duration and runtime and
/// `args`; reads the server's CPU time between its `measuring` and `stopped` lines.
pub(crate) fn run_client(
    plan: &Plan,
    server: &ServerProc,
    subcommand: &str,
    system: System,
    args: &[(&str, String)],
) -> Result<ClientRun, String> {
    let server_pid = server.child.id().to_string();
    let mut cmd = command(plan, plan.pin.then_some(1))?;
    cmd.arg(subcommand)
        .args(["--system", system.name()])
        .args(["--addr", &server.addr.to_string()]);
    for (flag, value) in args {
        cmd.args([*flag, value.as_str()]);
    }
    let mut child = cmd
        .args(["--warmup", &plan.warmup.as_secs_f64().to_string()])
        .args(["--duration", &plan.duration.as_secs_f64().to_string()])
        .args(["--runtime", &plan.runtime.arg()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("starting the {system} {subcommand}: {e}"))?;
    let stdout = child.stdout.take().ok_or("no client stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    expect_line(&mut lines, "measuring")?;
    let s0 = cpu_ticks(&server_pid).unwrap_or(0);
    expect_line(&mut lines, "stopped")?;
    let s1 = cpu_ticks(&server_pid).unwrap_or(0);
    let result = expect_line(&mut lines, "result")?;
    let status = child.wait().map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("the {system} {subcommand} failed: {status}"));
    }
    Ok(ClientRun {
        result,
        server_ticks: s1.saturating_sub(s0),
    })
}

fn measure(
    plan: &Plan,
    server: &ServerProc,
    system: System,
    payload: usize,
    concurrency: usize,
) -> Result<Point, String> {
    let run = run_client(
        plan,
        server,
        "client",
        system,
        &[
            ("--payload", payload.to_string()),
            ("--concurrency", concurrency.to_string()),
        ],
    )?;
    let result = &run.result;
    let calls = field(result, "calls")? as u64;
    let secs = field(result, "secs")?;
    let per_call_us = |t: f64| ClientRun::per_unit_us(t, calls);
    Ok(Point {
        system,
        payload,
        concurrency,
        calls,
        errors: field(result, "errors")? as u64,
        qps: calls as f64 / secs,
        p50: field(result, "p50_us")? as u64,
        p99: field(result, "p99_us")? as u64,
        p999: field(result, "p999_us")? as u64,
        server_cpu_us: per_call_us(run.server_ticks as f64),
        client_cpu_us: per_call_us(field(result, "cpu_ticks")?),
    })
}

pub(crate) fn orchestrate(args: Vec<String>) -> Result<(), String> {
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
        pki: None,
    };
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        if plan.take_flag(&flag, &mut it)? {
            continue;
        }
        match flag.as_str() {
            "--concurrency" => plan.concurrency = list(&arg_value(&mut it, &flag)?, &flag)?,
            "--chart" => plan.chart = arg_value(&mut it, &flag)?,
            "-h" | "--help" => {
                println!("{}", usage());
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
    plan.check_pin()?;
    if plan.systems.iter().any(|s| s.is_tls()) {
        plan.pki = Some(Pki::create()?);
    }
    let mut points = Vec::new();
    for &system in &plan.systems {
        let server = start_server(&plan, system)?;
        for &payload in &plan.payloads {
            for &concurrency in &plan.concurrency {
                let p = measure(&plan, &server, system, payload, concurrency)?;
                eprintln!(
                    "{:<18} {:>6} B {:>5} in flight: {:>9.0} qps  p50 {:>6} µs  p99 {:>6} µs  p999 {:>6} µs  errors {}",
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
