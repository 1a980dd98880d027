//! The client's [`Role`] in the shared connection driver: writes what callers queued (with a PING
//! after one-way requests), routes responses to waiting callers, tells one-way callers when the
//! server read their call, answers pings and keeps the connection alive.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::BytesMut;
use tokio::sync::oneshot;

use super::one_way::{acked_by_pong, Waiter};
use super::{ClientConn, Phase, Reply};
use crate::conn::{FrameIo, Keepalive, Role, Take, IDLE_BUFFER};
use crate::message::Response;
use crate::protocol::{
    self, encode_ping, encode_pong, Frame, GoAwayCode, MessageFrame, ProtocolError, ResponseFrame,
};
use crate::status::{Code, Delivery, Status};

/// The client's side of the connection driver.
pub(crate) struct ClientRole {
    conn: Arc<ClientConn>,
    /// Stream messages of the current read, handed to their readers under one lock (before the
    /// responses of the same read: a stream's trailer follows its messages).
    messages: Vec<MessageFrame>,
    responses: Vec<ResponseFrame>,
    completions: Vec<(oneshot::Sender<Reply>, ResponseFrame)>,
    /// The highest call id a PONG in the current read proved the server read.
    pong_upto: u32,
    /// One-way calls the server read, to be told outside the lock.
    acked: Vec<Waiter>,
    /// Callers waiting for room in the write queue, to be woken outside the lock.
    woken: Vec<Waker>,
    control: BytesMut,
    /// The largest body a compressed response may expand to.
    max_body: usize,
    keepalive: Option<Keepalive>,
}

impl ClientRole {
    pub(crate) fn new(
        conn: Arc<ClientConn>,
        max_body: usize,
        keepalive: Option<Keepalive>,
    ) -> ClientRole {
        ClientRole {
            conn,
            messages: Vec::new(),
            responses: Vec::new(),
            completions: Vec::new(),
            pong_upto: 0,
            acked: Vec::new(),
            woken: Vec::new(),
            control: BytesMut::new(),
            max_body,
            keepalive,
        }
    }

    fn handle_frames(&mut self, io: &mut FrameIo) -> Result<(), ProtocolError> {
        if let Err(e) = self.read_frames(io) {
            // The stream messages that arrived before the bad frame still reach their readers,
            // ahead of the connection's error; the read's responses and PONGs settle nothing
            // (the connection's close fails the calls still pending).
            self.responses.clear();
            self.pong_upto = 0;
            let _ = self.complete();
            return Err(e);
        }
        self.complete()
    }

    fn read_frames(&mut self, io: &mut FrameIo) -> Result<(), ProtocolError> {
        while let Some(frame) = io.next_frame()? {
            match frame {
                Frame::Response(r) => self.responses.push(r),
                Frame::Ping(v) => encode_pong(&mut self.control, v),
                Frame::Pong(v) => {
                    if let Some(upto) = acked_by_pong(v) {
                        self.pong_upto = self.pong_upto.max(upto);
                    }
                }
                Frame::GoAway(g) => {
                    self.complete()?;
                    self.goaway(g.last_call_id, g.code, &g.message)?;
                }
                Frame::Settings(_) => return Err(ProtocolError::Malformed("SETTINGS sent twice")),
                Frame::Request(_) | Frame::Cancel { .. } => {
                    return Err(ProtocolError::Malformed(
                        "a server sent a REQUEST or CANCEL frame",
                    ))
                }
                Frame::Message(m) => self.messages.push(m),
                Frame::WindowUpdate { call_id, increment } => {
                    self.on_window_update(call_id, increment)?
                }
                Frame::HalfClose { .. } => {
                    return Err(ProtocolError::Malformed("a server sent a HALF_CLOSE frame"))
                }
            }
        }
        Ok(())
    }

