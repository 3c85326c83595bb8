//! Pairwise subject identifiers (Keycloak's
//! `oidc-sha256-pairwise-sub-mapper`): each client sees a user under a
//! `sub` of its sector, in access and ID tokens and userinfo, and the
//! server still finds the user behind it.

use crate::support::{Server, claims, start};
use serde_json::{Value, json};

/// A confidential client with direct grants, redirect URI `redirect`
/// and, with `salt`, Keycloak's pairwise mapper.
async fn client(s: &Server, admin: &str, id: &str, redirect: &str, salt: Option<&str>) -> u16 {
    let mut rep = json!({"clientId": id, "secret": "pw-secret", "directAccessGrantsEnabled": true,
        "serviceAccountsEnabled": true, "redirectUris": [redirect]});
    if let Some(salt) = salt {
        let mut config = json!({});
        if !salt.is_empty() {
            config["pairwiseSubAlgorithmSalt"] = json!(salt);
        }
        rep["protocolMappers"] = json!([{"name": "pairwise", "protocol": "openid-connect",
            "protocolMapper": "oidc-sha256-pairwise-sub-mapper", "config": config}]);
    }
    s.admin_post(admin, "/demo/clients", &rep).await.0
}

async fn tokens(s: &Server, client: &str) -> Value {
    s.password_tokens(
        "demo",
        client,
        Some("pw-secret"),
        "alice",
        "alice-pw",
        Some("openid"),
    )
    .await
}

#[tokio::test]
async fn pairwise_clients_see_users_under_subjects_of_their_sector() {
    let s = start().await;
    let admin = s.demo_realm().await;
    let alice = s.user_id(&admin, "demo", "alice").await;
    for (id, redirect, salt) in [
        ("one", "https://one.example/cb", Some("shared")),
        ("one-too", "https://one.example/other", Some("shared")),
        ("two", "https://two.example/cb", Some("shared")),
        ("salted", "https://one.example/cb", Some("")),
        ("plain", "https://one.example/cb", None),
    ] {
        assert_eq!(client(&s, &admin, id, redirect, salt).await, 201, "{id}");
    }
    let t = tokens(&s, "one").await;
    let access = claims(t["access_token"].as_str().expect("at"));
    let id_token = claims(t["id_token"].as_str().expect("id"));
    let sub = access["sub"].as_str().expect("sub").to_owned();
    assert_ne!(sub, alice);
    assert_eq!(id_token["sub"], sub.as_str());
    assert_eq!(sub.len(), 36, "a UUID, as Keycloak's");
    // Stable; the same for the same sector and salt; another sector, or a
    // salt of the client's own (generated when none is set), another one.
    assert_eq!(
        claims(
            tokens(&s, "one").await["access_token"]
                .as_str()
                .expect("at")
        )["sub"],
        sub.as_str()
    );
    let sub_of = |t: Value| claims(t["access_token"].as_str().expect("at"))["sub"].clone();
    assert_eq!(sub_of(tokens(&s, "one-too").await), sub.as_str());
    assert_ne!(sub_of(tokens(&s, "two").await), sub.as_str());
    assert_ne!(sub_of(tokens(&s, "salted").await), sub.as_str());
    assert_eq!(sub_of(tokens(&s, "plain").await), alice.as_str());
    let cid = s.client_uuid(&admin, "demo", "salted").await;
    let (_, mappers) = s
        .admin_get(
            &admin,
            &format!("/demo/clients/{cid}/protocol-mappers/models"),
        )
        .await;
    assert!(
        mappers[0]["config"]["pairwiseSubAlgorithmSalt"]
            .as_str()
            .is_some_and(|x| x.len() > 16)
    );

    // The server still knows who it is: userinfo, introspection, refresh.
    let at = t["access_token"].as_str().expect("at");
    let r = s.userinfo("demo", at).await;
    assert_eq!(r.status(), 200);
    let info: Value = r.json().await.expect("json");
    assert_eq!(
        (info["sub"].as_str(), info["preferred_username"].as_str()),
        (Some(sub.as_str()), Some("alice"))
    );
    let intro: Value = s
        .http
        .post(format!(
            "{}/realms/demo/protocol/openid-connect/token/introspect",
            s.base
        ))
        .basic_auth("one", Some("pw-secret"))
        .form(&[("token", at)])
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(
        (intro["active"].as_bool(), intro["sub"].as_str()),
        (Some(true), Some(sub.as_str()))
    );
    let rt = t["refresh_token"].as_str().expect("rt");
    let refreshed: Value = s
        .refresh("demo", ("one", "pw-secret"), rt)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(sub_of(refreshed), sub.as_str());
    // A service account's token too (no session behind it).
    let sa = s.service_token("demo", "one", "pw-secret").await;
    let one = s.client_uuid(&admin, "demo", "one").await;
    let (_, account) = s
        .admin_get(&admin, &format!("/demo/clients/{one}/service-account-user"))
        .await;
    assert_ne!(claims(&sa)["sub"], account["id"]);
    assert_eq!(s.userinfo("demo", &sa).await.status(), 200);

    // The sector must be clear: redirect URIs on two hosts need a
    // sector identifier URI.
    assert_eq!(
        s.admin_post(
            &admin,
            "/demo/clients",
            &json!({"clientId": "split",
            "redirectUris": ["https://a.example/cb", "https://b.example/cb"],
            "protocolMappers": [{"name": "pairwise", "protocol": "openid-connect",
                "protocolMapper": "oidc-sha256-pairwise-sub-mapper", "config": {}}]})
        )
        .await
        .0,
        400
    );
    let plain = s.client_uuid(&admin, "demo", "plain").await;
    assert_eq!(s.admin_put(&admin, &format!("/demo/clients/{plain}"),
        Some(&json!({"clientId": "plain", "redirectUris": ["https://a.example/cb", "https://b.example/cb"]}))).await, 204);
    let (st, _) = s
        .admin_post(
            &admin,
            &format!("/demo/clients/{plain}/protocol-mappers/models"),
            &json!({"name": "pairwise", "protocol": "openid-connect",
                "protocolMapper": "oidc-sha256-pairwise-sub-mapper", "config": {}}),
        )
        .await;
    assert_eq!(st, 400);
    // Discovery says so.
    assert_eq!(
        s.discovery("demo").await["subject_types_supported"],
        json!(["public", "pairwise"])
    );

    // A disabled user's pairwise tokens are revoked for the gateway too.
    let iat = access["iat"].as_i64().expect("iat");
    assert_eq!(
        s.admin_put(
            &admin,
            &format!("/demo/users/{alice}"),
            Some(&json!({"enabled": false}))
        )
        .await,
        204
    );
    let token = gatehouse_core::revocation::TokenFacts {
        issuer: &format!("{}/realms/demo", s.base),
        client_id: None,
        sid: None,
        jti: None,
        sub: &sub,
        iat,
    };
    assert!(s.running.idp.revocations.is_revoked(&token));
}

