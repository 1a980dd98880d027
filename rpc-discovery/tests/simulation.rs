//! Deterministic simulation: three servers and a client on turmoil's simulated network, running
//! the real `Server`, `BalancedChannel`, retry and deadline code over `rpc_core::transport::sim`,
//! with the in-process registry. Each seed picks up to three faults (a partition, held messages,
//! added latency, message loss on a link, a host crash and restart) and an idle gap that moves
//! every clock on, then checks the invariants:
//!
//! - every call ends, with a response or a status (the simulation fails if one hangs);
//! - a call that succeeded ran at least once, a non-idempotent call at most once, and no call
//!   ran more often than it was sent;
//! - retries stay within the retry budget;
//! - an endpoint gets no calls while its ejection lasts, other than in panic mode (every
//!   endpoint out), which the balancer counts apart;
//! - once the faults are over, calls succeed again.
//!
//! `SIM_SEEDS=N` sets how many seeds run (default 100 in a debug build, 2000 with `--release`:
//! `scripts/test` runs both); `SIM_SEED=S` replays one seed and prints its trace. The same seed
//! gives the same trace, call for call.

#![allow(missing_docs)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rpc_core::middleware::{
    Attempts, DeadlineLayer, RetryBudget, RetryLayer, RetryPolicy, Stats, StatsSnapshot,
};
use rpc_core::server::RawService;
use rpc_core::transport::sim::{SimConnector, SimListener};
use rpc_core::{Endpoint, Request, Response, Server, Status};
use rpc_discovery::{
    BalanceConfig, BalancedChannel, EndpointStats, Instance, MemoryRegistry, Query, Registry,
    ServeRegistered,
};
use tokio::time::Instant;
use tower::{Layer, ServiceExt};

const SVC: &str = "sim.Echo";
const METHOD: &str = "sim.Echo/Echo";
const SERVERS: [&str; 3] = ["s1", "s2", "s3"];
const CLIENT: &str = "client";
const PORT: u16 = 9000;
/// The first phase's calls start within this long; every fault is over by its end.
const LOAD: Duration = Duration::from_secs(3);
/// Time for the client to notice that the faults are over (keepalive, ejection, reconnect).
const SETTLE: Duration = Duration::from_millis(1500);
/// Calls after the faults, all of which must succeed.
const AFTER: u64 = 20;
/// Links normally deliver within this.
const BASE_LATENCY: Duration = Duration::from_millis(2);
/// Retries may be this share of calls; the budget's window outlasts a run, so the bound is exact.
const RETRY_RATIO: f32 = 0.2;

#[derive(Debug, Clone, Copy)]
enum Fault {
    /// The link between the client and the server drops everything.
    Partition(usize),
    /// The link holds every message, and delivers them when the fault ends.
    Hold(usize),
    /// Messages on the link take up to this long.
    Latency(usize, Duration),
    /// Each message on the link breaks it with this probability, losing what is in flight.
    Loss(usize, f64),
    /// The server's host crashes; it restarts when the fault ends.
    Crash(usize),
}

#[derive(Debug, Clone, Copy)]
struct Scheduled {
    fault: Fault,
    from: Duration,
    to: Duration,
}

#[derive(Debug, Clone)]
struct Plan {
    faults: Vec<Scheduled>,
    /// Time that passes with no calls between the phases.
    idle: Duration,
    workers: u64,
    /// Chance that a call is marked idempotent.
    idempotent: f64,
}

fn plan(seed: u64) -> Plan {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut servers = vec![0, 1, 2];
    rng.shuffle(&mut servers);
    // At most one fault per server, so that no two faults undo each other's link state.
    let faults = servers[..rng.usize(0..=3)]
        .iter()
        .map(|&s| {
            let fault = match rng.u8(..5) {
                0 => Fault::Partition(s),
                1 => Fault::Hold(s),
                2 => Fault::Latency(s, Duration::from_millis(rng.u64(20..400))),
                3 => Fault::Loss(s, [0.01, 0.05, 0.2][rng.usize(..3)]),
                _ => Fault::Crash(s),
            };
            let from = Duration::from_millis(rng.u64(50..2500));
            let to = (from + Duration::from_millis(rng.u64(50..1500))).min(LOAD);
            Scheduled { fault, from, to }
        })
        .collect();
    let idle = if rng.bool() {
        Duration::from_millis(rng.u64(0..5000))
    } else {
        Duration::ZERO
    };
    Plan {
        faults,
        idle,
        workers: rng.u64(2..=8),
        idempotent: [0.0, 0.5, 1.0][rng.usize(..3)],
    }
}

