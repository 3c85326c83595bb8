//! Keycloak's key providers (`providerType` `org.keycloak.keys.KeyProvider`)
//! through the components API: how Keycloak's admin console and its
//! scripts (`kcadm.sh create components -s providerId=rsa-generated ...`)
//! add a realm key, rotate by giving a new one a higher priority, make an
//! old one passive (published, not signing) or disabled (not published),
//! and delete it. Each realm key is one component, its id the key's `kid`.
//!
//! Gatehouse generates its keys: `rsa-generated` (RS256 to PS512,
//! `keySize` 2048/3072/4096), `ecdsa-generated` (`ecdsaEllipticCurveKey`
//! P-256 or P-384) and `eddsa-generated` (Ed25519). Imported private keys,
//! keystores and the HMAC/AES providers are refused rather than stored and
//! ignored. Of the active keys of one algorithm the highest priority signs
//! (`keyring.rs`).

use super::{AdminCaller, event};
use crate::error::AdminError;
use crate::state::Idp;
use gatehouse_core::model::Realm;
use gatehouse_jose::keys::{Alg, SigningKey};
use gatehouse_store::KeyRecord;
use serde_json::{Value, json};

/// The provider type of key providers.
pub const KEY_TYPE: &str = "org.keycloak.keys.KeyProvider";

/// The generated provider that makes keys of `alg`.
fn provider_of(alg: Alg) -> &'static str {
    match alg {
        Alg::ES256 | Alg::ES384 => "ecdsa-generated",
        Alg::EdDSA => "eddsa-generated",
        _ => "rsa-generated",
    }
}

/// A key as Keycloak's ComponentRepresentation of its provider.
fn repr(k: &KeyRecord, realm: &Realm, now: i64) -> Value {
    let alg = Alg::parse(&k.alg).unwrap_or(Alg::RS256);
    let provider = provider_of(alg);
    let jwk: Value = serde_json::from_str(&k.public_jwk).unwrap_or(Value::Null);
    let enabled = k.retire_at.is_none_or(|t| t > now);
    let mut config = json!({
        "priority": [k.priority.to_string()],
        "enabled": [enabled.to_string()],
        "active": [k.active.to_string()],
        "algorithm": [k.alg],
    });
    match provider {
        "rsa-generated" => {
            // The modulus, base64url without padding: 4 characters per 3 bytes.
            let bits = jwk["n"].as_str().map_or(2048, |n| n.len() * 6 / 8 * 8);
            config["keySize"] = json!([bits.to_string()]);
        }
        "ecdsa-generated" => config["ecdsaEllipticCurveKey"] = json!([jwk["crv"]]),
        _ => config["eddsaEllipticCurveKey"] = json!(["Ed25519"]),
    }
    json!({
        "id": k.kid,
        "name": k.name.clone().unwrap_or_else(|| provider.to_owned()),
        "providerId": provider,
        "providerType": KEY_TYPE,
        "parentId": realm.id,
        "config": config,
    })
}

/// The realm's keys as components (keys already past their retirement are
/// gone, as a deleted provider's are).
pub async fn list(idp: &Idp, realm: &Realm) -> Result<Vec<Value>, AdminError> {
    let now = gatehouse_core::time::now();
    Ok(idp
        .store
        .keys(&realm.id)
        .await?
        .iter()
        .filter(|k| k.retire_at.is_none_or(|t| t > now))
        .map(|k| repr(k, realm, now))
        .collect())
}

/// The key `kid` of the realm, as stored.
async fn find(idp: &Idp, realm: &Realm, kid: &str) -> Result<Option<KeyRecord>, AdminError> {
    Ok(idp
        .store
        .keys(&realm.id)
        .await?
        .into_iter()
        .find(|k| k.kid == kid))
}

/// The component `id` when it is one of the realm's keys.
pub async fn one(idp: &Idp, realm: &Realm, id: &str) -> Result<Option<Value>, AdminError> {
    let now = gatehouse_core::time::now();
    Ok(find(idp, realm, id).await?.map(|k| repr(&k, realm, now)))
}

/// The first value of a component config entry (Keycloak's config values
/// are lists of strings).
fn cfg<'a>(rep: &'a Value, name: &str) -> Option<&'a str> {
    let v = &rep["config"][name];
    v.as_array()
        .and_then(|a| a.first())
        .unwrap_or(v)
        .as_str()
        .filter(|s| !s.is_empty())
}

fn flag(rep: &Value, name: &str, default: bool) -> Result<bool, AdminError> {
    match cfg(rep, name) {
        None => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(other) => Err(AdminError::bad_request(format!("Invalid {name}: {other}"))),
    }
}

fn priority(rep: &Value, default: i64) -> Result<i64, AdminError> {
    match cfg(rep, "priority") {
        None => Ok(default),
        Some(p) => p
            .parse()
            .map_err(|_| AdminError::bad_request(format!("Invalid priority: {p}"))),
    }
}

