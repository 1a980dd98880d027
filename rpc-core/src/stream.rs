//! Streaming calls (protocol 1.1, `docs/protocol.md` §17): the raw halves of a
//! stream of encoded messages. [`RawStreaming`] receives (a `futures_core::Stream` of
//! `Result<Bytes, Status>`), [`RawSender`] sends. Both are flow-controlled: a sender waits for
//! credit, and credit comes back only as the receiving application takes messages, so a reader
//! that stops reading stops its sender instead of filling memory.
//!
//! Each shape has its pair: [`RawService::server_streaming`](crate::server::RawService::server_streaming)
//! and [`Channel::server_streaming`](crate::Channel::server_streaming),
//! [`client_streaming`](crate::Channel::client_streaming) and
//! [`bidi_streaming`](crate::Channel::bidi_streaming) likewise. A server stream:
//!
//! ```
//! use bytes::Bytes;
//! use rpc_core::server::RawService;
//! use rpc_core::transport::memory::MemoryListener;
//! use rpc_core::{Endpoint, Request, Response, Server};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let clock = RawService::new("demo.Clock").server_streaming("Ticks", |req, mut out| async move {
//!     let n: u32 = std::str::from_utf8(req.body()).unwrap_or("0").parse().unwrap_or(0);
//!     for i in 1..=n {
//!         out.send(Bytes::from(format!("tick {i}"))).await?;
//!     }
//!     Ok(Response::default())
//! });
//! tokio::spawn(Server::builder().add_service(clock).serve(MemoryListener::bind("stream-doc")?));
//!
//! let channel = Endpoint::memory("stream-doc").connect_lazy();
//! let mut ticks = channel.server_streaming(Request::new("demo.Clock/Ticks", "3")).await?;
//! let mut got = Vec::new();
//! while let Some(tick) = ticks.message().await? {
//!     got.push(tick);
//! }
//! assert_eq!(got, ["tick 1", "tick 2", "tick 3"]);
//! # Ok(())
//! # }
//! ```

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};
use rpc_codec::{CodecId, MessageCodecs};
use tokio::sync::oneshot;
use tokio::time::{Instant, Sleep};

use crate::conn::{compress_if_smaller, CompressRule, Next, Streams};
use crate::limit::Permit;
use crate::metadata::Metadata;
use crate::protocol::flow::size;
use crate::protocol::{encode_half_close, encode_message, flags, MessageFrame};
use crate::status::Status;
use crate::Response;

/// The connection state a stream works on: a side's [`Streams`] and write queue, under the
/// lock that guards them.
pub(crate) trait StreamHost: Send + Sync + 'static {
    /// Runs `f` on the streams and the write queue's buffer under the lock; wakes the
    /// connection's writer afterwards if `f` encoded frames, and the wakers `f` collected.
    fn with_streams(&self, f: &mut dyn FnMut(&mut Streams, &mut BytesMut, &mut Vec<Waker>));

    /// The call ended before its stream did (dropped): tells the peer, as the side does
    /// (a client sends CANCEL; a server drops what arrives).
    fn abandon(&self, id: u32);
}

/// The sending half of a stream: each [`send`](RawSender::send) queues one message frame once
/// the peer's call and connection windows have room for it.
///
/// A client's request stream ends with [`send_last`](RawSender::send_last) or
/// [`close`](RawSender::close), or when the sender is dropped; a server's ends with the
/// handler's return (the trailer).
pub struct RawSender {
    host: Arc<dyn StreamHost>,
    id: u32,
    compress: CompressRule,
    /// The largest message body the peer can take (its frame size and window).
    max_body: usize,
    /// A client's request stream, which this sender ends.
    client: bool,
    closed: bool,
}

impl std::fmt::Debug for RawSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawSender")
            .field("call_id", &self.id)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

impl RawSender {
    pub(crate) fn new(
        host: Arc<dyn StreamHost>,
        id: u32,
        compress: CompressRule,
        max_body: usize,
        client: bool,
    ) -> RawSender {
        RawSender {
            host,
            id,
            compress,
            max_body,
            client,
            closed: false,
        }
    }

