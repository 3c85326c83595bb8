//! Checking a user's password, shared by the login form and the password
//! grant, with Keycloak's brute-force detection: after every
//! `failureFactor` failures the account is locked for a wait that grows by
//! `waitIncrementSeconds` up to `maxFailureWaitSeconds`; failures older than
//! `maxDeltaTimeSeconds` are forgotten. While locked, even the right
//! password fails, with the same answer as a wrong one. With the realm's
//! `permanentLockout`, the account is disabled instead once the failures
//! reach `failureFactor` (or, with `maxTemporaryLockouts`, once it has been
//! locked more times than that), marked `disabled_reason: permanentLockout`
//! until an admin enables it or clears its failures.

use crate::error::OAuthError;
use crate::state::Idp;
use gatehouse_core::model::{Client, Credential, Event, Realm, User};
use gatehouse_core::ratelimit::Limiter;
use gatehouse_store::LoginFailures;

/// Why a login failed; the caller maps each to the same generic text.
#[derive(Debug, PartialEq, Eq)]
pub enum LoginFailure {
    /// Unknown user or wrong password (Keycloak: `invalid_user_credentials`).
    InvalidCredentials,
    /// Account disabled by an admin (`user_disabled`).
    Disabled,
    /// Locked by brute-force detection (`user_temporarily_disabled`).
    Locked,
    /// Too many failed logins from this IP; retry after that many seconds.
    Throttled(u64),
}

impl LoginFailure {
    /// Keycloak's event error code.
    pub fn code(&self) -> &'static str {
        match self {
            LoginFailure::InvalidCredentials => "invalid_user_credentials",
            LoginFailure::Disabled => "user_disabled",
            LoginFailure::Locked => "user_temporarily_disabled",
            LoginFailure::Throttled(_) => "too_many_attempts_from_ip",
        }
    }
}

/// The user attribute a brute-force disable is marked with (Keycloak's
/// `disabled_reason`), and the mark of a permanent lockout.
pub const DISABLED_REASON: &str = "disabled_reason";
pub const PERMANENT_LOCKOUT: &str = "permanentLockout";

/// Whether `user` was disabled by a permanent lockout (not by an admin).
pub fn locked_permanently(user: &User) -> bool {
    !user.enabled
        && user
            .attributes
            .get(DISABLED_REASON)
            .is_some_and(|v| v.iter().any(|x| x == PERMANENT_LOCKOUT))
}

/// Whether failures `lf` end in a permanent lockout under the realm's
/// `permanentLockout` and `maxTemporaryLockouts` (each `failureFactor`
/// failures is one temporary lockout).
fn lockout_is_permanent(realm: &Realm, lf: &LoginFailures) -> bool {
    if !realm.brute_force_protected || !realm.flag("permanentLockout") || realm.failure_factor <= 0
    {
        return false;
    }
    let max_temporary = realm
        .extra
        .get("maxTemporaryLockouts")
        .and_then(serde_json::Value::as_i64)
        .unwrap_or(0);
    let lockouts = lf.failures / realm.failure_factor;
    if max_temporary <= 0 {
        lockouts >= 1
    } else {
        lockouts > max_temporary
    }
}

/// Records a failed login of `user` (event `ev` with it); where that makes
/// the lockout permanent, the account is disabled now (event
/// `USER_DISABLED_BY_PERMANENT_LOCKOUT`), its sessions end and the gateway
/// refuses its tokens.
async fn record_failure(
    idp: &Idp,
    realm: &Realm,
    (user, before): (&User, &LoginFailures),
    ip: Option<&str>,
    ev: Event,
) -> Result<(), OAuthError> {
    let now_ms = gatehouse_core::time::now_millis();
    let not_before = quick_login_wait(realm, before, now_ms);
    let lf = idp
        .store
        .record_login_failure(&user.id, now_ms, not_before, ip, &[ev])
        .await?;
    if !lockout_is_permanent(realm, &lf) {
        return Ok(());
    }
    let Some(mut u) = idp.store.user(&realm.id, &user.id).await? else {
        return Ok(());
    };
    if !u.enabled {
        return Ok(());
    }
    u.enabled = false;
    u.attributes
        .insert(DISABLED_REASON.into(), vec![PERMANENT_LOCKOUT.into()]);
    let mut ev = Event::user(realm, "USER_DISABLED_BY_PERMANENT_LOCKOUT");
    ev.user_id = Some(u.id.clone());
    ev.details.insert("username".into(), u.username.clone());
    idp.store.update_user(&u, &[ev]).await?;
    idp.log_out_user(realm, &u.id, &[]).await?;
    Ok(())
}

