use super::*;
use crate::keys::{Alg, SigningKey};
use crate::sign::sign;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;

fn now() -> i64 {
    gatehouse_core::time::now()
}

fn setup(alg: Alg) -> (SigningKey, KeySet) {
    crate::install_crypto_provider();
    let (k, _) = SigningKey::generate(alg).expect("gen");
    let doc = crate::jwks::document([k.public_jwk()]);
    let ks = KeySet::from_jwks_json(doc.to_string().as_bytes()).expect("jwks");
    (k, ks)
}

#[test]
fn each_algorithm_signs_and_verifies() {
    for alg in [Alg::RS256, Alg::ES256, Alg::EdDSA] {
        let (k, ks) = setup(alg);
        let t = sign(
            &k,
            &json!({"iss": "i", "aud": "a", "exp": now() + 60, "sub": "u"}),
        )
        .expect("sign");
        let mut r = Rules::for_issuer("i");
        r.audiences = vec!["a".into()];
        let c = ks.verify(&t, &r).expect("verify");
        assert_eq!(c["sub"], "u");
    }
}

#[test]
fn negative_matrix() {
    let (k, ks) = setup(Alg::RS256);
    let r = Rules::for_issuer("i");
    let good = sign(&k, &json!({"iss": "i", "exp": now() + 60})).expect("sign");
    let parts: Vec<&str> = good.split('.').collect();
    // alg none
    let none_h = URL_SAFE_NO_PAD.encode(json!({"alg": "none", "kid": k.kid()}).to_string());
    assert!(ks.verify(&format!("{none_h}.{}.", parts[1]), &r).is_err());
    // HS256 signed with the public key's modulus bytes
    let hs_h = URL_SAFE_NO_PAD.encode(json!({"alg": "HS256", "kid": k.kid()}).to_string());
    let input = format!("{hs_h}.{}", parts[1]);
    let key = aws_lc_rs::hmac::Key::new(
        aws_lc_rs::hmac::HMAC_SHA256,
        k.public_jwk().to_string().as_bytes(),
    );
    let tag = URL_SAFE_NO_PAD.encode(aws_lc_rs::hmac::sign(&key, input.as_bytes()).as_ref());
    assert!(matches!(
        ks.verify(&format!("{input}.{tag}"), &r),
        Err(Error::Algorithm)
    ));
    // expired, not yet valid, wrong issuer
    let exp = sign(&k, &json!({"iss": "i", "exp": now() - 120})).expect("s");
    assert!(matches!(ks.verify(&exp, &r), Err(Error::Expired)));
    let nbf = sign(
        &k,
        &json!({"iss": "i", "exp": now() + 600, "nbf": now() + 300}),
    )
    .expect("s");
    assert!(matches!(ks.verify(&nbf, &r), Err(Error::NotYetValid)));
    let iss = sign(&k, &json!({"iss": "evil", "exp": now() + 60})).expect("s");
    assert!(matches!(ks.verify(&iss, &r), Err(Error::Issuer)));
    // tampered payload, stripped signature, garbage
    let tampered_payload =
        URL_SAFE_NO_PAD.encode(json!({"iss": "i", "exp": now() + 60, "admin": true}).to_string());
    assert!(
        ks.verify(
            &format!("{}.{}.{}", parts[0], tampered_payload, parts[2]),
            &r
        )
        .is_err()
    );
    assert!(
        ks.verify(&format!("{}.{}.", parts[0], parts[1]), &r)
            .is_err()
    );
    assert!(ks.verify("!!!.@@@.###", &r).is_err());
    assert!(ks.verify("", &r).is_err());
    // unknown kid
    let (other, _) = SigningKey::generate(Alg::RS256).expect("gen");
    let t = sign(&other, &json!({"iss": "i", "exp": now() + 60})).expect("s");
    assert!(matches!(ks.verify(&t, &r), Err(Error::UnknownKid)));
    // algorithm not in the allowed list
    let es_only = Rules {
        algorithms: vec![Algorithm::ES256],
        ..r.clone()
    };
    assert!(matches!(ks.verify(&good, &es_only), Err(Error::Algorithm)));
    // missing exp
    let noexp = sign(&k, &json!({"iss": "i"})).expect("s");
    assert!(ks.verify(&noexp, &r).is_err());
}

