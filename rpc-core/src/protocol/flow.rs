//! Flow control of protocol 1.1 (`docs/protocol.md` §17.5), as arithmetic: credit in
//! bytes that a receiver grants and a sender spends, per call and per connection, in the manner
//! of HTTP/2 (RFC 9113 §5.2 and §6.9).
//!
//! Only MESSAGE frames spend credit, each its whole size on the wire ([`size`]): the 10-byte
//! header counts, so that a flood of empty messages is bounded like any other (the HTTP/2
//! "empty frames" attack, CVE-2019-9518). A receiver grants credit back once its application
//! has taken the messages ([`RecvWindow::consume`]), never before, so a reader that stops
//! reading stops its sender.
//!
//! ```
//! use rpc_core::protocol::flow::{size, RecvWindow, SendWindow};
//!
//! let (mut send, mut recv) = (SendWindow::new(64), RecvWindow::new(64));
//! assert!(send.try_take(size(22))); // 32 bytes on the wire
//! recv.receive(size(22)).unwrap();
//! assert!(!send.try_take(size(40)), "50 bytes do not fit the 32 left");
//! assert_eq!(recv.update_due(), None, "nothing consumed yet");
//! recv.consume(size(22));
//! let increment = recv.update_due().expect("all consumed: the credit goes back");
//! send.grant(increment).unwrap();
//! assert!(send.try_take(size(40)));
//! ```

use super::{ProtocolError, Settings, HEADER_LEN};

/// The credit a MESSAGE frame with a body of `body_len` bytes spends: header and body, as sent
/// (after compression), saturating at `u32::MAX` (which no window holds).
pub fn size(body_len: usize) -> u32 {
    u32::try_from(HEADER_LEN + body_len).unwrap_or(u32::MAX)
}

/// The largest body a MESSAGE may carry under a window of `window` bytes: no message larger can
/// ever be sent, whatever credit comes back.
pub fn largest_body(window: u32) -> usize {
    (window as usize).saturating_sub(HEADER_LEN)
}

/// A sender's credit: what the receiver granted, less what was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendWindow {
    available: u32,
}

impl SendWindow {
    /// The credit at the start: the receiver's INITIAL_CALL_WINDOW or CONNECTION_WINDOW.
    pub fn new(initial: u32) -> SendWindow {
        SendWindow { available: initial }
    }

    /// Bytes that may be sent now.
    pub fn available(&self) -> u32 {
        self.available
    }

    /// Spends `size` bytes if the window holds them; `false` (and nothing spent) if not.
    pub fn try_take(&mut self, size: u32) -> bool {
        match self.available.checked_sub(size) {
            Some(left) => {
                self.available = left;
                true
            }
            None => false,
        }
    }

    /// Adds the credit of a WINDOW_UPDATE.
    ///
    /// # Errors
    /// [`ProtocolError::FlowControl`] when the window would exceed 2^31−1 (RFC 9113 §6.9.1).
    pub fn grant(&mut self, increment: u32) -> Result<(), ProtocolError> {
        match self.available.checked_add(increment) {
            Some(w) if w <= Settings::MAX_WINDOW => {
                self.available = w;
                Ok(())
            }
            _ => Err(ProtocolError::FlowControl(
                "a WINDOW_UPDATE takes the window above 2^31-1",
            )),
        }
    }
}

/// A receiver's account of a window it granted: the credit the sender still has, the bytes
/// received that the application has not taken, and the bytes taken whose credit has not gone
/// back yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecvWindow {
    initial: u32,
    /// Credit the sender has left, as this side counts it.
    available: u32,
    /// Received, not yet taken by the application.
    unconsumed: u32,
    /// Taken, credit not yet returned.
    returnable: u32,
}

impl RecvWindow {
    /// A window of `initial` bytes, as announced in this side's SETTINGS.
    pub fn new(initial: u32) -> RecvWindow {
        RecvWindow {
            initial,
            available: initial,
            unconsumed: 0,
            returnable: 0,
        }
    }

    /// Bytes received that the application has not taken.
    pub fn unconsumed(&self) -> u32 {
        self.unconsumed
    }

    /// Counts a MESSAGE of `size` bytes ([`size`]) that arrived.
    ///
    /// # Errors
    /// [`ProtocolError::FlowControl`] when the sender had less credit: a connection error.
    pub fn receive(&mut self, size: u32) -> Result<(), ProtocolError> {
        match self.available.checked_sub(size) {
            Some(left) => {
                self.available = left;
                self.unconsumed += size;
                Ok(())
            }
            None => Err(ProtocolError::FlowControl(
                "a MESSAGE exceeded the flow-control window",
            )),
        }
    }

    /// The application took `size` bytes of what arrived (or they were discarded: a call that
    /// ended still returns the connection's credit).
    pub fn consume(&mut self, size: u32) {
        let size = size.min(self.unconsumed);
        self.unconsumed -= size;
        self.returnable += size;
    }

