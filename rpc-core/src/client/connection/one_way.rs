//! When a one-way call is done. A one-way REQUEST gets no RESPONSE, so the client keeps its caller
//! waiting until the server proves that it read the frame before any go-away (`docs/protocol.md`,
//! section 5): a PONG to a PING written after the request, a RESPONSE to a later call, or a
//! go-away (NO_ERROR) whose `last_call_id` covers it. A go-away whose `last_call_id` is lower says
//! it was not processed.

use std::collections::VecDeque;

use tokio::sync::oneshot;

use super::Reply;

/// The high 32 bits of the value of a PING the client writes after requests of one-way calls
/// (ASCII `ONEW`); the low 32 bits are the highest call id written before it. Keepalive pings count
/// up from 1, so they never carry it.
const ACK_PING_TAG: u64 = 0x4f4e_4557 << 32;

/// The call id a PONG with this value acknowledges, if it answers one of our acknowledgement pings.
pub(super) fn acked_by_pong(value: u64) -> Option<u32> {
    (value & !u64::from(u32::MAX) == ACK_PING_TAG).then_some(value as u32)
}

/// The one-way calls of a connection whose callers wait to hear that the server read them.
#[derive(Debug, Default)]
pub(super) struct OneWayAcks {
    /// In call-id order (ids increase as calls are queued).
    waiting: VecDeque<(u32, oneshot::Sender<Reply>)>,
    /// The highest call id an acknowledgement PING was written after.
    pinged_upto: u32,
}

pub(super) type Waiter = oneshot::Sender<Reply>;

impl OneWayAcks {
    pub(super) fn push(&mut self, id: u32, tx: Waiter) {
        self.waiting.push_back((id, tx));
    }

    pub(super) fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// A batch holding the calls up to `taken_upto` became the write buffer: the value of the PING
    /// to write after it, if a one-way call in it is not yet followed by one.
    pub(super) fn ping_after(&mut self, taken_upto: u32) -> Option<u64> {
        let &(last, _) = self.waiting.back()?;
        if last <= self.pinged_upto {
            return None;
        }
        self.pinged_upto = taken_upto;
        Some(ACK_PING_TAG | u64::from(taken_upto))
    }

    /// Moves the calls with ids up to `upto` (the server read them) to `out`.
    pub(super) fn take_upto(&mut self, upto: u32, out: &mut Vec<Waiter>) {
        while self.waiting.front().is_some_and(|&(id, _)| id <= upto) {
            if let Some((_, tx)) = self.waiting.pop_front() {
                out.push(tx);
            }
        }
    }

    /// Moves the calls with ids above `last` (a go-away says they were not processed) to `out`.
    pub(super) fn take_above(&mut self, last: u32, out: &mut Vec<Waiter>) {
        while self.waiting.back().is_some_and(|&(id, _)| id > last) {
            if let Some((_, tx)) = self.waiting.pop_back() {
                out.push(tx);
            }
        }
    }

    /// Every call still waiting, with its id.
    pub(super) fn take_all(&mut self) -> VecDeque<(u32, Waiter)> {
        std::mem::take(&mut self.waiting)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acks(ids: &[u32]) -> OneWayAcks {
        let mut acks = OneWayAcks::default();
        for &id in ids {
            acks.push(id, oneshot::channel().0);
        }
        acks
    }

    #[test]
    fn one_ping_per_batch_with_unacknowledged_calls() {
        let mut a = acks(&[2, 3]);
        let v = a.ping_after(4).unwrap();
        assert_eq!(acked_by_pong(v), Some(4));
        // Nothing new since: no second ping.
        assert_eq!(a.ping_after(5), None);
        a.push(7, oneshot::channel().0);
        assert_eq!(acked_by_pong(a.ping_after(7).unwrap()), Some(7));
        // Keepalive values are not acknowledgements.
        assert_eq!(acked_by_pong(1), None);
        assert_eq!(acked_by_pong(u64::from(u32::MAX)), None);
    }

    #[test]
    fn acknowledgements_and_go_away_split_by_id() {
        let mut a = acks(&[1, 3, 5, 7]);
        let mut out = Vec::new();
        a.take_upto(3, &mut out);
        assert_eq!(out.len(), 2);
        out.clear();
        a.take_above(5, &mut out);
        assert_eq!(out.len(), 1);
        let rest: Vec<u32> = a.take_all().into_iter().map(|(id, _)| id).collect();
        assert_eq!(rest, [5]);
        assert!(a.is_empty());
    }
}
