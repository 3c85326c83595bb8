//! Keycloak's realm and client `notBefore` (the admin console's
//! "Revocation: Set to now"): every token issued before that time is dead,
//! access and refresh tokens alike, whatever its own expiry says. Kept in
//! the representations (`notBefore`, Unix seconds, 0 for none), checked by
//! introspection, userinfo and the refresh grant, and handed to an
//! in-process gateway's revocation list, which then refuses such tokens too.

use crate::state::Idp;
use gatehouse_core::model::{Client, Realm};
use serde_json::{Map, Value};

/// The field in both representations.
pub const FIELD: &str = "notBefore";

/// How long the gateway remembers a cut-off: past it, no token issued
/// before it can still be unexpired (access tokens live minutes).
const REMEMBERED: i64 = 2 * 86_400;

fn of(extra: &Map<String, Value>) -> i64 {
    gatehouse_core::model::extra_number(extra, FIELD).unwrap_or(0)
}

/// Whether a token issued at `iat` came before the realm's or the
/// client's cut-off.
pub fn too_early(realm: &Realm, client: Option<&Client>, iat: i64) -> bool {
    iat < of(&realm.extra) || client.is_some_and(|c| iat < of(&c.extra))
}

/// Tells the gateway the realm's cut-off (`client`: that client's).
pub fn publish(idp: &Idp, realm: &Realm, client: Option<&Client>) {
    let at = client.map_or_else(|| of(&realm.extra), |c| of(&c.extra));
    idp.revocations.not_before(
        &idp.issuer(&realm.name),
        client.map(|c| c.client_id.as_str()),
        at,
        at.saturating_add(REMEMBERED),
    );
}

/// Hands every stored cut-off to the gateway at start: its list lives in
/// memory, and a token issued before a cut-off must not pass it after a
/// restart.
pub async fn republish(idp: &Idp) -> Result<(), gatehouse_store::Error> {
    for realm in idp.store.realms().await? {
        if of(&realm.extra) > 0 {
            publish(idp, &realm, None);
        }
        for client in idp.store.clients(&realm.id).await? {
            if of(&client.extra) > 0 {
                publish(idp, &realm, Some(&client));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_issued_before_either_cut_off_are_too_early() {
        let mut realm = Realm::new("r");
        let mut client = Client::new(&realm.id, "app");
        assert!(!too_early(&realm, Some(&client), 0));
        realm.extra.insert(FIELD.into(), Value::from(100));
        assert!(too_early(&realm, None, 99));
        assert!(!too_early(&realm, None, 100));
        client.extra.insert(FIELD.into(), Value::from("200"));
        assert!(too_early(&realm, Some(&client), 150));
        assert!(!too_early(&realm, Some(&client), 200));
    }
}
