//! The Markdown tables of a memory run.

use std::fmt::Write as _;

use crate::child::field;
use crate::orchestrator::{Busy, Flood, Plan, Reading};

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

fn delta_mib(kib: u64, base: u64) -> String {
    format!("{:+.1}", (kib as f64 - base as f64) / 1024.0)
}

pub(crate) fn report(
    plan: &Plan,
    [start, idle, closed]: [Reading; 3],
    ok: u64,
    client_rss: u64,
    busy: Option<&Busy>,
    f: &Flood,
    [connected, waiting, failing]: [&String; 3],
) -> Result<String, String> {
    let mut s = String::new();
    let size = if plan.payload >= 1024 && plan.payload.is_multiple_of(1024) {
        format!("{} KiB", plan.payload / 1024)
    } else {
        format!("{} B", plan.payload)
    };
    let per_conn = |r: &Reading| (r.rss_kib as f64 - start.rss_kib as f64) / ok.max(1) as f64;
    let w = |s: &mut String, cells: &[String]| {
        let _ = writeln!(s, "| {} |", cells.join(" | "));
    };
    let _ = writeln!(
        s,
        "\n### Server memory: {ok} idle connections, a peer that never reads\n"
    );
    w(
        &mut s,
        &[
            "phase",
            "server RSS MiB",
            "Δ MiB vs (a)",
            "per connection KiB",
            "connections",
            "buffers KiB (stats)",
            "unwritten KiB (stats)",
        ]
        .map(String::from),
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|");
    let row = |s: &mut String, phase: String, r: &Reading, per: String| {
        w(
            s,
            &[
                phase,
                mib(r.rss_kib),
                delta_mib(r.rss_kib, start.rss_kib),
                per,
                r.connections.to_string(),
                (r.buffers / 1024).to_string(),
                (r.unwritten / 1024).to_string(),
            ],
        );
    };
    row(
        &mut s,
        "(a) started, no connections".into(),
        &start,
        "".into(),
    );
    row(
        &mut s,
        format!("(b) {ok} connections idle after one {size} echo each"),
        &idle,
        format!("{:.1}", per_conn(&idle)),
    );
    row(&mut s, "(c) after they closed".into(), &closed, "".into());
    let peak = Reading {
        rss_kib: f.peak_rss,
        connections: f.end.connections,
        buffers: f.end.buffers,
        unwritten: f.peak_unwritten,
    };
    row(
        &mut s,
        format!(
            "(d) a client pipelining {size} requests, never reading: peak over {:.1} s",
            f.secs
        ),
        &peak,
        "".into(),
    );
    row(
        &mut s,
        "(d) … at the end of its run".into(),
        &f.end,
        "".into(),
    );
    row(&mut s, "(d) … after it closed".into(), &f.after, "".into());
    let stalled = if f.stalled_at >= 0.0 {
        format!("its writes stopped moving at {:.2} s", f.stalled_at)
    } else {
        "its writes were still moving at the end".into()
    };
    let _ = writeln!(
        s,
        "\n(d): the client sent {:.1} MiB ({} whole requests) in {:.1} s, then {stalled}; server RSS grew by {} MiB at peak over (c) ({} MiB at the end), unwritten output peaked at {} KiB.",
        f.sent / 1048576.0,
        f.calls,
        f.secs,
        delta_mib(f.peak_rss, f.before.rss_kib),
        delta_mib(f.end.rss_kib, f.before.rss_kib),
        f.peak_unwritten / 1024,
    );
    let _ = writeln!(
        s,
        "The client process of (b) held {} MiB for its {ok} idle connections ({:.1} KiB each, runtime included).",
        mib(client_rss),
        client_rss as f64 / ok.max(1) as f64,
    );
    if let Some(b) = busy {
        let _ = writeln!(
            s,
            "\n### {ok} connections, one 64 B echo call in flight on each ({:.1} s)\n",
            b.secs
        );
        let _ = writeln!(
            s,
            "| calls/s | server CPU µs/call | server RSS MiB | Δ MiB vs (a) | failed calls |"
        );
        let _ = writeln!(s, "|---:|---:|---:|---:|---:|");
        let _ = writeln!(
            s,
            "| {:.0} | {:.2} | {} | {} | {} |",
            b.calls as f64 / b.secs.max(1e-9),
            b.server_cpu_us / b.calls.max(1) as f64,
            mib(b.server_rss_kib),
            delta_mib(b.server_rss_kib, start.rss_kib),
            b.errors,
        );
        let _ = writeln!(
            s,
            "\nThe client (one process, one `Channel` per connection, one task each) runs on the other CPU; CPU time from `/proc/<pid>/stat` (10 ms ticks)."
        );
    }

    let base = field(connected, "rss_kib")?;
    let _ = writeln!(
        s,
        "\n### Client memory: one-way calls of {} B toward a server that stopped reading ({:.1} s per policy)\n",
        plan.one_way_payload,
        plan.one_way_secs.as_secs_f64()
    );
    let _ = writeln!(s, "| `wait_for_write_capacity` | calls made | refused at once | calls queued or written | their bytes MiB | last queued at s | client RSS MiB | RSS growth in the phase MiB |");
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut before = base;
    for (name, line) in [("true (default)", waiting), ("false", failing)] {
        let rss = field(line, "rss_kib")?;
        let grew = rss - std::mem::replace(&mut before, rss);
        let (made, refused) = (field(line, "made")?, field(line, "refused")?);
        let queued = made - refused - field(line, "other")?;
        let _ = writeln!(
            s,
            "| {name} | {made} | {refused} | {queued} | {:.1} | {:.3} | {:.1} | {:+.1} |",
            queued * field(line, "frame")? / 1048576.0,
            field(line, "last_queued_at")?,
            rss / 1024.0,
            grew / 1024.0
        );
    }
    let _ = writeln!(
        s,
        "\nClient RSS when connected: {:.1} MiB; the phases run one after the other on two connections made then, each growth is over the RSS before its phase. The server (SIGSTOPped after the connect) announces 100 000 calls per connection and the client allows as many, so the bytes bound (`Endpoint::max_unwritten_bytes`, default 4 MiB) is what stops the queue. Calls queued or written include what the kernel's socket buffers took (the client's send buffer and the frozen server's receive buffer); with `true` the producer waits in `poll_ready` from the time of the last call on.",
        base / 1024.0
    );
    Ok(s)
}
