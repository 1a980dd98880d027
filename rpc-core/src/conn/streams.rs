//! The streams of a connection's streaming calls (protocol 1.1, `docs/protocol.md` §17): the
//! messages received and not yet taken, and the credit to send, per call and for the connection.
//! Each side keeps one [`Streams`] inside the mutex that guards its
//! [`WriteQueue`](super::WriteQueue), so that credit returned and messages sent are encoded in
//! order with the rest.

use std::collections::VecDeque;
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};

use super::{IdMap, WRITE_HIGH_WATER};
use crate::protocol::flow::{size, RecvWindow, SendWindow};
use crate::protocol::{encode_window_update, flags, MessageFrame, ProtocolError, Settings};

/// The most a reader moves into its batch at a time, in bytes as windows count them: what
/// credit a reader may hold back, beyond the messages it has not taken, until its batch's last
/// message (see [`Streams::poll_next`]).
pub(crate) const READ_BATCH: usize = 16 * 1024;

/// What a call receives: messages not yet taken, and whether the peer ended its stream.
#[derive(Debug)]
struct Inbound {
    window: RecvWindow,
    messages: VecDeque<MessageFrame>,
    /// The peer sent END_STREAM or HALF_CLOSE (or, to a client, the trailer).
    ended: bool,
    /// The connection closed: what arrived before is still taken, then the stream is `Gone`.
    aborted: bool,
    /// The application dropped the stream: what arrives is discarded and its credit returned.
    discarding: bool,
    reader: Option<Waker>,
}

/// What a call sends: its credit, and the task waiting for more.
#[derive(Debug)]
struct Outbound {
    window: SendWindow,
    writer: Option<Waker>,
    /// The writer waits for connection credit (or room in the write queue), not the call's.
    waits_for_connection: bool,
}

#[derive(Debug, Default)]
struct CallStream {
    inbound: Option<Inbound>,
    outbound: Option<Outbound>,
}

/// One message taken by the application, or where the stream stands.
#[derive(Debug)]
pub(crate) enum Next {
    /// A message: its body and flags (COMPRESSED).
    Message(Bytes, u8),
    /// The peer ended its stream: no more messages.
    Ended,
    /// The call is not (or no longer) streaming on this connection: it ended, was cancelled, or
    /// the connection closed.
    Gone,
}

/// The streaming calls of one connection.
#[derive(Debug)]
pub(crate) struct Streams {
    calls: IdMap<CallStream>,
    recv_conn: RecvWindow,
    send_conn: SendWindow,
    /// The credit each call starts with to send: the peer's INITIAL_CALL_WINDOW.
    send_call_initial: u32,
    /// The connection's credit to send at its start: the peer's CONNECTION_WINDOW.
    send_conn_initial: u32,
    /// The credit each call grants at its start: ours.
    recv_call_initial: u32,
    /// This side is the server: END_STREAM from the peer ends a request stream (a client
    /// ignores the flag, which a server never sets).
    server: bool,
}

impl Streams {
    /// The windows of a connection between `local` and `peer` settings, on the server side or
    /// the client's.
    pub(crate) fn new(local: &Settings, peer: &Settings, server: bool) -> Streams {
        Streams {
            calls: IdMap::default(),
            recv_conn: RecvWindow::new(local.connection_window),
            send_conn: SendWindow::new(peer.connection_window),
            send_call_initial: peer.initial_call_window,
            send_conn_initial: peer.connection_window,
            recv_call_initial: local.initial_call_window,
            server,
        }
    }

    /// Registers a streaming call that receives messages (`inbound`), sends them (`outbound`), or
    /// both.
    pub(crate) fn open(&mut self, id: u32, inbound: bool, outbound: bool) {
        let call = CallStream {
            inbound: inbound.then(|| Inbound {
                window: RecvWindow::new(self.recv_call_initial),
                messages: VecDeque::new(),
                ended: false,
                aborted: false,
                discarding: false,
                reader: None,
            }),
            outbound: outbound.then(|| Outbound {
                window: SendWindow::new(self.send_call_initial),
                writer: None,
                waits_for_connection: false,
            }),
        };
        self.calls.insert(id, call);
    }

