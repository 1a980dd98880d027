//! The orchestrator: per handler kind and shedding configuration, starts a server process and
//! three client processes in turn (capacity, unloaded, overload), reads the server's CPU time over
//! each measured window, and prints the tables.

use std::time::Duration;

use crate::args::{arg_value, parse, secs};
use crate::child::{can_pin, field, Proc};
use crate::cpu::{clock_ticks_per_sec, cpu_ticks};
use crate::report::report;
use crate::server::{Handler, ServerArgs, Shedding};

pub(crate) struct Plan {
    pub(crate) handlers: Vec<Handler>,
    pub(crate) configs: Vec<Shedding>,
    pub(crate) server: ServerArgs,
    pub(crate) capacity_concurrency: usize,
    pub(crate) capacity: Phase,
    pub(crate) unloaded_load: f64,
    pub(crate) unloaded: Phase,
    pub(crate) load: f64,
    pub(crate) overload: Phase,
    pub(crate) deadline_ms: u64,
    pub(crate) connections: usize,
    pub(crate) pin: bool,
    pub(crate) quick: bool,
}

/// A measured client run: warm-up (not counted), then the window.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Phase {
    pub(crate) warmup: Duration,
    pub(crate) secs: Duration,
}

impl Plan {
    fn parse(args: Vec<String>) -> Result<Option<Plan>, String> {
        let phase = |w: u64, s: u64| Phase {
            warmup: Duration::from_millis(w),
            secs: Duration::from_millis(s),
        };
        let mut plan = Plan {
            handlers: Handler::ALL.to_vec(),
            configs: ["none", "layer-fixed", "layer-aimd", "queue-delay"]
                .into_iter()
                .map(Shedding::parse)
                .collect::<Result<_, _>>()?,
            server: ServerArgs::default(),
            capacity_concurrency: 32,
            capacity: phase(500, 2000),
            unloaded_load: 0.3,
            unloaded: phase(300, 2000),
            load: 3.0,
            overload: phase(1000, 5000),
            deadline_ms: 1000,
            connections: 1,
            pin: true,
            quick: false,
        };
        let (mut configs, mut overload_secs) = (None, None);
        let mut it = args.into_iter();
        while let Some(flag) = it.next() {
            if plan.server.take_flag(&flag, &mut it)? {
                continue;
            }
            match flag.as_str() {
                "--quick" => plan.quick = true,
                "--no-pin" => plan.pin = false,
                "--handlers" => {
                    plan.handlers = arg_value(&mut it, &flag)?
                        .split(',')
                        .map(Handler::parse)
                        .collect::<Result<_, _>>()?
                }
                "--configs" => {
                    configs = Some(
                        arg_value(&mut it, &flag)?
                            .split(',')
                            .map(Shedding::parse)
                            .collect::<Result<Vec<_>, _>>()?,
                    )
                }
                "--capacity-concurrency" => {
                    plan.capacity_concurrency = parse(&arg_value(&mut it, &flag)?, &flag)?
                }
                "--unloaded-load" => {
                    plan.unloaded_load = parse(&arg_value(&mut it, &flag)?, &flag)?
                }
                "--load" => plan.load = parse(&arg_value(&mut it, &flag)?, &flag)?,
                "--secs" => overload_secs = Some(secs(&arg_value(&mut it, &flag)?, &flag)?),
                "--deadline-ms" => plan.deadline_ms = parse(&arg_value(&mut it, &flag)?, &flag)?,
                "--connections" => plan.connections = parse(&arg_value(&mut it, &flag)?, &flag)?,
                "-h" | "--help" => {
                    println!("{}", crate::usage());
                    return Ok(None);
                }
                other => return Err(format!("unknown argument {other:?} (try --help)")),
            }
        }
        if plan.quick {
            plan.configs = vec![Shedding::parse("queue-delay")?];
            plan.capacity = phase(200, 500);
            plan.unloaded = phase(200, 500);
            plan.overload = phase(300, 1000);
        }
        if let Some(c) = configs {
            plan.configs = c;
        }
        if let Some(s) = overload_secs {
            plan.overload.secs = s;
        }
        plan.pin = plan.pin && can_pin();
        Ok(Some(plan))
    }

    fn cpu(&self, cpu: u32) -> Option<u32> {
        self.pin.then_some(cpu)
    }
}

/// One client run's figures.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Run {
    pub(crate) offered: f64,
    pub(crate) ok: f64,
    pub(crate) in_time: f64,
    pub(crate) refused: f64,
    pub(crate) expired_unstarted: f64,
    pub(crate) expired: f64,
    pub(crate) other: f64,
    pub(crate) secs: f64,
    pub(crate) ok_p50_us: f64,
    pub(crate) ok_p99_us: f64,
    pub(crate) refused_p50_us: f64,
    pub(crate) refused_p99_us: f64,
    /// CPU used in the window, as a share of one core.
    pub(crate) server_cpu: f64,
    /// How late the open loop started its calls, at p99 (0 for a closed loop).
    pub(crate) lag_p99_us: f64,
}

/// The three runs against one server.
#[derive(Debug, Clone)]
pub(crate) struct Point {
    pub(crate) handler: Handler,
    pub(crate) shedding: Shedding,
    pub(crate) capacity: Run,
    pub(crate) unloaded: Run,
    pub(crate) overload: Run,
}

enum Workload {
    Closed(usize),
    Open(f64),
}

