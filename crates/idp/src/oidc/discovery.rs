//! `GET /realms/{realm}/.well-known/openid-configuration`: OIDC Discovery
//! 1.0 metadata, with the fields Keycloak publishes.

use crate::error::OAuthError;
use crate::state::Idp;
use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};
use std::sync::Arc;

/// The discovery document.
pub async fn get(
    State(idp): State<Arc<Idp>>,
    Path(realm): Path<String>,
) -> Result<Json<Value>, OAuthError> {
    let realm = idp.realm(&realm).await?;
    Ok(Json(document(&idp, &realm).await?))
}

/// The realm's metadata (also the base of its UMA metadata,
/// `authz::protection`).
pub async fn document(
    idp: &Idp,
    realm: &gatehouse_core::model::Realm,
) -> Result<Value, OAuthError> {
    let iss = idp.issuer(&realm.name);
    let mut prompts = vec!["none", "login", "consent"];
    if crate::oidc::auth::registration_allowed(realm) {
        prompts.push("create");
    }
    let p = format!("{iss}/protocol/openid-connect");
    // What ID tokens can be signed with: the realm's algorithm, or the
    // one a client picks (`keyring.rs`), as Keycloak lists them.
    let algs: Vec<&str> = gatehouse_jose::keys::Alg::ALL
        .iter()
        .map(|a| a.as_str())
        .collect();
    let auth_methods = [
        "client_secret_basic",
        "client_secret_post",
        "client_secret_jwt",
        "private_key_jwt",
    ];
    // As Keycloak: `openid`, then the realm's OpenID Connect client
    // scopes, less those with `include.in.openid.provider.metadata` off.
    let scopes: Vec<String> = std::iter::once("openid".to_owned())
        .chain(
            idp.client_scopes(realm)
                .await?
                .iter()
                .filter(|c| c.protocol == "openid-connect")
                .filter(|c| {
                    c.attributes
                        .get("include.in.openid.provider.metadata")
                        .map(String::as_str)
                        != Some("false")
                })
                .map(|c| c.name.clone()),
        )
        .collect();
    let assertion_algs = [
        "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA", "HS256",
        "HS384", "HS512",
    ];
    let mut metadata = json!({
        "issuer": iss,
        "authorization_endpoint": format!("{p}/auth"),
        "token_endpoint": format!("{p}/token"),
        "introspection_endpoint": format!("{p}/token/introspect"),
        "userinfo_endpoint": format!("{p}/userinfo"),
        "end_session_endpoint": format!("{p}/logout"),
        "check_session_iframe": format!("{p}/login-status-iframe.html"),
        "revocation_endpoint": format!("{p}/revoke"),
        "pushed_authorization_request_endpoint": format!("{p}/ext/par/request"),
        "require_pushed_authorization_requests": false,
        "device_authorization_endpoint": format!("{p}/auth/device"),
        "jwks_uri": format!("{p}/certs"),
        "registration_endpoint": format!("{iss}/clients-registrations/openid-connect"),
        "frontchannel_logout_session_supported": true,
        "frontchannel_logout_supported": true,
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
        "grant_types_supported": ["authorization_code", "client_credentials", "password", "refresh_token",
            "urn:ietf:params:oauth:grant-type:device_code",
            "urn:ietf:params:oauth:grant-type:token-exchange",
            "urn:ietf:params:oauth:grant-type:uma-ticket"],
        // The implicit and hybrid ones only for clients with implicitFlowEnabled.
        "response_types_supported": ["code", "id_token", "token", "id_token token",
            "code id_token", "code token", "code id_token token"],
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["public", "pairwise"],
        "id_token_signing_alg_values_supported": algs,
        "userinfo_signing_alg_values_supported": algs.iter().copied().chain(["none"]).collect::<Vec<_>>(),
        "introspection_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint_auth_signing_alg_values_supported": assertion_algs,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_signing_alg_values_supported": assertion_algs,
        "token_endpoint_auth_methods_supported": auth_methods,
        "token_endpoint_auth_signing_alg_values_supported": assertion_algs,
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": scopes,
        "claims_supported": ["aud", "sub", "iss", "auth_time", "name", "given_name", "family_name",
            "preferred_username", "email", "email_verified", "acr", "azp", "sid", "groups"],
        "claims_parameter_supported": true,
        "request_parameter_supported": true,
        "request_object_signing_alg_values_supported": crate::oidc::request_object::algorithms().collect::<Vec<_>>(),
        "request_uri_parameter_supported": true,
        "require_request_uri_registration": true,
        // As Keycloak: `create` only where the realm lets people register.
        "prompt_values_supported": prompts,
        "tls_client_certificate_bound_access_tokens": false,
        "dpop_signing_alg_values_supported": gatehouse_jose::dpop::ALGORITHMS,
        "authorization_response_iss_parameter_supported": true,
    });
    // Only normal claims (no aggregated or distributed ones), and
    // Keycloak's two levels without step-up (the `acr` claim's values).
    // Set apart: one more key in the literal passes `json!`'s recursion limit.
    metadata["claim_types_supported"] = json!(["normal"]);
    metadata["acr_values_supported"] = json!(["0", "1"]);
    Ok(metadata)
}
