//! The layer that makes [`Deadline`] services.

use std::time::Duration;

use tower::Layer;

use super::Deadline;
use crate::middleware::PerMethod;

/// Gives a call without a deadline one: the method's `#[rpc(timeout)]` when the request carries
/// its descriptor, else the configured timeout for its service or method. A deadline the caller
/// set (or inherited from the call being handled) is kept. The channel turns it into the call's
/// deadline on the wire, and the server enforces it.
#[derive(Debug, Clone)]
pub struct DeadlineLayer {
    timeouts: PerMethod<Option<Duration>>,
}

impl DeadlineLayer {
    /// `timeout` for every call that has no deadline and no method default.
    pub fn new(timeout: Duration) -> DeadlineLayer {
        DeadlineLayer {
            timeouts: PerMethod::new(Some(timeout)),
        }
    }

    /// Per-service and per-method timeouts (`None`: no default deadline).
    pub fn per_method(timeouts: PerMethod<Option<Duration>>) -> DeadlineLayer {
        DeadlineLayer { timeouts }
    }
}

impl<S> Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;

    fn layer(&self, inner: S) -> Deadline<S> {
        Deadline {
            inner,
            timeouts: self.timeouts.clone(),
        }
    }
}
