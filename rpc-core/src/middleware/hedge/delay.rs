//! When a hedged call sends its second attempt, and the latencies that decide it.

use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::time::Instant;

/// When to send the second attempt.
#[derive(Debug, Clone, Copy)]
pub enum HedgeDelay {
    /// After a fixed delay.
    Fixed(Duration),
    /// After the given quantile (e.g. 0.95) of recent call latencies, clamped to `min..=max`;
    /// `max` until `min_samples` calls were seen.
    Percentile {
        /// The latency quantile, in 0..1.
        quantile: f64,
        /// The shortest delay.
        min: Duration,
        /// The longest delay, and the delay before enough samples.
        max: Duration,
        /// Calls to observe before trusting the quantile.
        min_samples: u64,
    },
}

impl HedgeDelay {
    /// The delay for the next call, given the latencies seen so far.
    pub(super) fn current(&self, latencies: &Latencies) -> Duration {
        match *self {
            HedgeDelay::Fixed(d) => d,
            HedgeDelay::Percentile {
                quantile,
                min,
                max,
                min_samples,
            } => latencies
                .quantile(quantile, min_samples)
                .map_or(max, |d| d.clamp(min, max)),
        }
    }
}

/// Recent latencies are forgotten after this long, so the delay follows the service.
const LATENCY_WINDOW: Duration = Duration::from_secs(30);

/// The latencies of recent hedged calls (first answer wins), shared by the clones of a service.
#[derive(Debug)]
pub(super) struct Latencies {
    /// `None` if the histogram could not be made (it always can with these bounds).
    window: Option<Mutex<Window>>,
}

#[derive(Debug)]
struct Window {
    hist: Histogram<u64>,
    since: Instant,
}

impl Latencies {
    pub(super) fn new() -> Latencies {
        let hist = Histogram::new_with_bounds(1, 60_000_000, 3).ok();
        Latencies {
            window: hist.map(|hist| {
                Mutex::new(Window {
                    hist,
                    since: Instant::now(),
                })
            }),
        }
    }

    /// Records one call's latency.
    pub(super) fn record(&self, d: Duration) {
        if let Some(window) = &self.window {
            let mut w = window.lock().unwrap_or_else(|e| e.into_inner());
            if w.since.elapsed() > LATENCY_WINDOW {
                w.hist.reset();
                w.since = Instant::now();
            }
            let _ = w.hist.record((d.as_micros() as u64).max(1));
        }
    }

    /// The `quantile` of recent latencies, once at least `min_samples` were recorded.
    fn quantile(&self, quantile: f64, min_samples: u64) -> Option<Duration> {
        let w = self
            .window
            .as_ref()?
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if w.hist.len() < min_samples {
            return None;
        }
        Some(Duration::from_micros(w.hist.value_at_quantile(quantile)))
    }
}