/// Validly signed tokens whose `iss` or `aud` is missing or malformed are
/// refused when the rules name an issuer or audiences (jsonwebtoken skips
/// its comparison for claims it cannot parse or does not find).
#[test]
fn missing_or_malformed_issuer_and_audience_are_refused() {
    let (k, ks) = setup(Alg::RS256);
    let r = Rules {
        audiences: vec!["api".into()],
        ..Rules::for_issuer("i")
    };
    let exp = now() + 60;
    let ok = sign(&k, &json!({"iss": "i", "aud": ["x", "api"], "exp": exp})).expect("sign");
    assert!(ks.verify(&ok, &r).is_ok());
    for (claims, issuer_error) in [
        (json!({"aud": "api", "exp": exp}), true),
        (
            json!({"iss": ["evil", "i"], "aud": "api", "exp": exp}),
            true,
        ),
        (json!({"iss": ["i"], "aud": "api", "exp": exp}), true),
        (json!({"iss": 7, "aud": "api", "exp": exp}), true),
        (json!({"iss": null, "aud": "api", "exp": exp}), true),
        (json!({"iss": "i", "exp": exp}), false),
        (json!({"iss": "i", "aud": 5, "exp": exp}), false),
        (json!({"iss": "i", "aud": {"api": true}, "exp": exp}), false),
        (json!({"iss": "i", "aud": ["api", 5], "exp": exp}), false),
        (json!({"iss": "i", "aud": [], "exp": exp}), false),
        (json!({"iss": "i", "aud": null, "exp": exp}), false),
    ] {
        let t = sign(&k, &claims).expect("sign");
        let got = ks.verify(&t, &r);
        if issuer_error {
            assert!(matches!(got, Err(Error::Issuer)), "{claims}: {got:?}");
        } else {
            assert!(matches!(got, Err(Error::Audience)), "{claims}: {got:?}");
        }
    }
    // Time claims that are not numbers are refused, not ignored.
    for claims in [
        json!({"iss": "i", "aud": "api", "exp": exp.to_string()}),
        json!({"iss": "i", "aud": "api", "exp": -1}),
        json!({"iss": "i", "aud": "api", "exp": exp, "nbf": "0"}),
        json!({"iss": "i", "aud": "api", "exp": exp, "nbf": now() + 3600}),
    ] {
        let t = sign(&k, &claims).expect("sign");
        assert!(ks.verify(&t, &r).is_err(), "{claims}");
    }
}

/// A validly signed token whose header carries `crit` (RFC 7515 §4.1.11)
/// is refused: the extensions it names change what the signature means.
#[test]
fn critical_header_extensions_are_refused() {
    let (k, ks) = setup(Alg::RS256);
    let r = Rules::for_issuer("i");
    let claims = json!({"iss": "i", "exp": now() + 60});
    for crit in [json!(["b64"]), json!(["exp"]), json!([])] {
        let h = json!({"alg": "RS256", "kid": k.kid(), "crit": crit, "b64": true});
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(h.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = k.sign_raw(input.as_bytes()).expect("sign");
        let t = format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig));
        assert!(matches!(ks.verify(&t, &r), Err(Error::Critical)), "{crit}");
    }
    let h = json!({"alg": "HS512", "kid": "k", "crit": ["x"], "x": 1});
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(h.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA512, b"secret");
    let sig = aws_lc_rs::hmac::sign(&key, input.as_bytes());
    let t = format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()));
    assert!(matches!(
        crate::sign::verify_hs512(b"secret", &t),
        Err(Error::Critical)
    ));
}

#[test]
fn symmetric_algorithms_cannot_be_configured() {
    assert!(parse_alg("HS256").is_err());
    assert!(parse_alg("none").is_err());
    assert!(parse_alg("RS256").is_ok());
}

