//! One client connection: the state callers share with the driver task ([`ClientConn`]), and
//! the client's [`Role`](crate::conn::Role) in the shared connection driver ([`ClientRole`]).

mod one_way;
mod role;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use tokio::sync::oneshot;

pub(crate) use self::role::ClientRole;
use crate::conn::{
    check_frame, check_metadata, compress_if_smaller, CompressRule, Exceeded, IdMap, Streams,
    WriteQueue, U16_MAX,
};
use crate::message::{Request, Response};
use crate::protocol::{self, encode_cancel, Settings};
use crate::status::{Code, Delivery, Status};
use crate::transport::PeerAddr;
use one_way::OneWayAcks;

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
    /// One-way calls whose callers wait to hear that the server read them.
    one_way: OneWayAcks,
    /// Bytes in the driver's write buffer not yet written, as of its last pass.
    writing: usize,
    /// Callers waiting for `queue.len() + writing` to drop below the limit.
    room_waiters: Vec<Waker>,
    next_id: u32,
    /// The highest call id whose request the driver took for writing.
    taken_upto: u32,
    /// The highest call id appended to `out`.
    appended_upto: u32,
    phase: Phase,
    /// The streams of streaming calls (protocol 1.1).
    streams: Streams,
}

/// The part of a connection that callers and the driver share.
pub(crate) struct ClientConn {
    state: Mutex<State>,
    usable: AtomicBool,
    /// Set while the bytes queued and being written reach `max_unwritten` (read without the lock by
    /// `Channel::poll_ready`).
    full: AtomicBool,
    /// See [`Endpoint::max_unwritten_bytes`](super::Endpoint::max_unwritten_bytes).
    max_unwritten: usize,
    peer: PeerAddr,
    peer_settings: Settings,
    /// Request compression, when configured and the server reads it.
    compress: CompressRule,
    /// Both sides announced streaming calls (protocol 1.1).
    streaming: bool,
    /// The largest body a compressed message from the server may expand to.
    max_body: usize,
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
    /// The request is queued.
    Queued(Queued),
    /// Nothing was queued: the connection holds its limit of unwritten bytes. The waker passed to
    /// `start`, if any, is woken when there is room (or the connection stops taking calls).
    Full,
}

/// A queued call: its outcome comes through `rx`. For a two-way call that is the response; for a
/// one-way call, `Ok` once the server proved it read the request before any go-away.
pub(crate) struct Queued {
    pub(crate) id: u32,
    pub(crate) rx: oneshot::Receiver<Reply>,
    pub(crate) one_way: bool,
}

impl ClientConn {
    pub(crate) fn new(
        peer: PeerAddr,
        local: &Settings,
        peer_settings: Settings,
        compress: CompressRule,
        max_unwritten: usize,
    ) -> Arc<ClientConn> {
        Arc::new(ClientConn {
            state: Mutex::new(State {
                queue: WriteQueue::with_capacity(16 * 1024),
                pending: IdMap::default(),
                one_way: OneWayAcks::default(),
                writing: 0,
                room_waiters: Vec::new(),
                next_id: 1,
                taken_upto: 0,
                appended_upto: 0,
                phase: Phase::Open,
                streams: Streams::new(local, &peer_settings, false),
            }),
            usable: AtomicBool::new(true),
            full: AtomicBool::new(false),
            max_unwritten: max_unwritten.max(1),
            peer,
            peer_settings,
            compress,
            streaming: local.streaming_with(&peer_settings),
            max_body: local.max_frame_size as usize,
        })
    }

    /// The largest body a compressed message from the server may expand to.
    pub(crate) fn max_body(&self) -> usize {
        self.max_body
    }

