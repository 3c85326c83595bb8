-- Client scopes (Keycloak's named sets of protocol mappers). Clients and
-- realms refer to them by name, as Keycloak's representations do; renames
-- and deletions rewrite those references in the same transaction.
CREATE TABLE client_scopes (
    id TEXT PRIMARY KEY,
    realm_id TEXT NOT NULL REFERENCES realms(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    data TEXT NOT NULL,
    UNIQUE (realm_id, name)
);