#[test]
fn hs512_refresh_tokens_roundtrip() {
    let t = crate::sign::sign_hs512(b"secret", "k", &json!({"x": 1})).expect("sign");
    assert_eq!(crate::sign::verify_hs512(b"secret", &t).expect("v")["x"], 1);
    assert!(crate::sign::verify_hs512(b"other", &t).is_err());
    assert!(crate::sign::verify_hs512(b"secret", "a.b").is_err());
}

/// A seeded xorshift generator: reproducible random inputs without a
/// dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn mutated_and_random_tokens_are_errors_not_panics() {
    let (k, ks) = setup(Alg::ES256);
    let r = Rules::for_issuer("i");
    let good = sign(&k, &json!({"iss": "i", "exp": now() + 60, "sub": "s"})).expect("sign");
    let mut rng = Rng(0x9e3779b97f4a7c15);
    let alphabet = b"ABCxyz019-_.=+/ {}\"\\\x00\xff";
    for _ in 0..3000 {
        let mut t = good.clone().into_bytes();
        match rng.below(4) {
            0 => {
                // flip bytes
                for _ in 0..1 + rng.below(4) {
                    let i = rng.below(t.len());
                    t[i] = alphabet[rng.below(alphabet.len())];
                }
            }
            1 => t.truncate(rng.below(t.len())),
            2 => {
                let i = rng.below(t.len());
                t.insert(i, b'.');
            }
            _ => {
                t = (0..rng.below(300))
                    .map(|_| alphabet[rng.below(alphabet.len())])
                    .collect()
            }
        }
        let s = String::from_utf8_lossy(&t);
        if s != good {
            assert!(ks.verify(&s, &r).is_err(), "mutation accepted: {s}");
        }
        let _ = crate::sign::verify_hs512(b"k", &s);
    }
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn b64(v: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(v)
    }

    /// One key per algorithm for all cases (RSA generation is slow).
    fn shared(alg: Alg) -> &'static (SigningKey, KeySet) {
        static RS: std::sync::OnceLock<(SigningKey, KeySet)> = std::sync::OnceLock::new();
        static ES: std::sync::OnceLock<(SigningKey, KeySet)> = std::sync::OnceLock::new();
        match alg {
            Alg::RS256 => RS.get_or_init(|| setup(Alg::RS256)),
            _ => ES.get_or_init(|| setup(Alg::ES256)),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Arbitrary text is never a valid token, and never a panic.
        #[test]
        fn arbitrary_strings_are_refused(token in ".{0,400}") {
            let (_, ks) = shared(Alg::RS256);
            prop_assert!(ks.verify(&token, &Rules::for_issuer("i")).is_err());
        }

        /// Well-formed JWS shapes with any header (alg none, HS256, unknown
        /// kid...), any payload and any signature bytes are refused.
        #[test]
        fn forged_shapes_are_refused(
            alg in prop_oneof!["none", "HS256", "HS512", "RS256", "ES256", "EdDSA", "PS256", "[A-Za-z0-9]{0,8}"],
            kid in proptest::option::of("[a-z0-9-]{0,12}"),
            payload in proptest::collection::vec(any::<u8>(), 0..200),
            sig in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let (_, ks) = shared(Alg::RS256);
            let mut header = json!({"alg": alg, "typ": "JWT"});
            if let Some(k) = kid {
                header["kid"] = json!(k);
            }
            let token = format!("{}.{}.{}", b64(header.to_string().as_bytes()), b64(&payload), b64(&sig));
            prop_assert!(ks.verify(&token, &Rules::for_issuer("i")).is_err());
        }

        /// Changing any single character of a valid token makes it invalid.
        #[test]
        fn any_tampered_character_is_refused(pos in any::<prop::sample::Index>(), with in "[A-Za-z0-9_-]") {
            let (k, ks) = shared(Alg::ES256);
            let good = sign(k, &json!({"iss": "i", "sub": "u", "exp": now() + 60})).expect("sign");
            let i = pos.index(good.len());
            let c = with.chars().next().expect("char");
            prop_assume!(good.as_bytes()[i] != b'.' && good.as_bytes()[i] as char != c);
            let mut bad = good.clone();
            bad.replace_range(i..i + 1, &c.to_string());
            // The last base64url character of a segment may carry unused
            // bits: only a change that alters the decoded bytes must fail.
            let decoded = |t: &str| -> Vec<Vec<u8>> {
                t.split('.').map(|p| URL_SAFE_NO_PAD.decode(p).unwrap_or_default()).collect()
            };
            prop_assume!(decoded(&bad) != decoded(&good));
            prop_assert!(ks.verify(&bad, &Rules::for_issuer("i")).is_err());
        }
    }
}

