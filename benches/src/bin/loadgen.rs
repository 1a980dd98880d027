//! The load generator: our framework beside a raw TCP floor, tonic and tarpc, in one run.
//!
//! ```text
//! cargo run --release -p benches --bin loadgen -- [--quick] [--pin] [--runtime current|N]
//!     [--systems raw-tcp,ours-raw,...|order|stack] [--payloads 64,1024,4096,65536]
//!     [--concurrency 1,32,256,1024] [--duration SECS] [--warmup SECS]
//!     [--out benches/RESULTS.md] [--chart benches/results.svg]
//! ```
//!
//! For each system it starts a server process and, for each workload, a client process, both
//! over TCP loopback with one connection (`--pin` pins the server to CPU 0 and the client to
//! CPU 1 with `taskset`). Each client warms up, then runs for the measured duration; every reply
//! is compared with its request. Server and client CPU time per call come from
//! `/proc/<pid>/stat`, read at the start and end of the measured window.
//!
//! By default it runs the payload echo systems (`raw-tcp`, `ours-raw`, `ours-protobuf`,
//! `ours-msgpack`, `ours-json`, `tonic`, `tarpc`). The order systems (`ours-order-protobuf`,
//! `ours-order-json`, `ours-order-msgpack`, `tonic-order`, `tarpc-order`; `order` in the
//! `--systems` list stands for all five) echo a realistic order of about 600 bytes in Protobuf
//! (10 lines, see `benches::realistic_order`) through each system's typed API instead of the
//! payload: the payload only numbers the order (its first 8 bytes) and its size changes nothing
//! that is sent, only the tables' headings. Run them with `--systems order --payloads 64`.
//! `stack` stands for `ours-generated` and `ours-stack`: a 64 B item through the generated client
//! over a bare channel, and over deadline, retry, breaker and a balanced channel across three
//! endpoints (the whole client stack's cost per call; `--systems stack --payloads 64`).
//! `tls` (build with `--features tls`) stands for `ours-raw` beside `ours-tls` and `ours-mtls`
//! (TLS 1.3 and mutual TLS over the one connection), and `ours-connect`, `ours-tls-connect`,
//! `ours-mtls-connect`: a new connection per call (connect, handshake, one call, close), whose
//! QPS is new connections per second. The orchestrator writes a throwaway PKI (one CA, a server
//! and a client certificate) to a temporary directory for them and deletes it at the end.
//!
//! The full run writes a Markdown report (`--out`) and an SVG chart (`--chart`). `--quick` runs
//! every selected system once at 64 B and 32 in flight for half a second, prints the table,
//! writes nothing, and fails if any call failed or any reply was wrong: CI runs it so that the
//! harness cannot rot.
//!
//! ```text
//! cargo run --release -p benches --bin loadgen -- streams [--quick] [--pin] [--runtime current|N]
//!     [--systems ours-raw,ours-protobuf,tonic] [--payloads 64,4096] [--streams 1,256]
//!     [--idle 10000] [--duration SECS] [--warmup SECS] [--out benches/RESULTS-streaming.md]
//! ```
//!
//! `streams` measures server streaming instead (`benches::systems::feed`): for each system,
//! payload and number of concurrent streams on one connection (one server stream per call), the
//! messages and bytes per second all of them deliver together, every message checked, beside
//! tonic's in the same run;
//! then the resident memory each side spends per idle stream, with `--idle` streams open at once.
//! `--quick` runs 64 B messages on 1 and 8 streams and 100 idle streams, writes nothing, and fails
//! if any message was missing, out of order or corrupted.
//!
//! The subcommands `serve`, `client` and `stream-client` are what the orchestrators start.

// The subcommands and the orchestrator's parts, one module each. (`#[path]`: this file is the
// binary's root, so a plain `mod args;` would look for `src/bin/args.rs`, which cargo would
// take for another binary.)
#[path = "loadgen/args.rs"]
mod args;
#[path = "loadgen/chart.rs"]
mod chart;
#[path = "loadgen/client.rs"]
mod client;
#[path = "loadgen/cpu.rs"]
mod cpu;
#[path = "loadgen/orchestrator.rs"]
mod orchestrator;
#[path = "loadgen/report.rs"]
mod report;
#[path = "loadgen/server.rs"]
mod server;
#[path = "loadgen/streams.rs"]
mod streams;

use client::client;
use orchestrator::orchestrate;
use server::serve;
use streams::{orchestrate_streams, stream_client};

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("serve") => serve(args.split_off(1)),
        Some("client") => client(args.split_off(1)),
        Some("stream-client") => stream_client(args.split_off(1)),
        Some("streams") => orchestrate_streams(args.split_off(1)),
        _ => orchestrate(args),
    };
    if let Err(e) = result {
        eprintln!("loadgen: {e}");
        std::process::exit(1);
    }
}
