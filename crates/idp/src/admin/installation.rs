//! `GET /admin/realms/{realm}/clients/{id}/installation/providers/{provider}`:
//! the adapter configuration Keycloak's console offers under "Action →
//! Download adapter config", so scripts that fetch a client's
//! `keycloak.json` keep working.
//!
//! Providers: `keycloak-oidc-keycloak-json` (the OIDC adapter JSON) and
//! `keycloak-oidc-jboss-subsystem` (the WildFly subsystem XML fragment).

use super::RealmAdmin;
use crate::error::AdminError;
use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use gatehouse_core::model::{Client, Realm};
use serde_json::json;
use std::sync::Arc;

/// The installation route.
pub fn routes() -> axum::Router<Arc<crate::state::Idp>> {
    axum::Router::new().route(
        "/admin/realms/{realm}/clients/{id}/installation/providers/{provider}",
        axum::routing::get(get),
    )
}

async fn get(
    RealmAdmin { idp, realm, .. }: RealmAdmin,
    Path((_, id, provider)): Path<(String, String, String)>,
) -> Result<Response, AdminError> {
    let client = super::clients::load(&idp, &realm, &id).await?;
    // Keycloak's adapters want the server root, with a trailing slash.
    let server = format!("{}/", idp.public_url.trim_end_matches('/'));
    match provider.as_str() {
        "keycloak-oidc-keycloak-json" => Ok((
            [(header::CONTENT_TYPE, "application/json")],
            adapter_json(&realm, &client, &server),
        )
            .into_response()),
        "keycloak-oidc-jboss-subsystem" => Ok((
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            subsystem_xml(&realm, &client, &server),
        )
            .into_response()),
        _ => Err(AdminError::not_found("Unknown Provider id")),
    }
}

/// The OIDC adapter's `keycloak.json`, fields in Keycloak's order.
fn adapter_json(realm: &Realm, c: &Client, server: &str) -> String {
    let mut o = serde_json::Map::new();
    o.insert("realm".into(), json!(realm.name));
    if c.bearer_only {
        o.insert("bearer-only".into(), json!(true));
    }
    o.insert("auth-server-url".into(), json!(server));
    o.insert("ssl-required".into(), json!("external"));
    o.insert("resource".into(), json!(c.client_id));
    if c.public_client {
        o.insert("public-client".into(), json!(true));
    } else if let Some(s) = &c.secret {
        o.insert("credentials".into(), json!({ "secret": s }));
    }
    o.insert("confidential-port".into(), json!(0));
    serde_json::to_string_pretty(&o).unwrap_or_default()
}

/// The `<secure-deployment>` element of WildFly's Keycloak subsystem.
fn subsystem_xml(realm: &Realm, c: &Client, server: &str) -> String {
    let mut x = String::from("<secure-deployment name=\"WAR MODULE NAME.war\">\n");
    let line = |x: &mut String, tag: &str, v: &str| {
        x.push_str(&format!("    <{tag}>{}</{tag}>\n", xml_text(v)));
    };
    line(&mut x, "realm", &realm.name);
    line(&mut x, "auth-server-url", server);
    if c.bearer_only {
        line(&mut x, "bearer-only", "true");
    }
    line(&mut x, "ssl-required", "EXTERNAL");
    line(&mut x, "resource", &c.client_id);
    if c.public_client {
        line(&mut x, "public-client", "true");
    } else if let Some(s) = &c.secret {
        x.push_str(&format!(
            "    <credential name=\"secret\">{}</credential>\n",
            xml_text(s)
        ));
    }
    x.push_str("</secure-deployment>\n");
    x
}

fn xml_text(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adapter_files_name_the_client_and_escape_xml() {
        let realm = Realm::new("demo");
        let mut c = Client::new(&realm.id, "a<b");
        c.secret = Some("s&t".into());
        let j: serde_json::Value =
            serde_json::from_str(&adapter_json(&realm, &c, "http://h/")).expect("JSON");
        assert_eq!(j["resource"], "a<b");
        assert_eq!(j["credentials"]["secret"], "s&t");
        assert_eq!(j["auth-server-url"], "http://h/");
        let x = subsystem_xml(&realm, &c, "http://h/");
        assert!(x.contains("<resource>a&lt;b</resource>"));
        assert!(x.contains("<credential name=\"secret\">s&amp;t</credential>"));
        c.public_client = true;
        let j: serde_json::Value =
            serde_json::from_str(&adapter_json(&realm, &c, "http://h/")).expect("JSON");
        assert_eq!(j["public-client"], true);
        assert!(j.get("credentials").is_none());
    }
}
