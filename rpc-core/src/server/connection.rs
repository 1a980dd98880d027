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
use std::time::Duration;

use bytes::Bytes;
use rpc_codec::{CodecId, Compression};
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tokio_util::sync::WaitForCancellationFutureOwned;

use super::reply::{encode_reply, ReplyRules};
use super::service::{Dispatch, Reply, ServerCall};
use super::Router;
use crate::conn::{FrameIo, IdMap, Role, WriteQueue, WRITE_HIGH_WATER};
use crate::context::Context as CallContext;
use crate::message::Request;
use crate::protocol::{
    self, encode_goaway, encode_pong, Frame, GoAwayCode, ProtocolError, RequestFrame, Settings,
};
use crate::status::{Code, Delivery, Status};
use crate::transport::PeerAddr;

/// Limits and identity shared by every connection of a server.
pub(crate) struct ConnShared {
    pub(crate) router: Arc<Router>,
    pub(crate) local: Settings,
    /// Response compression and its size threshold, applied where the client reads it.
    pub(crate) compression: Option<(Compression, usize)>,
    pub(crate) max_calls: usize,
    pub(crate) in_flight: AtomicUsize,
}

/// Replies of handlers that finished on their own tasks, and which calls those were.
struct Outbox {
    queue: WriteQueue,
    finished: Vec<u32>,
    closed: bool,
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
}

/// Counts a call against the server-wide limit until dropped.
struct GlobalSlot(Arc<ConnShared>);

impl Drop for GlobalSlot {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Release);
    }
}

/// A request that passed every check and may run.
struct Admitted {
    svc: Arc<dyn Dispatch>,
    codec: CodecId,
    body: Bytes,
    slot: GlobalSlot,
}

