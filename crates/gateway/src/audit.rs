//! One JSON line per request: who, what, the decision and the rule that
//! made it, latencies. Never a token. Lines go through a channel to a writer
//! task so a slow disk never holds a request.

use serde::Serialize;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// One audit record.
#[derive(Debug, Clone, Serialize, Default)]
pub struct AuditLine {
    pub ts: i64,
    pub request_id: String,
    pub route: Option<String>,
    pub method: String,
    pub path: String,
    pub status: u16,
    /// `allow`, `public`, `unauthenticated`, `deny`, `no_route`, `error`.
    pub decision: &'static str,
    /// The rule or check that decided (`groups_any`, `authenticated`...).
    pub rule: Option<String>,
    /// Why a request was refused or failed (details callers never see).
    pub reason: Option<String>,
    pub authorizer: Option<String>,
    pub subject: Option<String>,
    pub username: Option<String>,
    pub client_id: Option<String>,
    pub client_ip: String,
    pub upstream: Option<String>,
    pub upstream_ms: Option<f64>,
    pub total_ms: f64,
}

/// Where audit lines go.
#[derive(Clone)]
pub struct AuditSink {
    tx: mpsc::UnboundedSender<AuditLine>,
}

/// Lines kept in memory (tests, and the last lines for operators later).
pub type Memory = Arc<Mutex<Vec<AuditLine>>>;

impl AuditSink {
    /// Lines to standard output, or appended to `file`.
    pub fn spawn(file: Option<PathBuf>) -> AuditSink {
        let (tx, mut rx) = mpsc::unbounded_channel::<AuditLine>();
        tokio::task::spawn_blocking(move || {
            let mut out: Box<dyn Write + Send> = match &file {
                Some(p) => match std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                {
                    Ok(f) => Box::new(std::io::BufWriter::new(f)),
                    Err(e) => {
                        tracing::error!(path = %p.display(), error = %e, "cannot open audit log; using stdout");
                        Box::new(std::io::stdout())
                    }
                },
                None => Box::new(std::io::stdout()),
            };
            while let Some(line) = rx.blocking_recv() {
                if let Ok(s) = serde_json::to_string(&line) {
                    let _ = writeln!(out, "{s}");
                }
                if rx.is_empty() {
                    let _ = out.flush();
                }
            }
        });
        AuditSink { tx }
    }

    /// Lines into `memory`.
    pub fn memory(memory: Memory) -> AuditSink {
        let (tx, mut rx) = mpsc::unbounded_channel::<AuditLine>();
        tokio::spawn(async move {
            while let Some(line) = rx.recv().await {
                if let Ok(mut m) = memory.lock() {
                    m.push(line);
                }
            }
        });
        AuditSink { tx }
    }

    /// Records a line.
    pub fn record(&self, line: AuditLine) {
        let _ = self.tx.send(line);
    }
}
