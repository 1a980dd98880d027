//! Three servers register in a registry; a client balances calls across them through a
//! `#[service]` client over a `BalancedChannel`; one server stops mid-run (deregistering first,
//! then draining) and every call still succeeds.
//!
//! ```text
//! cargo run --release --example discovery                        # in-process registry
//! cargo run --release --example discovery --features etcd \
//!     -- --etcd http://127.0.0.1:2379                             # etcd
//! ```
//!
//! The `etcd` feature (off by default, as in `rpc-discovery`) needs `protoc` to build.
//!
//! Also `--calls N` (default 6000) and `--concurrency N` (default 16).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rpc_core::{service, Server, Status};
use rpc_discovery::{serve_registered, BalancedChannel, Instance, MemoryRegistry, Query, Registry};
#[cfg(feature = "etcd")]
use rpc_discovery::{EtcdConfig, EtcdRegistry};
use tokio::sync::oneshot;

/// Says which server answered.
#[service(name = "demo.Greeter", version = "1")]
pub trait Greeter {
    /// Greets `name`.
    #[rpc(idempotent)]
    async fn hello(&self, name: String) -> Result<String, Status>;
}

struct Named(&'static str);

impl Greeter for Named {
    async fn hello(&self, name: String) -> Result<String, Status> {
        Ok(format!("hello {name} from {}", self.0))
    }
}

struct Args {
    etcd: Option<String>,
    calls: usize,
    concurrency: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        etcd: None,
        calls: 6000,
        concurrency: 16,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--etcd" => args.etcd = Some(value()?),
            "--calls" => args.calls = value()?.parse().map_err(|e| format!("--calls: {e}"))?,
            "--concurrency" => {
                args.concurrency = value()?
                    .parse::<usize>()
                    .map_err(|e| format!("--concurrency: {e}"))?
                    .max(1)
            }
            "-h" | "--help" => {
                return Err(
                    "usage: discovery [--etcd URL] [--calls N] [--concurrency N]".to_owned(),
                )
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    examples::init_tracing();
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let registry: Arc<dyn Registry> = match &args.etcd {
        #[cfg(feature = "etcd")]
        Some(url) => {
            println!("registry: etcd at {url}");
            let config = EtcdConfig::new().ttl(Duration::from_secs(5));
            Arc::new(EtcdRegistry::connect([url.as_str()], config).await?)
        }
        #[cfg(not(feature = "etcd"))]
        Some(_) => {
            eprintln!(
                "--etcd needs the etcd feature: cargo run --example discovery --features etcd"
            );
            std::process::exit(2);
        }
        None => {
            println!("registry: in-process");
            Arc::new(MemoryRegistry::global())
        }
    };

    // Three servers on free loopback ports, each registering once bound.
    let mut stops = Vec::new();
    let mut servers = Vec::new();
    for name in ["server-a", "server-b", "server-c"] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let (stop, stopped) = oneshot::channel::<()>();
        let registry = registry.clone();
        let instance = Instance::new("demo.Greeter", "").tag("name", name);
        servers.push(tokio::spawn(async move {
            let server = Server::builder().add_service(GreeterServer::new(Named(name)));
            let signal = async {
                let _ = stopped.await;
            };
            // A short grace after deregistering lets clients see the change before go-away.
            let grace = Duration::from_millis(200);
            serve_registered(server, listener, &*registry, instance, grace, signal).await
        }));
        stops.push(Some(stop));
    }

    let mut watch = registry.watch(Query::new("demo.Greeter")).await?;
    while watch.current().len() < 3 {
        watch.changed().await?;
    }
    for i in watch.current().instances() {
        println!("registered: {} ({})", i.addr, i.tags["name"]);
    }
    let greeter = GreeterClient::new(BalancedChannel::new(watch));

    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<Result<String, Status>>();
    let per_worker = args.calls / args.concurrency;
    let total = per_worker * args.concurrency;
    for w in 0..args.concurrency {
        let greeter = greeter.clone();
        let done = done_tx.clone();
        tokio::spawn(async move {
            for i in 0..per_worker {
                let r = greeter.hello(format!("caller-{w}-{i}")).await;
                if done.send(r).is_err() {
                    return;
                }
            }
        });
    }
    drop(done_tx);

    let mut by_server: BTreeMap<String, usize> = BTreeMap::new();
    let mut errors = 0;
    let mut seen = 0;
    let mut stopped_b = None;
    while let Some(r) = done_rx.recv().await {
        seen += 1;
        match r {
            Ok(reply) => {
                let server = reply.rsplit(' ').next().unwrap_or("?").to_owned();
                *by_server.entry(server).or_default() += 1;
            }
            Err(e) => {
                errors += 1;
                eprintln!("call failed: {e}");
            }
        }
        if seen == total / 3 {
            println!("after {seen} calls: stopping server-b");
            if let Some(stop) = stops[1].take() {
                let _ = stop.send(());
            }
            stopped_b = Some(servers.remove(1));
        }
    }
    if let Some(b) = stopped_b {
        b.await??;
        println!("server-b stopped gracefully");
    }
    for (server, n) in &by_server {
        println!("{server}: {n} calls");
    }
    println!("calls={total} errors={errors}");

    for stop in stops.into_iter().flatten() {
        let _ = stop.send(());
    }
    for s in servers {
        s.await??;
    }
    if errors > 0 {
        return Err(format!("{errors} calls failed").into());
    }
    Ok(())
}