/// The server's side of the connection driver.
pub(crate) struct ServerRole {
    shared: Arc<ConnShared>,
    peer: PeerAddr,
    rules: ReplyRules,
    outbox: Arc<OutboxCell>,
    running: IdMap<AbortHandle>,
    last_call_id: u32,
    goaway_sent: bool,
    read_closed: bool,
    shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
    hard_stop: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl ServerRole {
    pub(crate) fn new(
        shared: Arc<ConnShared>,
        peer: PeerAddr,
        peer_settings: Settings,
        shutdown: WaitForCancellationFutureOwned,
        hard_stop: WaitForCancellationFutureOwned,
    ) -> ServerRole {
        let compress = shared
            .compression
            .filter(|(c, _)| peer_settings.accepts_compression(*c));
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
            }))),
            running: IdMap::default(),
            last_call_id: 0,
            goaway_sent: false,
            read_closed: false,
            shutdown: Box::pin(shutdown),
            hard_stop: Box::pin(hard_stop),
        }
    }

    fn respond_now(&mut self, io: &mut FrameIo, id: u32, one_way: bool, status: Status) {
        tracing::debug!(peer = %self.peer, call_id = id, %status, "call rejected");
        if !one_way {
            encode_reply(io.wbuf(), id, Err(status), &self.rules);
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
        let (service, method) = match split_path(&r.path) {
            Ok(parts) => parts,
            Err(status) => {
                self.respond_now(io, id, one_way, status);
                return Ok(());
            }
        };
        match self.admit(id, service, r.codec, r.flags, body) {
            Ok(admitted) => {
                let span = self.call_span(id, service, method);
                self.run(io, r, admitted, span, cx);
            }
            Err(status) => self.respond_now(io, id, one_way, status),
        }
        Ok(())
    }

    /// The checks a request passes before any handler sees it, in this order: the codec, the
    /// body's compression, the connection's and then the service's existence and the server's
    /// limits on calls in flight. Refusals before the body is looked at are marked unprocessed.
    fn admit(
        &self,
        id: u32,
        service: &str,
        codec: u8,
        flags: u8,
        body: Bytes,
    ) -> Result<Admitted, Status> {
        let codec = self.check_codec(id, codec)?;
        let body = self.decompress(id, flags, body)?;
        self.check_connection_limit(id)?;
        let svc = self.route(id, service)?;
        let slot = self.reserve_global_slot(id)?;
        Ok(Admitted {
            svc,
            codec,
            body,
            slot,
        })
    }

    fn check_codec(&self, id: u32, codec: u8) -> Result<CodecId, Status> {
        let codec = CodecId::new(codec);
        let accepted = self.shared.local.codec_set();
        if accepted.contains(codec) {
            return Ok(codec);
        }
        let msg = format!("this server does not accept the {codec} codec; it accepts: {accepted}");
        tracing::debug!(peer = %self.peer, call_id = id, "{msg}");
        Err(Status::unimplemented(msg).with_delivery(Delivery::Unprocessed))
    }

    fn decompress(&self, id: u32, flags: u8, body: Bytes) -> Result<Bytes, Status> {
        if flags & protocol::flags::COMPRESSED == 0 {
            return Ok(body);
        }
        rpc_codec::decompress(&body, self.shared.local.max_frame_size as usize).map_err(|e| {
            tracing::warn!(peer = %self.peer, call_id = id, error = %e, "undecodable compressed request");
            Status::invalid_argument(format!("request body could not be decompressed: {e}"))
        })
    }

    fn check_connection_limit(&self, id: u32) -> Result<(), Status> {
        let limit = self.shared.local.max_concurrent_calls;
        if self.running.len() < limit as usize {
            return Ok(());
        }
        let msg = format!("too many calls in flight on this connection (limit {limit})");
        tracing::warn!(peer = %self.peer, call_id = id, "{msg}");
        Err(Status::resource_exhausted(msg).with_delivery(Delivery::Unprocessed))
    }

    fn route(&self, id: u32, service: &str) -> Result<Arc<dyn Dispatch>, Status> {
        if let Some(svc) = self.shared.router.get(service) {
            return Ok(svc.clone());
        }
        let msg = format!("unknown service {service:?}");
        tracing::warn!(peer = %self.peer, call_id = id, "{msg}");
        Err(Status::unimplemented(msg).with_delivery(Delivery::Unprocessed))
    }

    fn reserve_global_slot(&self, id: u32) -> Result<GlobalSlot, Status> {
        let shared = &self.shared;
        if shared.in_flight.fetch_add(1, Ordering::AcqRel) < shared.max_calls {
            return Ok(GlobalSlot(shared.clone()));
        }
        shared.in_flight.fetch_sub(1, Ordering::AcqRel);
        let msg = format!(
            "server is at its limit of {} calls in flight",
            shared.max_calls
        );
        tracing::warn!(peer = %self.peer, call_id = id, "{msg}");
        Err(Status::resource_exhausted(msg).with_delivery(Delivery::Unprocessed))
    }

    /// The span of one call; its status and duration are recorded when it finishes.
    fn call_span(&self, id: u32, service: &str, method: &str) -> tracing::Span {
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
        } = admitted;
        let id = r.call_id;
        let one_way = r.flags & protocol::flags::ONE_WAY != 0;
        let started = (!span.is_disabled()).then(Instant::now);
        let deadline =
            (r.timeout_us > 0).then(|| Instant::now() + Duration::from_micros(r.timeout_us));
        let ctx = CallContext::for_call(id, deadline, r.metadata, self.peer.clone());
        let req = Request::from_parts(r.path, codec, one_way, ctx.clone(), body);
        let mut call = {
            let _enter = span.enter();
            svc.dispatch(req, ctx, deadline)
        };
        let first = {
            let _enter = span.enter();
            call.as_mut().poll(cx)
        };
        match first {
            Poll::Ready(reply) => {
                drop(slot);
                record(&span, started, &reply);
                if one_way {
                    log_one_way(&reply);
                } else {
                    encode_reply(io.wbuf(), id, reply, &self.rules);
                }
            }
            Poll::Pending => {
                let outbox = self.outbox.clone();
                let task = tokio::spawn(finish_on_own_task(
                    call, span, started, slot, outbox, id, one_way, self.rules,
                ));
                self.running.insert(id, task.abort_handle());
            }
        }
    }

    fn send_goaway(&mut self, io: &mut FrameIo, code: GoAwayCode, message: &str) {
        if !self.goaway_sent {
            self.goaway_sent = true;
            encode_goaway(io.wbuf(), self.last_call_id, code, message);
        }
    }

    fn close(&mut self) {
        self.outbox.lock().closed = true;
        for (_, task) in self.running.drain() {
            task.abort();
        }
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
        for id in ob.finished.drain(..) {
            self.running.remove(&id);
        }
        ob.queue.take_into(io, cx);
        // No more calls will come (go-away sent or the client stopped sending), none is running
        // and none left a reply to write: the connection is done.
        (self.goaway_sent || self.read_closed) && self.running.is_empty() && ob.queue.is_empty()
    }

    fn wants_read(&self, io: &FrameIo) -> bool {
        !self.read_closed && io.write_pending() < WRITE_HIGH_WATER
    }

    fn on_frames(&mut self, io: &mut FrameIo, cx: &mut Context<'_>) -> Result<(), ProtocolError> {
        while let Some(frame) = io.next_frame()? {
            match frame {
                Frame::Request(r) => self.dispatch(io, r, cx)?,
                Frame::Cancel { call_id } => {
                    if let Some(task) = self.running.remove(&call_id) {
                        tracing::debug!(peer = %self.peer, call_id, "call cancelled by the client");
                        task.abort();
                    }
                }
                Frame::Ping(v) => encode_pong(io.wbuf(), v),
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
            }
        }
        Ok(())
    }

    fn on_eof(&mut self) -> Result<(), ProtocolError> {
        self.read_closed = true;
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
}

/// Splits a method path into service and method, or says why it cannot be one.
fn split_path(path: &[u8]) -> Result<(&str, &str), Status> {
    let Ok(path) = std::str::from_utf8(path) else {
        return Err(Status::invalid_argument("method path is not UTF-8"));
    };
    path.rsplit_once('/').ok_or_else(|| {
        Status::invalid_argument(format!(
            "method path {path:?} is not of the form package.Service/Method"
        ))
    })
}

#[allow(clippy::too_many_arguments)]
async fn finish_on_own_task(
    call: ServerCall,
    span: tracing::Span,
    started: Option<Instant>,
    slot: GlobalSlot,
    outbox: Arc<OutboxCell>,
    id: u32,
    one_way: bool,
    rules: ReplyRules,
) {
    let reply = tracing::Instrument::instrument(call, span.clone()).await;
    drop(slot);
    record(&span, started, &reply);
    if one_way {
        log_one_way(&reply);
        outbox.finish(id, None);
    } else {
        outbox.finish(id, Some((reply, rules)));
    }
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