/// With `client_id_as_audience` (Amazon Cognito's access tokens), a token
/// without `aud` is judged by `client_id`; a present `aud`, even a wrong or
/// malformed one, is never replaced by it. Without the option `client_id`
/// counts for nothing.
#[test]
fn client_id_stands_for_a_missing_audience_only_when_asked() {
    let (k, ks) = setup(Alg::RS256);
    let plain = Rules {
        audiences: vec!["app-client".into()],
        ..Rules::for_issuer("i")
    };
    let cognito = Rules {
        client_id_as_audience: true,
        ..plain.clone()
    };
    let exp = now() + 60;
    for (claims, with_option, without_option) in [
        (json!({"client_id": "app-client"}), true, false),
        (json!({"client_id": "other"}), false, false),
        (json!({"client_id": ["app-client"]}), true, false),
        (json!({}), false, false),
        (
            json!({"aud": "other", "client_id": "app-client"}),
            false,
            false,
        ),
        (
            json!({"aud": null, "client_id": "app-client"}),
            false,
            false,
        ),
        (
            json!({"aud": "app-client", "client_id": "other"}),
            true,
            true,
        ),
    ] {
        let mut c = claims.clone();
        c["iss"] = json!("i");
        c["exp"] = json!(exp);
        let t = sign(&k, &c).expect("sign");
        assert_eq!(ks.verify(&t, &cognito).is_ok(), with_option, "{claims}");
        assert_eq!(ks.verify(&t, &plain).is_ok(), without_option, "{claims}");
    }
}

/// Keys as Entra ID and Cognito publish them: no `alg`, with `x5t`, `x5c`
/// and fields JWK does not define (`issuer`). The key's `kty` decides the
/// family, and the rules' algorithms decide the rest.
#[test]
fn jwks_without_alg_and_with_extra_fields_verify() {
    crate::install_crypto_provider();
    let (k, _) = SigningKey::generate(Alg::RS256).expect("gen");
    let mut jwk = k.public_jwk().clone();
    let o = jwk.as_object_mut().expect("object");
    o.remove("alg");
    o.insert("x5t".into(), json!("bm90LWEtcmVhbC10aHVtYnByaW50"));
    o.insert("x5c".into(), json!(["MIIBnotarealcertificate"]));
    o.insert(
        "issuer".into(),
        json!("https://login.microsoftonline.com/t/v2.0"),
    );
    let doc = json!({"keys": [jwk]});
    let ks = KeySet::from_jwks_json(doc.to_string().as_bytes()).expect("jwks");
    let t = sign(&k, &json!({"iss": "i", "exp": now() + 60})).expect("sign");
    assert!(ks.verify(&t, &Rules::for_issuer("i")).is_ok());
    let es_only = Rules {
        algorithms: vec![Algorithm::ES256],
        ..Rules::for_issuer("i")
    };
    assert!(matches!(ks.verify(&t, &es_only), Err(Error::Algorithm)));
}

