-- How far each outbox reader (an event listener: Keycloak's `email` one
-- today, webhooks later) has read the events table, by `seq`, so that a
-- restart neither repeats nor skips what happened meanwhile.
CREATE TABLE listener_positions (
    name TEXT PRIMARY KEY,
    seq INTEGER NOT NULL
);
