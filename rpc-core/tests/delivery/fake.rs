//! A fake server over the in-memory transport that speaks raw frames: the test decides what it
//! reads, when, and what it answers.

use std::future::poll_fn;

use bytes::{Buf, BufMut, BytesMut};
use rpc_core::protocol::{
    encode_goaway, encode_pong, encode_response, encode_settings, Frame, FrameDecoder, GoAwayCode,
    RequestFrame, Settings, MAGIC, VERSION_MAJOR, VERSION_MINOR,
};
use rpc_core::transport::{BoxIo, Listener};
use rpc_core::Metadata;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

/// The server's end of one connection.
pub(crate) struct FakeServer {
    io: BoxIo,
    rbuf: BytesMut,
    decoder: FrameDecoder,
}

impl FakeServer {
    /// Accepts the next connection on `listener` and does the server's half of the handshake
    /// (with the protocol's default settings). After it the fake reads nothing until told to.
    pub(crate) async fn accept(listener: &mut MemoryListener) -> FakeServer {
        let (io, _) = tokio::time::timeout(POLL_LIMIT, poll_fn(|cx| listener.poll_accept(cx)))
            .await
            .expect("no client connected")
            .expect("accept");
        let mut fake = FakeServer {
            io,
            rbuf: BytesMut::with_capacity(64 * 1024),
            decoder: FrameDecoder::new(&Settings::protocol_default()),
        };
        while fake.rbuf.len() < 8 {
            assert!(fake.read_more().await, "client closed before its preface");
        }
        assert_eq!(&fake.rbuf[..4], &MAGIC, "client preface");
        fake.rbuf.advance(8);
        match fake.next_frame().await {
            Some(Frame::Settings(_)) => {}
            other => panic!("expected the client's SETTINGS, got {other:?}"),
        }
        let mut out = BytesMut::new();
        out.put_slice(&MAGIC);
        out.put_slice(&[VERSION_MAJOR, VERSION_MINOR, 0, 0]);
        encode_settings(&mut out, &Settings::protocol_default());
        fake.send(&out).await;
        fake
    }

    async fn read_more(&mut self) -> bool {
        self.rbuf.reserve(64 * 1024);
        let read = tokio::time::timeout(POLL_LIMIT, self.io.read_buf(&mut self.rbuf)).await;
        read.expect("the client sent nothing more").expect("read") > 0
    }

    /// The next frame, or `None` at end of stream.
    pub(crate) async fn next_frame(&mut self) -> Option<Frame> {
        loop {
            if let Some(frame) = self.decoder.decode(&mut self.rbuf).expect("a valid frame") {
                return Some(frame);
            }
            if !self.read_more().await {
                return None;
            }
        }
    }

    pub(crate) async fn send(&mut self, bytes: &[u8]) {
        self.io.write_all(bytes).await.expect("write");
    }

    /// Reads until `n` REQUEST frames arrived and returns them; PINGs are left unanswered.
    pub(crate) async fn requests(&mut self, n: usize) -> Vec<RequestFrame> {
        let mut requests = Vec::new();
        while requests.len() < n {
            match self.next_frame().await {
                Some(Frame::Request(r)) => requests.push(r),
                Some(Frame::Ping(_)) => {}
                other => panic!("expected a REQUEST or PING, got {other:?}"),
            }
        }
        requests
    }

    /// Reads until the next PING and returns the REQUESTs before it and the ping's value.
    pub(crate) async fn requests_until_ping(&mut self) -> (Vec<RequestFrame>, u64) {
        let mut requests = Vec::new();
        loop {
            match self.next_frame().await {
                Some(Frame::Request(r)) => requests.push(r),
                Some(Frame::Ping(v)) => return (requests, v),
                other => panic!("expected a REQUEST or PING, got {other:?}"),
            }
        }
    }

    /// Reads until end of stream, answering every PING at once as a server does (one-way calls
    /// are then confirmed), and returns how many REQUEST frames came.
    pub(crate) async fn serve(mut self) -> usize {
        let mut requests = 0;
        while let Some(frame) = self.next_frame().await {
            match frame {
                Frame::Request(_) => requests += 1,
                Frame::Ping(v) => self.pong(v).await,
                other => panic!("expected a REQUEST or PING, got {other:?}"),
            }
        }
        requests
    }

    pub(crate) async fn pong(&mut self, value: u64) {
        let mut out = BytesMut::new();
        encode_pong(&mut out, value);
        self.send(&out).await;
    }

    pub(crate) async fn respond_ok(&mut self, call_id: u32) {
        let mut out = BytesMut::new();
        encode_response(&mut out, call_id, 0, 0, b"", &Metadata::default(), b"done");
        self.send(&out).await;
    }

    pub(crate) async fn goaway(&mut self, last_call_id: u32) {
        let mut out = BytesMut::new();
        encode_goaway(&mut out, last_call_id, GoAwayCode::NoError, "shutting down");
        self.send(&out).await;
    }
}
