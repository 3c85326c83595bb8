//! Configuration: the TOML file of design.md, overlaid by `GATEHOUSE_*`
//! environment variables (`GATEHOUSE_<SECTION>_<KEY>`), validated once.

use anyhow::Context;
use gatehouse_core::password::{Argon2Cost, DEFAULT_COST};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// `[server]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Server {
    pub identity_listen: String,
    pub gateway_listen: String,
    pub data_dir: PathBuf,
    pub public_url: Option<String>,
    /// argon2id memory in KiB for new password hashes (Keycloak: 7168).
    pub password_memory_kib: u32,
    /// argon2id iterations (Keycloak: 5).
    pub password_iterations: u32,
    /// Keycloak realm exports to import at start when their realm does not
    /// exist yet (paths relative to the config file), like Keycloak's
    /// `--import-realm`.
    pub import_realms: Vec<PathBuf>,
    /// Seconds between checks of the config file for changes (0: only SIGHUP).
    pub reload_poll_seconds: u64,
    /// PEM certificate chain and private key: HTTPS on both listeners.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Runtime worker threads; default one per core.
    pub worker_threads: Option<usize>,
    /// Failed logins allowed per client IP and minute (burst of the same
    /// size); over it, logins from that IP get 429. 0 disables.
    pub login_failures_per_minute_per_ip: u64,
    /// Reverse proxies (addresses or CIDR ranges) whose `X-Forwarded-For`
    /// names the client, for login throttling, events, rate limits, Cedar
    /// and audit lines. Empty: the header is ignored.
    pub trusted_proxies: Vec<String>,
    /// Which header those proxies write, as Keycloak's `proxy-headers`:
    /// `xforwarded` (`X-Forwarded-For`, the default) or `forwarded`
    /// (RFC 7239).
    pub proxy_headers: String,
}

impl Server {
    /// The parsed `trusted_proxies`.
    pub fn trusted(&self) -> anyhow::Result<gatehouse_core::client_ip::TrustedProxies> {
        let header = gatehouse_core::client_ip::ProxyHeader::parse(&self.proxy_headers)
            .map_err(|e| anyhow::anyhow!(e))?;
        gatehouse_core::client_ip::TrustedProxies::parse(&self.trusted_proxies)
            .map(|t| t.with_header(header))
            .map_err(|e| anyhow::anyhow!(e))
    }
}

