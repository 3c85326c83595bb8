-- Keycloak's quick-login check: a failed login less than
-- `quickLoginCheckMilliSeconds` after the previous one locks the user for
-- `minimumQuickLoginWaitSeconds`. That needs the last failure to the
-- millisecond and the end of such a wait (Keycloak's
-- `failedLoginNotBefore`, in seconds), which the failure count alone
-- cannot give.
ALTER TABLE login_failures ADD COLUMN last_failure_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE login_failures ADD COLUMN not_before INTEGER NOT NULL DEFAULT 0;
-- Rows from before: their last failure to the second is all there is.
-- (`last_failure` stays written for older readers; reads use the ms.)
UPDATE login_failures SET last_failure_ms = last_failure * 1000;
