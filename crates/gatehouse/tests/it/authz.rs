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
    // Bodies that are not objects are refused, never half-read.
    for path in [
        "policy/user",
        "permission/scope",
        "resource",
        "scope",
        "import",
        "policy/evaluate",
    ] {
        for body in [json!([1, 2]), json!(7), json!("x")] {
            assert_eq!(
                s.admin_post(&admin, &format!("{base}/{path}"), &body)
                    .await
                    .0,
                400,
                "{path} {body}"
            );
        }
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

    // The admin console's evaluation: what alice gets, and why.
    let alice_id = s.user_id(&admin, "demo", "alice").await;
    let (st, eval) = s
        .admin_post_json(&admin, &format!("{base}/policy/evaluate"), &json!({"userId": alice_id,
            "resources": [{"name": "Orders", "scopes": []}], "context": {"attributes": {}}, "roleIds": []}))
        .await;
    assert_eq!(st, 200, "{eval}");
    assert_eq!(eval["status"], "PERMIT");
    let result = &eval["results"][0];
    assert_eq!(result["resource"]["name"], "Orders");
    assert_eq!(
        result["allowedScopes"],
        json!([{"id": view["id"], "name": "view"}])
    );
    let by_name = |n: &str| {
        result["policies"]
            .as_array()
            .expect("policies")
            .iter()
            .find(|p| p["policy"]["name"] == n)
            .cloned()
            .expect("permission")
    };
    assert_eq!(by_name("view orders")["status"], "PERMIT");
    assert_eq!(
        by_name("view orders")["associatedPolicies"][0]["policy"]["name"],
        "sales members"
    );
    assert_eq!(by_name("delete orders")["status"], "DENY");
    assert_eq!(
        s.admin_post(
            &admin,
            &format!("{base}/policy/evaluate"),
            &json!({"resources": []})
        )
        .await
        .0,
        400,
        "no subject"
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
    assert_eq!(rpt["upgraded"], false);
    // Incremental: the previous RPT's permissions come along (evaluated
    // again) with the new ones.
    let first = rpt["access_token"].as_str().expect("rpt").to_owned();
    let (st, more) = uma(
        &s,
        "demo",
        &alice,
        &[
            ("audience", "app"),
            ("permission", "Default Resource"),
            ("rpt", &first),
        ],
    )
    .await;
    assert_eq!(st, 200, "{more}");
    assert_eq!(more["upgraded"], true);
    let names: Vec<Value> = s
        .verified("demo", more["access_token"].as_str().expect("rpt"))
        .await["authorization"]["permissions"]
        .as_array()
        .expect("permissions")
        .iter()
        .map(|p| p["rsname"].clone())
        .collect();
    assert_eq!(names, [json!("Default Resource"), json!("Orders")]);
    // Someone else's RPT is not a base for this one.
    let (st, _) = uma(&s, "demo", &bob_t, &[("audience", "app"), ("rpt", &first)]).await;
    assert_eq!(st, 400);
    let (_, limited) = uma(
        &s,
        "demo",
        &alice,
        &[
            ("audience", "app"),
            ("response_mode", "permissions"),
            ("response_permissions_limit", "1"),
        ],
    )
    .await;
    assert_eq!(limited.as_array().map(Vec::len), Some(1));
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
    // An RPT asked for with a DPoP proof is bound to its key.
    gatehouse_jose::install_crypto_provider();
    let (k, _) =
        gatehouse_jose::keys::SigningKey::generate(gatehouse_jose::keys::Alg::ES256).expect("key");
    let proof = gatehouse_jose::dpop::proof(
        &k,
        "POST",
        &s.token_url("demo"),
        None,
        gatehouse_core::time::now(),
    )
    .expect("proof");
    let r = s
        .http
        .post(s.token_url("demo"))
        .basic_auth("app", Some("app-secret"))
        .header("DPoP", proof)
        .form(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:uma-ticket"),
            ("audience", "app"),
            ("permission", "Default Resource"),
        ])
        .send()
        .await
        .expect("send");
    let t: Value = r.json().await.expect("json");
    assert_eq!(t["token_type"], "DPoP", "{t}");
    assert_eq!(
        claims(t["access_token"].as_str().expect("rpt"))["cnf"]["jkt"],
        json!(gatehouse_jose::dpop::thumbprint(k.public_jwk()))
    );

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

/// A request to the protection API of `demo` with `token`.
async fn protection(
    s: &Server,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut r = s
        .http
        .request(
            method,
            format!("{}/realms/demo/authz/protection{path}", s.base),
        )
        .bearer_auth(token);
    if let Some(b) = body {
        r = r.json(b);
    }
    let r = r.send().await.expect("send");
    let st = r.status().as_u16();
    (st, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_protection_api_finds_and_manages_resources_and_issues_tickets() {
    use reqwest::Method;
    let s = start().await;
    let admin = s.demo_realm().await;
    let app = s.client_uuid(&admin, "demo", "app").await;
    assert_eq!(
        s.admin_put(
            &admin,
            &format!("/demo/clients/{app}"),
            Some(&json!({"clientId": "app", "authorizationServicesEnabled": true}))
        )
        .await,
        204
    );
    // Keycloak's UMA metadata names the protection endpoints.
    let meta = s
        .get_json("/realms/demo/.well-known/uma2-configuration")
        .await;
    assert_eq!(
        meta["resource_registration_endpoint"],
        format!("{}/realms/demo/authz/protection/resource_set", s.base)
    );
    assert_eq!(
        meta["token_endpoint"],
        format!("{}/realms/demo/protocol/openid-connect/token", s.base)
    );
    // The service account holds uma_protection: its token is a PAT.
    let (_, roles) = s
        .admin_get(&admin, &format!("/demo/clients/{app}/roles"))
        .await;
    assert!(
        roles
            .as_array()
            .expect("roles")
            .iter()
            .any(|r| r["name"] == "uma_protection")
    );
    let pat = s.service_token("demo", "app", "app-secret").await;
    let alice = access_token(
        &s.password_tokens("demo", "spa", None, "alice", "alice-pw", None)
            .await,
    );
    assert_eq!(
        protection(&s, Method::GET, "/resource_set", &alice, None)
            .await
            .0,
        403,
        "not a PAT"
    );
    assert_eq!(
        protection(&s, Method::GET, "/resource_set", "junk", None)
            .await
            .0,
        401
    );
    let (st, ids) = protection(&s, Method::GET, "/resource_set", &pat, None).await;
    assert_eq!(st, 200);
    assert_eq!(
        ids.as_array().map(Vec::len),
        Some(1),
        "the default resource, by id"
    );
    // Writes need the server's remote-management consent.
    let item = json!({"name": "Item", "type": "urn:app:item", "uris": ["/items/{id}"],
        "resource_scopes": [{"name": "read"}, "write"]});
    assert_eq!(
        protection(&s, Method::POST, "/resource_set", &pat, Some(&item))
            .await
            .0,
        403
    );
    let base = format!("/demo/clients/{app}/authz/resource-server");
    assert_eq!(
        s.admin_put(
            &admin,
            &base,
            Some(&json!({"allowRemoteResourceManagement": true}))
        )
        .await,
        204
    );
    let (st, created) = protection(&s, Method::POST, "/resource_set", &pat, Some(&item)).await;
    assert_eq!(st, 201, "{created}");
    let rid = created["_id"].as_str().expect("id").to_owned();
    assert_eq!(
        protection(
            &s,
            Method::POST,
            "/resource_set",
            &pat,
            Some(&json!([item]))
        )
        .await
        .0,
        400
    );
    assert_eq!(
        protection(&s, Method::POST, "/permission", &pat, Some(&json!(5)))
            .await
            .0,
        400
    );
    assert_eq!(created["resource_scopes"], created["scopes"]);
    // Found by a request path, as enforcers look resources up.
    let (_, found) = protection(
        &s,
        Method::GET,
        "/resource_set?uri=/items/42&matchingUri=true",
        &pat,
        None,
    )
    .await;
    // (The default resource's `/*` matches too, as in Keycloak.)
    assert!(
        found
            .as_array()
            .is_some_and(|f| f.len() == 2 && f.contains(&json!(rid))),
        "{found}"
    );
    let (_, none) = protection(&s, Method::GET, "/resource_set?uri=/items/42", &pat, None).await;
    assert_eq!(
        none,
        json!([]),
        "without matchingUri a URI is compared as it is"
    );
    let (_, deep) = protection(
        &s,
        Method::GET,
        "/resource_set?name=Item&exactName=true&deep=true",
        &pat,
        None,
    )
    .await;
    assert_eq!(deep[0]["uris"], json!(["/items/{id}"]));
    let (st, _) = protection(
        &s,
        Method::PUT,
        &format!("/resource_set/{rid}"),
        &pat,
        Some(&json!({"name": "Item", "uris": ["/items/{id}", "/things/{id}"]})),
    )
    .await;
    assert_eq!(st, 204);
    assert_eq!(
        protection(&s, Method::GET, &format!("/resource_set/{rid}"), &pat, None)
            .await
            .1["uris"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );

    // Who may read items: a regex over pushed claims, read from the
    // request's context.
    s.admin_post_json(
        &admin,
        &format!("{base}/policy/regex"),
        &json!({"name": "from the office",
        "targetClaim": "network", "pattern": "office-.*", "targetContextAttributes": true}),
    )
    .await;
    let (st, _) = s
        .admin_post_json(
            &admin,
            &format!("{base}/permission/scope"),
            &json!({"name": "read items",
            "resources": ["Item"], "scopes": ["read"], "policies": ["from the office"]}),
        )
        .await;
    assert_eq!(st, 201);
    use base64::Engine;
    let pushed = |net: &str| {
        base64::engine::general_purpose::STANDARD.encode(json!({"network": net}).to_string())
    };
    let office = pushed("office-berlin");
    let home = pushed("home");
    let jwt = "urn:ietf:params:oauth:token-type:jwt";
    for (claims, want) in [(office.as_str(), 200), (home.as_str(), 403)] {
        let (st, body) = uma(
            &s,
            "demo",
            &alice,
            &[
                ("audience", "app"),
                ("permission", "Item#read"),
                ("response_mode", "decision"),
                ("claim_token", claims),
                ("claim_token_format", jwt),
            ],
        )
        .await;
        assert_eq!(st, want, "{body}");
    }
    // A ticket for what a caller lacks, redeemed at the token endpoint.
    let (st, t) = protection(
        &s,
        Method::POST,
        "/permission",
        &pat,
        Some(&json!([{"resource_id": rid, "resource_scopes": ["read"]}])),
    )
    .await;
    assert_eq!(st, 201, "{t}");
    let ticket = t["ticket"].as_str().expect("ticket").to_owned();
    let (st, rpt) = uma(
        &s,
        "demo",
        &alice,
        &[
            ("ticket", &ticket),
            ("claim_token", &office),
            ("claim_token_format", jwt),
        ],
    )
    .await;
    assert_eq!(st, 200, "{rpt}");
    let c = s
        .verified("demo", rpt["access_token"].as_str().expect("rpt"))
        .await;
    assert_eq!(
        c["authorization"]["permissions"],
        json!([{"rsid": rid, "rsname": "Item", "scopes": ["read"]}])
    );
    assert_eq!(
        uma(&s, "demo", &alice, &[("ticket", "forged")]).await.1["error"],
        "invalid_grant"
    );
    assert_eq!(
        protection(
            &s,
            Method::POST,
            "/permission",
            &pat,
            Some(&json!({"resource_id": "nope"}))
        )
        .await
        .0,
        400
    );
    assert_eq!(
        protection(
            &s,
            Method::DELETE,
            &format!("/resource_set/{rid}"),
            &pat,
            None
        )
        .await
        .0,
        204
    );
    assert_eq!(
        protection(&s, Method::GET, &format!("/resource_set/{rid}"), &pat, None)
            .await
            .0,
        404
    );
}
