//! One JSON line per request: who, what, the decision and the rule that
//! made it, latencies. Never a token.
//!
//! The line is cheap to fill (shared `Arc`s and `Copy` values, not copied
//! strings) and is serialized on the request's thread into a thread-local
//! buffer, then appended to a shared buffer that a writer thread swaps out
//! and writes every [`DRAIN_EVERY`]: no channel node, no allocation and no
//! cross-thread free per request, and a slow disk never holds a request
//! (past [`MAX_PENDING`] bytes, lines are counted and dropped instead).

use crate::identity::Identity;
use serde::ser::{Serialize, SerializeStruct, Serializer};
use std::borrow::Cow;
use std::cell::RefCell;
use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// One audit record.
#[derive(Debug, Clone)]
pub struct AuditLine {
    /// Unix milliseconds.
    pub ts: i64,
    pub request_id: String,
    pub route: Option<Arc<str>>,
    pub method: http::Method,
    /// The request target; the line shows its path, never its query (which
    /// may carry secrets).
    pub uri: http::Uri,
    pub status: u16,
    /// `allow`, `deny`, `unauthenticated`, `throttled`, `public`, `error`,
    /// `no_route`.
    pub decision: &'static str,
    pub rule: Option<Cow<'static, str>>,
    pub reason: Option<Cow<'static, str>>,
    /// The caller, once authenticated: authorizer, subject, username and
    /// client id come from it.
    pub identity: Option<Arc<Identity>>,
    pub client_ip: IpAddr,
    pub upstream: Option<Arc<str>>,
    pub upstream_ms: Option<f64>,
    pub total_ms: f64,
}

impl AuditLine {
    /// A line for a request as it arrives.
    pub fn new(
        ts: i64,
        request_id: String,
        method: http::Method,
        uri: http::Uri,
        ip: IpAddr,
    ) -> Self {
        AuditLine {
            ts,
            request_id,
            route: None,
            method,
            uri,
            status: 0,
            decision: "",
            rule: None,
            reason: None,
            identity: None,
            client_ip: ip,
            upstream: None,
            upstream_ms: None,
            total_ms: 0.0,
        }
    }
}

impl Serialize for AuditLine {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let id = self.identity.as_deref();
        let mut o = s.serialize_struct("AuditLine", 17)?;
        o.serialize_field("ts", &self.ts)?;
        o.serialize_field("request_id", &self.request_id)?;
        o.serialize_field("route", &self.route.as_deref())?;
        o.serialize_field("method", self.method.as_str())?;
        o.serialize_field("path", self.uri.path())?;
        o.serialize_field("status", &self.status)?;
        o.serialize_field("decision", self.decision)?;
        o.serialize_field("rule", &self.rule)?;
        o.serialize_field("reason", &self.reason)?;
        o.serialize_field("authorizer", &id.map(|i| i.authorizer.as_str()))?;
        o.serialize_field("subject", &id.map(|i| i.subject.as_str()))?;
        o.serialize_field("username", &id.and_then(|i| i.username.as_deref()))?;
        o.serialize_field("client_id", &id.and_then(|i| i.client_id.as_deref()))?;
        o.serialize_field("client_ip", &self.client_ip)?;
        o.serialize_field("upstream", &self.upstream.as_deref())?;
        o.serialize_field("upstream_ms", &self.upstream_ms)?;
        o.serialize_field("total_ms", &self.total_ms)?;
        o.end()
    }
}

/// How often the writer thread writes what has accumulated.
pub const DRAIN_EVERY: std::time::Duration = std::time::Duration::from_millis(50);

/// Most bytes waiting for the writer; beyond, lines are dropped and counted
/// (a stalled disk must not grow the gateway without bound).
pub const MAX_PENDING: usize = 64 * 1024 * 1024;

#[derive(Default)]
struct Shared {
    pending: Mutex<Vec<u8>>,
    dropped: AtomicU64,
}

/// Where audit lines go.
#[derive(Clone)]
pub struct AuditSink {
    shared: Arc<Shared>,
}

thread_local! {
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(1024));
}

impl AuditSink {
    /// Starts the writer thread: lines are appended to `file`, or written
    /// to standard output.
    pub fn spawn(file: Option<PathBuf>) -> AuditSink {
        let shared = Arc::new(Shared::default());
        let writer = shared.clone();
        let spawned = std::thread::Builder::new().name("audit".into()).spawn(move || {
            let mut out: Box<dyn Write + Send> = match &file {
                Some(p) => match std::fs::OpenOptions::new().create(true).append(true).open(p) {
                    Ok(f) => Box::new(f),
                    Err(e) => {
                        tracing::error!(path = %p.display(), error = %e, "cannot open audit log; using stdout");
                        Box::new(std::io::stdout())
                    }
                },
                None => Box::new(std::io::stdout()),
            };
            // Two buffers trade places: requests fill one while this
            // thread writes the other.
            let mut spare: Vec<u8> = Vec::with_capacity(64 * 1024);
            loop {
                std::thread::sleep(DRAIN_EVERY);
                if let Ok(mut p) = writer.pending.lock() {
                    std::mem::swap(&mut *p, &mut spare);
                }
                if !spare.is_empty() {
                    if let Err(e) = out.write_all(&spare).and_then(|_| out.flush()) {
                        tracing::warn!(error = %e, "writing audit lines failed");
                    }
                    spare.clear();
                    spare.shrink_to(4 * 1024 * 1024);
                }
                let dropped = writer.dropped.swap(0, Ordering::Relaxed);
                if dropped > 0 {
                    tracing::error!(dropped, "audit writer fell behind; lines dropped");
                }
            }
        });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the audit writer");
        }
        AuditSink { shared }
    }

    /// Records a line.
    pub fn record(&self, line: &AuditLine) {
        SCRATCH.with(|b| {
            let Ok(mut b) = b.try_borrow_mut() else {
                return;
            };
            b.clear();
            if serde_json::to_writer(&mut *b, line).is_err() {
                return;
            }
            b.push(b'\n');
            if let Ok(mut p) = self.shared.pending.lock() {
                if p.len() + b.len() > MAX_PENDING {
                    self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                } else {
                    p.extend_from_slice(&b);
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_keep_their_shape_and_never_show_the_query() {
        let mut l = AuditLine::new(
            1,
            "rid".into(),
            http::Method::POST,
            "/orders/7?access_token=secret".parse().expect("uri"),
            "10.0.0.1".parse().expect("ip"),
        );
        l.decision = "deny";
        l.rule = Some("groups_any".into());
        l.identity = Some(Arc::new(Identity {
            subject: "u1".into(),
            username: Some("alice\"quoted".into()),
            authorizer: "corp".into(),
            ..Default::default()
        }));
        let v: serde_json::Value = serde_json::to_value(&l).expect("json");
        assert_eq!(v["path"], "/orders/7");
        assert_eq!(v["username"], "alice\"quoted");
        assert_eq!(v["client_ip"], "10.0.0.1");
        assert_eq!(v["rule"], "groups_any");
        assert!(v["client_id"].is_null() && v["upstream"].is_null());
        assert!(!v.to_string().contains("secret"));
    }
}
