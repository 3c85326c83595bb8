//! Password credentials in Keycloak's stored shape (`credentialData` +
//! `secretData`), so that a Keycloak realm export's hashes verify here
//! unchanged and our own hashes export back. New hashes are argon2id with
//! Keycloak's default cost (5 iterations, 7 MiB, 1 lane); anything else that
//! verifies is flagged for rehashing on that successful login.

use crate::{Error, Result};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::num::NonZeroU32;

/// The argon2id cost new hashes use. Keycloak's default; a benchmark compares
/// login throughput against the raw cost of exactly these parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Cost {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    pub hash_len: usize,
}

/// Keycloak 25+'s default argon2id parameters.
pub const DEFAULT_COST: Argon2Cost = Argon2Cost {
    memory_kib: 7168,
    iterations: 5,
    parallelism: 1,
    hash_len: 32,
};

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CredentialData {
    #[serde(default)]
    hash_iterations: u32,
    algorithm: String,
    #[serde(default)]
    additional_parameters: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SecretData {
    value: String,
    #[serde(default)]
    salt: String,
    #[serde(default)]
    additional_parameters: BTreeMap<String, Vec<String>>,
}

/// The outcome of a verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// The password matched.
    pub ok: bool,
    /// The stored hash is not argon2id at the current cost: store a new one.
    pub needs_rehash: bool,
}

/// Hashes `password` with argon2id at `cost` and a fresh salt, returning
/// `(credential_data, secret_data)` JSON strings.
pub fn hash(password: &str, cost: Argon2Cost) -> Result<(String, String)> {
    let salt = crate::id::bytes::<16>();
    let out = argon2_raw(password.as_bytes(), &salt, cost, "id")?;
    let mut params = BTreeMap::new();
    params.insert("hashLength".to_owned(), vec![cost.hash_len.to_string()]);
    params.insert("memory".to_owned(), vec![cost.memory_kib.to_string()]);
    params.insert("type".to_owned(), vec!["id".to_owned()]);
    params.insert("version".to_owned(), vec!["1.3".to_owned()]);
    params.insert("parallelism".to_owned(), vec![cost.parallelism.to_string()]);
    let cd = CredentialData {
        hash_iterations: cost.iterations,
        algorithm: "argon2".into(),
        additional_parameters: params,
    };
    let sd = SecretData {
        value: STANDARD.encode(out),
        salt: STANDARD.encode(salt),
        additional_parameters: Default::default(),
    };
    Ok((to_json(&cd)?, to_json(&sd)?))
}

fn to_json<T: Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Error::Internal(e.to_string()))
}

/// Most PBKDF2 iterations accepted from an imported credential.
pub const MAX_PBKDF2_ITERATIONS: u32 = 5_000_000;

