//! Keycloak's Account REST API (`/realms/{realm}/account/...`) and the
//! built-in clients it rests on, driven over HTTP with users' own tokens.

use crate::support::{claims, start};
use serde_json::{Value, json};

/// A call to the Account API with `token`: (status, JSON body or Null).
async fn call(
    s: &crate::support::Server,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut r = s
        .http
        .request(method, format!("{}/realms/demo/account{path}", s.base))
        .header("accept", "application/json")
        .bearer_auth(token);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.expect("send");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn at(tokens: &Value) -> String {
    tokens["access_token"]
        .as_str()
        .expect("access token")
        .to_owned()
}

#[tokio::test]
async fn every_realm_has_admin_cli_and_account_and_tokens_carry_account_roles() {
    let s = start().await;
    let admin = s.demo_realm().await;
    for client in ["admin-cli", "account"] {
        let (st, found) = s
            .admin_get(&admin, &format!("/demo/clients?clientId={client}"))
            .await;
        assert_eq!(
            (st, found.as_array().map(Vec::len)),
            (200, Some(1)),
            "{client}"
        );
    }
    let (_, roles) = s
        .admin_get(&admin, "/demo/roles/default-roles-demo/composites")
        .await;
    let mut names: Vec<&str> = roles
        .as_array()
        .expect("composites")
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "manage-account",
            "offline_access",
            "uma_authorization",
            "view-profile"
        ]
    );
    // Scripts log in to any realm through admin-cli, as with Keycloak.
    let t = s
        .password_tokens("demo", "admin-cli", None, "alice", "alice-pw", None)
        .await;
    let c = claims(&at(&t));
    assert_eq!(c["azp"], "admin-cli");
    let mut account_roles: Vec<&str> = c["resource_access"]["account"]["roles"]
        .as_array()
        .expect("account roles")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    account_roles.sort_unstable();
    assert_eq!(
        account_roles,
        ["manage-account", "manage-account-links", "view-profile"]
    );
    assert!(
        c["aud"] == "account"
            || c["aud"]
                .as_array()
                .is_some_and(|a| a.contains(&json!("account"))),
        "{c}"
    );
    // A realm export carries them; importing it makes no second copy.
    let export = s.export("demo").await;
    let listed = |e: &Value, id: &str| {
        e["clients"]
            .as_array()
            .expect("clients")
            .iter()
            .filter(|c| c["clientId"] == id)
            .count()
    };
    assert_eq!(listed(&export, "account"), 1);
    assert_eq!(s.admin_delete(&admin, "/demo").await, 204);
    s.import(&export).await;
    let again = s.export("demo").await;
    assert_eq!(listed(&again, "account"), 1);
    assert_eq!(listed(&again, "admin-cli"), 1);
}

