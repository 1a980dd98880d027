//! Load for an echo server: N calls, C in flight over one connection, every reply checked.
//!
//! ```text
//! cargo run --release --example echo_client -- --connect 127.0.0.1:50051 \
//!     --requests 100000 --concurrency 32 --payload 64 [--threads N]
//! ```
//!
//! With `--codec protobuf|json|msgpack` each call sends a structured [`examples::EchoMessage`]
//! (the payload as its bytes field) in that codec to `demo.Echo/EchoMessage`; without it, raw bytes
//! to `demo.Echo/Echo`. `--lz4 MIN_BYTES` compresses requests of at least that size when the
//! server reads LZ4. The last line is always
//! `requests=N errors=E qps=Q p50_us=A p99_us=B p999_us=C`.
//!
//! Several `--connect` flags balance the calls over those servers (a static registry and a
//! `BalancedChannel`, P2C) with failover retries. `--idempotent` marks the calls idempotent, so
//! that calls in flight on a server that dies are retried on another: with three servers, killing
//! one with SIGKILL mid-run still ends with `errors=0`. The middleware counters go to stderr.
//!
//! TLS (build with `--features tls`): `--tls-ca FILE` (PEM: the CA the servers' certificates
//! chain to) connects over TLS, checking each server's certificate for the host of its
//! `--connect` address (or `--tls-server-name NAME`); `--tls-cert FILE --tls-key FILE` adds this
//! client's certificate, for servers that require one (mutual TLS).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use examples::EchoMessage;
use hdrhistogram::Histogram;
use rpc_core::codec::{Compression, Message};
use rpc_core::middleware::{Retry, RetryLayer, Stats};
use rpc_core::{Channel, CodecId, Endpoint, Request, Response, Status};
use rpc_discovery::{BalanceConfig, BalancedChannel, Query, Registry, StaticRegistry};
use tower::{Layer, ServiceExt};

struct Args {
    connect: Vec<String>,
    idempotent: bool,
    requests: u64,
    concurrency: u64,
    payload: usize,
    threads: usize,
    codec: Option<CodecId>,
    lz4: Option<usize>,
    tls: Tls,
}

