//! One server connection: the server's [`Role`] in the shared connection driver. It reads
//! requests, admits or refuses each one, runs handlers and writes their replies.
//!
//! A handler is first polled on the connection's own task; most finish there and their response
//! joins the next batch write without any task spawn. A handler that is still pending moves to its
//! own task, so slow calls never hold up the others.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use rpc_codec::Compression;
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

mod admit;

use self::admit::{split_path, Admitted, Refusal};
use super::cancel::CallCancels;
use super::overload::{Overload, ReadBatch, SpawnTicket};
use super::reply::{encode_refusal, encode_reply, ReplyRules};
use super::service::{Dispatch, Reply, ServerCall};
use super::stats::ConnGauge;
use super::upkeep::{expired, ConnUpkeep, SHUTDOWN_LINGER};
use super::Router;
use crate::conn::{
    FrameIo, IdMap, Linger, Role, Streams, Take, WriteQueue, IDLE_BUFFER, WRITE_HIGH_WATER,
};
use crate::context::Context as CallContext;
use crate::message::Request;
use crate::protocol::{
    self, encode_goaway, encode_pong, Frame, GoAwayCode, ProtocolError, RequestFrame, Settings,
};
use crate::status::{Code, Status};
use crate::stream::{RawSender, RawStreaming, RequestsSlot, SenderSlot, StreamHost, Taken};
use crate::transport::PeerAddr;

/// Limits and identity shared by every connection of a server.
pub(crate) struct ConnShared {
    pub(crate) router: Arc<Router>,
    pub(crate) local: Settings,
    /// Response compression and its size threshold, applied where the client reads it.
    pub(crate) compression: Option<(Compression, usize)>,
    pub(crate) max_calls: usize,
    pub(crate) in_flight: AtomicUsize,
    /// Shedding on queue delay (`Server::max_queue_delay`).
    pub(crate) overload: Overload,
}

/// Replies of handlers that finished on their own tasks, and which calls those were; and the
/// streams of streaming calls, whose messages and trailers are queued here in order.
struct Outbox {
    queue: WriteQueue,
    finished: Vec<u32>,
    closed: bool,
    streams: Streams,
}

struct OutboxCell(Mutex<Outbox>);

impl OutboxCell {
    fn lock(&self) -> MutexGuard<'_, Outbox> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Called by a spawned handler when it is done.
    fn finish(&self, id: u32, reply: Option<(Reply, ReplyRules)>) {
        let mut ob = self.lock();
        if ob.closed {
            return;
        }
        if let Some((reply, rules)) = reply {
            encode_reply(ob.queue.buf(), id, reply, &rules);
        }
        ob.finished.push(id);
        let waker = ob.queue.writer();
        drop(ob);
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// A streaming call ended: its RESPONSE goes out after the messages it queued here, and its
    /// streams are closed (a sender still waiting for credit is woken, to fail; the credit of
    /// requests never taken goes back).
    fn finish_stream(
        &self,
        id: u32,
        reply: Reply,
        rules: &ReplyRules,
        ending: Ending,
        spawned: bool,
    ) {
        let reply = match ending {
            // An error says more than this (it may be the method's own shape check).
            Ending::Stream { taken, .. }
                if reply.is_ok() && taken.load(std::sync::atomic::Ordering::Acquire) != 0 =>
            {
                Err(Status::unimplemented(
                    "the method does not take the streams of this call's shape: call it in its \
                     own (a unary call, or the stream its signature takes)",
                ))
            }
            Ending::Stream {
                server_stream: true,
                ..
            } => trailer(reply),
            _ => reply,
        };
        let mut ob = self.lock();
        if ob.closed {
            return;
        }
        let mut wake = Vec::new();
        let Outbox { queue, streams, .. } = &mut *ob;
        streams.close(id, queue.buf(), &mut wake);
        encode_reply(queue.buf(), id, reply, rules);
        if spawned {
            ob.finished.push(id);
        }
        let waker = ob.queue.writer();
        drop(ob);
        wake.into_iter().chain(waker).for_each(|w| w.wake());
    }

    /// Gives back a large, empty queue buffer; returns the capacity kept.
    fn shrink_idle(&self) -> usize {
        let mut ob = self.lock();
        let buf = ob.queue.buf();
        if buf.is_empty() && buf.capacity() > IDLE_BUFFER {
            *buf = bytes::BytesMut::new();
        }
        buf.capacity()
    }
}

impl StreamHost for OutboxCell {
    fn with_streams(
        &self,
        f: &mut dyn FnMut(&mut Streams, &mut bytes::BytesMut, &mut Vec<std::task::Waker>),
    ) {
        let mut wake = Vec::new();
        let mut ob = self.lock();
        let before = ob.queue.len();
        let Outbox { queue, streams, .. } = &mut *ob;
        f(streams, queue.buf(), &mut wake);
        let writer = if ob.queue.len() != before && !ob.closed {
            ob.queue.writer()
        } else {
            None
        };
        drop(ob);
        wake.into_iter().chain(writer).for_each(|w| w.wake());
    }