/// Seconds the user is still locked out for, 0 when not locked: the wait
/// of every `failureFactor` failures, or a quick-login wait.
pub fn locked_for(realm: &Realm, lf: &LoginFailures, now: i64) -> i64 {
    if !realm.brute_force_protected {
        return 0;
    }
    let quick = (lf.not_before - now).max(0);
    if lf.failures < realm.failure_factor || realm.failure_factor <= 0 {
        return quick;
    }
    let steps = lf.failures / realm.failure_factor;
    let wait = (realm.wait_increment_seconds * steps).min(realm.max_failure_wait_seconds);
    (lf.last_failure() + wait - now).max(quick)
}

/// Where a failure at `now_ms` follows the previous one (`before`) within
/// the realm's quick-login check, the time (seconds) before which the user
/// may not log in again, as Keycloak sets `failedLoginNotBefore`; else 0.
fn quick_login_wait(realm: &Realm, before: &LoginFailures, now_ms: i64) -> i64 {
    let (check_ms, wait) = realm.quick_login_check();
    let delta = now_ms - before.last_failure_ms;
    // (No earlier failure: `last_failure_ms` is 0 and `delta` is huge.)
    if (0..check_ms).contains(&delta) && wait > 0 {
        now_ms.div_euclid(1000) + wait
    } else {
        0
    }
}

/// The user whose password was right, and what the realm's flow asks of
/// them next.
pub struct Verified {
    pub user: User,
    pub second: SecondFactor,
}

/// The step after a right password, under the realm's bound flow
/// ([`crate::flows`]).
pub enum SecondFactor {
    /// The login is done.
    None,
    /// The code of this credential (`check_otp`).
    Code(Credential),
    /// The flow requires a code and the user has none: a browser login sets
    /// one up first (CONFIGURE_TOTP); the password grant refuses.
    SetUp,
}

/// Checks `username` (or email) and `password` in `realm` for a login at
/// `client`. Writes LOGIN_ERROR events for failures; the caller writes the
/// success event with the session.
pub async fn check_password(
    idp: &Idp,
    realm: &Realm,
    flow: crate::flows::Kind,
    client: &Client,
    username: &str,
    password: &str,
    ip: Option<&str>,
) -> Result<Result<Verified, LoginFailure>, OAuthError> {
    let now = gatehouse_core::time::now();
    // Writes never store a flow Gatehouse cannot run; one stored before
    // this check existed stops logins rather than skip a factor. The
    // client's own flow, where it overrides the realm's, decides.
    let rule =
        crate::flows::otp_rule_for(realm, Some(client), flow).map_err(OAuthError::internal)?;
    let client_id = client.client_id.as_str();
    if let (Some(ip), Some(p)) = (ip, &idp.login_ip_policy) {
        let wait = idp
            .login_ip_limiter
            .blocked_for(ip, p, gatehouse_core::time::now_nanos());
        if wait > 0 {
            return Ok(Err(LoginFailure::Throttled(wait)));
        }
    }
    let result = check(idp, realm, rule, client_id, username, password, ip, now).await?;
    if let (Err(LoginFailure::InvalidCredentials | LoginFailure::Locked), Some(ip), Some(p)) =
        (&result, ip, &idp.login_ip_policy)
    {
        idp.login_ip_limiter
            .check(ip, p, gatehouse_core::time::now_nanos());
    }
    Ok(result)
}

/// Spends one request from the client IP's budget of failed logins, for
/// a page that mails or creates something on each request (the reset
/// form, registration): false, and nothing spent, when it is used up.
pub fn spend_ip_budget(idp: &Idp, ip: Option<&str>) -> bool {
    let (Some(ip), Some(p)) = (ip, &idp.login_ip_policy) else {
        return true;
    };
    let now = gatehouse_core::time::now_nanos();
    if idp.login_ip_limiter.blocked_for(ip, p, now) > 0 {
        return false;
    }
    idp.login_ip_limiter.check(ip, p, now);
    true
}

