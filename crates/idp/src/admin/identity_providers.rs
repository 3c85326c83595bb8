//! `/admin/realms/{realm}/identity-provider/...`: the realm's identity
//! providers, Keycloak's representations. OpenID Connect providers
//! (`oidc`, `keycloak-oidc`) are created, changed and used for logins
//! (`crate::broker`); other types a Keycloak export brings (SAML, social)
//! are kept so that they survive import and export, readable and
//! removable, and creating one is refused (501) rather than stored as if
//! logins through it would work. Provider mappers of the types
//! `crate::broker::mappers` applies are created and changed; others are
//! kept, listed and removable.

use super::{RealmAdmin, created, event, json_body};
use crate::error::AdminError;
use crate::state::Idp;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use gatehouse_core::model::Realm;
use serde_json::{Value, json};
use std::sync::Arc;

/// Identity-provider routes.
pub fn routes() -> axum::Router<Arc<Idp>> {
    const P: &str = "/admin/realms/{realm}/identity-provider";
    axum::Router::new()
        .route(&format!("{P}/instances"), get(list).post(create))
        .route(
            &format!("{P}/instances/{{alias}}"),
            get(one).put(update).delete(remove),
        )
        .route(&format!("{P}/providers/{{id}}"), get(factory))
        .route(&format!("{P}/import-config"), post(import_config))
        .route(
            &format!("{P}/instances/{{alias}}/mappers"),
            get(mappers).post(create_mapper),
        )
        .route(
            &format!("{P}/instances/{{alias}}/mappers/{{id}}"),
            get(one_mapper).put(update_mapper).delete(remove_mapper),
        )
        .route(
            &format!("{P}/instances/{{alias}}/mapper-types"),
            get(mapper_types),
        )
        .route(
            &format!("{P}/instances/{{alias}}/reload-keys"),
            get(reload_keys),
        )
}

/// `GET .../instances/{alias}/reload-keys`: Keycloak's answer to "fetch
/// the provider's signing keys again". Gatehouse keeps none between
/// logins (a broker login reads the provider's `jwksUrl` each time), so a
/// provider that validates signatures always has its current keys:
/// `true`; one that validates none has no keys to load: `false`.
async fn reload_keys(
    RealmAdmin { realm, .. }: RealmAdmin,
    Path((_, alias)): Path<(String, String)>,
) -> Result<Json<bool>, AdminError> {
    let p = find(&realm, &alias)?;
    let validates = p["config"]["validateSignature"].as_str() == Some("true")
        && p["config"]["jwksUrl"]
            .as_str()
            .is_some_and(|u| !u.is_empty());
    Ok(Json(validates))
}