    /// A server's streams end with their handlers: nothing to tell the client here.
    fn abandon(&self, _id: u32) {}
}

/// The trailer of a server-streaming call: the handler's status and metadata, without a body
/// (a handler that answered with one is not a streaming method).
fn trailer(reply: Reply) -> Reply {
    match reply {
        Ok(resp) if resp.body().is_empty() => Ok(resp),
        Ok(_) => Err(Status::unimplemented(
            "the method answered with a single message: it is not server-streaming; call it \
             as a unary call",
        )),
        Err(status) => Err(status),
    }
}

/// The last method path this connection routed to a service: a call naming the same path (the
/// common case: a connection's calls go to few methods) skips UTF-8 validation, the split at the
/// last `/` and the router's hash look-up. The path is copied, so the cache never holds on to a
/// read buffer.
struct LastRoute {
    path: Box<str>,
    /// Where the `/` between service and method is.
    split: usize,
    svc: Arc<dyn Dispatch>,
}

impl LastRoute {
    fn service(&self) -> &str {
        &self.path[..self.split]
    }

    fn method(&self) -> &str {
        &self.path[self.split + 1..]
    }
}

/// Counts a call against the server-wide limit until dropped.
struct GlobalSlot(Arc<ConnShared>);

impl Drop for GlobalSlot {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Release);
    }
}

