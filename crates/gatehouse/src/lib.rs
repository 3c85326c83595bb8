//! Wiring: configuration (TOML + `GATEHOUSE_*` environment), the master key,
//! the store, bootstrap, and the listeners. The binary and the integration
//! tests start Gatehouse through [`start`].

pub mod bench_crypto;
pub mod config;
pub mod gateway;
pub mod master_key;

use anyhow::Context;
use gatehouse_idp::Idp;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::TcpListener;

/// The file in the data folder that holds a generated bootstrap admin
/// password (the operator reads it, then deletes it).
const ADMIN_PASSWORD_FILE: &str = "admin-password";

/// A running Gatehouse.
pub struct Running {
    /// Where the identity listener is bound (useful with port 0).
    pub identity_addr: SocketAddr,
    /// Where the gateway listener is bound.
    pub gateway_addr: SocketAddr,
    pub gateway: Arc<gatehouse_gateway::server::Gateway>,
    pub config: config::Config,
    gateway_task: tokio::task::JoinHandle<()>,
    pub idp: Arc<Idp>,
    /// Where bootstrap wrote the admin password it generated (mode 0600 in
    /// the data folder): never printed, since standard output is a log
    /// under systemd or a container runtime.
    pub admin_password_file: Option<PathBuf>,
    server: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Waits for the server task (returns when the listener fails).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.server.await.context("server task")
    }

    /// Stops serving.
    pub fn abort(&self) {
        self.server.abort();
        self.gateway_task.abort();
    }

    /// Reloads the gateway configuration from the config file now (what
    /// SIGHUP does).
    pub fn reload(&self) -> anyhow::Result<()> {
        gateway::reload(&self.config, &self.gateway)
    }
}

/// Creates the data folder for its owner alone (mode 0700 on Unix): the
/// database in it holds password hashes and client secrets. A folder that
/// exists already keeps the modes its owner gave it.
fn create_private_dir(path: &std::path::Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(path)
}

/// Opens the store and the master key, bootstraps realm `master`.
pub async fn open_idp(cfg: &config::Config) -> anyhow::Result<(Arc<Idp>, Option<String>)> {
    open_idp_at(cfg, &cfg.public_url()).await
}

async fn open_idp_at(
    cfg: &config::Config,
    public_url: &str,
) -> anyhow::Result<(Arc<Idp>, Option<String>)> {
    create_private_dir(&cfg.server.data_dir)
        .with_context(|| format!("creating data dir {}", cfg.server.data_dir.display()))?;
    let key = master_key::load(cfg)?;
    let db = cfg.database_url();
    if !db.starts_with("sqlite:") {
        anyhow::bail!("unsupported database URL (only sqlite:// is available so far): {db}");
    }
    let store = gatehouse_store::sqlite::SqliteStore::open(&db)
        .await
        .with_context(|| format!("opening database {db}"))?;
    let mut idp = Idp::new(Arc::new(store), key, public_url, cfg.password_cost());
    idp.login_ip_policy =
        gatehouse_idp::state::login_policy(cfg.server.login_failures_per_minute_per_ip);
    idp.trusted_proxies = cfg.server.trusted()?;
    let idp = Arc::new(idp);
    let b = gatehouse_idp::bootstrap::ensure_master(
        &idp,
        &cfg.admin_user,
        cfg.admin_password.as_deref(),
    )
    .await
    .map_err(|e| anyhow::anyhow!("bootstrap: {}", e.message))?;
    if let Some(u) = &b.admin_user {
        tracing::info!(username = %u, "created bootstrap admin in realm master");
    }
    gatehouse_idp::not_before::republish(&idp)
        .await
        .context("reading the realms' and clients' notBefore")?;
    for path in &cfg.server.import_realms {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let rep: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not JSON", path.display()))?;
        let name = rep
            .get("realm")
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        if idp.store.realm_by_name(name).await?.is_none() {
            import_realm(&idp, &rep).await?;
            tracing::info!(realm = %name, file = %path.display(), "imported realm");
        }
    }
    // Bootstrap and import hashed passwords; their memory is not needed
    // until someone logs in.
    idp.release_password_memory();
    Ok((idp, b.generated_password))
}

/// `/metrics` on the identity listener (Prometheus text format): the
/// gateway's request counters, latency histogram, JWKS and token-cache
/// counters, and process figures.
fn metrics_routes(gw: Arc<gatehouse_gateway::server::Gateway>) -> axum::Router {
    axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let gw = gw.clone();
            async move {
                let mut out = gw.metrics.render(&gw.snapshot.load());
                if let Some(rss) = std::fs::read_to_string("/proc/self/status")
                    .ok()
                    .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok()))
                {
                    out.push_str(&format!("# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes {}\n", rss * 1024));
                }
                (
                    [(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
                    out,
                )
            }
        }),
    )
}

