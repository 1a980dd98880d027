//! `memory one-way`: one-way calls toward a server that stopped reading (the orchestrator
//! freezes it with SIGSTOP after this client has connected, then writes `go`).
//!
//! Two connections, one per policy of [`Endpoint::wait_for_write_capacity`]; each is given calls
//! as fast as `Channel::poll_ready` admits them for `--secs`, each call spawned as its own task:
//! - `wait`: the default; `poll_ready` waits while the connection holds
//!   `max_unwritten_bytes` not yet written. Prints `wait made=… last_queued_at=… rss_kib=…`.
//! - `nowait`: calls over the bound fail at once with `ResourceExhausted`. Prints
//!   `nowait made=… refused=… rss_kib=…`.
//!
//! The in-flight limit is raised (`--max-calls`, with the server's) so that the byte bound, not
//! the count of calls, is what stops the queue.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use rpc_core::protocol::{request_len, HEADER_LEN};
use rpc_core::{Channel, Code, Endpoint, Metadata, Request, Response, Status};
use tokio::time::Instant;
use tower::Service;

use crate::args::{arg_value, parse, secs};
use crate::child::{say, watch_stdin};
use crate::cpu::rss_kib;
use crate::server::ECHO;

#[derive(Default)]
struct Outcomes {
    ok: AtomicU64,
    refused: AtomicU64,
    other: AtomicU64,
}

impl Outcomes {
    fn count(&self, result: &Result<Response, Status>) {
        let counter = match result {
            Ok(_) => &self.ok,
            Err(s) if s.code() == Code::ResourceExhausted => &self.refused,
            Err(_) => &self.other,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Makes one-way calls on `channel` for `run`, as fast as `poll_ready` lets it; returns how many,
/// and when (seconds into the run) the last one that was not refused at once was made.
async fn offer(
    mut channel: Channel,
    body: &Bytes,
    run: Duration,
    outcomes: &Arc<Outcomes>,
) -> Result<(u64, f64), String> {
    let started = Instant::now();
    let end = started + run;
    let (mut made, mut last_queued) = (0u64, 0.0f64);
    loop {
        let ready = std::future::poll_fn(|cx| channel.poll_ready(cx));
        match tokio::time::timeout_at(end, ready).await {
            Err(_) => break,
            Ok(Err(e)) => return Err(format!("poll_ready: {e}")),
            Ok(Ok(())) => {}
        }
        if Instant::now() >= end {
            break;
        }
        // A call refused at once (no-wait policy) is counted here; one that waits for its
        // acknowledgement gets a task of its own. (A task for every refused call would make
        // the run queue, not the channel, what this measures.)
        let mut call = Box::pin(channel.call(Request::new(ECHO, body.clone()).with_one_way(true)));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match call.as_mut().poll(&mut cx) {
            Poll::Ready(result) => outcomes.count(&result),
            Poll::Pending => {
                last_queued = started.elapsed().as_secs_f64();
                let outcomes = outcomes.clone();
                tokio::spawn(async move { outcomes.count(&call.await) });
            }
        }
        made += 1;
        if made % 64 == 0 {
            tokio::task::yield_now().await;
        }
    }
    // Let the spawned calls that have already ended report it.
    tokio::time::sleep(Duration::from_millis(50)).await;
    Ok((made, last_queued))
}

pub(crate) fn one_way(args: Vec<String>) -> Result<(), String> {
    let mut addr: Option<SocketAddr> = None;
    let (mut payload, mut max_calls) = (1024usize, 100_000usize);
    let mut run = Duration::from_secs(3);
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        let v = arg_value(&mut it, &flag)?;
        match flag.as_str() {
            "--addr" => addr = Some(parse(&v, &flag)?),
            "--payload" => payload = parse(&v, &flag)?,
            "--max-calls" => max_calls = parse(&v, &flag)?,
            "--secs" => run = secs(&v, &flag)?,
            other => return Err(format!("one-way: unknown argument {other:?}")),
        }
    }
    let addr = addr.ok_or("one-way: --addr is required")?;
    let (go_tx, mut go_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    watch_stdin(move |line| {
        if line == "go" {
            let _ = go_tx.send(());
        }
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let body: Bytes = (0..payload).map(|i| (i % 251) as u8).collect();
        // Bytes of one request on the wire (the deadline field is fixed-size).
        let frame = HEADER_LEN + request_len(ECHO.as_bytes(), &Metadata::new(), &body);
        let endpoint = Endpoint::tcp(addr).max_concurrent_calls(max_calls);
        let waiting = endpoint.connect().await.map_err(|e| e.to_string())?;
        let failing = endpoint
            .clone()
            .wait_for_write_capacity(false)
            .connect()
            .await
            .map_err(|e| e.to_string())?;
        // One call each while the server still reads: both connections are up and in use.
        for c in [&waiting, &failing] {
            c.unary(Request::new(ECHO, body.clone()).with_one_way(true))
                .await
                .map_err(|e| format!("first one-way call: {e}"))?;
        }
        say(&format!(
            "connected rss_kib={}",
            rss_kib("self").unwrap_or(0)
        ));
        go_rx.recv().await.ok_or("stdin closed before `go`")?;

        let outcomes = Arc::new(Outcomes::default());
        let (made, last) = offer(waiting.clone(), &body, run, &outcomes).await?;
        say(&format!(
            "wait made={made} last_queued_at={last:.3} frame={frame} in_flight={} refused={} ok={} other={} rss_kib={}",
            waiting.in_flight(),
            outcomes.refused.load(Ordering::Relaxed),
            outcomes.ok.load(Ordering::Relaxed),
            outcomes.other.load(Ordering::Relaxed),
            rss_kib("self").unwrap_or(0)
        ));

        let outcomes = Arc::new(Outcomes::default());
        let (made, last) = offer(failing.clone(), &body, run, &outcomes).await?;
        say(&format!(
            "nowait made={made} last_queued_at={last:.3} frame={frame} in_flight={} refused={} ok={} other={} rss_kib={}",
            failing.in_flight(),
            outcomes.refused.load(Ordering::Relaxed),
            outcomes.ok.load(Ordering::Relaxed),
            outcomes.other.load(Ordering::Relaxed),
            rss_kib("self").unwrap_or(0)
        ));
        Ok(())
    })
}
