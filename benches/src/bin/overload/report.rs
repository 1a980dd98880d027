//! The Markdown tables of an overload run.

use std::fmt::Write as _;

use crate::orchestrator::{Plan, Point, Run};

fn ms(us: f64) -> String {
    if us >= 100_000.0 {
        format!("{:.0}", us / 1000.0)
    } else {
        format!("{:.2}", us / 1000.0)
    }
}

fn pct(part: f64, of: f64) -> String {
    format!("{:.1} %", 100.0 * part / of.max(1.0))
}

fn rate(r: &Run, n: f64) -> f64 {
    n / r.secs.max(1e-9)
}

pub(crate) fn report(plan: &Plan, points: &[Point]) -> String {
    let mut s = String::new();
    let a = &plan.server;
    let _ = writeln!(
        s,
        "\n### Overload: {}× capacity, {} ms deadlines\n",
        plan.load, plan.deadline_ms
    );
    let _ = writeln!(
        s,
        "Handler busy on the CPU for {} µs, `inline` (finishes in its first poll) or `await` (yields once first). Shedding: `queue-delay` = `Server::max_queue_delay({} ms)`; `layer-fixed` = `LoadShedLayer` with `ShedLimit::Fixed({})`; `layer-aimd` = AIMD from {} (1..4096, target {} ms); `none` = neither (deadlines still count from the read). {} connection(s); capacity from a closed loop with {} calls in flight ({:.1} s) against the server without shedding, the same rate then offered to every configuration; unloaded = open loop at {} × capacity ({:.1} s); overload = open loop at {} × capacity ({:.1} s after {:.1} s of warm-up), Poisson arrivals; latency from the moment the client starts a call (`client lag`: how late against the schedule it started them, at p99).\n",
        a.work.as_micros(),
        a.max_queue_delay.as_secs_f64() * 1000.0,
        a.layer_limit,
        a.layer_limit,
        a.aimd_target.as_secs_f64() * 1000.0,
        plan.connections,
        plan.capacity_concurrency,
        plan.capacity.secs.as_secs_f64(),
        plan.unloaded_load,
        plan.unloaded.secs.as_secs_f64(),
        plan.load,
        plan.overload.secs.as_secs_f64(),
        plan.overload.warmup.as_secs_f64(),
    );
    let _ = writeln!(
        s,
        "| handler | capacity calls/s (no shedding) | p50 at capacity ms | p99 at capacity ms | server CPU |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|");
    let mut seen = Vec::new();
    for p in points {
        if seen.contains(&p.handler) {
            continue;
        }
        seen.push(p.handler);
        let c = &p.capacity;
        let _ = writeln!(
            s,
            "| {} | {:.0} | {} | {} | {:.0} % |",
            p.handler.name(),
            rate(c, c.ok),
            ms(c.ok_p50_us),
            ms(c.ok_p99_us),
            c.server_cpu * 100.0,
        );
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "| handler | shedding | unloaded p99 ms | refused unloaded | offered calls/s | admitted p50 ms | admitted p99 ms | ÷ unloaded p99 | refusal p50 ms | refusal p99 ms | refused | expired | answered in time (of offered) | answered in time (of capacity) | server CPU | client lag p99 ms | item 10 target |");
    let _ = writeln!(
        s,
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    );
    for p in points {
        let (o, u, c) = (&p.overload, &p.unloaded, &p.capacity);
        let ratio = o.ok_p99_us / u.ok_p99_us.max(1.0);
        let met = o.ok > 0.0 && ratio <= 2.0 && (o.refused == 0.0 || o.refused_p99_us <= 1000.0);
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.0} % | {} | {} |",
            p.handler.name(),
            p.shedding,
            ms(u.ok_p99_us),
            pct(u.refused, u.offered),
            rate(o, o.offered),
            if o.ok > 0.0 { ms(o.ok_p50_us) } else { "-".into() },
            if o.ok > 0.0 { ms(o.ok_p99_us) } else { "-".into() },
            if o.ok > 0.0 { format!("{ratio:.1}") } else { "-".into() },
            if o.refused > 0.0 { ms(o.refused_p50_us) } else { "-".into() },
            if o.refused > 0.0 { ms(o.refused_p99_us) } else { "-".into() },
            pct(o.refused, o.offered),
            pct(o.expired_unstarted + o.expired, o.offered),
            pct(o.in_time, o.offered),
            pct(rate(o, o.in_time), rate(c, c.ok)),
            o.server_cpu * 100.0,
            ms(o.lag_p99_us),
            if met { "met" } else { "not met" },
        );
    }
    let _ = writeln!(
        s,
        "\n`expired`: calls that ended `DeadlineExceeded` (not started by the server, or timed out at the client). `refused unloaded`: the share of calls refused at the unloaded rate (a shedder should refuse next to none). Item 10 target: admitted p99 ≤ 2 × unloaded p99 and refusal p99 ≤ 1 ms."
    );
    s
}