/// The user an e-mail address names at login, as Keycloak finds one: not
/// where the realm turned `loginWithEmailAllowed` off, and none where
/// `duplicateEmailsAllowed` lets the address name several users.
pub async fn by_email(
    idp: &Idp,
    realm: &Realm,
    email: &str,
) -> Result<Option<User>, gatehouse_store::Error> {
    if realm.extra.get("loginWithEmailAllowed") == Some(&serde_json::Value::Bool(false)) {
        return Ok(None);
    }
    if !realm.flag("duplicateEmailsAllowed") {
        return idp.store.user_by_email(&realm.id, email).await;
    }
    let query = gatehouse_store::UserQuery {
        email: Some(email.to_owned()),
        exact: true,
        max: 2,
        ..Default::default()
    };
    let mut found = idp.store.users(&realm.id, &query).await?;
    Ok(if found.len() == 1 { found.pop() } else { None })
}

/// This user's turn to be checked and the failures recorded before it,
/// where the realm counts failures (`login_turns`); else no turn and
/// none, which saves the query.
async fn turn_and_failures<'a>(
    idp: &'a Idp,
    realm: &Realm,
    user_id: &str,
) -> Result<(Option<crate::login_turns::Turn<'a>>, LoginFailures), OAuthError> {
    if !realm.brute_force_protected {
        return Ok((None, LoginFailures::default()));
    }
    let turn = idp.login_turns.take(user_id).await;
    Ok((Some(turn), idp.store.login_failures(user_id).await?))
}