/// The algorithm a generated `provider`'s config asks for (a creation's,
/// or an export's: Keycloak's imported `rsa` provider reads as
/// `rsa-generated`).
fn algorithm(provider: &str, rep: &Value) -> Result<Alg, AdminError> {
    let bad = |m: String| Err(AdminError::bad_request(m));
    match provider {
        "rsa-generated" => match Alg::parse(cfg(rep, "algorithm").unwrap_or("RS256")) {
            Ok(alg) if provider_of(alg) == "rsa-generated" => Ok(alg),
            _ => bad("Invalid algorithm for rsa-generated".into()),
        },
        "ecdsa-generated" => match cfg(rep, "ecdsaEllipticCurveKey").unwrap_or("P-256") {
            "P-256" => Ok(Alg::ES256),
            "P-384" => Ok(Alg::ES384),
            other => bad(format!("Unsupported elliptic curve: {other}")),
        },
        "eddsa-generated" => match cfg(rep, "eddsaEllipticCurveKey").unwrap_or("Ed25519") {
            "Ed25519" => Ok(Alg::EdDSA),
            other => bad(format!("Unsupported elliptic curve: {other}")),
        },
        other => bad(format!(
            "Key provider {other} is not supported: Gatehouse generates its keys (rsa-generated, ecdsa-generated, eddsa-generated)"
        )),
    }
}

/// The RSA modulus a creation asks for (Keycloak's `keySize`).
fn key_size(rep: &Value) -> Result<u32, AdminError> {
    match cfg(rep, "keySize").unwrap_or("2048") {
        "2048" => Ok(2048),
        "3072" => Ok(3072),
        "4096" => Ok(4096),
        other => Err(AdminError::bad_request(format!("Invalid keySize: {other}"))),
    }
}

/// A new key's settings from its provider's representation: priority
/// (Keycloak's generated providers default to 0), active, enabled, name.
fn provider_settings(rec: &mut KeyRecord, rep: &Value, now: i64) -> Result<(), AdminError> {
    rec.priority = priority(rep, 0)?;
    rec.active = flag(rep, "active", true)?;
    rec.retire_at = (!flag(rep, "enabled", true)?).then_some(now);
    rec.name = rep["name"].as_str().map(str::to_owned);
    Ok(())
}

/// `POST components` with a key provider: a new key, published at once and
/// signing by its priority. Returns its id (the kid).
pub async fn create(
    idp: &Idp,
    realm: &Realm,
    caller: &AdminCaller,
    rep: &Value,
) -> Result<String, AdminError> {
    let alg = algorithm(rep["providerId"].as_str().unwrap_or_default(), rep)?;
    let now = gatehouse_core::time::now();
    let bits = match provider_of(alg) {
        "rsa-generated" => key_size(rep)?,
        _ => 2048,
    };
    let (key, der) = SigningKey::generate_sized(alg, bits)
        .map_err(|e| AdminError::bad_request(e.to_string()))?;
    let mut rec = crate::keyring::record(idp, realm, &key, &der, now)?;
    provider_settings(&mut rec, rep, now)?;
    let path = format!("components/{}", rec.kid);
    let ev = event(realm, caller, "CREATE", "COMPONENT", &path, Some(rep));
    idp.store.insert_key(&rec, &[ev]).await?;
    idp.forget_keyring(&realm.id);
    Ok(rec.kid)
}

/// `PUT components/{kid}`: priority, active, enabled and name; a key's
/// algorithm and material never change (add another key instead). None
/// when `kid` is not one of the realm's keys.
pub async fn update(
    idp: &Idp,
    realm: &Realm,
    caller: &AdminCaller,
    kid: &str,
    rep: &Value,
) -> Result<Option<()>, AdminError> {
    let Some(mut k) = find(idp, realm, kid).await? else {
        return Ok(None);
    };
    let alg = Alg::parse(&k.alg).unwrap_or(Alg::RS256);
    if rep["providerId"]
        .as_str()
        .is_some_and(|p| p != provider_of(alg))
        || cfg(rep, "algorithm").is_some_and(|a| a != k.alg)
    {
        return Err(AdminError::bad_request(
            "A key's provider and algorithm cannot change; create another key",
        ));
    }
    let now = gatehouse_core::time::now();
    k.priority = priority(rep, k.priority)?;
    k.active = flag(rep, "active", k.active)?;
    let enabled = flag(rep, "enabled", k.retire_at.is_none_or(|t| t > now))?;
    k.retire_at = match (enabled, k.retire_at) {
        (false, Some(t)) if t <= now => Some(t),
        (false, _) => Some(now),
        // Re-enabled: published again (and no longer retiring).
        (true, Some(t)) if t <= now => None,
        (true, keep) => keep,
    };
    if let Some(n) = rep["name"].as_str() {
        k.name = Some(n.to_owned());
    }
    let path = format!("components/{kid}");
    let ev = event(realm, caller, "UPDATE", "COMPONENT", &path, Some(rep));
    idp.store.update_key(&k, &[ev]).await?;
    idp.forget_keyring(&realm.id);
    Ok(Some(()))
}

