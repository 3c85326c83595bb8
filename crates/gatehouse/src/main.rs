//! `gatehouse`: identity provider and API gateway in one binary.

use anyhow::Context;
use clap::{Parser, Subcommand};
use gatehouse::config::Config;
use std::path::PathBuf;

/// mimalloc instead of glibc's malloc (see `gatehouse_alloc`).
#[global_allocator]
static ALLOC: gatehouse_alloc::Allocator = gatehouse_alloc::Allocator;

#[derive(Parser)]
#[command(
    name = "gatehouse",
    version,
    about = "OpenID Connect identity provider and identity-aware API gateway"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the server.
    Serve {
        #[arg(long)]
        config: Option<PathBuf>,
        /// Database URL (sqlite://PATH); env GATEHOUSE_DB.
        #[arg(long)]
        db: Option<String>,
    },
    /// Import a Keycloak realm export JSON file.
    Import {
        file: PathBuf,
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Write a realm as a Keycloak realm export JSON (to stdout or --out).
    Export {
        realm: String,
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Measure this machine's raw crypto rates (the baseline the benchmark
    /// reports token issuance and logins against), over all cores.
    BenchCrypto {
        #[arg(long, default_value_t = 3)]
        seconds: u64,
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Signing key operations.
    Keys {
        #[command(subcommand)]
        op: KeysOp,
    },
}

#[derive(Subcommand)]
enum KeysOp {
    /// Publish a new key for REALM; it signs after --publish-ahead seconds.
    Rotate {
        realm: String,
        #[arg(long, default_value_t = 0)]
        publish_ahead: i64,
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

fn load(config: Option<&std::path::Path>, db: Option<String>) -> anyhow::Result<Config> {
    let mut cfg = Config::load(config)?;
    if db.is_some() {
        cfg.db = db;
    }
    Ok(cfg)
}

fn main() -> anyhow::Result<()> {
    gatehouse_core::password::on_memory_released(gatehouse_alloc::return_free_memory);
    let cli = Cli::parse();
    let threads = match &cli.cmd {
        Cmd::Serve { config, .. } => Config::load(config.as_deref())?.server.worker_threads,
        _ => None,
    };
    // One worker: a current-thread runtime, like one nginx worker, without
    // the work-stealing scheduler's synchronization.
    let mut rt = match threads {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    rt.enable_all();
    if let Some(n) = threads.filter(|n| *n > 1) {
        rt.worker_threads(n);
    }
    rt.build()
        .context("starting the async runtime")?
        .block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("GATEHOUSE_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_target(false)
        .init();
    gatehouse_jose::install_crypto_provider();
    match cli.cmd {
        Cmd::Serve { config, db } => {
            let cfg = load(config.as_deref(), db)?;
            let running = gatehouse::start(&cfg).await?;
            if let Some(file) = &running.admin_password_file {
                println!(
                    "Bootstrap admin '{}' created; its generated password is in {} \
                     (readable by you only; delete the file once you have changed it)",
                    cfg.admin_user,
                    file.display()
                );
            }
            println!(
                "Gatehouse identity provider listening on http://{}",
                running.identity_addr
            );
            println!(
                "Gatehouse gateway listening on http://{}",
                running.gateway_addr
            );
            tokio::select! {
                r = running.wait() => r?,
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Cmd::Import { file, config } => {
            let cfg = load(config.as_deref(), None)?;
            let (idp, _) = gatehouse::open_idp(&cfg).await?;
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let rep: serde_json::Value =
                serde_json::from_str(&text).context("realm file is not JSON")?;
            gatehouse::import_realm(&idp, &rep).await?;
            println!(
                "imported realm {}",
                rep.get("realm")
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
            );
        }
        Cmd::Export { realm, out, config } => {
            let cfg = load(config.as_deref(), None)?;
            let (idp, _) = gatehouse::open_idp(&cfg).await?;
            let r = idp
                .store
                .realm_by_name(&realm)
                .await?
                .context("no such realm")?;
            let v = gatehouse_idp::export::realm(&idp, &r)
                .await
                .map_err(|e| anyhow::anyhow!("{}", e.message))?;
            let text = serde_json::to_string_pretty(&v)?;
            match out {
                Some(p) => {
                    std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?
                }
                None => println!("{text}"),
            }
        }
        Cmd::BenchCrypto { seconds, config } => {
            let cfg = load(config.as_deref(), None)?;
            gatehouse::bench_crypto::run(&cfg, seconds)?;
        }
        Cmd::Keys {
            op:
                KeysOp::Rotate {
                    realm,
                    publish_ahead,
                    config,
                },
        } => {
            let cfg = load(config.as_deref(), None)?;
            let (idp, _) = gatehouse::open_idp(&cfg).await?;
            let r = idp
                .store
                .realm_by_name(&realm)
                .await?
                .context("no such realm")?;
            let kid = gatehouse_idp::keyring::rotate(&idp, &r, None, publish_ahead)
                .await
                .map_err(|e| anyhow::anyhow!("{}", e.description))?;
            println!("new key {kid} published; signs from now + {publish_ahead}s");
        }
    }
    Ok(())
}
