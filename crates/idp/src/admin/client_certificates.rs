//! `/admin/realms/{realm}/clients/{id}/certificates/{attr}`: the key
//! material configured on a client under an attribute prefix (Keycloak's
//! CertificateRepresentation), e.g. `jwt.credential`, whose certificate or
//! public key verifies the client's signed JWTs
//! (`oidc/client_assertion.rs`).
//!
//! - `GET`: what is configured (`certificate`, `publicKey`, `kid`, and
//!   `privateKey` when `generate` made and kept one, as Keycloak keeps it).
//! - `POST generate`: a new RSA key pair and self-signed certificate
//!   (`CN=<clientId>`); both are kept and returned.
//! - `POST generate-and-download`: the same, answered as a keystore file;
//!   only the certificate is kept (the private key leaves with the file).
//! - `POST download`: the configured key (or certificate) as a keystore
//!   file, with the realm's RSA certificate unless `realmCertificate` is
//!   false.
//!
//! Keystores are JKS (Keycloak's default) or PKCS12 (`keystore.rs`); BCFKS
//! is answered 406 with the formats supported, as Keycloak answers a
//! format its crypto provider lacks. Uploading keystores (multipart) is
//! not implemented.

use super::{RealmAdmin, event};
use crate::error::AdminError;
use crate::keystore::{self, Entry};
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use gatehouse_core::model::Client;
use gatehouse_jose::keys::SigningKey;
use serde_json::{Map, Value, json};
use std::sync::Arc;

use crate::state::Idp;

/// The routes.
pub fn routes() -> Router<Arc<Idp>> {
    let base = "/admin/realms/{realm}/clients/{id}/certificates/{attr}";
    Router::new()
        .route(base, get(info))
        .route(&format!("{base}/generate"), post(generate))
        .route(
            &format!("{base}/generate-and-download"),
            post(generate_and_download),
        )
        .route(&format!("{base}/download"), post(download))
}

/// Keycloak's `KeycloakModelUtils.DEFAULT_CERTIFICATE_VALIDITY_YEARS`.
const DEFAULT_VALIDITY_YEARS: u64 = 3;

/// What a client keeps under `attr`, as Keycloak's representation names it.
fn representation(c: &Client, attr: &str) -> Map<String, Value> {
    let mut rep = Map::new();
    for (suffix, field) in [
        ("private.key", "privateKey"),
        ("public.key", "publicKey"),
        ("certificate", "certificate"),
        ("kid", "kid"),
    ] {
        if let Some(v) = c.attributes.get(&format!("{attr}.{suffix}")) {
            rep.insert(field.into(), json!(v));
        }
    }
    rep
}

async fn info(
    RealmAdmin { idp, realm, .. }: RealmAdmin,
    Path((_, id, attr)): Path<(String, String, String)>,
) -> Result<Json<Value>, AdminError> {
    let c = super::clients::load(&idp, &realm, &id).await?;
    Ok(Json(Value::Object(representation(&c, &attr))))
}

/// A new RSA key (`bits`) and its certificate for the client, as the
/// base64 DER Keycloak keeps in attributes (no PEM armour).
fn new_key_pair(c: &Client, bits: u32, years: u64) -> Result<(String, String), AdminError> {
    let (key, pkcs8) = SigningKey::generate_rsa(bits).map_err(|e| {
        tracing::error!(error = %e, "client key generation failed");
        AdminError::new(StatusCode::INTERNAL_SERVER_ERROR, "unknown_error")
    })?;
    let valid = std::time::Duration::from_secs(years * 365 * 86_400);
    let cert =
        gatehouse_jose::certificate::self_signed(&key, &c.client_id, valid).map_err(|e| {
            tracing::error!(error = %e, "client certificate failed");
            AdminError::new(StatusCode::INTERNAL_SERVER_ERROR, "unknown_error")
        })?;
    Ok((STANDARD.encode(pkcs8), STANDARD.encode(cert)))
}

/// Replaces what the client keeps under `attr` with `private` (optional)
/// and `certificate`, with the admin event of `action`.
async fn store(
    a: &RealmAdmin,
    mut c: Client,
    (attr, action): (&str, &str),
    private: Option<&str>,
    certificate: &str,
) -> Result<(), AdminError> {
    for suffix in ["private.key", "public.key", "certificate", "kid"] {
        c.attributes.remove(&format!("{attr}.{suffix}"));
    }
    if let Some(p) = private {
        c.attributes.insert(format!("{attr}.private.key"), p.into());
    }
    c.attributes
        .insert(format!("{attr}.certificate"), certificate.into());
    let path = format!("clients/{}/certificates/{attr}/{action}", c.id);
    // The representation names the certificate only: never a private key
    // in an event.
    let rep = json!({"certificate": certificate});
    let ev = event(&a.realm, &a.caller, "ACTION", "CLIENT", &path, Some(&rep));
    a.idp.store.update_client(&c, &[ev]).await?;
    Ok(())
}

async fn generate(
    a: RealmAdmin,
    Path((_, id, attr)): Path<(String, String, String)>,
) -> Result<Json<Value>, AdminError> {
    let _edit = a.idp.lock_row(&id).await;
    let c = super::clients::load(&a.idp, &a.realm, &id).await?;
    let (private, cert) = new_key_pair(&c, 2048, DEFAULT_VALIDITY_YEARS)?;
    store(&a, c, (&attr, "generate"), Some(&private), &cert).await?;
    Ok(Json(json!({"privateKey": private, "certificate": cert})))
}

/// Keycloak's KeyStoreConfig.
#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct KeyStoreConfig {
    format: Option<String>,
    key_alias: Option<String>,
    key_password: Option<String>,
    store_password: Option<String>,
    realm_certificate: Option<bool>,
    realm_alias: Option<String>,
    key_size: Option<i64>,
    validity: Option<i64>,
}

