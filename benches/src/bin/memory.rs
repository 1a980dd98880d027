//! Server (and client) memory under idle connections and peers that do not read (issue 12,
//! items 5–7): resident memory read from `/proc/<pid>/status` (`VmRSS`) of the processes.
//!
//! ```text
//! cargo run --release -p benches --bin memory -- [--quick] [--no-pin] [--connections N]
//!     [--payload BYTES] [--flood-secs S] [--flood-max-bytes B] [--one-way-secs S]
//!     [--one-way-payload BYTES] [--busy-secs S]
//! ```
//!
//! The phases, each against an echo server with the default limits in a child process on a
//! current-thread runtime (pinned to CPU 0 with `taskset` when it exists and there are two CPUs;
//! the clients to CPU 1):
//! - (a) the server's RSS at start;
//! - (b) with `--connections` (1000) connections, each from its own `Channel`, having made one
//!   `--payload` (64 KiB) echo call and then idle: RSS, and RSS per connection;
//! - (b') those connections then each keep one 64 B echo call in flight for `--busy-secs` (3 s;
//!   0 skips it): calls per second, the server's CPU time per call and its RSS (issue 13, item 6);
//! - (c) after those connections closed;
//! - (d) a raw TCP client pipelining 64 KiB requests that never reads a byte: the server's RSS
//!   over a bounded run (`--flood-secs` 5 s or `--flood-max-bytes` 2 GiB, whichever first);
//! - (e) one-way calls toward a server that stopped reading (frozen with SIGSTOP): the client
//!   process's RSS and how many calls it admitted, waiting for room or failing fast.
//!
//! Needs about `--connections` + 512 open files per process: the benchmark raises its soft limit
//! (re-executing itself under `ulimit -S -n`) when the hard limit allows.
//!
//! `--quick` (CI): 100 connections, 1 s runs; under 30 s. It fails only if the harness does (a
//! call failed, a process did not answer), never on the figures. Prints Markdown tables.

// One module per subcommand, and the orchestrator (`#[path]`: see `loadgen.rs`).
#[path = "common/args.rs"]
mod args;
#[path = "common/child.rs"]
mod child;
#[path = "memory/clients.rs"]
mod clients;
#[path = "loadgen/cpu.rs"]
mod cpu;
#[path = "memory/flood.rs"]
mod flood;
#[path = "memory/one_way.rs"]
mod one_way;
#[path = "memory/orchestrator.rs"]
mod orchestrator;
#[path = "memory/procfs.rs"]
mod procfs;
#[path = "memory/report.rs"]
mod report;
#[path = "memory/server.rs"]
mod server;

/// This file's doc comment, for `--help`.
fn usage() -> String {
    args::usage_from(include_str!("memory.rs"))
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("serve") => server::serve(args.split_off(1)),
        Some("idle-clients") => clients::idle_clients(args.split_off(1)),
        Some("flood") => flood::flood(args.split_off(1)),
        Some("one-way") => one_way::one_way(args.split_off(1)),
        _ => orchestrator::orchestrate(args),
    };
    if let Err(e) = result {
        eprintln!("memory: {e}");
        std::process::exit(1);
    }
}
