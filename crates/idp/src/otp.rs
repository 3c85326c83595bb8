//! One-time passwords as Keycloak keeps them: a user's `otp` credential
//! (`credentialData` `{"subType":"totp"|"hotp","digits","period","counter",
//! "algorithm":"HmacSHA1"|"HmacSHA256"|"HmacSHA512"}`, `secretData`
//! `{"value": secret}`, the HMAC key being the secret's UTF-8 bytes) and
//! the realm's OTP policy (`otpPolicy*` fields of the realm
//! representation). Codes are RFC 4226 / RFC 6238 with the policy's
//! look-around window. A time step once used is refused afterwards
//! (Keycloak's default `otpPolicyCodeReusable: false`), so a code read
//! over someone's shoulder cannot be replayed.
//!
//! Imported Keycloak users keep their authenticator apps: the credential
//! travels as it is, and the login asks for a code whenever the user has
//! one (Keycloak's browser and direct-grant flows ask "if configured").

use crate::error::OAuthError;
use crate::state::Idp;
use gatehouse_core::model::{Credential, Realm, User};
use gatehouse_store::CodeRecord;
use serde_json::{Value, json};

/// Keycloak's credential type.
pub const KIND: &str = "otp";

/// The realm's OTP policy, Keycloak's defaults where unset.
#[derive(Debug, Clone)]
pub struct Policy {
    pub kind: String,
    pub algorithm: String,
    pub digits: u32,
    pub period: u64,
    pub look_around: u64,
    pub code_reusable: bool,
}

impl Policy {
    /// Reads `otpPolicy*` from the realm representation's fields.
    pub fn of(realm: &Realm) -> Policy {
        let x = &realm.extra;
        let int = |k: &str, d: u64| x.get(k).and_then(Value::as_u64).unwrap_or(d);
        Policy {
            kind: x
                .get("otpPolicyType")
                .and_then(Value::as_str)
                .unwrap_or("totp")
                .to_owned(),
            algorithm: x
                .get("otpPolicyAlgorithm")
                .and_then(Value::as_str)
                .unwrap_or("HmacSHA1")
                .to_owned(),
            digits: u32::try_from(int("otpPolicyDigits", 6)).unwrap_or(6),
            period: int("otpPolicyPeriod", 30).max(1),
            look_around: int("otpPolicyLookAheadWindow", 1).min(10),
            code_reusable: x
                .get("otpPolicyCodeReusable")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        }
    }