    /// A sender for the request stream of the streaming call `id`.
    pub(crate) fn sender(self: &Arc<Self>, id: u32) -> crate::stream::RawSender {
        let largest = self.lock().streams.largest_body();
        let max_body = largest.min(self.peer_settings.max_frame_size as usize);
        let host: Arc<dyn crate::stream::StreamHost> = self.clone();
        crate::stream::RawSender::new(host, id, self.compress, max_body, true)
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

    /// `true` while the connection holds its limit of bytes not yet written (a hint, read without
    /// the lock; [`ClientConn::poll_room`] decides).
    pub(crate) fn is_full(&self) -> bool {
        self.full.load(Ordering::Acquire)
    }

    fn over_limit(&self, st: &State) -> bool {
        st.queue.len() + st.writing >= self.max_unwritten
    }

    /// Ready once the connection has room for another request, or takes no more calls; otherwise
    /// `cx` is woken when it does.
    pub(crate) fn poll_room(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut st = self.lock();
        if !self.over_limit(&st) || !matches!(st.phase, Phase::Open) {
            return Poll::Ready(());
        }
        // The driver wakes the waiters when it finds the flag set and the queue below the limit.
        self.full.store(true, Ordering::Release);
        st.room_waiters.push(cx.waker().clone());
        Poll::Pending
    }

    /// The failure of a call that asked not to wait for room
    /// ([`Endpoint::wait_for_write_capacity`](super::Endpoint::wait_for_write_capacity)).
    pub(crate) fn full_status(&self) -> Status {
        Status::resource_exhausted(format!(
            "the connection to {} holds its limit of {} bytes not yet written; the call was not sent",
            self.peer, self.max_unwritten
        ))
        .with_delivery(Delivery::NotSent)
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

    /// Queues a request, unless the connection holds its limit of unwritten bytes
    /// ([`Started::Full`]; `room`, if given, is woken when there is room). On error nothing was
    /// queued, and the status says so.
    pub(crate) fn start(
        &self,
        req: &Request,
        timeout_us: u64,
        room: Option<&mut Context<'_>>,
    ) -> Result<Started, Status> {
        self.start_with(req, timeout_us, room, 0)
    }

    /// [`start`](ClientConn::start) for a streaming call: `stream` holds its stream flags
    /// (SERVER_STREAM); the server's messages are received on the connection's streams under the
    /// call's id.
    pub(crate) fn start_stream(
        &self,
        req: &Request,
        timeout_us: u64,
        stream: u8,
    ) -> Result<Started, Status> {
        if !self.streaming {
            return Err(Status::unimplemented(format!(
                "the server at {} does not support streaming calls (protocol 1.0)",
                self.peer
            ))
            .with_delivery(Delivery::NotSent));
        }
        self.start_with(req, timeout_us, None, stream)
    }

    fn start_with(
        &self,
        req: &Request,
        timeout_us: u64,
        room: Option<&mut Context<'_>>,
        stream: u8,
    ) -> Result<Started, Status> {
        let one_way = req.is_one_way() && stream == 0;
        let mut flags = stream | if one_way { protocol::flags::ONE_WAY } else { 0 };
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
        if self.over_limit(&st) {
            // Checked before appending: a connection holds at most the limit plus one request.
            self.full.store(true, Ordering::Release);
            if let Some(cx) = room {
                st.room_waiters.push(cx.waker().clone());
            }
            return Ok(Started::Full);
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
        if stream != 0 {
            let inbound = stream & protocol::flags::SERVER_STREAM != 0;
            let outbound = stream & protocol::flags::CLIENT_STREAM != 0;
            st.streams.open(id, inbound, outbound);
        }
        let (tx, rx) = oneshot::channel();
        if one_way {
            st.one_way.push(id, tx);
        } else {
            st.pending.insert(id, tx);
        }
        if self.over_limit(&st) {
            self.full.store(true, Ordering::Release);
        }
        let started = Started::Queued(Queued { id, rx, one_way });
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
        let waiting_for_room = std::mem::take(&mut st.room_waiters);
        drop(st);
        if let Some(w) = waker {
            w.wake();
        }
        waiting_for_room.into_iter().for_each(Waker::wake);
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
        let one_way = st.one_way.take_all();
        let mut waiting_for_room = std::mem::take(&mut st.room_waiters);
        st.streams.close_all(&mut waiting_for_room);
        drop(st);
        waiting_for_room.into_iter().for_each(Waker::wake);
        for (id, tx) in pending.into_iter().chain(one_way) {
            let delivery = if id <= taken {
                Delivery::Sent
            } else {
                Delivery::NotSent
            };
            let _ = tx.send(Err(why.clone().with_delivery(delivery)));
        }
    }
}

impl crate::stream::StreamHost for ClientConn {
    fn with_streams(&self, f: &mut dyn FnMut(&mut Streams, &mut bytes::BytesMut, &mut Vec<Waker>)) {
        let mut wake = Vec::new();
        let mut st = self.lock();
        let before = st.queue.len();
        let State { streams, queue, .. } = &mut *st;
        f(streams, queue.buf(), &mut wake);
        let writer = if st.queue.len() != before && !matches!(st.phase, Phase::Closed(_)) {
            st.queue.writer()
        } else {
            None
        };
        drop(st);
        wake.into_iter().chain(writer).for_each(Waker::wake);
    }

    fn abandon(&self, id: u32) {
        self.cancel(id);
    }
}