    /// The increment of a WINDOW_UPDATE to send now, if one is due: when half the window was
    /// taken; when everything that arrived was taken (the sender may be waiting to send a
    /// message larger than what it has left, which only a full return lets through); or when
    /// what was taken is at least what the sender has left (messages that stay unread, say of
    /// stalled streams sharing a connection window, must not keep the rest from ever reaching
    /// half the window).
    pub fn update_due(&mut self) -> Option<u32> {
        let due = self.returnable > 0
            && (self.returnable >= self.initial / 2
                || self.unconsumed == 0
                || self.returnable >= self.available);
        if !due {
            return None;
        }
        let increment = std::mem::take(&mut self.returnable);
        self.available += increment;
        Some(increment)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_window_update_past_the_maximum_is_an_error() {
        let mut w = SendWindow::new(Settings::MAX_WINDOW - 5);
        assert!(w.grant(5).is_ok());
        assert!(matches!(w.grant(1), Err(ProtocolError::FlowControl(_))));
        let mut w = SendWindow::new(10);
        assert!(matches!(
            w.grant(u32::MAX),
            Err(ProtocolError::FlowControl(_))
        ));
        assert_eq!(w.available(), 10, "a refused grant changes nothing");
    }

    #[test]
    fn a_message_over_the_window_is_an_error() {
        let mut r = RecvWindow::new(100);
        r.receive(60).unwrap();
        assert!(matches!(r.receive(41), Err(ProtocolError::FlowControl(_))));
        r.receive(40).unwrap();
    }

    #[test]
    fn credit_goes_back_at_half_the_window_or_when_all_is_taken() {
        let mut r = RecvWindow::new(100);
        r.receive(30).unwrap();
        r.receive(30).unwrap();
        r.consume(30);
        assert_eq!(r.update_due(), None, "30 of 100 taken, 30 still unread");
        r.consume(30);
        assert_eq!(r.update_due(), Some(60));
        r.receive(20).unwrap();
        r.receive(20).unwrap();
        r.consume(20);
        assert_eq!(r.update_due(), None);
        r.consume(20);
        assert_eq!(r.update_due(), Some(40), "all taken: everything goes back");
        assert_eq!(r.update_due(), None);
    }

    #[test]
    fn stalled_messages_do_not_keep_the_rest_from_getting_credit_back() {
        // 9 of 16 units stay unread (stalled streams); the other 7 are taken. Half the window
        // (8) is never reached, yet the sender, with nothing left, must get the 7 back.
        let (mut send, mut recv) = (SendWindow::new(16), RecvWindow::new(16));
        assert!(send.try_take(16));
        recv.receive(9).unwrap();
        recv.receive(7).unwrap();
        recv.consume(7);
        assert_eq!(recv.update_due(), Some(7));
        send.grant(7).unwrap();
        assert_eq!(send.available(), 7);
    }

    #[test]
    fn a_small_message_then_one_as_large_as_the_window_gets_through() {
        // 20 KiB sent and taken, then a message of the whole window: only a full return of the
        // 20 KiB lets it through (half the window was never taken).
        let window = 1 << 20;
        let (mut send, mut recv) = (SendWindow::new(window), RecvWindow::new(window));
        assert!(send.try_take(size(20 << 10)));
        recv.receive(size(20 << 10)).unwrap();
        let large = size(largest_body(window));
        assert!(!send.try_take(large));
        recv.consume(size(20 << 10));
        send.grant(recv.update_due().expect("returned")).unwrap();
        assert!(send.try_take(large));
    }

    proptest! {
        /// A sender that spends only what it has never overflows its receiver, and with a
        /// reader that takes everything, every message up to the largest gets through.
        #[test]
        fn conforming_peers_never_overflow_and_never_stall(
            window in Settings::MIN_WINDOW..(4 << 20),
            sizes in proptest::collection::vec(0usize..(4 << 20), 1..60),
            reads_per_step in 1usize..4,
        ) {
            let (mut send, mut recv) = (SendWindow::new(window), RecvWindow::new(window));
            let mut in_flight = std::collections::VecDeque::new();
            let mut unread = std::collections::VecDeque::new();
            let mut sent = 0;
            let bodies: Vec<usize> = sizes.iter().map(|s| s % (largest_body(window) + 1)).collect();
            for _ in 0..10_000 {
                if sent == bodies.len() && in_flight.is_empty() && unread.is_empty() {
                    break;
                }
                // The sender sends what its credit allows.
                while sent < bodies.len() && send.try_take(size(bodies[sent])) {
                    in_flight.push_back(size(bodies[sent]));
                    sent += 1;
                }
                // The frames arrive.
                while let Some(s) = in_flight.pop_front() {
                    prop_assert!(recv.receive(s).is_ok());
                    unread.push_back(s);
                }
                // The reader takes a few, and credit goes back when due.
                for _ in 0..reads_per_step {
                    if let Some(s) = unread.pop_front() {
                        recv.consume(s);
                    }
                }
                if let Some(inc) = recv.update_due() {
                    prop_assert!(send.grant(inc).is_ok());
                }
            }
            prop_assert_eq!(sent, bodies.len(), "the sender stalled");
        }
    }
}
