//! The identity provider's shared state: store, master key, issuer base,
//! per-realm key rings, and a realm cache.

use crate::error::OAuthError;
use crate::keyring::KeyRing;
use gatehouse_core::model::Realm;
use gatehouse_core::password::Argon2Cost;
use gatehouse_jose::seal::MasterKey;
use gatehouse_store::Store;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// How long a cached key ring is trusted before it is reloaded from the
/// store, so that a rotation made by another node shows up here too.
const KEYRING_TTL_SECS: i64 = 30;

/// State shared by every identity handler.
pub struct Idp {
    pub store: Arc<dyn Store>,
    pub master_key: MasterKey,
    /// Base URL for issuers: `{public_url}/realms/{realm}`. Never derived
    /// from the request's Host header.
    pub public_url: String,
    /// Cost of new password hashes.
    pub password_cost: Argon2Cost,
    /// Whether cookies get the `Secure` flag (public URL is https).
    pub secure_cookies: bool,
    rings: RwLock<HashMap<String, Arc<KeyRing>>>,
    /// Serializes key-ring loads, so two first requests to a new realm
    /// cannot both create its first key.
    ring_load: tokio::sync::Mutex<()>,
    /// What this IdP revoked, shared with an in-process gateway.
    pub revocations: Arc<gatehouse_core::revocation::Revocations>,
}

impl Idp {
    /// Builds the state.
    pub fn new(
        store: Arc<dyn Store>,
        master_key: MasterKey,
        public_url: &str,
        password_cost: Argon2Cost,
    ) -> Self {
        let public_url = public_url.trim_end_matches('/').to_owned();
        Idp {
            store,
            master_key,
            secure_cookies: public_url.starts_with("https://"),
            public_url,
            password_cost,
            rings: RwLock::new(HashMap::new()),
            ring_load: tokio::sync::Mutex::new(()),
            revocations: Default::default(),
        }
    }

    /// The issuer of a realm's tokens.
    pub fn issuer(&self, realm: &str) -> String {
        format!("{}/realms/{}", self.public_url, realm)
    }

    /// Loads an enabled realm or answers 404 in OAuth form.
    pub async fn realm(&self, name: &str) -> Result<Realm, OAuthError> {
        match self.store.realm_by_name(name).await? {
            Some(r) if r.enabled => Ok(r),
            _ => Err(OAuthError::new(
                axum::http::StatusCode::NOT_FOUND,
                "invalid_request",
                "Realm does not exist",
            )),
        }
    }

    /// The realm's key ring, creating the first key if the realm has none.
    pub async fn keyring(&self, realm: &Realm) -> Result<Arc<KeyRing>, OAuthError> {
        if let Some(r) = self.cached_ring(&realm.id) {
            return Ok(r);
        }
        let _guard = self.ring_load.lock().await;
        // Someone may have loaded it while we waited.
        if let Some(r) = self.cached_ring(&realm.id) {
            return Ok(r);
        }
        let ring = Arc::new(KeyRing::load(self, realm).await?);
        if let Ok(mut map) = self.rings.write() {
            map.insert(realm.id.clone(), ring.clone());
        }
        Ok(ring)
    }

    fn cached_ring(&self, realm_id: &str) -> Option<Arc<KeyRing>> {
        let now = gatehouse_core::time::now();
        let map = self.rings.read().ok()?;
        let r = map.get(realm_id)?;
        (now - r.loaded_at < KEYRING_TTL_SECS && r.current_signer(now).is_some()).then(|| r.clone())
    }

    /// Records ended sessions for the gateway. Kept two days: longer than
    /// any access token of theirs can live.
    pub fn sessions_revoked(&self, ids: &[String]) {
        let until = gatehouse_core::time::now() + 2 * 86_400;
        for id in ids {
            self.revocations.session(id, until);
        }
    }

    /// Records that every token of `user_id` issued until now is revoked.
    pub fn user_revoked(&self, user_id: &str) {
        let now = gatehouse_core::time::now();
        self.revocations.user(user_id, now, now + 2 * 86_400);
    }

    /// Drops a cached key ring (after rotation).
    pub fn forget_keyring(&self, realm_id: &str) {
        if let Ok(mut map) = self.rings.write() {
            map.remove(realm_id);
        }
    }
}
