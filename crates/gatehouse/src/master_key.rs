//! The master key that seals private keys at rest: `GATEHOUSE_MASTER_KEY`
//! (base64 of 32 bytes) or `<data_dir>/master.key`, generated with mode 0600
//! on first start.

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use gatehouse_jose::seal::MasterKey;

/// Loads or creates the master key.
pub fn load(cfg: &crate::config::Config) -> anyhow::Result<MasterKey> {
    let raw = match &cfg.master_key {
        Some(k) => STANDARD
            .decode(k.trim())
            .context("GATEHOUSE_MASTER_KEY must be base64 of 32 bytes")?,
        None => {
            let path = cfg.server.data_dir.join("master.key");
            match std::fs::read_to_string(&path) {
                Ok(text) => STANDARD
                    .decode(text.trim())
                    .with_context(|| format!("{} is not base64", path.display()))?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    let key: [u8; 32] = gatehouse_core::id::bytes();
                    write_private(&path, STANDARD.encode(key).as_bytes(), false)?;
                    tracing::info!(path = %path.display(), "generated master key");
                    key.to_vec()
                }
                Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
            }
        }
    };
    MasterKey::from_bytes(&raw).map_err(|e| anyhow::anyhow!("{e}"))
}

/// Writes a secret readable by its owner only (mode 0600 from the moment
/// the file exists). `replace`: a file already there is removed first
/// (never written through, since it may be a link or have wider modes);
/// otherwise an existing file is an error.
#[cfg(unix)]
pub(crate) fn write_private(
    path: &std::path::Path,
    data: &[u8],
    replace: bool,
) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if replace {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("replacing {}", path.display()));
            }
            _ => {}
        }
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(data)?;
    Ok(())
}

#[cfg(not(unix))]
pub(crate) fn write_private(
    path: &std::path::Path,
    data: &[u8],
    _replace: bool,
) -> anyhow::Result<()> {
    std::fs::write(path, data).with_context(|| format!("creating {}", path.display()))
}
