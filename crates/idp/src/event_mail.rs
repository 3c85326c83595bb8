//! Keycloak's `email` event listener: where a realm's `eventsListeners`
//! holds `email`, a user with a verified address is mailed about the
//! events that may mean someone else is in their account (a failed
//! login, a changed password or one-time-code device), with Keycloak's
//! English messages.
//!
//! Why from the outbox: events are written in the same transaction as
//! what they record, from many places; reading them back in `seq` order
//! (`Store::events_since`) sees every one exactly where it committed,
//! and the listener's position is kept in the store, so a restart
//! neither repeats mails nor skips the events of its downtime. Like
//! Keycloak's listener, a mail that fails is logged, not retried. (The
//! position may jump to the outbox's end because SQLite commits writes
//! one at a time, in `seq` order; a store whose transactions commit out
//! of order must hand out positions differently.)

use crate::mail::{Mail, Smtp};
use crate::state::Idp;
use gatehouse_core::model::{Event, Realm};
use std::sync::Arc;
use std::time::Duration;

/// The listener's name in `listener_positions`.
const NAME: &str = "email";

/// Keycloak's default included events.
const INCLUDED: &[&str] = &[
    "LOGIN_ERROR",
    "UPDATE_PASSWORD",
    "REMOVE_TOTP",
    "UPDATE_TOTP",
    "UPDATE_CREDENTIAL",
    "REMOVE_CREDENTIAL",
];

/// Most events mailed per read.
const BATCH: i64 = 100;

/// How often the outbox is read.
const EVERY: Duration = Duration::from_secs(1);

/// Reads the outbox every second for the life of the process.
pub fn spawn(idp: Arc<Idp>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = run_once(&idp).await {
                tracing::warn!(error = %e, "e-mail event listener: reading the outbox failed");
            }
        }
    });
}

/// Mails what the outbox holds since the last run; the number of events
/// read. A first run starts at the outbox's end: events from before the
/// listener existed are not mailed.
pub async fn run_once(idp: &Idp) -> Result<usize, gatehouse_store::Error> {
    let after = match idp.store.listener_position(NAME).await? {
        Some(seq) => seq,
        None => {
            let end = idp.store.last_event_seq().await?;
            idp.store.set_listener_position(NAME, end).await?;
            return Ok(0);
        }
    };
    // Read up to the outbox's end as it is now; with no more than a batch
    // of mailable events on the way, the position moves to that end, so
    // the next read does not scan again past the events it skipped.
    let end = idp.store.last_event_seq().await?;
    if end <= after {
        return Ok(0);
    }
    let mut batch = idp.store.events_since(after, INCLUDED, BATCH).await?;
    batch.retain(|(seq, _)| *seq <= end);
    let last = match batch.last() {
        Some(&(seq, _)) if batch.len() as i64 == BATCH => seq,
        _ => end,
    };
    let realms = if batch.is_empty() {
        Vec::new()
    } else {
        idp.store.realms().await?
    };
    for (_, ev) in batch.iter().filter(|(_, ev)| ev.category == "user") {
        if let Some(realm) = realms.iter().find(|r| r.id == ev.realm_id)
            && listens(realm)
        {
            deliver(idp, realm, ev).await?;
        }
    }
    idp.store.set_listener_position(NAME, last).await?;
    Ok(batch.len())
}

/// Whether the realm's `eventsListeners` names `email`.
fn listens(realm: &Realm) -> bool {
    realm
        .extra
        .get("eventsListeners")
        .and_then(serde_json::Value::as_array)
        .is_some_and(|l| l.iter().any(|v| v.as_str() == Some(NAME)))
}

async fn deliver(idp: &Idp, realm: &Realm, ev: &Event) -> Result<(), gatehouse_store::Error> {
    let (Some(user_id), Some(mail), Some(smtp)) = (&ev.user_id, message(ev), Smtp::of(realm))
    else {
        return Ok(());
    };
    let Some(user) = idp.store.user(&realm.id, user_id).await? else {
        return Ok(());
    };
    // Keycloak mails verified addresses only: an unverified one may not
    // be the user's.
    let Some(to) = user.email.as_deref().filter(|_| user.email_verified) else {
        return Ok(());
    };
    let name = match (&user.first_name, &user.last_name) {
        (Some(f), Some(l)) => Some(format!("{f} {l}")),
        (Some(n), None) | (None, Some(n)) => Some(n.clone()),
        (None, None) => None,
    };
    if let Err(e) = smtp.send(to, name.as_deref(), &mail).await {
        tracing::warn!(realm = %realm.name, user_id = %user.id, event = %ev.kind, error = %e,
            "e-mail event listener: mail not sent");
    }
    Ok(())
}

/// Keycloak's message for `ev` (`event-*.ftl`), None for an event it
/// does not mail.
fn message(ev: &Event) -> Option<Mail> {
    let when = crate::mail::event_date(ev.time);
    let from = ev.ip_address.as_deref().unwrap_or("unknown");
    let credential = ev.details.get("credential_type").map_or("", String::as_str);
    let (subject, what) = match ev.kind.as_str() {
        "LOGIN_ERROR" => (
            "Login error",
            format!("A failed login attempt was detected to your account on {when} from {from}."),
        ),
        "UPDATE_PASSWORD" => (
            "Update password",
            format!("Your password was changed on {when} from {from}."),
        ),
        "REMOVE_TOTP" => (
            "Remove OTP",
            format!("OTP was removed from your account on {when} from {from}."),
        ),
        "UPDATE_TOTP" => (
            "Update OTP",
            format!("OTP was updated for your account on {when} from {from}."),
        ),
        "UPDATE_CREDENTIAL" => (
            "Update credential",
            format!("Your {credential} credential was changed on {when} from {from}."),
        ),
        "REMOVE_CREDENTIAL" => (
            "Remove credential",
            format!("Credential {credential} was removed from your account on {when} from {from}."),
        ),
        _ => return None,
    };
    Some(crate::mail::notice(
        subject,
        &[
            what,
            "If this was not you, please contact an administrator.".into(),
        ],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_keycloaks() {
        let realm = Realm::new("r");
        let mut ev = Event::user(&realm, "LOGIN_ERROR");
        ev.time = 1_700_000_000_000;
        ev.ip_address = Some("203.0.113.9".into());
        let m = message(&ev).expect("mailed");
        assert_eq!(m.subject, "Login error");
        assert_eq!(
            m.text,
            "A failed login attempt was detected to your account on Tue Nov 14 22:13:20 UTC 2023 from 203.0.113.9.\n\nIf this was not you, please contact an administrator."
        );
        ev.set_kind(&realm, "LOGIN");
        assert!(message(&ev).is_none());
    }
}
