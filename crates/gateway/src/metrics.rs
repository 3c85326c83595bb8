//! Prometheus metrics of the gateway: requests by route, status and
//! decision; a latency histogram; JWKS fetches and failures; token-cache hit
//! ratio. Per-route counters are found by a short scan (no hashing per
//! request); the latency histogram is atomics; rendered in the text
//! exposition format.

use crate::config::Snapshot;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

const BUCKETS_MS: &[f64] = &[
    0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 5000.0,
];

/// Requests of one route by (status, decision): a handful of pairs, so a
/// linear scan under an uncontended lock, no hashing.
#[derive(Default)]
struct RouteCounts(Mutex<Counts>);

/// `(status, decision, requests)`.
type Counts = Vec<(u16, &'static str, u64)>;

/// The gateway's metrics.
#[derive(Default)]
pub struct Metrics {
    /// Per route name (`""`: no route matched), in first-seen order.
    routes: RwLock<Vec<(String, Arc<RouteCounts>)>>,
    /// Non-cumulative counts per bucket of [`BUCKETS_MS`] (cumulated when
    /// rendered), then one for `+Inf`.
    buckets: [AtomicU64; BUCKETS_MS.len() + 1],
    sum_us: AtomicU64,
    count: AtomicU64,
}

impl Metrics {
    fn route(&self, name: &str) -> Option<Arc<RouteCounts>> {
        if let Some(c) = self
            .routes
            .read()
            .ok()?
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, c)| c.clone())
        {
            return Some(c);
        }
        let mut w = self.routes.write().ok()?;
        if let Some((_, c)) = w.iter().find(|(n, _)| n == name) {
            return Some(c.clone());
        }
        let c = Arc::new(RouteCounts::default());
        w.push((name.to_owned(), c.clone()));
        Some(c)
    }

    /// Records one finished request.
    pub fn observe(&self, route: Option<&str>, status: u16, decision: &'static str, ms: f64) {
        if let Some(c) = self.route(route.unwrap_or(""))
            && let Ok(mut v) = c.0.lock()
        {
            match v
                .iter_mut()
                .find(|(s, d, _)| *s == status && *d == decision)
            {
                Some(e) => e.2 += 1,
                None => v.push((status, decision, 1)),
            }
        }
        let slot = BUCKETS_MS
            .iter()
            .position(|b| ms <= *b)
            .unwrap_or(BUCKETS_MS.len());
        self.buckets[slot].fetch_add(1, Ordering::Relaxed);
        self.sum_us
            .fetch_add((ms * 1000.0) as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// The text exposition.
    pub fn render(&self, snap: &Snapshot) -> String {
        let mut out = String::new();
        out.push_str("# TYPE gatehouse_gateway_requests_total counter\n");
        let mut routes: Vec<(String, Counts)> = self
            .routes
            .read()
            .map(|r| {
                r.iter()
                    .map(|(n, c)| (n.clone(), c.0.lock().map(|v| v.clone()).unwrap_or_default()))
                    .collect()
            })
            .unwrap_or_default();
        routes.sort_by(|a, b| a.0.cmp(&b.0));
        for (route, mut per) in routes {
            per.sort();
            for (status, decision, n) in per {
                let _ = writeln!(
                    out,
                    "gatehouse_gateway_requests_total{{route=\"{route}\",status=\"{status}\",decision=\"{decision}\"}} {n}"
                );
            }
        }
        out.push_str("# TYPE gatehouse_gateway_request_duration_ms histogram\n");
        let mut cumulative = 0;
        for (n, b) in BUCKETS_MS.iter().enumerate() {
            cumulative += self.buckets[n].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "gatehouse_gateway_request_duration_ms_bucket{{le=\"{b}\"}} {cumulative}"
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "gatehouse_gateway_request_duration_ms_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "gatehouse_gateway_request_duration_ms_sum {}",
            self.sum_us.load(Ordering::Relaxed) as f64 / 1000.0
        );
        let _ = writeln!(out, "gatehouse_gateway_request_duration_ms_count {count}");
        out.push_str("# TYPE gatehouse_gateway_jwks_fetches_total counter\n# TYPE gatehouse_gateway_jwks_failures_total counter\n# TYPE gatehouse_gateway_token_cache_hits_total counter\n# TYPE gatehouse_gateway_token_cache_misses_total counter\n");
        for (name, a) in snap
            .authorizers
            .iter()
            .filter_map(|(n, a)| a.as_jwt().map(|j| (n, j)))
        {
            for (metric, v) in [
                ("jwks_fetches_total", &a.jwks_fetches),
                ("jwks_failures_total", &a.jwks_failures),
                ("token_cache_hits_total", &a.hits),
                ("token_cache_misses_total", &a.misses),
            ] {
                let _ = writeln!(
                    out,
                    "gatehouse_gateway_{metric}{{authorizer=\"{name}\"}} {}",
                    v.load(Ordering::Relaxed)
                );
            }
        }
        out
    }
}
