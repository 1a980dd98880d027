//! An echo server: `demo.Echo/Echo` returns the request body unchanged.
//!
//! ```text
//! cargo run --release --example echo_server -- --listen 127.0.0.1:50051 [--threads N]
//! ```
//!
//! `--threads 1` (the default) runs on a current-thread tokio runtime; more uses a multi-thread
//! runtime with that many workers. SIGINT or SIGTERM shuts the server down gracefully.

use std::net::SocketAddr;

use rpc_core::server::RawService;
use rpc_core::{Response, Server};

struct Args {
    listen: SocketAddr,
    threads: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut listen = None;
    let mut threads = 1;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--listen" => listen = Some(value()?.parse().map_err(|e| format!("--listen: {e}"))?),
            "--threads" => threads = value()?.parse().map_err(|e| format!("--threads: {e}"))?,
            "-h" | "--help" => {
                return Err("usage: echo_server --listen HOST:PORT [--threads N]".into())
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Args {
        listen: listen.ok_or("--listen HOST:PORT is required")?,
        threads,
    })
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    eprintln!("echo_server: shutting down");
}

async fn run(args: Args) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    eprintln!("echo_server: listening on {}", listener.local_addr()?);
    let echo = RawService::new("demo.Echo").method("Echo", |req| async move {
        Ok(Response::new(req.into_body()))
    });
    Server::builder()
        .max_concurrent_calls_per_connection(10_000)
        .add_service(echo)
        .serve_with_shutdown(listener, shutdown_signal())
        .await
}

fn main() {
    examples::init_tracing();
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("echo_server: {e}");
            std::process::exit(2);
        }
    };
    let runtime = examples::runtime(args.threads);
    let result = runtime.and_then(|rt| rt.block_on(run(args)));
    if let Err(e) = result {
        eprintln!("echo_server: {e}");
        std::process::exit(1);
    }
}
