//! `memory serve`: an echo server (`bench.Echo/Echo`, raw bytes) with the default limits, on TCP
//! loopback. Prints `listening <addr>`; answers each `stats` line on stdin with a `stats …` line
//! of its [`ServerStats`]; exits when stdin closes.

use rpc_core::server::{RawService, ServerStats};
use rpc_core::{Request, Response, Server};

use crate::args::{arg_value, parse};
use crate::child::{say, watch_stdin};

/// The one method served.
pub(crate) const ECHO: &str = "bench.Echo/Echo";

fn stats_line(s: &ServerStats) -> String {
    format!(
        "stats connections={} handshaking={} unwritten={} buffers={}",
        s.connections(),
        s.handshaking(),
        s.unwritten_bytes(),
        s.buffer_bytes()
    )
}

pub(crate) fn serve(args: Vec<String>) -> Result<(), String> {
    let mut max_calls: Option<u32> = None;
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        match flag.as_str() {
            // Calls in flight per connection (default: the server's, 1024).
            "--max-calls" => max_calls = Some(parse(&arg_value(&mut it, &flag)?, &flag)?),
            other => return Err(format!("serve: unknown argument {other:?}")),
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let echo = RawService::new("bench.Echo").method("Echo", |req: Request| async move {
            Ok(Response::new(req.into_body()))
        });
        let mut server = Server::builder().add_service(echo);
        if let Some(n) = max_calls {
            server = server.max_concurrent_calls_per_connection(n);
        }
        let stats = server.stats();
        watch_stdin(move |line| {
            if line == "stats" {
                say(&stats_line(&stats));
            }
        });
        say(&format!("listening {addr}"));
        server.serve(listener).await.map_err(|e| e.to_string())
    })
}