/// The server's side of the connection driver.
pub(crate) struct ServerRole {
    shared: Arc<ConnShared>,
    peer: PeerAddr,
    rules: ReplyRules,
    outbox: Arc<OutboxCell>,
    /// Calls whose handlers run on their own tasks, and those that finished with a reply not yet
    /// taken for writing (it still counts against the connection's limit).
    running: IdMap<AbortHandle>,
    upkeep: ConnUpkeep,
    /// The read the frames being handled came from.
    batch: ReadBatch,
    /// Frames of `batch` were kept unread: the next `on_frames` hands them over without a read.
    kept_unread: bool,
    /// A read found the transport empty since `batch` was read.
    caught_up: bool,
    last_call_id: u32,
    last_route: Option<LastRoute>,
    goaway_sent: bool,
    read_closed: bool,
    /// Both sides announced streaming calls (protocol 1.1).
    streaming: bool,
    shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
    hard_stop: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl ServerRole {
    pub(crate) fn new(
        shared: Arc<ConnShared>,
        peer: PeerAddr,
        peer_settings: Settings,
        shutdown: CancellationToken,
        hard_stop: WaitForCancellationFutureOwned,
        gauge: ConnGauge,
    ) -> ServerRole {
        let compress = shared
            .compression
            .filter(|(c, _)| peer_settings.accepts_compression(*c));
        let streams = Streams::new(&shared.local, &peer_settings, true);
        let streaming = shared.local.streaming_with(&peer_settings);
        ServerRole {
            shared,
            peer,
            rules: ReplyRules {
                peer: peer_settings,
                compress,
            },
            outbox: Arc::new(OutboxCell(Mutex::new(Outbox {
                queue: WriteQueue::with_capacity(0),
                finished: Vec::new(),
                closed: false,
                streams,
            }))),
            streaming,
            running: IdMap::default(),
            upkeep: ConnUpkeep::new(gauge, shutdown.clone()),
            batch: ReadBatch::new(),
            kept_unread: false,
            caught_up: true,
            last_call_id: 0,
            last_route: None,
            goaway_sent: false,
            read_closed: false,
            shutdown: Box::pin(shutdown.cancelled_owned()),
            hard_stop: Box::pin(hard_stop),
        }
    }

    fn respond_now(&mut self, io: &mut FrameIo, id: u32, one_way: bool, refusal: Refusal) {
        match refusal {
            Refusal::Quick(code, message) => {
                tracing::debug!(peer = %self.peer, call_id = id, %code, message, "call refused");
                if !one_way {
                    encode_refusal(io.wbuf(), id, code, message, &self.rules);
                }
            }
            Refusal::Status(status) => {
                tracing::debug!(peer = %self.peer, call_id = id, %status, "call rejected");
                if !one_way {
                    encode_reply(io.wbuf(), id, Err(status), &self.rules);
                }
            }
        }
    }

    /// One REQUEST frame: checked, admitted or refused, then run.
    fn dispatch(
        &mut self,
        io: &mut FrameIo,
        mut r: RequestFrame,
        cx: &mut Context<'_>,
    ) -> Result<(), ProtocolError> {
        let id = r.call_id;
        if id <= self.last_call_id {
            return Err(ProtocolError::Malformed("call ids must increase"));
        }
        self.last_call_id = id;
        if self.goaway_sent {
            // Announced as unprocessed by our go-away; the client retries it elsewhere.
            return Ok(());
        }
        let one_way = r.flags & protocol::flags::ONE_WAY != 0;
        let body = std::mem::take(&mut r.body);
        let cached = self
            .last_route
            .as_ref()
            .is_some_and(|l| l.path.as_bytes() == &r.path[..]);
        if !cached {
            let (service, method) = match split_path(&r.path) {
                Ok(parts) => parts,
                Err(status) => {
                    self.respond_now(io, id, one_way, status.into());
                    return Ok(());
                }
            };
            let Some(svc) = self.shared.router.get(service) else {
                // Unknown: admission refuses it, after the checks that come first.
                let refusal = self
                    .admit(id, service, None, r.codec, r.flags, r.timeout_us, body)
                    .err();
                if let Some(refusal) = refusal {
                    self.respond_now(io, id, one_way, refusal);
                }
                return Ok(());
            };
            self.last_route = Some(LastRoute {
                split: service.len(),
                path: Box::from(format!("{service}/{method}")),
                svc: svc.clone(),
            });
        }
        let Some(route) = self.last_route.as_ref() else {
            return Ok(());
        };
        let admitted = self.admit(
            id,
            route.service(),
            Some(route.svc.clone()),
            r.codec,
            r.flags,
            r.timeout_us,
            body,
        );
        match admitted {
            Ok(admitted) => {
                let span = self.call_span(id, route.service(), route.method());
                self.run(io, r, admitted, span, cx);
            }
            Err(refusal) => self.respond_now(io, id, one_way, refusal),
        }
        Ok(())
    }

    /// The span of one call; its status and duration are recorded when it finishes.
    /// A disabled span when no subscriber wants it: checked first, so that the span's fields are
    /// never computed for nothing (tracing's `log` fallback would compute them whenever no
    /// subscriber is set).
    fn call_span(&self, id: u32, service: &str, method: &str) -> tracing::Span {
        if !tracing::enabled!(kind: tracing::metadata::Kind::SPAN, tracing::Level::DEBUG) {
            return tracing::Span::none();
        }
        tracing::debug_span!(
            "rpc.server",
            service,
            method,
            call_id = id,
            peer = %self.peer,
            status = tracing::field::Empty,
            duration_us = tracing::field::Empty,
        )
    }

    /// Runs an admitted call: polled once here; finished, its reply joins this connection's write
    /// buffer; still pending, it moves to its own task.
    fn run(
        &mut self,
        io: &mut FrameIo,
        r: RequestFrame,
        admitted: Admitted,
        span: tracing::Span,
        cx: &mut Context<'_>,
    ) {
        let Admitted {
            svc,
            codec,
            body,
            slot,
            deadline,
        } = admitted;
        let id = r.call_id;
        let one_way = r.flags & protocol::flags::ONE_WAY != 0;
        let server_stream = r.flags & protocol::flags::SERVER_STREAM != 0;
        let client_stream = r.flags & protocol::flags::CLIENT_STREAM != 0;
        let started = (!span.is_disabled()).then(Instant::now);
        let cancels = self.upkeep.cancels.clone();
        let ctx = CallContext::for_call(id, deadline, r.metadata, self.peer.clone(), cancels);
        let mut req = Request::from_parts(r.path, codec, one_way, ctx.clone(), body);
        // What the call sends when it ends; a streaming call's streams are opened here, so a
        // unary call allocates nothing for them.
        let ending = if one_way {
            Ending::OneWay
        } else if server_stream || client_stream {
            Ending::Stream {
                server_stream,
                taken: self.open_streams(id, &mut req, server_stream, client_stream),
            }
        } else {
            Ending::Reply
        };
        let mut call = {
            let _enter = span.enter();
            svc.dispatch(req, ctx, deadline)
        };
        let first = {
            let _enter = span.enter();
            self.upkeep
                .cancels
                .first_poll(id, || call.as_mut().poll(cx))
        };
        match first {
            Poll::Ready(reply) => {
                self.upkeep.cancels.end_inline(id, expired(&reply));
                drop(slot);
                record(&span, started, &reply);
                match ending {
                    Ending::OneWay => log_one_way(&reply),
                    Ending::Reply => encode_reply(io.wbuf(), id, reply, &self.rules),
                    // After the messages the handler queued in the outbox.
                    stream @ Ending::Stream { .. } => {
                        self.outbox
                            .finish_stream(id, reply, &self.rules, stream, false)
                    }
                }
            }
            Poll::Pending => {
                let outbox = self.outbox.clone();
                let cancels = self.upkeep.cancels.clone();
                let ticket = self.shared.overload.spawn_ticket();
                let task = tokio::spawn(finish_on_own_task(
                    call, span, started, slot, ticket, outbox, cancels, id, ending, self.rules,
                ));
                self.running.insert(id, task.abort_handle());
                self.upkeep.spawned();
            }
        }
    }

    /// Opens a streaming call's streams and puts their halves in the request for its handler;
    /// returns how many the handler has to take (it counts down as it takes them).
    fn open_streams(
        &self,
        id: u32,
        req: &mut Request,
        server_stream: bool,
        client_stream: bool,
    ) -> Taken {
        let taken = Taken::new(std::sync::atomic::AtomicUsize::new(
            usize::from(server_stream) + usize::from(client_stream),
        ));
        let max_body = {
            let mut ob = self.outbox.lock();
            ob.streams.open(id, client_stream, server_stream);
            ob.streams.largest_body()
        };
        let host: Arc<dyn StreamHost> = self.outbox.clone();
        if server_stream {
            let max_body = max_body.min(self.rules.peer.max_frame_size as usize);
            let sender = RawSender::new(host.clone(), id, self.rules.compress, max_body, false);
            req.extensions_mut()
                .insert(SenderSlot::new(sender, taken.clone()));
        }
        if client_stream {
            let max_body = self.shared.local.max_frame_size as usize;
            let requests = RawStreaming::server(host, id, max_body);
            req.extensions_mut()
                .insert(RequestsSlot::new(requests, taken.clone()));
        }
        taken
    }

    fn send_goaway(&mut self, io: &mut FrameIo, code: GoAwayCode, message: &str) {
        if !self.goaway_sent {
            self.goaway_sent = true;
            encode_goaway(io.wbuf(), self.last_call_id, code, message);
        }
    }

    fn close(&mut self) {
        // The handlers stop first: woken, a handler would see its request stream end as if the
        // client had ended it.
        for (_, task) in self.running.drain() {
            task.abort();
        }
        self.upkeep.cancels.cancel_all();
        let mut wake = Vec::new();
        {
            let mut ob = self.outbox.lock();
            ob.closed = true;
            ob.streams.close_all(&mut wake);
        }
        wake.into_iter().for_each(|w| w.wake());
    }
}

impl Role for ServerRole {
    fn poll_signals(
        &mut self,
        io: &mut FrameIo,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), ProtocolError>> {
        if self.hard_stop.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Ok(()));
        }
        if !self.goaway_sent && self.shutdown.as_mut().poll(cx).is_ready() {
            self.send_goaway(io, GoAwayCode::NoError, "server shutting down");
        }
        Poll::Pending
    }

    /// Collects replies of handlers that ran on their own tasks.
    fn take_out(&mut self, io: &mut FrameIo, cx: &mut Context<'_>) -> bool {
        let mut ob = self.outbox.lock();
        // A finished call leaves `running` once its reply is taken for writing, not before: a
        // reply waiting behind output the peer has not read counts against the connection's limit.
        let mut room = Vec::new();
        if ob.queue.take_into(io, cx) != Take::Busy {
            for id in ob.finished.drain(..) {
                self.running.remove(&id);
            }
            // Streams that waited for room in the queue go on.
            ob.streams.on_drained(&mut room);
        }
        let queue = ob.queue.buf();
        self.upkeep.queue_seen(queue.len(), queue.capacity());
        // No more calls will come (go-away sent or the client stopped sending), none is running
        // and none left a reply to write: the connection is done.
        let done = (self.goaway_sent || self.read_closed)
            && self.running.is_empty()
            && ob.queue.is_empty();
        drop(ob);
        room.into_iter().for_each(|w| w.wake());
        done
    }

    /// Not while the unwritten output is over the high-water mark; after the go-away, always
    /// (requests are discarded, so reading costs no memory, and a client that is still sending
    /// is not left blocked).
    fn wants_read(&self, io: &FrameIo) -> bool {
        !self.read_closed && (self.goaway_sent || !self.upkeep.over_high_water(io))
    }

    fn on_frames(&mut self, io: &mut FrameIo, cx: &mut Context<'_>) -> Result<(), ProtocolError> {
        // Deadlines and queue delays count from the read that brought the frames: one stamp per
        // read (not per call), kept for frames kept unread and handed over again.
        if !std::mem::take(&mut self.kept_unread) {
            let previous = (!std::mem::take(&mut self.caught_up)).then_some(self.batch);
            self.batch = self.shared.overload.stamp(previous.as_ref());
        }
        loop {
            // Per frame, not per read: one read can carry thousands of requests whose replies
            // are each far larger. Those left unread are handled once the output drains.
            if !self.goaway_sent && self.upkeep.over_high_water(io) {
                io.keep_unread();
                self.kept_unread = true;
                return Ok(());
            }
            let Some(frame) = io.next_frame()? else {
                break;
            };
            match frame {
                Frame::Request(r) => self.dispatch(io, r, cx)?,
                Frame::Cancel { call_id } => {
                    if let Some(task) = self.running.remove(&call_id) {
                        tracing::debug!(peer = %self.peer, call_id, "call cancelled by the client");
                        task.abort();
                        self.upkeep.cancels.cancel(call_id);
                    }
                    if self.streaming {
                        self.outbox.with_streams(&mut |streams, queue, wake| {
                            streams.close(call_id, queue, wake);
                        });
                    }
                }
                // After the go-away frames are read without the check above: a peer that pings
                // and never reads gets no PONG beyond the mark.
                Frame::Ping(v) if io.write_pending() < WRITE_HIGH_WATER => {
                    encode_pong(io.wbuf(), v)
                }
                Frame::Ping(_) => {}
                Frame::Pong(_) => {}
                Frame::GoAway(g) => {
                    tracing::debug!(peer = %self.peer, code = ?g.code, "client sent go-away");
                    self.read_closed = true;
                    return Ok(());
                }
                Frame::Settings(_) => return Err(ProtocolError::Malformed("SETTINGS sent twice")),
                Frame::Response(_) => {
                    return Err(ProtocolError::Malformed("a client sent a RESPONSE frame"))
                }
                Frame::WindowUpdate { call_id, increment } => {
                    if call_id > self.last_call_id {
                        return Err(ProtocolError::Malformed(
                            "a WINDOW_UPDATE for a call never opened",
                        ));
                    }
                    let mut granted = Ok(());
                    self.outbox.with_streams(&mut |streams, _queue, wake| {
                        granted = streams.on_window_update(call_id, increment, wake);
                    });
                    granted?;
                }
                Frame::Message(m) => {
                    if m.call_id > self.last_call_id {
                        return Err(ProtocolError::Malformed(
                            "a MESSAGE for a call never opened",
                        ));
                    }
                    // No call of this server takes a request stream yet: the message belongs to
                    // a call that was refused or ended, and is dropped (its credit returned).
                    // Credit returned here goes straight into this driver's write buffer.
                    let taken = self.outbox.lock().streams.on_message(m, io.wbuf());
                    if let Some(reader) = taken? {
                        reader.wake();
                    }
                }
                Frame::HalfClose { call_id } => {
                    if call_id > self.last_call_id {
                        return Err(ProtocolError::Malformed(
                            "a HALF_CLOSE for a call never opened",
                        ));
                    }
                    let mut ended = Ok(None);
                    self.outbox.with_streams(&mut |streams, _queue, _wake| {
                        ended = streams.on_end(call_id);
                    });
                    if let Some(reader) = ended? {
                        reader.wake();
                    }
                }
            }
        }
        Ok(())
    }

    /// The client closed its side: no response can matter to it any more, so the calls still
    /// running are dropped as on CANCEL (their cancellation tokens too).
    fn on_eof(&mut self) -> Result<(), ProtocolError> {
        self.read_closed = true;
        if !self.running.is_empty() {
            tracing::debug!(
                peer = %self.peer,
                calls = self.running.len(),
                "client closed the connection with calls in flight; cancelling them"
            );
            for (_, task) in self.running.drain() {
                task.abort();
            }
        }
        self.upkeep.cancels.cancel_all();
        Ok(())
    }

    fn finish(
        &mut self,
        io: &mut FrameIo,
        cx: &mut Context<'_>,
        result: Result<(), ProtocolError>,
    ) {
        if let Err(e) = result {
            match &e {
                ProtocolError::Io(_) => {
                    tracing::debug!(peer = %self.peer, error = %e, "connection lost")
                }
                _ => {
                    tracing::warn!(peer = %self.peer, error = %e, "protocol error; closing connection");
                    // Best effort: tell the peer why, without waiting on a peer that does not read.
                    let code = e.goaway_code();
                    self.goaway_sent = false;
                    self.send_goaway(io, code, &e.to_string());
                    let _ = io.poll_write(cx);
                    let _ = io.poll_shutdown(cx);
                }
            }
        }
        self.close();
    }

    fn linger(&self) -> Option<Linger> {
        Some(SHUTDOWN_LINGER)
    }

    fn caught_up(&mut self) {
        self.caught_up = true;
    }

    fn parked(&mut self, io: &mut FrameIo) {
        let outbox = &self.outbox;
        self.upkeep
            .parked(io, &mut self.running, || outbox.shrink_idle());
    }
}

