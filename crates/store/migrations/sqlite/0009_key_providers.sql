-- Keycloak's key-provider settings per key: which key of an algorithm
-- signs (the highest priority, then the newest), whether it may sign at
-- all (a passive key is only published), and its component name.
ALTER TABLE keys ADD COLUMN priority INTEGER NOT NULL DEFAULT 100;
ALTER TABLE keys ADD COLUMN active INTEGER NOT NULL DEFAULT 1;
ALTER TABLE keys ADD COLUMN name TEXT;