#[tokio::test]
async fn account_api_profile_sessions_credentials_groups_and_applications() {
    let s = start().await;
    let admin = s.demo_realm().await;
    let first = s.alice_tokens(None).await;
    let tokens = s.alice_tokens(None).await;
    let token = at(&tokens);
    let get = reqwest::Method::GET;
    let post = reqwest::Method::POST;
    let delete = reqwest::Method::DELETE;

    // Profile, with the user profile's metadata unless asked not to.
    let (st, me) = call(&s, get.clone(), "", &token, None).await;
    assert_eq!(st, 200);
    assert_eq!(me["username"], "alice");
    assert_eq!(me["firstName"], "Alice");
    let meta = me["userProfileMetadata"]["attributes"]
        .as_array()
        .expect("metadata");
    let username = meta
        .iter()
        .find(|a| a["name"] == "username")
        .expect("username");
    assert_eq!(username["readOnly"], true, "editUsernameAllowed is off");
    let (_, brief) = call(&s, get.clone(), "/?userProfileMetadata=false", &token, None).await;
    assert!(brief.get("userProfileMetadata").is_none());

    // The profile's rules for the user's own role: Keycloak's default
    // requires a last name, which alice lacks, and refuses markup in names.
    let (st, body) = call(
        &s,
        post.clone(),
        "",
        &token,
        Some(json!({"firstName": "Alicia", "email": "alicia@example.com"})),
    )
    .await;
    assert_eq!(st, 400);
    assert_eq!(
        body,
        json!({"errors": [{"field": "lastName", "errorMessage": "error-user-attribute-required",
            "params": ["${lastName}"]}], "field": "lastName",
            "errorMessage": "error-user-attribute-required", "params": ["${lastName}"]})
    );
    let (st, body) = call(
        &s,
        post.clone(),
        "",
        &token,
        Some(json!({"firstName": "<b>Alicia</b>", "lastName": "Liddell"})),
    )
    .await;
    assert_eq!(
        (st, &body["errorMessage"]),
        (400, &json!("error-person-name-invalid-character"))
    );

    // Update: changed fields land, the new address is not verified yet,
    // an UPDATE_PROFILE event names the change.
    let (st, _) = call(
        &s,
        post.clone(),
        "",
        &token,
        Some(json!({"firstName": "Alicia", "lastName": "Liddell", "email": "alicia@example.com"})),
    )
    .await;
    assert_eq!(st, 204);
    let (_, me) = call(&s, get.clone(), "", &token, None).await;
    assert_eq!(
        (&me["firstName"], &me["email"], &me["emailVerified"]),
        (
            &json!("Alicia"),
            &json!("alicia@example.com"),
            &json!(false)
        )
    );
    let (_, events) = s
        .admin_get(&admin, "/demo/events?type=UPDATE_PROFILE")
        .await;
    assert_eq!(events[0]["details"]["updated_email"], "alicia@example.com");
    // What the profile does not let a user change, and taken addresses.
    let (st, err) = call(
        &s,
        post.clone(),
        "",
        &token,
        Some(json!({"username": "mallory"})),
    )
    .await;
    assert_eq!((st, &err["field"]), (400, &json!("username")));
    assert_eq!(err["errorMessage"], "error-user-attribute-read-only");
    s.admin_create(
        &admin,
        "/demo/users",
        &json!({"username": "bob", "email": "bob@example.com", "enabled": true}),
    )
    .await;
    let (st, err) = call(
        &s,
        post.clone(),
        "",
        &token,
        Some(json!({"email": "bob@example.com"})),
    )
    .await;
    assert_eq!(
        (st, &err["errorMessage"]),
        (409, &json!("emailExistsMessage"))
    );
    let (st, _) = call(&s, post.clone(), "", &token, Some(json!("not an object"))).await;
    assert_eq!(st, 400);

    // Browser apps call it cross-origin: the preflight allows its methods,
    // the answer the origins of the token's client.
    let pre = s
        .http
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/realms/demo/account/sessions", s.base),
        )
        .header("origin", "http://127.0.0.1")
        .header("access-control-request-method", "DELETE")
        .send()
        .await
        .expect("send");
    let methods = pre
        .headers()
        .get("access-control-allow-methods")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(methods.contains("DELETE"), "{methods}");
    let app = s.client_uuid(&admin, "demo", "app").await;
    assert_eq!(
        s.admin_put(
            &admin,
            &format!("/demo/clients/{app}"),
            Some(&json!({"webOrigins": ["http://127.0.0.1"]}))
        )
        .await,
        204
    );
    let r = s
        .http
        .get(format!("{}/realms/demo/account/groups", s.base))
        .header("origin", "http://127.0.0.1")
        .bearer_auth(&token)
        .send()
        .await
        .expect("send");
    assert_eq!(
        r.headers()
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some("http://127.0.0.1")
    );

    // Groups and applications.
    let (_, groups) = call(&s, get.clone(), "/groups", &token, None).await;
    assert_eq!(groups[0]["path"], "/sales");
    let (_, apps) = call(&s, get.clone(), "/applications", &token, None).await;
    let app = apps
        .as_array()
        .expect("apps")
        .iter()
        .find(|a| a["clientId"] == "app")
        .expect("app listed");
    assert_eq!(
        (&app["inUse"], &app["offlineAccess"]),
        (&json!(true), &json!(false))
    );

    // Consent: granted by scope id, read back, withdrawn.
    let (_, scopes) = s.admin_get(&admin, "/demo/client-scopes").await;
    let orders = scopes
        .as_array()
        .expect("scopes")
        .iter()
        .find(|c| c["name"] == "orders:read")
        .expect("orders:read")["id"]
        .clone();
    let (st, consent) = call(
        &s,
        post.clone(),
        "/applications/app/consent",
        &token,
        Some(json!({"grantedScopes": [{"id": orders}]})),
    )
    .await;
    assert_eq!(
        (st, &consent["grantedScopes"][0]["name"]),
        (200, &json!("orders:read"))
    );
    let (st, _) = call(&s, get.clone(), "/applications/app/consent", &token, None).await;
    assert_eq!(st, 200);
    let (st, _) = call(
        &s,
        post.clone(),
        "/applications/app/consent",
        &token,
        Some(json!({"grantedScopes": [{"id": "no-such-scope"}]})),
    )
    .await;
    assert_eq!(st, 400);
    let (st, _) = call(
        &s,
        get.clone(),
        "/applications/nobody/consent",
        &token,
        None,
    )
    .await;
    assert_eq!(st, 404);

    // Credentials: the password (no secret shown) and the OTP type to set
    // up; labels are the user's to set.
    let (_, creds) = call(&s, get.clone(), "/credentials", &token, None).await;
    assert_eq!(creds[0]["type"], "password");
    assert_eq!(creds[1]["type"], "otp");
    assert_eq!(creds[1]["createAction"], "CONFIGURE_TOTP");
    let password = &creds[0]["userCredentialMetadatas"][0]["credential"];
    assert!(password.get("secretData").is_none());
    let id = password["id"].as_str().expect("credential id");
    let label = s
        .http
        .put(format!(
            "{}/realms/demo/account/credentials/{id}/label",
            s.base
        ))
        .bearer_auth(&token)
        .json(&json!("Laptop password"))
        .send()
        .await
        .expect("send");
    assert_eq!(label.status(), 204);
    let (_, creds) = call(&s, get.clone(), "/credentials?type=password", &token, None).await;
    assert_eq!(creds.as_array().map(Vec::len), Some(1));
    assert_eq!(
        creds[0]["userCredentialMetadatas"][0]["credential"]["userLabel"],
        "Laptop password"
    );
    let missing = s
        .http
        .put(format!(
            "{}/realms/demo/account/credentials/nope/label",
            s.base
        ))
        .bearer_auth(&token)
        .json(&json!("x"))
        .send()
        .await
        .expect("send");
    assert_eq!(missing.status(), 404);

    // Sessions: both sign-ins, this token's marked current; signing out of
    // the others ends the first one only; then all of them.
    let (_, sessions) = call(&s, get.clone(), "/sessions", &token, None).await;
    let sessions = sessions.as_array().expect("sessions").clone();
    assert_eq!(sessions.len(), 2);
    assert_eq!(sessions.iter().filter(|x| x["current"] == true).count(), 1);
    assert_eq!(sessions[0]["clients"][0]["clientId"], "app");
    let (_, devices) = call(&s, get.clone(), "/sessions/devices", &token, None).await;
    assert_eq!(devices[0]["sessions"].as_array().map(Vec::len), Some(2));
    let rt = |t: &Value| t["refresh_token"].as_str().expect("rt").to_owned();
    let (st, _) = call(&s, delete.clone(), "/sessions", &token, None).await;
    assert_eq!(st, 204);
    assert_eq!(
        s.refresh_status("demo", ("app", "app-secret"), &rt(&first))
            .await,
        400
    );
    let (st, _) = call(&s, get.clone(), "/sessions", &token, None).await;
    assert_eq!(st, 200, "the current session stays");
    let (st, _) = call(&s, delete.clone(), "/sessions?current=true", &token, None).await;
    assert_eq!(st, 204);
    let (st, _) = call(&s, get.clone(), "", &token, None).await;
    assert_eq!(st, 401, "the token's session ended");
}

