//! Calls, failures and latency per method, as callers see them: [`MeteredLayer`] goes outermost
//! on every client stack of the shop, so a call's latency includes its retries.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use hdrhistogram::Histogram;
use rpc_core::client::OpenStream;
use rpc_core::stream::{RawSender, RawStreaming};
use rpc_core::{BoxFuture, Request, Response, Status};

/// One method's figures.
#[derive(Debug, Clone)]
pub struct MethodFigures {
    /// Calls finished.
    pub calls: u64,
    /// Calls that ended with an error status (business refusals such as `FailedPrecondition`
    /// included).
    pub errors: u64,
    /// Latency in microseconds.
    pub latency_us: Histogram<u64>,
}

/// Figures per method path (`package.Service/Method`), shared by the layers that record them.
#[derive(Debug, Default)]
pub struct Metrics {
    methods: Mutex<BTreeMap<String, MethodFigures>>,
}

impl Metrics {
    /// An empty set, to share.
    pub fn new() -> Arc<Metrics> {
        Arc::new(Metrics::default())
    }

    fn record(&self, path: &str, failed: bool, micros: u64) {
        let mut methods = super::lock(&self.methods);
        if !methods.contains_key(path) {
            let Ok(latency_us) = Histogram::new_with_bounds(1, 60_000_000, 3) else {
                return;
            };
            methods.insert(
                path.to_owned(),
                MethodFigures {
                    calls: 0,
                    errors: 0,
                    latency_us,
                },
            );
        }
        if let Some(m) = methods.get_mut(path) {
            m.calls += 1;
            m.errors += u64::from(failed);
            m.latency_us.saturating_record(micros.max(1));
        }
    }

    /// A copy of every method's figures, sorted by path.
    pub fn snapshot(&self) -> BTreeMap<String, MethodFigures> {
        super::lock(&self.methods).clone()
    }
}

/// Records each call of the service it wraps in a [`Metrics`].
#[derive(Debug, Clone)]
pub struct MeteredLayer(pub Arc<Metrics>);

impl<S> tower::Layer<S> for MeteredLayer {
    type Service = Metered<S>;

    fn layer(&self, inner: S) -> Metered<S> {
        Metered {
            inner,
            metrics: self.0.clone(),
        }
    }
}

/// See [`MeteredLayer`].
#[derive(Debug, Clone)]
pub struct Metered<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

/// A stream is counted as a call when it opens (an error to open is an error); its messages are
/// not timed.
impl<S: OpenStream> OpenStream for Metered<S> {
    fn open_stream(
        &self,
        request: Request,
        stream_flags: u8,
    ) -> BoxFuture<'static, Result<(Option<RawSender>, RawStreaming), Status>> {
        let path = request.path().to_owned();
        let metrics = self.metrics.clone();
        let started = Instant::now();
        let opening = self.inner.open_stream(request, stream_flags);
        Box::pin(async move {
            let opened = opening.await;
            let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            metrics.record(&path, opened.is_err(), micros);
            opened
        })
    }
}

impl<S> tower::Service<Request> for Metered<S>
where
    S: tower::Service<Request, Response = Response, Error = Status>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Status;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Status>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let path = req.path().to_owned();
        let metrics = self.metrics.clone();
        let started = Instant::now();
        let call = self.inner.call(req);
        Box::pin(async move {
            let result = call.await;
            let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            metrics.record(&path, result.is_err(), micros);
            result
        })
    }
}
