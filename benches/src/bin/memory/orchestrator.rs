//! The orchestrator: starts the server and the clients as child processes, reads the server's
//! resident memory from `/proc/<pid>/status` at each phase, and prints the tables.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::args::{arg_value, parse, secs};
use crate::child::{can_pin, field, Proc};
use crate::cpu::{clock_ticks_per_sec, cpu_ticks, rss_kib};
use crate::procfs::ensure_open_files;
use crate::report::report;

pub(crate) struct Plan {
    pub(crate) connections: usize,
    pub(crate) payload: usize,
    pub(crate) flood_secs: Duration,
    pub(crate) flood_max_bytes: u64,
    pub(crate) one_way_secs: Duration,
    pub(crate) one_way_payload: usize,
    /// How long every idle connection then keeps one call in flight (0: not at all).
    pub(crate) busy_secs: Duration,
    pub(crate) settle: Duration,
    pub(crate) pin: bool,
    pub(crate) quick: bool,
}

impl Plan {
    fn parse(args: Vec<String>) -> Result<Option<Plan>, String> {
        let mut plan = Plan {
            connections: 1000,
            payload: 65536,
            flood_secs: Duration::from_secs(5),
            flood_max_bytes: 2 << 30,
            one_way_secs: Duration::from_secs(3),
            one_way_payload: 1024,
            busy_secs: Duration::from_secs(3),
            settle: Duration::from_millis(500),
            pin: true,
            quick: false,
        };
        // Flags given explicitly win over `--quick`'s values.
        let mut set: Vec<(String, String)> = Vec::new();
        let mut it = args.into_iter();
        while let Some(flag) = it.next() {
            match flag.as_str() {
                "--quick" => plan.quick = true,
                "--no-pin" => plan.pin = false,
                "-h" | "--help" => {
                    println!("{}", crate::usage());
                    return Ok(None);
                }
                _ => {
                    let v = arg_value(&mut it, &flag)?;
                    set.push((flag, v));
                }
            }
        }
        if plan.quick {
            plan.connections = 100;
            plan.flood_secs = Duration::from_secs(1);
            plan.one_way_secs = Duration::from_secs(1);
            plan.busy_secs = Duration::from_millis(500);
            plan.settle = Duration::from_millis(200);
        }
        for (flag, v) in set {
            let flag = flag.as_str();
            match flag {
                "--connections" => plan.connections = parse(&v, flag)?,
                "--payload" => plan.payload = parse(&v, flag)?,
                "--flood-secs" => plan.flood_secs = secs(&v, flag)?,
                "--flood-max-bytes" => plan.flood_max_bytes = parse(&v, flag)?,
                "--one-way-secs" => plan.one_way_secs = secs(&v, flag)?,
                "--one-way-payload" => plan.one_way_payload = parse(&v, flag)?,
                "--busy-secs" => plan.busy_secs = secs(&v, flag)?,
                other => return Err(format!("unknown argument {other:?} (try --help)")),
            }
        }
        plan.pin = plan.pin && can_pin();
        Ok(Some(plan))
    }

    fn cpu(&self, cpu: u32) -> Option<u32> {
        self.pin.then_some(cpu)
    }
}

/// One reading of the server: its RSS and its own figures.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Reading {
    pub(crate) rss_kib: u64,
    pub(crate) connections: u64,
    pub(crate) buffers: u64,
    pub(crate) unwritten: u64,
}

fn read(server: &mut Proc) -> Result<Reading, String> {
    server.send("stats")?;
    let line = server.expect("stats", Duration::from_secs(5))?;
    Ok(Reading {
        rss_kib: rss_kib(&server.pid().to_string()).ok_or("the server's /proc/<pid>/status")?,
        connections: field(&line, "connections")? as u64,
        buffers: field(&line, "buffers")? as u64,
        unwritten: field(&line, "unwritten")? as u64,
    })
}

/// Reads until the server counts `connections`, for up to `timeout`; then waits `settle` and
/// reads again.
fn read_at(
    server: &mut Proc,
    connections: u64,
    timeout: Duration,
    settle: Duration,
) -> Result<Reading, String> {
    let until = Instant::now() + timeout;
    while read(server)?.connections != connections && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(settle);
    read(server)
}

