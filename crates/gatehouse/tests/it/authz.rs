//! Keycloak's Authorization Services: a client's resources, scopes,
//! policies and permissions through the admin API
//! (`/clients/{id}/authz/resource-server`), and the token endpoint's UMA
//! grant that evaluates them (decision, permissions, RPT).

use crate::support::{Server, claims, start};
use serde_json::{Value, json};

/// The UMA grant with `bearer` as the caller, and its status and body.
async fn uma(s: &Server, realm: &str, bearer: &str, params: &[(&str, &str)]) -> (u16, Value) {
    let mut form = vec![("grant_type", "urn:ietf:params:oauth:grant-type:uma-ticket")];
    form.extend_from_slice(params);
    let r = s
        .http
        .post(s.token_url(realm))
        .bearer_auth(bearer)
        .form(&form)
        .send()
        .await
        .expect("send");
    let st = r.status().as_u16();
    (st, r.json().await.unwrap_or(Value::Null))
}

fn access_token(t: &Value) -> String {
    t["access_token"].as_str().expect("access token").to_owned()
}

#[tokio::test]
async fn resources_policies_and_permissions_decide_the_uma_grant() {
    let s = start().await;
    let admin = s.demo_realm().await;
    assert_eq!(
        s.admin_post(
            &admin,
            "/demo/users",
            &json!({"username": "bob", "enabled": true,
            "credentials": [{"type": "password", "value": "bob-pw", "temporary": false}]})
        )
        .await
        .0,
        201
    );
    let app = s.client_uuid(&admin, "demo", "app").await;
    let base = format!("/demo/clients/{app}/authz/resource-server");
    // Off: nothing there; a public client cannot have them.
    assert_eq!(s.admin_get(&admin, &base).await.0, 404);
    let spa = s.client_uuid(&admin, "demo", "spa").await;
    assert_eq!(
        s.admin_put(
            &admin,
            &format!("/demo/clients/{spa}"),
            Some(&json!({"clientId": "spa", "authorizationServicesEnabled": true}))
        )
        .await,
        400
    );
    assert_eq!(
        s.admin_put(
            &admin,
            &format!("/demo/clients/{app}"),
            Some(&json!({"clientId": "app", "authorizationServicesEnabled": true}))
        )
        .await,
        204
    );
    let (_, server) = s.admin_get(&admin, &base).await;
    assert_eq!(server["clientId"], app.as_str());
    assert_eq!(server["name"], "app");
    assert_eq!(server["policyEnforcementMode"], "ENFORCING");
    let (_, client) = s.admin_get(&admin, &format!("/demo/clients/{app}")).await;
    assert_eq!(client["authorizationServicesEnabled"], true);
    assert!(
        client.get("gatehouse.authz").is_none(),
        "settings stay internal"
    );
    // Keycloak's defaults: a resource, a policy that grants, a permission.
    let (_, res) = s.admin_get(&admin, &format!("{base}/resource")).await;
    assert_eq!(res[0]["name"], "Default Resource");
    assert_eq!(res[0]["type"], "urn:app:resources:default");
    let (_, pols) = s.admin_get(&admin, &format!("{base}/policy")).await;
    let names: Vec<&str> = pols
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(names, ["Default Policy", "Default Permission"]);

    // Scopes, a resource offering them, policies naming who, permissions.
    let (st, view) = s
        .admin_post_json(&admin, &format!("{base}/scope"), &json!({"name": "view"}))
        .await;
    assert_eq!(st, 201);
    let (_, del) = s
        .admin_post_json(&admin, &format!("{base}/scope"), &json!({"name": "delete"}))
        .await;
    assert_eq!(
        s.admin_post(&admin, &format!("{base}/scope"), &json!({"name": "view"}))
            .await
            .0,
        409
    );
    let (st, orders) = s
        .admin_post_json(&admin, &format!("{base}/resource"), &json!({"name": "Orders",
            "type": "urn:app:orders", "uris": ["/orders/*"], "scopes": [view.clone(), {"name": "delete"}]}))
        .await;
    assert_eq!(st, 201);
    let (_, again) = s
        .admin_get(
            &admin,
            &format!("{base}/resource/{}", orders["_id"].as_str().expect("id")),
        )
        .await;
    assert_eq!(again, orders, "created and read alike");
    assert_eq!(
        again["scopes"],
        json!([{"id": view["id"], "name": "view"}, {"id": del["id"], "name": "delete"}])
    );
    let (st, sales) = s
        .admin_post_json(
            &admin,
            &format!("{base}/policy/group"),
            &json!({"name": "sales members", "groups": [{"path": "/sales"}]}),
        )
        .await;
    assert_eq!(st, 201, "{sales}");
    let (_, bob_only) = s
        .admin_post_json(
            &admin,
            &format!("{base}/policy/user"),
            &json!({"name": "bob only", "users": ["bob"]}),
        )
        .await;
    let bob = s.user_id(&admin, "demo", "bob").await;
    assert_eq!(bob_only["users"], json!([bob]), "usernames become ids");
    for (rep, status) in [
        (json!({"name": "ghost", "users": ["nobody"]}), 400),
        (json!({"name": "bob only", "users": ["bob"]}), 409),
    ] {
        assert_eq!(
            s.admin_post(&admin, &format!("{base}/policy/user"), &rep)
                .await
                .0,
            status,
            "{rep}"
        );
    }
    assert_eq!(
        s.admin_post(
            &admin,
            &format!("{base}/policy/js"),
            &json!({"name": "script", "code": "$evaluation.grant();"})
        )
        .await
        .0,
        400,
        "scripts are not uploaded"
    );
    let (st, view_perm) = s
        .admin_post_json(
            &admin,
            &format!("{base}/permission/scope"),
            &json!({"name": "view orders",
            "resources": [orders["_id"]], "scopes": [view["id"]], "policies": [sales["id"]]}),
        )
        .await;
    assert_eq!(st, 201, "{view_perm}");
    s.admin_post_json(
        &admin,
        &format!("{base}/permission/scope"),
        &json!({"name": "delete orders",
        "scopes": ["delete"], "policies": ["bob only"]}),
    )
    .await;
    let (_, assoc) = s
        .admin_get(
            &admin,
            &format!(
                "{base}/policy/{}/resources",
                view_perm["id"].as_str().expect("id")
            ),
        )
        .await;
    assert_eq!(assoc, json!([{"_id": orders["_id"], "name": "Orders"}]));
    let (_, deps) = s
        .admin_get(
            &admin,
            &format!(
                "{base}/policy/{}/dependentPolicies",
                sales["id"].as_str().expect("id")
            ),
        )
        .await;
    assert_eq!(deps[0]["name"], "view orders");
    let (_, perms) = s
        .admin_get(&admin, &format!("{base}/permission?name=ORDERS"))
        .await;
    assert_eq!(
        perms.as_array().map(Vec::len),
        Some(2),
        "names match in any case"
    );
    let (_, only_policies) = s
        .admin_get(&admin, &format!("{base}/policy?permission=false"))
        .await;
    assert!(
        only_policies
            .as_array()
            .expect("list")
            .iter()
            .all(|p| p["type"] != "scope")
    );

    // The UMA grant: alice (sales) may view, not delete; bob the reverse.
    let alice = access_token(
        &s.password_tokens("demo", "spa", None, "alice", "alice-pw", None)
            .await,
    );
    let bob_t = access_token(
        &s.password_tokens("demo", "spa", None, "bob", "bob-pw", None)
            .await,
    );
    let decide = |t: String, perm: &'static str| {
        let s = &s;
        async move {
            uma(
                s,
                "demo",
                &t,
                &[
                    ("audience", "app"),
                    ("permission", perm),
                    ("response_mode", "decision"),
                ],
            )
            .await
        }
    };
    assert_eq!(
        decide(alice.clone(), "Orders#view").await,
        (200, json!({"result": true}))
    );
    let (st, body) = decide(alice.clone(), "Orders#delete").await;
    assert_eq!(
        (st, &body["error"], &body["error_description"]),
        (403, &json!("access_denied"), &json!("not_authorized"))
    );
    assert_eq!(decide(bob_t.clone(), "Orders#view").await.0, 403);
    assert_eq!(decide(bob_t.clone(), "Orders#delete").await.0, 200);
    // Everything alice holds, by name and scope.
    let (st, list) = uma(
        &s,
        "demo",
        &alice,
        &[("audience", "app"), ("response_mode", "permissions")],
    )
    .await;
    assert_eq!(st, 200);
    let orders_perm = list
        .as_array()
        .expect("list")
        .iter()
        .find(|p| p["rsname"] == "Orders")
        .cloned();
    assert_eq!(
        orders_perm,
        Some(json!({"rsid": orders["_id"], "rsname": "Orders", "scopes": ["view"]}))
    );
    assert!(
        list.as_array()
            .expect("list")
            .iter()
            .any(|p| p["rsname"] == "Default Resource")
    );
    // An RPT: the user's access token with the permissions and the
    // resource server as an audience, verified with the realm's keys.
    let (st, rpt) = uma(
        &s,
        "demo",
        &alice,
        &[("audience", "app"), ("permission", "Orders")],
    )
    .await;
    assert_eq!(st, 200, "{rpt}");
    let c = s
        .verified("demo", rpt["access_token"].as_str().expect("rpt"))
        .await;
    assert_eq!(
        c["authorization"]["permissions"],
        json!([{"rsid": orders["_id"], "rsname": "Orders", "scopes": ["view"]}])
    );
    assert!(
        c["aud"] == "app"
            || c["aud"]
                .as_array()
                .is_some_and(|a| a.contains(&json!("app"))),
        "{c}"
    );
    assert_eq!(c["azp"], "spa");
    // Bad requests.
    assert_eq!(
        uma(
            &s,
            "demo",
            &alice,
            &[("audience", "app"), ("permission", "Nope#view")]
        )
        .await
        .1["error"],
        "invalid_resource"
    );
    assert_eq!(
        uma(
            &s,
            "demo",
            &alice,
            &[("audience", "app"), ("permission", "Orders#fly")]
        )
        .await
        .1["error"],
        "invalid_scope"
    );
    assert_eq!(
        uma(&s, "demo", &alice, &[("permission", "Orders")]).await.0,
        400
    );
    assert_eq!(uma(&s, "demo", &alice, &[("audience", "spa")]).await.0, 400);
    assert_eq!(
        uma(&s, "demo", "not-a-token", &[("audience", "app")])
            .await
            .0,
        401
    );

    // The client itself, for its service account, with its secret.
    let r = s
        .http
        .post(s.token_url("demo"))
        .basic_auth("app", Some("app-secret"))
        .form(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:uma-ticket"),
            ("audience", "app"),
            ("permission", "Default Resource"),
            ("response_mode", "decision"),
        ])
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);

    // PERMISSIVE lets through what no permission covers; deleting a scope
    // takes it out of the resource and the permissions.
    assert_eq!(
        s.admin_put(
            &admin,
            &base,
            Some(
                &json!({"policyEnforcementMode": "PERMISSIVE", "decisionStrategy": "AFFIRMATIVE"})
            )
        )
        .await,
        204
    );
    assert_eq!(
        s.admin_get(&admin, &base).await.1["decisionStrategy"],
        "AFFIRMATIVE"
    );
    assert_eq!(
        s.admin_delete(
            &admin,
            &format!("{base}/scope/{}", del["id"].as_str().expect("id"))
        )
        .await,
        204
    );
    let (_, scopes) = s
        .admin_get(
            &admin,
            &format!(
                "{base}/resource/{}/scopes",
                orders["_id"].as_str().expect("id")
            ),
        )
        .await;
    assert_eq!(scopes, json!([{"id": view["id"], "name": "view"}]));
    // Admin events name the resource server's paths.
    let (_, events) = s
        .admin_get(
            &admin,
            "/demo/admin-events?resourceTypes=AUTHORIZATION_POLICY",
        )
        .await;
    assert!(events.as_array().is_some_and(|e| e.len() >= 4), "{events}");

    // Export by name; turning the services off drops the settings.
    let export = s.export("demo").await;
    let app_rep = export["clients"]
        .as_array()
        .expect("clients")
        .iter()
        .find(|c| c["clientId"] == "app")
        .cloned()
        .expect("app");
    let settings = &app_rep["authorizationSettings"];
    let exported = |name: &str| {
        settings["policies"]
            .as_array()
            .expect("policies")
            .iter()
            .find(|p| p["name"] == name)
            .cloned()
            .expect("policy")
    };
    assert_eq!(exported("bob only")["config"]["users"], "[\"bob\"]");
    assert_eq!(
        exported("view orders")["config"]["resources"],
        "[\"Orders\"]"
    );
    assert_eq!(
        exported("view orders")["config"]["applyPolicies"],
        "[\"sales members\"]"
    );
    assert_eq!(settings["policyEnforcementMode"], "PERMISSIVE");
    assert!(app_rep.get("gatehouse.authz").is_none());
    assert_eq!(
        s.admin_put(
            &admin,
            &format!("/demo/clients/{app}"),
            Some(&json!({"clientId": "app", "authorizationServicesEnabled": false}))
        )
        .await,
        204
    );
    assert_eq!(s.admin_get(&admin, &base).await.0, 404);
    assert_eq!(uma(&s, "demo", &alice, &[("audience", "app")]).await.0, 400);
}

