//! A backend that still accepts connections but never answers is ejected by every strategy
//! within a bounded number of failed calls: calls that end in `DeadlineExceeded` count toward
//! ejection, and keepalive (on by default) closes a connection that went silent, failing the
//! calls without deadlines it carried.
//!
//! In-memory transport, one current-thread runtime, paused clock.

#![allow(missing_docs)]

mod support;

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rpc_core::server::RawService;
use rpc_core::transport::memory::{MemoryConnector, MemoryListener};
use rpc_core::transport::{BoxIo, Connector, PeerAddr};
use rpc_core::{BoxFuture, Code, Endpoint, Request, Response, Server};
use rpc_discovery::{
    BalanceConfig, BalancedChannel, EndpointSet, Instance, Strategy, Watch, HASH_KEY,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

const SVC: &str = "test.Who";

/// Failures in a row that eject an endpoint (the default).
const EJECT_AFTER: usize = 5;

/// Serves `test.Who/Name` on the memory address `name`, answering with the name, or never when
/// `frozen`; counts the calls it receives.
fn serve(name: &str, frozen: bool) -> Arc<AtomicUsize> {
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = RawService::new(SVC).method("Name", {
        let (name, calls) = (name.to_owned(), calls.clone());
        move |_req| {
            calls.fetch_add(1, Ordering::Relaxed);
            let name = name.clone();
            async move {
                if frozen {
                    std::future::pending::<()>().await;
                }
                Ok(Response::new(name))
            }
        }
    });
    let listener = MemoryListener::bind(name).unwrap();
    tokio::spawn(Server::builder().add_service(svc).serve(listener));
    calls
}

fn set_of(names: &[String]) -> Watch {
    Watch::fixed(EndpointSet::new(
        names
            .iter()
            .map(|n| Instance::new(SVC, format!("memory://{n}"))),
    ))
}

#[tokio::test(start_paused = true)]
async fn every_strategy_stops_calling_a_backend_whose_handler_never_returns() {
    let strategies = [
        Strategy::RoundRobin,
        Strategy::LeastOutstanding,
        Strategy::WeightedRandom,
        Strategy::ConsistentHash,
        Strategy::P2cPeakEwma,
    ];
    for (k, strategy) in strategies.into_iter().enumerate() {
        let names: Vec<String> = ["a", "b", "frozen"]
            .iter()
            .map(|n| format!("frozen-handler-{k}-{n}"))
            .collect();
        serve(&names[0], false);
        serve(&names[1], false);
        let frozen = serve(&names[2], true);
        let ch =
            BalancedChannel::with_config(set_of(&names), BalanceConfig::new().strategy(strategy));
        // 300 calls with a 100 ms deadline, one every 10 ms: about 3.5 s, long enough for the
        // frozen backend's first ejections (1 s, then 2 s) to end and be probed.
        let start = tokio::time::Instant::now();
        let mut failed = 0;
        for i in 0..300 {
            let mut req =
                Request::new("test.Who/Name", "").with_timeout(Duration::from_millis(100));
            req.metadata_mut().insert(HASH_KEY, i.to_string());
            if let Err(e) = ch.unary(req).await {
                assert_eq!(e.code(), Code::DeadlineExceeded, "{strategy:?}: {e}");
                failed += 1;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let sent = frozen.load(Ordering::Relaxed);
        println!(
            "{strategy:?}: {sent} of 300 calls went to the frozen backend over {:?}",
            start.elapsed()
        );
        assert_eq!(failed, sent, "{strategy:?}: only its calls fail");
        // The calls that eject it, and one probe per ejection that ended (at most three in
        // 3.5 s: after 1 s, 2 s and 4 s).
        assert!(
            sent <= EJECT_AFTER + 3,
            "{strategy:?}: {sent} calls went to the frozen backend"
        );
        // Ejected; P2C may not even need to: the first unanswered call's latency is believed
        // at once, and two random picks then always prefer a live endpoint.
        let ejected = ch
            .endpoints()
            .iter()
            .any(|e| e.ejected && e.addr.ends_with("frozen"));
        assert!(ejected || strategy == Strategy::P2cPeakEwma, "{strategy:?}");
    }
}

/// A memory connection that can be frozen: then it reads nothing more and swallows what is
/// written, as a peer that stopped (or a network that black-holes its packets) looks.
struct FreezableIo {
    inner: BoxIo,
    frozen: Arc<AtomicBool>,
}

impl AsyncRead for FreezableIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.frozen.load(Ordering::Relaxed) {
            return Poll::Pending;
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for FreezableIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.frozen.load(Ordering::Relaxed) {
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.frozen.load(Ordering::Relaxed) {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.frozen.load(Ordering::Relaxed) {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Connects over memory, handing out connections that freeze with `frozen`.
#[derive(Debug)]
struct Freezable {
    inner: MemoryConnector,
    frozen: Arc<AtomicBool>,
}

impl Connector for Freezable {
    fn connect(&self) -> BoxFuture<'static, io::Result<(BoxIo, PeerAddr)>> {
        let connect = self.inner.connect();
        let frozen = self.frozen.clone();
        Box::pin(async move {
            let (inner, peer) = connect.await?;
            Ok((Box::new(FreezableIo { inner, frozen }) as BoxIo, peer))
        })
    }

    fn target(&self) -> String {
        self.inner.target()
    }
}

#[tokio::test(start_paused = true)]
async fn a_backend_frozen_under_its_connection_loses_its_calls_to_keepalive_and_is_ejected() {
    let names: Vec<String> = ["a", "b", "c"]
        .iter()
        .map(|n| format!("frozen-conn-{n}"))
        .collect();
    for n in &names {
        serve(n, false);
    }
    let freeze = Arc::new(AtomicBool::new(false));
    // Endpoints of our own, without keepalive: the channel's default applies.
    let config = BalanceConfig::new()
        .strategy(Strategy::RoundRobin)
        .endpoint({
            let freeze = freeze.clone();
            move |i: &Instance| {
                let name = i.addr.trim_start_matches("memory://");
                let frozen = if name.ends_with("-c") {
                    freeze.clone()
                } else {
                    Arc::new(AtomicBool::new(false))
                };
                Ok(Endpoint::new(Freezable {
                    inner: MemoryConnector::new(name),
                    frozen,
                })
                .connect_timeout(Duration::from_secs(1)))
            }
        });
    let ch = BalancedChannel::with_config(set_of(&names), config);
    let call = || Request::new("test.Who/Name", "");
    for _ in 0..30 {
        ch.unary(call()).await.unwrap();
    }

    // c freezes under its open connection; calls without deadlines keep coming, one every
    // 100 ms for 6 s.
    freeze.store(true, Ordering::Relaxed);
    let frozen_at = tokio::time::Instant::now();
    let mut calls = Vec::new();
    for _ in 0..60 {
        let ch = ch.clone();
        calls.push(tokio::spawn(async move {
            let result = ch.unary(call()).await;
            (result, tokio::time::Instant::now())
        }));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Every call ends: those c held fail once keepalive gives up on its silent connection
    // (a PING after 10 to 20 s of silence, 5 s to answer it).
    let mut lost = 0;
    for c in calls {
        let (result, at) = tokio::time::timeout(Duration::from_secs(60), c)
            .await
            .expect("a call to the frozen backend never ended")
            .unwrap();
        if let Err(e) = result {
            assert_eq!(e.code(), Code::Unavailable, "{e}");
            // At worst two keepalive intervals and its timeout (and a timer tick).
            assert!(
                at - frozen_at <= Duration::from_secs(26),
                "{:?}",
                at - frozen_at
            );
            lost += 1;
        }
    }
    println!(
        "{lost} of 60 calls were lost with the frozen connection, {:?} after the freeze",
        frozen_at.elapsed()
    );
    // A third of the calls, those round robin sent to c before its connection was declared
    // dead; they eject it.
    assert_eq!(lost, 20);
    assert!(ch
        .endpoints()
        .iter()
        .any(|e| e.ejected && e.addr.ends_with("-c")));
    for _ in 0..30 {
        let name = String::from_utf8(ch.unary(call()).await.unwrap().body().to_vec()).unwrap();
        assert!(!name.ends_with("-c"), "{name}");
    }
}
