use super::*;
use crate::keys::{Alg, SigningKey};
use serde_json::json;

const URL: &str = "https://id.example/realms/r/protocol/openid-connect/token";
const NOW: i64 = 1_800_000_000;

fn key(alg: Alg) -> SigningKey {
    crate::install_crypto_provider();
    SigningKey::generate(alg).expect("key").0
}

fn want<'a>(token: Option<&'a str>) -> Expected<'a> {
    Expected {
        method: "POST",
        url: URL,
        access_token: token,
        now: NOW,
    }
}

/// A proof with a header and claims of the test's making, signed by `k`.
fn forged(k: &SigningKey, header: Value, claims: Value) -> String {
    crate::sign::sign_with_header(k, &header, &claims).expect("sign")
}

fn public_jwk(k: &SigningKey) -> Value {
    let mut j = k.public_jwk().clone();
    for m in ["kid", "alg", "use"] {
        j.as_object_mut().expect("object").remove(m);
    }
    j
}

#[test]
fn proofs_of_every_algorithm_verify_and_bind_the_rfc_7638_thumbprint() {
    for alg in [Alg::RS256, Alg::PS256, Alg::ES256, Alg::ES384, Alg::EdDSA] {
        let k = key(alg);
        let p = proof(&k, "POST", URL, None, NOW).expect("proof");
        let ok = verify(&p, &want(None)).expect("valid proof");
        assert_eq!(Some(ok.jkt), thumbprint(&public_jwk(&k)), "{alg:?}");
    }
}

