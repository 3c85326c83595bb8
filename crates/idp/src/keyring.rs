//! A realm's signing keys in memory, and rotation.
//!
//! Rotation rule (design.md): a new key is published in the JWKS before it
//! signs, and an old key stays published until the last token it signed has
//! expired. A rotated-in key gets `sign_from = now + publish_ahead`; the
//! keys it replaces get `retire_at = sign_from + longest token lifetime`.
//!
//! Keys are per algorithm, as Keycloak's key providers are: the realm's
//! default algorithm signs unless a client asks for another
//! (`access.token.signed.response.alg`, `id.token.signed.response.alg`),
//! and the first such request makes a key of that algorithm, as Keycloak
//! makes its "fallback" keys. Rotation replaces keys of one algorithm.

use crate::error::OAuthError;
use crate::state::Idp;
use gatehouse_core::model::{Client, Event, Realm, TokenLifespan};
use gatehouse_jose::keys::{Alg, SigningKey};
use gatehouse_jose::verify::KeySet;
use gatehouse_store::KeyRecord;
use std::sync::Arc;

/// Name of the realm secret that signs refresh tokens and SSO cookies (HS512,
/// never published, as Keycloak does for refresh tokens).
const REFRESH_SECRET: &str = "hs512";

/// A published key and when it may sign.
struct Signer {
    sign_from: i64,
    retire_at: Option<i64>,
    priority: i64,
    active: bool,
    key: Arc<SigningKey>,
}

impl Signer {
    fn signs(&self, now: i64) -> bool {
        self.active && self.sign_from <= now && self.retire_at.is_none_or(|r| r > now)
    }
}

/// A realm's keys, parsed.
pub struct KeyRing {
    pub loaded_at: i64,
    /// The realm's default algorithm when loaded (a realm that changes it
    /// gets a new ring).
    pub default_alg: Alg,
    /// The published keys, oldest first.
    signers: Vec<Signer>,
    /// The published JWKS document.
    pub jwks: serde_json::Value,
    /// Verifier over the published keys, for our own tokens.
    pub verifier: KeySet,
    /// Secret for refresh tokens and SSO cookies.
    pub hs_secret: Vec<u8>,
}

impl KeyRing {
    /// The key that signs now with the realm's algorithm.
    pub fn current_signer(&self, now: i64) -> Option<&Arc<SigningKey>> {
        self.signer_for(self.default_alg, now)
    }

    /// The key that signs `alg` now: of that algorithm's active keys whose
    /// `sign_from` has passed, the highest priority, then the newest (as
    /// Keycloak picks among key providers).
    pub fn signer_for(&self, alg: Alg, now: i64) -> Option<&Arc<SigningKey>> {
        self.signers
            .iter()
            .filter(|s| s.key.alg() == alg && s.signs(now))
            .max_by_key(|s| (s.priority, s.sign_from))
            .map(|s| &s.key)
    }

    /// The newest RSA key that signs now, whatever the realm's default
    /// algorithm: keystore downloads carry its certificate, as Keycloak's
    /// carry its active RSA key's.
    pub fn rsa_signer(&self, now: i64) -> Option<&Arc<SigningKey>> {
        self.signer_for(Alg::RS256, now)
    }

    /// The signer or a 500.
    pub fn signer(&self) -> Result<&Arc<SigningKey>, OAuthError> {
        self.current_signer(gatehouse_core::time::now())
            .ok_or_else(|| OAuthError::internal("realm has no signing key"))
    }

