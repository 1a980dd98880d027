//! An echo server: `demo.Echo/Echo` returns the request body unchanged.
//!
//! ```text
//! cargo run --release --example echo_server -- --listen 127.0.0.1:50051 [--threads N]
//! ```
//!
//! `demo.Echo/EchoMessage` echoes a structured [`examples::EchoMessage`], decoded and re-encoded in
//! the codec of the request. `--codec protobuf|json|msgpack` limits the server to that codec (plus
//! raw bytes for `Echo`); by default it accepts all. `--lz4 MIN_BYTES` compresses responses of at
//! least that size for clients that read LZ4.
//!
//! `--threads 1` (the default) runs on a current-thread tokio runtime; more uses a multi-thread
//! runtime with that many workers. SIGINT or SIGTERM shuts the server down gracefully.
//!
//! TLS (build with `--features tls`): `--tls-cert FILE --tls-key FILE` (PEM: the certificate
//! chain and its key) serves TLS only; `--tls-client-ca FILE` also requires every client to
//! present a certificate from that CA (mutual TLS). The files are checked every 5 s and reloaded
//! when they change, for new connections.

use std::net::SocketAddr;

use examples::EchoMessage;
use rpc_core::codec::Compression;
use rpc_core::server::RawService;
use rpc_core::{CodecId, CodecSet, Response, Server};

struct Args {
    listen: SocketAddr,
    threads: usize,
    codec: Option<CodecId>,
    lz4: Option<usize>,
    // Read only with the feature `tls` (without it, `--tls-cert` is refused while parsing).
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    tls_cert: Option<String>,
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    tls_key: Option<String>,
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    tls_client_ca: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut listen = None;
    let mut threads = 1;
    let mut codec = None;
    let mut lz4 = None;
    let (mut tls_cert, mut tls_key, mut tls_client_ca) = (None, None, None);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--listen" => listen = Some(value()?.parse().map_err(|e| format!("--listen: {e}"))?),
            "--threads" => threads = value()?.parse().map_err(|e| format!("--threads: {e}"))?,
            "--codec" => codec = Some(value()?.parse().map_err(|e| format!("--codec: {e}"))?),
            "--lz4" => lz4 = Some(value()?.parse().map_err(|e| format!("--lz4: {e}"))?),
            "--tls-cert" => tls_cert = Some(value()?),
            "--tls-key" => tls_key = Some(value()?),
            "--tls-client-ca" => tls_client_ca = Some(value()?),
            "-h" | "--help" => {
                return Err("usage: echo_server --listen HOST:PORT [--threads N] [--codec protobuf|json|msgpack] [--lz4 MIN_BYTES] [--tls-cert FILE --tls-key FILE [--tls-client-ca FILE]]".into())
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if tls_cert.is_some() != tls_key.is_some() {
        return Err("--tls-cert and --tls-key go together".into());
    }
    if tls_client_ca.is_some() && tls_cert.is_none() {
        return Err("--tls-client-ca needs --tls-cert and --tls-key".into());
    }
    if tls_cert.is_some() && !cfg!(feature = "tls") {
        return Err("TLS needs the `tls` feature: cargo run --release --features tls --example echo_server -- ...".into());
    }
    Ok(Args {
        listen: listen.ok_or("--listen HOST:PORT is required")?,
        threads,
        codec,
        lz4,
        tls_cert,
        tls_key,
        tls_client_ca,
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
    let echo = RawService::new("demo.Echo")
        .method(
            "Echo",
            |req| async move { Ok(Response::new(req.into_body())) },
        )
        .typed(
            "EchoMessage",
            |msg: EchoMessage, _ctx| async move { Ok(msg) },
        );
    let codecs = match args.codec {
        Some(codec) => CodecSet::EMPTY.with(CodecId::RAW).with(codec),
        None => CodecSet::ALL,
    };
    let mut server = Server::builder();
    if let Some(threshold) = args.lz4 {
        server = server.compression(Compression::Lz4, threshold);
    }
    let server = server
        .accept_codecs(codecs)
        .max_concurrent_calls_per_connection(10_000)
        .add_service(echo);
    #[cfg(feature = "tls")]
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        use rpc_core::transport::tls::{ServerTlsConfig, TlsAcceptor};
        let mut config = ServerTlsConfig::from_pem_files(cert, key);
        if let Some(ca) = &args.tls_client_ca {
            config = config.client_ca_pem_file(ca);
        }
        let acceptor = TlsAcceptor::new(config).map_err(std::io::Error::other)?;
        let _watch = acceptor.watch(std::time::Duration::from_secs(5));
        eprintln!(
            "echo_server: TLS{}",
            if args.tls_client_ca.is_some() {
                ", client certificates required"
            } else {
                ""
            }
        );
        return server
            .serve_with_shutdown(acceptor.listener(listener), shutdown_signal())
            .await;
    }
    server
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
