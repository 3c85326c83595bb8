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
    /// issuer -> its realm's and its clients' `notBefore` (Keycloak's
    /// "Revocation: set to now"), looked up by `&str` without building a key.
    not_before: HashMap<String, Cutoffs>,
}

/// A realm's cut-offs: (tokens issued before this time are revoked, forget
/// after), for the whole realm and per client id.
#[derive(Default)]
struct Cutoffs {
    realm: Option<(i64, i64)>,
    clients: HashMap<String, (i64, i64)>,
}

/// What the list is asked about a token: its issuer and client, session,
/// id, subject and issue time.
#[derive(Debug, Clone, Copy)]
pub struct TokenFacts<'a> {
    pub issuer: &'a str,
    pub client_id: Option<&'a str>,
    pub sid: Option<&'a str>,
    pub jti: Option<&'a str>,
    pub sub: &'a str,
    pub iat: i64,
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
        let Ok(mut i) = self.inner.write() else {
            return;
        };
        let cut = (at > 0).then_some((at, until));
        let c = i.not_before.entry(issuer.to_owned()).or_default();
        match (client_id, cut) {
            (None, cut) => c.realm = cut,
            (Some(id), Some(cut)) => {
                c.clients.insert(id.to_owned(), cut);
            }
            (Some(id), None) => {
                c.clients.remove(id);
            }
        }
        if c.realm.is_none() && c.clients.is_empty() {
            i.not_before.remove(issuer);
        }
    }

    /// Whether a token is revoked: its session ended, its id revoked, its
    /// user cut off, or issued before its realm's or its client's
    /// `notBefore`. One read of the list per request.
    pub fn is_revoked(&self, t: &TokenFacts<'_>) -> bool {
        let Ok(i) = self.inner.read() else {
            // A poisoned lock means a writer panicked: fail closed.
            return true;
        };
        let before = |cut: Option<&(i64, i64)>| cut.is_some_and(|(at, _)| t.iat < *at);
        // Empty maps are the common case: skip hashing the keys.
        (!i.sessions.is_empty() && t.sid.is_some_and(|s| i.sessions.contains_key(s)))
            || (!i.jtis.is_empty() && t.jti.is_some_and(|j| i.jtis.contains_key(j)))
            || (!i.users.is_empty() && i.users.get(t.sub).is_some_and(|(at, _)| t.iat <= *at))
            || (!i.not_before.is_empty()
                && i.not_before.get(t.issuer).is_some_and(|c| {
                    before(c.realm.as_ref())
                        || t.client_id.is_some_and(|id| before(c.clients.get(id)))
                }))
    }

    /// Drops entries that can no longer concern a live token.
    pub fn prune(&self, now: i64) {
        if let Ok(mut i) = self.inner.write() {
            i.sessions.retain(|_, until| *until >= now);
            i.jtis.retain(|_, until| *until >= now);
            i.users.retain(|_, (_, until)| *until >= now);
            i.not_before.retain(|_, c| {
                c.realm = c.realm.filter(|(_, until)| *until >= now);
                c.clients.retain(|_, (_, until)| *until >= now);
                c.realm.is_some() || !c.clients.is_empty()
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A token of realm `demo` with these facts.
    fn facts<'a>(
        sid: Option<&'a str>,
        jti: Option<&'a str>,
        sub: &'a str,
        iat: i64,
    ) -> TokenFacts<'a> {
        TokenFacts {
            issuer: "http://idp/realms/demo",
            client_id: Some("app"),
            sid,
            jti,
            sub,
            iat,
        }
    }

    /// A token of `issuer` for `client_id` issued at `iat`.
    fn of<'a>(issuer: &'a str, client_id: Option<&'a str>, iat: i64) -> TokenFacts<'a> {
        TokenFacts {
            issuer,
            client_id,
            ..facts(None, None, "someone", iat)
        }
    }

    #[test]
    fn realm_and_client_not_before_cut_off_earlier_tokens() {
        let r = Revocations::default();
        let issued_too_early = |iss, client, iat| r.is_revoked(&of(iss, client, iat));
        let iss = "http://idp/realms/demo";
        assert!(!issued_too_early(iss, Some("app"), 10));
        r.not_before(iss, Some("app"), 100, 1000);
        assert!(issued_too_early(iss, Some("app"), 99));
        assert!(
            !issued_too_early(iss, Some("app"), 100),
            "at the cut-off: valid"
        );
        assert!(!issued_too_early(iss, Some("other"), 99));
        assert!(!issued_too_early("http://idp/realms/else", Some("app"), 99));
        r.not_before(iss, None, 200, 1000);
        assert!(issued_too_early(iss, Some("other"), 199));
        assert!(issued_too_early(iss, None, 199));
        r.not_before(iss, None, 0, 1000);
        assert!(!issued_too_early(iss, Some("other"), 199), "cleared");
        r.prune(1001);
        assert!(!issued_too_early(iss, Some("app"), 99), "pruned");
    }

    #[test]
    fn revocations_match_and_prune() {
        let r = Revocations::default();
        r.session("s1", 100);
        r.token("j1", 100);
        r.user("u1", 50, 100);
        let is_revoked = |sid, jti, sub, iat| r.is_revoked(&facts(sid, jti, sub, iat));
        assert!(is_revoked(Some("s1"), None, "x", 0));
        assert!(is_revoked(None, Some("j1"), "x", 0));
        assert!(is_revoked(None, None, "u1", 50));
        assert!(
            !is_revoked(None, None, "u1", 51),
            "tokens issued after the cut-off stay valid"
        );
        assert!(!is_revoked(Some("s2"), Some("j2"), "u2", 0));
        r.prune(101);
        assert!(!is_revoked(Some("s1"), Some("j1"), "u1", 0));
    }
}
