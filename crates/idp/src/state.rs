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

/// How long a cached realm or client is trusted before it is read again, so
/// that a change made through another node shows up. Changes made through
/// this node invalidate the cache at once.
const ENTITY_TTL_SECS: i64 = 5;

/// Standalone events (no state change of their own, e.g. CLIENT_LOGIN,
/// LOGIN_ERROR) are group-committed: one transaction per batch instead of
/// one per grant. Events that accompany a change are still written in that
/// change's transaction.
pub enum EventMsg {
    Event(Box<gatehouse_core::model::Event>),
    /// A session was used at this time (refresh, SSO login).
    Touch(String, i64),
    Flush(tokio::sync::oneshot::Sender<()>),
}

type Cached<T> = RwLock<HashMap<String, (T, i64)>>;

/// A cached entry younger than [`ENTITY_TTL_SECS`].
fn fresh<T: Clone>(c: &Cached<T>, key: &str) -> Option<T> {
    let now = gatehouse_core::time::now();
    c.read().ok().and_then(|m| {
        m.get(key)
            .filter(|(_, t)| now - t < ENTITY_TTL_SECS)
            .map(|(v, _)| v.clone())
    })
}

fn forget<T>(c: &Cached<T>) {
    if let Ok(mut m) = c.write() {
        m.clear();
    }
}

