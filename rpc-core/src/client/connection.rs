//! One client connection: the state callers share with the driver task, and the driver itself.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::BytesMut;
use rpc_codec::Compression;
use tokio::sync::oneshot;
use tokio::time::{Instant, Sleep};

use crate::conn::{FrameIo, IdMap, DRIVER_SPINS, WRITE_HIGH_WATER};
use crate::message::{Request, Response};
use crate::protocol::{
    self, encode_cancel, encode_ping, encode_pong, Frame, GoAwayCode, ProtocolError, ResponseFrame,
    Settings,
};
use crate::status::{Code, Delivery, Status};
use crate::transport::PeerAddr;

pub(crate) type Reply = Result<Response, Status>;

/// The largest length the protocol's u16 length fields can carry.
const U16_MAX: usize = u16::MAX as usize;

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
    out: BytesMut,
    /// The driver's waker, left when it found nothing to write.
    writer: Option<Waker>,
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
    compress: Option<(Compression, usize)>,
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
        compress: Option<(Compression, usize)>,
    ) -> Arc<ClientConn> {
        Arc::new(ClientConn {
            state: Mutex::new(State {
                out: BytesMut::with_capacity(16 * 1024),
                writer: None,
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
        if md
            .entries()
            .iter()
            .any(|(k, v)| k.len() > U16_MAX || v.len() > U16_MAX)
        {
            return not_sent(
                Code::InvalidArgument,
                "metadata keys and values must be at most 65535 bytes".into(),
            );
        }
        let md_len = md.encoded_len();
        if md_len > self.peer_settings.max_metadata_size as usize {
            return not_sent(
                Code::ResourceExhausted,
                format!(
                    "request metadata of {md_len} bytes exceeds the server's limit of {} bytes",
                    self.peer_settings.max_metadata_size
                ),
            );
        }
        let len = protocol::request_len(path, md, body);
        if len > self.peer_settings.max_frame_size as usize {
            return not_sent(
                Code::ResourceExhausted,
                format!(
                    "request frame of {len} bytes exceeds the server's max frame size of {} bytes",
                    self.peer_settings.max_frame_size
                ),
            );
        }
        Ok(())
    }

    /// Queues a request. On error nothing was queued, and the status says so.
    pub(crate) fn start(&self, req: &Request, timeout_us: u64) -> Result<Started, Status> {
        let one_way = req.is_one_way();
        let mut flags = if one_way { protocol::flags::ONE_WAY } else { 0 };
        // Compress outside the lock; keep the result only when it is smaller.
        let compressed = match self.compress {
            Some((c, threshold)) if req.body().len() >= threshold => {
                let mut out = BytesMut::new();
                c.compress(req.body(), &mut out);
                (out.len() < req.body().len()).then_some(out)
            }
            _ => None,
        };
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
            &mut st.out,
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
        let waker = st.writer.take();
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
        encode_cancel(&mut st.out, id);
        let waker = st.writer.take();
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
        let waker = st.writer.take();
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
        st.out.clear();
        st.writer = None;
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

/// Liveness probing of an otherwise quiet connection.
pub(crate) struct Keepalive {
    interval: Duration,
    timeout: Duration,
    timer: Pin<Box<Sleep>>,
    /// Something arrived since the timer was last set.
    heard: bool,
    /// The value of the ping we are waiting to hear back.
    awaiting: Option<u64>,
    sent: u64,
}

impl Keepalive {
    pub(crate) fn new(interval: Duration, timeout: Duration) -> Keepalive {
        Keepalive {
            interval,
            timeout,
            timer: Box::pin(tokio::time::sleep(interval)),
            heard: false,
            awaiting: None,
            sent: 0,
        }
    }

    /// Polls the timer: `Ok(Some(v))` asks for a PING with value `v`; an error means the peer
    /// did not answer in time.
    fn poll(&mut self, cx: &mut Context<'_>) -> Result<Option<u64>, ProtocolError> {
        if self.timer.as_mut().poll(cx).is_pending() {
            return Ok(None);
        }
        let now = Instant::now();
        if self.heard {
            // The peer spoke during the last period: it is alive; probe only after a quiet one.
            self.heard = false;
            self.awaiting = None;
            self.timer.as_mut().reset(now + self.interval);
            let _ = self.timer.as_mut().poll(cx);
            return Ok(None);
        }
        if self.awaiting.is_some() {
            return Err(ProtocolError::KeepaliveTimeout(self.timeout));
        }
        self.sent = self.sent.wrapping_add(1);
        self.awaiting = Some(self.sent);
        self.timer.as_mut().reset(now + self.timeout);
        let _ = self.timer.as_mut().poll(cx);
        Ok(Some(self.sent))
    }
}

/// Drives one connection: writes what callers queued, reads and routes responses.
pub(crate) struct ClientDriver {
    conn: Arc<ClientConn>,
    io: FrameIo,
    responses: Vec<ResponseFrame>,
    completions: Vec<(oneshot::Sender<Reply>, ResponseFrame)>,
    control: BytesMut,
    /// The largest body a compressed response may expand to.
    max_body: usize,
    keepalive: Option<Keepalive>,
}

impl ClientDriver {
    pub(crate) fn new(
        conn: Arc<ClientConn>,
        io: FrameIo,
        max_body: usize,
        keepalive: Option<Keepalive>,
    ) -> ClientDriver {
        ClientDriver {
            conn,
            io,
            responses: Vec::new(),
            completions: Vec::new(),
            control: BytesMut::new(),
            max_body,
            keepalive,
        }
    }

    /// Moves queued frames into the write buffer; returns `true` when the connection is drained
    /// (no calls left and nothing to write) and should close.
    fn take_out(&mut self, cx: &mut Context<'_>) -> bool {
        let mut st = self.conn.lock();
        if !self.control.is_empty() {
            st.out.extend_from_slice(&self.control);
            self.control.clear();
        }
        if st.out.is_empty() {
            if !st.writer.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                st.writer = Some(cx.waker().clone());
            }
        } else if self.io.write_pending() == 0 {
            std::mem::swap(self.io.wbuf(), &mut st.out);
            st.taken_upto = st.appended_upto;
        }
        // Otherwise the socket is still taking the previous batch: this one is taken (swapped,
        // not copied) once that is written, which the driver is woken for.
        matches!(st.phase, Phase::Draining) && st.pending.is_empty() && st.out.is_empty()
    }

    fn handle_frames(&mut self) -> Result<(), ProtocolError> {
        while let Some(frame) = self.io.next_frame()? {
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

    fn poll_drive(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ProtocolError>> {
        if let Some(ka) = self.keepalive.as_mut() {
            if let Some(value) = ka.poll(cx)? {
                encode_ping(&mut self.control, value);
            }
        }
        for _ in 0..DRIVER_SPINS {
            let mut progress = false;
            let drained = if self.io.write_pending() < WRITE_HIGH_WATER {
                self.take_out(cx)
            } else {
                false
            };
            if let Poll::Ready(wrote) = self.io.poll_write(cx)? {
                progress |= wrote;
            }
            if drained && self.io.write_pending() == 0 {
                let _ = self.io.poll_shutdown(cx);
                return Poll::Ready(Ok(()));
            }
            match self.io.poll_fill(cx)? {
                Poll::Ready(true) => {
                    progress = true;
                    if let Some(ka) = self.keepalive.as_mut() {
                        ka.heard = true;
                    }
                    self.handle_frames()?;
                }
                Poll::Ready(false) => {
                    return Poll::Ready(Err(ProtocolError::Io(
                        std::io::ErrorKind::UnexpectedEof.into(),
                    )))
                }
                Poll::Pending => {}
            }
            if !progress {
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl Future for ClientDriver {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        match this.poll_drive(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(())) => {
                this.conn.close(Status::unavailable("connection closed"));
                Poll::Ready(())
            }
            Poll::Ready(Err(e)) => {
                let peer = &this.conn.peer;
                match &e {
                    ProtocolError::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
                        tracing::debug!(%peer, "server closed the connection");
                    }
                    _ => tracing::warn!(%peer, error = %e, "connection failed"),
                }
                this.conn.close(Status::unavailable(format!(
                    "connection to {peer} lost: {e}"
                )));
                Poll::Ready(())
            }
        }
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
        let delivery = if metadata.remove(crate::status::NOT_PROCESSED_KEY).is_some() {
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
