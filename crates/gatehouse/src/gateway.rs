//! Starting the gateway listener and reloading its configuration: on SIGHUP
//! and when the config file changes (polled, so editors that replace the
//! file are seen too). A config that does not validate is refused with its
//! message and the running snapshot keeps serving.

use crate::config::Config;
use anyhow::Context;
use arc_swap::ArcSwap;
use gatehouse_gateway::audit::AuditSink;
use gatehouse_gateway::authn::apikey::ApiKeyLookup;
use gatehouse_gateway::config::{GatewayFile, Snapshot};
use gatehouse_gateway::server::Gateway;
use std::sync::Arc;
use std::time::SystemTime;
use tokio::net::TcpListener;

/// API-key lookups for the gateway, over the store.
struct StoreKeys(Arc<dyn gatehouse_store::Store>);

impl ApiKeyLookup for StoreKeys {
    fn lookup<'a>(
        &'a self,
        key_hash: &'a str,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Option<(gatehouse_core::model::ApiKey, String)>>
                + Send
                + 'a,
        >,
    > {
        Box::pin(async move {
            let key = self.0.api_key_by_hash(key_hash).await.ok()??;
            let realm = self
                .0
                .realms()
                .await
                .ok()?
                .into_iter()
                .find(|r| r.id == key.realm_id)?;
            Some((key, realm.name))
        })
    }
}

/// Reads and validates the gateway part of `cfg.source`.
pub fn load_file(cfg: &Config) -> anyhow::Result<GatewayFile> {
    match &cfg.source {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            GatewayFile::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))
        }
        None => Ok(GatewayFile::default()),
    }
}

/// Re-reads the config file and swaps the snapshot if it validates.
pub fn reload(cfg: &Config, gw: &Gateway) -> anyhow::Result<()> {
    let file = load_file(cfg)?;
    let prev = gw.snapshot.load();
    if file == prev.file {
        return Ok(());
    }
    let snap = Snapshot::build(file, Some(&prev), &gw.http, gw.apikeys.as_ref())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    gw.snapshot.store(Arc::new(snap));
    tracing::info!("gateway configuration reloaded");
    Ok(())
}

/// Binds the gateway listener and starts serving and watching.
pub async fn start(
    cfg: &Config,
    revocations: Arc<gatehouse_core::revocation::Revocations>,
    own_issuer_prefix: String,
    store: Arc<dyn gatehouse_store::Store>,
    asserter: gatehouse_gateway::assertion::Asserter,
) -> anyhow::Result<(
    std::net::SocketAddr,
    Arc<Gateway>,
    tokio::task::JoinHandle<()>,
)> {
    let apikeys: Arc<dyn ApiKeyLookup> = Arc::new(StoreKeys(store));
    let file = load_file(cfg)?;
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .context("HTTP client")?;
    let listener = TcpListener::bind(&cfg.server.gateway_listen)
        .await
        .with_context(|| format!("binding gateway listener {}", cfg.server.gateway_listen))?;
    let addr = listener.local_addr()?;
    let public_url = file
        .gateway
        .public_url
        .clone()
        .unwrap_or_else(|| format!("{}://{addr}", cfg.scheme()));
    let audit = AuditSink::spawn(file.gateway.audit_log.clone());
    let snap =
        Snapshot::build(file, None, &http, Some(&apikeys)).map_err(|e| anyhow::anyhow!("{e}"))?;
    let gw = Arc::new(Gateway {
        snapshot: ArcSwap::from_pointee(snap),
        audit,
        revocations: Some(revocations.clone()),
        own_issuer_prefix: Some(own_issuer_prefix),
        public_url: public_url.trim_end_matches('/').to_owned(),
        http,
        metrics: Default::default(),
        serve_metrics: false,
        limiter: Box::new(gatehouse_gateway::ratelimit::LocalLimiter::default()),
        trusted_proxies: cfg.server.trusted()?,
        quotas: Default::default(),
        apikeys: Some(apikeys),
        asserter,
        dpop_replay: Default::default(),
    });
    let server = tokio::spawn(gatehouse_gateway::server::serve(
        gw.clone(),
        listener,
        cfg.tls()?,
    ));
    watch(cfg.clone(), gw.clone());
    let pruner = gw.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            tick.tick().await;
            revocations.prune(gatehouse_core::time::now());
            pruner.limiter.prune(gatehouse_core::time::now_nanos());
        }
    });
    tracing::info!(%addr, "gateway listener ready");
    Ok((addr, gw, server))
}

fn mtime(cfg: &Config) -> Option<SystemTime> {
    cfg.source
        .as_ref()
        .and_then(|p| std::fs::metadata(p).ok()?.modified().ok())
}

fn watch(cfg: Config, gw: Arc<Gateway>) {
    let Some(_) = &cfg.source else { return };
    let poll = cfg.server.reload_poll_seconds;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(4);
    #[cfg(unix)]
    {
        let tx = tx.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let Ok(mut hup) = signal(SignalKind::hangup()) else {
                return;
            };
            while hup.recv().await.is_some() {
                let _ = tx.send(()).await;
            }
        });
    }
    if poll > 0 {
        let cfg = cfg.clone();
        tokio::spawn(async move {
            let mut last = mtime(&cfg);
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(poll)).await;
                let now = mtime(&cfg);
                if now.is_some() && now != last {
                    last = now;
                    if tx.send(()).await.is_err() {
                        break;
                    }
                }
            }
        });
    }
    tokio::spawn(async move {
        while rx.recv().await.is_some() {
            if let Err(e) = reload(&cfg, &gw) {
                tracing::error!(error = %e, "configuration reload refused; the previous configuration keeps serving");
            }
        }
    });
}

/// The gateway's assertion key (`X-Gatehouse-Assertion`), kept sealed
/// with the master key in the store (beside realm `master`'s secrets):
/// made on the first start, the same after a restart and on every node.
pub async fn assertion_signer(
    store: &dyn gatehouse_store::Store,
    master_key: &gatehouse_jose::seal::MasterKey,
) -> anyhow::Result<gatehouse_gateway::assertion::Asserter> {
    use base64::Engine;
    use gatehouse_jose::keys::{Alg, SigningKey};
    const NAME: &str = "gateway-assertion-key";
    let b64 = base64::engine::general_purpose::STANDARD;
    let master = store
        .realm_by_name("master")
        .await?
        .context("realm master")?;
    let key = match store.secret(&master.id, NAME).await? {
        Some(sealed) => {
            let raw = master_key
                .open(&sealed, NAME.as_bytes())
                .map_err(|e| anyhow::anyhow!("assertion key: {e}"))?;
            let v: serde_json::Value = serde_json::from_slice(&raw)?;
            let der = b64.decode(v["pkcs8"].as_str().unwrap_or_default())?;
            SigningKey::from_pkcs8(Alg::ES256, v["kid"].as_str().unwrap_or_default(), &der)
                .map_err(|e| anyhow::anyhow!("assertion key: {e}"))?
        }
        None => {
            let (key, der) = SigningKey::generate(Alg::ES256)
                .map_err(|e| anyhow::anyhow!("assertion key: {e}"))?;
            let raw = serde_json::json!({"kid": key.kid(), "pkcs8": b64.encode(&der)}).to_string();
            let sealed = master_key
                .seal(raw.as_bytes(), NAME.as_bytes())
                .map_err(|e| anyhow::anyhow!("assertion key: {e}"))?;
            store.put_secret(&master.id, NAME, &sealed).await?;
            key
        }
    };
    Ok(gatehouse_gateway::assertion::Asserter::with_key(key))
}
