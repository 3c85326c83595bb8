-- Whether the admin API lists an event (Keycloak's "save events": the
-- realm's eventsEnabled / enabledEventTypes / adminEventsEnabled when it
-- happened). Every event stays in the outbox for delivery either way.
ALTER TABLE events ADD COLUMN listed INTEGER NOT NULL DEFAULT 1;
