//! The layer that makes [`Failsafe`] services.

use std::fmt;
use std::sync::Arc;

use tower::Layer;

use super::{Failsafe, Fallback};
use crate::message::{Request, Response};
use crate::middleware::Stats;
use crate::status::Status;

/// Dubbo's failsafe mode: a failed call is logged and answered with a caller-given fallback (for
/// calls whose result is optional, such as recommendations or audit logs).
///
/// ```
/// use rpc_core::middleware::FailsafeLayer;
/// use rpc_core::Response;
/// // An empty body decodes as the default message in Protobuf.
/// let layer = FailsafeLayer::new(|_req, _status| Ok(Response::new("")));
/// ```
#[derive(Clone)]
pub struct FailsafeLayer {
    fallback: Fallback,
    stats: Arc<Stats>,
}

impl fmt::Debug for FailsafeLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FailsafeLayer").finish_non_exhaustive()
    }
}

impl FailsafeLayer {
    /// Answers failures with `fallback(request, status)`.
    pub fn new(
        fallback: impl Fn(&Request, &Status) -> Result<Response, Status> + Send + Sync + 'static,
    ) -> FailsafeLayer {
        FailsafeLayer {
            fallback: Arc::new(fallback),
            stats: Arc::default(),
        }
    }

    /// Where to count fallbacks.
    #[must_use]
    pub fn stats(mut self, stats: Arc<Stats>) -> Self {
        self.stats = stats;
        self
    }
}

impl<S> Layer<S> for FailsafeLayer {
    type Service = Failsafe<S>;

    fn layer(&self, inner: S) -> Failsafe<S> {
        Failsafe {
            inner,
            fallback: self.fallback.clone(),
            stats: self.stats.clone(),
        }
    }
}
