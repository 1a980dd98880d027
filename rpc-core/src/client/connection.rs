//! One client connection: the state callers share with the driver task ([`ClientConn`]), and
//! the client's [`Role`] in the shared connection driver ([`ClientRole`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::BytesMut;
use tokio::sync::oneshot;

use crate::conn::{
    check_frame, check_metadata, compress_if_smaller, CompressRule, Exceeded, FrameIo, IdMap,
    Keepalive, Role, Take, WriteQueue, U16_MAX,
};
use crate::message::{Request, Response};
use crate::protocol::{
    self, encode_cancel, encode_ping, encode_pong, Frame, GoAwayCode, ProtocolError, ResponseFrame,
    Settings,
};
use crate::status::{Code, Delivery, Status};
use crate::transport::PeerAddr;

pub(crate) type Reply = Result<Response, Status>;

#[derive(Debug)]
enum Phase {
    /// Takes new calls.
    Open,
    /// Takes no new calls; closes once the calls in flight are answered.
    Draining,
    /// Gone; says why.
    Closed(Status),
}

struct State {
    /// Frames waiting for the driver, in call-id order.
    queue: WriteQueue,
    pending: IdMap<oneshot::Sender<Reply>>,
    next_id: u32,
    /// The highest call id whose request the driver took for writing.
    taken_upto: u32,
    /// The highest call id appended to `out`.
    appended_upto: u32,
    phase: Phase,
}

/// The part of a connection that callers and the driver share.
pub(crate) struct ClientConn {
    state: Mutex<State>,
    usable: AtomicBool,
    peer: PeerAddr,
    peer_settings: Settings,
    /// Request compression, when configured and the server reads it.
    compress: CompressRule,
}

impl std::fmt::Debug for ClientConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConn")
            .field("peer", &self.peer)
            .field("usable", &self.is_usable())
            .finish_non_exhaustive()
    }
}

/// What the caller gets back from [`ClientConn::start`].
pub(crate) enum Started {
    /// The request is queued; the answer comes through the receiver.
    Waiting(u32, oneshot::Receiver<Reply>),
    /// A one-way request is queued; there will be no answer.
    OneWay,
}

