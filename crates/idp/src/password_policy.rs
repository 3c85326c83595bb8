//! Keycloak's password policy (the realm's `passwordPolicy`, e.g.
//! `length(12) and digits(1) and notUsername(undefined)`), applied
//! wherever a password is chosen: the admin API's user creation and
//! reset-password, the `UPDATE_PASSWORD` page and registration. An
//! imported hash is taken as it is, as Keycloak does.
//!
//! Policies: `length`, `maxLength`, `digits`, `lowerCase`, `upperCase`,
//! `specialChars`, `notUsername`, `notEmail`, `regexPattern` and
//! `forceExpiredPasswordChange` (days; an older password must be changed
//! at the next browser login) and `passwordHistory` (the last N passwords,
//! the current one among them, may not be chosen again; the replaced ones
//! are kept as Keycloak's `password-history` credentials, which a realm
//! export carries). `hashAlgorithm` (`argon2`, `pbkdf2-sha256`,
//! `pbkdf2-sha512`, `pbkdf2`) and `hashIterations` choose how new
//! passwords are hashed ([`scheme`]); a stored hash of another scheme is
//! rehashed at its next successful login, as Keycloak does. Like
//! Keycloak, argon2 keeps its own cost whatever `hashIterations` says.
//! An unknown algorithm, or any other policy name, makes the whole policy
//! refuse every password, rather than let through one the realm meant to
//! stop.

use gatehouse_core::password::{Argon2Cost, Pbkdf2Hash, Scheme};

use gatehouse_core::model::Realm;

/// Why a password was refused: Keycloak's message key and its English text.
#[derive(Debug, PartialEq, Eq)]
pub struct Violation {
    pub key: &'static str,
    pub message: String,
}

fn policy(realm: &Realm) -> Vec<(String, String)> {
    let Some(p) = realm.extra.get("passwordPolicy").and_then(|v| v.as_str()) else {
        return Vec::new();
    };
    p.split(" and ")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|part| match part.split_once('(') {
            Some((name, rest)) => (
                name.trim().to_owned(),
                rest.strip_suffix(')').unwrap_or(rest).to_owned(),
            ),
            None => (part.to_owned(), String::new()),
        })
        .collect()
}

/// A count argument, with Keycloak's default where it has none.
fn count(arg: &str, default: usize) -> usize {
    arg.trim().parse().unwrap_or(default)
}

/// Checks `password` for the user `username` (with `email`) against the
/// realm's policy: the first rule it breaks, in the policy's order.
pub fn check(
    realm: &Realm,
    password: &str,
    username: &str,
    email: Option<&str>,
) -> Result<(), Violation> {
    let chars = || password.chars();
    for (name, arg) in policy(realm) {
        let fail = |key: &'static str, message: String| Err(Violation { key, message });
        match name.as_str() {
            "length" => {
                let n = count(&arg, 8);
                if chars().count() < n {
                    return fail(
                        "invalidPasswordMinLengthMessage",
                        format!("Invalid password: minimum length {n}."),
                    );
                }
            }
            "maxLength" => {
                let n = count(&arg, 64);
                if chars().count() > n {
                    return fail(
                        "invalidPasswordMaxLengthMessage",
                        format!("Invalid password: maximum length {n}."),
                    );
                }
            }
            "digits" => {
                let n = count(&arg, 1);
                if chars().filter(char::is_ascii_digit).count() < n {
                    return fail(
                        "invalidPasswordMinDigitsMessage",
                        format!("Invalid password: must contain at least {n} numerical digits."),
                    );
                }
            }
            "lowerCase" => {
                let n = count(&arg, 1);
                if chars().filter(|c| c.is_lowercase()).count() < n {
                    return fail(
                        "invalidPasswordMinLowerCaseCharsMessage",
                        format!(
                            "Invalid password: must contain at least {n} lower case characters."
                        ),
                    );
                }
            }
            "upperCase" => {
                let n = count(&arg, 1);
                if chars().filter(|c| c.is_uppercase()).count() < n {
                    return fail(
                        "invalidPasswordMinUpperCaseCharsMessage",
                        format!(
                            "Invalid password: must contain at least {n} upper case characters."
                        ),
                    );
                }
            }
            "specialChars" => {
                let n = count(&arg, 1);
                if chars().filter(|c| !c.is_alphanumeric()).count() < n {
                    return fail(
                        "invalidPasswordMinSpecialCharsMessage",
                        format!("Invalid password: must contain at least {n} special characters."),
                    );
                }
            }
            "notUsername" => {
                if password.eq_ignore_ascii_case(username) {
                    return fail(
                        "invalidPasswordNotUsernameMessage",
                        "Invalid password: must not be equal to the username.".into(),
                    );
                }
            }
            "notEmail" => {
                if email.is_some_and(|e| password.eq_ignore_ascii_case(e)) {
                    return fail(
                        "invalidPasswordNotEmailMessage",
                        "Invalid password: must not be equal to the email.".into(),
                    );
                }
            }
            "regexPattern" => {
                // Keycloak matches the whole password against the pattern.
                let whole = format!("^(?:{arg})$");
                match regex::Regex::new(&whole) {
                    Ok(re) if re.is_match(password) => {}
                    _ => {
                        return fail(
                            "invalidPasswordRegexPatternMessage",
                            "Invalid password: fails to match regex pattern(s).".into(),
                        );
                    }
                }
            }
            "hashAlgorithm"
                if arg.trim() != "argon2" && Pbkdf2Hash::from_id(arg.trim()).is_none() =>
            {
                return fail(
                    "invalidPasswordGenericMessage",
                    "Invalid config for hashAlgorithm: password hash provider not found".into(),
                );
            }
            "forceExpiredPasswordChange"
            | "hashAlgorithm"
            | "hashIterations"
            | "passwordHistory" => {}
            _ => {
                return fail(
                    "invalidPasswordGenericMessage",
                    format!("Invalid password: the realm's policy {name} is not supported."),
                );
            }
        }
    }
    Ok(())
}