    /// Sends one encoded message, waiting while the receiver's windows are full (it has not taken
    /// what it was sent).
    ///
    /// # Errors
    /// `ResourceExhausted` for a message larger than the receiver can ever take (its frame size
    /// or window; nothing is sent and the stream goes on); `Cancelled` once the call ended (the
    /// caller went away, the server answered, or the connection closed); `FailedPrecondition`
    /// if the returned future is polled again after it completed.
    pub fn send(&mut self, body: Bytes) -> impl Future<Output = Result<(), Status>> + Send + '_ {
        self.send_flagged(body, 0)
    }

    /// Sends a client's last message, with END_STREAM: the request stream ends with it.
    ///
    /// # Errors
    /// As [`send`](RawSender::send); on a server's sender, `FailedPrecondition` (its stream ends
    /// with the handler's return).
    pub async fn send_last(mut self, body: Bytes) -> Result<(), Status> {
        if !self.client {
            return Err(Status::failed_precondition(
                "a server's stream ends when its handler returns",
            ));
        }
        let sent = self.send_flagged(body, flags::END_STREAM).await;
        if sent.is_ok() {
            // Ended by its END_STREAM; otherwise dropping the sender sends HALF_CLOSE.
            self.closed = true;
            let id = self.id;
            self.host.with_streams(&mut |streams, _queue, wake| {
                streams.end_outbound(id, wake);
            });
        }
        sent
    }

    /// Ends a client's request stream without a last message (HALF_CLOSE). Dropping the sender
    /// does the same.
    pub fn close(mut self) {
        self.half_close();
    }

    /// The frame body and flags of a message to send, or why it cannot be sent.
    fn prepare(&self, body: Bytes, end: u8) -> Result<(Bytes, u8), Status> {
        if self.closed {
            return Err(Status::failed_precondition("the stream was already closed"));
        }
        let (wire, frame_flags) = match compress_if_smaller(self.compress, &body) {
            Some(c) => (c.freeze(), flags::COMPRESSED | end),
            None => (body, end),
        };
        if wire.len() > self.max_body {
            return Err(Status::resource_exhausted(format!(
                "a message of {} bytes exceeds the largest the receiver takes ({} bytes)",
                wire.len(),
                self.max_body
            )));
        }
        Ok((wire, frame_flags))
    }

    /// A small future, not an `async fn`: a sender's loop creates one per message, and the
    /// state of a larger one was copied each time.
    fn send_flagged(
        &mut self,
        body: Bytes,
        end: u8,
    ) -> impl Future<Output = Result<(), Status>> + Send + '_ {
        // `None` once the future has its outcome: polled again, it sends nothing twice.
        let mut prepared = Some(self.prepare(body, end));
        let (host, id) = (&self.host, self.id);
        std::future::poll_fn(move |cx| {
            let (wire, frame_flags) = match &prepared {
                Some(Ok((wire, frame_flags))) => (wire, *frame_flags),
                Some(Err(_)) => {
                    return Poll::Ready(prepared.take().map_or(Ok(()), |p| p.map(|_| ())));
                }
                None => {
                    return Poll::Ready(Err(Status::failed_precondition("the send already ended")))
                }
            };
            // A sender whose windows always have room would never yield: each message spends
            // the task's cooperative budget, so that the connection's writer (on the same
            // thread, in a current-thread runtime) writes while the handler goes on producing.
            let coop = std::task::ready!(tokio::task::coop::poll_proceed(cx));
            let mut outcome = Poll::Pending;
            host.with_streams(&mut |streams, queue, _wake| {
                let queued = queue.len();
                outcome = match streams.poll_reserve(id, wire.len(), queued, cx) {
                    Poll::Ready(true) => {
                        encode_message(queue, id, frame_flags, wire);
                        Poll::Ready(Ok(()))
                    }
                    Poll::Ready(false) => Poll::Ready(Err(Status::cancelled(
                        "the call ended: its stream takes no more messages",
                    ))),
                    Poll::Pending => Poll::Pending,
                };
            });
            if outcome.is_ready() {
                coop.made_progress();
                prepared = None;
            }
            outcome
        })
    }

    fn half_close(&mut self) {
        if self.closed || !self.client {
            return;
        }
        self.closed = true;
        let id = self.id;
        self.host.with_streams(&mut |streams, queue, wake| {
            if streams.end_outbound(id, wake) {
                encode_half_close(queue, id);
            }
        });
    }
}