/// Verifies `password` against a stored credential of any supported algorithm
/// (argon2 id/i/d, pbkdf2-sha256, pbkdf2-sha512, pbkdf2 = sha1).
pub fn verify(
    password: &str,
    credential_data: &str,
    secret_data: &str,
    current: Argon2Cost,
) -> Result<Verified> {
    let cd: CredentialData =
        serde_json::from_str(credential_data).map_err(|e| Error::Credential(e.to_string()))?;
    let sd: SecretData =
        serde_json::from_str(secret_data).map_err(|e| Error::Credential(e.to_string()))?;
    let expected = STANDARD
        .decode(sd.value.trim())
        .map_err(|e| Error::Credential(format!("value: {e}")))?;
    let salt = STANDARD
        .decode(sd.salt.trim())
        .map_err(|e| Error::Credential(format!("salt: {e}")))?;
    if expected.is_empty() {
        return Err(Error::Credential("empty hash".into()));
    }
    match cd.algorithm.as_str() {
        "argon2" => {
            let p = |k: &str, d: &str| -> String {
                cd.additional_parameters
                    .get(k)
                    .and_then(|v| v.first().cloned())
                    .unwrap_or_else(|| d.to_owned())
            };
            let num = |k: &str, d: &str| -> Result<u32> {
                p(k, d)
                    .parse()
                    .map_err(|_| Error::Credential(format!("argon2 {k}")))
            };
            if p("version", "1.3") != "1.3" {
                return Err(Error::Credential("argon2 version".into()));
            }
            let variant = p("type", "id");
            let cost = Argon2Cost {
                memory_kib: num("memory", "7168")?,
                iterations: cd.hash_iterations.max(1),
                parallelism: num("parallelism", "1")?,
                hash_len: expected.len(),
            };
            let got = argon2_raw(password.as_bytes(), &salt, cost, &variant)?;
            let ok = subtle::ConstantTimeEq::ct_eq(got.as_slice(), expected.as_slice()).into();
            Ok(Verified {
                ok,
                needs_rehash: variant != "id"
                    || cost.memory_kib != current.memory_kib
                    || cost.iterations != current.iterations
                    || cost.parallelism != current.parallelism,
            })
        }
        "pbkdf2-sha256" | "pbkdf2-sha512" | "pbkdf2" => {
            let alg = match cd.algorithm.as_str() {
                "pbkdf2-sha256" => aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA256,
                "pbkdf2-sha512" => aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA512,
                _ => aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA1,
            };
            // Keycloak's defaults are 27 500 (sha256) and 210 000 (sha512):
            // refuse counts that would make every login attempt a DoS.
            let iterations = NonZeroU32::new(cd.hash_iterations)
                .filter(|n| n.get() <= MAX_PBKDF2_ITERATIONS)
                .ok_or_else(|| Error::Credential("pbkdf2 iterations out of range".into()))?;
            let ok =
                aws_lc_rs::pbkdf2::verify(alg, iterations, &salt, password.as_bytes(), &expected)
                    .is_ok();
            Ok(Verified {
                ok,
                needs_rehash: true,
            })
        }
        other => Err(Error::Credential(format!("unsupported algorithm {other}"))),
    }
}

fn argon2_raw(password: &[u8], salt: &[u8], cost: Argon2Cost, variant: &str) -> Result<Vec<u8>> {
    let alg = match variant {
        "id" => argon2::Algorithm::Argon2id,
        "i" => argon2::Algorithm::Argon2i,
        "d" => argon2::Algorithm::Argon2d,
        other => return Err(Error::Credential(format!("argon2 type {other}"))),
    };
    // Refuse absurd stored parameters instead of letting one imported row
    // allocate gigabytes on every login attempt.
    if cost.memory_kib > 1 << 20 || cost.iterations > 100 || cost.hash_len > 256 {
        return Err(Error::Credential("argon2 parameters out of range".into()));
    }
    let params = argon2::Params::new(
        cost.memory_kib,
        cost.iterations,
        cost.parallelism,
        Some(cost.hash_len),
    )
    .map_err(|e| Error::Credential(e.to_string()))?;
    let blocks = params.block_count();
    let a = argon2::Argon2::new(alg, argon2::Version::V0x13, params);
    let mut out = vec![0u8; cost.hash_len];
    with_memory(blocks, |memory| {
        a.hash_password_into_with_memory(password, salt, &mut out, memory)
    })
    .map_err(|e| Error::Credential(e.to_string()))?;
    Ok(out)
}

/// argon2's working memory (7 MiB at the default cost), kept for reuse:
/// allocating it per hash meant an mmap and ~1800 page faults per login,
/// about a third of a hash's own time. At most one buffer per core is
/// kept (hashing runs one job per core); argon2 writes every block before
/// reading it, so a reused buffer needs no clearing.
static MEMORY: std::sync::Mutex<Vec<Vec<argon2::Block>>> = std::sync::Mutex::new(Vec::new());