/// Serves `body` as JSON at `/uris.json` on a loopback port.
async fn sector_document(body: Value) -> String {
    let app = axum::Router::new().route(
        "/uris.json",
        axum::routing::get(move || {
            let b = body.clone();
            async move { axum::Json(b) }
        }),
    );
    format!("{}/uris.json", crate::peers::serve(app).await)
}

#[tokio::test]
async fn registration_asks_for_pairwise_subjects_with_a_sector_document() {
    let s = start().await;
    let admin = s.demo_realm().await;
    let register = |meta: Value| {
        let s = &s;
        let admin = admin.clone();
        async move {
            let r = s
                .http
                .post(format!(
                    "{}/admin/realms/demo/clients-initial-access",
                    s.base
                ))
                .bearer_auth(&admin)
                .json(&json!({"count": 1, "expiration": 600}))
                .send()
                .await
                .expect("send");
            let iat: Value = r.json().await.expect("json");
            let r = s
                .http
                .post(format!(
                    "{}/realms/demo/clients-registrations/openid-connect",
                    s.base
                ))
                .bearer_auth(iat["token"].as_str().expect("token"))
                .json(&meta)
                .send()
                .await
                .expect("send");
            let st = r.status().as_u16();
            (st, r.json::<Value>().await.expect("json"))
        }
    };
    let uris = ["https://a.example/cb", "https://b.example/cb"];
    let listed = sector_document(json!(uris)).await;
    let partial = sector_document(json!([uris[0]])).await;
    let meta = |sector: &str| {
        json!({"redirect_uris": uris, "subject_type": "pairwise",
        "sector_identifier_uri": sector, "grant_types": ["client_credentials"]})
    };
    let (st, reg) = register(meta(&listed)).await;
    assert_eq!(st, 201, "{reg}");
    assert_eq!(
        (
            reg["subject_type"].as_str(),
            reg["sector_identifier_uri"].as_str()
        ),
        (Some("pairwise"), Some(listed.as_str()))
    );
    // A document that leaves a redirect URI out, or none on two hosts.
    let (st, err) = register(meta(&partial)).await;
    assert_eq!(
        (st, err["error"].as_str()),
        (400, Some("invalid_client_metadata"))
    );
    let (st, _) = register(json!({"redirect_uris": uris, "subject_type": "pairwise"})).await;
    assert_eq!(st, 400);
    // The registered client's tokens carry its pairwise subject, which
    // userinfo answers for.
    let id = reg["client_id"].as_str().expect("id");
    let secret = reg["client_secret"].as_str().expect("secret");
    let t = s.service_token("demo", id, secret).await;
    let sub = claims(&t)["sub"].as_str().expect("sub").to_owned();
    let r = s.userinfo("demo", &t).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.expect("json")["sub"], sub.as_str());
    let cid = s.client_uuid(&admin, "demo", id).await;
    let (_, account) = s
        .admin_get(&admin, &format!("/demo/clients/{cid}/service-account-user"))
        .await;
    assert_ne!(account["id"], sub.as_str());
}
