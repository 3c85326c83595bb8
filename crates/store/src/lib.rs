//! Persistence behind one trait. Business logic never writes SQL: the
//! identity provider holds an `Arc<dyn Store>`, and each backend (SQLite now,
//! PostgreSQL next) implements the same trait with its own migrations.
//!
//! Rows keep their searchable fields as columns and the full entity as a JSON
//! `data` column. That keeps the two backends' schemas identical in shape and
//! lets Keycloak representation fields we do not model survive a round trip.
//!
//! Every method that changes state takes the events describing the change and
//! writes them to the outbox in the same transaction: a change is never seen
//! without its event, nor an event without its change.

pub mod error;
pub mod sqlite;

pub use error::{Error, Result};

use gatehouse_core::model::{
    ApiKey, Client, ClientScope, Consent, Credential, Event, Group, InitialAccess, Organization,
    Realm, Role, Session, User,
};

/// A stored signing key, private half sealed under the master key.
#[derive(Debug, Clone)]
pub struct KeyRecord {
    pub kid: String,
    pub realm_id: String,
    pub alg: String,
    /// When the key starts signing (published before that).
    pub sign_from: i64,
    /// When the key stops being published; None while it may still sign.
    pub retire_at: Option<i64>,
    pub created: i64,
    pub private_sealed: Vec<u8>,
    pub public_jwk: String,
    /// Keycloak's key-provider priority: of the keys of one algorithm that
    /// may sign, the highest signs (the newest among equals).
    pub priority: i64,
    /// Whether it may sign (Keycloak's `active`); a passive key is only
    /// published.
    pub active: bool,
    /// Its name as a component (`rsa-generated`...), when given one.
    pub name: Option<String>,
}

/// A single-use authorization or device code with its JSON payload.
#[derive(Debug, Clone)]
pub struct CodeRecord {
    pub code: String,
    pub realm_id: String,
    pub data: String,
    pub expires: i64,
}

/// Brute-force bookkeeping for one user.
#[derive(Debug, Clone, Default)]
pub struct LoginFailures {
    pub failures: i64,
    /// The last failure (Unix ms: the quick-login check compares failures
    /// to the millisecond).
    pub last_failure_ms: i64,
    pub last_ip: Option<String>,
    /// No login before this (seconds): the end of a quick-login wait,
    /// Keycloak's `failedLoginNotBefore`; 0 when none was set.
    pub not_before: i64,
}

impl LoginFailures {
    /// The last failure in Unix seconds.
    pub fn last_failure(&self) -> i64 {
        self.last_failure_ms.div_euclid(1000)
    }
}

/// Which users a search returns (Keycloak's `GET /users` query).
#[derive(Debug, Clone, Default)]
pub struct UserQuery {
    pub username: Option<String>,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// Free text over username, email, first and last name.
    pub search: Option<String>,
    /// Exact match instead of substring for the fields above.
    pub exact: bool,
    pub enabled: Option<bool>,
    /// Custom attributes that must hold a value (Keycloak's `q=key:value`),
    /// compared without regard to case as Keycloak does.
    pub attributes: Vec<(String, String)>,
    /// Linked at this identity provider (Keycloak's `idpAlias`), and with
    /// this account there (`idpUserId`).
    pub idp_alias: Option<String>,
    pub idp_user_id: Option<String>,
    /// Keycloak's `emailVerified` filter.
    pub email_verified: Option<bool>,
    /// Imported from this user-storage provider (`federationLink`).
    pub federation_link: Option<String>,
    /// Include service-account users (Keycloak hides them from listings).
    pub include_service_accounts: bool,
    pub first: i64,
    pub max: i64,
}

/// Which events a listing returns (Keycloak's events query parameters).
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    pub category: String,
    pub kinds: Vec<String>,
    pub client_id: Option<String>,
    pub user_id: Option<String>,
    pub date_from_ms: Option<i64>,
    pub date_to_ms: Option<i64>,
    /// The caller's address (`ipAddress`; `authIpAddress` for admin events).
    pub ip_address: Option<String>,
    /// Admin events of these resource types (`resourceTypes`).
    pub resource_types: Vec<String>,
    /// Admin events on paths matching this pattern, `*` standing for any
    /// run of characters (`resourcePath`).
    pub resource_path: Option<String>,
    pub first: i64,
    pub max: i64,
}

