//! `/admin/realms/{realm}/identity-provider/...`: the identity providers a
//! Keycloak realm export brought with it. Gatehouse does no brokering yet,
//! so these are configuration only: kept so that they survive import and
//! export, readable, and removable; creating or changing one is refused
//! (501) rather than stored as if logins through it would work.

use super::{RealmAdmin, event};
use crate::error::AdminError;
use crate::state::Idp;
use axum::Json;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::routing::get;
use gatehouse_core::model::Realm;
use serde_json::{Value, json};
use std::sync::Arc;

/// Identity-provider routes.
pub fn routes() -> axum::Router<Arc<Idp>> {
    const P: &str = "/admin/realms/{realm}/identity-provider";
    axum::Router::new()
        .route(&format!("{P}/instances"), get(list).post(unsupported))
        .route(
            &format!("{P}/instances/{{alias}}"),
            get(one).put(unsupported).delete(remove),
        )
        .route(
            &format!("{P}/instances/{{alias}}/mappers"),
            get(mappers).post(unsupported_mapper),
        )
        .route(
            &format!("{P}/instances/{{alias}}/mappers/{{id}}"),
            get(one_mapper).put(unsupported).delete(remove_mapper),
        )
}

/// A mapper of provider `alias` by id (404 for either missing).
fn find_mapper<'a>(realm: &'a Realm, alias: &str, id: &str) -> Result<&'a Value, AdminError> {
    find(realm, alias)?;
    stored(realm, "identityProviderMappers")
        .iter()
        .find(|m| m["identityProviderAlias"] == alias && m["id"] == id)
        .ok_or_else(|| AdminError::missing("Model not found"))
}

async fn one_mapper(
    RealmAdmin { realm, .. }: RealmAdmin,
    Path((_, alias, id)): Path<(String, String, String)>,
) -> Result<Json<Value>, AdminError> {
    Ok(Json(find_mapper(&realm, &alias, &id)?.clone()))
}

/// The entries of the realm's `key` list that `keep` keeps.
fn retained(realm: &Realm, key: &str, keep: impl Fn(&Value) -> bool) -> Value {
    json!(
        stored(realm, key)
            .iter()
            .filter(|v| keep(v))
            .collect::<Vec<_>>()
    )
}

/// Removes one mapper (an admin event records it).
async fn remove_mapper(
    mut a: RealmAdmin,
    Path((_, alias, id)): Path<(String, String, String)>,
) -> Result<StatusCode, AdminError> {
    let _edit = a.edit().await?;
    find_mapper(&a.realm, &alias, &id)?;
    let mut realm = a.realm.clone();
    let rest = retained(&a.realm, "identityProviderMappers", |m| {
        !(m["identityProviderAlias"] == alias.as_str() && m["id"] == id.as_str())
    });
    realm.extra.insert("identityProviderMappers".into(), rest);
    let path = format!("identity-provider/instances/{alias}/mappers/{id}");
    let ev = event(
        &realm,
        &a.caller,
        "DELETE",
        "IDENTITY_PROVIDER_MAPPER",
        &path,
        None,
    );
    a.idp.store.update_realm(&realm, &[ev]).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `search` and paging of the instance listing, as Keycloak reads them.
#[derive(serde::Deserialize)]
struct ListQuery {
    search: Option<String>,
    #[serde(
        default,
        rename = "briefRepresentation",
        deserialize_with = "super::lenient_bool"
    )]
    brief: Option<bool>,
    first: Option<i64>,
    max: Option<i64>,
}

fn stored<'a>(realm: &'a Realm, key: &str) -> &'a [Value] {
    realm
        .extra
        .get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// The realm's identity providers (representations as stored).
pub fn providers(realm: &Realm) -> &[Value] {
    stored(realm, "identityProviders")
}

/// Whether the realm has an identity provider with this alias.
pub fn exists(realm: &Realm, alias: &str) -> bool {
    provider(realm, alias).is_some()
}

fn provider<'a>(realm: &'a Realm, alias: &str) -> Option<&'a Value> {
    stored(realm, "identityProviders")
        .iter()
        .find(|p| alias_of(p) == alias)
}

fn alias_of(v: &Value) -> &str {
    v["alias"].as_str().unwrap_or_default()
}

/// Keycloak's `search`: `"name"` exact, `*name*` anywhere, otherwise a
/// prefix (a trailing `*` allowed); case-insensitive.
fn matches(alias: &str, search: &str) -> bool {
    let alias = alias.to_lowercase();
    let s = search.to_lowercase();
    if let Some(exact) = s.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        return alias == exact;
    }
    if let Some(inner) = s.strip_prefix('*') {
        return alias.contains(inner.trim_end_matches('*'));
    }
    alias.starts_with(s.trim_end_matches('*'))
}

