//! `application/x-www-form-urlencoded` bodies for OAuth endpoints. RFC 6749
//! §3.2: parameters must not repeat, and the content type must be form.

use crate::error::OAuthError;
use axum::http::{HeaderMap, header};
use std::collections::HashMap;

/// The caller's IP address: the connection's peer, or, when that peer is a
/// trusted proxy (`[server] trusted_proxies`), the `X-Forwarded-For` entry
/// it vouches for. Absent when the router runs without connection info
/// (in-process tests).
pub fn client_ip(
    idp: &crate::state::Idp,
    ext: &axum::http::Extensions,
    headers: &HeaderMap,
) -> Option<String> {
    let peer = ext
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()?
        .0
        .ip();
    let xff = headers
        .get_all(idp.trusted_proxies.header().name())
        .iter()
        .filter_map(|v| v.to_str().ok());
    Some(idp.trusted_proxies.client_ip(peer, xff).to_string())
}

/// The 429 answer for a throttled login.
pub fn throttled(retry_after: u64) -> OAuthError {
    let mut e = OAuthError::new(
        axum::http::StatusCode::TOO_MANY_REQUESTS,
        "temporarily_unavailable",
        "Too many failed login attempts from this address; retry later",
    );
    e.retry_after = Some(retry_after);
    e
}

/// A parsed OAuth form: each parameter once; empty values count as absent.
#[derive(Debug, Default)]
pub struct Form(pub HashMap<String, String>);

impl Form {
    /// Parses `body`, refusing repeated parameters and non-form content types.
    pub fn parse(headers: &HeaderMap, body: &[u8]) -> Result<Form, OAuthError> {
        if !is_form(headers, body)? {
            return Ok(Form::default());
        }
        Self::parse_query(body)
    }

    /// Parses a query string or form body with the same rules.
    pub fn parse_query(body: &[u8]) -> Result<Form, OAuthError> {
        parse_pairs(body, &|_| false, true).map(|(form, _)| form)
    }

    /// A parameter, treating empty as absent.
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str).filter(|v| !v.is_empty())
    }

    /// A required parameter.
    pub fn require(&self, k: &str) -> Result<&str, OAuthError> {
        self.get(k)
            .ok_or_else(|| OAuthError::invalid_request(format!("Missing parameter: {k}")))
    }
}

/// Whether `body` is a form to parse: refused unless its content type is
/// form; no body at all is an empty form whatever the Content-Type says (a
/// device authorization request can be nothing but Basic auth).
fn is_form(headers: &HeaderMap, body: &[u8]) -> Result<bool, OAuthError> {
    if body.is_empty() {
        return Ok(false);
    }
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct
        .to_ascii_lowercase()
        .starts_with("application/x-www-form-urlencoded")
    {
        return Err(OAuthError::invalid_request(
            "Content-Type must be application/x-www-form-urlencoded",
        ));
    }
    Ok(true)
}

/// The longest value of an OAuth parameter, in characters, as Keycloak
/// bounds them since 26.4 and at the token endpoint since CVE-2026-4634
/// (a megabyte `scope` of distinct values made its scope processing, and
/// the token that echoes it, grow without end): 4000, 20000 for tokens and
/// signed requests, which grow with what they carry.
fn max_chars(name: &str) -> usize {
    if name.ends_with("token")
        || name.ends_with("assertion")
        || name == "id_token_hint"
        || name == "request"
    {
        20_000
    } else {
        4_000
    }
}

/// Keycloak's bound on `login_hint` (a username or e-mail address is no
/// longer); a longer hint is dropped, as it is only a hint.
const MAX_LOGIN_HINT: usize = 255;

fn longer_than(v: &str, max: usize) -> bool {
    v.len() > max && v.chars().count() > max
}

/// The fields of `body`, each once, and every value of those that repeat
/// where `may_repeat` lets them (asked only about a field that does); with
/// `oauth`, values past [`max_chars`] are an `invalid_request`.
fn parse_pairs(
    body: &[u8],
    may_repeat: &dyn Fn(&str) -> bool,
    oauth: bool,
) -> Result<(Form, HashMap<String, Vec<String>>), OAuthError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
        .map_err(|_| OAuthError::invalid_request("Malformed form body"))?;
    let mut map = HashMap::with_capacity(pairs.len());
    let mut repeated: HashMap<String, Vec<String>> = HashMap::new();
    for (k, v) in pairs {
        if oauth && k == "login_hint" && longer_than(&v, MAX_LOGIN_HINT) {
            continue;
        }
        if oauth && longer_than(&v, max_chars(&k)) {
            return Err(OAuthError::invalid_request(format!(
                "Parameter {k} is too long"
            )));
        }
        // RFC 8707's `resource`, RFC 8693's `audience` and the UMA
        // grant's `permission` may repeat (`oidc::uma` reads each
        // `permission` from the body itself: they may hold spaces).
        let listed = k == "resource" || k == "audience" || k == "permission";
        if listed {
            // Several: kept space-joined.
            map.entry(k)
                .and_modify(|e: &mut String| {
                    e.push(' ');
                    e.push_str(&v);
                })
                .or_insert(v);
        } else if let Some(first) = map.get(&k) {
            if !repeated.contains_key(&k) && !may_repeat(&k) {
                return Err(OAuthError::invalid_request(format!(
                    "Duplicated parameter: {k}"
                )));
            }
            let first = first.clone();
            repeated.entry(k).or_insert_with(|| vec![first]).push(v);
        } else {
            map.insert(k, v);
        }
    }
    Ok((Form(map), repeated))
}

/// A login page's posted form: [`Form`]'s one value per field, and every
/// value of the fields the page lets repeat (a multivalued profile
/// attribute's checkboxes or text inputs), which OAuth's forms refuse.
#[derive(Debug, Default)]
pub struct LoginForm {
    form: Form,
    repeated: HashMap<String, Vec<String>>,
}