/// A verifier for access tokens refuses tokens that say they are something
/// else (RFC 8725 §3.11): Keycloak's ID, refresh and logout tokens, a
/// back-channel logout token typed `logout+jwt`, Cognito's ID tokens,
/// security event tokens, and markers that contradict each other. Tokens
/// that say nothing (Entra ID, Okta) and access tokens pass. ID tokens pass
/// only when asked, and a verifier for any purpose takes them all.
#[test]
fn tokens_declaring_another_purpose_are_not_access_tokens() {
    let (k, ks) = setup(Alg::RS256);
    let access = Rules {
        purpose: Purpose::Access { id_tokens: false },
        ..Rules::for_issuer("i")
    };
    let or_id = Rules {
        purpose: Purpose::Access { id_tokens: true },
        ..access.clone()
    };
    let any = Rules::for_issuer("i");
    let exp = now() + 60;
    // (header typ, extra claims, as access token, with ID tokens)
    let cases = [
        (None, json!({}), true, true),
        (Some("JWT"), json!({"typ": "Bearer"}), true, true),
        (Some("at+jwt"), json!({}), true, true),
        (Some("application/AT+JWT"), json!({}), true, true),
        (Some("JOSE"), json!({"token_use": "access"}), true, true),
        (Some("JWT"), json!({"typ": "ID"}), false, true),
        (None, json!({"token_use": "id"}), false, true),
        (Some("JWT"), json!({"typ": "Refresh"}), false, false),
        (Some("JWT"), json!({"typ": "Offline"}), false, false),
        (Some("JWT"), json!({"typ": "Logout"}), false, false),
        (Some("logout+jwt"), json!({}), false, false),
        (Some("secevent+jwt"), json!({}), false, false),
        (Some("dpop+jwt"), json!({}), false, false),
        (
            None,
            json!({"events": {"http://schemas.openid.net/event/backchannel-logout": {}}}),
            false,
            false,
        ),
        (None, json!({"token_use": "refresh"}), false, false),
        (None, json!({"token_use": 1}), false, false),
        (Some("at+jwt"), json!({"typ": "ID"}), false, false),
        (
            None,
            json!({"typ": "Bearer", "token_use": "id"}),
            false,
            false,
        ),
    ];
    for (typ, extra, as_access, as_access_or_id) in cases {
        let mut c = extra.clone();
        c["iss"] = json!("i");
        c["exp"] = json!(exp);
        let t = match typ {
            Some(typ) => crate::sign::sign_typed(&k, typ, &c),
            None => {
                let h = json!({"alg": "RS256", "kid": k.kid()});
                let input = format!(
                    "{}.{}",
                    URL_SAFE_NO_PAD.encode(h.to_string()),
                    URL_SAFE_NO_PAD.encode(c.to_string())
                );
                let sig = k.sign_raw(input.as_bytes()).expect("sign");
                Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig)))
            }
        }
        .expect("sign");
        let got = ks.verify(&t, &access);
        assert_eq!(got.is_ok(), as_access, "{typ:?} {extra}");
        if !as_access {
            assert!(matches!(got, Err(Error::TokenType)), "{typ:?} {extra}");
        }
        assert_eq!(
            ks.verify(&t, &or_id).is_ok(),
            as_access_or_id,
            "{typ:?} {extra}"
        );
        assert!(ks.verify(&t, &any).is_ok(), "{typ:?} {extra}");
    }
}

/// A client configured with a certificate (Keycloak's
/// `jwt.credential.certificate`: base64 DER, no PEM armour) or a PEM
/// certificate or public key: its signed JWTs verify against that one key
/// whatever `kid` they name, for RSA, EC P-256 and Ed25519; another key's
/// signature and a wrong algorithm family do not; garbage is an error.
#[test]
fn a_certificate_pins_one_key_for_any_kid() {
    crate::install_crypto_provider();
    let fixtures = [
        (
            Alg::RS256,
            &include_bytes!("../../testdata/rsa.p8.der")[..],
            include_str!("../../testdata/rsa.crt"),
            include_str!("../../testdata/rsa.pub"),
        ),
        (
            Alg::ES256,
            &include_bytes!("../../testdata/ec.p8.der")[..],
            include_str!("../../testdata/ec.crt"),
            include_str!("../../testdata/ec.pub"),
        ),
        (
            Alg::EdDSA,
            &include_bytes!("../../testdata/ed.p8.der")[..],
            include_str!("../../testdata/ed.crt"),
            include_str!("../../testdata/ed.pub"),
        ),
    ];
    let r = Rules::for_issuer("client");
    for (alg, pkcs8, cert_pem, pub_pem) in fixtures {
        // Keycloak keeps the certificate as bare base64 DER.
        let bare: String = cert_pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        let key = SigningKey::from_pkcs8(alg, "whatever-kid", pkcs8).expect("key");
        let token = sign(&key, &json!({"iss": "client", "exp": now() + 60})).expect("sign");
        let bare_pub: String = pub_pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        for form in [bare.as_str(), cert_pem, pub_pem, bare_pub.as_str()] {
            let ks = KeySet::from_certificate(form).expect("certificate");
            assert!(ks.verify(&token, &r).is_ok(), "{alg:?}");
        }
        let (other, _) = SigningKey::generate(alg).expect("gen");
        let forged = sign(&other, &json!({"iss": "client", "exp": now() + 60})).expect("sign");
        let ks = KeySet::from_certificate(&bare).expect("certificate");
        assert!(ks.verify(&forged, &r).is_err(), "{alg:?}: another key");
    }
    let rsa = KeySet::from_certificate(include_str!("../../testdata/rsa.crt")).expect("rsa");
    let (ec, _) = SigningKey::generate(Alg::ES256).expect("gen");
    let ec_token = sign(&ec, &json!({"iss": "client", "exp": now() + 60})).expect("sign");
    assert!(matches!(rsa.verify(&ec_token, &r), Err(Error::Algorithm)));
    for garbage in [
        "",
        "not base64!",
        "aGVsbG8=",
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----",
    ] {
        assert!(KeySet::from_certificate(garbage).is_err(), "{garbage}");
    }
}

