-- What a user allowed a client that asks for consent (Keycloak's user
-- consents): the client scopes granted, kept per user and client.
CREATE TABLE consents (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    client_id TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (user_id, client_id)
);