/// The TLS flags: all empty means plaintext.
#[derive(Clone, Default)]
struct Tls {
    ca: Option<String>,
    cert: Option<String>,
    key: Option<String>,
    server_name: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        connect: Vec::new(),
        idempotent: false,
        requests: 10_000,
        concurrency: 1,
        payload: 64,
        threads: 1,
        codec: None,
        lz4: None,
        tls: Tls::default(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        let num = |v: String| v.parse::<u64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--connect" => args.connect.push(value()?),
            "--idempotent" => args.idempotent = true,
            "--requests" => args.requests = num(value()?)?,
            "--concurrency" => args.concurrency = num(value()?)?.max(1),
            "--payload" => args.payload = num(value()?)? as usize,
            "--threads" => args.threads = num(value()?)? as usize,
            "--codec" => args.codec = Some(value()?.parse().map_err(|e| format!("--codec: {e}"))?),
            "--lz4" => args.lz4 = Some(num(value()?)? as usize),
            "--tls-ca" => args.tls.ca = Some(value()?),
            "--tls-cert" => args.tls.cert = Some(value()?),
            "--tls-key" => args.tls.key = Some(value()?),
            "--tls-server-name" => args.tls.server_name = Some(value()?),
            "-h" | "--help" => return Err("usage: echo_client --connect HOST:PORT [--connect HOST:PORT ...] [--idempotent] [--requests N] [--concurrency C] [--payload BYTES] [--threads N] [--codec protobuf|json|msgpack] [--lz4 MIN_BYTES] [--tls-ca FILE [--tls-cert FILE --tls-key FILE] [--tls-server-name NAME]]".into()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if args.connect.is_empty() {
        return Err("--connect HOST:PORT is required (once per server)".into());
    }
    let t = &args.tls;
    if t.cert.is_some() != t.key.is_some() {
        return Err("--tls-cert and --tls-key go together".into());
    }
    if t.ca.is_none() && (t.cert.is_some() || t.server_name.is_some()) {
        return Err("--tls-cert, --tls-key and --tls-server-name need --tls-ca".into());
    }
    if t.ca.is_some() && !cfg!(feature = "tls") {
        return Err("TLS needs the `tls` feature: cargo run --release --features tls --example echo_client -- ...".into());
    }
    Ok(args)
}

/// A payload that differs per call, so that a reply delivered to the wrong caller is caught: a
/// fixed pattern with the call's index stamped over its first bytes.
fn payload(template: &[u8], index: u64) -> Bytes {
    let mut b = BytesMut::from(template);
    let tag = index.to_be_bytes();
    let n = tag.len().min(b.len());
    b[..n].copy_from_slice(&tag[..n]);
    b.freeze()
}

struct Outcome {
    histogram: Histogram<u64>,
    errors: u64,
}

/// One server over one connection, or several balanced with failover retries.
#[derive(Clone)]
enum Client {
    Single(Channel),
    Balanced(Retry<BalancedChannel>),
}

impl Client {
    async fn call(&self, req: Request) -> Result<Response, Status> {
        match self {
            Client::Single(channel) => channel.unary(req).await,
            Client::Balanced(svc) => svc.clone().oneshot(req).await,
        }
    }
}

/// TLS over TCP to `addr` (`host:port`, or `tls://host:port`), as the TLS flags say.
#[cfg(feature = "tls")]
fn tls_endpoint(addr: &str, tls: &Tls) -> Result<Endpoint, String> {
    use rpc_core::transport::tcp::TcpConnector;
    use rpc_core::transport::tls::{ClientTlsConfig, TlsConnector};

    let hostport = addr.strip_prefix("tls://").unwrap_or(addr);
    let host = hostport
        .rsplit_once(':')
        .map(|(h, _)| h.trim_start_matches('[').trim_end_matches(']'))
        .ok_or_else(|| format!("{addr:?}: expected HOST:PORT"))?;
    let mut config = ClientTlsConfig::new();
    if let Some(ca) = &tls.ca {
        config = config.ca_pem_file(ca);
    }
    if let (Some(cert), Some(key)) = (&tls.cert, &tls.key) {
        config = config.identity_pem_files(cert, key);
    }
    let name = tls.server_name.as_deref().unwrap_or(host);
    TlsConnector::new(TcpConnector::from_host(hostport), name, config)
        .map(Endpoint::new)
        .map_err(|e| e.to_string())
}

#[cfg(not(feature = "tls"))]
fn tls_endpoint(_addr: &str, _tls: &Tls) -> Result<Endpoint, String> {
    Err("TLS needs the `tls` feature".into())
}

async fn connect(args: &Args, stats: &Arc<Stats>) -> Result<Client, String> {
    let concurrency = args.concurrency as usize;
    let lz4 = args.lz4;
    let tls = args.tls.clone();
    let endpoint = move |addr: &str| -> Result<Endpoint, String> {
        let mut e = match &tls.ca {
            None => Endpoint::from_uri(addr).map_err(|e| e.to_string())?,
            Some(_) => tls_endpoint(addr, &tls)?,
        };
        e = e.max_concurrent_calls(concurrency);
        if let Some(threshold) = lz4 {
            e = e.compression(Compression::Lz4, threshold);
        }
        Ok(e)
    };
    if let [only] = args.connect.as_slice() {
        if !args.idempotent {
            let channel = endpoint(only)?;
            return Ok(Client::Single(
                channel.connect().await.map_err(|e| e.to_string())?,
            ));
        }
    }
    let registry = StaticRegistry::new("demo.Echo", args.connect.iter().cloned());
    let watch = registry
        .watch(Query::new("demo.Echo"))
        .await
        .map_err(|e| e.to_string())?;
    let config = BalanceConfig::new()
        .endpoint(move |inst| endpoint(&inst.addr).map_err(Status::invalid_argument));
    let balanced = BalancedChannel::with_config(watch, config);
    Ok(Client::Balanced(
        RetryLayer::new().stats(stats.clone()).layer(balanced),
    ))
}

async fn run(args: Args) -> Result<(), String> {
    let stats = Stats::new();
    let client = connect(&args, &stats).await?;
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..args.concurrency.min(args.requests.max(1)) {
        let client = client.clone();
        let next = next.clone();
        let total = args.requests;
        let codec = args.codec;
        let idempotent = args.idempotent;
        let template: Vec<u8> = (0..args.payload).map(|i| (i % 251) as u8).collect();
        workers.push(tokio::spawn(async move {
            let mut out = Outcome {
                histogram: Histogram::new_with_bounds(1, 60_000_000, 3).expect("static bounds"),
                errors: 0,
            };
            let codecs = EchoMessage::codecs();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return out;
                }
                let body = payload(&template, i);
                let t0 = Instant::now();
                let result = match codec {
                    None => {
                        let req = Request::new("demo.Echo/Echo", body.clone())
                            .with_idempotent(idempotent);
                        client.call(req).await.map(|reply| *reply.body() == body)
                    }
                    Some(codec) => {
                        let msg = EchoMessage {
                            id: i,
                            payload: body,
                            note: String::new(),
                        };
                        match codecs.encode_to_bytes(codec, &msg) {
                            Err(e) => Err(Status::from(e)),
                            Ok(encoded) => {
                                let req = Request::new("demo.Echo/EchoMessage", encoded)
                                    .with_codec(codec)
                                    .with_idempotent(idempotent);
                                client.call(req).await.and_then(|reply| {
                                    codecs
                                        .decode(codec, reply.into_body())
                                        .map(|reply| reply == msg)
                                        .map_err(Status::from)
                                })
                            }
                        }
                    }
                };
                let us = t0.elapsed().as_micros() as u64;
                match result {
                    Ok(true) => {
                        let _ = out.histogram.record(us.max(1));
                    }
                    Ok(false) => {
                        out.errors += 1;
                        if out.errors <= 5 {
                            eprintln!("echo_client: call {i}: reply differs from request");
                        }
                    }
                    Err(status) => {
                        out.errors += 1;
                        if out.errors <= 5 {
                            eprintln!("echo_client: call {i}: {status}");
                        }
                    }
                }
            }
        }));
    }
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("static bounds");
    let mut errors = 0;
    for w in workers {
        let out = w.await.map_err(|e| e.to_string())?;
        histogram.add(&out.histogram).map_err(|e| e.to_string())?;
        errors += out.errors;
    }
    let secs = started.elapsed().as_secs_f64();
    if let Client::Balanced(_) = client {
        eprintln!("echo_client: middleware: {}", stats.snapshot());
    }
    let qps = if secs > 0.0 {
        args.requests as f64 / secs
    } else {
        0.0
    };
    println!(
        "requests={} errors={} qps={:.0} p50_us={} p99_us={} p999_us={}",
        args.requests,
        errors,
        qps,
        histogram.value_at_quantile(0.5),
        histogram.value_at_quantile(0.99),
        histogram.value_at_quantile(0.999),
    );
    Ok(())
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("echo_client: {e}");
            std::process::exit(2);
        }
    };
    let runtime = examples::runtime(args.threads);
    let result = runtime
        .map_err(|e| e.to_string())
        .and_then(|rt| rt.block_on(run(args)));
    if let Err(e) = result {
        eprintln!("echo_client: {e}");
        std::process::exit(1);
    }
}