fn remember<T>(c: &Cached<T>, key: &str, v: T) {
    if let Ok(mut m) = c.write() {
        // Bounded: a burst of distinct keys cannot grow it without limit.
        if m.len() > 100_000 {
            m.clear();
        }
        m.insert(key.to_owned(), (v, gatehouse_core::time::now()));
    }
}

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
    /// One lock per entity id for admin edits that rewrite its row.
    row_edits: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    realms: Cached<Realm>,
    clients: Cached<gatehouse_core::model::Client>,
    /// Client scopes per realm id (every grant applies their mappers).
    client_scopes: Cached<Arc<Vec<gatehouse_core::model::ClientScope>>>,
    /// Effective roles and groups per user id: the store queries every
    /// grant would otherwise repeat.
    identities: Cached<Arc<crate::tokens::Identity>>,
    /// Service-account users per client (internal id).
    service_accounts: Cached<gatehouse_core::model::User>,
    /// Users by id (refresh grants).
    users: Cached<gatehouse_core::model::User>,
    events: Option<tokio::sync::mpsc::UnboundedSender<EventMsg>>,
    /// Failed logins per client IP (GCRA); None disables the limit.
    pub login_ip_policy: Option<gatehouse_core::ratelimit::Policy>,
    pub login_ip_limiter: gatehouse_core::ratelimit::LocalLimiter,
    /// One login check at a time per user under brute-force detection.
    pub login_turns: crate::login_turns::Turns,
    /// What this IdP revoked, shared with an in-process gateway.
    pub revocations: Arc<gatehouse_core::revocation::Revocations>,
    /// Proxies whose `X-Forwarded-For` names the client (none by default).
    pub trusted_proxies: gatehouse_core::client_ip::TrustedProxies,
    /// One thread per core for password hashing.
    hashing: crate::hashing::HashPool,
    /// Used client-assertion ids and fetched client keys.
    pub assertions: crate::oidc::client_assertion::AssertionState,
    /// DPoP proofs already used (each is good for one request).
    pub dpop_replay: gatehouse_jose::dpop::ReplayCache,
    /// Fetches clients' `jwks.url` and posts back-channel logout tokens
    /// (short timeouts: a login or a logout waits on it).
    pub http: reqwest::Client,
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
        let events = tokio::runtime::Handle::try_current()
            .ok()
            .map(|_| spawn_event_writer(store.clone()));
        Idp {
            realms: Default::default(),
            clients: Default::default(),
            client_scopes: Default::default(),
            identities: Default::default(),
            service_accounts: Default::default(),
            users: Default::default(),
            login_ip_policy: login_policy(30),
            login_ip_limiter: Default::default(),
            login_turns: Default::default(),
            events,
            store,
            master_key,
            secure_cookies: public_url.starts_with("https://"),
            public_url,
            password_cost,
            rings: RwLock::new(HashMap::new()),
            ring_load: tokio::sync::Mutex::new(()),
            row_edits: Default::default(),
            revocations: Default::default(),
            trusted_proxies: Default::default(),
            assertions: Default::default(),
            dpop_replay: Default::default(),
            http: reqwest::Client::builder()
                .connect_timeout(std::time::Duration::from_secs(3))
                .timeout(std::time::Duration::from_secs(5))
                // A client's URL redirecting elsewhere is not followed:
                // back-channel logout forbids it, and for jwks.url it would
                // let a registrant point the server at internal addresses.
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default(),
            hashing: crate::hashing::HashPool::new(
                std::thread::available_parallelism().map_or(1, |n| n.get()),
            ),
        }
    }

    /// Runs password hashing work (`f`) on the hashing threads, at most one
    /// job per core at a time.
    pub async fn password_work<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, OAuthError> {
        self.hashing
            .run(f)
            .await
            .ok_or_else(|| OAuthError::internal("password hashing failed"))
    }

    /// Has the idle hashing threads free their argon2 memory now (see
    /// `HashPool::release_memory`).
    pub fn release_password_memory(&self) {
        self.hashing.release_memory();
    }

    /// The issuer of a realm's tokens.
    pub fn issuer(&self, realm: &str) -> String {
        format!("{}/realms/{}", self.public_url, realm)
    }

    /// Loads an enabled realm or answers 404 in OAuth form.
    pub async fn realm(&self, name: &str) -> Result<Realm, OAuthError> {
        let found = match fresh(&self.realms, name) {
            Some(r) => Some(r),
            None => {
                let r = self.store.realm_by_name(name).await?;
                if let Some(r) = &r {
                    remember(&self.realms, name, r.clone());
                }
                r
            }
        };
        match found {
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
        let alg = gatehouse_jose::keys::Alg::parse(&realm.default_signature_algorithm)
            .unwrap_or(gatehouse_jose::keys::Alg::RS256);
        if let Some(r) = self.cached_ring(&realm.id, alg) {
            return Ok(r);
        }
        let _guard = self.ring_load.lock().await;
        // Someone may have loaded it while we waited.
        if let Some(r) = self.cached_ring(&realm.id, alg) {
            return Ok(r);
        }
        let ring = Arc::new(KeyRing::load(self, realm).await?);
        if let Ok(mut map) = self.rings.write() {
            map.insert(realm.id.clone(), ring.clone());
        }
        Ok(ring)
    }

    fn cached_ring(
        &self,
        realm_id: &str,
        default_alg: gatehouse_jose::keys::Alg,
    ) -> Option<Arc<KeyRing>> {
        let now = gatehouse_core::time::now();
        let map = self.rings.read().ok()?;
        let r = map.get(realm_id)?;
        (now - r.loaded_at < KEYRING_TTL_SECS
            && r.current_signer(now).is_some()
            && r.default_alg == default_alg)
            .then(|| r.clone())
    }

    /// Records ended sessions for the gateway. Kept two days: longer than
    /// any access token of theirs can live.
    pub fn sessions_revoked(&self, ended: &[gatehouse_core::model::Session]) {
        let until = gatehouse_core::time::now() + 2 * 86_400;
        for s in ended {
            self.revocations.session(&s.id, until);
        }
    }

    /// Sessions that were ended (logout, revocation, an admin): the gateway
    /// refuses their tokens and their clients hear it on their back-channel
    /// logout URLs (`backchannel_logout.rs`). A session found expired is
    /// only revoked (`sessions_revoked`): Keycloak does not announce
    /// timeouts either.
    pub async fn sessions_ended(&self, realm: &Realm, ended: &[gatehouse_core::model::Session]) {
        self.sessions_revoked(ended);
        crate::backchannel_logout::notify(self, realm, ended).await;
    }

    /// Ends every session of `user_id` (with events `ev`), announces it,
    /// and revokes the user's tokens at the gateway: what disabling a user
    /// or logging them out everywhere does.
    pub async fn log_out_user(
        &self,
        realm: &Realm,
        user_id: &str,
        ev: &[gatehouse_core::model::Event],
    ) -> Result<(), gatehouse_store::Error> {
        let ended = self.store.delete_user_sessions(user_id, ev).await?;
        self.sessions_ended(realm, &ended).await;
        self.user_revoked(realm, user_id).await
    }

    /// Records that every token of `user_id` issued until now is revoked,
    /// under each subject it has (its id, and the pairwise ones clients of
    /// the realm with Keycloak's pairwise mapper see: the gateway matches
    /// a token's `sub`).
    pub async fn user_revoked(
        &self,
        realm: &Realm,
        user_id: &str,
    ) -> Result<(), gatehouse_store::Error> {
        let now = gatehouse_core::time::now();
        self.revocations.user(user_id, now, now + 2 * 86_400);
        for c in self.store.clients(&realm.id).await? {
            if crate::pairwise::mapper_of(&c).is_some()
                && let Ok(sub) = crate::pairwise::sub_for(&c, user_id)
            {
                self.revocations.user(&sub, now, now + 2 * 86_400);
            }
        }
        Ok(())
    }

    /// A client a login or request in progress names: gone since (deleted
    /// meanwhile) is Keycloak's "Client not found".
    pub async fn existing_client(
        &self,
        realm: &Realm,
        client_id: &str,
    ) -> Result<gatehouse_core::model::Client, OAuthError> {
        self.client(realm, client_id)
            .await?
            .ok_or_else(|| OAuthError::invalid_request("Client not found"))
    }

    /// A client by its public id, cached.
    pub async fn client(
        &self,
        realm: &Realm,
        client_id: &str,
    ) -> Result<Option<gatehouse_core::model::Client>, OAuthError> {
        let key = format!("{}\u{0}{client_id}", realm.id);
        if let Some(c) = fresh(&self.clients, &key) {
            return Ok(Some(c));
        }
        let c = self.store.client_by_client_id(&realm.id, client_id).await?;
        if let Some(c) = &c {
            remember(&self.clients, &key, c.clone());
        }
        Ok(c)
    }

    /// A realm's client scopes, cached like realms and clients.
    pub async fn client_scopes(
        &self,
        realm: &Realm,
    ) -> Result<Arc<Vec<gatehouse_core::model::ClientScope>>, OAuthError> {
        if let Some(c) = fresh(&self.client_scopes, &realm.id) {
            return Ok(c);
        }
        let c = Arc::new(self.store.client_scopes(&realm.id).await?);
        remember(&self.client_scopes, &realm.id, c.clone());
        Ok(c)
    }

    /// A user's effective roles and groups, cached like realms.
    pub async fn identity(
        &self,
        realm: &Realm,
        user: &gatehouse_core::model::User,
    ) -> Result<Arc<crate::tokens::Identity>, OAuthError> {
        if let Some(i) = fresh(&self.identities, &user.id) {
            return Ok(i);
        }
        let i = Arc::new(crate::tokens::Identity::resolve(self, realm, user).await?);
        remember(&self.identities, &user.id, i.clone());
        Ok(i)
    }

    /// A client's service-account user, cached like clients.
    pub fn cached_service_account(&self, client_key: &str) -> Option<gatehouse_core::model::User> {
        fresh(&self.service_accounts, client_key)
    }

    /// Remembers a client's service-account user.
    pub fn remember_service_account(&self, client_key: &str, user: &gatehouse_core::model::User) {
        remember(&self.service_accounts, client_key, user.clone());
    }

    /// Waits until no other admin request on this node edits the row of
    /// entity `id` (a realm, client, client scope or user). An edit reads
    /// the whole row, changes a part and writes it back: a realm's flows,
    /// components and localization texts, a client's protocol mappers all
    /// live in one row, and Terraform applies such resources in parallel.
    /// Queued here, each edit applies to the one before it instead of
    /// overwriting it. (Realm rows also carry a revision the store checks,
    /// for writers outside this process.)
    pub async fn lock_row(&self, id: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut map = self
                .row_edits
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            // Bounded: locks nobody holds or waits for are dropped once
            // there are many (one per user ever edited would add up).
            if map.len() >= 1024 {
                map.retain(|_, lock| Arc::strong_count(lock) > 1);
            }
            map.entry(id.to_owned()).or_default().clone()
        };
        lock.lock_owned().await
    }

    /// Forgets every cached entity after a write through this node (the
    /// admin router's middleware and imports call it).
    pub fn invalidate(&self) {
        forget(&self.realms);
        forget(&self.clients);
        forget(&self.client_scopes);
        forget(&self.users);
        forget(&self.service_accounts);
        forget(&self.identities);
    }

    /// Records that session `id` was used at `at` (group-committed with
    /// the standalone events).
    pub async fn touch(&self, id: &str, at: i64) -> Result<(), OAuthError> {
        let direct = match &self.events {
            Some(tx) => tx.send(EventMsg::Touch(id.to_owned(), at)).is_err(),
            None => true,
        };
        if direct {
            self.store
                .touch_sessions(&[(id.to_owned(), at)], &[])
                .await?;
        }
        Ok(())
    }

    /// A user by id, cached like realms (the refresh grant's check that
    /// the user still exists and is enabled).
    pub async fn user(
        &self,
        realm: &Realm,
        id: &str,
    ) -> Result<Option<gatehouse_core::model::User>, OAuthError> {
        if let Some(u) = fresh(&self.users, id) {
            return Ok(Some(u));
        }
        let u = self.store.user(&realm.id, id).await?;
        if let Some(u) = &u {
            remember(&self.users, id, u.clone());
        }
        Ok(u)
    }

    /// Records a standalone event (group-committed).
    pub async fn record(&self, ev: gatehouse_core::model::Event) -> Result<(), OAuthError> {
        match &self.events {
            Some(tx) => {
                if let Err(e) = tx.send(EventMsg::Event(Box::new(ev)))
                    && let EventMsg::Event(ev) = e.0
                {
                    self.store.append_events(&[*ev]).await?;
                }
                Ok(())
            }
            None => Ok(self.store.append_events(&[ev]).await?),
        }
    }

    /// Waits until every recorded event is in the store (before listings).
    pub async fn flush_events(&self) {
        if let Some(tx) = &self.events {
            let (done, wait) = tokio::sync::oneshot::channel();
            if tx.send(EventMsg::Flush(done)).is_ok() {
                let _ = wait.await;
            }
        }
    }

    /// Drops a cached key ring (after rotation).
    pub fn forget_keyring(&self, realm_id: &str) {
        if let Ok(mut map) = self.rings.write() {
            map.remove(realm_id);
        }
    }
}