/// Attacks from public JWT corpora (jwt_tool's and the like) that a
/// verifier built on a library can still fall for: every one is refused,
/// and a token with repeated claims means one thing to every reader.
#[test]
fn attack_corpus_tokens_are_refused() {
    let (k, ks) = setup(Alg::RS256);
    let r = Rules::for_issuer("i");
    let b64 = |s: &str| URL_SAFE_NO_PAD.encode(s);
    let signed = |key: &SigningKey, header: &str, payload: &str| {
        let input = format!("{}.{}", b64(header), b64(payload));
        let sig = URL_SAFE_NO_PAD.encode(key.sign_raw(input.as_bytes()).expect("sign"));
        format!("{input}.{sig}")
    };
    let kid = k.kid().to_owned();
    let exp = now() + 60;
    let ok_payload = format!(r#"{{"iss":"i","exp":{exp},"sub":"u"}}"#);
    // Our own key, as a control.
    let good = signed(
        &k,
        &format!(r#"{{"alg":"RS256","kid":"{kid}"}}"#),
        &ok_payload,
    );
    assert_eq!(ks.verify(&good, &r).expect("control")["sub"], "u");
    // The attacker's key, offered in the header (CVE-2018-0114) or by URL
    // (jku, x5u), under our kid or none: keys come only from the key set.
    let (evil, _) = SigningKey::generate(Alg::RS256).expect("gen");
    let evil_jwk = evil.public_jwk().to_string();
    for header in [
        format!(r#"{{"alg":"RS256","kid":"{kid}","jwk":{evil_jwk}}}"#),
        format!(r#"{{"alg":"RS256","jwk":{evil_jwk}}}"#),
        format!(r#"{{"alg":"RS256","kid":"{kid}","jku":"https://evil.example/jwks"}}"#),
        format!(r#"{{"alg":"RS256","kid":"{kid}","x5u":"https://evil.example/cert"}}"#),
        r#"{"alg":"RS256","kid":"../../../../dev/null"}"#.to_owned(),
        r#"{"alg":"RS256","kid":"' OR '1'='1"}"#.to_owned(),
    ] {
        let t = signed(&evil, &header, &ok_payload);
        assert!(ks.verify(&t, &r).is_err(), "{header}");
    }
    // `none` in any spelling, with or without a signature.
    for alg in ["none", "None", "NONE", "nOnE", "", "RS256 ", "rs256"] {
        let input = format!(
            "{}.{}",
            b64(&format!(r#"{{"alg":"{alg}","kid":"{kid}"}}"#)),
            b64(&ok_payload)
        );
        assert!(ks.verify(&format!("{input}."), &r).is_err(), "{alg:?}");
        let sig = URL_SAFE_NO_PAD.encode(k.sign_raw(input.as_bytes()).expect("sign"));
        assert!(ks.verify(&format!("{input}.{sig}"), &r).is_err(), "{alg:?}");
    }
    // A repeated header member: the last one counts (RFC 7515 §4), so a
    // trailing `none` is refused whatever came before it.
    let t = signed(
        &k,
        &format!(r#"{{"alg":"RS256","alg":"none","kid":"{kid}"}}"#),
        &ok_payload,
    );
    assert!(ks.verify(&t, &r).is_err());
    // Repeated claims: whichever reading the verifier takes, the claims
    // it returns are the ones it checked (RFC 7519 §4: the last member).
    let header = format!(r#"{{"alg":"RS256","kid":"{kid}"}}"#);
    let past = now() - 3600;
    for payload in [
        format!(r#"{{"iss":"i","exp":{exp},"exp":{past}}}"#),
        format!(r#"{{"iss":"evil","iss":"i","exp":{past},"exp":{exp}}}"#),
        format!(r#"{{"iss":"i","iss":"evil","exp":{exp}}}"#),
    ] {
        let t = signed(&k, &header, &payload);
        if let Ok(c) = ks.verify(&t, &r) {
            assert_eq!(c["iss"], "i", "{payload}");
            assert!(c["exp"].as_i64().is_some_and(|e| e > now()), "{payload}");
        }
    }
    // Claims of the wrong type or out of range, and payloads that are no
    // claims set.
    for payload in [
        format!(r#"{{"iss":"i","exp":"{exp}"}}"#),
        r#"{"iss":"i","exp":1e400}"#.to_owned(),
        r#"{"iss":"i","exp":null}"#.to_owned(),
        format!(r#"{{"iss":"i","exp":{exp},"nbf":"later"}}"#),
        format!(r#"[{{"iss":"i","exp":{exp}}}]"#),
        r#""i""#.to_owned(),
    ] {
        let t = signed(&k, &header, &payload);
        assert!(ks.verify(&t, &r).is_err(), "{payload}");
    }
    // A psychic signature (CVE-2022-21449): r = s = 0 on an ES256 key.
    let (ek, eks) = setup(Alg::ES256);
    let input = format!(
        "{}.{}",
        b64(&format!(r#"{{"alg":"ES256","kid":"{}"}}"#, ek.kid())),
        b64(&ok_payload)
    );
    let zero = URL_SAFE_NO_PAD.encode([0u8; 64]);
    assert!(eks.verify(&format!("{input}.{zero}"), &r).is_err());
    // Five segments (a JWE) and extra dots are no JWS.
    assert!(ks.verify(&format!("{good}.x.y"), &r).is_err());
    assert!(ks.verify(&format!("{good}."), &r).is_err());
}

/// RFC 7519 NumericDates may have a fraction: such tokens verify, and the
/// whole-second readings are floored (ceiled for `nbf`) so no instant is
/// moved into its validity window.
#[test]
fn numeric_dates_may_be_fractional() {
    for (v, floor, ceil) in [
        (json!(300), Some(300), Some(300)),
        (json!(300.0), Some(300), Some(300)),
        (json!(300.5), Some(300), Some(301)),
        (json!(-0.5), Some(-1), Some(0)),
        (json!("300"), None, None),
        (json!(null), None, None),
        (json!(1e300), None, None),
        (json!([300]), None, None),
    ] {
        assert_eq!(numeric_date(&v), floor, "{v}");
        assert_eq!(numeric_date_ceil(&v), ceil, "{v}");
    }
    let (k, ks) = setup(Alg::ES256);
    let r = Rules::for_issuer("i");
    let t = now() as f64;
    let good = sign(&k, &json!({"iss": "i", "exp": t + 60.5, "iat": t - 0.25})).expect("s");
    assert!(ks.verify(&good, &r).is_ok());
    let late = sign(&k, &json!({"iss": "i", "exp": t - 120.5})).expect("s");
    assert!(matches!(ks.verify(&late, &r), Err(Error::Expired)));
    let early = sign(&k, &json!({"iss": "i", "exp": t + 600.0, "nbf": t + 300.5})).expect("s");
    assert!(matches!(ks.verify(&early, &r), Err(Error::NotYetValid)));
}