    /// Whether call `id` is streaming and receives a stream of messages on this side.
    pub(crate) fn receives(&self, id: u32) -> bool {
        self.calls.get(&id).is_some_and(|c| c.inbound.is_some())
    }

    /// The largest message body the peer's windows can ever take: the smaller of its call and
    /// connection windows.
    pub(crate) fn largest_body(&self) -> usize {
        let window = self.send_call_initial.min(self.send_conn_initial);
        crate::protocol::flow::largest_body(window)
    }

    /// A MESSAGE arrived. For a call this side no longer knows (it ended), or whose stream the
    /// application dropped, the message is discarded and its credit goes back at once. Returns
    /// the reader to wake.
    ///
    /// # Errors
    /// A connection error: a message over the windows ([`ProtocolError::FlowControl`]), for a
    /// call that receives no stream, or after the stream's end.
    pub(crate) fn on_message(
        &mut self,
        m: MessageFrame,
        queue: &mut BytesMut,
    ) -> Result<Option<Waker>, ProtocolError> {
        let cost = size(m.body.len());
        self.recv_conn.receive(cost)?;
        let Some(call) = self.calls.get_mut(&m.call_id) else {
            self.recv_conn.consume(cost);
            self.return_credit(queue);
            return Ok(None);
        };
        let Some(inbound) = call.inbound.as_mut() else {
            return Err(ProtocolError::Malformed(
                "a MESSAGE for a call without a stream in that direction",
            ));
        };
        if inbound.ended {
            return Err(ProtocolError::Malformed(
                "a MESSAGE after the end of its stream",
            ));
        }
        inbound.window.receive(cost)?;
        if self.server && m.flags & flags::END_STREAM != 0 {
            inbound.ended = true;
        }
        if inbound.discarding {
            inbound.window.consume(cost);
            if let Some(increment) = (!inbound.ended)
                .then(|| inbound.window.update_due())
                .flatten()
            {
                encode_window_update(queue, m.call_id, increment);
            }
            self.recv_conn.consume(cost);
            self.return_credit(queue);
            return Ok(None);
        }
        inbound.messages.push_back(m);
        Ok(inbound.reader.take())
    }

    /// The peer ended the stream it sends on `id` (HALF_CLOSE). Returns the reader to wake.
    ///
    /// # Errors
    /// A HALF_CLOSE for a call that receives no stream, or twice.
    pub(crate) fn on_end(&mut self, id: u32) -> Result<Option<Waker>, ProtocolError> {
        let Some(call) = self.calls.get_mut(&id) else {
            return Ok(None);
        };
        match call.inbound.as_mut() {
            Some(inbound) if !inbound.ended => {
                inbound.ended = true;
                Ok(inbound.reader.take())
            }
            Some(_) => Err(ProtocolError::Malformed(
                "HALF_CLOSE after the end of its stream",
            )),
            None => Err(ProtocolError::Malformed(
                "HALF_CLOSE for a call without a request stream",
            )),
        }
    }

    /// A WINDOW_UPDATE arrived; the writers it may unblock are added to `wake`.
    ///
    /// # Errors
    /// [`ProtocolError::FlowControl`] when a window would exceed 2^31−1.
    pub(crate) fn on_window_update(
        &mut self,
        id: u32,
        increment: u32,
        wake: &mut Vec<Waker>,
    ) -> Result<(), ProtocolError> {
        if id == 0 {
            self.send_conn.grant(increment)?;
            for out in self.calls.values_mut().filter_map(|c| c.outbound.as_mut()) {
                if std::mem::take(&mut out.waits_for_connection) {
                    wake.extend(out.writer.take());
                }
            }
            return Ok(());
        }
        // A call that ended here, or that sends nothing: its credit is of no use.
        if let Some(out) = self.calls.get_mut(&id).and_then(|c| c.outbound.as_mut()) {
            out.window.grant(increment)?;
            if !out.waits_for_connection {
                wake.extend(out.writer.take());
            }
        }
        Ok(())
    }