fn start_server(plan: &Plan, name: &str, extra: &[&str]) -> Result<(Proc, String), String> {
    let mut args = vec!["serve".to_string()];
    args.extend(extra.iter().map(|s| s.to_string()));
    let server = Proc::start(name, plan.cpu(0), &args)?;
    let line = server.expect("listening", Duration::from_secs(10))?;
    let addr = line["listening ".len()..].trim().to_string();
    Ok((server, addr))
}

/// Every connection with one call in flight: what the server did and what it cost.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Busy {
    pub(crate) calls: u64,
    pub(crate) errors: u64,
    pub(crate) secs: f64,
    /// Server CPU time over the phase, in microseconds.
    pub(crate) server_cpu_us: f64,
    pub(crate) server_rss_kib: u64,
}

/// Reads the server's CPU time around the clients' busy phase, and its RSS at the end of it.
fn busy(plan: &Plan, server: &mut Proc, clients: &Proc) -> Result<Busy, String> {
    let pid = server.pid().to_string();
    let wait = Duration::from_secs(120) + plan.busy_secs;
    clients.expect("busy-start", Duration::from_secs(120))?;
    let t0 = cpu_ticks(&pid).ok_or("the server's /proc/<pid>/stat")?;
    let line = clients.expect("busy ", wait)?;
    let t1 = cpu_ticks(&pid).ok_or("the server's /proc/<pid>/stat")?;
    let b = Busy {
        calls: field(&line, "calls")? as u64,
        errors: field(&line, "errors")? as u64,
        secs: field(&line, "secs")?,
        server_cpu_us: (t1.saturating_sub(t0)) as f64 / clock_ticks_per_sec() * 1e6,
        server_rss_kib: rss_kib(&pid).unwrap_or(0),
    };
    eprintln!("(b') busy: {b:?}");
    if b.errors > 0 {
        return Err(format!("{} calls failed in the busy phase", b.errors));
    }
    Ok(b)
}

/// Sends `sig` (`STOP`, `CONT`) to `pid` with the shell's `kill` builtin (no `kill` binary needed).
fn signal(pid: u32, sig: &str) -> Result<(), String> {
    let ok = Command::new("sh")
        .arg("-c")
        .arg(format!("kill -{sig} {pid}"))
        .status()
        .map_err(|e| format!("kill -{sig}: {e}"))?
        .success();
    ok.then_some(())
        .ok_or_else(|| format!("kill -{sig} {pid} failed"))
}

/// The figures of phase (d).
pub(crate) struct Flood {
    pub(crate) before: Reading,
    pub(crate) peak_rss: u64,
    pub(crate) peak_unwritten: u64,
    pub(crate) end: Reading,
    pub(crate) after: Reading,
    pub(crate) sent: f64,
    pub(crate) calls: u64,
    pub(crate) stalled_at: f64,
    pub(crate) secs: f64,
}

fn flood(plan: &Plan, server: &mut Proc, addr: &str, before: Reading) -> Result<Flood, String> {
    let args: Vec<String> = [
        "flood",
        "--addr",
        addr,
        "--payload",
        &plan.payload.to_string(),
        "--secs",
        &plan.flood_secs.as_secs_f64().to_string(),
        "--max-bytes",
        &plan.flood_max_bytes.to_string(),
    ]
    .map(String::from)
    .to_vec();
    let mut client = Proc::start("flooding client", plan.cpu(1), &args)?;
    let (mut peak_rss, mut peak_unwritten) = (before.rss_kib, 0);
    let limit = plan.flood_secs + Duration::from_secs(30);
    let started = Instant::now();
    let line = loop {
        if let Some(line) = client.poll_line("flood", Duration::from_millis(50))? {
            break line;
        }
        let r = read(server)?;
        peak_rss = peak_rss.max(r.rss_kib);
        peak_unwritten = peak_unwritten.max(r.unwritten);
        if started.elapsed() > limit {
            return Err("the flooding client did not stop".into());
        }
    };
    let end = read(server)?;
    peak_rss = peak_rss.max(end.rss_kib);
    peak_unwritten = peak_unwritten.max(end.unwritten);
    client.finish(Duration::from_secs(5));
    let after = read_at(server, 0, Duration::from_secs(10), plan.settle)?;
    Ok(Flood {
        before,
        peak_rss,
        peak_unwritten,
        end,
        after,
        sent: field(&line, "sent")?,
        calls: field(&line, "calls")? as u64,
        stalled_at: field(&line, "stalled_at")?,
        secs: field(&line, "secs")?,
    })
}