    /// The messages of server streams this read brought: queued for their readers (those of a
    /// call the caller gave up on are dropped, their credit returned). Runs under the lock that
    /// `st` holds; the readers and the writer to wake are added to `woken`.
    fn deliver_messages(
        messages: &mut Vec<MessageFrame>,
        st: &mut super::State,
        woken: &mut Vec<Waker>,
    ) -> Result<(), ProtocolError> {
        let super::State {
            streams,
            queue,
            next_id,
            ..
        } = st;
        let before = queue.len();
        let mut outcome = Ok(());
        for m in messages.drain(..) {
            if m.call_id >= *next_id {
                outcome = Err(ProtocolError::Malformed(
                    "a MESSAGE for a call never opened",
                ));
                break;
            }
            match streams.on_message(m, queue.buf()) {
                Ok(reader) => woken.extend(reader),
                Err(e) => {
                    outcome = Err(e);
                    break;
                }
            }
        }
        // What a failed frame left: the connection closes, failing its calls.
        messages.clear();
        if queue.len() != before {
            woken.extend(queue.writer());
        }
        outcome
    }

    /// Credit for the streams this side sends.
    fn on_window_update(&mut self, id: u32, increment: u32) -> Result<(), ProtocolError> {
        let mut st = self.conn.lock();
        if id >= st.next_id {
            return Err(ProtocolError::Malformed(
                "a WINDOW_UPDATE for a call never opened",
            ));
        }
        st.streams
            .on_window_update(id, increment, &mut self.woken)?;
        drop(st);
        for w in self.woken.drain(..) {
            w.wake();
        }
        Ok(())
    }

    /// Hands the read's stream messages to their readers, then its responses to their callers,
    /// and tells the one-way calls the server read that they are done, taking the lock once.
    ///
    /// # Errors
    /// A connection error: the trailer of a server stream with a body (`docs/protocol.md` §6).
    fn complete(&mut self) -> Result<(), ProtocolError> {
        if self.responses.is_empty() && self.pong_upto == 0 && self.messages.is_empty() {
            return Ok(());
        }
        let mut trailer_with_body = false;
        let delivered;
        {
            let mut st = self.conn.lock();
            delivered = Self::deliver_messages(&mut self.messages, &mut st, &mut self.woken);
            if delivered.is_err() {
                // The connection fails: its close fails the calls still pending.
                self.responses.clear();
                self.pong_upto = 0;
            }
            // A RESPONSE to call `n` proves the server read every request before it, before any
            // go-away (it discards the requests it reads after one without answering).
            let read_upto = self
                .responses
                .iter()
                .map(|r| r.call_id.saturating_sub(1))
                .fold(std::mem::take(&mut self.pong_upto), u32::max);
            for r in self.responses.drain(..) {
                if !r.body.is_empty() && st.streams.receives(r.call_id) {
                    // The connection fails: its close fails the calls still pending.
                    trailer_with_body = true;
                    break;
                }
                // Unknown ids are calls the caller already gave up on.
                if let Some(tx) = st.pending.remove(&r.call_id) {
                    // The server answered: a request stream it no longer reads ends here.
                    st.streams.end_outbound(r.call_id, &mut self.woken);
                    self.completions.push((tx, r));
                }
            }
            st.one_way.take_upto(read_upto, &mut self.acked);
        }
        for w in self.woken.drain(..) {
            w.wake();
        }
        for (tx, r) in self.completions.drain(..) {
            let _ = tx.send(reply_from_frame(r, self.max_body));
        }
        for tx in self.acked.drain(..) {
            let _ = tx.send(Ok(Response::default()));
        }
        delivered?;
        if trailer_with_body {
            self.responses.clear();
            return Err(ProtocolError::Malformed(
                "the trailer of a server stream carried a body",
            ));
        }
        Ok(())
    }