    /// Loads (and if needed creates) a realm's keys.
    pub async fn load(idp: &Idp, realm: &Realm) -> Result<KeyRing, OAuthError> {
        let now = gatehouse_core::time::now();
        let mut records = idp.store.keys(&realm.id).await?;
        // Realm writes accept only algorithms Gatehouse signs with.
        let alg = Alg::parse(&realm.default_signature_algorithm).unwrap_or(Alg::RS256);
        if !records.iter().any(|k| {
            k.alg == alg.as_str()
                && k.active
                && k.sign_from <= now
                && k.retire_at.is_none_or(|t| t > now)
        }) {
            let rec = new_key(idp, realm, alg, now)?;
            idp.store.insert_key(&rec, &[]).await?;
            records.push(rec);
        }
        let mut signers = Vec::new();
        let mut jwks = Vec::new();
        for r in records
            .iter()
            .filter(|r| r.retire_at.is_none_or(|t| t > now))
        {
            let der = idp.master_key.open(&r.private_sealed, r.kid.as_bytes())?;
            let alg = Alg::parse(&r.alg)?;
            let key = SigningKey::from_pkcs8(alg, &r.kid, &der)?;
            jwks.push(key.public_jwk().clone());
            signers.push(Signer {
                sign_from: r.sign_from,
                retire_at: r.retire_at,
                priority: r.priority,
                active: r.active,
                key: Arc::new(key),
            });
        }
        signers.sort_by_key(|s| s.sign_from);
        let jwks = gatehouse_jose::jwks::document(jwks.iter());
        let verifier = KeySet::from_jwks_json(jwks.to_string().as_bytes())?;
        let hs_secret = match idp.store.secret(&realm.id, REFRESH_SECRET).await? {
            Some(sealed) => idp.master_key.open(&sealed, realm.id.as_bytes())?,
            None => {
                let s = gatehouse_core::id::bytes::<64>().to_vec();
                let sealed = idp.master_key.seal(&s, realm.id.as_bytes())?;
                idp.store
                    .put_secret(&realm.id, REFRESH_SECRET, &sealed)
                    .await?;
                s
            }
        };
        Ok(KeyRing {
            loaded_at: now,
            default_alg: alg,
            signers,
            jwks,
            verifier,
            hs_secret,
        })
    }
}

/// The key that signs `alg` for a client that asked for it: the ring's,
/// or (the first time in this realm) a new one, active at once and
/// published from then on, as Keycloak's fallback keys are. Saving a
/// client that names an algorithm makes its key beforehand
/// (`prepare_for_client`), so relying parties find it in the JWKS before
/// the first token it signs; this covers clients stored otherwise.
pub async fn signer_as(
    idp: &Idp,
    realm: &Realm,
    ring: &KeyRing,
    alg: Alg,
) -> Result<Arc<SigningKey>, OAuthError> {
    let now = gatehouse_core::time::now();
    if let Some(k) = ring.signer_for(alg, now) {
        return Ok(k.clone());
    }
    // Another node or request may have made one since this ring loaded.
    idp.forget_keyring(&realm.id);
    let fresh = idp.keyring(realm).await?;
    if let Some(k) = fresh.signer_for(alg, now) {
        return Ok(k.clone());
    }
    let rec = new_key(idp, realm, alg, now)?;
    let kid = rec.kid.clone();
    idp.store.insert_key(&rec, &[]).await?;
    tracing::info!(realm = %realm.name, %kid, alg = alg.as_str(), "created a signing key for a client's algorithm");
    idp.forget_keyring(&realm.id);
    idp.keyring(realm)
        .await?
        .signer_for(alg, now)
        .cloned()
        .ok_or_else(|| OAuthError::internal("new signing key not loaded"))
}

/// Makes the keys of the algorithms `client` names (access token, ID
/// token, userinfo) that the realm has none of yet.
pub async fn prepare_for_client(
    idp: &Idp,
    realm: &Realm,
    client: &Client,
) -> Result<(), OAuthError> {
    let algs: Vec<Alg> = [
        crate::tokens::ACCESS_ALG,
        crate::tokens::ID_ALG,
        crate::tokens::USERINFO_ALG,
    ]
    .into_iter()
    .filter_map(|a| named_alg(client, a))
    .collect();
    if algs.is_empty() {
        return Ok(());
    }
    let ring = idp.keyring(realm).await?;
    for alg in algs {
        signer_as(idp, realm, &ring, alg).await?;
    }
    Ok(())
}