/// How the realm's new passwords are hashed: its `hashAlgorithm` where
/// that names PBKDF2 (with `hashIterations`, or Keycloak's default for
/// that hash), else argon2id at the server's cost (`server`).
pub fn scheme(realm: &Realm, server: Argon2Cost) -> Scheme {
    let rules = policy(realm);
    let arg = |name: &str| {
        rules
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, a)| a.trim().to_owned())
    };
    let Some(hash) = arg("hashAlgorithm").and_then(|a| Pbkdf2Hash::from_id(&a)) else {
        return Scheme::Argon2(server);
    };
    let iterations = arg("hashIterations")
        .and_then(|a| a.parse::<u32>().ok())
        .filter(|n| (1..=gatehouse_core::password::MAX_PBKDF2_ITERATIONS).contains(n))
        .unwrap_or_else(|| hash.default_iterations());
    Scheme::Pbkdf2 { hash, iterations }
}

/// How many passwords `passwordHistory` remembers, the current one
/// included (Keycloak's default argument: 3); 0 without the rule.
pub fn history(realm: &Realm) -> usize {
    policy(realm)
        .into_iter()
        .find(|(n, _)| n == "passwordHistory")
        .map_or(0, |(_, a)| count(&a, 3))
}

/// The `passwordHistory` refusal for `n` passwords.
pub fn history_violation(n: usize) -> Violation {
    Violation {
        key: "invalidPasswordHistoryMessage",
        message: format!("Invalid password: must not be equal to any of last {n} passwords."),
    }
}

/// Days after which a password must be changed (`forceExpiredPasswordChange`).
pub fn expires_after_days(realm: &Realm) -> Option<i64> {
    policy(realm)
        .into_iter()
        .find(|(n, _)| n == "forceExpiredPasswordChange")
        .and_then(|(_, a)| a.trim().parse().ok())
        .filter(|d: &i64| *d > 0)
}

/// Whether a password set at `created_ms` (Unix milliseconds) has expired
/// under the realm's `forceExpiredPasswordChange` at `now` (seconds).
pub fn expired(realm: &Realm, created_ms: i64, now: i64) -> bool {
    expires_after_days(realm).is_some_and(|d| now - created_ms / 1000 > d * 86_400)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn realm(p: &str) -> Realm {
        let mut r = Realm::new("r");
        r.extra.insert("passwordPolicy".into(), p.into());
        r
    }

    #[test]
    fn each_rule_says_what_it_wants() {
        let r = realm(
            "length(10) and digits(2) and upperCase and specialChars(1) and notUsername(undefined) and notEmail",
        );
        let key = |pw: &str| check(&r, pw, "alice", Some("al@x.io")).err().map(|v| v.key);
        assert_eq!(key("short"), Some("invalidPasswordMinLengthMessage"));
        assert_eq!(key("longenough1"), Some("invalidPasswordMinDigitsMessage"));
        assert_eq!(
            key("longenough12"),
            Some("invalidPasswordMinUpperCaseCharsMessage")
        );
        assert_eq!(
            key("Longenough12"),
            Some("invalidPasswordMinSpecialCharsMessage")
        );
        assert_eq!(key("Longenough12!"), None);
        let r = realm("notUsername(undefined) and notEmail(undefined)");
        assert_eq!(
            check(&r, "ALICE", "alice", None).err().map(|v| v.key),
            Some("invalidPasswordNotUsernameMessage")
        );
        assert_eq!(
            check(&r, "al@x.io", "alice", Some("al@x.io"))
                .err()
                .map(|v| v.key),
            Some("invalidPasswordNotEmailMessage")
        );
        assert_eq!(
            check(&r, "short", "alice", None),
            Ok(()),
            "no length rule, no length check"
        );
    }

    #[test]
    fn a_regex_matches_the_whole_password_and_unknown_rules_refuse() {
        let r = realm("regexPattern([a-z]+[0-9])");
        assert!(check(&r, "abc1", "u", None).is_ok());
        assert!(check(&r, "abc1x", "u", None).is_err());
        let r = realm("regexPattern(([)");
        assert!(
            check(&r, "anything", "u", None).is_err(),
            "a bad pattern refuses"
        );
        let r = realm("length(4) and someVendorPolicy(3)");
        assert!(check(&r, "long enough", "u", None).is_err());
        let r = realm(
            "hashIterations(27500) and passwordHistory(3) and forceExpiredPasswordChange(90)",
        );
        assert!(check(&r, "x", "u", None).is_ok());
        assert_eq!(expires_after_days(&r), Some(90));
        assert!(expired(&r, 0, 91 * 86_400));
        assert!(!expired(&r, 0, 89 * 86_400));
    }
}