    /// Reserves the credit to send a body of `len` bytes on `id`: `Ready(true)` once both windows
    /// held it (it is spent), `Ready(false)` if the call sends no stream (any more); otherwise
    /// `cx` is woken when credit comes back. `queued` is what waits in the write queue: over
    /// [`WRITE_HIGH_WATER`] the writer waits too (a peer that grants large windows and does not
    /// read must not make this side buffer them), and [`Streams::on_drained`] wakes it.
    pub(crate) fn poll_reserve(
        &mut self,
        id: u32,
        len: usize,
        queued: usize,
        cx: &mut Context<'_>,
    ) -> Poll<bool> {
        let cost = size(len);
        let Some(out) = self.calls.get_mut(&id).and_then(|c| c.outbound.as_mut()) else {
            return Poll::Ready(false);
        };
        if out.window.available() < cost {
            out.writer = Some(cx.waker().clone());
            out.waits_for_connection = false;
            return Poll::Pending;
        }
        if self.send_conn.available() < cost || queued >= WRITE_HIGH_WATER {
            out.writer = Some(cx.waker().clone());
            out.waits_for_connection = true;
            return Poll::Pending;
        }
        out.window.try_take(cost);
        self.send_conn.try_take(cost);
        Poll::Ready(true)
    }

    /// The write queue was taken by the connection's driver: writers that waited for room are
    /// woken (those waiting for credit wake with it).
    pub(crate) fn on_drained(&mut self, wake: &mut Vec<Waker>) {
        for out in self.calls.values_mut().filter_map(|c| c.outbound.as_mut()) {
            if out.waits_for_connection && self.send_conn.available() > 0 {
                out.waits_for_connection = false;
                wake.extend(out.writer.take());
            }
        }
    }

    /// Takes the next message of `id`'s inbound stream for its reader, returning its credit (a
    /// WINDOW_UPDATE is encoded into `queue` when one is due; the caller wakes the writer).
    /// `Pending` with `cx` registered while none has arrived.
    ///
    /// The reader keeps a `batch`: with the message, up to [`READ_BATCH`] bytes (and a quarter of
    /// the call's window) of those queued
    /// behind it move there, so that it takes them without the lock. They stay unconsumed (their
    /// credit held, as for messages still queued here) until the reader takes them and reports
    /// their size as `held` in this call, which it makes at the latest for the last message of a
    /// batch: the credit of a whole batch goes back when its last message is taken, as it would
    /// have one message at a time.
    pub(crate) fn poll_next(
        &mut self,
        id: u32,
        held: u32,
        batch: &mut VecDeque<MessageFrame>,
        queue: &mut BytesMut,
        cx: &mut Context<'_>,
    ) -> Poll<Next> {
        // A reader's batch is at most a quarter of the call's window, so that a batch left
        // partly unread never holds a whole window's credit.
        let batch_bytes = READ_BATCH.min(self.recv_call_initial as usize / 4);
        let Some(inbound) = self.calls.get_mut(&id).and_then(|c| c.inbound.as_mut()) else {
            // The call ended (its credit went back with it): what the reader already holds is
            // still delivered, as after a connection loss, then the stream is gone.
            return Poll::Ready(
                batch
                    .pop_front()
                    .map_or(Next::Gone, |m| Next::Message(m.body, m.flags)),
            );
        };
        inbound.window.consume(held);
        self.recv_conn.consume(held);
        let taken = batch.pop_front().or_else(|| inbound.messages.pop_front());
        let next = match taken {
            Some(m) => {
                let cost = size(m.body.len());
                inbound.window.consume(cost);
                self.recv_conn.consume(cost);
                if batch.is_empty() {
                    let mut room = batch_bytes;
                    while let Some(cost) = inbound.messages.front().map(|m| size(m.body.len())) {
                        if cost as usize > room {
                            break;
                        }
                        room -= cost as usize;
                        batch.extend(inbound.messages.pop_front());
                    }
                }
                Poll::Ready(Next::Message(m.body, m.flags))
            }
            None if inbound.aborted => Poll::Ready(Next::Gone),
            None if inbound.ended => Poll::Ready(Next::Ended),
            None => {
                inbound.reader = Some(cx.waker().clone());
                Poll::Pending
            }
        };
        // No more credit for a stream that ended: the peer sends nothing more on it.
        let due = (!inbound.ended)
            .then(|| inbound.window.update_due())
            .flatten();
        if let Some(increment) = due {
            encode_window_update(queue, id, increment);
        }
        self.return_credit(queue);
        next
    }

