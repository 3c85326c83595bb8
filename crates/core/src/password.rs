//! Password credentials in Keycloak's stored shape (`credentialData` +
//! `secretData`), so that a Keycloak realm export's hashes verify here
//! unchanged and our own hashes export back. New hashes follow a
//! [`Scheme`]: argon2id at Keycloak's default cost (5 iterations, 7 MiB,
//! 1 lane), or PBKDF2 where a realm's `hashAlgorithm` policy asks for it;
//! anything else that verifies is flagged for rehashing on that successful
//! login, as Keycloak's `policyCheck` does.

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

/// How new passwords are hashed, and what a stored hash must match not to
/// be rehashed at its next successful login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// argon2id at this cost (the server's; Keycloak's default algorithm).
    Argon2(Argon2Cost),
    /// PBKDF2 (Keycloak's `pbkdf2`, `pbkdf2-sha256`, `pbkdf2-sha512`), for
    /// realms whose policy names it, FIPS deployments among them.
    Pbkdf2 { hash: Pbkdf2Hash, iterations: u32 },
}

impl From<Argon2Cost> for Scheme {
    fn from(c: Argon2Cost) -> Self {
        Scheme::Argon2(c)
    }
}

/// PBKDF2's HMAC, with Keycloak's provider id, default iterations and
/// derived key size for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pbkdf2Hash {
    Sha1,
    Sha256,
    Sha512,
}

impl Pbkdf2Hash {
    /// By Keycloak's provider id (`hashAlgorithm` and `credentialData`).
    pub fn from_id(id: &str) -> Option<Self> {
        match id {
            "pbkdf2" => Some(Pbkdf2Hash::Sha1),
            "pbkdf2-sha256" => Some(Pbkdf2Hash::Sha256),
            "pbkdf2-sha512" => Some(Pbkdf2Hash::Sha512),
            _ => None,
        }
    }

    fn id(self) -> &'static str {
        match self {
            Pbkdf2Hash::Sha1 => "pbkdf2",
            Pbkdf2Hash::Sha256 => "pbkdf2-sha256",
            Pbkdf2Hash::Sha512 => "pbkdf2-sha512",
        }
    }

    /// Keycloak's current defaults (OWASP's figures), used where the
    /// policy sets no `hashIterations`.
    pub fn default_iterations(self) -> u32 {
        match self {
            Pbkdf2Hash::Sha1 => 1_300_000,
            Pbkdf2Hash::Sha256 => 600_000,
            Pbkdf2Hash::Sha512 => 210_000,
        }
    }

    /// Bytes derived: Keycloak's 256 bits for SHA-256, 512 for the others.
    fn key_len(self) -> usize {
        match self {
            Pbkdf2Hash::Sha256 => 32,
            Pbkdf2Hash::Sha1 | Pbkdf2Hash::Sha512 => 64,
        }
    }

    fn algorithm(self) -> aws_lc_rs::pbkdf2::Algorithm {
        match self {
            Pbkdf2Hash::Sha1 => aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA1,
            Pbkdf2Hash::Sha256 => aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA256,
            Pbkdf2Hash::Sha512 => aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA512,
        }
    }
}

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

/// Hashes `password` under `scheme` with a fresh salt, returning
/// `(credential_data, secret_data)` JSON strings in Keycloak's shape.
pub fn hash(password: &str, scheme: impl Into<Scheme>) -> Result<(String, String)> {
    let cost = match scheme.into() {
        Scheme::Argon2(cost) => cost,
        Scheme::Pbkdf2 { hash, iterations } => return hash_pbkdf2(password, hash, iterations),
    };
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
    stored(&cd, &out, &salt)
}

fn hash_pbkdf2(password: &str, hash: Pbkdf2Hash, iterations: u32) -> Result<(String, String)> {
    let salt = crate::id::bytes::<16>();
    let mut out = vec![0u8; hash.key_len()];
    aws_lc_rs::pbkdf2::derive(
        hash.algorithm(),
        pbkdf2_rounds(iterations)?,
        &salt,
        password.as_bytes(),
        &mut out,
    );
    let cd = CredentialData {
        hash_iterations: iterations,
        algorithm: hash.id().into(),
        additional_parameters: Default::default(),
    };
    stored(&cd, &out, &salt)
}

/// `(credential_data, secret_data)` JSON for a hash `out` of `salt`.
fn stored(cd: &CredentialData, out: &[u8], salt: &[u8]) -> Result<(String, String)> {
    let sd = SecretData {
        value: STANDARD.encode(out),
        salt: STANDARD.encode(salt),
        additional_parameters: Default::default(),
    };
    Ok((to_json(cd)?, to_json(&sd)?))
}

/// PBKDF2 iterations as run: Keycloak's defaults go from 27 500 (older
/// sha256) to 1 300 000 (sha1); a count past the cap, stored or asked for
/// by a policy, is refused rather than made every login attempt's cost.
fn pbkdf2_rounds(iterations: u32) -> Result<NonZeroU32> {
    NonZeroU32::new(iterations)
        .filter(|n| n.get() <= MAX_PBKDF2_ITERATIONS)
        .ok_or_else(|| Error::Credential("pbkdf2 iterations out of range".into()))
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
    current: impl Into<Scheme>,
) -> Result<Verified> {
    let current = current.into();
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
            let kept = matches!(current, Scheme::Argon2(c) if variant == "id"
                && cost.memory_kib == c.memory_kib
                && cost.iterations == c.iterations
                && cost.parallelism == c.parallelism);
            Ok(Verified {
                ok,
                needs_rehash: !kept,
            })
        }
        id => {
            let hash = Pbkdf2Hash::from_id(id)
                .ok_or_else(|| Error::Credential(format!("unsupported algorithm {id}")))?;
            let iterations = pbkdf2_rounds(cd.hash_iterations)?;
            let ok = aws_lc_rs::pbkdf2::verify(
                hash.algorithm(),
                iterations,
                &salt,
                password.as_bytes(),
                &expected,
            )
            .is_ok();
            // Kept only under the same scheme, as Keycloak's policyCheck:
            // same provider, iterations and derived key size.
            let kept = current
                == Scheme::Pbkdf2 {
                    hash,
                    iterations: iterations.get(),
                }
                && expected.len() == hash.key_len();
            Ok(Verified {
                ok,
                needs_rehash: !kept,
            })
        }
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

