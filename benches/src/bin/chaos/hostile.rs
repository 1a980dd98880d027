//! Hostile clients beside the normal load: slowloris connections that trickle the preface and
//! never finish it, and slow readers that pipeline large requests and read nothing back.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use rpc_core::protocol::{encode_request, encode_settings, Settings, PREFACE};
use rpc_core::Metadata;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::server::METHOD;

/// What the hostile clients managed.
#[derive(Default)]
pub(crate) struct Hostile {
    /// Slowloris connections the servers closed.
    pub(crate) closed: AtomicU64,
    /// Request bytes the servers took from the slow readers.
    pub(crate) flooded: AtomicU64,
}

/// One slowloris connection to `addr`: a valid preface, SETTINGS and request trickled a byte every
/// 100 ms (so the handshake alone takes seconds, and the request longer), then the same again on
/// a new connection; reopened when the server closes it; until `stop`.
pub(crate) async fn slowloris(addr: SocketAddr, stop: Arc<AtomicBool>, seen: Arc<Hostile>) {
    let mut bytes = BytesMut::new();
    bytes.extend_from_slice(&PREFACE);
    encode_settings(&mut bytes, &Settings::protocol_default());
    encode_request(
        &mut bytes,
        1,
        0,
        METHOD.as_bytes(),
        0,
        0,
        &Metadata::new(),
        &[7; 64],
    );
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut s) = TcpStream::connect(addr).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        for byte in bytes.iter() {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            if s.write_all(&[*byte]).await.is_err() {
                seen.closed.fetch_add(1, Ordering::Relaxed);
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// One slow reader on `addr`: a valid handshake, then a 64 KiB echo request every 50 ms, and not a
/// byte of the answers read, until `stop`. (A client that floods as fast as the server reads is
/// `benches --bin memory`'s flood; this one is an ordinary client that stopped reading.)
pub(crate) async fn slow_reader(addr: SocketAddr, stop: Arc<AtomicBool>, seen: Arc<Hostile>) {
    let Ok(mut s) = TcpStream::connect(addr).await else {
        return;
    };
    let mut out = BytesMut::new();
    out.extend_from_slice(&PREFACE);
    encode_settings(&mut out, &Settings::protocol_default());
    if s.write_all(&out).await.is_err() {
        return;
    }
    let body = vec![7u8; 64 * 1024];
    let metadata = Metadata::new();
    let mut call_id: u32 = 0;
    while !stop.load(Ordering::Relaxed) {
        out.clear();
        call_id = call_id.wrapping_add(1).max(1);
        encode_request(
            &mut out,
            call_id,
            0,
            METHOD.as_bytes(),
            0,
            0,
            &metadata,
            &body,
        );
        // A server that stops reading blocks this write; look at `stop` every 100 ms.
        match tokio::time::timeout(Duration::from_millis(100), s.write_all(&out)).await {
            Ok(Ok(())) => {
                seen.flooded.fetch_add(out.len() as u64, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok(Err(_)) => return,
            Err(_) => {
                // Partly written: the stream is mid-frame; keep it open, writing nothing more.
                while !stop.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                return;
            }
        }
    }
}
