//! One JSON line per request: who, what, the decision and the rule that
//! made it, latencies. Never a token. Lines go through a channel to a writer
//! task so a slow disk never holds a request.

use serde::Serialize;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

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

/// Where audit lines go. Sending never wakes the writer: it drains the
/// queue every [`DRAIN_EVERY`], so the request path pays for a queue push,
/// not a thread wake-up and a write system call.
#[derive(Clone)]
pub struct AuditSink {
    tx: std::sync::mpsc::Sender<AuditLine>,
}

/// How often the writer drains the queue.
pub const DRAIN_EVERY: std::time::Duration = std::time::Duration::from_millis(50);

/// Lines kept in memory (tests, and the last lines for operators later).
pub type Memory = Arc<Mutex<Vec<AuditLine>>>;

impl AuditSink {
    /// Lines to standard output, or appended to `file`.
    pub fn spawn(file: Option<PathBuf>) -> AuditSink {
        let (tx, rx) = std::sync::mpsc::channel::<AuditLine>();
        let spawned = std::thread::Builder::new().name("audit".into()).spawn(move || {
            let mut out: Box<dyn Write + Send> = match &file {
                Some(p) => match std::fs::OpenOptions::new().create(true).append(true).open(p) {
                    Ok(f) => Box::new(std::io::BufWriter::with_capacity(64 * 1024, f)),
                    Err(e) => {
                        tracing::error!(path = %p.display(), error = %e, "cannot open audit log; using stdout");
                        Box::new(std::io::BufWriter::new(std::io::stdout()))
                    }
                },
                None => Box::new(std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout())),
            };
            loop {
                std::thread::sleep(DRAIN_EVERY);
                loop {
                    match rx.try_recv() {
                        Ok(line) => {
                            if let Ok(s) = serde_json::to_string(&line) {
                                let _ = writeln!(out, "{s}");
                            }
                        }
                        Err(std::sync::mpsc::TryRecvError::Empty) => break,
                        Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                            let _ = out.flush();
                            return;
                        }
                    }
                }
                let _ = out.flush();
            }
        });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the audit writer");
        }
        AuditSink { tx }
    }

    /// Lines into `memory`.
    pub fn memory(memory: Memory) -> AuditSink {
        let (tx, rx) = std::sync::mpsc::channel::<AuditLine>();
        std::thread::spawn(move || {
            while let Ok(line) = rx.recv() {
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