    /// The realm representation's `otpPolicy*` fields for this policy,
    /// as Keycloak shows them (`otpPolicyInitialCounter` is HOTP's start,
    /// always 0 here).
    pub fn fields(&self) -> [(&'static str, Value); 7] {
        [
            ("otpPolicyType", json!(self.kind)),
            ("otpPolicyAlgorithm", json!(self.algorithm)),
            ("otpPolicyInitialCounter", json!(0)),
            ("otpPolicyDigits", json!(self.digits)),
            ("otpPolicyLookAheadWindow", json!(self.look_around)),
            ("otpPolicyPeriod", json!(self.period)),
            ("otpPolicyCodeReusable", json!(self.code_reusable)),
        ]
    }
}

/// RFC 4226 HOTP value of `counter`: HMAC, dynamic truncation, `digits`
/// decimal digits. None for an unknown algorithm or digit count.
pub fn code(secret: &[u8], algorithm: &str, digits: u32, counter: u64) -> Option<String> {
    use aws_lc_rs::hmac;
    let alg = match algorithm {
        "HmacSHA1" => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        "HmacSHA256" => hmac::HMAC_SHA256,
        "HmacSHA512" => hmac::HMAC_SHA512,
        _ => return None,
    };
    if !(6..=9).contains(&digits) {
        return None;
    }
    let tag = hmac::sign(&hmac::Key::new(alg, secret), &counter.to_be_bytes());
    let mac = tag.as_ref();
    let offset = usize::from(mac[mac.len() - 1] & 0x0f);
    let bin = u32::from_be_bytes([
        mac[offset] & 0x7f,
        mac[offset + 1],
        mac[offset + 2],
        mac[offset + 3],
    ]);
    let value = bin % 10u32.pow(digits);
    Some(format!("{value:0width$}", width = digits as usize))
}

/// What a stored credential says about itself.
struct Params {
    sub_type: String,
    algorithm: String,
    digits: u32,
    period: u64,
    counter: u64,
    secret: String,
}

fn params(c: &Credential, policy: &Policy) -> Option<Params> {
    let data: Value = serde_json::from_str(&c.credential_data).ok()?;
    let secret: Value = serde_json::from_str(&c.secret_data).ok()?;
    Some(Params {
        sub_type: data["subType"].as_str().unwrap_or("totp").to_owned(),
        algorithm: data["algorithm"]
            .as_str()
            .unwrap_or(&policy.algorithm)
            .to_owned(),
        digits: data["digits"]
            .as_u64()
            .and_then(|d| u32::try_from(d).ok())
            .unwrap_or(policy.digits),
        period: data["period"].as_u64().unwrap_or(policy.period).max(1),
        counter: data["counter"].as_u64().unwrap_or(0),
        secret: secret["value"].as_str()?.to_owned(),
    })
}

/// The user's authenticator apps, in the order of their credential list:
/// the first is the default one, which the password grant checks and the
/// login page preselects (Keycloak's `getDefaultCredential`).
pub async fn credentials(idp: &Idp, user: &User) -> Result<Vec<Credential>, OAuthError> {
    let mut all = idp.store.credentials(&user.id).await?;
    all.retain(|c| c.kind == KIND);
    Ok(all)
}

/// The user's default OTP credential, if they have one.
pub async fn credential(idp: &Idp, user: &User) -> Result<Option<Credential>, OAuthError> {
    Ok(credentials(idp, user).await?.into_iter().next())
}

/// Checks `given` against the user's credential at time `now`: true only
/// for a right code not used before (unless the realm allows reuse).
/// HOTP credentials move their counter past the code used.
pub async fn verify(
    idp: &Idp,
    realm: &Realm,
    cred: &Credential,
    given: &str,
    now: i64,
) -> Result<bool, OAuthError> {
    let policy = Policy::of(realm);
    let Some(p) = params(cred, &policy) else {
        return Ok(false);
    };
    let given = given.trim();
    if given.len() != p.digits as usize || !given.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(false);
    }
    let matches = |counter: u64| {
        code(p.secret.as_bytes(), &p.algorithm, p.digits, counter).is_some_and(|c| {
            bool::from(subtle::ConstantTimeEq::ct_eq(
                c.as_bytes(),
                given.as_bytes(),
            ))
        })
    };
    if p.sub_type == "hotp" {
        let Some(hit) = (p.counter..=p.counter + policy.look_around).find(|c| matches(*c)) else {
            return Ok(false);
        };
        let mut data: Value =
            serde_json::from_str(&cred.credential_data).map_err(OAuthError::internal)?;
        data["counter"] = json!(hit + 1);
        let mut next = cred.clone();
        next.credential_data = data.to_string();
        idp.store.update_credential(&next, &[]).await?;
        return Ok(true);
    }
    let step = u64::try_from(now).unwrap_or(0) / p.period;
    let window = step.saturating_sub(policy.look_around)..=step + policy.look_around;
    let Some(hit) = window.into_iter().find(|s| matches(*s)) else {
        return Ok(false);
    };
    if policy.code_reusable {
        return Ok(true);
    }
    // The step is spent: remembered until it can no longer be valid.
    let spent = CodeRecord {
        code: format!("otp-step:{}:{hit}", cred.id),
        realm_id: realm.id.clone(),
        data: String::new(),
        expires: i64::try_from((hit + policy.look_around + 1) * p.period).unwrap_or(i64::MAX),
    };
    match idp.store.put_code(&spent).await {
        Ok(()) => Ok(true),
        Err(gatehouse_store::Error::Conflict(_)) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// A new secret as Keycloak makes them: 20 random letters and digits.
pub fn new_secret() -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    gatehouse_core::id::bytes::<20>()
        .iter()
        // 256 = 4 * 62 + 8: the bias of a plain modulo is under 4 %, and
        // the secret keeps over 110 bits of entropy either way.
        .map(|b| CHARS[usize::from(*b) % CHARS.len()] as char)
        .collect()
}

/// RFC 4648 base32 without padding: how authenticator apps take a key.
pub fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buf, mut bits) = (0u32, 0u32);
    for b in bytes {
        buf = (buf << 8) | u32::from(*b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buf >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buf << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// The `otpauth://` URI an authenticator app reads (Google's Key URI
/// format, which every app follows).
pub fn key_uri(realm: &Realm, user: &User, secret: &str, policy: &Policy) -> String {
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
    let issuer = realm.display_name.as_deref().unwrap_or(&realm.name);
    let alg = match policy.algorithm.as_str() {
        "HmacSHA256" => "SHA256",
        "HmacSHA512" => "SHA512",
        _ => "SHA1",
    };
    format!(
        "otpauth://totp/{i}:{u}?secret={s}&digits={d}&algorithm={alg}&issuer={i}&period={p}",
        i = utf8_percent_encode(issuer, NON_ALPHANUMERIC),
        u = utf8_percent_encode(&user.username, NON_ALPHANUMERIC),
        s = base32(secret.as_bytes()),
        d = policy.digits,
        p = policy.period,
    )
}

/// A new TOTP credential for `user` under the realm's policy.
pub fn new_credential(
    user: &User,
    secret: &str,
    policy: &Policy,
    label: Option<&str>,
) -> Credential {
    Credential {
        id: gatehouse_core::id::uuid(),
        user_id: user.id.clone(),
        kind: KIND.into(),
        created_date: gatehouse_core::time::now_millis(),
        credential_data: json!({"subType": "totp", "digits": policy.digits, "counter": 0,
            "period": policy.period, "algorithm": policy.algorithm})
        .to_string(),
        secret_data: json!({ "value": secret }).to_string(),
        user_label: label.filter(|l| !l.trim().is_empty()).map(str::to_owned),
        priority: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B (8 digits, the RFC's seeds per algorithm).
    #[test]
    fn rfc_6238_test_vectors() {
        let sha1 = b"12345678901234567890";
        let sha256 = b"12345678901234567890123456789012";
        let sha512 = b"1234567890123456789012345678901234567890123456789012345678901234";
        for (time, v1, v256, v512) in [
            (59u64, "94287082", "46119246", "90693936"),
            (1111111109, "07081804", "68084774", "25091201"),
            (1234567890, "89005924", "91819424", "93441116"),
            (20000000000, "65353130", "77737706", "47863826"),
        ] {
            let step = time / 30;
            assert_eq!(code(sha1, "HmacSHA1", 8, step).as_deref(), Some(v1));
            assert_eq!(code(sha256, "HmacSHA256", 8, step).as_deref(), Some(v256));
            assert_eq!(code(sha512, "HmacSHA512", 8, step).as_deref(), Some(v512));
        }
        // RFC 4226 Appendix D, 6 digits.
        assert_eq!(code(sha1, "HmacSHA1", 6, 0).as_deref(), Some("755224"));
        assert_eq!(code(sha1, "HmacSHA1", 6, 9).as_deref(), Some("520489"));
        assert_eq!(code(sha1, "HmacMD5", 6, 0), None);
    }

    #[test]
    fn base32_is_rfc_4648() {
        for (raw, enc) in [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ] {
            assert_eq!(base32(raw.as_bytes()), enc);
        }
        let s = new_secret();
        assert_eq!(s.len(), 20);
        assert!(s.bytes().all(|b| b.is_ascii_alphanumeric()));
    }
}