#[tokio::test]
async fn a_keycloak_export_brings_its_authorization_settings_by_name() {
    let s = start().await;
    // As Keycloak exports it: clients before the users their policies
    // name, associations by name in JSON strings, roles as names.
    s.import(&json!({
        "realm": "shop", "enabled": true,
        "roles": {"realm": [{"name": "clerk"}]},
        "clients": [
            {"clientId": "web", "publicClient": true, "directAccessGrantsEnabled": true},
            {"clientId": "api", "secret": "api-secret", "serviceAccountsEnabled": true,
             "authorizationServicesEnabled": true,
             "authorizationSettings": {
                "allowRemoteResourceManagement": true, "policyEnforcementMode": "ENFORCING",
                "decisionStrategy": "UNANIMOUS",
                "resources": [{"name": "Invoice", "type": "urn:api:invoice", "uris": ["/invoices/*"],
                    "scopes": [{"name": "read"}, {"name": "pay"}]}],
                "scopes": [{"name": "read"}, {"name": "pay"}],
                "policies": [
                    {"name": "clerks", "type": "role", "logic": "POSITIVE", "decisionStrategy": "UNANIMOUS",
                     "config": {"roles": "[{\"id\":\"clerk\",\"required\":false}]"}},
                    {"name": "carol", "type": "user", "logic": "POSITIVE",
                     "config": {"users": "[\"carol\"]"}},
                    {"name": "read invoices", "type": "scope", "logic": "POSITIVE", "decisionStrategy": "AFFIRMATIVE",
                     "config": {"resources": "[\"Invoice\"]", "scopes": "[\"read\"]", "applyPolicies": "[\"clerks\",\"carol\"]"}},
                    {"name": "pay invoices", "type": "scope", "logic": "POSITIVE", "decisionStrategy": "UNANIMOUS",
                     "config": {"scopes": "[\"pay\"]", "applyPolicies": "[\"clerks\",\"carol\"]"}}
                ]}}
        ],
        "users": [
            {"username": "dave", "enabled": true, "realmRoles": ["clerk"],
             "credentials": [{"type": "password", "value": "dave-pw"}]},
            {"username": "carol", "enabled": true, "realmRoles": ["clerk"],
             "credentials": [{"type": "password", "value": "carol-pw"}]}
        ]
    }))
    .await;
    let token = |u: &'static str, pw: &'static str| {
        let s = &s;
        async move { access_token(&s.password_tokens("shop", "web", None, u, pw, None).await) }
    };
    let dave = token("dave", "dave-pw").await;
    let carol = token("carol", "carol-pw").await;
    let perms = |t: String| {
        let s = &s;
        async move {
            uma(
                s,
                "shop",
                &t,
                &[("audience", "api"), ("response_mode", "permissions")],
            )
            .await
        }
    };
    assert_eq!(
        perms(dave).await.1,
        json!([{"rsid": perms_id(&s).await, "rsname": "Invoice", "scopes": ["read"]}])
    );
    let (_, carols) = perms(carol).await;
    assert_eq!(carols[0]["scopes"], json!(["read", "pay"]));
    let c = claims(&token("carol", "carol-pw").await);
    assert!(
        c.get("authorization").is_none(),
        "plain tokens carry no permissions"
    );
}

/// The id of the imported resource `Invoice`.
async fn perms_id(s: &Server) -> Value {
    let admin = s.admin_token().await;
    let api = s.client_uuid(&admin, "shop", "api").await;
    let (_, r) = s
        .admin_get(
            &admin,
            &format!("/shop/clients/{api}/authz/resource-server/resource?name=Invoice"),
        )
        .await;
    r[0]["_id"].clone()
}
