CREATE TABLE realms (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    data TEXT NOT NULL
);
CREATE TABLE clients (
    id TEXT PRIMARY KEY,
    realm_id TEXT NOT NULL REFERENCES realms(id) ON DELETE CASCADE,
    client_id TEXT NOT NULL,
    data TEXT NOT NULL,
    UNIQUE (realm_id, client_id)
);
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    realm_id TEXT NOT NULL REFERENCES realms(id) ON DELETE CASCADE,
    username TEXT NOT NULL,
    email TEXT,
    first_name TEXT,
    last_name TEXT,
    enabled INTEGER NOT NULL,
    service_account_client_id TEXT REFERENCES clients(id) ON DELETE CASCADE,
    created INTEGER NOT NULL,
    data TEXT NOT NULL,
    UNIQUE (realm_id, username)
);
CREATE INDEX users_email ON users(realm_id, email);
CREATE TABLE credentials (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    data TEXT NOT NULL,
    UNIQUE (user_id, kind)
);
CREATE TABLE groups (
    id TEXT PRIMARY KEY,
    realm_id TEXT NOT NULL REFERENCES realms(id) ON DELETE CASCADE,
    parent_id TEXT REFERENCES groups(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    -- '' for top-level groups so the uniqueness rule also holds at the root
    parent_key TEXT NOT NULL,
    data TEXT NOT NULL,
    UNIQUE (realm_id, parent_key, name)
);
CREATE TABLE roles (
    id TEXT PRIMARY KEY,
    realm_id TEXT NOT NULL REFERENCES realms(id) ON DELETE CASCADE,
    -- '' for realm roles, the client's internal id for client roles
    client_key TEXT NOT NULL,
    name TEXT NOT NULL,
    data TEXT NOT NULL,
    UNIQUE (realm_id, client_key, name)
);
CREATE TABLE role_composites (
    parent_id TEXT NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
    child_id TEXT NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
    PRIMARY KEY (parent_id, child_id)
);
CREATE TABLE user_roles (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role_id TEXT NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, role_id)
);
CREATE TABLE group_roles (
    group_id TEXT NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    role_id TEXT NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, role_id)
);
CREATE TABLE user_groups (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    group_id TEXT NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, group_id)
);
CREATE INDEX user_groups_group ON user_groups(group_id);
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    realm_id TEXT NOT NULL REFERENCES realms(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    refresh_token_id TEXT,
    last_access INTEGER NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX sessions_user ON sessions(user_id);
CREATE TABLE codes (
    code TEXT PRIMARY KEY,
    realm_id TEXT NOT NULL REFERENCES realms(id) ON DELETE CASCADE,
    data TEXT NOT NULL,
    expires INTEGER NOT NULL
);
CREATE TABLE keys (
    kid TEXT PRIMARY KEY,
    realm_id TEXT NOT NULL REFERENCES realms(id) ON DELETE CASCADE,
    alg TEXT NOT NULL,
    sign_from INTEGER NOT NULL,
    retire_at INTEGER,
    created INTEGER NOT NULL,
    private_sealed BLOB NOT NULL,
    public_jwk TEXT NOT NULL
);
CREATE TABLE secrets (
    realm_id TEXT NOT NULL REFERENCES realms(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    sealed BLOB NOT NULL,
    PRIMARY KEY (realm_id, name)
);
CREATE TABLE revoked_tokens (
    jti TEXT PRIMARY KEY,
    realm_id TEXT NOT NULL REFERENCES realms(id) ON DELETE CASCADE,
    exp INTEGER NOT NULL
);
CREATE TABLE login_failures (
    user_id TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    failures INTEGER NOT NULL,
    last_failure INTEGER NOT NULL,
    last_ip TEXT
);
-- The outbox: every observable change appends here in its own transaction.
-- `seq` orders delivery; `delivered_at` is set by the dispatcher (later issue).
CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    realm_id TEXT NOT NULL,
    category TEXT NOT NULL,
    kind TEXT NOT NULL,
    time INTEGER NOT NULL,
    client_id TEXT,
    user_id TEXT,
    data TEXT NOT NULL,
    delivered_at INTEGER
);
CREATE INDEX events_realm ON events(realm_id, category, time);
