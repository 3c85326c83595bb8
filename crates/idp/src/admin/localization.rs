//! `/admin/realms/{realm}/localization...`: the realm's own message
//! overrides per locale (Keycloak's realm localization texts). They live
//! where a Keycloak export keeps them (`localizationTexts`), so they travel
//! with import and export; Gatehouse's pages read the ones they show
//! (today `termsText`, the terms-and-conditions page).

use super::{RealmAdmin, event};
use crate::error::AdminError;
use crate::state::Idp;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use gatehouse_core::model::Realm;
use serde_json::{Map, Value, json};
use std::sync::Arc;

const FIELD: &str = "localizationTexts";

/// Localization routes.
pub fn routes() -> Router<Arc<Idp>> {
    const P: &str = "/admin/realms/{realm}/localization";
    Router::new()
        .route(P, get(locales))
        .route(
            &format!("{P}/{{locale}}"),
            get(texts).post(import).delete(remove_locale),
        )
        .route(
            &format!("{P}/{{locale}}/{{key}}"),
            get(text).put(put_text).delete(remove_text),
        )
}

fn all(realm: &Realm) -> Option<&Map<String, Value>> {
    realm.extra.get(FIELD).and_then(Value::as_object)
}

fn all_mut(realm: &mut Realm) -> Option<&mut Map<String, Value>> {
    realm.extra.get_mut(FIELD)?.as_object_mut()
}

fn locale_texts<'a>(realm: &'a Realm, locale: &str) -> Option<&'a Map<String, Value>> {
    all(realm)?.get(locale)?.as_object()
}

/// Changes one locale's texts with `f`, creating them if need be.
fn edit_texts(realm: &mut Realm, locale: &str, f: impl FnOnce(&mut Map<String, Value>)) {
    let mut all = match realm.extra.remove(FIELD) {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    let mut texts = match all.remove(locale) {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    f(&mut texts);
    all.insert(locale.to_owned(), Value::Object(texts));
    realm.extra.insert(FIELD.to_owned(), Value::Object(all));
}

/// A locale tag as Keycloak accepts them (`en`, `pt-BR`, `zh-Hant-TW`).
fn check_locale(locale: &str) -> Result<(), AdminError> {
    let ok = !locale.is_empty()
        && locale.len() <= 35
        && locale
            .split(['-', '_'])
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric()));
    if ok {
        Ok(())
    } else {
        Err(AdminError::bad_request("Invalid locale"))
    }
}

async fn save(
    idp: &Idp,
    caller: &super::AdminCaller,
    realm: &Realm,
    path: &str,
    rep: Option<&Value>,
) -> Result<StatusCode, AdminError> {
    let ev = event(realm, caller, "UPDATE", "REALM_LOCALIZATION", path, rep);
    idp.store.update_realm(realm, &[ev]).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The locales that have texts of their own.
async fn locales(RealmAdmin { realm, .. }: RealmAdmin) -> Json<Value> {
    let mut names: Vec<&String> = all(&realm)
        .map(|m| {
            m.iter()
                .filter(|(_, v)| v.as_object().is_some_and(|o| !o.is_empty()))
                .map(|(k, _)| k)
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    Json(json!(names))
}

async fn texts(
    RealmAdmin { realm, .. }: RealmAdmin,
    Path((_, locale)): Path<(String, String)>,
) -> Json<Value> {
    Json(Value::Object(
        locale_texts(&realm, &locale).cloned().unwrap_or_default(),
    ))
}

/// Adds or replaces the texts of a JSON object (`{"key": "text"}`).
async fn import(
    RealmAdmin { idp, caller, realm }: RealmAdmin,
    Path((_, locale)): Path<(String, String)>,
    body: Bytes,
) -> Result<StatusCode, AdminError> {
    let (mut realm, _edit) = super::realm_for_edit(&idp, &realm).await?;
    check_locale(&locale)?;
    let rep = super::json_body(&body)?;
    let Some(new) = rep.as_object() else {
        return Err(AdminError::bad_request("Expected an object of texts"));
    };
    if new.values().any(|v| !v.is_string()) {
        return Err(AdminError::bad_request("Texts must be strings"));
    }
    edit_texts(&mut realm, &locale, |texts| {
        for (k, v) in new {
            texts.insert(k.clone(), v.clone());
        }
    });
    save(
        &idp,
        &caller,
        &realm,
        &format!("localization/{locale}"),
        Some(&rep),
    )
    .await
}

async fn remove_locale(
    RealmAdmin { idp, caller, realm }: RealmAdmin,
    Path((_, locale)): Path<(String, String)>,
) -> Result<StatusCode, AdminError> {
    let (mut realm, _edit) = super::realm_for_edit(&idp, &realm).await?;
    let removed = all_mut(&mut realm).and_then(|m| m.remove(&locale));
    if removed.is_none() {
        return Err(AdminError::not_found(&format!(
            "No localization texts for locale {locale} found."
        )));
    }
    save(
        &idp,
        &caller,
        &realm,
        &format!("localization/{locale}"),
        None,
    )
    .await
}

async fn text(
    RealmAdmin { realm, .. }: RealmAdmin,
    Path((_, locale, key)): Path<(String, String, String)>,
) -> Result<Response, AdminError> {
    match locale_texts(&realm, &locale)
        .and_then(|m| m.get(&key))
        .and_then(Value::as_str)
    {
        Some(t) => Ok((
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            t.to_owned(),
        )
            .into_response()),
        None => Err(AdminError::not_found(&format!(
            "Key {key} does not exist for locale {locale}"
        ))),
    }
}

/// Sets one text; the body is the text itself (`text/plain`).
async fn put_text(
    RealmAdmin { idp, caller, realm }: RealmAdmin,
    Path((_, locale, key)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<StatusCode, AdminError> {
    let (mut realm, _edit) = super::realm_for_edit(&idp, &realm).await?;
    check_locale(&locale)?;
    let value = String::from_utf8(body.to_vec())
        .map_err(|_| AdminError::bad_request("The text must be UTF-8"))?;
    edit_texts(&mut realm, &locale, |texts| {
        texts.insert(key.clone(), json!(value));
    });
    save(
        &idp,
        &caller,
        &realm,
        &format!("localization/{locale}/{key}"),
        None,
    )
    .await
}

async fn remove_text(
    RealmAdmin { idp, caller, realm }: RealmAdmin,
    Path((_, locale, key)): Path<(String, String, String)>,
) -> Result<StatusCode, AdminError> {
    let (mut realm, _edit) = super::realm_for_edit(&idp, &realm).await?;
    let gone = all_mut(&mut realm).and_then(|m| m.get_mut(&locale)?.as_object_mut()?.remove(&key));
    if gone.is_none() {
        return Err(AdminError::not_found(&format!(
            "Key {key} does not exist for locale {locale}"
        )));
    }
    save(
        &idp,
        &caller,
        &realm,
        &format!("localization/{locale}/{key}"),
        None,
    )
    .await
}