impl std::ops::Deref for LoginForm {
    type Target = Form;
    fn deref(&self) -> &Form {
        &self.form
    }
}

impl LoginForm {
    /// Parses `body` as [`Form::parse`] does, letting the fields
    /// `may_repeat` names repeat (asked only about one that does).
    pub fn parse(
        headers: &HeaderMap,
        body: &[u8],
        may_repeat: &dyn Fn(&str) -> bool,
    ) -> Result<LoginForm, OAuthError> {
        if !is_form(headers, body)? {
            return Ok(LoginForm::default());
        }
        let (form, repeated) = parse_pairs(body, may_repeat, false)?;
        Ok(LoginForm { form, repeated })
    }

    /// Every value given for `k`, trimmed, the empty ones left out.
    pub fn values(&self, k: &str) -> Vec<String> {
        let all = match self.repeated.get(k) {
            Some(vs) => vs.iter().map(String::as_str).collect(),
            None => self.form.get(k).into_iter().collect::<Vec<_>>(),
        };
        all.into_iter()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oauth_parameters_are_bounded_as_keycloak_bounds_them() {
        let long = |n: usize| "é".repeat(n);
        let form = |k: &str, v: &str| {
            Form::parse_query(
                serde_urlencoded::to_string([(k, v)])
                    .expect("enc")
                    .as_bytes(),
            )
        };
        assert!(form("scope", &long(4000)).is_ok(), "counted in characters");
        let e = form("scope", &long(4001)).expect_err("too long");
        assert_eq!(e.error, "invalid_request");
        for k in [
            "refresh_token",
            "subject_token",
            "client_assertion",
            "request",
        ] {
            assert!(form(k, &long(20_000)).is_ok(), "{k}");
            assert!(form(k, &long(20_001)).is_err(), "{k}");
        }
        let hint = form("login_hint", &long(256)).expect("dropped, not refused");
        assert!(hint.get("login_hint").is_none());
        assert_eq!(
            form("login_hint", &long(255))
                .expect("ok")
                .get("login_hint")
                .map(|h| h.chars().count()),
            Some(255)
        );
        // A login page's own fields are not OAuth parameters.
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        let body = serde_urlencoded::to_string([("bio", long(5000))]).expect("enc");
        assert!(LoginForm::parse(&h, body.as_bytes(), &|_| false).is_ok());
    }

    #[test]
    fn duplicates_and_bad_content_types_are_rejected() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            "application/x-www-form-urlencoded".parse().expect("h"),
        );
        assert!(Form::parse(&h, b"a=1&a=2").is_err());
        assert_eq!(Form::parse(&h, b"a=1&b=").expect("ok").get("b"), None);
        assert_eq!(
            Form::parse(&h, b"resource=x&resource=y")
                .expect("ok")
                .get("resource"),
            Some("x y")
        );
        let mut j = HeaderMap::new();
        j.insert(header::CONTENT_TYPE, "application/json".parse().expect("h"));
        assert!(Form::parse(&j, b"a=1").is_err());
        // Arbitrary bytes never panic.
        let _ = Form::parse(&h, &[0xff, 0xfe, b'=', b'%', b'z']);
    }

    #[test]
    fn a_login_form_lets_only_the_fields_it_names_repeat() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            "application/x-www-form-urlencoded".parse().expect("h"),
        );
        let tags = |k: &str| k == "tags";
        let f = LoginForm::parse(&h, b"tags=a&x=1&tags=+b+&tags=&tags=c", &tags).expect("ok");
        assert_eq!(f.values("tags"), ["a", "b", "c"]);
        assert_eq!(
            (f.get("x"), f.values("x")),
            (Some("1"), vec!["1".to_owned()])
        );
        assert_eq!(f.values("none"), Vec::<String>::new());
        assert!(LoginForm::parse(&h, b"tags=a&x=1&x=2", &tags).is_err());
        let asked = std::cell::Cell::new(0);
        let counting = |_: &str| {
            asked.set(asked.get() + 1);
            true
        };
        assert!(LoginForm::parse(&h, b"a=1&b=2&a=3&a=4", &counting).is_ok());
        assert_eq!(asked.get(), 1, "asked once, and only about a repeat");
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        /// Any body is parsed or refused with an OAuth error, never a panic.
        #[test]
        fn arbitrary_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(f) = Form::parse_query(&body) {
                for k in f.0.keys() {
                    let _ = f.get(k);
                }
            }
        }

        /// What a client encodes is what the endpoint reads: any keys and
        /// values (any Unicode, `&`, `=`, `+`, `%`) survive the encoding.
        #[test]
        fn encoded_parameters_round_trip(
            params in proptest::collection::btree_map("[a-z_]{1,12}", ".{0,40}", 0..8)
        ) {
            prop_assume!(!params.contains_key("resource"));
            let body = serde_urlencoded::to_string(&params).expect("encode");
            let f = Form::parse_query(body.as_bytes()).expect("parse");
            for (k, v) in &params {
                prop_assert_eq!(f.get(k), Some(v.as_str()).filter(|v| !v.is_empty()));
            }
            prop_assert_eq!(f.0.len(), params.len());
        }

        /// A repeated parameter (other than the listed ones) is always refused.
        #[test]
        fn repeated_parameters_are_refused(k in "[a-z_]{1,12}", a in ".{0,10}", b in ".{0,10}") {
            prop_assume!(!["resource", "audience", "permission"].contains(&k.as_str()));
            let body = serde_urlencoded::to_string([(&k, &a), (&k, &b)]).expect("encode");
            prop_assert!(Form::parse_query(body.as_bytes()).is_err());
        }
    }
}