fn spawn_event_writer(store: Arc<dyn Store>) -> tokio::sync::mpsc::UnboundedSender<EventMsg> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<EventMsg>();
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let mut batch = vec![];
            let mut waiters = vec![];
            let mut touches: HashMap<String, i64> = HashMap::new();
            let mut push = |m: EventMsg, batch: &mut Vec<gatehouse_core::model::Event>| match m {
                EventMsg::Event(e) => batch.push(*e),
                EventMsg::Touch(id, at) => {
                    let t = touches.entry(id).or_insert(at);
                    *t = (*t).max(at);
                }
                EventMsg::Flush(w) => waiters.push(w),
            };
            push(first, &mut batch);
            // Let a burst gather, then take all that is queued.
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            while batch.len() < 1000 {
                match rx.try_recv() {
                    Ok(m) => push(m, &mut batch),
                    Err(_) => break,
                }
            }
            let touches: Vec<(String, i64)> = touches.into_iter().collect();
            if (!batch.is_empty() || !touches.is_empty())
                && let Err(e) = store.touch_sessions(&touches, &batch).await
            {
                tracing::error!(error = %e, count = batch.len(), "writing events and session touches failed");
            }
            for w in waiters {
                let _ = w.send(());
            }
        }
    });
    tx
}

/// The per-IP failed-login policy: `per_minute` failures at once, then one
/// every `60 / per_minute` seconds. 0 disables it.
pub fn login_policy(per_minute: u64) -> Option<gatehouse_core::ratelimit::Policy> {
    if per_minute == 0 {
        return None;
    }
    gatehouse_core::ratelimit::RateLimitConfig {
        rate: per_minute,
        per: "minute".into(),
        burst: Some(per_minute),
        key: Some("ip".into()),
    }
    .policy(true)
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn idp() -> Idp {
        let store = gatehouse_store::sqlite::SqliteStore::open("sqlite::memory:")
            .await
            .expect("store");
        let cost = Argon2Cost {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
            hash_len: 32,
        };
        let key = MasterKey::from_bytes(&[7u8; 32]).expect("key");
        Idp::new(Arc::new(store), key, "http://localhost", cost)
    }

    /// One edit of a row at a time, and the lock table does not keep a
    /// lock per row ever edited.
    #[tokio::test]
    async fn row_locks_serialize_edits_and_stay_bounded() {
        let idp = idp().await;
        let held = idp.lock_row("busy").await;
        for i in 0..3000 {
            drop(idp.lock_row(&format!("row-{i}")).await);
        }
        let len = idp.row_edits.lock().map(|m| m.len()).unwrap_or(usize::MAX);
        assert!(len <= 1025, "{len} locks kept");
        // The held lock survived the pruning: a second edit waits for it.
        let waiting =
            tokio::time::timeout(std::time::Duration::from_millis(50), idp.lock_row("busy")).await;
        assert!(waiting.is_err(), "a second edit of the row did not wait");
        drop(held);
        let again =
            tokio::time::timeout(std::time::Duration::from_millis(50), idp.lock_row("busy")).await;
        assert!(again.is_ok());
    }
}
