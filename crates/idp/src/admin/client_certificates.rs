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
//! - `POST upload`, `upload-certificate` (multipart): a certificate PEM, a
//!   public key PEM, a JWKS or a JKS keystore replaces what is kept.
//!
//! Keystores are JKS (Keycloak's default) or PKCS12 (`keystore.rs`); BCFKS
//! is answered 406 with the formats supported, as Keycloak answers a
//! format its crypto provider lacks. PKCS12 uploads are refused.

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
        .route(&format!("{base}/upload"), post(upload::<true>))
        .route(&format!("{base}/upload-certificate"), post(upload::<false>))
}

/// Keycloak's `KeycloakModelUtils.DEFAULT_CERTIFICATE_VALIDITY_YEARS`.
const DEFAULT_VALIDITY_YEARS: u64 = 3;

/// Attribute suffixes and the representation's names for them.
const FIELDS: [(&str, &str); 4] = [
    ("private.key", "privateKey"),
    ("public.key", "publicKey"),
    ("certificate", "certificate"),
    ("kid", "kid"),
];

/// What a client keeps under `attr`, as Keycloak's representation names it.
fn representation(c: &Client, attr: &str) -> Map<String, Value> {
    let mut rep = Map::new();
    for (suffix, field) in FIELDS {
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

/// Replaces what the client keeps under `attr` with `rep` (Keycloak's
/// CertificateRepresentation fields: `privateKey`, `publicKey`,
/// `certificate`, `kid`; those absent are removed), with the admin event
/// of `action`.
async fn store(
    a: &RealmAdmin,
    mut c: Client,
    (attr, action): (&str, &str),
    rep: &Map<String, Value>,
) -> Result<(), AdminError> {
    for (suffix, field) in FIELDS {
        let key = format!("{attr}.{suffix}");
        match rep.get(field).and_then(Value::as_str) {
            Some(v) => c.attributes.insert(key, v.to_owned()),
            None => c.attributes.remove(&key),
        };
    }
    save(a, &c, (attr, action), rep).await
}

/// Writes the client with the admin event of `action`, whose
/// representation is `rep` without any private key.
async fn save(
    a: &RealmAdmin,
    c: &Client,
    (attr, action): (&str, &str),
    rep: &Map<String, Value>,
) -> Result<(), AdminError> {
    let path = format!("clients/{}/certificates/{attr}/{action}", c.id);
    let mut shown = rep.clone();
    shown.remove("privateKey");
    let ev = event(
        &a.realm,
        &a.caller,
        "ACTION",
        "CLIENT",
        &path,
        Some(&Value::Object(shown)),
    );
    a.idp.store.update_client(c, &[ev]).await?;
    Ok(())
}

/// A representation from `(field, value)` pairs.
fn rep(fields: &[(&str, &str)]) -> Map<String, Value> {
    fields
        .iter()
        .map(|(k, v)| ((*k).to_owned(), json!(v)))
        .collect()
}

async fn generate(
    a: RealmAdmin,
    Path((_, id, attr)): Path<(String, String, String)>,
) -> Result<Json<Value>, AdminError> {
    let _edit = a.idp.lock_row(&id).await;
    let c = super::clients::load(&a.idp, &a.realm, &id).await?;
    let (private, cert) = new_key_pair(&c, 2048, DEFAULT_VALIDITY_YEARS)?;
    let made = rep(&[("privateKey", &private), ("certificate", &cert)]);
    store(&a, c, (&attr, "generate"), &made).await?;
    Ok(Json(Value::Object(made)))
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
    let kept = rep(&[("certificate", &cert)]);
    store(&a, c, (&attr, "generate-and-download"), &kept).await?;
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

/// A PEM's base64 body on one line (Keycloak's `PemUtils.removeBeginEnd`).
fn pem_body(text: &str) -> String {
    text.lines()
        .filter(|l| !l.starts_with("-----"))
        .flat_map(|l| l.chars())
        .filter(|c| !c.is_whitespace())
        .collect()
}

fn bad_upload(m: &str) -> AdminError {
    AdminError::bad_request(m)
}

/// `POST .../upload` and `.../upload-certificate` (multipart: `file`,
/// `keystoreFormat`, and for keystores `keyAlias`, `keyPassword`,
/// `storePassword`): a certificate PEM, a public key PEM, a JWKS (kept as
/// the client's `jwks.string`), or a JKS keystore whose entry gives the
/// certificate and, through `upload` only, the private key. PKCS12
/// uploads are refused (the certificate PEM does the same job).
async fn upload<const WITH_KEY: bool>(
    a: RealmAdmin,
    Path((_, id, attr)): Path<(String, String, String)>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, AdminError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let parts = crate::multipart::parse(content_type, &body)
        .ok_or_else(|| bad_upload("Expected a multipart/form-data body"))?;
    let text = |name: &str| {
        parts
            .get(name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    };
    let format =
        text("keystoreFormat").ok_or_else(|| bad_upload("keystoreFormat cannot be null"))?;
    let file = parts
        .get("file")
        .filter(|f| !f.is_empty())
        .ok_or_else(|| bad_upload("file cannot be empty"))?;
    let file_text = || String::from_utf8_lossy(file).into_owned();
    let _edit = a.idp.lock_row(&id).await;
    let mut c = super::clients::load(&a.idp, &a.realm, &id).await?;
    let info = match format.as_str() {
        "Certificate PEM" => {
            let cert = pem_body(&file_text());
            let der = STANDARD
                .decode(&cert)
                .map_err(|_| bad_upload("The certificate is not valid PEM"))?;
            if !gatehouse_jose::certificate::is_certificate(&der) {
                return Err(bad_upload("The certificate is not valid PEM"));
            }
            rep(&[("certificate", &cert)])
        }
        "Public Key PEM" => {
            let pem = file_text().trim().to_owned();
            if !pem.starts_with("-----BEGIN PUBLIC KEY-----") {
                return Err(bad_upload("The public key is not valid PEM"));
            }
            gatehouse_jose::verify::KeySet::from_certificate(&pem)
                .map_err(|_| bad_upload("The public key is not valid PEM"))?;
            rep(&[("publicKey", &pem)])
        }
        "JSON Web Key Set" => {
            let jwks = file_text();
            gatehouse_jose::verify::KeySet::from_jwks_json(jwks.as_bytes())
                .map_err(|_| bad_upload("The JSON Web Key Set is not valid"))?;
            let set: Value = serde_json::from_str(&jwks)
                .map_err(|_| bad_upload("The JSON Web Key Set is not valid"))?;
            let first = &set["keys"][0];
            // As Keycloak, a JWKS becomes the client's key source.
            c.attributes.insert("use.jwks.string".into(), "true".into());
            c.attributes.insert("jwks.string".into(), jwks.clone());
            c.attributes.insert("use.jwks.url".into(), "false".into());
            let mut info = Map::new();
            if let Some(kid) = first["kid"].as_str() {
                info.insert("kid".into(), json!(kid));
            }
            if let Some(x5c) = first["x5c"][0].as_str() {
                info.insert("certificate".into(), json!(x5c));
            }
            let action = if WITH_KEY {
                "upload"
            } else {
                "upload-certificate"
            };
            save(&a, &c, (&attr, action), &info).await?;
            return Ok(Json(Value::Object(info)));
        }
        "JKS" => {
            let alias = text("keyAlias").unwrap_or_default();
            let (key, cert) = crate::keystore::read_jks(
                file,
                &text("storePassword").unwrap_or_default(),
                &alias,
                &text("keyPassword").unwrap_or_default(),
            )
            .map_err(|e| {
                bad_upload(match e {
                    crate::keystore::JksError::Malformed => "error loading keystore",
                    crate::keystore::JksError::Integrity => {
                        "Keystore was tampered with, or password was incorrect"
                    }
                    crate::keystore::JksError::KeyPassword => "Cannot recover key",
                    crate::keystore::JksError::NoSuchAlias => {
                        "Certificate or key with given alias not found in the keystore"
                    }
                })
            })?;
            let cert = cert.ok_or_else(|| {
                bad_upload("Certificate or key with given alias not found in the keystore")
            })?;
            let cert = STANDARD.encode(cert);
            match key.filter(|_| WITH_KEY) {
                Some(k) => rep(&[("privateKey", &STANDARD.encode(k)), ("certificate", &cert)]),
                None => rep(&[("certificate", &cert)]),
            }
        }
        "PKCS12" => {
            return Err(bad_upload(
                "PKCS12 keystores cannot be uploaded; upload the certificate PEM or a JKS keystore",
            ));
        }
        _ => return Err(bad_upload("Unsupported keystore format")),
    };
    let action = if WITH_KEY {
        "upload"
    } else {
        "upload-certificate"
    };
    store(&a, c, (&attr, action), &info).await?;
    Ok(Json(Value::Object(info)))
}