/// The algorithm `client`'s `attribute` (`tokens::ACCESS_ALG`, `ID_ALG`,
/// `USERINFO_ALG`) names, when Gatehouse signs with it. Another value
/// (empty, or HMAC, which imports warn about and registration refuses)
/// names none.
pub fn named_alg(client: &Client, attribute: &str) -> Option<Alg> {
    Alg::parse(client.attributes.get(attribute)?).ok()
}

/// The key that signs `client`'s tokens of the kind `attribute` names:
/// the realm's, unless the attribute names another algorithm.
pub async fn client_signer(
    idp: &Idp,
    realm: &Realm,
    ring: &KeyRing,
    client: &Client,
    attribute: &str,
) -> Result<Arc<SigningKey>, OAuthError> {
    match named_alg(client, attribute) {
        Some(alg) if alg != ring.default_alg => signer_as(idp, realm, ring, alg).await,
        _ => Ok(ring.signer()?.clone()),
    }
}

fn new_key(idp: &Idp, realm: &Realm, alg: Alg, sign_from: i64) -> Result<KeyRecord, OAuthError> {
    let (key, der) = SigningKey::generate(alg)?;
    record(idp, realm, &key, &der, sign_from)
}

/// The stored form of a new `key` (PKCS#8 `der`, sealed under the master
/// key), priority 100 and active, as Keycloak's generated providers start.
pub fn record(
    idp: &Idp,
    realm: &Realm,
    key: &SigningKey,
    der: &[u8],
    sign_from: i64,
) -> Result<KeyRecord, OAuthError> {
    let alg = key.alg();
    let sealed = idp.master_key.seal(der, key.kid().as_bytes())?;
    Ok(KeyRecord {
        kid: key.kid().to_owned(),
        realm_id: realm.id.clone(),
        alg: alg.as_str().to_owned(),
        sign_from,
        retire_at: None,
        created: gatehouse_core::time::now(),
        private_sealed: sealed,
        public_jwk: key.public_jwk().to_string(),
        priority: 100,
        active: true,
        name: None,
    })
}

/// Rotates a realm's signing key: the new key is published now and signs
/// from `now + publish_ahead_secs`. Returns the new kid.
pub async fn rotate(
    idp: &Idp,
    realm: &Realm,
    alg: Option<Alg>,
    publish_ahead_secs: i64,
) -> Result<String, OAuthError> {
    let now = gatehouse_core::time::now();
    let alg = match alg {
        Some(a) => a,
        None => Alg::parse(&realm.default_signature_algorithm)?,
    };
    let sign_from = now + publish_ahead_secs.max(0);
    // The longest-lived token an old key may have signed: the realm's access
    // token lifespan, its front-channel one, or any client override (ID
    // tokens share them).
    let mut longest = realm
        .access_token_lifespan
        .max(realm.implicit_token_lifespan());
    for c in idp.store.clients(&realm.id).await? {
        match c.access_token_lifespan() {
            Some(TokenLifespan::Seconds(l)) => longest = longest.max(l),
            Some(TokenLifespan::SessionMax) => {
                let sso_max = realm.session_limits(false).1;
                longest = longest.max(sso_max.max(realm.session_limits(true).1));
            }
            None => {}
        }
    }
    let retire_at = sign_from + longest + 60;
    // The new key takes the highest priority of those it replaces, so that
    // it signs from `sign_from` on (the newest wins among equals).
    let mut priority = None;
    for old in idp.store.keys(&realm.id).await? {
        if old.retire_at.is_none() && old.alg == alg.as_str() {
            priority = priority.max(Some(old.priority));
            idp.store.retire_key(&old.kid, retire_at).await?;
        }
    }
    let mut rec = new_key(idp, realm, alg, sign_from)?;
    if let Some(p) = priority {
        rec.priority = p;
    }
    let kid = rec.kid.clone();
    let mut ev = Event::admin(realm, "CREATE", "COMPONENT", &format!("keys/{kid}"));
    ev.details.insert("algorithm".into(), alg.as_str().into());
    idp.store.insert_key(&rec, &[ev]).await?;
    idp.forget_keyring(&realm.id);
    Ok(kid)
}