impl Drop for RawSender {
    /// A client's request stream that was not ended is closed: the server sees the end of the
    /// requests.
    fn drop(&mut self) {
        self.half_close();
    }
}

/// How many of a streaming call's streams its handler has not taken: a handler that left one
/// is not a method of the call's shape, and its answer is replaced by `Unimplemented`.
pub(crate) type Taken = Arc<std::sync::atomic::AtomicUsize>;

/// Where a server puts a streaming call's [`RawSender`] for its handler: in the request's
/// extensions, taken once.
pub(crate) struct SenderSlot(std::sync::Mutex<Option<RawSender>>, Taken);

impl SenderSlot {
    pub(crate) fn new(sender: RawSender, taken: Taken) -> SenderSlot {
        SenderSlot(std::sync::Mutex::new(Some(sender)), taken)
    }
}

/// The sender a server put in a streaming call's request; `None` for a call that is not
/// server-streaming (or once taken).
pub(crate) fn take_sender(req: &crate::Request) -> Option<RawSender> {
    let slot = req.extensions().get::<SenderSlot>()?;
    let sender = slot.0.lock().unwrap_or_else(|e| e.into_inner()).take();
    if sender.is_some() {
        slot.1.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
    sender
}

/// Where a server puts a client-streaming call's [`RawStreaming`] of requests.
pub(crate) struct RequestsSlot(std::sync::Mutex<Option<RawStreaming>>, Taken);

impl RequestsSlot {
    pub(crate) fn new(requests: RawStreaming, taken: Taken) -> RequestsSlot {
        RequestsSlot(std::sync::Mutex::new(Some(requests)), taken)
    }
}

/// The request stream a server put in a client-streaming call's request (taken once).
pub(crate) fn take_requests(req: &crate::Request) -> Option<RawStreaming> {
    let slot = req.extensions().get::<RequestsSlot>()?;
    let requests = slot.0.lock().unwrap_or_else(|e| e.into_inner()).take();
    if requests.is_some() {
        slot.1.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
    requests
}

/// How a client's stream ends: with the call's RESPONSE, or its deadline.
struct ClientEnd {
    trailer: oneshot::Receiver<Result<Response, Status>>,
    /// The call's deadline bounds the whole stream.
    deadline: Option<Pin<Box<Sleep>>>,
}

/// The receiving half of a stream: the messages as they arrive, then its end. Taking a message
/// gives its credit back to the sender. Dropped before its end, a client's stream cancels the
/// call.
pub struct RawStreaming {
    host: Arc<dyn StreamHost>,
    id: u32,
    /// The largest body a compressed message may expand to.
    max_body: usize,
    /// On a client, the call's RESPONSE (the trailer, with the status) and its deadline; on a
    /// server, `None`: the requests end with END_STREAM or HALF_CLOSE.
    end: Option<ClientEnd>,
    /// The call's RESPONSE, once the stream ended with OK: the trailer of a server stream, or
    /// the reply of a client stream.
    reply: Option<Response>,
    done: bool,
    /// Messages moved out of the connection's queue for this reader to take without its lock
    /// (see `Streams::poll_next`).
    batch: VecDeque<MessageFrame>,
    /// The size, as windows count it, of the batch's messages taken and not yet reported.
    held: u32,
    /// A client's in-flight slot, held until the stream is dropped.
    _permit: Option<Permit>,
}

impl std::fmt::Debug for RawStreaming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawStreaming")
            .field("call_id", &self.id)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl RawStreaming {
    pub(crate) fn client(
        host: Arc<dyn StreamHost>,
        id: u32,
        max_body: usize,
        rx: oneshot::Receiver<Result<Response, Status>>,
        deadline: Option<Instant>,
    ) -> RawStreaming {
        RawStreaming {
            host,
            id,
            max_body,
            end: Some(ClientEnd {
                trailer: rx,
                deadline: deadline.map(|d| Box::pin(tokio::time::sleep_until(d))),
            }),
            reply: None,
            done: false,
            batch: VecDeque::new(),
            held: 0,
            _permit: None,
        }
    }

    pub(crate) fn server(host: Arc<dyn StreamHost>, id: u32, max_body: usize) -> RawStreaming {
        RawStreaming {
            host,
            id,
            max_body,
            end: None,
            reply: None,
            done: false,
            batch: VecDeque::new(),
            held: 0,
            _permit: None,
        }
    }

    /// Holds the channel's in-flight slot for as long as the stream lives.
    pub(crate) fn holding(mut self, permit: Permit) -> RawStreaming {
        self._permit = Some(permit);
        self
    }

    /// The next message: `Ok(None)` at the stream's end.
    ///
    /// # Errors
    /// The call's status when it ended with an error (the server's, a passed deadline, a lost
    /// connection), or `Internal` for a message that does not decompress.
    pub async fn message(&mut self) -> Result<Option<Bytes>, Status> {
        std::future::poll_fn(|cx| self.poll_message(cx))
            .await
            .transpose()
    }

    /// The trailer's metadata, once a client's stream ended with OK.
    pub fn trailers(&self) -> Option<&Metadata> {
        self.reply.as_ref().map(Response::metadata)
    }

    /// A client-streaming call's reply: waits for the end of the call and returns its RESPONSE
    /// (the server sends no stream on such a call).
    ///
    /// # Errors
    /// The call's status, as [`message`](RawStreaming::message); `Internal` if the server
    /// streamed messages instead.
    pub async fn response(&mut self) -> Result<Response, Status> {
        if self.message().await?.is_some() {
            return Err(Status::internal(
                "the server streamed messages where one reply was expected",
            ));
        }
        self.reply
            .take()
            .ok_or_else(|| Status::failed_precondition("the reply was already taken"))
    }

    fn poll_message(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Status>>> {
        if self.done {
            return Poll::Ready(None);
        }
        // A reader that always finds a message spends its task's cooperative budget, so that
        // the connection's driver gets to send the credit it returns (and read more).
        let coop = std::task::ready!(tokio::task::coop::poll_proceed(cx));
        let next = if self.batch.len() > 1 {
            // Taken without the lock; its credit goes back with the batch's last message.
            let m = self.batch.pop_front().map(|m| {
                self.held += size(m.body.len());
                Next::Message(m.body, m.flags)
            });
            Poll::Ready(m.unwrap_or(Next::Gone))
        } else {
            let (id, held) = (self.id, std::mem::take(&mut self.held));
            let batch = &mut self.batch;
            let mut next = Poll::Pending;
            self.host.with_streams(&mut |streams, queue, _wake| {
                next = streams.poll_next(id, held, batch, queue, cx);
            });
            next
        };
        if next.is_ready() {
            coop.made_progress();
        }
        match next {
            Poll::Ready(Next::Message(body, frame_flags)) => {
                if frame_flags & flags::COMPRESSED == 0 {
                    return Poll::Ready(Some(Ok(body)));
                }
                match rpc_codec::decompress(&body, self.max_body) {
                    Ok(b) => Poll::Ready(Some(Ok(b))),
                    Err(e) => {
                        // The call is over for this side: a client tells the server.
                        if self.end.is_some() {
                            self.host.abandon(self.id);
                        }
                        self.finish();
                        Poll::Ready(Some(Err(Status::internal(format!(
                            "a streamed message could not be decompressed: {e}"
                        )))))
                    }
                }
            }
            Poll::Ready(Next::Ended) => self.poll_end(cx),
            // On a server, the call ended (cancelled, or the connection closed) before the
            // client ended its stream: not a clean end.
            Poll::Ready(Next::Gone) if self.end.is_none() => {
                self.finish();
                Poll::Ready(Some(Err(Status::cancelled(
                    "the call ended before the client ended its stream",
                ))))
            }
            Poll::Ready(Next::Gone) => self.poll_end(cx),
            // A server waits for more requests.
            Poll::Pending if self.end.is_none() => Poll::Pending,
            // The trailer may have arrived with the queue empty: every message came before it.
            Poll::Pending => self.poll_end(cx),
        }
    }

    /// Whether the stream has ended: `Ready(None)` at an OK end, `Ready(Some(Err))` at an error.
    fn poll_end(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Status>>> {
        let Some(end) = self.end.as_mut() else {
            // A server's request stream: reached through `Ended` or `Gone` only.
            self.finish();
            return Poll::Ready(None);
        };
        let outcome = match Pin::new(&mut end.trailer).poll(cx) {
            Poll::Ready(Ok(Ok(reply))) => {
                self.reply = Some(reply);
                Poll::Ready(None)
            }
            Poll::Ready(Ok(Err(status))) => Poll::Ready(Some(Err(status))),
            Poll::Ready(Err(_)) => Poll::Ready(Some(Err(Status::unavailable(
                "the connection closed before the stream ended",
            )))),
            Poll::Pending => match end.deadline.as_mut().map(|d| d.as_mut().poll(cx)) {
                Some(Poll::Ready(())) => {
                    self.host.abandon(self.id);
                    Poll::Ready(Some(Err(Status::deadline_exceeded(
                        "deadline exceeded before the stream ended",
                    ))))
                }
                _ => return Poll::Pending,
            },
        };
        self.finish();
        outcome
    }

    /// The stream is done here. A client's call is over with it; a server's call goes on (its
    /// handler may still send), and what the client still sends is discarded with its credit
    /// returned.
    fn finish(&mut self) {
        if !self.done {
            self.done = true;
            let id = self.id;
            let client = self.end.is_some();
            // What the batch held, taken or not: a client's close returns it with the rest of
            // what the call never consumed; a server's discard counts it.
            let held = std::mem::take(&mut self.held)
                + self
                    .batch
                    .drain(..)
                    .map(|m| size(m.body.len()))
                    .sum::<u32>();
            self.host.with_streams(&mut |streams, queue, wake| {
                if client {
                    streams.close(id, queue, wake);
                } else {
                    streams.discard_inbound(id, held, queue);
                }
            });
        }
    }
}

impl futures_core::Stream for RawStreaming {
    type Item = Result<Bytes, Status>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_message(cx)
    }
}

impl Drop for RawStreaming {
    /// Before its end: a client cancels the call; a server drops the requests still to come.
    fn drop(&mut self) {
        if !self.done {
            if self.end.is_some() {
                self.host.abandon(self.id);
            }
            self.finish();
        }
    }
}

/// A stream of typed messages received on a call: the replies of a server stream on the
/// client, the requests of a client stream in a handler. Each message is decoded in the call's
/// codec; taking it gives its credit back to the sender.
pub struct Streaming<T> {
    raw: RawStreaming,
    codec: CodecId,
    codecs: MessageCodecs<T>,
}

impl<T> std::fmt::Debug for Streaming<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Streaming")
            .field("raw", &self.raw)
            .field("codec", &self.codec)
            .finish_non_exhaustive()
    }
}

impl<T> Streaming<T> {
    /// Messages of `raw`, decoded in `codec` (generated code makes these).
    pub fn new(raw: RawStreaming, codec: CodecId, codecs: MessageCodecs<T>) -> Streaming<T> {
        Streaming { raw, codec, codecs }
    }

    /// The next message: `Ok(None)` at the end of the stream.
    ///
    /// # Errors
    /// The call's status when it ended with an error (on a client: the server's, a passed
    /// deadline, a lost connection); `InvalidArgument` for a message that does not decode.
    pub async fn message(&mut self) -> Result<Option<T>, Status> {
        let Some(body) = self.raw.message().await? else {
            return Ok(None);
        };
        self.decode(body).map(Some)
    }

    fn decode(&self, body: Bytes) -> Result<T, Status> {
        self.codecs.decode(self.codec, body).map_err(|e| {
            Status::invalid_argument(format!("a streamed message does not decode: {e}"))
                .with_source(e)
        })
    }

    /// The trailer's metadata, once a client's stream ended with OK.
    pub fn trailers(&self) -> Option<&Metadata> {
        self.raw.trailers()
    }

    /// The untyped stream.
    pub fn into_raw(self) -> RawStreaming {
        self.raw
    }
}

impl<T: Unpin> futures_core::Stream for Streaming<T> {
    type Item = Result<T, Status>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        match this.raw.poll_message(cx) {
            Poll::Ready(Some(Ok(body))) => Poll::Ready(Some(this.decode(body))),
            Poll::Ready(Some(Err(status))) => Poll::Ready(Some(Err(status))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The sending half of a stream of typed messages: the replies of a server-streaming handler,
/// the requests of a client stream. Each message is encoded in the call's codec and waits for
/// the receiver's credit.
pub struct Sender<T> {
    raw: RawSender,
    codec: CodecId,
    codecs: MessageCodecs<T>,
    /// What each message is encoded into: its bytes are copied into the connection's write
    /// queue and dropped before the next message, whose encoding then takes the allocation back
    /// (`BytesMut::reserve` reclaims a buffer no one else holds): no allocation per message.
    scratch: BytesMut,
}

impl<T> std::fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("raw", &self.raw)
            .field("codec", &self.codec)
            .finish_non_exhaustive()
    }
}

/// The most a [`Sender`] keeps of its encoding buffer between messages, in bytes.
const SCRATCH_KEPT: usize = 64 * 1024;

impl<T> Sender<T> {
    /// Encodes messages in `codec` onto `raw` (generated code makes these).
    pub fn new(raw: RawSender, codec: CodecId, codecs: MessageCodecs<T>) -> Sender<T> {
        Sender {
            raw,
            codec,
            codecs,
            scratch: BytesMut::new(),
        }
    }

    fn encode(&mut self, message: &T) -> Result<Bytes, Status> {
        self.scratch.clear();
        self.codecs.encode(self.codec, message, &mut self.scratch)?;
        let body = self.scratch.split().freeze();
        // A large message's buffer is not kept for the stream's life: the scratch lets go of
        // it, and it is freed with the message's bytes.
        if body.len() > SCRATCH_KEPT {
            self.scratch = BytesMut::new();
        }
        Ok(body)
    }

    /// Sends one message, waiting while the receiver has not taken enough of what it was sent.
    ///
    /// # Errors
    /// As [`RawSender::send`], and the codec's error for a message it cannot encode.
    pub async fn send(&mut self, message: &T) -> Result<(), Status> {
        let body = self.encode(message)?;
        self.raw.send(body).await
    }

    /// A client's last message: the request stream ends with it.
    ///
    /// # Errors
    /// As [`RawSender::send_last`].
    pub async fn send_last(mut self, message: &T) -> Result<(), Status> {
        let body = self.encode(message)?;
        self.raw.send_last(body).await
    }

    /// Ends a client's request stream (dropping the sender does too).
    pub fn close(self) {
        self.raw.close();
    }

    /// The untyped sender.
    pub fn into_raw(self) -> RawSender {
        self.raw
    }
}

/// The reply of a client-streaming call: the one message the server answers with once it has
/// read the stream (or earlier: it may answer before the stream ends).
pub struct Reply<T> {
    raw: RawStreaming,
    codec: CodecId,
    codecs: MessageCodecs<T>,
}

impl<T> std::fmt::Debug for Reply<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reply")
            .field("raw", &self.raw)
            .finish_non_exhaustive()
    }
}

impl<T> Reply<T> {
    /// The reply of `raw`'s call, decoded in `codec` (generated code makes these).
    pub fn new(raw: RawStreaming, codec: CodecId, codecs: MessageCodecs<T>) -> Reply<T> {
        Reply { raw, codec, codecs }
    }

    /// Waits for the reply. Dropping the `Reply` before it arrives cancels the call.
    ///
    /// # Errors
    /// The call's status; `Internal` for a reply that does not decode.
    pub async fn get(mut self) -> Result<T, Status> {
        let reply = self.raw.response().await?;
        self.codecs
            .decode(self.codec, reply.into_body())
            .map_err(|e| {
                Status::internal(format!("the server's response could not be decoded: {e}"))
                    .with_source(e)
            })
    }
}
