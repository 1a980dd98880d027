//! One server connection: reads requests, runs handlers, writes responses.
//!
//! A handler is first polled on the connection's own task; most finish there and their response
//! joins the next batch write without any task spawn. A handler that is still pending moves to its
//! own task, so slow calls never hold up the others.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::BytesMut;
use rpc_codec::{CodecId, Compression};
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tokio_util::sync::WaitForCancellationFutureOwned;

use super::service::{Reply, ServerCall};
use super::Router;
use crate::conn::{FrameIo, IdMap, DRIVER_SPINS, WRITE_HIGH_WATER};
use crate::context::Context as CallContext;
use crate::message::Request;
use crate::metadata::Metadata;
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

/// Responses from handlers that finished on their own tasks.
struct Outbox {
    out: BytesMut,
    writer: Option<Waker>,
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
            encode_reply(&mut ob.out, id, reply, &rules);
        }
        ob.finished.push(id);
        let waker = ob.writer.take();
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

/// How replies on one connection are written: within the client's limits, compressed when both
/// sides agree.
#[derive(Clone, Copy)]
struct ReplyRules {
    peer: Settings,
    compress: Option<(Compression, usize)>,
}

pub(crate) struct ServerDriver {
    shared: Arc<ConnShared>,
    io: FrameIo,
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

impl ServerDriver {
    pub(crate) fn new(
        shared: Arc<ConnShared>,
        io: FrameIo,
        peer: PeerAddr,
        peer_settings: Settings,
        shutdown: WaitForCancellationFutureOwned,
        hard_stop: WaitForCancellationFutureOwned,
    ) -> ServerDriver {
        let compress = shared
            .compression
            .filter(|(c, _)| peer_settings.accepts_compression(*c));
        ServerDriver {
            shared,
            io,
            peer,
            rules: ReplyRules {
                peer: peer_settings,
                compress,
            },
            outbox: Arc::new(OutboxCell(Mutex::new(Outbox {
                out: BytesMut::new(),
                writer: None,
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

    fn respond_now(&mut self, id: u32, one_way: bool, status: Status) {
        tracing::debug!(peer = %self.peer, call_id = id, %status, "call rejected");
        if !one_way {
            encode_reply(self.io.wbuf(), id, Err(status), &self.rules);
        }
    }

    fn dispatch(&mut self, r: RequestFrame, cx: &mut Context<'_>) -> Result<(), ProtocolError> {
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
        let Ok(path) = std::str::from_utf8(&r.path) else {
            self.respond_now(
                id,
                one_way,
                Status::invalid_argument("method path is not UTF-8"),
            );
            return Ok(());
        };
        let Some((service, method)) = path.rsplit_once('/') else {
            let msg = format!("method path {path:?} is not of the form package.Service/Method");
            self.respond_now(id, one_way, Status::invalid_argument(msg));
            return Ok(());
        };
        let codec = CodecId::new(r.codec);
        let accepted = self.shared.local.codec_set();
        if !accepted.contains(codec) {
            let msg =
                format!("this server does not accept the {codec} codec; it accepts: {accepted}");
            tracing::debug!(peer = %self.peer, call_id = id, "{msg}");
            self.respond_now(
                id,
                one_way,
                Status::unimplemented(msg).with_delivery(Delivery::Unprocessed),
            );
            return Ok(());
        }
        let body = if r.flags & protocol::flags::COMPRESSED != 0 {
            match rpc_codec::decompress(&r.body, self.shared.local.max_frame_size as usize) {
                Ok(body) => body,
                Err(e) => {
                    tracing::warn!(peer = %self.peer, call_id = id, error = %e, "undecodable compressed request");
                    let msg = format!("request body could not be decompressed: {e}");
                    self.respond_now(id, one_way, Status::invalid_argument(msg));
                    return Ok(());
                }
            }
        } else {
            r.body
        };
        if self.running.len() >= self.shared.local.max_concurrent_calls as usize {
            let msg = format!(
                "too many calls in flight on this connection (limit {})",
                self.shared.local.max_concurrent_calls
            );
            tracing::warn!(peer = %self.peer, call_id = id, "{msg}");
            self.respond_now(
                id,
                one_way,
                Status::resource_exhausted(msg).with_delivery(Delivery::Unprocessed),
            );
            return Ok(());
        }
        let Some(svc) = self.shared.router.get(service) else {
            let msg = format!("unknown service {service:?}");
            tracing::warn!(peer = %self.peer, call_id = id, "{msg}");
            self.respond_now(
                id,
                one_way,
                Status::unimplemented(msg).with_delivery(Delivery::Unprocessed),
            );
            return Ok(());
        };
        if self.shared.in_flight.fetch_add(1, Ordering::AcqRel) >= self.shared.max_calls {
            self.shared.in_flight.fetch_sub(1, Ordering::AcqRel);
            let msg = format!(
                "server is at its limit of {} calls in flight",
                self.shared.max_calls
            );
            tracing::warn!(peer = %self.peer, call_id = id, "{msg}");
            self.respond_now(
                id,
                one_way,
                Status::resource_exhausted(msg).with_delivery(Delivery::Unprocessed),
            );
            return Ok(());
        }
        let slot = GlobalSlot(self.shared.clone());
        let span = tracing::debug_span!(
            "rpc.server",
            service,
            method,
            call_id = id,
            peer = %self.peer,
            status = tracing::field::Empty,
            duration_us = tracing::field::Empty,
        );
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
                    encode_reply(self.io.wbuf(), id, reply, &self.rules);
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
        Ok(())
    }

    fn handle_frames(&mut self, cx: &mut Context<'_>) -> Result<(), ProtocolError> {
        while let Some(frame) = self.io.next_frame()? {
            match frame {
                Frame::Request(r) => self.dispatch(r, cx)?,
                Frame::Cancel { call_id } => {
                    if let Some(task) = self.running.remove(&call_id) {
                        tracing::debug!(peer = %self.peer, call_id, "call cancelled by the client");
                        task.abort();
                    }
                }
                Frame::Ping(v) => encode_pong(self.io.wbuf(), v),
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

    /// Collects responses of handlers that ran on their own tasks.
    fn take_out(&mut self, cx: &mut Context<'_>) {
        let mut ob = self.outbox.lock();
        for id in ob.finished.drain(..) {
            self.running.remove(&id);
        }
        if ob.out.is_empty() {
            if !ob.writer.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                ob.writer = Some(cx.waker().clone());
            }
            return;
        }
        // While the socket is still taking the previous batch, this one waits to be swapped in
        // whole rather than copied behind it; the driver is woken when the socket drains.
        if self.io.write_pending() == 0 {
            std::mem::swap(self.io.wbuf(), &mut ob.out);
        }
    }

    fn send_goaway(&mut self, code: GoAwayCode, message: &str) {
        if !self.goaway_sent {
            self.goaway_sent = true;
            encode_goaway(self.io.wbuf(), self.last_call_id, code, message);
        }
    }

    fn poll_drive(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ProtocolError>> {
        if self.hard_stop.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Ok(()));
        }
        if !self.goaway_sent && self.shutdown.as_mut().poll(cx).is_ready() {
            self.send_goaway(GoAwayCode::NoError, "server shutting down");
        }
        for _ in 0..DRIVER_SPINS {
            let mut progress = false;
            if self.io.write_pending() < WRITE_HIGH_WATER {
                self.take_out(cx);
            }
            if let Poll::Ready(wrote) = self.io.poll_write(cx)? {
                progress |= wrote;
            }
            let idle = self.running.is_empty()
                && self.io.write_pending() == 0
                && self.outbox.lock().out.is_empty();
            if (self.goaway_sent || self.read_closed) && idle {
                let _ = self.io.poll_shutdown(cx);
                return Poll::Ready(Ok(()));
            }
            if !self.read_closed && self.io.write_pending() < WRITE_HIGH_WATER {
                match self.io.poll_fill(cx)? {
                    Poll::Ready(true) => {
                        progress = true;
                        self.handle_frames(cx)?;
                    }
                    Poll::Ready(false) => {
                        progress = true;
                        self.read_closed = true;
                    }
                    Poll::Pending => {}
                }
            }
            if !progress {
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    fn close(&mut self) {
        self.outbox.lock().closed = true;
        for (_, task) in self.running.drain() {
            task.abort();
        }
    }
}

impl Future for ServerDriver {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let result = std::task::ready!(this.poll_drive(cx));
        if let Err(e) = result {
            match &e {
                ProtocolError::Io(_) => {
                    tracing::debug!(peer = %this.peer, error = %e, "connection lost")
                }
                _ => {
                    tracing::warn!(peer = %this.peer, error = %e, "protocol error; closing connection");
                    // Best effort: tell the peer why, without waiting on a peer that does not read.
                    let code = e.goaway_code();
                    this.goaway_sent = false;
                    this.send_goaway(code, &e.to_string());
                    let _ = this.io.poll_write(cx);
                    let _ = this.io.poll_shutdown(cx);
                }
            }
        }
        this.close();
        Poll::Ready(())
    }
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

/// Encodes a reply, replacing it with an error status when it does not fit the client's limits.
fn encode_reply(dst: &mut BytesMut, id: u32, reply: Reply, rules: &ReplyRules) {
    const U16: usize = u16::MAX as usize;
    let peer = &rules.peer;
    let empty = Metadata::new();
    match reply {
        Ok(resp) => {
            let md = resp.metadata();
            let mut body: &[u8] = resp.body();
            let mut flags = 0;
            let compressed;
            if let Some((c, threshold)) = rules.compress {
                if body.len() >= threshold {
                    let mut out = BytesMut::new();
                    c.compress(body, &mut out);
                    if out.len() < body.len() {
                        compressed = out;
                        body = &compressed;
                        flags = protocol::flags::COMPRESSED;
                    }
                }
            }
            let len = protocol::response_len(b"", md, body);
            let fits_md = md.encoded_len() <= peer.max_metadata_size as usize
                && md
                    .entries()
                    .iter()
                    .all(|(k, v)| k.len() <= U16 && v.len() <= U16);
            if len <= peer.max_frame_size as usize && fits_md {
                protocol::encode_response(dst, id, flags, Code::Ok.as_u8(), b"", md, body);
            } else {
                let msg = format!(
                    "response of {len} bytes (metadata {} bytes) exceeds the client's limits \
                     (frame {} bytes, metadata {} bytes)",
                    md.encoded_len(),
                    peer.max_frame_size,
                    peer.max_metadata_size
                );
                tracing::warn!(call_id = id, "{msg}");
                let code = Code::ResourceExhausted.as_u8();
                protocol::encode_response(dst, id, 0, code, msg.as_bytes(), &empty, b"");
            }
        }
        Err(status) => {
            // Messages are cut to 8 KiB (on a character boundary) so an error always fits.
            let text = status.message();
            let mut cut = text.len().min(8 * 1024);
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            let msg = &text.as_bytes()[..cut];
            // A call the server refused before running it says so, so that clients may retry it.
            let flagged;
            let md = if status.delivery() == Delivery::Sent {
                status.metadata()
            } else {
                let mut m = status.metadata().clone();
                m.insert(crate::status::NOT_PROCESSED_KEY, "1");
                flagged = m;
                &flagged
            };
            let fits = md.encoded_len() <= peer.max_metadata_size as usize
                && md
                    .entries()
                    .iter()
                    .all(|(k, v)| k.len() <= U16 && v.len() <= U16)
                && protocol::response_len(msg, md, b"") <= peer.max_frame_size as usize;
            let md = if fits { md } else { &empty };
            protocol::encode_response(dst, id, 0, status.code().as_u8(), msg, md, b"");
        }
    }
}
