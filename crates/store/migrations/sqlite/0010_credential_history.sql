-- Keycloak keeps several credentials of one type for a user (the
-- `password-history` of its passwordHistory policy): one row per
-- credential, no longer one per type. The application keeps one password
-- and one OTP device per user (it replaces by type).
CREATE TABLE credentials_new (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    data TEXT NOT NULL
);
INSERT INTO credentials_new (id, user_id, kind, data)
    SELECT id, user_id, kind, data FROM credentials;
DROP TABLE credentials;
ALTER TABLE credentials_new RENAME TO credentials;
CREATE INDEX credentials_user_kind ON credentials (user_id, kind);
