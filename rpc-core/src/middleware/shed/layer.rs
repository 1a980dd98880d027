//! The layer that makes [`LoadShed`] services.

use std::sync::Arc;

use tower::Layer;

use super::limit::State;
use super::{LoadShed, ShedLimit};
use crate::middleware::Stats;

/// Refuses calls beyond a concurrency limit at once with `ResourceExhausted`, rather than letting
/// them queue without bound; admitted calls run as usual. Usually on the server side, around a
/// service: `Server::builder().add_service(LoadShedLayer::new(ShedLimit::Fixed(64)).layer(svc))`.
///
/// It counts calls in flight in the service, so it sheds only handlers that wait (on I/O, on
/// another service). Handlers that finish in their first poll run one after another on their
/// connection's task and are never in flight together: their queue is the connection's read
/// buffer, before any layer. For them, shed on queue delay with
/// [`Server::max_queue_delay`](crate::Server::max_queue_delay), which refuses a call that waited
/// too long before any layer sees it; the two combine.
#[derive(Debug, Clone)]
pub struct LoadShedLayer {
    limit: ShedLimit,
    stats: Arc<Stats>,
}

impl LoadShedLayer {
    /// Sheds beyond `limit`.
    pub fn new(limit: ShedLimit) -> LoadShedLayer {
        LoadShedLayer {
            limit,
            stats: Arc::default(),
        }
    }

    /// Where to count shed calls.
    #[must_use]
    pub fn stats(mut self, stats: Arc<Stats>) -> Self {
        self.stats = stats;
        self
    }
}

impl<S> Layer<S> for LoadShedLayer {
    type Service = LoadShed<S>;

    fn layer(&self, inner: S) -> LoadShed<S> {
        LoadShed {
            inner,
            state: Arc::new(State::new(self.limit, self.stats.clone())),
        }
    }
}