#[test]
fn thumbprint_matches_rfc_7638_example() {
    // RFC 7638 §3.1.
    let jwk = json!({"kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        "e": "AQAB", "alg": "RS256", "kid": "2011-04-29"});
    assert_eq!(
        thumbprint(&jwk).as_deref(),
        Some("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
    );
    assert_eq!(thumbprint(&json!({"kty": "oct", "k": "c2VjcmV0"})), None);
    assert_eq!(
        thumbprint(&json!({"kty": "EC", "crv": "P-256", "x": 1, "y": "a"})),
        None
    );
}

#[test]
fn the_access_token_hash_is_checked_when_a_token_goes_with_the_proof() {
    let k = key(Alg::ES256);
    let with = proof(&k, "POST", URL, Some("the-token"), NOW).expect("proof");
    assert!(verify(&with, &want(Some("the-token"))).is_ok());
    assert_eq!(
        verify(&with, &want(Some("another-token"))).map(|p| p.jkt),
        Err(ProofError::TokenHash)
    );
    let without = proof(&k, "POST", URL, None, NOW).expect("proof");
    assert_eq!(
        verify(&without, &want(Some("the-token"))).map(|p| p.jkt),
        Err(ProofError::NoTokenHash)
    );
}

#[test]
fn every_check_refuses_with_keycloaks_message() {
    let k = key(Alg::ES256);
    let jwk = public_jwk(&k);
    let claims = |c: Value| {
        let mut base = json!({"jti": "j1", "htm": "POST", "htu": URL, "iat": NOW});
        for (name, v) in c.as_object().expect("object") {
            if v.is_null() {
                base.as_object_mut().expect("object").remove(name);
            } else {
                base[name] = v.clone();
            }
        }
        base
    };
    let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk});
    let other = key(Alg::ES256);
    let cases: Vec<(String, ProofError)> = vec![
        (String::new(), ProofError::Missing),
        ("not-a-jwt".into(), ProofError::Header),
        (
            forged(
                &k,
                json!({"typ": "jwt+dpop", "alg": "ES256", "jwk": jwk}),
                claims(json!({})),
            ),
            ProofError::Type("jwt+dpop".into()),
        ),
        (
            forged(&k, json!({"alg": "ES256", "jwk": jwk}), claims(json!({}))),
            ProofError::Type("null".into()),
        ),
        (
            format!(
                "{}.{}.",
                b64(br#"{"typ":"dpop+jwt","alg":"none"}"#),
                b64(claims(json!({})).to_string().as_bytes())
            ),
            ProofError::Algorithm("none".into()),
        ),
        (
            format!(
                "{}.{}.c2ln",
                b64(br#"{"typ":"dpop+jwt","alg":"HS256"}"#),
                b64(claims(json!({})).to_string().as_bytes())
            ),
            ProofError::Algorithm("HS256".into()),
        ),
        (
            forged(
                &k,
                json!({"typ": "dpop+jwt", "alg": "ES256"}),
                claims(json!({})),
            ),
            ProofError::NoJwk,
        ),
        (
            forged(
                &k,
                json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": {"kty": "oct", "k": "AA"}}),
                claims(json!({})),
            ),
            ProofError::PrivateKey,
        ),
        (
            forged(
                &k,
                json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": {"kty": "EC", "crv": "P-256", "x": jwk["x"], "y": jwk["y"], "d": "AAAA"}}),
                claims(json!({})),
            ),
            ProofError::PrivateKey,
        ),
        (
            forged(
                &k,
                json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": {"kty": "XX"}}),
                claims(json!({})),
            ),
            ProofError::KeyType,
        ),
        (
            forged(
                &k,
                json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk, "crit": ["exp"]}),
                claims(json!({})),
            ),
            ProofError::Header,
        ),
        // Signed by another key than the one it carries.
        (
            forged(&other, header.clone(), claims(json!({}))),
            ProofError::Signature,
        ),
        (
            forged(&k, header.clone(), claims(json!({"jti": null}))),
            ProofError::Claims,
        ),
        (
            forged(&k, header.clone(), claims(json!({"htm": ""}))),
            ProofError::Claims,
        ),
        (
            forged(&k, header.clone(), claims(json!({"iat": "now"}))),
            ProofError::Claims,
        ),
        (
            forged(&k, header.clone(), claims(json!({"htu": ":::*;"}))),
            ProofError::MalformedUrl,
        ),
        (
            forged(
                &k,
                header.clone(),
                claims(json!({"htu": "https://server.example.com/token"})),
            ),
            ProofError::Url,
        ),
        (
            forged(&k, header.clone(), claims(json!({"htm": "GET"}))),
            ProofError::Method,
        ),
        (
            forged(
                &k,
                header.clone(),
                claims(json!({"iat": NOW - PROOF_LIFETIME - CLOCK_SKEW - 1})),
            ),
            ProofError::NotActive,
        ),
        (
            forged(
                &k,
                header.clone(),
                claims(json!({"iat": NOW + CLOCK_SKEW + 1})),
            ),
            ProofError::NotActive,
        ),
    ];
    for (p, why) in cases {
        assert_eq!(
            verify(&p, &want(None)).map(|p| p.jkt),
            Err(why.clone()),
            "{why}"
        );
    }
    // The edges of the window, a query and another case of host, pass.
    for c in [
        json!({"iat": NOW - PROOF_LIFETIME - CLOCK_SKEW}),
        json!({"iat": NOW + CLOCK_SKEW}),
        // A NumericDate may be fractional (`Date.now() / 1000`).
        json!({"iat": NOW as f64 + 0.5}),
        json!({"htu": "https://ID.example:443/realms/r/protocol/openid-connect/token?x=1#f"}),
    ] {
        assert!(
            verify(&forged(&k, header.clone(), claims(c.clone())), &want(None)).is_ok(),
            "{c}"
        );
    }
    // A key of another family than the algorithm it is used with.
    let rsa = key(Alg::RS256);
    let mismatched = forged(
        &rsa,
        json!({"typ": "dpop+jwt", "alg": "RS256", "jwk": jwk}),
        claims(json!({})),
    );
    assert_eq!(
        verify(&mismatched, &want(None)).map(|p| p.jkt),
        Err(ProofError::Signature)
    );
}

#[test]
fn a_proof_is_accepted_once_while_it_lives() {
    let k = key(Alg::ES256);
    let cache = ReplayCache::default();
    let p = verify(
        &proof(&k, "POST", URL, None, NOW).expect("proof"),
        &want(None),
    )
    .expect("valid");
    assert!(cache.first_use(&p, NOW).is_ok());
    assert_eq!(cache.first_use(&p, NOW + 5), Err(ProofError::Replayed));
    let q = verify(
        &proof(&k, "POST", URL, None, NOW).expect("proof"),
        &want(None),
    )
    .expect("valid");
    assert!(
        cache.first_use(&q, NOW).is_ok(),
        "another jti is another proof"
    );

    // Full of live proofs: refused, not accepted unrecorded; once they
    // have expired there is room again.
    let small = ReplayCache::with_capacity(1);
    assert!(small.first_use(&p, NOW).is_ok());
    assert_eq!(small.first_use(&q, NOW), Err(ProofError::Replayed));
    assert!(small.first_use(&q, p.expires + 1).is_ok());
}

#[test]
fn random_and_mutated_proofs_are_errors_not_panics() {
    let k = key(Alg::ES256);
    let good = proof(&k, "POST", URL, None, NOW).expect("proof");
    let bytes = good.as_bytes();
    for i in (0..bytes.len()).step_by(3) {
        let mut m = bytes.to_vec();
        m[i] = if m[i] == b'A' { b'B' } else { b'A' };
        let m = String::from_utf8_lossy(&m).into_owned();
        if m != good {
            assert!(verify(&m, &want(None)).is_err());
        }
    }
    for junk in [
        "..",
        "a.b.c",
        "e30.e30.",
        "e30.e30.e30",
        &"A".repeat(10_000),
    ] {
        assert!(verify(junk, &want(None)).is_err());
    }
}

#[test]
fn hostile_keys_in_the_header_are_errors_not_panics() {
    let claims = b64(json!({"jti": "j", "htm": "POST", "htu": URL, "iat": NOW})
        .to_string()
        .as_bytes());
    let long = "A".repeat(5000);
    let jwks = [
        json!({"kty": "RSA", "n": "", "e": ""}),
        json!({"kty": "RSA", "n": "AQAB", "e": "AQAB"}),
        json!({"kty": "RSA", "n": long, "e": "AQAB"}),
        json!({"kty": "RSA", "n": "!!!", "e": "AQAB"}),
        json!({"kty": "RSA", "n": "AQAB", "e": long}),
        json!({"kty": "EC", "crv": "P-256", "x": "", "y": ""}),
        json!({"kty": "EC", "crv": "P-256", "x": "AQAB", "y": "AQAB"}),
        json!({"kty": "EC", "crv": "P-256", "x": long, "y": long}),
        json!({"kty": "EC", "crv": "P-521", "x": "AQAB", "y": "AQAB"}),
        json!({"kty": "EC", "crv": "secp256k1", "x": "AQAB", "y": "AQAB"}),
        json!({"kty": "OKP", "crv": "Ed25519", "x": ""}),
        json!({"kty": "OKP", "crv": "X25519", "x": "AQAB"}),
        json!({"kty": "OKP", "crv": "Ed448", "x": "AQAB"}),
        json!({"kty": "RSA"}),
        json!({"kty": ["RSA"], "n": "AQAB", "e": "AQAB"}),
        json!({"kty": "EC", "crv": 1, "x": "AQAB", "y": "AQAB"}),
    ];
    for jwk in jwks {
        for alg in ["RS256", "PS512", "ES256", "ES384", "EdDSA"] {
            let header = b64(json!({"typ": "dpop+jwt", "alg": alg, "jwk": jwk})
                .to_string()
                .as_bytes());
            for sig in ["", "AAAA", &long] {
                let p = format!("{header}.{claims}.{sig}");
                assert!(verify(&p, &want(None)).is_err(), "{alg} {jwk}");
            }
        }
    }
}

#[test]
fn the_advertised_algorithms_are_exactly_those_verified() {
    let parsed: Vec<_> = ALGORITHMS
        .iter()
        .map(|a| crate::verify::parse_alg(a).expect("asymmetric"))
        .collect();
    assert_eq!(parsed, crate::verify::ASYMMETRIC);
}