/// Phase (e): the lines the one-way client printed at connect and after each policy.
fn one_way(plan: &Plan) -> Result<[String; 3], String> {
    let (server, addr) = start_server(plan, "server (one-way)", &["--max-calls", "100000"])?;
    let args: Vec<String> = [
        "one-way",
        "--addr",
        &addr,
        "--payload",
        &plan.one_way_payload.to_string(),
        "--max-calls",
        "100000",
        "--secs",
        &plan.one_way_secs.as_secs_f64().to_string(),
    ]
    .map(String::from)
    .to_vec();
    let mut client = Proc::start("one-way client", plan.cpu(1), &args)?;
    let connected = client.expect("connected", Duration::from_secs(10))?;
    // The server stops reading: frozen, its socket still open. A detached shell resumes it later
    // in any case, so that it never outlives this run stopped (resumed, it sees its stdin closed
    // and exits) even if this process is killed meanwhile.
    let resume_after = (plan.one_way_secs * 2 + Duration::from_secs(60)).as_secs();
    let mut resume = Command::new("sh")
        .arg("-c")
        .arg(format!("sleep {resume_after}; kill -CONT {}", server.pid()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("sh: {e}"))?;
    signal(server.pid(), "STOP")?;
    let result = (|| {
        client.send("go")?;
        let wait = plan.one_way_secs * 2 + Duration::from_secs(30);
        let waiting = client.expect("wait ", wait)?;
        let failing = client.expect("nowait ", wait)?;
        Ok([connected, waiting, failing])
    })();
    client.finish(Duration::from_secs(5));
    let _ = signal(server.pid(), "CONT");
    // The shell's `sleep` may outlive it, but with nothing of ours open.
    let _ = resume.kill();
    let _ = resume.wait();
    result
}

pub(crate) fn orchestrate(args: Vec<String>) -> Result<(), String> {
    let Some(plan) = Plan::parse(args)? else {
        return Ok(());
    };
    ensure_open_files(plan.connections as u64 + 512)?;
    let n = plan.connections as u64;
    let (mut server, addr) = start_server(&plan, "server", &[])?;
    std::thread::sleep(plan.settle);
    let start = read(&mut server)?;
    eprintln!("(a) start: {start:?}");

    let args: Vec<String> = [
        "idle-clients",
        "--addr",
        &addr,
        "--connections",
        &plan.connections.to_string(),
        "--payload",
        &plan.payload.to_string(),
        "--busy-secs",
        &plan.busy_secs.as_secs_f64().to_string(),
    ]
    .map(String::from)
    .to_vec();
    let mut clients = Proc::start("clients", plan.cpu(1), &args)?;
    let busy = if plan.busy_secs.is_zero() {
        None
    } else {
        Some(busy(&plan, &mut server, &clients)?)
    };
    let idle_line = clients.expect("idle", Duration::from_secs(120))?;
    let ok = field(&idle_line, "ok")? as u64;
    let idle = read_at(&mut server, ok, Duration::from_secs(10), plan.settle)?;
    let client_rss = rss_kib(&clients.pid().to_string()).unwrap_or(0);
    eprintln!("(b) {ok} idle connections: {idle:?}; client RSS {client_rss} KiB");
    clients.finish(Duration::from_secs(10));
    let closed = read_at(&mut server, 0, Duration::from_secs(10), plan.settle)?;
    eprintln!("(c) closed: {closed:?}");

    let f = flood(&plan, &mut server, &addr, closed)?;
    eprintln!("(d) flood: sent {} bytes in {} calls", f.sent, f.calls);
    drop(server);

    let [connected, waiting, failing] = one_way(&plan)?;
    eprintln!("(e) {connected}\n    {waiting}\n    {failing}");

    print!(
        "{}",
        report(
            &plan,
            [start, idle, closed],
            ok,
            client_rss,
            busy.as_ref(),
            &f,
            [&connected, &waiting, &failing]
        )?
    );
    if ok < n {
        return Err(format!(
            "{} of {n} connections failed their call (see above)",
            n - ok
        ));
    }
    if plan.quick {
        println!("memory --quick: every phase ran");
    }
    Ok(())
}
