//! A small in-flight limiter: reservation in `poll_ready`, release when the call ends.
//!
//! Unlike a semaphore it has no per-release lock on the fast path, a permit costs one reference
//! count, and its limit can move at run time (a `Channel` lowers it to what the server announces).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

#[derive(Debug)]
pub(crate) struct Limiter {
    in_use: AtomicUsize,
    limit: AtomicUsize,
    has_waiters: AtomicBool,
    waiters: Mutex<Vec<Waker>>,
}

/// One reserved slot; dropping it frees the slot.
#[derive(Debug)]
pub(crate) struct Permit {
    limiter: Arc<Limiter>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.limiter.release();
    }
}

impl Limiter {
    pub(crate) fn new(limit: usize) -> Arc<Limiter> {
        Arc::new(Limiter {
            in_use: AtomicUsize::new(0),
            limit: AtomicUsize::new(limit.max(1)),
            has_waiters: AtomicBool::new(false),
            waiters: Mutex::new(Vec::new()),
        })
    }

    pub(crate) fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    pub(crate) fn in_use(&self) -> usize {
        self.in_use.load(Ordering::Relaxed)
    }

    /// Changes the limit; calls already in flight keep their permits.
    pub(crate) fn set_limit(&self, limit: usize) {
        let old = self.limit.swap(limit.max(1), Ordering::SeqCst);
        if limit > old {
            self.wake_all();
        }
    }

    pub(crate) fn try_acquire(self: &Arc<Self>) -> Option<Permit> {
        let limit = self.limit.load(Ordering::SeqCst);
        let mut n = self.in_use.load(Ordering::SeqCst);
        loop {
            if n >= limit {
                return None;
            }
            match self
                .in_use
                .compare_exchange_weak(n, n + 1, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => {
                    return Some(Permit {
                        limiter: self.clone(),
                    })
                }
                Err(actual) => n = actual,
            }
        }
    }

    pub(crate) fn poll_acquire(self: &Arc<Self>, cx: &mut Context<'_>) -> Poll<Permit> {
        if let Some(p) = self.try_acquire() {
            return Poll::Ready(p);
        }
        {
            let mut waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
            if !waiters.iter().any(|w| w.will_wake(cx.waker())) {
                waiters.push(cx.waker().clone());
            }
            self.has_waiters.store(true, Ordering::SeqCst);
        }
        // A release may have happened between the failed attempt and the registration.
        match self.try_acquire() {
            Some(p) => Poll::Ready(p),
            None => Poll::Pending,
        }
    }

    pub(crate) async fn acquire(self: &Arc<Self>) -> Permit {
        std::future::poll_fn(|cx| self.poll_acquire(cx)).await
    }

    fn release(&self) {
        self.in_use.fetch_sub(1, Ordering::SeqCst);
        if self.has_waiters.load(Ordering::SeqCst) {
            self.wake_all();
        }
    }

    fn wake_all(&self) {
        let waiters = {
            let mut w = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
            self.has_waiters.store(false, Ordering::SeqCst);
            std::mem::take(&mut *w)
        };
        // Every waiter retries; those that lose re-register. Waking all (not one) means a waiter
        // that went away can never swallow the only wake-up.
        for w in waiters {
            w.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn limits_and_wakes() {
        let l = Limiter::new(2);
        let a = l.try_acquire().unwrap();
        let _b = l.try_acquire().unwrap();
        assert!(l.try_acquire().is_none());
        let l2 = l.clone();
        let waiter = tokio::spawn(async move { l2.acquire().await });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(a);
        let c = waiter.await.unwrap();
        assert_eq!(l.in_use(), 2);
        drop(c);
        assert_eq!(l.in_use(), 1);
    }

    #[tokio::test]
    async fn raising_the_limit_wakes_waiters() {
        let l = Limiter::new(1);
        let _a = l.try_acquire().unwrap();
        let l2 = l.clone();
        let waiter = tokio::spawn(async move { l2.acquire().await });
        tokio::task::yield_now().await;
        l.set_limit(2);
        let _b = waiter.await.unwrap();
        assert_eq!(l.in_use(), 2);
        l.set_limit(1);
        assert!(l.try_acquire().is_none());
    }
}