    fn goaway(&mut self, last: u32, code: GoAwayCode, message: &[u8]) -> Result<(), ProtocolError> {
        let message = String::from_utf8_lossy(message).into_owned();
        tracing::debug!(peer = %self.conn.peer, last_call_id = last, ?code, %message, "server sent go-away");
        let mut unprocessed_one_way = Vec::new();
        let unprocessed: Vec<_> = {
            let mut st = self.conn.lock();
            if matches!(st.phase, Phase::Open) {
                st.phase = Phase::Draining;
            }
            self.conn.usable.store(false, Ordering::Release);
            std::mem::swap(&mut st.room_waiters, &mut self.woken);
            st.one_way.take_above(last, &mut unprocessed_one_way);
            if code == GoAwayCode::NoError {
                // The server processes every call up to `last`: these are taken.
                st.one_way.take_upto(last, &mut self.acked);
            }
            let ids: Vec<u32> = st.pending.keys().copied().filter(|&id| id > last).collect();
            // Their streams end too: the server reads none of it, and returns no credit.
            let super::State { streams, queue, .. } = &mut *st;
            for &id in &ids {
                streams.close(id, queue.buf(), &mut self.woken);
            }
            ids.into_iter()
                .filter_map(|id| st.pending.remove(&id))
                .collect()
        };
        for w in self.woken.drain(..) {
            w.wake();
        }
        for tx in self.acked.drain(..) {
            let _ = tx.send(Ok(Response::default()));
        }
        for tx in unprocessed.into_iter().chain(unprocessed_one_way) {
            let _ = tx.send(Err(Status::unavailable(format!(
                "server is going away ({message}); the call was not processed"
            ))
            .with_delivery(Delivery::Unprocessed)));
        }
        if code != GoAwayCode::NoError {
            return Err(ProtocolError::PeerGoAway { code, message });
        }
        Ok(())
    }

    /// The transport failed (a write to a server that closed, say): handles what the server sent
    /// before that and is still readable, without waiting, so that its go-away, responses and
    /// PONGs still settle the calls they concern (rather than all failing as maybe processed).
    fn read_what_arrived(&mut self, io: &mut FrameIo, cx: &mut Context<'_>) {
        // Bounded: the transport buffers a limited amount; a peer still sending is not waited for.
        for _ in 0..64 {
            if !matches!(io.poll_fill(cx), Poll::Ready(Ok(true))) {
                break;
            }
        }
        if let Err(e) = self.handle_frames(io) {
            tracing::debug!(peer = %self.conn.peer, error = %e, "after the connection failed");
        }
    }
}

