//! Keycloak's Client Admin API v2 (`/admin/api/{realm}/clients/v2`):
//! declarative clients named by `clientId`, whole-replacement PUT, merge
//! PATCH, exact role sets, and the SCIM-subset listing.

use crate::support::{Server, claims, start};
use serde_json::{Value, json};

/// Sends an admin v2 call and gives (status, JSON body or null).
async fn call(
    s: &Server,
    t: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut r = s
        .http
        .request(method, format!("{}/admin/api/v2r/clients/v2{path}", s.base))
        .bearer_auth(t);
    if let Some(b) = body {
        r = r
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let r = r.send().await.expect("send");
    let st = r.status().as_u16();
    (st, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn clients_v2_are_declarative_and_their_listing_filters() {
    let s = start().await;
    let t = s.admin_token().await;
    let (st, _) = s
        .admin_post(&t, "", &json!({"realm": "v2r", "enabled": true}))
        .await;
    assert_eq!(st, 201);
    s.admin_post(&t, "/v2r/roles", &json!({"name": "auditor"}))
        .await;
    use reqwest::Method;

    // PUT creates (201) and answers the whole client, secret made.
    let svc = json!({"clientId": "svc", "enabled": true, "displayName": "Service",
        "loginFlows": ["SERVICE_ACCOUNT"], "auth": {"method": "client-secret"},
        "roles": ["read", "write"], "serviceAccountRoles": ["auditor", "read"]});
    let (st, made) = call(&s, &t, Method::PUT, "/svc", Some(svc.clone())).await;
    assert_eq!(st, 201, "{made}");
    let secret = made["auth"]["secret"].as_str().expect("secret").to_owned();
    assert_eq!(made["roles"], json!(["read", "write"]));
    assert!(
        made["serviceAccountRoles"]
            .as_array()
            .expect("sa roles")
            .contains(&json!("auditor"))
    );
    assert!(made["uuid"].is_string());
    // The client works: its service account's token carries the roles.
    let tok: Value = s
        .http
        .post(s.token_url("v2r"))
        .basic_auth("svc", Some(&secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("cc")
        .json()
        .await
        .expect("json");
    let c = claims(tok["access_token"].as_str().expect("token"));
    assert!(
        c["realm_access"]["roles"]
            .as_array()
            .expect("roles")
            .contains(&json!("auditor"))
    );
    assert_eq!(c["resource_access"]["svc"]["roles"], json!(["read"]));

    // PUT again replaces (200): what it leaves out goes.
    let (st, put) = call(
        &s,
        &t,
        Method::PUT,
        "/svc",
        Some(json!({"clientId": "svc",
        "loginFlows": ["SERVICE_ACCOUNT"], "auth": {"method": "client-secret", "secret": secret},
        "roles": ["read"], "serviceAccountRoles": ["read"]})),
    )
    .await;
    assert_eq!(st, 200, "{put}");
    assert_eq!(put["roles"], json!(["read"]));
    assert_eq!(put["serviceAccountRoles"], json!(["read"]));
    assert!(put.get("displayName").is_none());
    assert_eq!(put["enabled"], false);
    // PATCH merges; null removes.
    let (st, patched) = call(
        &s,
        &t,
        Method::PATCH,
        "/svc",
        Some(json!({"displayName": "Svc", "enabled": true, "description": "d"})),
    )
    .await;
    assert_eq!(st, 200, "{patched}");
    let (_, patched) = call(
        &s,
        &t,
        Method::PATCH,
        "/svc",
        Some(json!({"description": null})),
    )
    .await;
    assert_eq!(
        (
            patched["displayName"].as_str(),
            patched["enabled"].as_bool()
        ),
        (Some("Svc"), Some(true))
    );
    assert!(patched.get("description").is_none());
    assert_eq!(patched["auth"]["secret"], secret, "the secret stays");

    // Refusals, as Keycloak's.
    let (st, _) = call(&s, &t, Method::POST, "", Some(json!({"clientId": "svc"}))).await;
    assert_eq!(st, 409);
    for (path, body) in [
        ("/svc", json!({"clientId": "other"})),
        ("/svc", json!({"clientId": "svc", "uuid": "not-its-uuid"})),
        ("/svc", json!({"clientId": "svc", "secretive": true})),
        ("/svc", json!({"clientId": "svc", "protocol": "cas"})),
        (
            "/svc",
            json!({"clientId": "svc", "loginFlows": ["SERVICE_ACCOUNT"], "serviceAccountRoles": ["nope"], "auth": {"method": "client-secret", "secret": "x"}}),
        ),
        (
            "/svc",
            json!({"clientId": "svc", "redirectUris": ["javascript:alert(1)"], "loginFlows": ["STANDARD"]}),
        ),
    ] {
        let (st, e) = call(&s, &t, Method::PUT, path, Some(body.clone())).await;
        assert_eq!(st, 400, "{body} -> {e}");
    }
    // A refused call changed nothing.
    let (_, now) = call(&s, &t, Method::GET, "/svc", None).await;
    assert_eq!(now, patched);
    let (st, _) = call(&s, &t, Method::PATCH, "/ghost", Some(json!({}))).await;
    assert_eq!(st, 404);
    let (st, _) = call(&s, &t, Method::GET, "/ghost", None).await;
    assert_eq!(st, 404);

    // The listing: filter on the whole representation, sort, slice, project.
    for (id, flows) in [
        ("web-b", json!(["STANDARD"])),
        ("Web-a", json!(["STANDARD", "DIRECT_GRANT"])),
    ] {
        let (st, _) = call(
            &s,
            &t,
            Method::POST,
            "",
            Some(json!({"clientId": id, "enabled": true,
            "loginFlows": flows, "redirectUris": [format!("https://{id}/cb")]})),
        )
        .await;
        assert_eq!(st, 201);
    }
    let ids = |v: &Value| -> Vec<String> {
        v.as_array()
            .expect("list")
            .iter()
            .map(|c| c["clientId"].as_str().expect("id").to_owned())
            .collect()
    };
    let list = |q: &'static str| {
        let (s, t) = (&s, &t);
        async move {
            let r = s
                .http
                .get(format!("{}/admin/api/v2r/clients/v2?{q}", s.base))
                .bearer_auth(t)
                .send()
                .await
                .expect("list");
            let st = r.status().as_u16();
            (st, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (_, v) =
        list("q=clientId%20sw%20%22web%22%20or%20clientId%20sw%20%22Web%22&sort=clientId").await;
    assert_eq!(ids(&v), ["Web-a", "web-b"], "case-insensitive sort");
    let (_, v) = list(
        "q=loginFlows%20eq%20%22DIRECT_GRANT%22%20and%20clientId%20ew%20%22-a%22&fields=clientId",
    )
    .await;
    assert_eq!(v, json!([{"clientId": "Web-a"}]));
    let (_, v) = list("q=redirectUris%20co%20%22web-b%22%20and%20not%20(auth%20pr)").await;
    assert_eq!(ids(&v), ["web-b"]);
    let (_, v) = list("q=enabled%20eq%20true&sort=clientId%7Cdesc&limit=2&offset=1").await;
    assert_eq!(ids(&v), ["Web-a", "svc"]);
    for bad in [
        "q=clientId%20gt%20%22a%22",
        "q=secret%20eq%20%22x%22",
        "q=clientId%20eq",
        "sort=roles",
        "fields=password",
        "limit=x",
    ] {
        assert_eq!(list(bad).await.0, 400, "{bad}");
    }

    // The v1 API sees the same clients; DELETE removes one.
    let (_, v1) = s.admin_get(&t, "/v2r/clients?clientId=svc").await;
    assert_eq!(v1[0]["name"], "Svc");
    assert_eq!(v1[0]["serviceAccountsEnabled"], true);
    let (st, _) = call(&s, &t, Method::DELETE, "/web-b", None).await;
    assert_eq!(st, 204);
    let (st, _) = call(&s, &t, Method::DELETE, "/web-b", None).await;
    assert_eq!(st, 404);
    // Without an admin token: 401.
    let r = s
        .http
        .get(format!("{}/admin/api/v2r/clients/v2", s.base))
        .send()
        .await
        .expect("anon");
    assert_eq!(r.status(), 401);
}