#[allow(clippy::too_many_arguments)]
async fn check(
    idp: &Idp,
    realm: &Realm,
    rule: crate::flows::Otp,
    client_id: &str,
    username: &str,
    password: &str,
    ip: Option<&str>,
    now: i64,
) -> Result<Result<Verified, LoginFailure>, OAuthError> {
    let user = match idp.store.user_by_username(&realm.id, username).await? {
        Some(u) => Some(u),
        None if username.contains('@') => by_email(idp, realm, username).await?,
        None => None,
    };
    // Not known here: the realm's directories may know the name (LDAP
    // federation imports the user on first sight, as Keycloak does); known
    // as a directory user whose entry was replaced: re-created from the
    // new entry.
    let (user, entry) = match user {
        Some(u) if u.federation_link.is_some() => {
            match crate::user_storage::entry_at_login(idp, realm, u).await {
                Some((u, entry)) => (Some(u), entry),
                None => (None, None),
            }
        }
        Some(u) => (Some(u), None),
        None => (
            crate::user_storage::find_and_import(idp, realm, username).await,
            None,
        ),
    };
    let error_event = |user_id: Option<&str>, failure: &LoginFailure| {
        login_error(realm, client_id, user_id, username, ip, failure)
    };
    let Some(user) = user.filter(|u| u.service_account_client_id.is_none()) else {
        // Spend the same time as a real check so that timing does not tell
        // which usernames exist.
        let scheme = crate::password_policy::scheme(realm, idp.password_cost);
        let _ = idp
            .password_work(move || gatehouse_core::password::hash("x", scheme))
            .await;
        idp.record(error_event(None, &LoginFailure::InvalidCredentials))
            .await?;
        return Ok(Err(LoginFailure::InvalidCredentials));
    };
    // Locked out for good: the same answer as a wrong password, whatever
    // the password, so guessing on cannot tell when it was right.
    if locked_permanently(&user) {
        idp.record(error_event(Some(&user.id), &LoginFailure::Locked))
            .await?;
        return Ok(Err(LoginFailure::Locked));
    }
    let (_turn, mut lf) = turn_and_failures(idp, realm, &user.id).await?;
    if lf.failures > 0 && now - lf.last_failure() > realm.max_delta_time_seconds {
        idp.store.clear_login_failures(&user.id).await?;
        lf = Default::default();
    }
    // A check that ran while this one waited may have locked the account
    // for good: read it again where there were failures.
    let locked_meanwhile = lf.failures > 0
        && idp
            .store
            .user(&realm.id, &user.id)
            .await?
            .is_none_or(|u| locked_permanently(&u));
    if locked_meanwhile || locked_for(realm, &lf, now) > 0 {
        idp.record(error_event(Some(&user.id), &LoginFailure::Locked))
            .await?;
        return Ok(Err(LoginFailure::Locked));
    }
    let (mut cred, mut otp) = (None, None);
    for c in idp.store.credentials(&user.id).await? {
        match c.kind.as_str() {
            "password" => cred = Some(c),
            // The default app: the first in the user's list.
            crate::otp::KIND if otp.is_none() => otp = Some(c),
            _ => {}
        }
    }
    // A user imported from a directory has its password checked there.
    let ok = match crate::user_storage::check_password(
        idp,
        realm,
        (&user, entry.as_ref()),
        password,
        cred.is_some(),
    )
    .await
    {
        Some(ok) => ok,
        None => match &cred {
            Some(c) => verify(idp, realm, c, password).await?,
            None => false,
        },
    };
    if !ok {
        let failure = LoginFailure::InvalidCredentials;
        let ev = error_event(Some(&user.id), &failure);
        if realm.brute_force_protected {
            record_failure(idp, realm, (&user, &lf), ip, ev).await?;
        } else {
            idp.record(ev).await?;
        }
        return Ok(Err(failure));
    }
    if !user.enabled {
        idp.record(error_event(Some(&user.id), &LoginFailure::Disabled))
            .await?;
        return Ok(Err(LoginFailure::Disabled));
    }
    // The realm's `forceExpiredPasswordChange`: an old password is
    // changed at this login (the browser's password page; the password
    // grant refuses meanwhile), as Keycloak adds the action.
    let mut user = user;
    if let Some(c) = &cred
        && crate::password_policy::expired(realm, c.created_date, now)
        && !user.required_actions.iter().any(|a| a == "UPDATE_PASSWORD")
    {
        user.required_actions.push("UPDATE_PASSWORD".into());
        idp.store.update_user(&user, &[]).await?;
    }
    let second = match (rule, otp) {
        (crate::flows::Otp::Off, _) => SecondFactor::None,
        (_, Some(c)) => SecondFactor::Code(c),
        (crate::flows::Otp::Required, None) => SecondFactor::SetUp,
        (crate::flows::Otp::WhenConfigured, None) => SecondFactor::None,
    };
    // With a second factor the failures are forgotten only once it is
    // passed too (`check_otp`): else the right password would wipe the
    // count of wrong codes before each new guess.
    if lf.failures > 0 && !matches!(second, SecondFactor::Code(_)) {
        idp.store.clear_login_failures(&user.id).await?;
    }
    Ok(Ok(Verified { user, second }))
}

/// A LOGIN_ERROR event as Keycloak writes one for a refused login.
fn login_error(
    realm: &Realm,
    client_id: &str,
    user_id: Option<&str>,
    username: &str,
    ip: Option<&str>,
    failure: &LoginFailure,
) -> Event {
    let mut e = Event::user(realm, "LOGIN_ERROR");
    e.client_id = Some(client_id.to_owned());
    e.user_id = user_id.map(str::to_owned);
    e.ip_address = ip.map(str::to_owned);
    e.error = Some(failure.code().into());
    e.details.insert("username".into(), username.to_owned());
    e
}

/// The LOGIN_ERROR of a refused one-time-code step.
fn otp_error(
    realm: &Realm,
    client_id: &str,
    user: &User,
    ip: Option<&str>,
    failure: &LoginFailure,
) -> Event {
    let mut ev = login_error(
        realm,
        client_id,
        Some(&user.id),
        &user.username,
        ip,
        failure,
    );
    ev.details.insert("credential_type".into(), "otp".into());
    ev
}

/// Records the refusal of `user`, of whom the realm's flow requires a
/// one-time code they never set up, where no setup page can be shown (the
/// password grant): as a wrong credential, as Keycloak does.
pub async fn refuse_without_otp(
    idp: &Idp,
    realm: &Realm,
    client_id: &str,
    user: &User,
    ip: Option<&str>,
) -> Result<(), OAuthError> {
    let failure = LoginFailure::InvalidCredentials;
    idp.record(otp_error(realm, client_id, user, ip, &failure))
        .await
}

