//! When a call may be retried, how often, and how long to wait in between.

use std::time::Duration;

use crate::backoff::Backoff;
use crate::message::Request;
use crate::status::{Code, Delivery, Status};

/// How often to retry, and how long to wait before each retry.
///
/// The waits follow a [`Backoff`]; by default one from 5 ms doubling to 500 ms with full jitter
/// (each wait drawn uniformly from zero to its ceiling), so that clients that failed together do
/// not retry together.
///
/// ```
/// use std::time::Duration;
/// use rpc_core::backoff::Backoff;
/// use rpc_core::middleware::RetryPolicy;
///
/// let quick = RetryPolicy::new()
///     .max_attempts(4)
///     .backoff(Duration::from_millis(10), Duration::from_millis(200));
/// // The same waits without jitter (exact doubling):
/// let exact = RetryPolicy::new()
///     .max_attempts(4)
///     .backoff_with(Backoff::new(Duration::from_millis(10), Duration::from_millis(200)));
/// # let _ = (quick, exact);
/// ```
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    max_attempts: u32,
    backoff: Backoff,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            backoff: Backoff::new(Duration::from_millis(5), Duration::from_millis(500)).jitter(1.0),
        }
    }
}

impl RetryPolicy {
    /// Three attempts in all, backoff from 5 ms doubling to 500 ms, with full jitter.
    pub fn new() -> RetryPolicy {
        RetryPolicy::default()
    }

    /// Attempts in all, the first included (1: never retry).
    #[must_use]
    pub fn max_attempts(mut self, n: u32) -> RetryPolicy {
        self.max_attempts = n.max(1);
        self
    }

    /// The backoff before the first retry, doubling for each next one up to `max`; each wait is
    /// drawn uniformly from zero to that value (full jitter). The same as
    /// `backoff_with(Backoff::new(base, max).jitter(1.0))`.
    #[must_use]
    pub fn backoff(self, base: Duration, max: Duration) -> RetryPolicy {
        self.backoff_with(Backoff::new(base, max).jitter(1.0))
    }

    /// The waits before retries: `backoff.delay(0)` before the first, `backoff.delay(1)` before
    /// the second, and so on.
    #[must_use]
    pub fn backoff_with(mut self, backoff: Backoff) -> RetryPolicy {
        self.backoff = backoff;
        self
    }

    /// Attempts in all, the first included.
    pub(super) fn attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The wait before retry number `retry + 1` (counting from 0).
    pub(super) fn wait_before(&self, retry: u32) -> Duration {
        self.backoff.delay(retry)
    }
}

/// Whether a failed call is worth sending again, and safe to: any call that provably never
/// reached a handler (`Delivery::NotSent` or `Unprocessed`) unless its answer cannot change on a
/// repeat ([`repeat_cannot_help`]), and idempotent calls that failed with `Unavailable`,
/// `ResourceExhausted` or `Aborted`.
pub(super) fn may_retry(req: &Request, status: &Status) -> bool {
    match status.delivery() {
        Delivery::NotSent | Delivery::Unprocessed => !repeat_cannot_help(status.code()),
        Delivery::Sent => {
            req.is_idempotent()
                && matches!(
                    status.code(),
                    Code::Unavailable | Code::ResourceExhausted | Code::Aborted
                )
        }
    }
}

/// Answers about the request or the caller, not about the server that gave them: the same
/// request gets them again from any replica (a malformed request, missing or refused
/// credentials, a call the caller cancelled). Retrying them would only multiply the load of a
/// caller that is already wrong. (`DeadlineExceeded` is not among them: with a deadline per
/// attempt, a replica that never took the call is worth leaving for another; the call's own
/// deadline still ends the retries.)
pub(crate) fn repeat_cannot_help(code: Code) -> bool {
    matches!(
        code,
        Code::InvalidArgument | Code::Unauthenticated | Code::PermissionDenied | Code::Cancelled
    )
}