impl Default for Server {
    fn default() -> Self {
        Server {
            identity_listen: "127.0.0.1:8080".into(),
            gateway_listen: "127.0.0.1:8000".into(),
            data_dir: "./gatehouse-data".into(),
            public_url: None,
            password_memory_kib: DEFAULT_COST.memory_kib,
            password_iterations: DEFAULT_COST.iterations,
            import_realms: vec![],
            reload_poll_seconds: 1,
            worker_threads: None,
            tls_cert: None,
            tls_key: None,
            login_failures_per_minute_per_ip: 30,
            trusted_proxies: vec![],
            proxy_headers: "xforwarded".into(),
        }
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct Config {
    pub server: Server,
    /// `--db` / `GATEHOUSE_DB`.
    #[serde(skip)]
    pub db: Option<String>,
    #[serde(skip)]
    pub admin_user: String,
    #[serde(skip)]
    pub admin_password: Option<String>,
    #[serde(skip)]
    pub master_key: Option<String>,
    /// The file this configuration came from (reload reads it again).
    #[serde(skip)]
    pub source: Option<PathBuf>,
    /// Sections of later issues (`authorizers`, `routes`) are read by their
    /// own modules; kept here so the file validates today.
    #[serde(flatten)]
    pub rest: toml::Table,
}

impl Config {
    /// Reads `path` (if given) and applies the environment.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Config> {
        let mut cfg: Config = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading {}", p.display()))?;
                toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?
            }
            None => Config::default(),
        };
        for key in cfg.rest.keys() {
            if !matches!(key.as_str(), "gateway" | "authorizers" | "routes") {
                anyhow::bail!("unknown section or key `{key}` at the top level of the config file");
            }
        }
        if let Some(p) = path {
            // Validate the gateway part now, so a bad file fails at start.
            gatehouse_gateway::config::GatewayFile::parse(&std::fs::read_to_string(p)?)
                .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
            let dir = p.parent().map(Path::to_owned).unwrap_or_default();
            for r in &mut cfg.server.import_realms {
                if r.is_relative() {
                    *r = dir.join(&*r);
                }
            }
            cfg.source = Some(p.to_owned());
        }
        cfg.apply_env(|k| std::env::var(k).ok())?;
        Ok(cfg)
    }

    /// Applies `GATEHOUSE_*` variables through `get` (testable without
    /// touching the process environment).
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> anyhow::Result<()> {
        let s = &mut self.server;
        if let Some(v) = get("GATEHOUSE_SERVER_IDENTITY_LISTEN") {
            s.identity_listen = v;
        }
        if let Some(v) = get("GATEHOUSE_SERVER_GATEWAY_LISTEN") {
            s.gateway_listen = v;
        }
        if let Some(v) = get("GATEHOUSE_SERVER_DATA_DIR") {
            s.data_dir = v.into();
        }
        if let Some(v) = get("GATEHOUSE_SERVER_PUBLIC_URL") {
            s.public_url = Some(v);
        }
        if let Some(v) = get("GATEHOUSE_SERVER_PASSWORD_MEMORY_KIB") {
            s.password_memory_kib = v.parse().context("GATEHOUSE_SERVER_PASSWORD_MEMORY_KIB")?;
        }
        if let Some(v) = get("GATEHOUSE_SERVER_PASSWORD_ITERATIONS") {
            s.password_iterations = v.parse().context("GATEHOUSE_SERVER_PASSWORD_ITERATIONS")?;
        }
        if let Some(v) = get("GATEHOUSE_SERVER_TLS_CERT") {
            s.tls_cert = Some(v.into());
        }
        if let Some(v) = get("GATEHOUSE_SERVER_TLS_KEY") {
            s.tls_key = Some(v.into());
        }
        if s.tls_cert.is_some() != s.tls_key.is_some() {
            anyhow::bail!("tls_cert and tls_key go together");
        }
        if let Some(v) = get("GATEHOUSE_SERVER_WORKER_THREADS") {
            s.worker_threads = Some(v.parse().context("GATEHOUSE_SERVER_WORKER_THREADS")?);
        }
        if let Some(v) = get("GATEHOUSE_SERVER_LOGIN_FAILURES_PER_MINUTE_PER_IP") {
            s.login_failures_per_minute_per_ip = v
                .parse()
                .context("GATEHOUSE_SERVER_LOGIN_FAILURES_PER_MINUTE_PER_IP")?;
        }
        if let Some(v) = get("GATEHOUSE_SERVER_TRUSTED_PROXIES") {
            s.trusted_proxies = v
                .split(',')
                .map(|x| x.trim().to_owned())
                .filter(|x| !x.is_empty())
                .collect();
        }
        if let Some(v) = get("GATEHOUSE_SERVER_PROXY_HEADERS") {
            s.proxy_headers = v;
        }
        s.trusted()?;
        if let Some(v) = get("GATEHOUSE_DB") {
            self.db = Some(v);
        }
        self.admin_user = get("GATEHOUSE_ADMIN_USER").unwrap_or_else(|| "admin".into());
        self.admin_password = get("GATEHOUSE_ADMIN_PASSWORD");
        self.master_key = get("GATEHOUSE_MASTER_KEY");
        if s.password_memory_kib < 8 || s.password_iterations == 0 {
            anyhow::bail!("password hashing cost too low");
        }
        Ok(())
    }

    /// The database URL: `--db`, else SQLite in the data dir.
    pub fn database_url(&self) -> String {
        self.db.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}",
                self.server.data_dir.join("gatehouse.db").display()
            )
        })
    }

    /// The issuer base: `public_url`, else `http(s)://<identity_listen>`.
    pub fn public_url(&self) -> String {
        self.server
            .public_url
            .clone()
            .unwrap_or_else(|| format!("{}://{}", self.scheme(), self.server.identity_listen))
    }

    /// `https` when TLS is configured.
    pub fn scheme(&self) -> &'static str {
        if self.server.tls_cert.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// The listeners' TLS configuration, if any.
    pub fn tls(&self) -> anyhow::Result<Option<std::sync::Arc<rustls::ServerConfig>>> {
        match (&self.server.tls_cert, &self.server.tls_key) {
            (Some(c), Some(k)) => Ok(Some(
                gatehouse_gateway::tls::server_config(c, k)
                    .map_err(|e| anyhow::anyhow!("TLS: {e}"))?,
            )),
            _ => Ok(None),
        }
    }

    /// Cost of new password hashes.
    pub fn password_cost(&self) -> Argon2Cost {
        Argon2Cost {
            memory_kib: self.server.password_memory_kib,
            iterations: self.server.password_iterations,
            ..DEFAULT_COST
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_file_and_unknown_server_keys_are_refused() {
        let mut c: Config =
            toml::from_str("[server]\nidentity_listen = \"127.0.0.1:9999\"\n").expect("parse");
        c.apply_env(|k| {
            (k == "GATEHOUSE_SERVER_IDENTITY_LISTEN").then(|| "127.0.0.1:1".to_owned())
        })
        .expect("env");
        assert_eq!(c.server.identity_listen, "127.0.0.1:1");
        assert_eq!(c.public_url(), "http://127.0.0.1:1");
        assert!(toml::from_str::<Config>("[server]\nidentity_lisen = \"x\"\n").is_err());
    }
}
