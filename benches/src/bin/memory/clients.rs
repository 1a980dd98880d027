//! `memory idle-clients`: opens many connections (one `Channel` each), makes one echo call of
//! `--payload` bytes on each, checks every reply; then, with `--busy-secs S`, keeps one 64 B echo
//! call in flight on every connection for S seconds (printing `busy-start`, then
//! `busy calls=… errors=… secs=…`); then keeps them all open and idle. Prints
//! `idle ok=… errors=… rss_kib=…` once done; exits when stdin closes, closing them all.

use std::net::SocketAddr;

use bytes::Bytes;
use futures::StreamExt;
use rpc_core::{Endpoint, Request};

use crate::args::{arg_value, parse};
use crate::child::{say, watch_stdin};
use crate::cpu::rss_kib;
use crate::server::ECHO;

pub(crate) fn idle_clients(args: Vec<String>) -> Result<(), String> {
    let mut addr: Option<SocketAddr> = None;
    let (mut connections, mut payload, mut parallel) = (1000usize, 65536usize, 64usize);
    let mut busy_secs = 0.0f64;
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        let v = arg_value(&mut it, &flag)?;
        match flag.as_str() {
            "--addr" => addr = Some(parse(&v, &flag)?),
            "--connections" => connections = parse(&v, &flag)?,
            "--payload" => payload = parse(&v, &flag)?,
            "--parallel" => parallel = parse(&v, &flag)?,
            "--busy-secs" => busy_secs = parse(&v, &flag)?,
            other => return Err(format!("idle-clients: unknown argument {other:?}")),
        }
    }
    let addr = addr.ok_or("idle-clients: --addr is required")?;
    watch_stdin(|_| {});
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let body: Bytes = (0..payload).map(|i| (i % 251) as u8).collect();
        let results: Vec<Result<rpc_core::Channel, String>> = futures::stream::iter(0..connections)
            .map(|_| {
                let body = body.clone();
                async move {
                    let channel = Endpoint::tcp(addr)
                        .connect()
                        .await
                        .map_err(|e| format!("connect: {e}"))?;
                    let reply = channel
                        .unary(Request::new(ECHO, body.clone()))
                        .await
                        .map_err(|e| format!("call: {e}"))?;
                    if reply.body() != &body {
                        return Err("the reply differs from the request".into());
                    }
                    Ok(channel)
                }
            })
            .buffer_unordered(parallel.max(1))
            .collect()
            .await;
        let mut channels = Vec::with_capacity(results.len());
        let mut first_error = None;
        for r in results {
            match r {
                Ok(c) => channels.push(c),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = &first_error {
            eprintln!("memory idle-clients: {e}");
        }
        if busy_secs > 0.0 {
            busy(&channels, std::time::Duration::from_secs_f64(busy_secs)).await;
        }
        say(&format!(
            "idle ok={} errors={} rss_kib={}",
            channels.len(),
            connections - channels.len(),
            rss_kib("self").unwrap_or(0)
        ));
        // Idle until the orchestrator closes stdin (which exits the process).
        std::future::pending::<()>().await;
        drop(channels);
        Ok(())
    })
}

/// One 64 B echo call in flight on every channel for `secs`; prints the calls made and failed.
async fn busy(channels: &[rpc_core::Channel], secs: std::time::Duration) {
    let body = Bytes::from(vec![7u8; 64]);
    say("busy-start");
    let started = tokio::time::Instant::now();
    let until = started + secs;
    let tasks: Vec<_> = channels
        .iter()
        .map(|channel| {
            let (channel, body) = (channel.clone(), body.clone());
            tokio::spawn(async move {
                let (mut calls, mut errors) = (0u64, 0u64);
                while tokio::time::Instant::now() < until {
                    match channel.unary(Request::new(ECHO, body.clone())).await {
                        Ok(reply) if reply.body() == &body => calls += 1,
                        _ => errors += 1,
                    }
                }
                (calls, errors)
            })
        })
        .collect();
    let (mut calls, mut errors) = (0u64, 0u64);
    for t in tasks {
        let (c, e) = t.await.unwrap_or((0, 1));
        calls += c;
        errors += e;
    }
    say(&format!(
        "busy calls={calls} errors={errors} secs={:.4}",
        started.elapsed().as_secs_f64()
    ));
}
