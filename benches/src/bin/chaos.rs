//! The chaos suite (issue 15, item 4): three servers behind the balancer on real TCP, registered in
//! a real etcd, under a steady open-loop load, with one fault per step.
//!
//! ```text
//! cargo run --release -p benches --features etcd --bin chaos -- [--long] [--outage-secs S]
//!     [--work-ms 10] [--limit 4] [--rss-bound-mib 256]
//! ```
//!
//! It starts a throwaway etcd (free loopback ports, a temporary data directory, `etcd` from
//! `scripts/deps`), three server processes (this binary, `serve`), and drives them from this
//! process through a `BalancedChannel` over the etcd watch, with a 1 s deadline and up to five
//! attempts within the default retry budget. Each server's handler takes `--work-ms` and a
//! `LoadShedLayer` admits `--limit` calls at a time, so the three serve `3 × limit / work` calls a
//! second: the capacity. Half the calls are marked idempotent.
//!
//! The steps, at 0.3 × capacity unless said otherwise:
//! 1. `baseline`: no fault; its admitted p99 is the unloaded p99.
//! 2. `sigkill`: server 3 is killed with SIGKILL 1 s in and started again (a new process, a new
//!    port) 1 s later.
//! 3. `sigstop`: server 2 is frozen with SIGSTOP 1 s in, for 5 s, then SIGCONT.
//! 4. `etcd-down`: etcd is killed with SIGKILL 1 s in and started again on its data directory
//!    after `--outage-secs` (5 s; 30 s with `--long`); the step then waits until every server is
//!    registered again.
//! 5. `hostile`: beside the load, 20 slowloris connections per server (a valid handshake and
//!    request trickled a byte every 100 ms, reopened when closed) and 2 slow readers per server
//!    (a 64 KiB echo request every 50 ms, and not a byte of the answers read).
//! 6. `overload`: 3 × capacity, with the servers shedding. Last, since it spends the retry
//!    budget for the next 10 s.
//!
//! Per step it prints the calls, the failed idempotent and other calls (by code), the share shed,
//! the admitted p50/p99 and the p99's ratio to the unloaded p99, and the servers' largest resident
//! memory so far (`VmHWM`). It exits non-zero if an idempotent call failed outside `overload`, if
//! a server's memory passed `--rss-bound-mib`, or if the harness failed; the overload target
//! (admitted p99 within 2 × the unloaded p99) is reported, not enforced, since this machine's
//! other load moves it. `--long` runs each step three times as long (the freeze stays 5 s) and
//! keeps etcd down for 30 s.

#[path = "common/args.rs"]
mod args;
#[path = "common/child.rs"]
mod child;
#[path = "chaos/driver.rs"]
mod driver;
#[path = "chaos/etcd.rs"]
mod etcd;
#[path = "chaos/hostile.rs"]
mod hostile;
#[path = "chaos/orchestrator.rs"]
mod orchestrator;
#[path = "chaos/server.rs"]
mod server;

/// This file's doc comment, for `--help`.
fn usage() -> String {
    args::usage_from(include_str!("chaos.rs"))
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("serve") => server::serve(args.split_off(1)),
        Some("-h" | "--help") => {
            println!("{}", usage());
            Ok(())
        }
        _ => orchestrator::orchestrate(args),
    };
    if let Err(e) = result {
        eprintln!("chaos: {e}");
        std::process::exit(1);
    }
}
