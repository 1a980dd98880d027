//! The gateway's own figures, served as Prometheus text at `/metrics`: requests by route and
//! status, latency histograms by route, cache hits and misses, upstream errors by service.
//!
//! Labels are bounded: routes are the configured ones (plus `rpc` for `/{Service}/{Method}`
//! calls and `other` for everything else), services those the router has a route to.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Histogram bucket bounds, in seconds (as Prometheus' client libraries default, from 0.5 ms).
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// A route's figures.
#[derive(Default)]
struct RouteFigures {
    by_status: BTreeMap<u16, u64>,
    latency: Histogram,
}

#[derive(Default)]
struct ByLabel {
    routes: BTreeMap<String, RouteFigures>,
    upstream_errors: BTreeMap<(String, &'static str), u64>,
}

/// What a gateway answered so far ([`Gateway::stats`](super::Gateway::stats)).
#[derive(Debug, Clone, Default)]
pub struct GatewayStats {
    /// Requests answered.
    pub requests: u64,
    /// Requests by HTTP status.
    pub by_status: BTreeMap<u16, u64>,
    /// Answers served from the response cache.
    pub cache_hits: u64,
    /// Cacheable requests the cache could not answer.
    pub cache_misses: u64,
    /// The 99th percentile of the time to answer, as the upper bound of its histogram bucket
    /// (0.5 ms to 10 s); `None` before any request or past 10 s.
    pub p99_at_most: Option<Duration>,
}

/// Counters and histograms of one gateway.
#[derive(Default)]
pub(crate) struct GatewayMetrics {
    by_label: Mutex<ByLabel>,
    pub(crate) cache_hits: AtomicU64,
    pub(crate) cache_misses: AtomicU64,
}

impl GatewayMetrics {
    /// One request answered on `route` with `status` after `took`.
    pub(crate) fn request(&self, route: &str, status: u16, took: Duration) {
        let Ok(mut m) = self.by_label.lock() else {
            return;
        };
        // Looked up by `&str` first: a request allocates nothing once its route was seen.
        if !m.routes.contains_key(route) {
            m.routes.insert(route.to_owned(), RouteFigures::default());
        }
        let Some(figures) = m.routes.get_mut(route) else {
            return;
        };
        *figures.by_status.entry(status).or_default() += 1;
        let h = &mut figures.latency;
        let secs = took.as_secs_f64();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += secs;
    }

    /// A call to `service` that failed for a reason of the backend's (unavailable, timed out,
    /// internal), by status code name.
    pub(crate) fn upstream_error(&self, service: &str, code: &'static str) {
        if let Ok(mut m) = self.by_label.lock() {
            *m.upstream_errors
                .entry((service.to_owned(), code))
                .or_default() += 1;
        }
    }

    /// Requests answered so far on `route` with `status`.
    #[cfg(test)]
    pub(crate) fn requests(&self, route: &str, status: u16) -> u64 {
        self.by_label
            .lock()
            .ok()
            .and_then(|m| m.routes.get(route)?.by_status.get(&status).copied())
            .unwrap_or(0)
    }

    /// The figures so far, over every route.
    pub(crate) fn snapshot(&self) -> GatewayStats {
        let mut stats = GatewayStats {
            cache_hits: self.cache_hits.load(Ordering::Relaxed),
            cache_misses: self.cache_misses.load(Ordering::Relaxed),
            ..GatewayStats::default()
        };
        let Ok(m) = self.by_label.lock() else {
            return stats;
        };
        let mut buckets = [0u64; BUCKETS.len()];
        let mut count = 0;
        for f in m.routes.values() {
            for (status, n) in &f.by_status {
                *stats.by_status.entry(*status).or_default() += n;
            }
            for (i, c) in f.latency.counts.iter().enumerate() {
                buckets[i] += c;
            }
            count += f.latency.count;
        }
        stats.requests = count;
        let wanted = (count as f64 * 0.99).ceil() as u64;
        stats.p99_at_most = (count > 0)
            .then(|| {
                BUCKETS
                    .iter()
                    .zip(buckets)
                    .find(|(_, n)| *n >= wanted)
                    .map(|(bound, _)| Duration::from_secs_f64(*bound))
            })
            .flatten();
        stats
    }

    /// Prometheus text exposition format 0.0.4.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        let Ok(m) = self.by_label.lock() else {
            return out;
        };
        out.push_str(
            "# HELP gateway_requests_total HTTP requests answered, by route and status.\n",
        );
        out.push_str("# TYPE gateway_requests_total counter\n");
        for (route, f) in &m.routes {
            for (status, n) in &f.by_status {
                let _ = writeln!(
                    out,
                    "gateway_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
                    escape(route)
                );
            }
        }
        out.push_str(
            "# HELP gateway_request_duration_seconds Time from a request's arrival to its answer.\n",
        );
        out.push_str("# TYPE gateway_request_duration_seconds histogram\n");
        for (route, f) in &m.routes {
            let h = &f.latency;
            let route = escape(route);
            for (i, bound) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "gateway_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(
                out,
                "gateway_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "gateway_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "gateway_request_duration_seconds_count{{route=\"{route}\"}} {}",
                h.count
            );
        }
        for (name, help, v) in [
            (
                "gateway_cache_hits_total",
                "Answers served from the response cache.",
                &self.cache_hits,
            ),
            (
                "gateway_cache_misses_total",
                "Cacheable requests the cache could not answer.",
                &self.cache_misses,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", v.load(Ordering::Relaxed));
        }
        out.push_str(
            "# HELP gateway_upstream_errors_total Calls a backend failed (unavailable, timed out, internal), by service and code.\n",
        );
        out.push_str("# TYPE gateway_upstream_errors_total counter\n");
        for ((service, code), n) in &m.upstream_errors {
            let _ = writeln!(
                out,
                "gateway_upstream_errors_total{{service=\"{}\",code=\"{code}\"}} {n}",
                escape(service)
            );
        }
        out
    }
}

/// A label value with `\`, `"` and newlines escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let m = GatewayMetrics::default();
        m.request("GET /a", 200, Duration::from_millis(3));
        m.request("GET /a", 200, Duration::from_millis(30));
        m.request("GET /a", 404, Duration::from_micros(100));
        m.upstream_error("shop.\"X\"", "Unavailable");
        m.cache_hits.fetch_add(2, Ordering::Relaxed);
        let text = m.render();
        assert!(text.contains("gateway_requests_total{route=\"GET /a\",status=\"200\"} 2"));
        assert!(text
            .contains("gateway_request_duration_seconds_bucket{route=\"GET /a\",le=\"0.005\"} 2"));
        assert!(text
            .contains("gateway_request_duration_seconds_bucket{route=\"GET /a\",le=\"+Inf\"} 3"));
        assert!(text.contains("gateway_cache_hits_total 2"));
        assert!(text.contains("service=\"shop.\\\"X\\\"\",code=\"Unavailable\"} 1"));
        assert_eq!(m.requests("GET /a", 404), 1);
    }
}