impl Role for ClientRole {
    fn poll_signals(
        &mut self,
        _io: &mut FrameIo,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), ProtocolError>> {
        if let Some(ka) = self.keepalive.as_mut() {
            match ka.poll(cx) {
                Ok(Some(value)) => encode_ping(&mut self.control, value),
                Ok(None) => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        Poll::Pending
    }

    fn take_out(&mut self, io: &mut FrameIo, cx: &mut Context<'_>) -> bool {
        let conn = &*self.conn;
        let mut st = conn.lock();
        if !self.control.is_empty() {
            st.queue.buf().extend_from_slice(&self.control);
            self.control.clear();
        }
        if st.queue.take_into(io, cx) == Take::Taken {
            // Streams that waited for room in the queue go on.
            st.streams.on_drained(&mut self.woken);
            st.taken_upto = st.appended_upto;
            let taken = st.taken_upto;
            if let Some(value) = st.one_way.ping_after(taken) {
                // Its PONG tells the one-way callers in this batch that the server read them.
                encode_ping(io.wbuf(), value);
            }
        }
        st.writing = io.write_pending();
        if conn.full.load(Ordering::Relaxed) && !conn.over_limit(&st) {
            conn.full.store(false, Ordering::Release);
            std::mem::swap(&mut st.room_waiters, &mut self.woken);
        }
        // Draining with no call left and nothing queued: the connection is done.
        let done = matches!(st.phase, Phase::Draining)
            && st.pending.is_empty()
            && st.one_way.is_empty()
            && st.queue.is_empty();
        drop(st);
        for w in self.woken.drain(..) {
            w.wake();
        }
        done
    }

    /// Gives back buffers over [`IDLE_BUFFER`] once no call is waiting and nothing is queued, so
    /// that an idle connection costs little after one large call. The lock is taken only when
    /// the buffers are large, not on every wake-up.
    fn parked(&mut self, io: &mut FrameIo) {
        if io.buffer_bytes() <= 2 * IDLE_BUFFER || io.write_pending() != 0 {
            return;
        }
        let mut st = self.conn.lock();
        if st.pending.is_empty() && st.one_way.is_empty() && st.queue.is_empty() {
            io.shrink_idle();
            st.queue.shrink_idle();
        }
    }

    fn wants_read(&self, _io: &FrameIo) -> bool {
        true
    }

    fn on_frames(&mut self, io: &mut FrameIo, _cx: &mut Context<'_>) -> Result<(), ProtocolError> {
        if let Some(ka) = self.keepalive.as_mut() {
            ka.heard();
        }
        self.handle_frames(io)
    }

    fn on_eof(&mut self) -> Result<(), ProtocolError> {
        Err(ProtocolError::Io(std::io::ErrorKind::UnexpectedEof.into()))
    }

    fn finish(
        &mut self,
        io: &mut FrameIo,
        cx: &mut Context<'_>,
        result: Result<(), ProtocolError>,
    ) {
        let e = match result {
            Ok(()) => return self.conn.close(Status::unavailable("connection closed")),
            Err(e) => e,
        };
        if matches!(e, ProtocolError::Io(_)) {
            self.read_what_arrived(io, cx);
        }
        let peer = &self.conn.peer;
        match &e {
            ProtocolError::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
                tracing::debug!(%peer, "server closed the connection");
            }
            _ => tracing::warn!(%peer, error = %e, "connection failed"),
        }
        self.conn.close(Status::unavailable(format!(
            "connection to {peer} lost: {e}"
        )));
    }
}

fn reply_from_frame(r: ResponseFrame, max_body: usize) -> Reply {
    let code = Code::from_u8(r.code);
    if code == Code::Ok {
        let body = if r.flags & protocol::flags::COMPRESSED != 0 {
            rpc_codec::decompress(&r.body, max_body).map_err(|e| {
                tracing::warn!(call_id = r.call_id, error = %e, "undecodable compressed response");
                Status::internal(format!("response body could not be decompressed: {e}"))
            })?
        } else {
            r.body
        };
        Ok(Response::with_metadata(body, r.metadata))
    } else {
        let mut metadata = r.metadata;
        let delivery = if metadata.remove(protocol::NOT_PROCESSED_KEY).is_some() {
            Delivery::Unprocessed
        } else {
            Delivery::Sent
        };
        Err(
            Status::new(code, String::from_utf8_lossy(&r.message).into_owned())
                .with_metadata(metadata)
                .with_delivery(delivery),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{FrameDecoder, Settings};
    use crate::transport::PeerAddr;

    fn role_and_io() -> (ClientRole, FrameIo) {
        let settings = Settings::protocol_default();
        let peer = PeerAddr::Memory("idle".into(), 1);
        let conn = ClientConn::new(peer, &settings, settings, None, 1 << 20);
        let (near, _far) = tokio::io::duplex(64);
        let io = FrameIo::new(
            Box::new(near),
            BytesMut::new(),
            FrameDecoder::new(&settings),
        );
        (ClientRole::new(conn, 1 << 20, None), io)
    }

    #[tokio::test]
    async fn an_idle_connection_gives_back_its_large_buffers() {
        let (mut role, mut io) = role_and_io();
        io.wbuf().reserve(256 * 1024);
        assert!(io.buffer_bytes() >= 256 * 1024);
        role.parked(&mut io);
        assert!(
            io.buffer_bytes() <= 2 * IDLE_BUFFER,
            "kept {} bytes",
            io.buffer_bytes()
        );
    }

    #[tokio::test]
    async fn a_connection_with_a_call_waiting_keeps_its_buffers() {
        let (mut role, mut io) = role_and_io();
        let request = crate::message::Request::new("demo.Echo/Echo", "x");
        let _started = role.conn.start(&request, 0, None).expect("queued");
        io.wbuf().reserve(256 * 1024);
        role.parked(&mut io);
        assert!(
            io.buffer_bytes() >= 256 * 1024,
            "shrunk under a waiting call"
        );
    }
}