/// Whether the realm has the identity provider `alias` (fine-grained
/// permission routes answer 404 for one it lacks).
pub fn exists_alias(realm: &Realm, alias: &str) -> bool {
    provider(realm, alias).is_some()
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
    let rest = retained(&a.realm, "identityProviderMappers", |m| {
        !(m["identityProviderAlias"] == alias.as_str() && m["id"] == id.as_str())
    });
    let path = format!("identity-provider/instances/{alias}/mappers/{id}");
    let call = ("DELETE", "IDENTITY_PROVIDER_MAPPER", path.as_str());
    write_list(&a, "identityProviderMappers", rest, call, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Writes the realm with its `key` list (providers or mappers) replaced
/// by `list`, with the admin event (`op`, resource type, path) of the
/// change; the caller holds the realm's edit lock.
async fn write_list(
    a: &RealmAdmin,
    key: &str,
    list: Value,
    (op, rtype, path): (&str, &str, &str),
    rep: Option<&Value>,
) -> Result<(), AdminError> {
    let mut realm = a.realm.clone();
    realm.extra.insert(key.into(), list);
    let ev = event(&realm, &a.caller, op, rtype, path, rep);
    a.idp.store.update_realm(&realm, &[ev]).await?;
    Ok(())
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

/// A mapper representation checked for provider `alias`: a type Gatehouse
/// applies at brokered logins (others 501, rather than store a mapping
/// that would do nothing), its config usable (400 naming the key).
fn checked_mapper(
    realm: &Realm,
    mut rep: Value,
    alias: &str,
    id: &str,
) -> Result<Value, AdminError> {
    let provider_kind = find(realm, alias)?["providerId"]
        .as_str()
        .unwrap_or_default();
    if !crate::broker::provider::SUPPORTED.contains(&provider_kind) {
        return Err(AdminError::new(
            StatusCode::NOT_IMPLEMENTED,
            format!(
                "Mappers of '{provider_kind}' identity providers are not supported by Gatehouse"
            ),
        ));
    }
    let kind = rep["identityProviderMapper"].as_str().unwrap_or_default();
    if !crate::broker::mappers::TYPES
        .iter()
        .any(|(t, _)| *t == kind)
    {
        return Err(AdminError::new(
            StatusCode::NOT_IMPLEMENTED,
            format!("Identity provider mappers of type '{kind}' are not supported by Gatehouse"),
        ));
    }
    crate::broker::mappers::Mapper::parse(&rep).map_err(AdminError::bad_request)?;
    if rep["name"].as_str().is_none_or(str::is_empty) {
        return Err(AdminError::bad_request("Mapper name is required"));
    }
    rep["identityProviderAlias"] = json!(alias);
    rep["id"] = json!(id);
    if rep.get("config").is_none() {
        rep["config"] = json!({});
    }
    Ok(rep)
}

/// `POST .../instances/{alias}/mappers`: a new mapper (201, Location).
async fn create_mapper(
    mut a: RealmAdmin,
    Path((_, alias)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, AdminError> {
    let _edit = a.edit().await?;
    find(&a.realm, &alias)?;
    let id = gatehouse_core::id::uuid();
    let rep = checked_mapper(&a.realm, json_body(&body)?, &alias, &id)?;
    let taken = stored(&a.realm, "identityProviderMappers")
        .iter()
        .any(|m| m["identityProviderAlias"] == alias.as_str() && m["name"] == rep["name"]);
    if taken {
        return Err(AdminError::conflict("Mapper name already exists"));
    }
    let mut all = stored(&a.realm, "identityProviderMappers").to_vec();
    all.push(rep.clone());
    let path = format!("identity-provider/instances/{alias}/mappers/{id}");
    let call = ("CREATE", "IDENTITY_PROVIDER_MAPPER", path.as_str());
    write_list(&a, "identityProviderMappers", json!(all), call, Some(&rep)).await?;
    Ok(created(&a.idp, &a.realm.name, &path))
}

/// `PUT .../instances/{alias}/mappers/{id}`: the mapper replaced.
async fn update_mapper(
    mut a: RealmAdmin,
    Path((_, alias, id)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<StatusCode, AdminError> {
    let _edit = a.edit().await?;
    let old = find_mapper(&a.realm, &alias, &id)?.clone();
    let mut rep = json_body(&body)?;
    for k in ["name", "identityProviderMapper"] {
        if rep.get(k).is_none() {
            rep[k] = old[k].clone();
        }
    }
    let rep = checked_mapper(&a.realm, rep, &alias, &id)?;
    let all: Vec<Value> = stored(&a.realm, "identityProviderMappers")
        .iter()
        .map(|m| {
            if m["identityProviderAlias"] == alias.as_str() && m["id"] == id.as_str() {
                rep.clone()
            } else {
                m.clone()
            }
        })
        .collect();
    let path = format!("identity-provider/instances/{alias}/mappers/{id}");
    let call = ("UPDATE", "IDENTITY_PROVIDER_MAPPER", path.as_str());
    write_list(&a, "identityProviderMappers", json!(all), call, Some(&rep)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET .../instances/{alias}/mapper-types`: the mapper types Gatehouse
/// applies, keyed by id as Keycloak's admin console reads them.
async fn mapper_types(
    a: RealmAdmin,
    Path((_, alias)): Path<(String, String)>,
) -> Result<Json<Value>, AdminError> {
    find(&a.realm, &alias)?;
    let mut out = serde_json::Map::new();
    for (id, name) in crate::broker::mappers::TYPES {
        out.insert(
            id.into(),
            json!({"id": id, "name": name, "category": if id.contains("role") { "Role Importer" } else { "Attribute Importer" }}),
        );
    }
    Ok(Json(Value::Object(out)))
}

/// A representation checked and completed with Keycloak's defaults, as
/// it will be stored: an OpenID Connect provider Gatehouse can log in
/// through (other types are 501, a config it cannot use 400).
fn checked(mut rep: Value) -> Result<Value, AdminError> {
    // A body without a provider type is malformed, not an unsupported type.
    let Some(kind) = rep
        .get("providerId")
        .and_then(Value::as_str)
        .map(str::to_owned)
    else {
        return Err(AdminError::bad_request("providerId is required"));
    };
    if !crate::broker::provider::SUPPORTED.contains(&kind.as_str()) {
        return Err(AdminError::new(
            StatusCode::NOT_IMPLEMENTED,
            format!(
                "Identity providers of type '{kind}' are not supported by Gatehouse: only OpenID Connect (oidc, keycloak-oidc)"
            ),
        ));
    }
    let alias = alias_of(&rep);
    if alias.is_empty()
        || !alias
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
    {
        return Err(AdminError::bad_request("Invalid identity provider alias"));
    }
    if rep["storeToken"] == json!(true) || rep["storeToken"] == json!("true") {
        return Err(AdminError::bad_request(
            "storeToken is not supported: Gatehouse does not keep identity providers' tokens",
        ));
    }
    crate::broker::provider::OidcProvider::from_rep(&rep).map_err(AdminError::bad_request)?;
    let o = rep
        .as_object_mut()
        .ok_or_else(|| AdminError::bad_request("Expected an identity provider"))?;
    for (k, v) in [
        ("enabled", json!(true)),
        ("updateProfileFirstLoginMode", json!("on")),
        ("trustEmail", json!(false)),
        ("storeToken", json!(false)),
        ("addReadTokenRoleOnCreate", json!(false)),
        ("authenticateByDefault", json!(false)),
        ("linkOnly", json!(false)),
        ("hideOnLogin", json!(false)),
        ("firstBrokerLoginFlowAlias", json!("first broker login")),
    ] {
        o.entry(k).or_insert(v);
    }
    Ok(rep)
}

/// `POST .../identity-provider/instances`: a new provider (201, Location
/// naming its alias).
async fn create(mut a: RealmAdmin, body: Bytes) -> Result<Response, AdminError> {
    let mut rep = checked(json_body(&body)?)?;
    rep["internalId"] = json!(gatehouse_core::id::uuid());
    let _edit = a.edit().await?;
    let alias = alias_of(&rep).to_owned();
    if exists(&a.realm, &alias) {
        return Err(AdminError::conflict(format!(
            "Identity Provider {alias} already exists"
        )));
    }
    let mut all = providers(&a.realm).to_vec();
    all.push(rep.clone());
    let path = format!("identity-provider/instances/{alias}");
    let call = ("CREATE", "IDENTITY_PROVIDER", path.as_str());
    write_list(&a, "identityProviders", json!(all), call, Some(&rep)).await?;
    Ok(created(&a.idp, &a.realm.name, &path))
}

/// `PUT .../identity-provider/instances/{alias}`: the provider replaced by
/// the representation; a masked secret (as read back) keeps the stored one.
async fn update(
    mut a: RealmAdmin,
    Path((_, alias)): Path<(String, String)>,
    body: Bytes,
) -> Result<StatusCode, AdminError> {
    let mut rep = json_body(&body)?;
    let _edit = a.edit().await?;
    let old = find(&a.realm, &alias)?.clone();
    match rep.get("alias").and_then(Value::as_str) {
        None => rep["alias"] = json!(alias),
        Some(a) if a == alias => {}
        Some(_) => {
            return Err(AdminError::bad_request(
                "Changing an identity provider's alias is not supported",
            ));
        }
    }
    if rep.get("providerId").is_none() {
        rep["providerId"] = old["providerId"].clone();
    }
    let sent = rep.pointer("/config/clientSecret").and_then(Value::as_str);
    if (sent.is_none() || sent == Some(crate::repr::SECRET_MASK))
        && let (Some(kept), Some(config)) = (
            old.pointer("/config/clientSecret"),
            rep.get_mut("config").and_then(Value::as_object_mut),
        )
    {
        config.insert("clientSecret".into(), kept.clone());
    }
    let mut rep = checked(rep)?;
    rep["internalId"] = old["internalId"].clone();
    let all: Vec<Value> = providers(&a.realm)
        .iter()
        .map(|p| {
            if alias_of(p) == alias {
                rep.clone()
            } else {
                p.clone()
            }
        })
        .collect();
    let path = format!("identity-provider/instances/{alias}");
    let call = ("UPDATE", "IDENTITY_PROVIDER", path.as_str());
    write_list(&a, "identityProviders", json!(all), call, Some(&rep)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET .../identity-provider/providers/{id}`: the provider types
/// Gatehouse brokers, as Keycloak's factories describe themselves.
async fn factory(
    _: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<Value>, AdminError> {
    let name = match id.as_str() {
        "oidc" => "OpenID Connect v1.0",
        "keycloak-oidc" => "Keycloak OpenID Connect",
        _ => return Err(AdminError::not_found("Could not find provider")),
    };
    Ok(Json(json!({"id": id, "name": name})))
}

/// `POST .../identity-provider/import-config` (`{"providerId", "fromUrl"}`):
/// a provider's discovery document read into the config keys a
/// representation takes, as the admin console fills its form.
async fn import_config(a: RealmAdmin, body: Bytes) -> Result<Json<Value>, AdminError> {
    let rep = json_body(&body)?;
    let kind = rep["providerId"].as_str().unwrap_or("oidc");
    if !crate::broker::provider::SUPPORTED.contains(&kind) {
        return Err(AdminError::new(
            StatusCode::NOT_IMPLEMENTED,
            format!("Importing the configuration of '{kind}' providers is not supported"),
        ));
    }
    let url = rep["fromUrl"]
        .as_str()
        .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
        .ok_or_else(|| AdminError::bad_request("fromUrl must be an http(s) URL"))?;
    let unreadable = || AdminError::bad_request("Could not import the configuration from fromUrl");
    let bytes = crate::fetch::get(&a.idp, url, crate::fetch::MAX_JSON)
        .await
        .map_err(|_| unreadable())?;
    let meta: Value = serde_json::from_slice(&bytes).map_err(|_| unreadable())?;
    let mut config = serde_json::Map::new();
    for (ours, theirs) in [
        ("issuer", "issuer"),
        ("authorizationUrl", "authorization_endpoint"),
        ("tokenUrl", "token_endpoint"),
        ("userInfoUrl", "userinfo_endpoint"),
        ("logoutUrl", "end_session_endpoint"),
        ("jwksUrl", "jwks_uri"),
    ] {
        if let Some(v) = meta[theirs].as_str() {
            config.insert(ours.into(), json!(v));
        }
    }
    if !config.contains_key("authorizationUrl") || !config.contains_key("tokenUrl") {
        return Err(unreadable());
    }
    let signed = config.contains_key("jwksUrl");
    config.insert("useJwksUrl".into(), json!(signed.to_string()));
    config.insert("validateSignature".into(), json!(signed.to_string()));
    config.insert("metadataDescriptorUrl".into(), json!(url));
    Ok(Json(Value::Object(config)))
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
