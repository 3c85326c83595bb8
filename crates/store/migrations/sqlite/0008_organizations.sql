-- Keycloak's organizations: a realm's tenants (customers, partners) with
-- their e-mail domains and members. Name and alias are unique per realm;
-- the rest of the representation is `data`.
CREATE TABLE organizations (
    id TEXT PRIMARY KEY,
    realm_id TEXT NOT NULL REFERENCES realms(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    alias TEXT NOT NULL,
    data TEXT NOT NULL,
    UNIQUE (realm_id, name),
    UNIQUE (realm_id, alias)
);
-- A domain belongs to one organization of the realm.
CREATE TABLE organization_domains (
    realm_id TEXT NOT NULL,
    domain TEXT NOT NULL,
    org_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    PRIMARY KEY (realm_id, domain)
);
CREATE TABLE organization_members (
    org_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (org_id, user_id)
);
CREATE INDEX organization_members_user ON organization_members (user_id);