/// `DELETE components/{kid}`: the key is gone at once (tokens it signed no
/// longer verify, as in Keycloak). None when `kid` is not a key.
pub async fn remove(
    idp: &Idp,
    realm: &Realm,
    caller: &AdminCaller,
    kid: &str,
) -> Result<Option<()>, AdminError> {
    if find(idp, realm, kid).await?.is_none() {
        return Ok(None);
    }
    let path = format!("components/{kid}");
    let ev = event(realm, caller, "DELETE", "COMPONENT", &path, None);
    idp.store.delete_key(&realm.id, kid, &[ev]).await?;
    idp.forget_keyring(&realm.id);
    Ok(Some(()))
}

/// The signing keys of a Keycloak realm export (`components` of this
/// type: `rsa-generated` and `rsa`, `ecdsa-generated` P-256/P-384 and
/// `eddsa-generated` Ed25519, with their private keys), sealed into the
/// realm's key ring under the same `kid` Keycloak published, so relying
/// parties and gateways that cached Keycloak's JWKS keep verifying what
/// Gatehouse signs after a migration. The export's key-provider entries
/// are then dropped from the stored realm: private keys are kept sealed
/// in the key table only, never in the realm's JSON. Providers not
/// imported (HMAC, AES, keystores, encryption keys) are named in a warning.
pub async fn import(idp: &Idp, realm: &Realm, rep: &Value) -> Result<(), AdminError> {
    let Some(list) = rep["components"][KEY_TYPE].as_array() else {
        return Ok(());
    };
    let now = gatehouse_core::time::now();
    let known: Vec<String> = idp
        .store
        .keys(&realm.id)
        .await?
        .into_iter()
        .map(|k| k.kid)
        .collect();
    for c in list {
        let Some((key, der)) = exported(c) else {
            tracing::warn!(realm = %realm.name, provider = c["providerId"].as_str().unwrap_or_default(),
                name = c["name"].as_str().unwrap_or_default(),
                "a Keycloak key provider not imported: its key is not used");
            continue;
        };
        if known.iter().any(|k| k == key.kid()) {
            continue;
        }
        let mut rec = crate::keyring::record(idp, realm, &key, &der, now)?;
        provider_settings(&mut rec, c, now)?;
        idp.store.insert_key(&rec, &[]).await?;
    }
    forget_stored(idp, realm).await?;
    idp.forget_keyring(&realm.id);
    Ok(())
}

/// Drops an export's key-provider entries from the stored realm (they
/// carry private keys in clear; Gatehouse's keys live sealed in the key
/// table). Realms imported before keys were imported still hold them:
/// those keys never signed here, so they are dropped, not imported.
pub async fn forget_stored(idp: &Idp, realm: &Realm) -> Result<(), AdminError> {
    let holds = realm
        .extra
        .get("components")
        .and_then(|c| c.get(KEY_TYPE))
        .is_some();
    if !holds {
        return Ok(());
    }
    let (mut stored, _edit) = super::realm_for_edit(idp, realm).await?;
    if let Some(Value::Object(components)) = stored.extra.get_mut("components")
        && components.remove(KEY_TYPE).is_some()
    {
        tracing::info!(realm = %realm.name, "dropped key providers kept from a Keycloak export");
        idp.store.update_realm(&stored, &[]).await?;
        idp.invalidate();
    }
    Ok(())
}

/// The signing key of an exported provider: its PKCS#8 private key
/// (base64, as Keycloak exports it: `privateKey` for RSA, `ecdsaPrivateKey`
/// and `eddsaPrivateKey` for the generated ECDSA and EdDSA ones) for its
/// algorithm, under its `kid` or the one Keycloak derives (base64url of
/// the SHA-256 of the public key's SubjectPublicKeyInfo).
fn exported(c: &Value) -> Option<(SigningKey, Vec<u8>)> {
    use base64::Engine;
    let (field, generated) = match c["providerId"].as_str()? {
        "rsa-generated" | "rsa" => ("privateKey", "rsa-generated"),
        "ecdsa-generated" => ("ecdsaPrivateKey", "ecdsa-generated"),
        "eddsa-generated" => ("eddsaPrivateKey", "eddsa-generated"),
        _ => return None,
    };
    let alg = algorithm(generated, c).ok()?;
    let b64: String = cfg(c, field)?
        .chars()
        .filter(|ch| !ch.is_whitespace())
        .collect();
    let der = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    let probe = SigningKey::from_pkcs8(alg, "import", &der).ok()?;
    let kid = match cfg(c, "kid") {
        Some(k) => k.to_owned(),
        None => {
            let spki = probe.public_key_der().ok()?;
            let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &spki);
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(d.as_ref())
        }
    };
    let key = SigningKey::from_pkcs8(alg, &kid, &der).ok()?;
    Some((key, der))
}