/// The storage contract. Implementations must make each method one
/// transaction and must not leave partial writes on error.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    // --- realms
    /// Creates a realm with its client scopes (Keycloak's built-in set, or
    /// an import's own) in one transaction.
    async fn create_realm(&self, realm: &Realm, scopes: &[ClientScope], ev: &[Event])
    -> Result<()>;
    async fn realm_by_name(&self, name: &str) -> Result<Option<Realm>>;
    async fn realms(&self) -> Result<Vec<Realm>>;
    async fn update_realm(&self, realm: &Realm, ev: &[Event]) -> Result<()>;
    /// Updates the realm (which no longer has identity provider `alias`)
    /// and removes every user's link to that provider, in one transaction.
    async fn remove_identity_provider(
        &self,
        realm: &Realm,
        alias: &str,
        ev: &[Event],
    ) -> Result<()>;
    async fn delete_realm(&self, realm_id: &str, ev: &[Event]) -> Result<()>;

    // --- clients
    async fn create_client(&self, client: &Client, ev: &[Event]) -> Result<()>;
    async fn client(&self, realm_id: &str, id: &str) -> Result<Option<Client>>;
    async fn client_by_client_id(&self, realm_id: &str, client_id: &str) -> Result<Option<Client>>;
    async fn clients(&self, realm_id: &str) -> Result<Vec<Client>>;
    async fn update_client(&self, client: &Client, ev: &[Event]) -> Result<()>;
    async fn delete_client(&self, realm_id: &str, id: &str, ev: &[Event]) -> Result<()>;

    // --- client scopes (referred to by name from clients and the realm)
    async fn create_client_scope(&self, scope: &ClientScope, ev: &[Event]) -> Result<()>;
    async fn client_scope(&self, realm_id: &str, id: &str) -> Result<Option<ClientScope>>;
    async fn client_scopes(&self, realm_id: &str) -> Result<Vec<ClientScope>>;
    /// Saves `scope`; a new name is carried into every client's and the
    /// realm's default/optional lists in the same transaction.
    async fn update_client_scope(&self, scope: &ClientScope, ev: &[Event]) -> Result<()>;
    /// Deletes the scope and its name from every client's and the realm's
    /// default/optional lists, in one transaction.
    async fn delete_client_scope(&self, realm_id: &str, id: &str, ev: &[Event]) -> Result<()>;

    // --- users and credentials
    /// Creates the user with its credentials (password, OTP), group
    /// memberships and role grants in one transaction, so a failure leaves
    /// no half-made user.
    async fn create_user(
        &self,
        user: &User,
        credentials: &[Credential],
        links: &Memberships,
        ev: &[Event],
    ) -> Result<()>;
    async fn user(&self, realm_id: &str, id: &str) -> Result<Option<User>>;
    async fn user_by_username(&self, realm_id: &str, username: &str) -> Result<Option<User>>;
    async fn user_by_email(&self, realm_id: &str, email: &str) -> Result<Option<User>>;
    async fn service_account_user(
        &self,
        realm_id: &str,
        client_internal_id: &str,
    ) -> Result<Option<User>>;
    async fn users(&self, realm_id: &str, q: &UserQuery) -> Result<Vec<User>>;
    async fn count_users(&self, realm_id: &str, q: &UserQuery) -> Result<i64>;
    async fn update_user(&self, user: &User, ev: &[Event]) -> Result<()>;
    async fn delete_user(&self, realm_id: &str, id: &str, ev: &[Event]) -> Result<()>;
    /// Replaces the user's credential of `cred.kind` (password, otp) and,
    /// when given, saves the user in the same transaction (its required
    /// actions change with it).
    async fn set_credential(
        &self,
        cred: &Credential,
        user: Option<&User>,
        ev: &[Event],
    ) -> Result<()>;
    /// Replaces the user's password with `new` and, with `keep` above 0,
    /// keeps the replaced one as a `password-history` credential (Keycloak's
    /// type), dropping all but the newest `keep` of those: the realm's
    /// `passwordHistory`. One transaction with `user`'s row and `ev`.
    async fn set_password_keeping(
        &self,
        new: &Credential,
        keep: usize,
        user: Option<&User>,
        ev: &[Event],
    ) -> Result<()>;
    async fn password(&self, user_id: &str) -> Result<Option<Credential>>;
    /// All of the user's credentials, password first.
    async fn credentials(&self, user_id: &str) -> Result<Vec<Credential>>;
    async fn delete_credential(&self, user_id: &str, id: &str, ev: &[Event]) -> Result<()>;
    /// Removes every credential of type `kind` the user has (Keycloak's
    /// `disableCredentialType`: "disable OTP" drops all their authenticator
    /// apps) and writes `ev` either way; how many went.
    async fn delete_credentials_of_type(
        &self,
        user_id: &str,
        kind: &str,
        ev: &[Event],
    ) -> Result<u64>;
    /// Rewrites one credential in place (its label, an HOTP counter), where
    /// [`Store::set_credential`] would replace every credential of its type
    /// (a user may have several authenticator apps). `NotFound` when the
    /// user no longer has it.
    async fn update_credential(&self, c: &Credential, ev: &[Event]) -> Result<()>;
    /// Adds `c` beside the user's credentials of its type, last in their
    /// list (a second authenticator app); one transaction with `user`'s row
    /// and `ev`.
    async fn add_credential(&self, c: &Credential, user: Option<&User>, ev: &[Event])
    -> Result<()>;
    /// Moves the user's credential `id` to the top of their list, or right
    /// after their credential `after`, the others keeping their order
    /// (Keycloak's `moveStoredCredentialTo`, behind the admin console's
    /// drag and drop). `NotFound` when `id` is not one of theirs; false,
    /// changing nothing and writing no event, when `after` is not.
    async fn move_credential(
        &self,
        user_id: &str,
        id: &str,
        after: Option<&str>,
        ev: &[Event],
    ) -> Result<bool>;
    /// What the user allowed clients that ask for consent.
    async fn consents(&self, user_id: &str) -> Result<Vec<Consent>>;
    /// Creates or replaces the user's consent to `c.client_id`.
    async fn put_consent(&self, c: &Consent, ev: &[Event]) -> Result<()>;
    /// Withdraws a consent; false when there was none (the events are
    /// written either way).
    async fn delete_consent(&self, user_id: &str, client_id: &str, ev: &[Event]) -> Result<bool>;

    // --- organizations
    /// The realm's organizations, by name.
    async fn organizations(&self, realm_id: &str) -> Result<Vec<Organization>>;
    async fn organization(&self, realm_id: &str, id: &str) -> Result<Option<Organization>>;
    /// Creates or replaces an organization with its domains; a name, alias
    /// or domain another organization of the realm has is a `Conflict`.
    async fn put_organization(&self, o: &Organization, ev: &[Event]) -> Result<()>;
    async fn delete_organization(&self, realm_id: &str, id: &str, ev: &[Event]) -> Result<()>;
    /// Member user ids, in no particular order.
    async fn organization_members(&self, org_id: &str) -> Result<Vec<String>>;
    /// Adds a member; false when the user already was one.
    async fn add_organization_member(
        &self,
        org_id: &str,
        user_id: &str,
        ev: &[Event],
    ) -> Result<bool>;
    /// Removes a member; false when the user was not one.
    async fn remove_organization_member(
        &self,
        org_id: &str,
        user_id: &str,
        ev: &[Event],
    ) -> Result<bool>;
    /// The organizations the user is a member of, by name.
    async fn user_organizations(&self, user_id: &str) -> Result<Vec<Organization>>;

    // --- groups
    async fn create_group(&self, group: &Group, ev: &[Event]) -> Result<()>;
    async fn group(&self, realm_id: &str, id: &str) -> Result<Option<Group>>;
    async fn groups(&self, realm_id: &str) -> Result<Vec<Group>>;
    async fn update_group(&self, group: &Group, ev: &[Event]) -> Result<()>;
    /// Deletes the group and its subgroups.
    async fn delete_group(&self, realm_id: &str, id: &str, ev: &[Event]) -> Result<()>;
    async fn join_group(&self, user_id: &str, group_id: &str, ev: &[Event]) -> Result<()>;
    async fn leave_group(&self, user_id: &str, group_id: &str, ev: &[Event]) -> Result<()>;
    async fn user_groups(&self, user_id: &str) -> Result<Vec<Group>>;
    async fn group_members(&self, group_id: &str, first: i64, max: i64) -> Result<Vec<User>>;

    // --- roles
    async fn create_role(&self, role: &Role, ev: &[Event]) -> Result<()>;
    async fn role(&self, realm_id: &str, id: &str) -> Result<Option<Role>>;
    /// A realm role (`client` None) or a client role by name.
    async fn role_by_name(
        &self,
        realm_id: &str,
        client: Option<&str>,
        name: &str,
    ) -> Result<Option<Role>>;
    async fn roles(&self, realm_id: &str, client: Option<&str>) -> Result<Vec<Role>>;
    async fn update_role(&self, role: &Role, ev: &[Event]) -> Result<()>;
    async fn delete_role(&self, realm_id: &str, id: &str, ev: &[Event]) -> Result<()>;
    async fn add_composites(
        &self,
        parent_id: &str,
        child_ids: &[String],
        ev: &[Event],
    ) -> Result<()>;
    async fn remove_composites(
        &self,
        parent_id: &str,
        child_ids: &[String],
        ev: &[Event],
    ) -> Result<()>;
    async fn composites(&self, parent_id: &str) -> Result<Vec<Role>>;
    /// `holder` is `user` or `group`.
    async fn grant_roles(
        &self,
        holder: Holder<'_>,
        role_ids: &[String],
        ev: &[Event],
    ) -> Result<()>;
    async fn revoke_roles(
        &self,
        holder: Holder<'_>,
        role_ids: &[String],
        ev: &[Event],
    ) -> Result<()>;
    async fn granted_roles(&self, holder: Holder<'_>) -> Result<Vec<Role>>;
    /// Every role the user holds directly, through its groups and their
    /// ancestors, and through composites, transitively.
    async fn effective_roles(&self, user_id: &str) -> Result<Vec<Role>>;
    /// Users granted the role directly (Keycloak's `/roles/{name}/users`).
    async fn role_members(&self, role_id: &str, first: i64, max: i64) -> Result<Vec<User>>;

    // --- sessions and codes
    async fn create_session(&self, s: &Session, ev: &[Event]) -> Result<()>;
    async fn session(&self, id: &str) -> Result<Option<Session>>;
    /// Compare-and-set of the current refresh-token id: succeeds only if the
    /// stored id is still `expected` (so two refreshes cannot both win).
    async fn rotate_refresh(
        &self,
        id: &str,
        expected: Option<&str>,
        next: &str,
        now: i64,
        ev: &[Event],
    ) -> Result<bool>;
    /// Records sessions' last access times (a batch of `(id, time)`) and
    /// `ev`, in one transaction: refreshes are group-committed.
    async fn touch_sessions(&self, touches: &[(String, i64)], ev: &[Event]) -> Result<()>;
    /// Deletes the session and the client sessions made from it; returns
    /// every deleted session (the gateway's revocation list needs their
    /// ids, back-channel logout their clients and users).
    async fn delete_session(&self, id: &str, ev: &[Event]) -> Result<Vec<Session>>;
    async fn user_sessions(&self, user_id: &str) -> Result<Vec<Session>>;
    async fn delete_user_sessions(&self, user_id: &str, ev: &[Event]) -> Result<Vec<Session>>;
    /// Every session of a realm, most recently used first (admin views:
    /// per-client session lists and counts).
    async fn realm_sessions(&self, realm_id: &str) -> Result<Vec<Session>>;
    /// Ends every session of a realm; returns the ids ended.
    async fn delete_realm_sessions(&self, realm_id: &str, ev: &[Event]) -> Result<Vec<Session>>;
    async fn put_code(&self, c: &CodeRecord) -> Result<()>;
    /// Removes and returns the code: a second take of the same code gets None.
    async fn take_code(&self, code: &str) -> Result<Option<CodeRecord>>;
    /// Like [`Store::take_code`], and, when the code was there, stores
    /// `leave` in its place in the same transaction (a spent code's
    /// tombstone: one write per exchange, not two).
    async fn take_code_leaving(&self, code: &str, leave: &CodeRecord)
    -> Result<Option<CodeRecord>>;
    async fn update_code(&self, c: &CodeRecord) -> Result<()>;
    async fn code(&self, code: &str) -> Result<Option<CodeRecord>>;

    // --- keys and secrets
    async fn keys(&self, realm_id: &str) -> Result<Vec<KeyRecord>>;
    async fn insert_key(&self, k: &KeyRecord, ev: &[Event]) -> Result<()>;
    async fn retire_key(&self, kid: &str, retire_at: i64) -> Result<()>;
    /// Deletes a key of `realm_id` with the admin event (NotFound if none).
    async fn delete_key(&self, realm_id: &str, kid: &str, ev: &[Event]) -> Result<()>;
    /// Changes a key's provider settings (priority, active, name) and its
    /// retirement, with the admin event, in one transaction.
    async fn update_key(&self, k: &KeyRecord, ev: &[Event]) -> Result<()>;
    async fn secret(&self, realm_id: &str, name: &str) -> Result<Option<Vec<u8>>>;
    async fn put_secret(&self, realm_id: &str, name: &str, sealed: &[u8]) -> Result<()>;

    // --- revocation and brute force
    async fn revoke_token(&self, realm_id: &str, jti: &str, exp: i64, ev: &[Event]) -> Result<()>;
    async fn is_revoked(&self, jti: &str) -> Result<bool>;
    async fn login_failures(&self, user_id: &str) -> Result<LoginFailures>;
    /// Counts a failure at `now_ms`; `not_before` (seconds, 0 for none)
    /// extends the user's quick-login wait.
    async fn record_login_failure(
        &self,
        user_id: &str,
        now_ms: i64,
        not_before: i64,
        ip: Option<&str>,
        ev: &[Event],
    ) -> Result<LoginFailures>;
    async fn clear_login_failures(&self, user_id: &str) -> Result<()>;
    /// The admin's unlock: clears the failures of one user of the realm, or
    /// of all its users, with the admin event in the same transaction.
    async fn reset_login_failures(
        &self,
        realm_id: &str,
        user_id: Option<&str>,
        ev: &[Event],
    ) -> Result<()>;

    // --- events
    async fn append_events(&self, ev: &[Event]) -> Result<()>;
    async fn events(&self, realm_id: &str, q: &EventQuery) -> Result<Vec<Event>>;
    /// Deletes a realm's stored events of one category (`user` or `admin`),
    /// Keycloak's "clear events"; `ev` (say, the admin event recording the
    /// clearing) is written after the deletion in the same transaction.
    async fn clear_events(&self, realm_id: &str, category: &str, ev: &[Event]) -> Result<()>;

    /// Outbox events after `seq` `after`, oldest first, at most `limit`,
    /// of the given kinds (all when empty), with their `seq`: how event
    /// listeners read the outbox in order.
    async fn events_since(
        &self,
        after: i64,
        kinds: &[&str],
        limit: i64,
    ) -> Result<Vec<(i64, Event)>>;
    /// The outbox's last `seq` (0 when empty): where a new listener starts.
    async fn last_event_seq(&self) -> Result<i64>;
    /// How far the listener `name` has read the outbox (None: never).
    async fn listener_position(&self, name: &str) -> Result<Option<i64>>;
    async fn set_listener_position(&self, name: &str, seq: i64) -> Result<()>;

    // --- API keys (the gateway's `apikey` authorizer)
    async fn create_api_key(&self, key: &ApiKey, key_hash: &str, ev: &[Event]) -> Result<()>;
    async fn api_keys(&self, realm_id: &str) -> Result<Vec<ApiKey>>;
    async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKey>>;
    async fn delete_api_key(&self, realm_id: &str, id: &str, ev: &[Event]) -> Result<()>;

    // --- client initial access tokens (dynamic client registration)
    async fn create_initial_access(&self, ia: &InitialAccess, ev: &[Event]) -> Result<()>;
    async fn initial_accesses(&self, realm_id: &str) -> Result<Vec<InitialAccess>>;
    async fn delete_initial_access(&self, realm_id: &str, id: &str, ev: &[Event]) -> Result<()>;
    /// Takes one registration from the token's remaining count, if it has
    /// one left and has not expired at `now`; false otherwise. Atomic, so
    /// a token for one registration allows exactly one.
    async fn use_initial_access(&self, realm_id: &str, id: &str, now: i64) -> Result<bool>;

    /// Deletes expired codes, sessions past their max lifetime, revocation
    /// entries past their token's expiry, events past their realm's
    /// expiration (and unlisted ones after a day). Called on a timer.
    async fn purge_expired(&self, now: i64) -> Result<u64>;
}

/// What a new user belongs to from its first moment: group ids and
/// (realm or client) role ids.
#[derive(Debug, Clone, Default)]
pub struct Memberships {
    pub groups: Vec<String>,
    pub roles: Vec<String>,
}

/// Who a role mapping belongs to.
#[derive(Debug, Clone, Copy)]
pub enum Holder<'a> {
    User(&'a str),
    Group(&'a str),
}