/// Checks the one-time code `given` of `user`, whose password was right,
/// against their app `cred` (None: an app that is not theirs, which no
/// code matches), under the same brute-force detection as passwords: a
/// wrong code counts as a failed login, and a locked account refuses even
/// a right one. Writes the LOGIN_ERROR event of a refusal.
pub async fn check_otp(
    idp: &Idp,
    realm: &Realm,
    client_id: &str,
    user: &User,
    cred: Option<&Credential>,
    given: &str,
    ip: Option<&str>,
) -> Result<bool, OAuthError> {
    let (_turn, lf) = turn_and_failures(idp, realm, &user.id).await?;
    let now = gatehouse_core::time::now();
    let locked = locked_for(realm, &lf, now) > 0;
    let right = match cred {
        Some(c) if !locked => crate::otp::verify(idp, realm, c, given, now).await?,
        _ => false,
    };
    if right {
        if lf.failures > 0 {
            idp.store.clear_login_failures(&user.id).await?;
        }
        return Ok(true);
    }
    let failure = if locked {
        LoginFailure::Locked
    } else {
        LoginFailure::InvalidCredentials
    };
    let ev = otp_error(realm, client_id, user, ip, &failure);
    if realm.brute_force_protected && !locked {
        record_failure(idp, realm, (user, &lf), ip, ev).await?;
    } else {
        idp.record(ev).await?;
    }
    Ok(false)
}

/// Verifies on a hashing thread (argon2 is deliberately slow) and rehashes
/// imported or outdated hashes, or hashes of another scheme than the
/// realm's, after a success.
async fn verify(
    idp: &Idp,
    realm: &Realm,
    cred: &Credential,
    password: &str,
) -> Result<bool, OAuthError> {
    let scheme = crate::password_policy::scheme(realm, idp.password_cost);
    let (cd, sd, pw) = (
        cred.credential_data.clone(),
        cred.secret_data.clone(),
        password.to_owned(),
    );
    let result = idp
        .password_work(move || {
            let v = gatehouse_core::password::verify(&pw, &cd, &sd, scheme);
            let rehash = match &v {
                Ok(v) if v.ok && v.needs_rehash => gatehouse_core::password::hash(&pw, scheme).ok(),
                _ => None,
            };
            (v, rehash)
        })
        .await?;
    match result {
        (Ok(v), rehash) => {
            if let Some((cd, sd)) = rehash {
                let mut c = cred.clone();
                c.credential_data = cd;
                c.secret_data = sd;
                c.id = gatehouse_core::id::uuid();
                idp.store.set_credential(&c, None, &[]).await?;
                tracing::info!(user_id = %cred.user_id, "password rehashed to the realm's current scheme");
            }
            Ok(v.ok)
        }
        (Err(e), _) => {
            tracing::warn!(user_id = %cred.user_id, error = %e, "stored credential unusable");
            Ok(false)
        }
    }
}

/// Sets `password` as `user`'s new password where the realm's policy
/// allows it (its rules, and `passwordHistory` against the current and
/// kept passwords), keeping the replaced one as history where the policy
/// asks: one write with `changed` (the user's row, when it changed too)
/// and `ev`. The refusal, if any, is the caller's to show.
pub async fn change_password(
    idp: &Idp,
    realm: &Realm,
    user: &User,
    password: &str,
    changed: Option<&User>,
    ev: &[Event],
) -> Result<Result<(), crate::password_policy::Violation>, OAuthError> {
    // A read-only directory keeps the password (Keycloak's texts).
    if crate::user_storage::password_read_only(realm, user) {
        return Ok(Err(crate::password_policy::Violation {
            key: "readOnlyPasswordMessage",
            message: "Can't reset password as account is read only".into(),
        }));
    }
    if let Err(v) =
        crate::password_policy::check(realm, password, &user.username, user.email.as_deref())
    {
        return Ok(Err(v));
    }
    let n = crate::password_policy::history(realm);
    if n > 0 {
        let mut old: Vec<Credential> = idp
            .store
            .credentials(&user.id)
            .await?
            .into_iter()
            .filter(|c| c.kind == "password" || c.kind == "password-history")
            .collect();
        // The current password first, then the newest kept ones.
        old.sort_by_key(|c| (c.kind != "password", std::cmp::Reverse(c.created_date)));
        old.truncate(n);
        let cost = crate::password_policy::scheme(realm, idp.password_cost);
        let pw = password.to_owned();
        let reused = idp
            .password_work(move || {
                old.iter().any(|c| {
                    gatehouse_core::password::verify(&pw, &c.credential_data, &c.secret_data, cost)
                        .is_ok_and(|v| v.ok)
                })
            })
            .await?;
        if reused {
            return Ok(Err(crate::password_policy::history_violation(n)));
        }
    }
    let cred = new_password(idp, realm, &user.id, password).await?;
    idp.store
        .set_password_keeping(&cred, n.saturating_sub(1), changed, ev)
        .await?;
    Ok(Ok(()))
}

