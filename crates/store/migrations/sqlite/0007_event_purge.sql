-- The periodic purge finds unlisted outbox rows by age without a scan.
CREATE INDEX events_unlisted ON events(time) WHERE listed = 0;