async fn list(RealmAdmin { realm, .. }: RealmAdmin, Query(q): Query<ListQuery>) -> Json<Value> {
    let found = stored(&realm, "identityProviders")
        .iter()
        .filter(|p| q.search.as_deref().is_none_or(|s| matches(alias_of(p), s)));
    let reps: Vec<Value> = super::window(q.first, q.max, found)
        .map(|p| match q.brief {
            Some(true) => json!({
                "alias": p["alias"],
                "displayName": p["displayName"],
                "providerId": p["providerId"],
                "enabled": p["enabled"],
                "internalId": p["internalId"],
            }),
            _ => masked(p),
        })
        .collect();
    Json(json!(reps))
}

/// The representation as Keycloak shows it: the client secret masked (an
/// export made with secrets carries the real one).
pub(crate) fn masked(p: &Value) -> Value {
    let mut p = p.clone();
    if let Some(secret) = p.pointer_mut("/config/clientSecret")
        && secret.as_str().is_some_and(|s| !s.is_empty())
    {
        *secret = json!(crate::repr::SECRET_MASK);
    }
    p
}

fn find<'a>(realm: &'a Realm, alias: &str) -> Result<&'a Value, AdminError> {
    provider(realm, alias).ok_or_else(|| AdminError::missing("Could not find identity provider"))
}

async fn one(
    RealmAdmin { realm, .. }: RealmAdmin,
    Path((_, alias)): Path<(String, String)>,
) -> Result<Json<Value>, AdminError> {
    Ok(Json(masked(find(&realm, &alias)?)))
}

async fn mappers(
    RealmAdmin { realm, .. }: RealmAdmin,
    Path((_, alias)): Path<(String, String)>,
) -> Result<Json<Value>, AdminError> {
    find(&realm, &alias)?;
    Ok(Json(retained(&realm, "identityProviderMappers", |m| {
        m["identityProviderAlias"].as_str() == Some(alias.as_str())
    })))
}

/// Removes the provider, its mappers and every user's link to it (an
/// admin event records it).
async fn remove(
    mut a: RealmAdmin,
    Path((_, alias)): Path<(String, String)>,
) -> Result<StatusCode, AdminError> {
    let _edit = a.edit().await?;
    find(&a.realm, &alias)?;
    let mut realm = a.realm.clone();
    let keep = |key: &str, field: &str| {
        retained(&a.realm, key, |v| v[field].as_str() != Some(alias.as_str()))
    };
    let providers = keep("identityProviders", "alias");
    realm.extra.insert("identityProviders".into(), providers);
    if realm.extra.contains_key("identityProviderMappers") {
        let mappers = keep("identityProviderMappers", "identityProviderAlias");
        realm
            .extra
            .insert("identityProviderMappers".into(), mappers);
    }
    let path = format!("identity-provider/instances/{alias}");
    let ev = event(
        &realm,
        &a.caller,
        "DELETE",
        "IDENTITY_PROVIDER",
        &path,
        None,
    );
    // Users' links to it go in the same write, as Keycloak removes them.
    a.idp
        .store
        .remove_identity_provider(&realm, &alias, &[ev])
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Creating or changing a provider (or its mappers): refused until
/// Gatehouse brokers logins, so no one configures a login button that
/// does nothing.
async fn unsupported(_: RealmAdmin) -> AdminError {
    AdminError::new(
        StatusCode::NOT_IMPLEMENTED,
        "Identity brokering is not supported by Gatehouse yet: identity providers can be listed and removed, not created or changed",
    )
}

/// A mapper for a provider: 404 if there is no such provider (as
/// Keycloak), else refused as above.
async fn unsupported_mapper(a: RealmAdmin, Path((_, alias)): Path<(String, String)>) -> AdminError {
    match find(&a.realm, &alias) {
        Err(e) => e,
        Ok(_) => unsupported(a).await,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn search_is_prefix_unless_quoted_or_starred() {
        use super::matches;
        assert!(matches("github-corp", "git"));
        assert!(matches("github-corp", "GIT*"));
        assert!(!matches("github-corp", "corp"));
        assert!(matches("github-corp", "*corp*"));
        assert!(matches("github-corp", "\"github-corp\""));
        assert!(!matches("github-corp", "\"github\""));
        assert!(matches("anything", ""));
    }
}
