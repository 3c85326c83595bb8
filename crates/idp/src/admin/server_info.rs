//! `GET /admin/serverinfo`: what Keycloak's admin console, the admin
//! clients and Terraform's provider read before anything else (version,
//! profile, protocol mapper types, crypto). Gatehouse answers with the
//! Keycloak API level it follows and what it actually supports, so tools
//! that gate features on it see the truth.

use crate::error::AdminError;
use crate::state::Idp;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// The Keycloak release whose admin API and representations Gatehouse
/// follows (tools compare `systemInfo.version` against it).
pub const KEYCLOAK_API_LEVEL: &str = "26.0.0";

static STARTED: OnceLock<Instant> = OnceLock::new();

/// Server-info route (its construction marks the start for `uptime`).
pub fn routes() -> Router<Arc<Idp>> {
    STARTED.get_or_init(Instant::now);
    Router::new().route("/admin/serverinfo", get(server_info))
}

/// The protocol mappers tokens are built from: `(id, display name, category)`.
const MAPPERS: &[(&str, &str, &str)] = &[
    ("oidc-audience-mapper", "Audience", "Token mapper"),
    (
        "oidc-audience-resolve-mapper",
        "Audience Resolve",
        "Token mapper",
    ),
    (
        "oidc-group-membership-mapper",
        "Group Membership",
        "Token mapper",
    ),
    (
        "oidc-organization-membership-mapper",
        "Organization Membership",
        "Token mapper",
    ),
    (
        "oidc-organization-group-membership-mapper",
        "Organization Group Membership",
        "Token mapper",
    ),
    (
        "oidc-organization-role-membership-mapper",
        "Organization Role Membership",
        "Token mapper",
    ),
    (
        "oidc-usermodel-attribute-mapper",
        "User Attribute",
        "Token mapper",
    ),
    (
        "oidc-usermodel-property-mapper",
        "User Property",
        "Token mapper",
    ),
    (
        "oidc-hardcoded-claim-mapper",
        "Hardcoded claim",
        "Token mapper",
    ),
    (
        "oidc-usermodel-realm-role-mapper",
        "User Realm Role",
        "Token mapper",
    ),
    (
        "oidc-usermodel-client-role-mapper",
        "User Client Role",
        "Token mapper",
    ),
    ("oidc-full-name-mapper", "User's full name", "Token mapper"),
    (
        "oidc-claims-param-token-mapper",
        "Claims parameter Token",
        "Token mapper",
    ),
    ("oidc-address-mapper", "User Address", "Token mapper"),
    (
        "oidc-acr-mapper",
        "Authentication Context Class Reference (ACR)",
        "Token mapper",
    ),
    (
        "oidc-allowed-origins-mapper",
        "Allowed Web Origins",
        "Token mapper",
    ),
    (
        "oidc-usersessionmodel-note-mapper",
        "User Session Note",
        "Token mapper",
    ),
];

fn uptime_text(ms: u128) -> String {
    let s = ms / 1000;
    format!(
        "{} days, {} hours, {} minutes, {} seconds",
        s / 86_400,
        s / 3600 % 24,
        s / 60 % 60,
        s % 60
    )
}

async fn server_info(State(idp): State<Arc<Idp>>, h: HeaderMap) -> Result<Json<Value>, AdminError> {
    // Any administrator, also a realm's own (Terraform's provider reads
    // this first, whichever realm its client lives in).
    super::guard_any(&idp, &h).await?;
    let up = STARTED.get_or_init(Instant::now).elapsed().as_millis();
    let mapper_types: Vec<Value> = MAPPERS
        .iter()
        .enumerate()
        .map(|(i, (id, name, cat))| {
            json!({"id": id, "name": name, "category": cat, "helpText": "", "priority": i, "properties": []})
        })
        .collect();
    let asymmetric = [
        "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
    ];
    Ok(Json(json!({
        "systemInfo": {
            "version": KEYCLOAK_API_LEVEL,
            "gatehouseVersion": env!("CARGO_PKG_VERSION"),
            "serverTime": rfc3339_now(),
            "uptime": uptime_text(up),
            "uptimeMillis": up as u64,
            "osName": std::env::consts::OS,
            "osArchitecture": std::env::consts::ARCH,
            "fileEncoding": "UTF-8",
            "userTimezone": "UTC",
        },
        "profileInfo": {"name": "community", "disabledFeatures": [], "previewFeatures": [], "experimentalFeatures": []},
        "features": [],
        "themes": {},
        "socialProviders": [],
        "identityProviders": [],
        "clientImporters": [],
        "providers": {},
        "protocolMapperTypes": {"openid-connect": mapper_types},
        "builtinProtocolMappers": {"openid-connect": []},
        "clientInstallations": {},
        "componentTypes": {},
        "passwordPolicies": [],
        "enums": {"sslRequired": ["all", "external", "none"]},
        "cryptoInfo": {
            "cryptoProvider": "aws-lc-rs",
            "supportedKeystoreTypes": [],
            "clientSignatureSymmetricAlgorithms": [],
            "clientSignatureAsymmetricAlgorithms": asymmetric,
        },
    })))
}

/// The current time as Keycloak prints `serverTime` (RFC 3339, UTC).
fn rfc3339_now() -> String {
    let ms = gatehouse_core::time::now_millis();
    let secs = ms.div_euclid(1000);
    let (y, m, d) = gatehouse_core::time::civil_from_days(secs.div_euclid(86_400));
    let t = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        t / 3600,
        t / 60 % 60,
        t % 60
    )
}
