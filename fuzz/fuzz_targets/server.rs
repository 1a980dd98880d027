//! A live server connection fed arbitrary bytes over the in-memory transport: the handshake
//! (preface, SETTINGS), then any sequence of frames, then the client's end of stream. The server
//! must never panic (a panic in any of its tasks aborts the process here), must end the
//! connection within 5 s of the client's end of stream, and everything it writes must be a valid
//! preface followed by well-formed frames.
//!
//! The first byte's low bit set: a valid preface and SETTINGS go first, so that the fuzzer
//! spends its time past the handshake; the rest of the input follows as it is.

#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use rpc_core::protocol::{self, FrameDecoder, Settings};
use rpc_core::server::RawService;
use rpc_core::transport::memory::{MemoryConnector, MemoryListener};
use rpc_core::transport::Connector;
use rpc_core::{Response, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::Runtime;

const NAME: &str = "fuzz-server";

/// A runtime whose worker runs the server, started once per process.
fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime");
        rt.block_on(async {
            let echo = RawService::new("fuzz.Echo")
                .method(
                    "Echo",
                    |req| async move { Ok(Response::new(req.into_body())) },
                )
                .method("Sleep", |req| async move {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    Ok(Response::new(req.into_body()))
                });
            let listener = MemoryListener::bind(NAME).expect("the listener");
            let server = Server::builder()
                .add_service(echo)
                .handshake_timeout(Duration::from_secs(1));
            tokio::spawn(server.serve(listener));
        });
        rt
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut input = BytesMut::new();
    if mode & 1 == 1 {
        input.extend_from_slice(&protocol::PREFACE);
        protocol::encode_settings(&mut input, &Settings::default());
    }
    input.extend_from_slice(rest);
    let output = runtime().block_on(async move {
        let (mut io, _) = MemoryConnector::new(NAME)
            .connect()
            .await
            .expect("the in-memory listener is there");
        // The server may close early (a protocol error): writing then fails, which is fine.
        let _ = io.write_all(&input).await;
        let _ = io.shutdown().await;
        let mut out = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), io.read_to_end(&mut out)).await;
        assert!(
            read.is_ok(),
            "the connection was still open 5 s after the client's end of stream"
        );
        Bytes::from(out)
    });
    if output.is_empty() {
        return;
    }
    let preface = output
        .first_chunk::<{ protocol::PREFACE_LEN }>()
        .expect("the server writes its whole preface");
    protocol::check_preface(preface).expect("the server's preface is valid");
    // The server may announce large limits; read its frames with the largest.
    let decoder = FrameDecoder::new(&Settings {
        max_frame_size: u32::MAX >> 8,
        max_metadata_size: u32::MAX >> 8,
        ..Settings::default()
    });
    let mut frames = BytesMut::from(&output[protocol::PREFACE_LEN..]);
    loop {
        match decoder.decode(&mut frames) {
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(e) => panic!("the server wrote a frame it cannot read back: {e}"),
        }
    }
    assert!(frames.is_empty(), "the server's output ends mid-frame");
});