#[allow(clippy::too_many_arguments)]
async fn finish_on_own_task(
    call: ServerCall,
    span: tracing::Span,
    started: Option<Instant>,
    slot: GlobalSlot,
    ticket: Option<SpawnTicket>,
    outbox: Arc<OutboxCell>,
    cancels: Arc<CallCancels>,
    id: u32,
    ending: Ending,
    rules: ReplyRules,
) {
    if let Some(t) = ticket {
        t.started();
    }
    let reply = tracing::Instrument::instrument(call, span.clone()).await;
    cancels.end(id, expired(&reply));
    drop(slot);
    record(&span, started, &reply);
    match ending {
        Ending::OneWay => {
            log_one_way(&reply);
            outbox.finish(id, None);
        }
        Ending::Reply => outbox.finish(id, Some((reply, rules))),
        stream @ Ending::Stream { .. } => outbox.finish_stream(id, reply, &rules, stream, true),
    }
}

/// What a finished call sends.
enum Ending {
    /// Nothing: a one-way call.
    OneWay,
    /// Its RESPONSE.
    Reply,
    /// The RESPONSE of a streaming call, after the messages it sent: a trailer without a body
    /// when the server streamed its replies.
    Stream {
        /// The call had SERVER_STREAM.
        server_stream: bool,
        /// The handler took its streams (it is a streaming method).
        taken: Taken,
    },
}

fn record(span: &tracing::Span, started: Option<Instant>, reply: &Reply) {
    if let Some(t0) = started {
        let code = match reply {
            Ok(_) => Code::Ok,
            Err(s) => s.code(),
        };
        span.record("status", code.as_str());
        span.record("duration_us", t0.elapsed().as_micros() as u64);
        let _enter = span.enter();
        tracing::debug!("call finished");
    }
}

fn log_one_way(reply: &Reply) {
    if let Err(status) = reply {
        tracing::debug!(%status, "one-way call failed");
    }
}
