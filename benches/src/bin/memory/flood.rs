//! `memory flood`: a raw TCP client that speaks just enough of the protocol (preface, SETTINGS)
//! to pipeline REQUEST frames of `--payload` bytes to the echo method, and never reads a byte of
//! what the server sends back. Writes for at most `--secs` or `--max-bytes`, whichever comes
//! first, then prints `flood sent=… calls=… stalled_at=… secs=…` and keeps the connection open
//! (the server still holding what it holds) until stdin closes.

use std::io::{ErrorKind, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use rpc_core::protocol::{encode_request, encode_settings, Settings, PREFACE};
use rpc_core::Metadata;

use crate::args::{arg_value, parse, secs};
use crate::child::{say, watch_stdin};
use crate::server::ECHO;

/// Requests encoded per batch written.
const BATCH: usize = 16;

pub(crate) fn flood(args: Vec<String>) -> Result<(), String> {
    let mut addr: Option<SocketAddr> = None;
    let mut payload = 65536usize;
    let mut limit = Duration::from_secs(5);
    let mut max_bytes: u64 = 2 << 30;
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        let v = arg_value(&mut it, &flag)?;
        match flag.as_str() {
            "--addr" => addr = Some(parse(&v, &flag)?),
            "--payload" => payload = parse(&v, &flag)?,
            "--secs" => limit = secs(&v, &flag)?,
            "--max-bytes" => max_bytes = parse(&v, &flag)?,
            other => return Err(format!("flood: unknown argument {other:?}")),
        }
    }
    let addr = addr.ok_or("flood: --addr is required")?;
    watch_stdin(|_| {});
    let mut stream = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    // Writes block while the server does not read; the timeout lets the loop see its own end.
    stream
        .set_write_timeout(Some(Duration::from_millis(20)))
        .map_err(|e| e.to_string())?;
    let mut out = BytesMut::new();
    out.put_slice(&PREFACE);
    encode_settings(&mut out, &Settings::protocol_default());
    let body: Vec<u8> = (0..payload).map(|i| (i % 251) as u8).collect();
    let metadata = Metadata::new();
    let (mut call_id, mut calls_written) = (0u32, 0u64);
    // Bytes sent, and when the last write that took any bytes returned.
    let (mut sent, mut last_progress) = (0u64, (0u64, 0.0f64));
    let mut frame_ends: Vec<usize> = Vec::with_capacity(BATCH);
    let mut off = 0usize;
    let started = Instant::now();
    while started.elapsed() < limit && sent < max_bytes {
        if off == out.len() {
            out.clear();
            off = 0;
            frame_ends.clear();
            for _ in 0..BATCH {
                call_id = call_id.wrapping_add(1).max(1);
                encode_request(
                    &mut out,
                    call_id,
                    0,
                    ECHO.as_bytes(),
                    0,
                    0,
                    &metadata,
                    &body,
                );
                frame_ends.push(out.len());
            }
        }
        match stream.write(&out[off..]) {
            Ok(0) => return Err("the server closed the connection".into()),
            Ok(n) => {
                let before = off;
                off += n;
                sent += n as u64;
                last_progress = (sent, started.elapsed().as_secs_f64());
                calls_written += frame_ends
                    .iter()
                    .filter(|&&end| end > before && end <= off)
                    .count() as u64;
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => {
                eprintln!("memory flood: write failed: {e}");
                break;
            }
        }
    }
    say(&format!(
        "flood sent={sent} calls={calls_written} stalled_at={:.3} secs={:.3}",
        if sent == last_progress.0 && started.elapsed().as_secs_f64() - last_progress.1 > 0.2 {
            last_progress.1
        } else {
            -1.0
        },
        started.elapsed().as_secs_f64()
    ));
    // Keep the connection (and whatever the server holds for it) until stdin closes.
    loop {
        std::thread::park();
    }
}
