//! The layer that makes [`LoadShed`] services.

use std::sync::Arc;

use tower::Layer;

use super::limit::State;
use super::{LoadShed, ShedLimit};
use crate::middleware::Stats;

/// Refuses calls beyond a concurrency limit at once with `ResourceExhausted`, rather than letting
/// them queue without bound; admitted calls run as usual. Usually on the server side, around a
/// service: `Server::builder().add_service(LoadShedLayer::new(ShedLimit::Fixed(64)).layer(svc))`.
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
