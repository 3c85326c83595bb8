-- API keys for the gateway's `apikey` authorizer. Only a SHA-256 of the
-- key is stored; keys are 256-bit random, so a fast hash is enough and
-- lookup is by the hash.
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    realm_id TEXT NOT NULL REFERENCES realms(id) ON DELETE CASCADE,
    key_hash TEXT NOT NULL UNIQUE,
    data TEXT NOT NULL
);
CREATE INDEX api_keys_realm ON api_keys(realm_id);
