//! The caller's identity for the upstream (design.md §Gateway). Incoming
//! headers of these names (any `x-gatehouse-*`, with dashes or
//! underscores) are always removed first, so a caller can never forge them. Lists are RFC 9110 lists (`a, b`), each
//! item percent-encoded where it holds `,`, `%` or anything but visible
//! ASCII, so a group name can never split or merge.

use crate::identity::Identity;
use http::{HeaderMap, HeaderName, HeaderValue};

pub const SUBJECT: HeaderName = HeaderName::from_static("x-gatehouse-subject");
pub const USERNAME: HeaderName = HeaderName::from_static("x-gatehouse-username");
pub const GROUPS: HeaderName = HeaderName::from_static("x-gatehouse-groups");
pub const SCOPES: HeaderName = HeaderName::from_static("x-gatehouse-scopes");
pub const ROLES: HeaderName = HeaderName::from_static("x-gatehouse-roles");
pub const CLIENT: HeaderName = HeaderName::from_static("x-gatehouse-client");
pub const ASSERTION: HeaderName = HeaderName::from_static("x-gatehouse-assertion");

/// Whether `name` reads as `spelled` where `_` is taken for `-`: how CGI-
/// style servers (Rack/Puma, PHP-FPM, WSGI) see header names, folding both
/// into `HTTP_X_GATEHOUSE_SUBJECT`.
fn reads_as(name: &[u8], spelled: &[u8]) -> bool {
    name.len() >= spelled.len()
        && name
            .iter()
            .zip(spelled)
            .all(|(a, b)| a == b || (*a == b'_' && *b == b'-'))
}

/// Whether the gateway owns this header name, spelled with dashes or, as a
/// CGI-style upstream would read it, with underscores.
pub fn is_identity_header(name: &HeaderName) -> bool {
    reads_as(name.as_str().as_bytes(), b"x-gatehouse-")
}

/// The forwarding headers the gateway sets itself: whoever sends them with
/// underscores (`X_Forwarded_For`) would, to a CGI-style upstream, be
/// saying what only the gateway may say (Puma's CVE-2024-45614,
/// oauth2-proxy's CVE-2025-64484).
const SET_BY_GATEWAY: [&[u8]; 5] = [
    b"x-forwarded-for",
    b"x-forwarded-host",
    b"x-forwarded-proto",
    b"x-real-ip",
    b"x-request-id",
];

/// Headers that ask the upstream to serve another path or method than the
/// request line's (IIS and Symfony's `X-Original-URL` / `X-Rewrite-URL`;
/// the method overrides of Laravel, Express's `method-override`, ASP.NET,
/// Google's APIs): the gateway routed and authorized the request line,
/// Cedar policies by its method, so `POST /reports` with
/// `X-HTTP-Method-Override: DELETE` or `GET /public` with
/// `X-Original-URL: /admin` would be served as what nobody authorized.
const OVERRIDES: [&[u8]; 5] = [
    b"x-original-url",
    b"x-rewrite-url",
    b"x-http-method-override",
    b"x-http-method",
    b"x-method-override",
];

/// What only a trusted proxy may tell the upstream: `Forwarded` and
/// `X-Real-IP`, which say what the gateway's `X-Forwarded-*` say (Spring's
/// forwarded-header support reads `Forwarded` first), and the
/// `X-Forwarded-*` fields the gateway does not set but frameworks build
/// links and redirects from (Spring's `-Prefix` and `-Port`, Traefik's
/// `-Uri`, `-Method`, `-Server`, the `-Ssl` some Rails and PHP setups
/// read); a caller's are removed, as Traefik removes untrusted ones.
const PROXIES_ONLY: [&[u8]; 8] = [
    b"forwarded",
    b"x-real-ip",
    b"x-forwarded-port",
    b"x-forwarded-prefix",
    b"x-forwarded-uri",
    b"x-forwarded-method",
    b"x-forwarded-server",
    b"x-forwarded-ssl",
];

/// Whether a caller's header must not reach the upstream: any
/// `x-gatehouse-*`, a path or method override (either spelling), the
/// underscore spelling of a forwarding header (the dash spelling is the
/// gateway's to extend or replace), and, unless a trusted proxy sent it,
/// one of [`PROXIES_ONLY`].
fn forgeable(name: &HeaderName, via_trusted_proxy: bool) -> bool {
    let n = name.as_str().as_bytes();
    let one_of = |list: &[&[u8]]| list.iter().any(|s| n.len() == s.len() && reads_as(n, s));
    is_identity_header(name)
        || one_of(&OVERRIDES)
        || (n.contains(&b'_') && one_of(&SET_BY_GATEWAY))
        || (!via_trusted_proxy && one_of(&PROXIES_ONLY))
}

/// Removes, in one pass over the caller's headers, every one it could
/// forge the gateway's (or a trusted proxy's) word with, or have the
/// upstream serve what the gateway did not authorize with (see
/// [`forgeable`]).
pub fn strip(headers: &mut HeaderMap, via_trusted_proxy: bool) {
    let owned: Vec<HeaderName> = headers
        .keys()
        .filter(|k| forgeable(k, via_trusted_proxy))
        .cloned()
        .collect();
    for k in owned {
        headers.remove(&k);
    }
}