impl ClientConn {
    pub(crate) fn new(
        peer: PeerAddr,
        peer_settings: Settings,
        compress: CompressRule,
    ) -> Arc<ClientConn> {
        Arc::new(ClientConn {
            state: Mutex::new(State {
                queue: WriteQueue::with_capacity(16 * 1024),
                pending: IdMap::default(),
                next_id: 1,
                taken_upto: 0,
                appended_upto: 0,
                phase: Phase::Open,
            }),
            usable: AtomicBool::new(true),
            peer,
            peer_settings,
            compress,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent at every point a panic could unwind from, so a poisoned lock
        // is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn peer(&self) -> &PeerAddr {
        &self.peer
    }

    /// `true` while the connection takes new calls.
    pub(crate) fn is_usable(&self) -> bool {
        self.usable.load(Ordering::Acquire)
    }

    /// Checks a request against what the server accepts, before it takes a call id.
    fn check(&self, req: &Request, body: &[u8]) -> Result<(), Status> {
        let not_sent =
            |code, msg: String| Err(Status::new(code, msg).with_delivery(Delivery::NotSent));
        let accepted = self.peer_settings.codec_set();
        if !accepted.contains(req.codec()) {
            return not_sent(
                Code::Unimplemented,
                format!(
                    "the server does not accept the {} codec; it accepts: {accepted}",
                    req.codec()
                ),
            );
        }
        let path = req.path_bytes();
        if path.is_empty() || path.len() > U16_MAX {
            return not_sent(
                Code::InvalidArgument,
                format!("method path must be 1..=65535 bytes, got {}", path.len()),
            );
        }
        let md = req.metadata();
        let peer = &self.peer_settings;
        let checked = check_metadata(md, peer)
            .and_then(|()| check_frame(protocol::request_len(path, md, body), peer));
        match checked {
            Ok(()) => Ok(()),
            Err(Exceeded::MetadataEntry) => not_sent(
                Code::InvalidArgument,
                "metadata keys and values must be at most 65535 bytes".into(),
            ),
            Err(Exceeded::Metadata { len, max }) => not_sent(
                Code::ResourceExhausted,
                format!("request metadata of {len} bytes exceeds the server's limit of {max} bytes"),
            ),
            Err(Exceeded::Frame { len, max }) => not_sent(
                Code::ResourceExhausted,
                format!(
                    "request frame of {len} bytes exceeds the server's max frame size of {max} bytes"
                ),
            ),
        }
    }

    /// Queues a request. On error nothing was queued, and the status says so.
    pub(crate) fn start(&self, req: &Request, timeout_us: u64) -> Result<Started, Status> {
        let one_way = req.is_one_way();
        let mut flags = if one_way { protocol::flags::ONE_WAY } else { 0 };
        // Compress outside the lock; keep the result only when it is smaller.
        let compressed = compress_if_smaller(self.compress, req.body());
        let body: &[u8] = match &compressed {
            Some(c) => {
                flags |= protocol::flags::COMPRESSED;
                c
            }
            None => req.body(),
        };
        self.check(req, body)?;
        let mut st = self.lock();
        match &st.phase {
            Phase::Open => {}
            Phase::Draining => {
                return Err(
                    Status::unavailable("connection is closing").with_delivery(Delivery::NotSent)
                )
            }
            Phase::Closed(why) => return Err(why.clone().with_delivery(Delivery::NotSent)),
        }
        if st.pending.len() >= self.peer_settings.max_concurrent_calls as usize {
            return Err(Status::resource_exhausted(format!(
                "the server allows {} calls in flight on one connection",
                self.peer_settings.max_concurrent_calls
            ))
            .with_delivery(Delivery::NotSent));
        }
        let id = st.next_id;
        st.next_id += 1;
        if st.next_id == u32::MAX {
            // Call ids are spent: finish what is in flight and let the channel open a new connection.
            st.phase = Phase::Draining;
            self.usable.store(false, Ordering::Release);
        }
        protocol::encode_request(
            st.queue.buf(),
            id,
            flags,
            req.path_bytes(),
            req.codec().get(),
            timeout_us,
            req.metadata(),
            body,
        );
        st.appended_upto = id;
        let started = if one_way {
            Started::OneWay
        } else {
            let (tx, rx) = oneshot::channel();
            st.pending.insert(id, tx);
            Started::Waiting(id, rx)
        };
        let waker = st.queue.writer();
        drop(st);
        if let Some(w) = waker {
            w.wake();
        }
        Ok(started)
    }

    /// The caller stopped waiting: forget the call and tell the server.
    pub(crate) fn cancel(&self, id: u32) {
        let mut st = self.lock();
        if st.pending.remove(&id).is_none() || matches!(st.phase, Phase::Closed(_)) {
            return;
        }
        encode_cancel(st.queue.buf(), id);
        let waker = st.queue.writer();
        drop(st);
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Stop taking calls; the driver closes once in-flight calls are answered.
    pub(crate) fn drain(&self) {
        let mut st = self.lock();
        if matches!(st.phase, Phase::Open) {
            st.phase = Phase::Draining;
        }
        self.usable.store(false, Ordering::Release);
        let waker = st.queue.writer();
        drop(st);
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// The connection is gone: fail every call still waiting, saying whether its request left.
    fn close(&self, why: Status) {
        self.usable.store(false, Ordering::Release);
        let mut st = self.lock();
        if matches!(st.phase, Phase::Closed(_)) {
            return;
        }
        st.phase = Phase::Closed(why.clone());
        st.queue.clear();
        let taken = st.taken_upto;
        let pending = std::mem::take(&mut st.pending);
        drop(st);
        for (id, tx) in pending {
            let delivery = if id <= taken {
                Delivery::Sent
            } else {
                Delivery::NotSent
            };
            let _ = tx.send(Err(why.clone().with_delivery(delivery)));
        }
    }
}

/// The client's side of the connection driver: writes what callers queued, routes responses to
/// them, answers pings and keeps the connection alive.
pub(crate) struct ClientRole {
    conn: Arc<ClientConn>,
    responses: Vec<ResponseFrame>,
    completions: Vec<(oneshot::Sender<Reply>, ResponseFrame)>,
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
            responses: Vec::new(),
            completions: Vec::new(),
            control: BytesMut::new(),
            max_body,
            keepalive,
        }
    }

    fn handle_frames(&mut self, io: &mut FrameIo) -> Result<(), ProtocolError> {
        while let Some(frame) = io.next_frame()? {
            match frame {
                Frame::Response(r) => self.responses.push(r),
                Frame::Ping(v) => encode_pong(&mut self.control, v),
                Frame::Pong(_) => {}
                Frame::GoAway(g) => {
                    self.complete();
                    self.goaway(g.last_call_id, g.code, &g.message)?;
                }
                Frame::Settings(_) => return Err(ProtocolError::Malformed("SETTINGS sent twice")),
                Frame::Request(_) | Frame::Cancel { .. } => {
                    return Err(ProtocolError::Malformed(
                        "a server sent a REQUEST or CANCEL frame",
                    ))
                }
            }
        }
        self.complete();
        Ok(())
    }

    /// Hands a batch of responses to their callers, taking the lock once.
    fn complete(&mut self) {
        if self.responses.is_empty() {
            return;
        }
        {
            let mut st = self.conn.lock();
            for r in self.responses.drain(..) {
                // Unknown ids are calls the caller already gave up on.
                if let Some(tx) = st.pending.remove(&r.call_id) {
                    self.completions.push((tx, r));
                }
            }
        }
        for (tx, r) in self.completions.drain(..) {
            let _ = tx.send(reply_from_frame(r, self.max_body));
        }
    }

    fn goaway(&mut self, last: u32, code: GoAwayCode, message: &[u8]) -> Result<(), ProtocolError> {
        let message = String::from_utf8_lossy(message).into_owned();
        tracing::debug!(peer = %self.conn.peer, last_call_id = last, ?code, %message, "server sent go-away");
        let unprocessed: Vec<_> = {
            let mut st = self.conn.lock();
            if matches!(st.phase, Phase::Open) {
                st.phase = Phase::Draining;
            }
            self.conn.usable.store(false, Ordering::Release);
            let ids: Vec<u32> = st.pending.keys().copied().filter(|&id| id > last).collect();
            ids.into_iter()
                .filter_map(|id| st.pending.remove(&id))
                .collect()
        };
        for tx in unprocessed {
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
        let mut st = self.conn.lock();
        if !self.control.is_empty() {
            st.queue.buf().extend_from_slice(&self.control);
            self.control.clear();
        }
        if st.queue.take_into(io, cx) == Take::Taken {
            st.taken_upto = st.appended_upto;
        }
        // Draining with no call left and nothing queued: the connection is done.
        matches!(st.phase, Phase::Draining) && st.pending.is_empty() && st.queue.is_empty()
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
        _io: &mut FrameIo,
        _cx: &mut Context<'_>,
        result: Result<(), ProtocolError>,
    ) {
        let e = match result {
            Ok(()) => return self.conn.close(Status::unavailable("connection closed")),
            Err(e) => e,
        };
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
