//! What the identity provider has revoked, for the gateway: sessions ended,
//! access tokens revoked, users disabled or logged out everywhere. The
//! gateway consults it on every request, cache hit or not, so a revoked
//! credential of Gatehouse's own issuer is refused at once, although the JWT
//! itself is still validly signed and unexpired.
//!
//! In one process this is a shared in-memory list; entries are kept only as
//! long as a token they concern can live, then pruned.

use std::collections::HashMap;
use std::sync::RwLock;

#[derive(Default)]
struct Inner {
    /// id -> forget after (unix seconds)
    sessions: HashMap<String, i64>,
    jtis: HashMap<String, i64>,
    /// user id -> (tokens issued at or before this time are revoked, forget after)
    users: HashMap<String, (i64, i64)>,
    /// issuer, or issuer and client id (`iss azp`) -> (tokens issued before
    /// this time are revoked, forget after): Keycloak's realm and client
    /// `notBefore` ("Revocation: set to now").
    not_before: HashMap<String, (i64, i64)>,
}

/// The key of a client's `notBefore`.
fn client_key(issuer: &str, client_id: &str) -> String {
    format!("{issuer} {client_id}")
}

/// The shared revocation list.
#[derive(Default)]
pub struct Revocations {
    inner: RwLock<Inner>,
}

impl Revocations {
    /// Tokens of session `sid` are revoked; remember until `until`.
    pub fn session(&self, sid: &str, until: i64) {
        if let Ok(mut i) = self.inner.write() {
            i.sessions.insert(sid.to_owned(), until);
        }
    }

    /// The access token `jti` is revoked until it expires at `exp`.
    pub fn token(&self, jti: &str, exp: i64) {
        if let Ok(mut i) = self.inner.write() {
            i.jtis.insert(jti.to_owned(), exp);
        }
    }

    /// Every token of `user_id` issued at or before `at` is revoked.
    pub fn user(&self, user_id: &str, at: i64, until: i64) {
        if let Ok(mut i) = self.inner.write() {
            i.users.insert(user_id.to_owned(), (at, until));
        }
    }

    /// Every token of `issuer` (a realm), or with `client_id` of that
    /// client of it, issued before `at` is revoked (`at` of 0 or less
    /// lifts that); remembered until `until`.
    pub fn not_before(&self, issuer: &str, client_id: Option<&str>, at: i64, until: i64) {
        let key = match client_id {
            Some(c) => client_key(issuer, c),
            None => issuer.to_owned(),
        };
        if let Ok(mut i) = self.inner.write() {
            if at > 0 {
                i.not_before.insert(key, (at, until));
            } else {
                i.not_before.remove(&key);
            }
        }
    }

    /// Whether a token of `issuer` for `client_id` issued at `iat` came
    /// before its realm's or its client's `notBefore`.
    pub fn issued_too_early(&self, issuer: &str, client_id: Option<&str>, iat: i64) -> bool {
        let Ok(i) = self.inner.read() else {
            return true;
        };
        if i.not_before.is_empty() {
            return false;
        }
        let before = |k: &str| i.not_before.get(k).is_some_and(|(at, _)| iat < *at);
        before(issuer) || client_id.is_some_and(|c| before(&client_key(issuer, c)))
    }

    /// Whether a token with these claims is revoked.
    pub fn is_revoked(&self, sid: Option<&str>, jti: Option<&str>, sub: &str, iat: i64) -> bool {
        let Ok(i) = self.inner.read() else {
            // A poisoned lock means a writer panicked: fail closed.
            return true;
        };
        // Empty maps are the common case: skip hashing the keys.
        (!i.sessions.is_empty() && sid.is_some_and(|s| i.sessions.contains_key(s)))
            || (!i.jtis.is_empty() && jti.is_some_and(|j| i.jtis.contains_key(j)))
            || (!i.users.is_empty() && i.users.get(sub).is_some_and(|(at, _)| iat <= *at))
    }

    /// Drops entries that can no longer concern a live token.
    pub fn prune(&self, now: i64) {
        if let Ok(mut i) = self.inner.write() {
            i.sessions.retain(|_, until| *until >= now);
            i.jtis.retain(|_, until| *until >= now);
            i.users.retain(|_, (_, until)| *until >= now);
            i.not_before.retain(|_, (_, until)| *until >= now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn realm_and_client_not_before_cut_off_earlier_tokens() {
        let r = Revocations::default();
        let iss = "http://idp/realms/demo";
        assert!(!r.issued_too_early(iss, Some("app"), 10));
        r.not_before(iss, Some("app"), 100, 1000);
        assert!(r.issued_too_early(iss, Some("app"), 99));
        assert!(
            !r.issued_too_early(iss, Some("app"), 100),
            "at the cut-off: valid"
        );
        assert!(!r.issued_too_early(iss, Some("other"), 99));
        assert!(!r.issued_too_early("http://idp/realms/else", Some("app"), 99));
        r.not_before(iss, None, 200, 1000);
        assert!(r.issued_too_early(iss, Some("other"), 199));
        assert!(r.issued_too_early(iss, None, 199));
        r.not_before(iss, None, 0, 1000);
        assert!(!r.issued_too_early(iss, Some("other"), 199), "cleared");
        r.prune(1001);
        assert!(!r.issued_too_early(iss, Some("app"), 99), "pruned");
    }

    #[test]
    fn revocations_match_and_prune() {
        let r = Revocations::default();
        r.session("s1", 100);
        r.token("j1", 100);
        r.user("u1", 50, 100);
        assert!(r.is_revoked(Some("s1"), None, "x", 0));
        assert!(r.is_revoked(None, Some("j1"), "x", 0));
        assert!(r.is_revoked(None, None, "u1", 50));
        assert!(
            !r.is_revoked(None, None, "u1", 51),
            "tokens issued after the cut-off stay valid"
        );
        assert!(!r.is_revoked(Some("s2"), Some("j2"), "u2", 0));
        r.prune(101);
        assert!(!r.is_revoked(Some("s1"), Some("j1"), "u1", 0));
    }
}