    /// The application dropped `id`'s inbound stream while the call goes on (a handler that read
    /// what it needed): what it never took, and what still arrives, is discarded and its credit
    /// returned, so that the peer is not held up; the reply stream stays.
    /// `held` is what the reader held in its batch, taken or not.
    pub(crate) fn discard_inbound(&mut self, id: u32, held: u32, queue: &mut BytesMut) {
        let Some(inbound) = self.calls.get_mut(&id).and_then(|c| c.inbound.as_mut()) else {
            return;
        };
        inbound.discarding = true;
        let unread: u32 = held
            + inbound
                .messages
                .drain(..)
                .map(|m| size(m.body.len()))
                .sum::<u32>();
        inbound.window.consume(unread);
        if let Some(increment) = (!inbound.ended)
            .then(|| inbound.window.update_due())
            .flatten()
        {
            encode_window_update(queue, id, increment);
        }
        self.recv_conn.consume(unread);
        self.return_credit(queue);
    }

    /// The call ended on this side: forgets it, returning the connection credit of the messages
    /// it never took, and wakes whoever waits on it.
    pub(crate) fn close(&mut self, id: u32, queue: &mut BytesMut, wake: &mut Vec<Waker>) {
        let Some(call) = self.calls.remove(&id) else {
            return;
        };
        if let Some(inbound) = call.inbound {
            self.recv_conn.consume(inbound.window.unconsumed());
            wake.extend(inbound.reader);
            self.return_credit(queue);
        }
        if let Some(out) = call.outbound {
            wake.extend(out.writer);
        }
    }

    /// This side's stream on `id` ends (a client's HALF_CLOSE or last message, or the server
    /// answered): later sends fail, and a writer waiting for credit is woken to see it. `false`
    /// if there was no such stream.
    pub(crate) fn end_outbound(&mut self, id: u32, wake: &mut Vec<Waker>) -> bool {
        match self.calls.get_mut(&id).and_then(|c| c.outbound.take()) {
            Some(out) => {
                wake.extend(out.writer);
                true
            }
            None => false,
        }
    }

    /// The connection is gone: no stream receives or sends any more, and everyone waiting is
    /// woken. Messages that arrived before stay to be taken: a reader gets them, then `Gone`
    /// (and the call's status says why).
    pub(crate) fn close_all(&mut self, wake: &mut Vec<Waker>) {
        for call in self.calls.values_mut() {
            if let Some(inbound) = call.inbound.as_mut() {
                inbound.aborted = true;
                wake.extend(inbound.reader.take());
            }
            wake.extend(call.outbound.take().and_then(|o| o.writer));
        }
    }