#[tokio::test]
async fn account_api_checks_audience_roles_service_accounts_and_the_account_client() {
    let s = start().await;
    let admin = s.demo_realm().await;
    let get = reqwest::Method::GET;
    let post = reqwest::Method::POST;
    // A client without full scope, allowed only `view-profile` of account:
    // it may read the profile, not change it.
    let account = s.client_uuid(&admin, "demo", "account").await;
    let (_, view) = s
        .admin_get(
            &admin,
            &format!("/demo/clients/{account}/roles/view-profile"),
        )
        .await;
    let narrow = s
        .admin_create(
            &admin,
            "/demo/clients",
            &json!({"clientId": "narrow", "secret": "narrow-secret", "directAccessGrantsEnabled": true,
                    "fullScopeAllowed": false}),
        )
        .await;
    let (st, _) = s
        .admin_post(
            &admin,
            &format!("/demo/clients/{narrow}/scope-mappings/clients/{account}"),
            &json!([view]),
        )
        .await;
    assert_eq!(st, 204);
    let t = at(&s
        .password_tokens(
            "demo",
            "narrow",
            Some("narrow-secret"),
            "alice",
            "alice-pw",
            None,
        )
        .await);
    assert_eq!(call(&s, get.clone(), "", &t, None).await.0, 200);
    assert_eq!(
        call(&s, post.clone(), "", &t, Some(json!({"firstName": "Eve"})))
            .await
            .0,
        403
    );
    assert_eq!(call(&s, get.clone(), "/groups", &t, None).await.0, 403);
    // Nothing of account in the token: not for this API.
    let none = s
        .admin_create(
            &admin,
            "/demo/clients",
            &json!({"clientId": "none", "secret": "none-secret", "directAccessGrantsEnabled": true,
                    "fullScopeAllowed": false}),
        )
        .await;
    assert!(!none.is_empty());
    let t = at(&s
        .password_tokens(
            "demo",
            "none",
            Some("none-secret"),
            "alice",
            "alice-pw",
            None,
        )
        .await);
    let r = s
        .http
        .get(format!("{}/realms/demo/account", s.base))
        .bearer_auth(&t)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    // A service account has no account to manage.
    let sa = s.service_token("demo", "app", "app-secret").await;
    assert_eq!(call(&s, get.clone(), "", &sa, None).await.0, 401);
    // Without an enabled account client, the API is not there.
    let user_token = at(&s.alice_tokens(None).await);
    assert_eq!(
        s.admin_put(
            &admin,
            &format!("/demo/clients/{account}"),
            Some(&json!({"enabled": false}))
        )
        .await,
        204
    );
    assert_eq!(call(&s, get, "", &user_token, None).await.0, 404);
}
