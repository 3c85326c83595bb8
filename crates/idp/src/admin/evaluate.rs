//! `/admin/realms/{realm}/clients/{id}/evaluate-scopes/...`: Keycloak's
//! "Client scopes → Evaluate" tab. Shows what a client's tokens would
//! carry for a user and a `scope` value without anyone logging in: the
//! mappers in effect, the roles the client may see, and example access
//! token, ID token and userinfo claims, built by the same code as real
//! tokens (unsigned, no session).

use super::RealmAdmin;
use crate::error::AdminError;
use crate::tokens::{self, Grant};
use axum::Json;
use axum::extract::{Path, Query};
use axum::routing::get;
use gatehouse_core::model::{Client, Realm, Role, User};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;

/// Evaluate routes.
pub fn routes() -> axum::Router<Arc<crate::state::Idp>> {
    const E: &str = "/admin/realms/{realm}/clients/{id}/evaluate-scopes";
    axum::Router::new()
        .route(&format!("{E}/protocol-mappers"), get(mappers))
        .route(
            &format!("{E}/scope-mappings/{{container}}/granted"),
            get(scope_roles::<true>),
        )
        .route(
            &format!("{E}/scope-mappings/{{container}}/not-granted"),
            get(scope_roles::<false>),
        )
        .route(
            &format!("{E}/generate-example-access-token"),
            get(example_token::<false>),
        )
        .route(
            &format!("{E}/generate-example-id-token"),
            get(example_token::<true>),
        )
        .route(
            &format!("{E}/generate-example-userinfo"),
            get(example_userinfo),
        )
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct EvalQuery {
    scope: Option<String>,
    user_id: Option<String>,
}

/// The `scope` a token request with `asked` would be granted (400 for a
/// scope the client does not have, as at the token endpoint).
async fn scope_of(
    idp: &crate::state::Idp,
    realm: &Realm,
    client: &Client,
    asked: Option<&str>,
) -> Result<String, AdminError> {
    let all = idp.client_scopes(realm).await?;
    Ok(tokens::granted_scope(client, &all, asked)?)
}

/// `protocol-mappers`: every mapper in effect, with where it comes from.
async fn mappers(
    RealmAdmin { idp, realm, .. }: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
    Query(q): Query<EvalQuery>,
) -> Result<Json<Value>, AdminError> {
    let client = super::clients::load(&idp, &realm, &id).await?;
    let scope = scope_of(&idp, &realm, &client, q.scope.as_deref()).await?;
    let all = idp.client_scopes(&realm).await?;
    let mut out = vec![];
    for s in tokens::effective_scopes(&client, &all, &scope) {
        if s.protocol != "openid-connect" {
            continue;
        }
        for m in &s.protocol_mappers {
            out.push(
                json!({"mapperId": m.id, "mapperName": m.name, "containerId": s.id,
                            "containerName": s.name, "containerType": "client-scope",
                            "protocolMapper": m.protocol_mapper}),
            );
        }
    }
    for m in &client.protocol_mappers {
        out.push(
            json!({"mapperId": m.id, "mapperName": m.name, "containerId": client.id,
                        "containerName": client.client_id, "containerType": "client",
                        "protocolMapper": m.protocol_mapper}),
        );
    }
    Ok(Json(json!(out)))
}

/// The roles of `container` (a realm's name or id, or a client's id) and
/// which of them the client's tokens may carry with `scope` asked.
async fn split_roles(
    idp: &crate::state::Idp,
    realm: &Realm,
    client: &Client,
    container: &str,
    scope: Option<&str>,
) -> Result<(Vec<Role>, Vec<Role>), AdminError> {
    let owner = if container == realm.name || container == realm.id {
        None
    } else {
        Some(super::clients::load(idp, realm, container).await?.id)
    };
    let roles = idp.store.roles(&realm.id, owner.as_deref()).await?;
    if client.full_scope_allowed || owner.as_deref() == Some(client.id.as_str()) {
        return Ok((roles, vec![]));
    }
    let granted = scope_of(idp, realm, client, scope).await?;
    let all = idp.client_scopes(realm).await?;
    let scopes = tokens::effective_scopes(client, &all, &granted);
    let allowed: BTreeSet<String> =
        tokens::expand_roles(idp, realm, &tokens::mapped_role_ids(client, &scopes))
            .await?
            .into_iter()
            .map(|r| r.id)
            .collect();
    Ok(roles.into_iter().partition(|r| allowed.contains(&r.id)))
}

/// `scope-mappings/{container}/granted` (`GRANTED`): the container's
/// roles the client's tokens may carry; `.../not-granted`: the others.
async fn scope_roles<const GRANTED: bool>(
    RealmAdmin { idp, realm, .. }: RealmAdmin,
    Path((_, id, container)): Path<(String, String, String)>,
    Query(q): Query<EvalQuery>,
) -> Result<Json<Value>, AdminError> {
    let client = super::clients::load(&idp, &realm, &id).await?;
    let (yes, no) = split_roles(&idp, &realm, &client, &container, q.scope.as_deref()).await?;
    super::roles::render_all(&idp, if GRANTED { &yes } else { &no }, &realm).await
}

/// The client, user and granted scope of an example token request. The
/// example shows what the tokens say about the user (e-mail, name, roles,
/// attributes): an administrator of clients who may not view users is
/// refused it (Keycloak's CVE-2026-37978).
async fn example(
    idp: &crate::state::Idp,
    RealmAdmin { realm, caller, .. }: &RealmAdmin,
    id: &str,
    q: &EvalQuery,
) -> Result<(Client, User, String), AdminError> {
    if !caller.holds(&["view-users", "manage-users"]) {
        return Err(AdminError::new(
            axum::http::StatusCode::FORBIDDEN,
            "HTTP 403 Forbidden",
        ));
    }
    let client = super::clients::load(idp, realm, id).await?;
    let user_id = q
        .user_id
        .as_deref()
        .ok_or_else(|| AdminError::not_found("No userId provided"))?;
    let user = idp
        .store
        .user(&realm.id, user_id)
        .await?
        .ok_or_else(|| AdminError::not_found("No user found"))?;
    let scope = scope_of(idp, realm, &client, q.scope.as_deref()).await?;
    Ok((client, user, scope))
}

async fn example_claims(
    admin: &RealmAdmin,
    id: &str,
    q: &EvalQuery,
    id_token: bool,
) -> Result<Value, AdminError> {
    let idp = &admin.idp;
    let (client, user, scope) = example(idp, admin, id, q).await?;
    let g = Grant {
        realm: &admin.realm,
        client: &client,
        user: &user,
        session: None,
        scope,
        nonce: None,
        resources: vec![],
        refresh: false,
        dpop: None,
    };
    let c = tokens::claims(idp, &g, gatehouse_core::time::now(), id_token).await?;
    Ok(Value::Object(match c.id {
        Some(it) if id_token => it,
        _ => c.access,
    }))
}

/// `generate-example-access-token?scope=&userId=`, or with `ID` the
/// `generate-example-id-token`.
async fn example_token<const ID: bool>(
    admin: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
    Query(q): Query<EvalQuery>,
) -> Result<Json<Value>, AdminError> {
    Ok(Json(example_claims(&admin, &id, &q, ID).await?))
}

/// `generate-example-userinfo?scope=&userId=`.
async fn example_userinfo(
    admin: RealmAdmin,
    Path((_, id)): Path<(String, String)>,
    Query(q): Query<EvalQuery>,
) -> Result<Json<Value>, AdminError> {
    let (client, user, scope) = example(&admin.idp, &admin, &id, &q).await?;
    Ok(Json(
        tokens::userinfo(&admin.idp, &admin.realm, &client, (&user, None), &scope).await?,
    ))
}
