//! The layer that makes [`Retry`] services.

use std::sync::Arc;

use tower::Layer;

use super::{Retry, RetryBudget, RetryPolicy};
use crate::middleware::{PerMethod, Stats};

/// Retries failed calls when it is safe: any call that provably never reached a server
/// (`Delivery::NotSent` or `Unprocessed`), and idempotent calls ([`Request::is_idempotent`],
/// from `#[rpc(idempotent)]`) that failed with `Unavailable`, `ResourceExhausted` or `Aborted`.
/// Never past the call's deadline, and only while the [`RetryBudget`] allows.
///
/// Over a balanced channel each retry goes to an endpoint the call has not tried yet, when there
/// is one ([`Attempts`](crate::middleware::Attempts)).
///
/// [`Request::is_idempotent`]: crate::Request::is_idempotent
#[derive(Debug, Clone, Default)]
pub struct RetryLayer {
    pub(super) policy: PerMethod<RetryPolicy>,
    pub(super) budget: RetryBudget,
    pub(super) stats: Arc<Stats>,
}

impl RetryLayer {
    /// The default policy and budget.
    pub fn new() -> RetryLayer {
        RetryLayer::default()
    }

    /// One policy for every call.
    #[must_use]
    pub fn policy(mut self, policy: RetryPolicy) -> RetryLayer {
        self.policy = PerMethod::new(policy);
        self
    }

    /// Policies per service and method.
    #[must_use]
    pub fn per_method(mut self, policy: PerMethod<RetryPolicy>) -> RetryLayer {
        self.policy = policy;
        self
    }

    /// The budget (shared by clones of the layer and the services it makes).
    #[must_use]
    pub fn budget(mut self, budget: RetryBudget) -> RetryLayer {
        self.budget = budget;
        self
    }

    /// Where to count retries.
    #[must_use]
    pub fn stats(mut self, stats: Arc<Stats>) -> RetryLayer {
        self.stats = stats;
        self
    }
}

impl<S> Layer<S> for RetryLayer {
    type Service = Retry<S>;

    fn layer(&self, inner: S) -> Retry<S> {
        Retry {
            inner,
            config: Arc::new(self.clone()),
        }
    }
}