/// A new password credential for a user of `realm`, hashed under the
/// realm's scheme (`password_policy::scheme`).
pub async fn new_password(
    idp: &Idp,
    realm: &Realm,
    user_id: &str,
    password: &str,
) -> Result<Credential, OAuthError> {
    let scheme = crate::password_policy::scheme(realm, idp.password_cost);
    let pw = password.to_owned();
    let (cd, sd) = idp
        .password_work(move || gatehouse_core::password::hash(&pw, scheme))
        .await?
        .map_err(OAuthError::internal)?;
    Ok(Credential {
        id: gatehouse_core::id::uuid(),
        user_id: user_id.to_owned(),
        kind: "password".into(),
        created_date: gatehouse_core::time::now_millis(),
        credential_data: cd,
        secret_data: sd,
        user_label: None,
        priority: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failures(n: i64, last: i64) -> LoginFailures {
        LoginFailures {
            failures: n,
            last_failure_ms: last * 1000,
            ..Default::default()
        }
    }

    #[test]
    fn lockout_grows_and_is_capped() {
        let mut r = Realm::new("r");
        r.brute_force_protected = true;
        r.failure_factor = 3;
        r.wait_increment_seconds = 60;
        r.max_failure_wait_seconds = 150;
        assert_eq!(locked_for(&r, &failures(2, 100), 100), 0);
        assert_eq!(locked_for(&r, &failures(3, 100), 100), 60);
        assert_eq!(locked_for(&r, &failures(6, 100), 100), 120);
        assert_eq!(locked_for(&r, &failures(9, 100), 100), 150);
        assert_eq!(locked_for(&r, &failures(3, 100), 200), 0);
        // A quick-login wait locks below the failure factor too.
        let quick = LoginFailures {
            not_before: 160,
            ..failures(1, 100)
        };
        assert_eq!(locked_for(&r, &quick, 100), 60);
        assert_eq!(locked_for(&r, &quick, 170), 0);
        r.brute_force_protected = false;
        assert_eq!(locked_for(&r, &failures(30, 100), 100), 0);
        assert_eq!(locked_for(&r, &quick, 100), 0);
    }

    #[test]
    fn quick_failures_wait_keycloaks_minimum() {
        let mut r = Realm::new("r");
        r.brute_force_protected = true;
        let before = failures(1, 100);
        // Keycloak's defaults: within 1000 ms, 60 s.
        assert_eq!(quick_login_wait(&r, &before, 100_999), 160);
        assert_eq!(quick_login_wait(&r, &before, 101_000), 0);
        // The first failure has nothing to be quick after.
        assert_eq!(quick_login_wait(&r, &failures(0, 0), 100_001), 0);
        r.extra
            .insert("quickLoginCheckMilliSeconds".into(), 5000.into());
        r.extra
            .insert("minimumQuickLoginWaitSeconds".into(), 10.into());
        assert_eq!(quick_login_wait(&r, &before, 104_000), 114);
        r.extra
            .insert("minimumQuickLoginWaitSeconds".into(), 0.into());
        assert_eq!(quick_login_wait(&r, &before, 100_500), 0);
    }
}