/// Imports a Keycloak realm export into a new realm.
pub async fn import_realm(idp: &Idp, rep: &serde_json::Value) -> anyhow::Result<()> {
    let imported = gatehouse_idp::import::realm(idp, rep, vec![]).await;
    // Outside the admin router (whose middleware does it): drop the
    // entity caches so a running server sees what was imported.
    idp.invalidate();
    imported
        .map(drop)
        .map_err(|e| anyhow::anyhow!("{}", e.message))
}

/// Starts the identity listener and background jobs.
pub async fn start(cfg: &config::Config) -> anyhow::Result<Running> {
    gatehouse_jose::install_crypto_provider();
    let listener = TcpListener::bind(&cfg.server.identity_listen)
        .await
        .with_context(|| format!("binding identity listener {}", cfg.server.identity_listen))?;
    let identity_addr = listener.local_addr()?;
    // With port 0 (tests) the issuer must name the port actually bound.
    let public_url = cfg
        .server
        .public_url
        .clone()
        .unwrap_or_else(|| format!("{}://{identity_addr}", cfg.scheme()));
    let tls = cfg.tls()?;
    let (idp, generated) = open_idp_at(cfg, &public_url).await?;
    let admin_password_file = match generated {
        Some(pw) => {
            let path = cfg.server.data_dir.join(ADMIN_PASSWORD_FILE);
            master_key::write_private(&path, pw.as_bytes(), true)?;
            Some(path)
        }
        None => None,
    };
    tracing::info!(%identity_addr, "identity listener ready");
    let asserter = gateway::assertion_signer(idp.store.as_ref(), &idp.master_key).await?;
    let (gateway_addr, gateway, gateway_task) = gateway::start(
        cfg,
        idp.revocations.clone(),
        format!("{public_url}/realms/"),
        idp.store.clone(),
        asserter,
    )
    .await?;
    let app = tower::util::MapRequest::new(
        gatehouse_idp::router(idp.clone()).merge(metrics_routes(gateway.clone())),
        gatehouse_idp::trim_trailing_slash,
    );
    gatehouse_idp::event_mail::spawn(idp.clone());
    gatehouse_idp::user_storage::spawn_periodic_sync(idp.clone());
    let purge_store = idp.store.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            tick.tick().await;
            if let Err(e) = purge_store.purge_expired(gatehouse_core::time::now()).await {
                tracing::warn!(error = %e, "purge of expired rows failed");
            }
            // Memory freed since (a burst of requests gone by) goes back
            // to the OS rather than waiting for the next allocation.
            gatehouse_alloc::return_free_memory();
        }
    });
    // The identity listener shares the gateway's accept loop: the same
    // slowloris and handshake timeouts, TLS by ALPN when configured.
    let server = tokio::spawn(gatehouse_gateway::server::accept_loop(
        listener,
        tls,
        || gatehouse_gateway::server::HEADER_READ_TIMEOUT,
        move |remote: SocketAddr| {
            let app = app.clone();
            hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let app = app.clone();
                async move {
                    if !gatehouse_gateway::server::host_is_valid(req.version(), req.headers()) {
                        let mut bad = axum::response::Response::new(axum::body::Body::from(
                            "Bad Request: missing, repeated or malformed Host",
                        ));
                        *bad.status_mut() = axum::http::StatusCode::BAD_REQUEST;
                        return Ok(bad);
                    }
                    let (req, unread) = gatehouse_gateway::unread_body::track(req);
                    // A body that stops coming for the header timeout ends.
                    let mut req = req.map(|b| {
                        axum::body::Body::new(gatehouse_gateway::unread_body::Idle::new(
                            b,
                            gatehouse_gateway::server::HEADER_READ_TIMEOUT,
                        ))
                    });
                    req.extensions_mut()
                        .insert(axum::extract::ConnectInfo(remote));
                    let mut resp = tower::ServiceExt::oneshot(app, req).await?;
                    unread.mark(&mut resp);
                    Ok::<_, std::convert::Infallible>(resp)
                }
            })
        },
    ));
    Ok(Running {
        identity_addr,
        gateway_addr,
        gateway,
        gateway_task,
        config: cfg.clone(),
        idp,
        admin_password_file,
        server,
    })
}
