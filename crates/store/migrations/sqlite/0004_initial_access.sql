-- Client initial access tokens (dynamic client registration, RFC 7591):
-- the remaining count is a column so that using a token is one atomic
-- UPDATE, never a read-modify-write race between two registrations.
CREATE TABLE initial_access (
    id TEXT PRIMARY KEY,
    realm_id TEXT NOT NULL REFERENCES realms(id) ON DELETE CASCADE,
    timestamp INTEGER NOT NULL,
    expiration INTEGER NOT NULL,
    count INTEGER NOT NULL,
    remaining_count INTEGER NOT NULL
);
CREATE INDEX initial_access_realm ON initial_access(realm_id);