/// How often each call ran on a server, by call id.
type Ledger = Arc<Mutex<BTreeMap<u64, u32>>>;

#[derive(Debug)]
struct Outcome {
    id: u64,
    idempotent: bool,
    /// `Ok(())`, or the status code's name.
    result: Result<(), String>,
    /// Attempts sent (the endpoints tried).
    attempts: Vec<String>,
    started_ms: u128,
    took_ms: u128,
}

#[derive(Debug, Default)]
struct Run {
    outcomes: Vec<Outcome>,
    /// Calls of the second phase that failed.
    after: Vec<String>,
    stats: StatsSnapshot,
    /// Picks of an endpoint while its ejection lasted.
    violations: Vec<String>,
    ejections: u64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

async fn server(registry: MemoryRegistry, name: &'static str, ledger: Ledger) -> turmoil::Result {
    let svc = RawService::new(SVC).method("Echo", move |req: Request| {
        let body = req.into_body();
        let id = body
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .map_or(u64::MAX, u64::from_be_bytes);
        *lock(&ledger).entry(id).or_default() += 1;
        async move {
            // Some work, different for each call.
            tokio::time::sleep(Duration::from_millis(id % 7)).await;
            Ok::<_, Status>(Response::new(body))
        }
    });
    let listener = SimListener::bind(PORT).await?;
    ServeRegistered::new(Instance::new(SVC, format!("{name}:{PORT}")))
        .serve(
            Server::builder().add_service(svc),
            listener,
            &registry,
            std::future::pending::<()>(),
        )
        .await?;
    Ok(())
}

/// Reads the balancer every tick and reports picks of an endpoint inside an ejection.
async fn watch_ejections(
    balanced: BalancedChannel,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> (Vec<String>, u64) {
    let mut violations = Vec::new();
    let mut prev: Vec<EndpointStats> = Vec::new();
    // Calls sent other than in panic mode (every endpoint unavailable), which may pick any.
    let normal = |e: &EndpointStats| e.picks.saturating_sub(e.panic_picks);
    loop {
        let now = Instant::now();
        let cur = balanced.endpoints();
        for a in &prev {
            let Some(b) = cur.iter().find(|b| b.addr == a.addr) else {
                continue;
            };
            let same_ejection = a.ejected_until.is_some() && a.ejected_until == b.ejected_until;
            if same_ejection && a.ejected_until.is_some_and(|u| u > now) && normal(b) > normal(a) {
                violations.push(format!(
                    "{} picked {} times while ejected until {:?}",
                    a.addr,
                    normal(b) - normal(a),
                    a.ejected_until
                ));
            }
        }
        prev = cur;
        if stop.load(Ordering::SeqCst) {
            return (violations, prev.iter().map(|e| e.ejections).sum());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

async fn client(
    plan: Plan,
    seed: u64,
    registry: MemoryRegistry,
    out: Arc<Mutex<Run>>,
) -> turmoil::Result {
    let start = Instant::now();
    let mut watch = registry.watch(Query::new(SVC)).await?;
    while watch.current().len() < SERVERS.len() {
        tokio::time::timeout(Duration::from_secs(1), watch.changed()).await??;
    }
    let balanced = BalancedChannel::with_config(
        watch,
        BalanceConfig::new()
            .eject_after(2)
            .ejection(Duration::from_millis(100), Duration::from_secs(1))
            .endpoint(|i: &Instance| {
                Ok(Endpoint::new(SimConnector::new(&i.addr))
                    .connect_timeout(Duration::from_millis(200))
                    .keepalive(Duration::from_millis(100), Duration::from_millis(300))
                    .backoff(Duration::from_millis(10), Duration::from_millis(200)))
            }),
    );
    let stats = Stats::new();
    let retry = RetryLayer::new()
        .policy(
            RetryPolicy::new()
                .max_attempts(3)
                .backoff(Duration::from_millis(5), Duration::from_millis(50)),
        )
        .budget(RetryBudget::new(Duration::from_secs(600), 0, RETRY_RATIO))
        .stats(stats.clone());
    let stack = DeadlineLayer::new(Duration::from_millis(300)).layer(retry.layer(balanced.clone()));

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let monitor = tokio::spawn(watch_ejections(balanced.clone(), stop.clone()));

    // The first phase: workers call until LOAD is over, through the faults.
    let next = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for w in 0..plan.workers {
        let stack = stack.clone();
        let next = next.clone();
        let mut rng = fastrand::Rng::with_seed(seed ^ (w + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let share = plan.idempotent;
        workers.push(tokio::spawn(async move {
            let mut outcomes = Vec::new();
            while start.elapsed() < LOAD {
                let id = next.fetch_add(1, Ordering::SeqCst);
                let idempotent = rng.f64() < share;
                let mut req = Request::new(METHOD, Bytes::copy_from_slice(&id.to_be_bytes()))
                    .with_idempotent(idempotent);
                let attempts = Attempts::of(&mut req);
                let t0 = Instant::now();
                let result = match stack.clone().oneshot(req).await {
                    Ok(r) if r.body()[..] == id.to_be_bytes() => Ok(()),
                    Ok(_) => Err("wrong body".to_owned()),
                    Err(e) => Err(format!("{:?}", e.code())),
                };
                outcomes.push(Outcome {
                    id,
                    idempotent,
                    result,
                    attempts: attempts.endpoints(),
                    started_ms: (t0 - start).as_millis(),
                    took_ms: t0.elapsed().as_millis(),
                });
                tokio::time::sleep(Duration::from_millis(rng.u64(10..60))).await;
            }
            outcomes
        }));
    }
    let mut outcomes = Vec::new();
    for w in workers {
        outcomes.extend(w.await?);
    }
    outcomes.sort_by_key(|o| o.id);

    // The second phase: after the faults (and the idle gap), every call succeeds.
    tokio::time::sleep_until(start + LOAD + plan.idle + SETTLE).await;
    let mut after = Vec::new();
    for i in 0..AFTER {
        let id = u64::MAX - i;
        let req = Request::new(METHOD, Bytes::copy_from_slice(&id.to_be_bytes()))
            .with_idempotent(true)
            .with_timeout(Duration::from_secs(1));
        if let Err(e) = stack.clone().oneshot(req).await {
            after.push(format!("call {i} after the faults: {e}"));
        }
    }
    stop.store(true, Ordering::SeqCst);
    let (violations, ejections) = monitor.await?;
    *lock(&out) = Run {
        outcomes,
        after,
        stats: stats.snapshot(),
        violations,
        ejections,
    };
    Ok(())
}

fn apply(sim: &mut turmoil::Sim<'_>, fault: Fault, on: bool) {
    match (fault, on) {
        (Fault::Partition(s), true) => sim.partition(CLIENT, SERVERS[s]),
        (Fault::Partition(s), false) => sim.repair(CLIENT, SERVERS[s]),
        (Fault::Hold(s), true) => sim.hold(CLIENT, SERVERS[s]),
        (Fault::Hold(s), false) => sim.release(CLIENT, SERVERS[s]),
        (Fault::Latency(s, d), true) => sim.set_link_max_message_latency(CLIENT, SERVERS[s], d),
        (Fault::Latency(s, _), false) => {
            sim.set_link_max_message_latency(CLIENT, SERVERS[s], BASE_LATENCY)
        }
        (Fault::Loss(s, p), true) => sim.set_link_fail_rate(CLIENT, SERVERS[s], p),
        (Fault::Loss(s, _), false) => {
            sim.set_link_fail_rate(CLIENT, SERVERS[s], 0.0);
            sim.repair(CLIENT, SERVERS[s]);
        }
        (Fault::Crash(s), true) => sim.crash(SERVERS[s]),
        (Fault::Crash(s), false) => sim.bounce(SERVERS[s]),
    }
}

/// Runs one seed; returns its trace, or what broke.
fn run(seed: u64) -> Result<String, String> {
    fastrand::seed(seed);
    let plan = plan(seed);
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .simulation_duration(Duration::from_secs(60))
        .tick_duration(Duration::from_millis(1))
        .min_message_latency(Duration::ZERO)
        .max_message_latency(BASE_LATENCY)
        .build();
    let registry = MemoryRegistry::new();
    let ledger: Ledger = Arc::default();
    for name in SERVERS {
        let registry = registry.clone();
        let ledger = ledger.clone();
        sim.host(name, move || server(registry.clone(), name, ledger.clone()));
    }
    let out = Arc::new(Mutex::new(Run::default()));
    sim.client(CLIENT, client(plan.clone(), seed, registry, out.clone()));

    let mut on = vec![false; plan.faults.len()];
    let mut over = vec![false; plan.faults.len()];
    loop {
        let now = sim.elapsed();
        for (i, f) in plan.faults.iter().enumerate() {
            if !on[i] && now >= f.from {
                apply(&mut sim, f.fault, true);
                on[i] = true;
            }
            if on[i] && !over[i] && now >= f.to {
                apply(&mut sim, f.fault, false);
                over[i] = true;
            }
        }
        match sim.step() {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => return Err(format!("the simulation failed at {now:?}: {e}")),
        }
    }
    let run = std::mem::take(&mut *lock(&out));
    let ledger = lock(&ledger).clone();
    check(&plan, &run, &ledger)?;
    let mut trace = format!("{plan:?}\n{}\nejections={}\n", run.stats, run.ejections);
    for o in &run.outcomes {
        let _ = writeln!(
            trace,
            "#{} idem={} {:?} at={}ms took={}ms ran={} via {:?}",
            o.id,
            o.idempotent,
            o.result,
            o.started_ms,
            o.took_ms,
            ledger.get(&o.id).copied().unwrap_or(0),
            o.attempts
        );
    }
    Ok(trace)
}

fn check(plan: &Plan, run: &Run, ledger: &BTreeMap<u64, u32>) -> Result<(), String> {
    let fail = |what: String| Err(format!("{what}\nplan: {plan:?}\nstats: {}", run.stats));
    if run.outcomes.is_empty() {
        return fail("no call was made".into());
    }
    for o in &run.outcomes {
        let ran = ledger.get(&o.id).copied().unwrap_or(0);
        if o.result.is_ok() && ran == 0 {
            return fail(format!("call {o:?} succeeded but never ran"));
        }
        if !o.idempotent && ran > 1 {
            return fail(format!("non-idempotent call {o:?} ran {ran} times"));
        }
        if ran as usize > o.attempts.len() {
            return fail(format!("call {o:?} ran {ran} times but was sent fewer"));
        }
    }
    let calls = run.stats.calls;
    if (run.stats.retries as f64) > f64::from(RETRY_RATIO) * calls as f64 {
        return fail(format!(
            "{} retries for {calls} calls, over the {RETRY_RATIO} budget",
            run.stats.retries
        ));
    }
    if let Some(v) = run.violations.first() {
        return fail(format!("a pick inside an ejection: {v}"));
    }
    if !run.after.is_empty() {
        return fail(format!("calls failed after the faults: {:?}", run.after));
    }
    Ok(())
}

fn seeds() -> Vec<u64> {
    if let Ok(s) = std::env::var("SIM_SEED") {
        return vec![s.parse().expect("SIM_SEED is a number")];
    }
    let n = std::env::var("SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if cfg!(debug_assertions) { 100 } else { 2000 });
    (0..n).collect()
}

#[test]
fn simulated_faults_keep_every_invariant() {
    let seeds = seeds();
    let replay = std::env::var("SIM_SEED").is_ok();
    let (mut calls, mut ok, mut retries, mut over_budget, mut ejections) = (0, 0, 0, 0, 0);
    for &seed in &seeds {
        match run(seed) {
            Ok(trace) => {
                if replay {
                    println!("{trace}");
                }
                let first = trace.lines().nth(1).unwrap_or_default().to_owned();
                calls += trace.lines().filter(|l| l.starts_with('#')).count();
                ok += trace.lines().filter(|l| l.contains(" Ok(())")).count();
                for part in first.split(' ') {
                    if let Some(n) = part.strip_prefix("retries=") {
                        retries += n.parse::<u64>().unwrap_or(0);
                    }
                    if let Some(n) = part.strip_prefix("retries_over_budget=") {
                        over_budget += n.parse::<u64>().unwrap_or(0);
                    }
                }
                ejections += trace
                    .lines()
                    .nth(2)
                    .and_then(|l| l.strip_prefix("ejections="))
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0);
            }
            Err(e) => panic!(
                "seed {seed} broke an invariant (replay: SIM_SEED={seed} cargo test -p rpc-discovery --test simulation -- --nocapture):\n{e}"
            ),
        }
    }
    println!(
        "{} seeds: {calls} calls, {ok} succeeded, {retries} retries, {over_budget} refused by the budget, {ejections} ejections",
        seeds.len()
    );
}

#[test]
fn a_seed_replays_exactly() {
    for seed in [1, 2, 3] {
        let a = run(seed).unwrap();
        let b = run(seed).unwrap();
        assert_eq!(a, b, "seed {seed} gave two different traces");
    }
}