    /// Encodes the connection's WINDOW_UPDATE when one is due.
    fn return_credit(&mut self, queue: &mut BytesMut) {
        if let Some(increment) = self.recv_conn.update_due() {
            encode_window_update(queue, 0, increment);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{features, Frame, FrameDecoder};
    use std::task::Waker;

    fn settings(call: u32, conn: u32) -> Settings {
        Settings {
            features: features::STREAMING,
            initial_call_window: call,
            connection_window: conn,
            ..Settings::protocol_default()
        }
    }

    fn message(id: u32, len: usize, flags: u8) -> MessageFrame {
        MessageFrame {
            call_id: id,
            flags,
            body: Bytes::from(vec![7; len]),
        }
    }

    fn updates(queue: &mut BytesMut) -> Vec<(u32, u32)> {
        let s = settings(1 << 20, 1 << 20);
        let d = FrameDecoder::negotiated(&s, &s);
        let mut out = Vec::new();
        while let Some(Frame::WindowUpdate { call_id, increment }) = d.decode(queue).unwrap() {
            out.push((call_id, increment));
        }
        out
    }

    #[test]
    fn messages_are_taken_in_order_and_their_credit_goes_back() {
        let s = settings(16_384, 65_536);
        let mut streams = Streams::new(&s, &s, true);
        streams.open(1, true, false);
        let mut queue = BytesMut::new();
        streams.on_message(message(1, 100, 0), &mut queue).unwrap();
        streams
            .on_message(message(1, 50, flags::END_STREAM), &mut queue)
            .unwrap();
        let mut cx = Context::from_waker(Waker::noop());
        let mut batch = VecDeque::new();
        let Poll::Ready(Next::Message(b, _)) =
            streams.poll_next(1, 0, &mut batch, &mut queue, &mut cx)
        else {
            panic!("a message")
        };
        assert_eq!(b.len(), 100);
        assert!(matches!(
            streams.poll_next(1, 0, &mut batch, &mut queue, &mut cx),
            Poll::Ready(Next::Message(..))
        ));
        assert!(matches!(
            streams.poll_next(1, 0, &mut batch, &mut queue, &mut cx),
            Poll::Ready(Next::Ended)
        ));
        // The stream ended, so only the connection's credit goes back: all 160 bytes.
        assert_eq!(updates(&mut queue), vec![(0, 170)]);
    }

    /// Streams (on the server side or not) with call 1 open toward them, a call window of
    /// `window` bytes, and twelve messages of 1,000 bytes received on it.
    fn twelve_received(window: u32, server: bool) -> (Streams, BytesMut) {
        let s = settings(window, 1 << 20);
        let mut streams = Streams::new(&s, &s, server);
        streams.open(1, true, false);
        let mut queue = BytesMut::new();
        for _ in 0..12 {
            streams
                .on_message(message(1, 1_000, 0), &mut queue)
                .unwrap();
        }
        (streams, queue)
    }

    #[test]
    fn a_batch_returns_its_credit_with_its_last_message() {
        // A 64 KiB call window: batches of up to 16 KiB, and an update due at half the window or
        // once everything received was taken.
        let (mut streams, mut queue) = twelve_received(65_536, false);
        let mut cx = Context::from_waker(Waker::noop());
        let mut batch = VecDeque::new();
        // The first message is taken with the lock; the eleven behind it move to the batch.
        assert!(matches!(
            streams.poll_next(1, 0, &mut batch, &mut queue, &mut cx),
            Poll::Ready(Next::Message(..))
        ));
        assert_eq!(batch.len(), 11);
        assert!(updates(&mut queue).is_empty(), "1,010 bytes taken");
        // The reader takes ten without the lock: their credit is held, not lost.
        let held: u32 = batch.drain(..10).map(|m| size(m.body.len())).sum();
        assert!(updates(&mut queue).is_empty());
        // With the batch's last message, all of it goes back, to the call and the connection.
        assert!(matches!(
            streams.poll_next(1, held, &mut batch, &mut queue, &mut cx),
            Poll::Ready(Next::Message(..))
        ));
        assert_eq!(updates(&mut queue), vec![(1, 12 * 1_010), (0, 12 * 1_010)]);
    }

    #[test]
    fn a_batch_is_a_quarter_of_a_small_window_and_outlives_its_call() {
        let (mut streams, mut queue) = twelve_received(16_384, false);
        let mut cx = Context::from_waker(Waker::noop());
        let mut batch = VecDeque::new();
        assert!(streams
            .poll_next(1, 0, &mut batch, &mut queue, &mut cx)
            .is_ready());
        assert_eq!(batch.len(), 4, "4,040 bytes fit a quarter of 16 KiB");
        // The call ends: what the reader holds is delivered, then the stream is gone.
        streams.close(1, &mut queue, &mut Vec::new());
        for _ in 0..4 {
            assert!(matches!(
                streams.poll_next(1, 0, &mut batch, &mut queue, &mut cx),
                Poll::Ready(Next::Message(..))
            ));
        }
        assert!(matches!(
            streams.poll_next(1, 0, &mut batch, &mut queue, &mut cx),
            Poll::Ready(Next::Gone)
        ));
    }

    #[test]
    fn a_batch_dropped_by_a_handler_returns_its_credit() {
        let (mut streams, mut queue) = twelve_received(65_536, true);
        let mut cx = Context::from_waker(Waker::noop());
        let mut batch = VecDeque::new();
        assert!(streams
            .poll_next(1, 0, &mut batch, &mut queue, &mut cx)
            .is_ready());
        // The handler drops its requests with eleven in its batch (taken or not).
        let held: u32 = batch.iter().map(|m| size(m.body.len())).sum();
        streams.discard_inbound(1, held, &mut queue);
        assert_eq!(updates(&mut queue), vec![(1, 12 * 1_010), (0, 12 * 1_010)]);
    }

    #[test]
    fn a_reader_that_stops_stops_the_sender() {
        let s = settings(16_384, 1 << 20);
        let (mut sender, mut receiver) = (Streams::new(&s, &s, true), Streams::new(&s, &s, true));
        sender.open(1, false, true);
        receiver.open(1, true, false);
        let mut cx = Context::from_waker(Waker::noop());
        let mut sent = 0;
        while sender.poll_reserve(1, 1_000, 0, &mut cx).is_ready() {
            receiver
                .on_message(message(1, 1_000, 0), &mut BytesMut::new())
                .unwrap();
            sent += 1;
        }
        assert_eq!(
            sent,
            16_384 / 1_010,
            "the call's window is spent, nothing buffered beyond"
        );
        // The reader takes everything: the call's credit goes back and the sender goes on.
        let (mut queue, mut batch) = (BytesMut::new(), VecDeque::new());
        for _ in 0..sent {
            assert!(receiver
                .poll_next(1, 0, &mut batch, &mut queue, &mut cx)
                .is_ready());
        }
        let mut wake = Vec::new();
        for (id, inc) in updates(&mut queue) {
            sender.on_window_update(id, inc, &mut wake).unwrap();
        }
        assert!(sender.poll_reserve(1, 1_000, 0, &mut cx).is_ready());
    }

    #[test]
    fn a_writer_waiting_for_connection_credit_is_woken_when_its_stream_ends() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        struct Count(AtomicUsize);
        impl std::task::Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let peer = settings(1 << 20, 16_384);
        let mut streams = Streams::new(&settings(1 << 20, 1 << 20), &peer, false);
        streams.open(1, false, true);
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        // The connection window (16 KiB) is spent before the call's (1 MiB).
        assert!(streams.poll_reserve(1, 16_000, 0, &mut cx).is_ready());
        assert!(streams.poll_reserve(1, 1_000, 0, &mut cx).is_pending());
        let mut wake = Vec::new();
        assert!(streams.end_outbound(1, &mut wake));
        wake.into_iter().for_each(Waker::wake);
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        // A full write queue holds a writer back too, until it drains.
        streams.open(3, false, true);
        let mut wake = Vec::new();
        streams.on_window_update(0, 100_000, &mut wake).unwrap();
        let full = WRITE_HIGH_WATER;
        assert!(streams.poll_reserve(3, 10, full, &mut cx).is_pending());
        streams.on_drained(&mut wake);
        assert_eq!(wake.len(), 1);
        assert!(streams.poll_reserve(3, 10, 0, &mut cx).is_ready());
    }

    #[test]
    fn bad_messages_are_connection_errors_and_late_ones_are_dropped() {
        let s = settings(16_384, 1 << 20);
        let mut streams = Streams::new(&s, &s, true);
        let mut queue = BytesMut::new();
        streams.open(1, false, true);
        assert!(matches!(
            streams.on_message(message(1, 1, 0), &mut queue),
            Err(ProtocolError::Malformed(_))
        ));
        streams.open(3, true, false);
        assert!(matches!(
            streams.on_message(message(3, 16_375, 0), &mut queue),
            Err(ProtocolError::FlowControl(_))
        ));
        streams.open(5, true, false);
        streams
            .on_message(message(5, 1, flags::END_STREAM), &mut queue)
            .unwrap();
        assert!(streams.on_message(message(5, 1, 0), &mut queue).is_err());
        assert!(streams.on_end(5).is_err(), "HALF_CLOSE after END_STREAM");
        // A message for a call that ended here is dropped, its connection credit returned.
        let mut streams = Streams::new(&s, &s, true);
        let mut wake = Vec::new();
        streams.open(5, true, false);
        streams.on_message(message(5, 10, 0), &mut queue).unwrap();
        queue.clear();
        streams.close(5, &mut queue, &mut wake);
        assert_eq!(
            updates(&mut queue),
            vec![(0, 20)],
            "what it never took goes back"
        );
        streams
            .on_message(message(9, 30_000, 0), &mut queue)
            .unwrap();
        assert_eq!(updates(&mut queue), vec![(0, 30_010)]);
    }
}