fn with_memory<R>(blocks: usize, f: impl FnOnce(&mut [argon2::Block]) -> R) -> R {
    let mut buf = MEMORY
        .lock()
        .ok()
        .and_then(|mut pool| pool.pop())
        .unwrap_or_default();
    buf.resize(blocks, argon2::Block::default());
    let r = f(&mut buf);
    let keep = std::thread::available_parallelism().map_or(1, |n| n.get());
    if let Ok(mut pool) = MEMORY.lock()
        && pool.len() < keep
    {
        pool.push(buf);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHEAP: Argon2Cost = Argon2Cost {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
        hash_len: 32,
    };

    #[test]
    fn argon2_roundtrip_and_wrong_password() {
        let (cd, sd) = hash("s3cret!", CHEAP).expect("hash");
        assert!(cd.contains("\"algorithm\":\"argon2\""));
        let v = verify("s3cret!", &cd, &sd, CHEAP).expect("verify");
        assert!(v.ok && !v.needs_rehash);
        assert!(!verify("s3cret", &cd, &sd, CHEAP).expect("verify").ok);
        // A cost change asks for a rehash on the next good login.
        assert!(
            verify("s3cret!", &cd, &sd, DEFAULT_COST)
                .expect("v")
                .needs_rehash
        );
    }

    #[test]
    fn keycloak_pbkdf2_sha256_verifies_and_asks_for_rehash() {
        // Computed the way Keycloak does: PBKDF2-HMAC-SHA256, 27500 rounds, 64-byte key.
        let salt = b"0123456789abcdef";
        let mut out = [0u8; 64];
        aws_lc_rs::pbkdf2::derive(
            aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA256,
            NonZeroU32::new(27500).expect("nz"),
            salt,
            b"password",
            &mut out,
        );
        let cd =
            r#"{"hashIterations":27500,"algorithm":"pbkdf2-sha256","additionalParameters":{}}"#;
        let sd = format!(
            r#"{{"value":"{}","salt":"{}","additionalParameters":{{}}}}"#,
            STANDARD.encode(out),
            STANDARD.encode(salt)
        );
        let v = verify("password", cd, &sd, DEFAULT_COST).expect("verify");
        assert!(v.ok && v.needs_rehash);
        assert!(
            !verify("Password", cd, &sd, DEFAULT_COST)
                .expect("verify")
                .ok
        );
    }

    #[test]
    fn malformed_credentials_are_errors_not_panics() {
        for (cd, sd) in [
            ("", ""),
            ("{}", "{}"),
            (r#"{"algorithm":"md5"}"#, r#"{"value":"AAAA","salt":""}"#),
            (r#"{"algorithm":"argon2"}"#, r#"{"value":"!!","salt":""}"#),
            (
                r#"{"algorithm":"argon2","hashIterations":5,"additionalParameters":{"memory":["99999999999"]}}"#,
                r#"{"value":"AAAA","salt":"AAAA"}"#,
            ),
            (
                r#"{"algorithm":"pbkdf2-sha256","hashIterations":0}"#,
                r#"{"value":"AAAA","salt":"AAAA"}"#,
            ),
        ] {
            assert!(verify("x", cd, sd, DEFAULT_COST).is_err(), "{cd}");
        }
    }
    #[test]
    fn absurd_imported_costs_are_refused_not_computed() {
        let salt = STANDARD.encode(b"0123456789abcdef");
        let sd = format!(
            "{{\"value\":\"{}\",\"salt\":\"{salt}\"}}",
            STANDARD.encode([1u8; 32])
        );
        let cd =
            |alg: &str, it: u64| format!("{{\"algorithm\":\"{alg}\",\"hashIterations\":{it}}}");
        let started = std::time::Instant::now();
        assert!(verify("pw", &cd("pbkdf2-sha256", 4_000_000_000), &sd, CHEAP).is_err());
        assert!(verify("pw", &cd("argon2", 1_000_000), &sd, CHEAP).is_err());
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            /// Stored credential text of any shape is refused or verified,
            /// never a panic.
            #[test]
            fn arbitrary_stored_credentials_never_panic(cd in ".{0,120}", sd in ".{0,120}") {
                let _ = verify("pw", &cd, &sd, CHEAP);
            }

            /// Keycloak-shaped credentials with any algorithm name and
            /// parameters: an answer, never a panic.
            #[test]
            fn keycloak_shaped_credentials_never_panic(
                alg in prop_oneof!["argon2", "pbkdf2", "pbkdf2-sha256", "pbkdf2-sha512", "[a-z0-9-]{0,12}"],
                it in 0u32..3,
                ty in prop_oneof!["id", "i", "d", "x"],
                mem in prop_oneof!["0", "8", "64", "-1", "abc", "99999999999"],
                value in proptest::collection::vec(any::<u8>(), 0..40),
            ) {
                let cd = serde_json::json!({"algorithm": alg, "hashIterations": it,
                    "additionalParameters": {"type": [ty], "memory": [mem], "parallelism": ["1"]}});
                let sd = serde_json::json!({"value": STANDARD.encode(&value), "salt": STANDARD.encode(b"salt-salt-salt-s")});
                let _ = verify("pw", &cd.to_string(), &sd.to_string(), CHEAP);
            }
        }
    }
}