/// The keystore formats Gatehouse writes.
#[derive(Clone, Copy, PartialEq)]
enum Format {
    Jks,
    Pkcs12,
}

fn config(body: &Bytes) -> Result<(KeyStoreConfig, Format), AdminError> {
    let c: KeyStoreConfig = serde_json::from_slice(body)
        .map_err(|_| AdminError::bad_request("Invalid keystore configuration"))?;
    let format = match c.format.as_deref().map(str::to_ascii_uppercase).as_deref() {
        None | Some("JKS") => Format::Jks,
        Some("PKCS12") => Format::Pkcs12,
        Some(_) => {
            return Err(AdminError::new(
                StatusCode::NOT_ACCEPTABLE,
                "Not supported keystore format. Supported keystore formats: [JKS, PKCS12]",
            ));
        }
    };
    Ok((c, format))
}

fn password_missing(which: &str, what: &str) -> AdminError {
    AdminError::bad_request(format!("Need to specify a {which} password for {what}"))
}

/// The keystore file: the client's key (or certificate) and, unless
/// asked not to, the realm's RSA certificate.
async fn keystore_file(
    a: &RealmAdmin,
    c: &Client,
    (cfg, format): (&KeyStoreConfig, Format),
    (private, cert): (Option<&str>, &str),
) -> Result<Response, AdminError> {
    let bad_attr = || AdminError::bad_request("The stored key material is not valid base64");
    let cert_der = STANDARD.decode(cert.trim()).map_err(|_| bad_attr())?;
    let key_der = private
        .map(|p| STANDARD.decode(p.trim()).map_err(|_| bad_attr()))
        .transpose()?;
    let alias = cfg.key_alias.clone().unwrap_or_else(|| c.client_id.clone());
    let key_password = cfg.key_password.as_deref().unwrap_or("").trim();
    let mut entries = vec![match &key_der {
        Some(k) => Entry::PrivateKey {
            alias: &alias,
            pkcs8: k,
            chain: vec![&cert_der],
            password: key_password,
        },
        None => Entry::Certificate {
            alias: &alias,
            der: &cert_der,
        },
    }];
    let realm_cert;
    let realm_alias = cfg
        .realm_alias
        .clone()
        .unwrap_or_else(|| a.realm.name.clone());
    if cfg.realm_certificate.unwrap_or(true) {
        let ring = a.idp.keyring(&a.realm).await?;
        let key = ring
            .rsa_signer(gatehouse_core::time::now())
            .ok_or_else(|| {
                AdminError::bad_request("The realm has no RSA key; ask without realmCertificate")
            })?;
        let valid = std::time::Duration::from_secs(DEFAULT_VALIDITY_YEARS * 365 * 86_400);
        realm_cert =
            gatehouse_jose::certificate::self_signed(key, &a.realm.name, valid).map_err(|e| {
                tracing::error!(error = %e, "realm certificate failed");
                AdminError::new(StatusCode::INTERNAL_SERVER_ERROR, "unknown_error")
            })?;
        entries.push(Entry::Certificate {
            alias: &realm_alias,
            der: &realm_cert,
        });
    }
    let store_password = cfg.store_password.as_deref().unwrap_or("").trim();
    let now_ms = u64::try_from(gatehouse_core::time::now_millis()).unwrap_or(0);
    let file = match format {
        Format::Jks => keystore::jks(&entries, store_password, now_ms),
        Format::Pkcs12 => keystore::pkcs12(&entries, store_password).ok_or_else(|| {
            tracing::error!("PKCS#12 keystore could not be written");
            AdminError::new(StatusCode::INTERNAL_SERVER_ERROR, "unknown_error")
        })?,
    };
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], file).into_response())
}

async fn generate_and_download(
    a: RealmAdmin,
    Path((_, id, attr)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<Response, AdminError> {
    let (cfg, format) = config(&body)?;
    let what = "jks generation and download";
    if cfg.key_password.is_none() {
        return Err(password_missing("key", what));
    }
    if cfg.store_password.is_none() {
        return Err(password_missing("store", what));
    }
    let bits = match cfg.key_size {
        None | Some(..=0) | Some(2048) => 2048,
        Some(n @ (3072 | 4096)) => n as u32,
        Some(_) => {
            return Err(AdminError::bad_request(
                "keySize must be 2048, 3072 or 4096",
            ));
        }
    };
    let years = cfg
        .validity
        .filter(|v| (1..=100).contains(v))
        .map_or(DEFAULT_VALIDITY_YEARS, |v| v as u64);
    let _edit = a.idp.lock_row(&id).await;
    let c = super::clients::load(&a.idp, &a.realm, &id).await?;
    let (private, cert) = new_key_pair(&c, bits, years)?;
    let file = keystore_file(&a, &c, (&cfg, format), (Some(&private), &cert)).await?;
    store(&a, c, (&attr, "generate-and-download"), None, &cert).await?;
    Ok(file)
}

async fn download(
    a: RealmAdmin,
    Path((_, id, attr)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<Response, AdminError> {
    let (cfg, format) = config(&body)?;
    let c = super::clients::load(&a.idp, &a.realm, &id).await?;
    let rep = representation(&c, &attr);
    let private = rep.get("privateKey").and_then(Value::as_str);
    let Some(cert) = rep.get("certificate").and_then(Value::as_str) else {
        return Err(AdminError::missing("keypair not generated for client"));
    };
    if private.is_some() && cfg.key_password.is_none() {
        return Err(password_missing("key", "jks download"));
    }
    if cfg.store_password.is_none() {
        return Err(password_missing("store", "jks download"));
    }
    keystore_file(&a, &c, (&cfg, format), (private, cert)).await
}
