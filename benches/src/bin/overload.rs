//! Overload (issue 12, item 10): a server offered three times its capacity, with and without
//! shedding, for a handler that finishes in its first poll and one that awaits.
//!
//! ```text
//! cargo run --release -p benches --bin overload -- [--quick] [--no-pin]
//!     [--handlers inline,await] [--configs none,layer-fixed,layer-aimd,queue-delay]
//!     [--work-us 75] [--max-queue-delay-us 5000] [--layer-limit 64] [--aimd-target-us 5000]
//!     [--load 3] [--unloaded-load 0.3] [--secs S] [--deadline-ms 1000]
//!     [--capacity-concurrency 32] [--connections 1]
//! ```
//!
//! For each handler kind and shedding configuration it starts a server process (current-thread
//! runtime, pinned to CPU 0 with `taskset` when it exists and there are two CPUs) and, in turn,
//! three client processes (current-thread, pinned to CPU 1), over one TCP connection:
//! - capacity: a closed loop with 32 calls in flight; its successful calls per second are the
//!   capacity;
//! - unloaded: an open loop at 0.3 × capacity: its admitted p99 is the "unloaded p99";
//! - overload: an open loop at 3 × capacity with 1 s deadlines: admitted p50/p99, refusal
//!   p50/p99, the share refused, the share that expired, and the share answered in time.
//!
//! A configuration is `none`, `queue-delay` (`Server::max_queue_delay`), `layer-fixed` or
//! `layer-aimd` (`LoadShedLayer` around the service), or two joined with `+`.
//!
//! `--quick` (CI): the `queue-delay` configuration only, short runs; under 30 s. It fails only if
//! the harness does (a call failed other than by shedding or deadline), never on the figures.

// The subcommands and the orchestrator's parts, one module each (`#[path]`: see `loadgen.rs`).
#[path = "common/args.rs"]
mod args;
#[path = "common/child.rs"]
mod child;
#[path = "overload/client.rs"]
mod client;
#[path = "loadgen/cpu.rs"]
mod cpu;
#[path = "overload/orchestrator.rs"]
mod orchestrator;
#[path = "overload/report.rs"]
mod report;
#[path = "overload/server.rs"]
mod server;

/// This file's doc comment, for `--help`.
fn usage() -> String {
    args::usage_from(include_str!("overload.rs"))
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("serve") => server::serve(args.split_off(1)),
        Some("client") => client::client(args.split_off(1)),
        _ => orchestrator::orchestrate(args),
    };
    if let Err(e) = result {
        eprintln!("overload: {e}");
        std::process::exit(1);
    }
}