fn encode_item(s: &str, out: &mut String) {
    for b in s.bytes() {
        if b == b',' || b == b'%' || !(0x21..=0x7e).contains(&b) {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push(b as char);
        }
    }
}

fn value(s: &str) -> Option<HeaderValue> {
    let mut out = String::with_capacity(s.len());
    encode_item(s, &mut out);
    HeaderValue::from_str(&out).ok()
}

fn list(items: &[String]) -> Option<HeaderValue> {
    let mut out = String::new();
    for (i, s) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        encode_item(s, &mut out);
    }
    HeaderValue::from_str(&out).ok()
}

/// The identity headers of `id`, encoded.
fn encode(id: &Identity) -> Vec<(HeaderName, HeaderValue)> {
    let mut out = Vec::with_capacity(6);
    if let Some(v) = value(&id.subject) {
        out.push((SUBJECT, v));
    }
    if let Some(v) = id.username.as_deref().and_then(value) {
        out.push((USERNAME, v));
    }
    if let Some(v) = id.client_id.as_deref().and_then(value) {
        out.push((CLIENT, v));
    }
    for (name, items) in [
        (GROUPS, &id.groups),
        (SCOPES, &id.scopes),
        (ROLES, &id.roles),
    ] {
        if let Some(v) = list(items) {
            out.push((name, v));
        }
    }
    out
}

/// Sets the identity headers for `id`. They are encoded once per identity
/// (identities are cached per token), then cloned: a reference count, not
/// a copy, per request.
pub fn inject(headers: &mut HeaderMap, id: &Identity) {
    for (k, v) in id.headers.get_or_init(|| encode(id)) {
        headers.insert(k.clone(), v.clone());
    }
}

/// The identity headers for `id` as HTTP/1.1 header lines (`name: value`
/// and CRLF each), encoded once per identity: what [`inject`] would add,
/// for a request head written without a header map.
pub fn wire(id: &Identity) -> &[u8] {
    id.wire.get_or_init(|| {
        let mut out = Vec::with_capacity(256);
        for (k, v) in id.headers.get_or_init(|| encode(id)) {
            out.extend_from_slice(k.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(v.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_stay_lists_and_forged_headers_go() {
        let mut h = HeaderMap::new();
        h.insert("x-gatehouse-subject", HeaderValue::from_static("forged"));
        h.insert("x-gatehouse-anything", HeaderValue::from_static("forged"));
        // Underscore spellings, which CGI-style upstreams read as the
        // same header, of ours and of the forwarding ones; path and
        // method overrides. Others keep theirs, and the dash spellings of
        // the forwarding headers are the gateway's to extend.
        let gone = [
            "x_gatehouse_subject",
            "x-gatehouse_groups",
            "x_forwarded_for",
            "x_forwarded-proto",
            "x_real_ip",
            "x_request_id",
            "x-http-method-override",
            "x_original_url",
            "x-rewrite-url",
        ];
        let kept = [
            "x_custom_thing",
            "x-forwarded-for",
            "x_forwarded_forx",
            "x-gatehouse",
        ];
        for name in gone.iter().chain(&kept) {
            h.insert(
                HeaderName::from_static(name),
                HeaderValue::from_static("value"),
            );
        }
        strip(&mut h, false);
        let mut left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(
            left,
            [
                "x-forwarded-for",
                "x-gatehouse",
                "x_custom_thing",
                "x_forwarded_forx"
            ]
        );
        h.clear();
        let id = Identity {
            subject: "u1".into(),
            groups: vec!["sales".into(), "a,b".into(), "Ünïcode team".into()],
            ..Default::default()
        };
        inject(&mut h, &id);
        assert_eq!(h[GROUPS], "sales, a%2Cb, %C3%9Cn%C3%AFcode%20team");
        assert_eq!(h[SUBJECT], "u1");
        assert!(h.get(USERNAME).is_none());
        // The wire form says the same, in the same order.
        let lines: Vec<String> = h
            .iter()
            .map(|(k, v)| format!("{k}: {}\r\n", v.to_str().unwrap_or("")))
            .collect();
        assert_eq!(String::from_utf8_lossy(wire(&id)), lines.concat());
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn decode(item: &str) -> String {
            let b = item.as_bytes();
            let mut out = vec![];
            let mut i = 0;
            while i < b.len() {
                if b[i] == b'%' && i + 2 < b.len() {
                    let hex = std::str::from_utf8(&b[i + 1..i + 3]).expect("hex");
                    out.push(u8::from_str_radix(hex, 16).expect("hex"));
                    i += 3;
                } else {
                    out.push(b[i]);
                    i += 1;
                }
            }
            String::from_utf8(out).expect("utf-8")
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1024))]

            /// Any list of group names (commas, spaces, `%`, any Unicode)
            /// arrives as the same list: never split, never merged.
            #[test]
            fn lists_survive_any_names(groups in proptest::collection::vec(".{0,16}", 1..6)) {
                let mut h = HeaderMap::new();
                inject(&mut h, &Identity { subject: "s".into(), groups: groups.clone(), ..Default::default() });
                let v = h[GROUPS].to_str().expect("visible ascii");
                let back: Vec<String> = v.split(", ").map(decode).collect();
                prop_assert_eq!(back, groups);
            }
        }
    }
}