fn measure(
    plan: &Plan,
    server: &Proc,
    addr: &str,
    handler: Handler,
    workload: Workload,
    phase: Phase,
) -> Result<Run, String> {
    let mut args: Vec<String> = [
        "client",
        "--addr",
        addr,
        "--handler",
        handler.name(),
        "--warmup",
        &phase.warmup.as_secs_f64().to_string(),
        "--secs",
        &phase.secs.as_secs_f64().to_string(),
        "--deadline-ms",
        &plan.deadline_ms.to_string(),
        "--connections",
        &plan.connections.to_string(),
    ]
    .map(String::from)
    .to_vec();
    match workload {
        Workload::Closed(c) => args.extend([
            "--mode".into(),
            "closed".into(),
            "--concurrency".into(),
            c.to_string(),
        ]),
        Workload::Open(rate) => args.extend([
            "--mode".into(),
            "open".into(),
            "--rate".into(),
            format!("{rate:.0}"),
        ]),
    }
    let mut client = Proc::start("client", plan.cpu(1), &args)?;
    let server_pid = server.pid().to_string();
    let slack = Duration::from_secs(15);
    client.expect("measuring", phase.warmup + slack)?;
    let s0 = cpu_ticks(&server_pid).unwrap_or(0);
    client.expect("stopped", phase.secs + slack)?;
    let s1 = cpu_ticks(&server_pid).unwrap_or(0);
    let line = client.expect("result", Duration::from_millis(plan.deadline_ms) + slack)?;
    if !client.finish(Duration::from_secs(5)) {
        return Err("the client failed".into());
    }
    let f = |k: &str| field(&line, k);
    let secs = f("secs")?;
    let ticks = clock_ticks_per_sec() * secs;
    Ok(Run {
        offered: f("offered")?,
        ok: f("ok")?,
        in_time: f("in_time")?,
        refused: f("refused")?,
        expired_unstarted: f("expired_unstarted")?,
        expired: f("expired")?,
        other: f("other")?,
        secs,
        ok_p50_us: f("ok_p50_us")?,
        ok_p99_us: f("ok_p99_us")?,
        refused_p50_us: f("refused_p50_us")?,
        refused_p99_us: f("refused_p99_us")?,
        server_cpu: s1.saturating_sub(s0) as f64 / ticks,
        lag_p99_us: f("lag_p99_us")?,
    })
}

fn start_server(plan: &Plan, shedding: Shedding) -> Result<(Proc, String), String> {
    let server_args = ServerArgs {
        shedding,
        ..plan.server
    };
    let server = Proc::start("server", plan.cpu(0), &server_args.to_args())?;
    let line = server.expect("listening", Duration::from_secs(10))?;
    let addr = line["listening ".len()..].trim().to_string();
    Ok((server, addr))
}

/// The capacity of a server without shedding for `handler`: successful calls per second in a
/// closed loop. Every configuration is then offered multiples of this same rate.
fn capacity(plan: &Plan, handler: Handler) -> Result<Run, String> {
    let (server, addr) = start_server(plan, Shedding::parse("none")?)?;
    let workload = Workload::Closed(plan.capacity_concurrency);
    let run = measure(plan, &server, &addr, handler, workload, plan.capacity)?;
    if run.ok < 1.0 {
        return Err(format!(
            "{}: no call succeeded in the capacity run",
            handler.name()
        ));
    }
    Ok(run)
}

fn point(
    plan: &Plan,
    handler: Handler,
    shedding: Shedding,
    capacity: Run,
) -> Result<Point, String> {
    let (server, addr) = start_server(plan, shedding)?;
    let rate = capacity.ok / capacity.secs;
    let unloaded = measure(
        plan,
        &server,
        &addr,
        handler,
        Workload::Open(rate * plan.unloaded_load),
        plan.unloaded,
    )?;
    let overload = measure(
        plan,
        &server,
        &addr,
        handler,
        Workload::Open(rate * plan.load),
        plan.overload,
    )?;
    Ok(Point {
        handler,
        shedding,
        capacity,
        unloaded,
        overload,
    })
}

pub(crate) fn orchestrate(args: Vec<String>) -> Result<(), String> {
    let Some(plan) = Plan::parse(args)? else {
        return Ok(());
    };
    let mut points = Vec::new();
    for &handler in &plan.handlers {
        let cap = capacity(&plan, handler)?;
        eprintln!(
            "{:<6} capacity {:>7.0}/s (p99 {} µs)",
            handler.name(),
            cap.ok / cap.secs,
            cap.ok_p99_us
        );
        for &shedding in &plan.configs {
            let p = point(&plan, handler, shedding, cap)?;
            eprintln!(
                "{:<6} {:<24} unloaded p99 {:>7} µs  at {}×: admitted p99 {:>8} µs, refusal p99 {:>6} µs, refused {:>5.1} %, in time {:>5.1} %",
                handler.name(),
                shedding.to_string(),
                p.unloaded.ok_p99_us,
                plan.load,
                p.overload.ok_p99_us,
                p.overload.refused_p99_us,
                100.0 * p.overload.refused / p.overload.offered.max(1.0),
                100.0 * p.overload.in_time / p.overload.offered.max(1.0),
            );
            points.push(p);
        }
    }
    print!("{}", report(&plan, &points));
    let broken: Vec<String> = points
        .iter()
        .flat_map(|p| {
            [
                ("capacity", &p.capacity),
                ("unloaded", &p.unloaded),
                ("overload", &p.overload),
            ]
            .into_iter()
            .filter(|(_, r)| r.other > 0.0 || r.offered == 0.0)
            .map(move |(name, r)| {
                format!(
                    "{} / {} ({name}): {} calls, {} failed other than by shedding or deadline",
                    p.handler.name(),
                    p.shedding,
                    r.offered,
                    r.other
                )
            })
        })
        .collect();
    if !broken.is_empty() {
        return Err(format!(
            "some runs had unexpected failures:\n  {}",
            broken.join("\n  ")
        ));
    }
    if plan.quick {
        println!("overload --quick: every run completed");
    }
    Ok(())
}
