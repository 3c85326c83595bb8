//! Prometheus metrics of the gateway: requests by route, status and
//! decision; a latency histogram; JWKS fetches and failures; token-cache hit
//! ratio. Counters are plain atomics behind one mutex-guarded map, rendered
//! in the text exposition format.

use crate::config::Snapshot;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::Ordering;

const BUCKETS_MS: &[f64] = &[
    0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 5000.0,
];

#[derive(Default)]
struct Inner {
    requests: BTreeMap<String, HashMap<(u16, &'static str), u64>>,
    buckets: Vec<u64>,
    sum_ms: f64,
    count: u64,
}

/// The gateway's metrics.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl Metrics {
    /// Records one finished request.
    pub fn observe(&self, route: Option<&str>, status: u16, decision: &'static str, ms: f64) {
        if let Ok(mut i) = self.inner.lock() {
            let route = route.unwrap_or("");
            match i.requests.get_mut(route) {
                Some(m) => *m.entry((status, decision)).or_default() += 1,
                None => {
                    let mut m = HashMap::new();
                    m.insert((status, decision), 1);
                    i.requests.insert(route.to_owned(), m);
                }
            }
            if i.buckets.is_empty() {
                i.buckets = vec![0; BUCKETS_MS.len()];
            }
            for (n, b) in BUCKETS_MS.iter().enumerate() {
                if ms <= *b {
                    i.buckets[n] += 1;
                }
            }
            i.sum_ms += ms;
            i.count += 1;
        }
    }

    /// The text exposition.
    pub fn render(&self, snap: &Snapshot) -> String {
        let mut out = String::new();
        if let Ok(i) = self.inner.lock() {
            out.push_str("# TYPE gatehouse_gateway_requests_total counter\n");
            for (route, per) in &i.requests {
                for ((status, decision), n) in per {
                    let _ = writeln!(
                        out,
                        "gatehouse_gateway_requests_total{{route=\"{route}\",status=\"{status}\",decision=\"{decision}\"}} {n}"
                    );
                }
            }
            out.push_str("# TYPE gatehouse_gateway_request_duration_ms histogram\n");
            for (n, b) in BUCKETS_MS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "gatehouse_gateway_request_duration_ms_bucket{{le=\"{b}\"}} {}",
                    i.buckets.get(n).copied().unwrap_or(0)
                );
            }
            let _ = writeln!(
                out,
                "gatehouse_gateway_request_duration_ms_bucket{{le=\"+Inf\"}} {}",
                i.count
            );
            let _ = writeln!(
                out,
                "gatehouse_gateway_request_duration_ms_sum {}",
                i.sum_ms
            );
            let _ = writeln!(
                out,
                "gatehouse_gateway_request_duration_ms_count {}",
                i.count
            );
        }
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
