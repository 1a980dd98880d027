//! The cancellation tokens of the calls served on one connection ([`CallCancels`]): made only for
//! calls whose handlers ask for one, cancelled when a call ends without its handler finishing.
//!
//! A call's token is made on first use, and only while the call runs, so that a call that never
//! asks costs no allocation and no lock on the inline path. Two facts say that a call runs: the
//! connection is polling its handler for the first time (one atomic, [`CallCancels::first_poll`]),
//! or the handler moved to a task of its own (an entry in `live`, added when it moves and removed
//! when it ends).

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::task::Poll;

use tokio_util::sync::CancellationToken;

use crate::conn::IdMap;
use crate::context::CancelSource;

/// One connection's call tokens. Shared by the connection's driver and every context of a call
/// served on it.
#[derive(Default)]
pub(super) struct CallCancels {
    /// The call whose handler the connection is polling for the first time, on its own task; 0
    /// for none.
    first_poll: AtomicU32,
    /// Tokens made and not yet settled (an upper bound): a call that ends inline looks for its
    /// token only when some exist.
    issued: AtomicUsize,
    state: Mutex<State>,
    /// Cancelled when the server starts its graceful shutdown (see `Context::draining`).
    draining: CancellationToken,
}

#[derive(Default)]
struct State {
    /// Calls whose handlers run on their own tasks, with their token once one was asked for; and
    /// calls that asked for one during their first poll.
    live: IdMap<Option<CancellationToken>>,
    /// The connection is gone: every call on it ended.
    closed: bool,
}

impl CallCancels {
    /// The tokens of a connection whose server cancels `draining` when it starts to shut down.
    pub(super) fn new(draining: CancellationToken) -> CallCancels {
        CallCancels {
            draining,
            ..CallCancels::default()
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every change leaves the map consistent, so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Polls a call's handler for the first time, on the connection's task. A handler still
    /// pending moves to its own task: the call is recorded as running before this returns.
    pub(super) fn first_poll<T>(&self, id: u32, poll: impl FnOnce() -> Poll<T>) -> Poll<T> {
        self.first_poll.store(id, Ordering::Relaxed);
        let polled = poll();
        if polled.is_pending() {
            self.lock().live.entry(id).or_insert(None);
        }
        // SeqCst, as `issued` in `end_inline` and `token`: a token asked for on another thread
        // either sees this store (and makes none), or is counted in `issued` before it is read.
        self.first_poll.store(0, Ordering::SeqCst);
        polled
    }

    /// A call whose handler finished in its first poll ended; `expired` when it ended by its
    /// deadline (its token, if any, is then cancelled).
    pub(super) fn end_inline(&self, id: u32, expired: bool) {
        if self.issued.load(Ordering::SeqCst) > 0 {
            self.settle(id, expired);
        }
    }

    /// A call whose handler ran on its own task ended; `expired` as for [`Self::end_inline`].
    pub(super) fn end(&self, id: u32, expired: bool) {
        self.settle(id, expired);
    }

    /// The client cancelled call `id`: its token, if any, is cancelled.
    pub(super) fn cancel(&self, id: u32) {
        self.settle(id, true);
    }

    /// Every running call ended early (the connection's read side ended, or it closed): all their
    /// tokens are cancelled, and a token asked for from now on is born cancelled.
    pub(super) fn cancel_all(&self) {
        let tokens: Vec<CancellationToken> = {
            let mut st = self.lock();
            st.closed = true;
            st.live.drain().filter_map(|(_, t)| t).collect()
        };
        self.issued.fetch_sub(tokens.len(), Ordering::SeqCst);
        for t in tokens {
            t.cancel();
        }
    }

    /// Gives back the memory of a past peak of calls once none runs.
    pub(super) fn shrink_idle(&self) {
        let mut st = self.lock();
        if st.live.is_empty() && st.live.capacity() > 64 {
            st.live = IdMap::default();
        }
    }

    fn settle(&self, id: u32, cancel: bool) {
        let token = self.lock().live.remove(&id).flatten();
        if let Some(t) = token {
            self.issued.fetch_sub(1, Ordering::SeqCst);
            if cancel {
                t.cancel();
            }
        }
    }
}

impl CancelSource for CallCancels {
    fn draining(&self) -> Option<CancellationToken> {
        Some(self.draining.clone())
    }

    fn token(&self, call_id: u32) -> Option<CancellationToken> {
        // Counted before `first_poll` is read: see `first_poll`.
        self.issued.fetch_add(1, Ordering::SeqCst);
        let mut st = self.lock();
        let made = if let Some(slot) = st.live.get_mut(&call_id) {
            match slot {
                Some(t) => Err(Some(t.clone())),
                None => Ok(slot.insert(CancellationToken::new()).clone()),
            }
        } else if st.closed {
            let t = CancellationToken::new();
            t.cancel();
            Err(Some(t))
        } else if self.first_poll.load(Ordering::SeqCst) == call_id {
            let t = CancellationToken::new();
            st.live.insert(call_id, Some(t.clone()));
            Ok(t)
        } else {
            // The call is over (it finished, or was cancelled before anyone asked).
            Err(None)
        };
        drop(st);
        match made {
            Ok(t) => Some(t),
            Err(existing) => {
                self.issued.fetch_sub(1, Ordering::SeqCst);
                existing
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_exists_only_while_the_call_runs() {
        let c = CallCancels::default();
        // Asked for during the first poll: made.
        let during = c.first_poll(7, || Poll::Ready(c.token(7)));
        let during = match during {
            Poll::Ready(t) => t.expect("a running call has a token"),
            Poll::Pending => unreachable!(),
        };
        c.end_inline(7, false);
        assert!(
            !during.is_cancelled(),
            "a call that finished is not cancelled"
        );
        // Asked for after the call ended: none, and nothing is left behind.
        assert!(c.token(7).is_none());
        assert!(c.lock().live.is_empty());
        assert_eq!(c.issued.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_call_cancelled_on_its_own_task_cancels_its_token() {
        let c = CallCancels::default();
        assert!(c.first_poll(3, || Poll::<()>::Pending).is_pending());
        let token = c.token(3).expect("a running call has a token");
        assert!(c.token(3).is_some_and(|t| !t.is_cancelled()));
        c.cancel(3);
        assert!(token.is_cancelled());
        assert!(c.lock().live.is_empty());
        assert_eq!(c.issued.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn expired_calls_cancel_and_finished_ones_do_not() {
        let c = CallCancels::default();
        let _ = c.first_poll(1, || Poll::<()>::Pending);
        let _ = c.first_poll(2, || Poll::<()>::Pending);
        let (t1, t2) = (c.token(1).unwrap(), c.token(2).unwrap());
        c.end(1, false);
        c.end(2, true);
        assert!(!t1.is_cancelled());
        assert!(t2.is_cancelled());
    }

    #[test]
    fn closing_cancels_every_token_and_later_ones() {
        let c = CallCancels::default();
        let _ = c.first_poll(1, || Poll::<()>::Pending);
        let t1 = c.token(1).unwrap();
        c.cancel_all();
        assert!(t1.is_cancelled());
        assert!(c.token(1).is_some_and(|t| t.is_cancelled()));
        assert!(c.token(99).is_some_and(|t| t.is_cancelled()));
    }
}