thread_local! {
    /// argon2's working memory (7 MiB at the default cost), kept by the
    /// thread that hashes for its next hash: allocating it per hash meant
    /// an mmap and ~1800 page faults per login, about a third of a hash's
    /// own time. Per thread, so it is allocated and freed by one thread
    /// (an allocator returns a block freed elsewhere only when its owner
    /// next allocates, and an idle hashing thread never does). argon2
    /// writes every block before reading it, so reuse needs no clearing.
    static MEMORY: std::cell::RefCell<Vec<argon2::Block>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn with_memory<R>(blocks: usize, f: impl FnOnce(&mut [argon2::Block]) -> R) -> R {
    MEMORY.with(|m| match m.try_borrow_mut() {
        Ok(mut buf) => {
            buf.resize(blocks, argon2::Block::default());
            f(&mut buf)
        }
        // Only a hash run from inside `f` could get here; it gets its own.
        Err(_) => f(&mut vec![argon2::Block::default(); blocks]),
    })
}

/// The argon2 working memory this thread keeps, in bytes: how the hashing
/// threads' tests see that idle memory is given back.
pub fn memory_held() -> usize {
    MEMORY.with(|m| {
        m.try_borrow()
            .map_or(0, |b| b.capacity() * std::mem::size_of::<argon2::Block>())
    })
}

/// Gives this thread's argon2 working memory back: an idle hashing thread
/// should not hold 7 MiB for a login that may not come (the next hash on
/// this thread allocates it again). Then runs the hook the binary set
/// with [`on_memory_released`], which hands it on to the OS.
pub fn release_memory() {
    let held = MEMORY.with(|m| match m.try_borrow_mut() {
        Ok(mut buf) => std::mem::take(&mut *buf).capacity(),
        Err(_) => 0,
    });
    if held > 0
        && let Some(hook) = RELEASED.get()
    {
        hook();
    }
}

static RELEASED: std::sync::OnceLock<fn()> = std::sync::OnceLock::new();

/// Sets what runs on a thread that has just released its argon2 memory:
/// the binary, which picks the allocator, passes the call that returns
/// freed memory to the OS (an allocator may otherwise keep it while the
/// server idles). The first call wins.
pub fn on_memory_released(hook: fn()) {
    let _ = RELEASED.set(hook);
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
    fn pbkdf2_schemes_hash_in_keycloaks_shape_and_keep_under_the_same_scheme() {
        for (hash, id, len) in [
            (Pbkdf2Hash::Sha1, "pbkdf2", 64),
            (Pbkdf2Hash::Sha256, "pbkdf2-sha256", 32),
            (Pbkdf2Hash::Sha512, "pbkdf2-sha512", 64),
        ] {
            let scheme = Scheme::Pbkdf2 {
                hash,
                iterations: 1000,
            };
            let (cd, sd) = super::hash("pw", scheme).expect("hash");
            let c: serde_json::Value = serde_json::from_str(&cd).expect("cd");
            assert_eq!(
                (c["algorithm"].as_str(), c["hashIterations"].as_u64()),
                (Some(id), Some(1000))
            );
            let v: serde_json::Value = serde_json::from_str(&sd).expect("sd");
            let value = STANDARD
                .decode(v["value"].as_str().expect("value"))
                .expect("b64");
            assert_eq!(value.len(), len, "{id}");
            // The same derivation, done here from the stored salt.
            let salt = STANDARD
                .decode(v["salt"].as_str().expect("salt"))
                .expect("b64");
            let mut again = vec![0u8; len];
            aws_lc_rs::pbkdf2::derive(
                hash.algorithm(),
                NonZeroU32::new(1000).expect("nz"),
                &salt,
                b"pw",
                &mut again,
            );
            assert_eq!(again, value);
            let kept = verify("pw", &cd, &sd, scheme).expect("verify");
            assert!(kept.ok && !kept.needs_rehash, "{id}");
            assert!(!verify("px", &cd, &sd, scheme).expect("verify").ok);
            let more = Scheme::Pbkdf2 {
                hash,
                iterations: 2000,
            };
            assert!(verify("pw", &cd, &sd, more).expect("v").needs_rehash);
            assert!(verify("pw", &cd, &sd, CHEAP).expect("v").needs_rehash);
        }
        // An argon2 hash under a PBKDF2 policy is rehashed too.
        let (cd, sd) = hash("pw", CHEAP).expect("hash");
        let pbkdf2 = Scheme::Pbkdf2 {
            hash: Pbkdf2Hash::Sha512,
            iterations: 1000,
        };
        assert!(verify("pw", &cd, &sd, pbkdf2).expect("v").needs_rehash);
        // Iterations beyond the cap are refused, not run.
        let huge = Scheme::Pbkdf2 {
            hash: Pbkdf2Hash::Sha256,
            iterations: MAX_PBKDF2_ITERATIONS + 1,
        };
        assert!(hash("pw", huge).is_err());
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
