//! Dynamic client registration (RFC 7591 / 7592) at Keycloak's
//! `/realms/{realm}/clients-registrations/openid-connect`, with initial
//! access tokens from `/admin/realms/{realm}/clients-initial-access`.

use crate::support::*;
use reqwest::Method;
use serde_json::{Value, json};

/// POSTs JSON with a bearer token to a registration or admin URL.
async fn post(s: &Server, url: &str, token: &str, body: &Value) -> reqwest::Response {
    s.http
        .post(url)
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("send")
}

/// Sends a bodyless request with a bearer token.
async fn send_as(s: &Server, method: Method, url: &str, token: &str) -> reqwest::Response {
    s.http
        .request(method, url)
        .bearer_auth(token)
        .send()
        .await
        .expect("send")
}

/// Creates an initial access token through the admin API.
async fn initial_token(s: &Server, admin: &str, count: i64, expiration: i64) -> Value {
    let r = post(
        s,
        &format!("{}/admin/realms/demo/clients-initial-access", s.base),
        admin,
        &json!({"count": count, "expiration": expiration}),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("location"));
    r.json().await.expect("json")
}

#[tokio::test]
async fn clients_register_themselves_with_an_initial_access_token() {
    let s = start().await;
    s.demo_realm().await;
    let admin = s.admin_token().await;
    let reg_url = format!(
        "{}/realms/demo/clients-registrations/openid-connect",
        s.base
    );
    let disco = s.discovery("demo").await;
    assert_eq!(disco["registration_endpoint"], reg_url.as_str());

    // Negative values are refused in Keycloak's words.
    let url = format!("{}/admin/realms/demo/clients-initial-access", s.base);
    for (body, error) in [
        (json!({"count": -1}), "Invalid value for count"),
        (json!({"expiration": -5}), "Invalid value for expiration"),
    ] {
        let r = post(&s, &url, &admin, &body).await;
        assert_eq!(r.status(), 400);
        assert_eq!(r.json::<Value>().await.expect("json")["error"], error);
    }
    let ia = initial_token(&s, &admin, 1, 600).await;
    let ia_token = ia["token"].as_str().expect("token");
    assert_eq!(ia["remainingCount"], 1);
    let meta = json!({
        "client_name": "Reporting job",
        "redirect_uris": ["https://reports.example/cb"],
        "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
        "token_endpoint_auth_method": "client_secret_basic",
        "post_logout_redirect_uris": ["https://reports.example/bye"],
        "backchannel_logout_uri": "https://reports.example/backchannel",
        "frontchannel_logout_uri": "https://reports.example/frontchannel",
        "frontchannel_logout_session_required": false,
    });

    // Without a token, with a stranger's token, with bad metadata: refused,
    // and the initial access token is not spent by a refusal.
    let r = s
        .http
        .post(&reg_url)
        .json(&meta)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.json::<Value>().await.expect("json")["error"],
        "insufficient_scope"
    );
    let r = post(&s, &reg_url, "eyJhbGciOiJIUzUxMiJ9.e30.AAAA", &meta).await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<Value>().await.expect("json")["error"],
        "invalid_token"
    );
    for (bad, error) in [
        (
            json!({"redirect_uris": ["https://x.example/cb#frag"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": ["javascript:alert(1)"]}),
            "invalid_redirect_uri",
        ),
        (json!({"redirect_uris": []}), "invalid_redirect_uri"),
        (
            json!({"client_id": "mine", "redirect_uris": ["https://x.example/cb"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": ["https://x.example/cb"], "grant_types": ["implicit"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": ["https://x.example/cb"], "response_types": ["token"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": ["https://x.example/cb"], "token_endpoint_auth_method": "tls_client_auth"}),
            "invalid_client_metadata",
        ),
        (
            json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "none"}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": "https://x.example/cb"}),
            "invalid_client_metadata",
        ),
        (json!(["not", "an", "object"]), "invalid_client_metadata"),
        (
            json!({"redirect_uris": ["https://x.example/cb"], "backchannel_logout_uri": "https://x.example/bc#f"}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": ["https://x.example/cb"], "backchannel_logout_session_required": "yes"}),
            "invalid_client_metadata",
        ),
    ] {
        let r = post(&s, &reg_url, ia_token, &bad).await;
        assert_eq!(r.status(), 400, "{bad}");
        assert_eq!(
            r.json::<Value>().await.expect("json")["error"],
            error,
            "{bad}"
        );
    }

    // Registration.
    let r = post(&s, &reg_url, ia_token, &meta).await;
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let loc = r.headers()["location"].to_str().expect("loc").to_owned();
    let reg: Value = r.json().await.expect("json");
    let client_id = reg["client_id"].as_str().expect("client_id").to_owned();
    let secret = reg["client_secret"].as_str().expect("secret").to_owned();
    let rat = reg["registration_access_token"]
        .as_str()
        .expect("registration token")
        .to_owned();
    assert_eq!(reg["registration_client_uri"], loc.as_str());
    assert_eq!(loc, format!("{reg_url}/{client_id}"));
    assert_eq!(reg["client_secret_expires_at"], 0);
    assert!(reg["client_id_issued_at"].as_i64().is_some());
    assert_eq!(reg["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(reg["client_name"], "Reporting job");
    assert_eq!(
        reg["grant_types"],
        json!(["authorization_code", "refresh_token", "client_credentials"])
    );
    assert_eq!(
        reg["post_logout_redirect_uris"],
        json!(["https://reports.example/bye"])
    );
    assert_eq!(
        reg["backchannel_logout_uri"],
        "https://reports.example/backchannel"
    );
    assert_eq!(reg["backchannel_logout_session_required"], true);
    assert_eq!(
        reg["frontchannel_logout_uri"],
        "https://reports.example/frontchannel"
    );
    assert_eq!(reg["frontchannel_logout_session_required"], false);

    // The token was for one registration: the next is refused.
    let r = post(&s, &reg_url, ia_token, &meta).await;
    assert_eq!(r.status(), 401);
    let (_, list) = s.admin_get(&admin, "/demo/clients-initial-access").await;
    assert_eq!(list[0]["remainingCount"], 0);
    assert!(list[0].get("token").is_none());

    // The new client is a real client: it gets tokens, and admins see it.
    let r = s
        .http
        .post(s.token_url("demo"))
        .basic_auth(&client_id, Some(&secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let (status, found) = s
        .admin_get(&admin, &format!("/demo/clients?clientId={client_id}"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(found[0]["name"], "Reporting job");
    assert_eq!(
        found[0]["attributes"]["backchannel.logout.url"],
        "https://reports.example/backchannel"
    );
    assert_eq!(
        found[0]["redirectUris"],
        json!(["https://reports.example/cb"])
    );

    // Read with the registration access token; a stranger's client is not
    // readable with it, nor this one without it.
    let r = send_as(&s, Method::GET, &loc, &rat).await;
    assert_eq!(r.status(), 200);
    let got: Value = r.json().await.expect("json");
    assert_eq!(got["client_id"], client_id.as_str());
    assert_eq!(got["client_secret"], secret.as_str());
    let app = format!("{reg_url}/app");
    let r = send_as(&s, Method::GET, &app, &rat).await;
    assert_eq!(r.status(), 401);
    let r = s.http.get(&loc).send().await.expect("send");
    assert_eq!(r.status(), 401);
    let r = send_as(&s, Method::GET, &loc, ia_token).await;
    assert_eq!(r.status(), 401);

    // Update: the body must name the client; the token rotates.
    let mut new_meta = meta.clone();
    new_meta["client_id"] = json!(client_id);
    new_meta["redirect_uris"] = json!(["https://reports.example/cb2"]);
    new_meta["grant_types"] = json!(["authorization_code"]);
    let r = s
        .http
        .put(&loc)
        .bearer_auth(&rat)
        .json(&json!({"client_id": "someone-else", "redirect_uris": ["https://x.example/cb"]}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 400);
    let r = s
        .http
        .put(&loc)
        .bearer_auth(&rat)
        .json(&new_meta)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let upd: Value = r.json().await.expect("json");
    assert_eq!(upd["redirect_uris"], json!(["https://reports.example/cb2"]));
    assert_eq!(upd["grant_types"], json!(["authorization_code"]));
    let rat2 = upd["registration_access_token"]
        .as_str()
        .expect("rat2")
        .to_owned();
    assert_ne!(rat2, rat);
    let r = send_as(&s, Method::GET, &loc, &rat).await;
    assert_eq!(r.status(), 401, "the rotated-out token no longer works");
    // The update took effect at once: no more client credentials.
    let r = s
        .http
        .post(s.token_url("demo"))
        .basic_auth(&client_id, Some(&secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("send");
    assert_eq!(
        r.json::<Value>().await.expect("json")["error"],
        "unauthorized_client"
    );

    // An admin can issue a new registration access token (Keycloak's
    // clients/{id}/registration-access-token); the old one stops working.
    let uuid = s.client_uuid(&admin, "demo", &client_id).await;
    let r = s
        .http
        .post(format!(
            "{}/admin/realms/demo/clients/{uuid}/registration-access-token",
            s.base
        ))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let rep: Value = r.json().await.expect("json");
    assert_eq!(rep["clientId"], client_id.as_str());
    let rat3 = rep["registrationAccessToken"]
        .as_str()
        .expect("t")
        .to_owned();
    let r = send_as(&s, Method::GET, &loc, &rat2).await;
    assert_eq!(r.status(), 401);
    let r = send_as(&s, Method::GET, &loc, &rat3).await;
    assert_eq!(r.status(), 200);
    let rat2 = rat3;

    // Delete; the client is gone for every purpose.
    let r = send_as(&s, Method::DELETE, &loc, &rat2).await;
    assert_eq!(r.status(), 204);
    let r = send_as(&s, Method::GET, &loc, &rat2).await;
    assert_eq!(r.status(), 401);
    let (_, found) = s
        .admin_get(&admin, &format!("/demo/clients?clientId={client_id}"))
        .await;
    assert_eq!(found, json!([]));

    // Events record each step.
    let (_, events) = s
        .admin_get(&admin, &format!("/demo/events?client={client_id}"))
        .await;
    let kinds: Vec<&str> = events
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["clientId"] == client_id.as_str())
        .filter_map(|e| e["type"].as_str())
        .collect();
    for k in [
        "CLIENT_REGISTER",
        "CLIENT_INFO",
        "CLIENT_UPDATE",
        "CLIENT_DELETE",
    ] {
        assert!(kinds.contains(&k), "{k} in {kinds:?}");
    }
}

#[tokio::test]
async fn public_clients_and_admin_registration_and_token_lifecycle() {
    let s = start().await;
    s.demo_realm().await;
    let admin = s.admin_token().await;
    let reg_url = format!(
        "{}/realms/demo/clients-registrations/openid-connect",
        s.base
    );
    // A master admin may register without an initial access token.
    let r = post(
        &s,
        &reg_url,
        &admin,
        &json!({"redirect_uris": ["com.example.app:/oauth"], "token_endpoint_auth_method": "none"}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let reg: Value = r.json().await.expect("json");
    assert_eq!(reg["token_endpoint_auth_method"], "none");
    assert!(reg.get("client_secret").is_none());
    // A public client still needs PKCE at the authorization endpoint.
    let r = s
        .http
        .get(format!(
            "{}/realms/demo/protocol/openid-connect/auth",
            s.base
        ))
        .query(&[
            ("response_type", "code"),
            ("client_id", reg["client_id"].as_str().expect("id")),
            ("redirect_uri", "com.example.app:/oauth"),
        ])
        .send()
        .await
        .expect("send");
    let loc =
        reqwest::Url::parse(r.headers()["location"].to_str().expect("location")).expect("url");
    assert!(loc.as_str().starts_with("com.example.app:/oauth?"), "{loc}");
    let error = loc
        .query_pairs()
        .find(|(k, _)| k == "error")
        .map(|(_, v)| v.into_owned());
    assert_eq!(error.as_deref(), Some("invalid_request"), "{loc}");

    // Counts, expiry and revocation of initial access tokens.
    let two = initial_token(&s, &admin, 2, 0).await;
    let meta = json!({"redirect_uris": ["https://a.example/cb"]});
    for expected in [201, 201, 401] {
        let r = s
            .http
            .post(&reg_url)
            .bearer_auth(two["token"].as_str().expect("t"))
            .json(&meta)
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), expected);
    }
    let revoked = initial_token(&s, &admin, 5, 0).await;
    let r = s
        .http
        .delete(format!(
            "{}/admin/realms/demo/clients-initial-access/{}",
            s.base,
            revoked["id"].as_str().expect("id")
        ))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 204);
    let r = s
        .http
        .post(&reg_url)
        .bearer_auth(revoked["token"].as_str().expect("t"))
        .json(&meta)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);
    // A refresh token of the realm (same signing secret) is not an
    // initial access token.
    let t: Value = s.alice_tokens(None).await;
    let r = s
        .http
        .post(&reg_url)
        .bearer_auth(t["refresh_token"].as_str().expect("rt"))
        .json(&meta)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);
    // Nor does a realm's token reach another realm's registration.
    let r = s
        .http
        .post(format!(
            "{}/realms/master/clients-registrations/openid-connect",
            s.base
        ))
        .bearer_auth(two["token"].as_str().expect("t"))
        .json(&meta)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);
}

/// Keycloak's `default` provider: Keycloak's ClientRepresentation in and
/// out, as Keycloak's own scripts use it, under its default policies.
#[tokio::test]
async fn keycloak_default_provider_registers_a_client_representation() {
    let s = start().await;
    s.demo_realm().await;
    let admin = s.admin_token().await;
    let url = format!("{}/realms/demo/clients-registrations/default", s.base);
    let ia = initial_token(&s, &admin, 3, 0).await;
    let ia_token = ia["token"].as_str().expect("token");

    // Policies: no hardcoded-claim mapper (it would mint claims an API
    // trusts), no client scope the realm does not hand out by default.
    for (bad, what) in [
        (
            json!({"clientId": "sneaky", "protocolMappers": [{"name": "admin", "protocol": "openid-connect",
                "protocolMapper": "oidc-hardcoded-claim-mapper",
                "config": {"claim.name": "groups", "claim.value": "admins", "access.token.claim": "true"}}]}),
            "Allowed Protocol Mapper Types",
        ),
        (
            json!({"clientId": "sneaky", "defaultClientScopes": ["orders:write"]}),
            "Allowed Client Scopes",
        ),
    ] {
        let r = post(&s, &url, ia_token, &bad).await;
        assert_eq!(r.status(), 403);
        let body: Value = r.json().await.expect("json");
        assert_eq!(body["error"], "insufficient_scope");
        assert!(
            body["error_description"]
                .as_str()
                .expect("d")
                .contains(what),
            "{body}"
        );
    }
    // Invalid client data is refused before the token is spent.
    let r = post(
        &s,
        &url,
        ia_token,
        &json!({"clientId": "bad-uri", "redirectUris": ["javascript:alert(1)"]}),
    )
    .await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.expect("json")["error"],
        "invalid_client_metadata"
    );
    let (_, list) = s.admin_get(&admin, "/demo/clients-initial-access").await;
    assert_eq!(list[0]["remainingCount"], 3, "refusals spend nothing");

    let r = post(&s, &url, ia_token, &json!({"clientId": "billing-job", "name": "Billing", "serviceAccountsEnabled": true,
            "protocolMappers": [{"name": "full name", "protocol": "openid-connect",
                "protocolMapper": "oidc-full-name-mapper", "config": {"access.token.claim": "true"}}]})).await;
    assert_eq!(r.status(), 201);
    assert_eq!(
        r.headers()["location"],
        format!("{url}/billing-job").as_str()
    );
    let rep: Value = r.json().await.expect("json");
    assert_eq!(rep["clientId"], "billing-job");
    assert!(rep["id"].as_str().is_some_and(|id| id.len() == 36));
    let secret = rep["secret"].as_str().expect("secret").to_owned();
    let rat = rep["registrationAccessToken"]
        .as_str()
        .expect("token")
        .to_owned();
    let r = s
        .http
        .post(s.token_url("demo"))
        .basic_auth("billing-job", Some(&secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    // The same clientId again is refused.
    let r = post(&s, &url, ia_token, &json!({"clientId": "billing-job"})).await;
    assert_eq!(r.status(), 400);

    let one = format!("{url}/billing-job");
    let r = send_as(&s, Method::GET, &one, &rat).await;
    assert_eq!(r.status(), 200);
    let mut got: Value = r.json().await.expect("json");
    assert_eq!(got["name"], "Billing");
    got["redirectUris"] = json!(["https://billing.example/cb"]);
    let r = s
        .http
        .put(&one)
        .bearer_auth(&rat)
        .json(&got)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let upd: Value = r.json().await.expect("json");
    assert_eq!(upd["redirectUris"], json!(["https://billing.example/cb"]));
    let rat2 = upd["registrationAccessToken"]
        .as_str()
        .expect("t")
        .to_owned();
    assert_ne!(rat2, rat);
    let r = send_as(&s, Method::GET, &one, &rat).await;
    assert_eq!(r.status(), 401);
    let r = send_as(&s, Method::DELETE, &one, &rat2).await;
    assert_eq!(r.status(), 204);
    let (_, found) = s
        .admin_get(&admin, "/demo/clients?clientId=billing-job")
        .await;
    assert_eq!(found, json!([]));
}

/// Anonymous registration (what MCP clients do) under Keycloak's
/// client-registration policies, managed through the components API.
#[tokio::test]
async fn anonymous_registration_follows_the_realms_policies() {
    let s = start().await;
    let admin = s.demo_realm().await;
    let reg_url = format!(
        "{}/realms/demo/clients-registrations/openid-connect",
        s.base
    );
    let anonymous = |redirect: &'static str| {
        let (s, url) = (&s, reg_url.clone());
        async move {
            s.http
                .post(url)
                .json(&json!({"client_name": "agent", "redirect_uris": [redirect],
                    "token_endpoint_auth_method": "none"}))
                .send()
                .await
                .expect("send")
        }
    };
    // Keycloak's defaults: no host is trusted, so nobody registers anonymously.
    let r = anonymous("http://127.0.0.1/cb").await;
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["error"], "insufficient_scope");
    assert!(
        body["error_description"]
            .as_str()
            .expect("text")
            .contains("Trusted Hosts")
    );

    let type_q = "org.keycloak.services.clientregistration.policy.ClientRegistrationPolicy";
    let (st, policies) = s
        .admin_get(&admin, &format!("/demo/components?type={type_q}"))
        .await;
    assert_eq!(st, 200);
    let list = policies.as_array().expect("list").clone();
    assert_eq!(list.len(), 8, "{policies}");
    let find = |provider: &str, sub: &str| {
        list.iter()
            .find(|p| p["providerId"] == provider && p["subType"] == sub)
            .unwrap_or_else(|| panic!("{provider}/{sub}"))
            .clone()
    };
    let trusted = find("trusted-hosts", "anonymous");
    assert_eq!(
        find("max-clients", "anonymous")["config"]["max-clients"],
        json!(["200"])
    );
    let path = |id: &Value| format!("/demo/components/{}", id.as_str().expect("id"));

    // Trust this host: the request passes, a URI elsewhere does not.
    let mut t = trusted.clone();
    t["config"]["trusted-hosts"] = json!(["127.0.0.1"]);
    assert_eq!(
        s.admin_put(&admin, &path(&trusted["id"]), Some(&t)).await,
        204
    );
    let r = anonymous("https://evil.example/cb").await;
    assert_eq!(r.status(), 403);
    let r = anonymous("http://127.0.0.1/cb").await;
    assert_eq!(r.status(), 201);
    let reg: Value = r.json().await.expect("json");
    let client_id = reg["client_id"].as_str().expect("client id");
    // The anonymous policies shaped it: consent required, no full scope.
    let (_, found) = s
        .admin_get(&admin, &format!("/demo/clients?clientId={client_id}"))
        .await;
    assert_eq!(found[0]["consentRequired"], true);
    assert_eq!(found[0]["fullScopeAllowed"], false);

    // Without the Trusted Hosts policy anyone registers, up to the limit.
    assert_eq!(s.admin_delete(&admin, &path(&trusted["id"])).await, 204);
    assert_eq!(anonymous("https://agent.example/cb").await.status(), 201);
    let (_, clients) = s.admin_get(&admin, "/demo/clients").await;
    let count = clients.as_array().expect("clients").len();
    let mut max = find("max-clients", "anonymous");
    max["config"]["max-clients"] = json!([count.to_string()]);
    assert_eq!(
        s.admin_put(&admin, &path(&max["id"]), Some(&max)).await,
        204
    );
    let r = anonymous("https://agent.example/cb").await;
    assert_eq!(r.status(), 403);
    let (_, now) = s
        .admin_get(&admin, &format!("/demo/components?type={type_q}"))
        .await;
    assert_eq!(now.as_array().expect("list").len(), 7);

    // Only registration policies Gatehouse enforces can be written.
    for bad in [
        json!({"name": "ldap", "providerId": "ldap", "providerType": "org.keycloak.storage.UserStorageProvider"}),
        json!({"name": "x", "providerId": "nope", "providerType": type_q, "subType": "anonymous"}),
        json!({"name": "x", "providerId": "max-clients", "providerType": type_q, "subType": "anonymous",
            "config": {"max-clients": ["many"]}}),
    ] {
        let (st, _) = s.admin_post(&admin, "/demo/components", &bad).await;
        assert_eq!(st, 400, "{bad}");
    }
    let (st, loc) = s
        .admin_post(&admin, "/demo/components", &json!({"name": "Trusted Hosts",
            "providerId": "trusted-hosts", "providerType": type_q, "subType": "anonymous",
            "config": {"trusted-hosts": ["*.agents.example"], "host-sending-registration-request-must-match": ["false"]}}))
        .await;
    assert_eq!(st, 201);
    assert!(loc.expect("location").contains("/components/"));
    max["config"]["max-clients"] = json!(["1000"]);
    assert_eq!(
        s.admin_put(&admin, &path(&max["id"]), Some(&max)).await,
        204
    );
    assert_eq!(anonymous("https://a.agents.example/cb").await.status(), 201);
    assert_eq!(
        anonymous("https://agents.example.evil/cb").await.status(),
        403
    );
}

/// Signing and encryption metadata Gatehouse cannot honour is refused
/// with `invalid_client_metadata` instead of being stored and ignored; an
/// ID token algorithm discovery lists is accepted and echoed.
#[tokio::test]
async fn unsupported_signing_and_encryption_metadata_is_refused() {
    let s = start().await;
    s.demo_realm().await;
    let admin = s.admin_token().await;
    let reg_url = format!(
        "{}/realms/demo/clients-registrations/openid-connect",
        s.base
    );
    let disco = s.discovery("demo").await;
    assert_eq!(
        disco["id_token_signing_alg_values_supported"],
        json!([
            "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"
        ])
    );
    let base = json!({"redirect_uris": ["https://rp.example/cb"]});
    let with = |field: &str, v: Value| {
        let mut m = base.clone();
        m[field] = v;
        m
    };
    let iat = initial_token(&s, &admin, 20, 0).await;
    let iat = iat["token"].as_str().expect("token").to_owned();
    for (field, value) in [
        ("id_token_signed_response_alg", json!("HS256")),
        ("id_token_signed_response_alg", json!("none")),
        ("id_token_encrypted_response_alg", json!("RSA-OAEP")),
        ("userinfo_signed_response_alg", json!("HS256")),
        ("userinfo_encrypted_response_alg", json!("RSA-OAEP")),
        ("request_object_signing_alg", json!("RSA-OAEP")),
        ("subject_type", json!("ephemeral")),
        ("token_endpoint_auth_signing_alg", json!("none")),
    ] {
        let r = post(&s, &reg_url, &iat, &with(field, value.clone())).await;
        assert_eq!(r.status(), 400, "{field}: {value}");
        let v: Value = r.json().await.expect("json");
        assert_eq!(v["error"], "invalid_client_metadata", "{field}");
        assert!(
            v["error_description"]
                .as_str()
                .is_some_and(|d| d.contains(field)),
            "{v}"
        );
    }
    // Any asymmetric algorithm discovery lists is taken, kept as
    // Keycloak's client attribute, and given back.
    let mut ok = with("id_token_signed_response_alg", json!("ES256"));
    ok["userinfo_signed_response_alg"] = json!("none");
    ok["request_uris"] = json!(["https://rp.example/req/1", "https://rp.example/req/2"]);
    ok["subject_type"] = json!("public");
    ok["token_endpoint_auth_signing_alg"] = json!("ES256");
    let r = post(&s, &reg_url, &iat, &ok).await;
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["id_token_signed_response_alg"], "ES256");
    let id = s
        .client_uuid(&admin, "demo", v["client_id"].as_str().expect("id"))
        .await;
    let (_, rep) = s.admin_get(&admin, &format!("/demo/clients/{id}")).await;
    assert_eq!(rep["attributes"]["id.token.signed.response.alg"], "ES256");
    assert_eq!(
        rep["attributes"]["request.uris"],
        "https://rp.example/req/1##https://rp.example/req/2"
    );
    assert_eq!(v["request_uris"][1], "https://rp.example/req/2");
    // Without it, the realm's.
    let r = post(&s, &reg_url, &iat, &base).await;
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["id_token_signed_response_alg"], "RS256");
}
