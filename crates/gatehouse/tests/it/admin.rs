//! Admin REST API end to end: auth, CRUD, role mappings into tokens,
//! secret rotation with grace, events, and import of a Keycloak export.

use crate::support::{claims, start};
use base64::Engine;
use serde_json::{Value, json};

#[tokio::test]
async fn admin_api_needs_an_admin_token() {
    let s = start().await;
    let r = s
        .http
        .get(format!("{}/admin/realms", s.base))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);
    let r = s
        .http
        .get(format!("{}/admin/realms", s.base))
        .bearer_auth("garbage")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);
    s.demo_realm().await;
    // A demo-realm user's token is a valid token of a user who administers
    // nothing: 403, as Keycloak answers an authenticated non-admin.
    let t: Value = s.alice_tokens(None).await;
    let r = s
        .http
        .get(format!("{}/admin/realms", s.base))
        .bearer_auth(t["access_token"].as_str().expect("at"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 403);
    let admin = s.admin_token().await;
    let (st, realms) = s.admin_get(&admin, "").await;
    assert_eq!(st, 200);
    let names: Vec<&str> = realms
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|r| r["realm"].as_str())
        .collect();
    assert_eq!(names, vec!["demo", "master"]);
    // Malformed JSON is a 400, a duplicate a 409.
    let r = s
        .http
        .post(format!("{}/admin/realms", s.base))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 400);
    assert_eq!(
        s.admin_post(&admin, "", &json!({"realm": "demo"})).await.0,
        409
    );
    // JSON that is not the object a create takes is a 400 (a client
    // posted as an array used to drop the connection).
    for path in [
        "",
        "/demo/clients",
        "/demo/users",
        "/demo/groups",
        "/demo/roles",
        "/demo/identity-provider/instances",
        "/demo/client-scopes",
    ] {
        for body in [json!([1]), json!(7), json!("x")] {
            assert_eq!(
                s.admin_post(&admin, path, &body).await.0,
                400,
                "{path} {body}"
            );
        }
    }
}

#[tokio::test]
async fn users_groups_and_roles_shape_the_token() {
    let s = start().await;
    let t = s.demo_realm().await;
    // Users: search, count, paging, conflict.
    for i in 0..5 {
        let (st, loc) = s
            .admin_post(
                &t,
                "/demo/users",
                &json!({"username": format!("user{i}"), "email": format!("u{i}@x.io")}),
            )
            .await;
        assert_eq!(st, 201);
        assert!(loc.expect("location").contains("/admin/realms/demo/users/"));
    }
    assert_eq!(
        s.admin_post(&t, "/demo/users", &json!({"username": "USER1"}))
            .await
            .0,
        409
    );
    let (_, n) = s.admin_get(&t, "/demo/users/count").await;
    assert_eq!(n, 6);
    let (_, page) = s
        .admin_get(&t, "/demo/users?search=user&first=1&max=2")
        .await;
    let names: Vec<&str> = page
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|u| u["username"].as_str())
        .collect();
    assert_eq!(names, vec!["user1", "user2"]);
    let (_, byemail) = s.admin_get(&t, "/demo/users?email=u3@x.io").await;
    assert_eq!(byemail[0]["username"], "user3");

    // Realm role `manager` composite of `reader`; granted to group `sales`
    // whose child `emea` alice joins; client role `orders-api:write` to alice.
    assert_eq!(
        s.admin_post(&t, "/demo/roles", &json!({"name": "reader"}))
            .await
            .0,
        201
    );
    assert_eq!(
        s.admin_post(&t, "/demo/roles", &json!({"name": "manager"}))
            .await
            .0,
        201
    );
    let (_, reader) = s.admin_get(&t, "/demo/roles/reader").await;
    assert_eq!(
        s.admin_post(&t, "/demo/roles/manager/composites", &json!([reader]))
            .await
            .0,
        204
    );
    let (_, groups) = s.admin_get(&t, "/demo/groups").await;
    let sales = groups[0]["id"].as_str().expect("sales").to_owned();
    let (_, manager) = s.admin_get(&t, "/demo/roles/manager").await;
    assert_eq!(
        s.admin_post(
            &t,
            &format!("/demo/groups/{sales}/role-mappings/realm"),
            &json!([manager])
        )
        .await
        .0,
        204
    );
    let emea = s
        .admin_create(
            &t,
            &format!("/demo/groups/{sales}/children"),
            &json!({"name": "emea"}),
        )
        .await;
    let api_id = s
        .admin_create(
            &t,
            "/demo/clients",
            &json!({"clientId": "orders-api", "bearerOnly": true}),
        )
        .await;
    assert_eq!(
        s.admin_post(
            &t,
            &format!("/demo/clients/{api_id}/roles"),
            &json!({"name": "write"})
        )
        .await
        .0,
        201
    );
    let (_, write) = s
        .admin_get(&t, &format!("/demo/clients/{api_id}/roles/write"))
        .await;
    // A client role's composites by name, mixing a client and a realm role,
    // listed whole and by kind.
    let admin_role = format!("/demo/clients/{api_id}/roles/admin");
    assert_eq!(
        s.admin_post(
            &t,
            &format!("/demo/clients/{api_id}/roles"),
            &json!({"name": "admin"})
        )
        .await
        .0,
        201
    );
    let parts = json!([write, reader]);
    let composites = format!("{admin_role}/composites");
    assert_eq!(s.admin_post(&t, &composites, &parts).await.0, 204);
    let names = |v: Value| -> Vec<String> {
        let mut n: Vec<String> = v
            .as_array()
            .expect("list")
            .iter()
            .filter_map(|r| r["name"].as_str().map(str::to_owned))
            .collect();
        n.sort();
        n
    };
    assert_eq!(
        names(s.admin_get(&t, &composites).await.1),
        ["reader", "write"]
    );
    assert_eq!(
        names(s.admin_get(&t, &format!("{composites}/realm")).await.1),
        ["reader"]
    );
    let (st, of_api) = s
        .admin_get(&t, &format!("{composites}/clients/{api_id}"))
        .await;
    assert_eq!((st, names(of_api)), (200, vec!["write".to_owned()]));
    let (_, role) = s.admin_get(&t, &admin_role).await;
    assert_eq!(
        (role["composite"].clone(), role["clientRole"].clone()),
        (json!(true), json!(true))
    );
    let (_, ae) = s
        .admin_get(&t, "/demo/admin-events?resourceTypes=CLIENT_ROLE")
        .await;
    assert!(ae.as_array().expect("list").iter().any(|e| {
        e["resourcePath"]
            .as_str()
            .is_some_and(|p| p.ends_with("roles/admin/composites"))
    }));
    let (_, alice) = s
        .admin_get(&t, "/demo/users?username=alice&exact=true")
        .await;
    let alice_id = alice[0]["id"].as_str().expect("id").to_owned();
    assert_eq!(
        s.admin_post(
            &t,
            &format!("/demo/users/{alice_id}/role-mappings/clients/{api_id}"),
            &json!([write])
        )
        .await
        .0,
        204
    );
    let r = s
        .http
        .put(format!(
            "{}/admin/realms/demo/users/{alice_id}/groups/{emea}",
            s.base
        ))
        .bearer_auth(&t)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 204);
    let (_, eff) = s
        .admin_get(
            &t,
            &format!("/demo/users/{alice_id}/role-mappings/realm/composite"),
        )
        .await;
    let eff: Vec<&str> = eff
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert!(
        eff.contains(&"manager") && eff.contains(&"reader"),
        "{eff:?}"
    );

    let tok: Value = s.alice_tokens(None).await;
    let c = claims(tok["access_token"].as_str().expect("at"));
    let roles = c["realm_access"]["roles"].as_array().expect("roles");
    assert!(roles.iter().any(|r| r == "manager") && roles.iter().any(|r| r == "reader"));
    assert_eq!(
        c["resource_access"]["orders-api"]["roles"],
        json!(["write"])
    );
    assert_eq!(
        c["aud"],
        json!(["account", "orders-api"]),
        "audience resolved from client roles (account's from the default roles)"
    );
    let mut g: Vec<&str> = c["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    g.sort();
    assert_eq!(g, vec!["emea", "sales"]);

    // Protocol mappers: full group paths under a custom claim, a hardcoded claim.
    let app_id = s.client_uuid(&t, "demo", "app").await;
    for m in [
        json!({"name": "groups", "protocol": "openid-connect", "protocolMapper": "oidc-group-membership-mapper", "config": {"claim.name": "grp", "full.path": "true"}}),
        json!({"name": "tier", "protocol": "openid-connect", "protocolMapper": "oidc-hardcoded-claim-mapper", "config": {"claim.name": "org.tier", "claim.value": "3", "jsonType.label": "int"}}),
    ] {
        assert_eq!(
            s.admin_post(
                &t,
                &format!("/demo/clients/{app_id}/protocol-mappers/models"),
                &m
            )
            .await
            .0,
            201
        );
    }
    let tok: Value = s.alice_tokens(None).await;
    let c = claims(tok["access_token"].as_str().expect("at"));
    assert_eq!(c["org"]["tier"], 3);
    assert!(
        c["grp"]
            .as_array()
            .expect("grp")
            .iter()
            .any(|p| p == "/sales/emea")
    );
    // RFC 8707: resource narrows the audience; an unknown one is refused.
    let r = s
        .http
        .post(s.token_url("demo"))
        .form(&[
            ("grant_type", "password"),
            ("client_id", "app"),
            ("client_secret", "app-secret"),
            ("username", "alice"),
            ("password", "alice-pw"),
            ("resource", "billing"),
        ])
        .send()
        .await
        .expect("send");
    assert_eq!(
        r.json::<Value>().await.expect("json")["error"],
        "invalid_target"
    );

    // Admin events were written with each change.
    let (_, ae) = s
        .admin_get(&t, "/demo/admin-events?operationTypes=CREATE")
        .await;
    assert!(
        ae.as_array()
            .expect("list")
            .iter()
            .any(|e| e["resourceType"] == "REALM_ROLE_MAPPING")
    );
    assert!(ae.as_array().expect("list").iter().all(|e| {
        !e["representation"]
            .as_str()
            .unwrap_or("")
            .contains("alice-pw")
    }));
}

#[tokio::test]
async fn client_secret_rotation_with_grace_period() {
    let s = start().await;
    let t = s.demo_realm().await;
    let id = s.client_uuid(&t, "demo", "app").await;
    let (_, sec) = s
        .admin_get(&t, &format!("/demo/clients/{id}/client-secret"))
        .await;
    assert_eq!(sec["value"], "app-secret");
    let r = s
        .http
        .post(format!(
            "{}/admin/realms/demo/clients/{id}/client-secret?gracePeriod=60",
            s.base
        ))
        .bearer_auth(&t)
        .send()
        .await
        .expect("send");
    let new: Value = r.json().await.expect("json");
    let new = new["value"].as_str().expect("new").to_owned();
    let cc = |secret: String| {
        let s = &s;
        async move {
            s.http
                .post(s.token_url("demo"))
                .basic_auth("app", Some(secret))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
                .expect("send")
                .status()
                .as_u16()
        }
    };
    assert_eq!(cc(new.clone()).await, 200);
    assert_eq!(
        cc("app-secret".into()).await,
        200,
        "old secret works during the grace period"
    );
    let r = s
        .http
        .delete(format!(
            "{}/admin/realms/demo/clients/{id}/client-secret/rotated",
            s.base
        ))
        .bearer_auth(&t)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 204);
    assert_eq!(cc("app-secret".into()).await, 401);
    assert_eq!(cc(new).await, 200);
}

#[tokio::test]
async fn key_rotation_publishes_before_signing() {
    let s = start().await;
    let t = s.demo_realm().await;
    let certs = format!("{}/realms/demo/protocol/openid-connect/certs", s.base);
    let before: Value = s
        .http
        .get(&certs)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let old_kid = before["keys"][0]["kid"].as_str().expect("kid").to_owned();
    let r = s
        .http
        .post(format!(
            "{}/admin/realms/demo/keys/rotate?publish_ahead=3600&algorithm=ES256",
            s.base
        ))
        .bearer_auth(&t)
        .send()
        .await
        .expect("send");
    let new_kid = r.json::<Value>().await.expect("json")["kid"]
        .as_str()
        .expect("kid")
        .to_owned();
    s.running.idp.forget_keyring(
        &s.running
            .idp
            .store
            .realm_by_name("demo")
            .await
            .expect("q")
            .expect("realm")
            .id,
    );
    let after: Value = s
        .http
        .get(&certs)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let kids: Vec<&str> = after["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter_map(|k| k["kid"].as_str())
        .collect();
    assert!(kids.contains(&old_kid.as_str()) && kids.contains(&new_kid.as_str()));
    // Still signed by the old key until the new one's time comes.
    let tok: Value = s.alice_tokens(None).await;
    let header = tok["access_token"]
        .as_str()
        .expect("at")
        .split('.')
        .next()
        .expect("h")
        .to_owned();
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .expect("b64"),
    )
    .expect("json");
    assert_eq!(header["kid"], old_kid.as_str());
    // Immediate rotation: the newest key signs now, the old stays published.
    let r = s
        .http
        .post(format!("{}/admin/realms/demo/keys/rotate", s.base))
        .bearer_auth(&t)
        .send()
        .await
        .expect("send");
    let now_kid = r.json::<Value>().await.expect("json")["kid"]
        .as_str()
        .expect("kid")
        .to_owned();
    let tok: Value = s.alice_tokens(None).await;
    let h = tok["access_token"]
        .as_str()
        .expect("at")
        .split('.')
        .next()
        .expect("h")
        .to_owned();
    let h: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(h)
            .expect("b64"),
    )
    .expect("json");
    assert_eq!(h["kid"], now_kid.as_str());
    let after: Value = s
        .http
        .get(&certs)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert!(
        after["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .any(|k| k["kid"] == old_kid.as_str())
    );
}

/// A JWT's header.
fn header(jwt: &str) -> Value {
    let h = jwt.split('.').next().expect("header");
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(h)
            .expect("b64"),
    )
    .expect("json")
}

/// As in Keycloak, a client picks the algorithms of its access and ID
/// tokens (client attributes); the realm makes a key for an algorithm the
/// first time one is asked for, publishes it, verifies with it, keeps it
/// through another algorithm's rotation, and a realm whose default
/// algorithm changes signs with the new one from then on.
#[tokio::test]
async fn clients_pick_their_token_signing_algorithms() {
    let s = start().await;
    let t = s.demo_realm().await;
    let disc = s.discovery("demo").await;
    for alg in ["RS256", "PS256", "ES384", "EdDSA"] {
        assert!(
            disc["id_token_signing_alg_values_supported"]
                .as_array()
                .expect("algs")
                .contains(&json!(alg)),
            "{alg}"
        );
    }
    s.edit_client(&t, "demo", "app", |c| {
        c["attributes"]["access.token.signed.response.alg"] = json!("PS256");
        c["attributes"]["id.token.signed.response.alg"] = json!("ES384");
    })
    .await;
    // Saving the client made its keys: published before they first sign,
    // so a relying party's cached JWKS has them.
    let early = s.jwks("demo").await;
    for alg in ["PS256", "ES384"] {
        assert!(
            early["keys"]
                .as_array()
                .expect("keys")
                .iter()
                .any(|k| k["alg"] == alg),
            "{alg}: {early}"
        );
    }
    let tok = s.alice_tokens(Some("openid")).await;
    let at = tok["access_token"].as_str().expect("at");
    let id = tok["id_token"].as_str().expect("id");
    assert_eq!(header(at)["alg"], "PS256");
    assert_eq!(header(id)["alg"], "ES384");
    // Both verify against the published keys, each key carrying its alg.
    assert_eq!(s.verified("demo", at).await["typ"], "Bearer");
    let id_claims = s.verified("demo", id).await;
    // at_hash with the ID token's hash, SHA-384 (OIDC Core 3.1.3.6).
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA384, at.as_bytes());
    let half = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&d.as_ref()[..24]);
    assert_eq!(id_claims["at_hash"], half.as_str());
    let certs = s.jwks("demo").await;
    let published = |kid: &Value| {
        certs["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .find(|k| &k["kid"] == kid)
            .cloned()
            .expect("published")
    };
    assert_eq!(published(&header(at)["kid"])["alg"], "PS256");
    assert_eq!(published(&header(id)["kid"])["crv"], "P-384");
    // Gatehouse's own endpoints accept them.
    assert_eq!(s.introspect_demo(at).await["active"], true);
    let plain_info = s.userinfo("demo", at).await;
    assert_eq!(plain_info.status(), 200);
    assert_eq!(
        plain_info.headers()["content-type"],
        "application/json",
        "userinfo is JSON unless the client asks for a JWT"
    );
    // Signed userinfo (OIDC Core 5.3.2): a JWT for the client, by the
    // algorithm it names.
    s.edit_client(&t, "demo", "app", |c| {
        c["attributes"]["user.info.response.signature.alg"] = json!("EdDSA");
    })
    .await;
    let info = s.userinfo("demo", at).await;
    assert_eq!(info.status(), 200);
    assert_eq!(info.headers()["content-type"], "application/jwt");
    let jwt = info.text().await.expect("body");
    assert_eq!(header(&jwt)["alg"], "EdDSA");
    let keys = s.realm_keys("demo").await;
    let rules = gatehouse_jose::verify::Rules {
        audiences: vec!["app".into()],
        ..gatehouse_jose::verify::Rules::for_issuer(&format!("{}/realms/demo", s.base))
    };
    // No `exp` in a userinfo JWT, which the verifier reports only after
    // the signature passed: a tampered one fails on the signature.
    assert!(matches!(
        keys.verify(&jwt, &rules),
        Err(gatehouse_jose::Error::Invalid(_))
    ));
    let (signed, sig) = jwt.rsplit_once('.').expect("sig");
    let flipped = if sig.starts_with('A') { "B" } else { "A" };
    let tampered = format!("{signed}.{flipped}{}", &sig[1..]);
    assert!(matches!(
        keys.verify(&tampered, &rules),
        Err(gatehouse_jose::Error::BadSignature)
    ));
    let info_claims = crate::support::claims(&jwt);
    assert_eq!(info_claims["aud"], "app");
    assert_eq!(info_claims["iss"], format!("{}/realms/demo", s.base));
    assert_eq!(info_claims["preferred_username"], "alice");
    let (_, keys) = s.admin_get(&t, "/demo/keys").await;
    for alg in ["RS256", "PS256", "ES384"] {
        assert!(keys["active"][alg].is_string(), "{alg}: {keys}");
    }
    // A refresh keeps the client's algorithms and the same keys.
    let rt = tok["refresh_token"].as_str().expect("rt");
    let r = s.refresh("demo", ("app", "app-secret"), rt).await;
    assert_eq!(r.status(), 200);
    let again: Value = r.json().await.expect("json");
    let at2 = again["access_token"].as_str().expect("at");
    assert_eq!(header(at2)["kid"], header(at)["kid"]);
    // Rotating the realm's (RS256) key leaves the PS256 key signing.
    let r = s
        .http
        .post(format!("{}/admin/realms/demo/keys/rotate", s.base))
        .bearer_auth(&t)
        .send()
        .await
        .expect("rotate");
    assert_eq!(r.status(), 200);
    let after = s.alice_tokens(Some("openid")).await;
    let at3 = after["access_token"].as_str().expect("at");
    assert_eq!(header(at3)["kid"], header(at)["kid"]);
    // A value Gatehouse cannot sign with (HMAC) leaves the realm's.
    s.edit_client(&t, "demo", "app", |c| {
        c["attributes"]["access.token.signed.response.alg"] = json!("HS256");
        c["attributes"]["id.token.signed.response.alg"] = json!("");
    })
    .await;
    let plain = s.alice_tokens(Some("openid")).await;
    assert_eq!(
        header(plain["access_token"].as_str().expect("at"))["alg"],
        "RS256"
    );
    assert_eq!(
        header(plain["id_token"].as_str().expect("id"))["alg"],
        "RS256"
    );
    // The realm's default changes: its tokens follow at once.
    let (_, mut realm) = s.admin_get(&t, "/demo").await;
    realm["defaultSignatureAlgorithm"] = json!("ES256");
    assert_eq!(s.admin_put(&t, "/demo", Some(&realm)).await, 204);
    let es = s.alice_tokens(Some("openid")).await;
    let at4 = es["access_token"].as_str().expect("at");
    assert_eq!(header(at4)["alg"], "ES256");
    assert_eq!(s.verified("demo", at4).await["typ"], "Bearer");
    assert_eq!(s.introspect_demo(at4).await["active"], true);
}

/// Keycloak's way of managing realm keys, through key-provider components
/// (what `kcadm.sh create components -s providerId=rsa-generated` and the
/// admin console do): list, add a key of higher priority (it signs at
/// once, the old one stays published), make one passive, disable it
/// (unpublished), delete one (its tokens stop verifying), and refuse
/// providers Gatehouse does not run.
#[tokio::test]
async fn key_providers_as_components_rotate_the_realm_keys() {
    const KEY_TYPE: &str = "org.keycloak.keys.KeyProvider";
    let s = start().await;
    let t = s.demo_realm().await;
    let signing_kid =
        |tok: &Value| header(tok["access_token"].as_str().expect("at"))["kid"].clone();
    let first = s.alice_tokens(None).await;
    let old = signing_kid(&first);
    let (st, list) = s
        .admin_get(&t, &format!("/demo/components?type={KEY_TYPE}"))
        .await;
    assert_eq!(st, 200);
    let list = list.as_array().expect("list").clone();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["id"], old);
    assert_eq!(list[0]["providerId"], "rsa-generated");
    assert_eq!(list[0]["config"]["priority"], json!(["100"]));
    assert_eq!(list[0]["config"]["algorithm"], json!(["RS256"]));
    assert_eq!(list[0]["config"]["keySize"], json!(["2048"]));
    let (_, realm) = s.admin_get(&t, "/demo").await;
    let component = |body: Value| {
        let mut c = json!({"providerType": KEY_TYPE, "parentId": realm["id"]});
        if let (Some(c), Some(b)) = (c.as_object_mut(), body.as_object()) {
            c.extend(b.clone());
        }
        c
    };
    // A new key of higher priority signs at once; the old one is still
    // published, so tokens it signed keep verifying.
    let new = s
        .admin_create(
            &t,
            "/demo/components",
            &component(json!({"name": "rsa-rotated", "providerId": "rsa-generated",
                "config": {"priority": ["200"], "keySize": ["3072"]}})),
        )
        .await;
    let (_, one) = s.admin_get(&t, &format!("/demo/components/{new}")).await;
    assert_eq!(one["name"], "rsa-rotated");
    assert_eq!(one["config"]["keySize"], json!(["3072"]));
    let second = s.alice_tokens(None).await;
    assert_eq!(signing_kid(&second), new.as_str());
    assert_eq!(
        s.introspect_demo(first["access_token"].as_str().expect("at"))
            .await["active"],
        true
    );
    let (_, keys) = s.admin_get(&t, "/demo/keys").await;
    assert_eq!(keys["active"]["RS256"], new.as_str());
    let status = |keys: &Value, kid: &Value| {
        keys["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .find(|k| &k["kid"] == kid)
            .map(|k| (k["status"].clone(), k["providerPriority"].clone()))
    };
    assert_eq!(status(&keys, &old), Some((json!("PASSIVE"), json!(100))));
    // Passive: published, never signing, whatever its priority.
    let edit = |id: &str, config: Value| {
        let s = &s;
        let t = &t;
        let path = format!("/demo/components/{id}");
        async move {
            let (_, mut c) = s.admin_get(t, &path).await;
            if let (Some(cfg), Some(new)) = (c["config"].as_object_mut(), config.as_object()) {
                cfg.extend(new.clone());
            }
            s.admin_put(t, &path, Some(&c)).await
        }
    };
    assert_eq!(edit(&new, json!({"active": ["false"]})).await, 204);
    assert_eq!(signing_kid(&s.alice_tokens(None).await), old);
    assert_eq!(edit(&new, json!({"active": ["true"]})).await, 204);
    // Disabled: no longer published, so the old key's tokens stop verifying.
    let old_id = old.as_str().expect("kid").to_owned();
    assert_eq!(edit(&old_id, json!({"enabled": ["false"]})).await, 204);
    let jwks = s.jwks("demo").await;
    assert!(
        !jwks["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .any(|k| k["kid"] == old)
    );
    assert_eq!(
        s.introspect_demo(first["access_token"].as_str().expect("at"))
            .await["active"],
        false
    );
    // Deleted: the realm makes a new key when it has none left to sign.
    assert_eq!(
        s.admin_delete(&t, &format!("/demo/components/{new}")).await,
        204
    );
    assert_eq!(
        s.introspect_demo(second["access_token"].as_str().expect("at"))
            .await["active"],
        false
    );
    let third = s.alice_tokens(None).await;
    let fresh = signing_kid(&third);
    assert!(fresh != old && fresh != new.as_str());
    // An ECDSA provider: a P-384 key, which a client asking ES384 uses.
    let ec = s
        .admin_create(
            &t,
            "/demo/components",
            &component(json!({"name": "ec", "providerId": "ecdsa-generated",
                "config": {"ecdsaEllipticCurveKey": ["P-384"]}})),
        )
        .await;
    let (_, ec_rep) = s.admin_get(&t, &format!("/demo/components/{ec}")).await;
    assert_eq!(ec_rep["config"]["algorithm"], json!(["ES384"]));
    assert_eq!(ec_rep["config"]["priority"], json!(["0"]));
    s.edit_client(&t, "demo", "app", |c| {
        c["attributes"]["access.token.signed.response.alg"] = json!("ES384");
    })
    .await;
    assert_eq!(signing_kid(&s.alice_tokens(None).await), ec.as_str());
    // Providers Gatehouse does not run are refused, not stored.
    for (provider, config) in [
        (
            "rsa",
            json!({"privateKey": ["-----BEGIN PRIVATE KEY-----"]}),
        ),
        ("hmac-generated", json!({})),
        ("java-keystore", json!({})),
        (
            "ecdsa-generated",
            json!({"ecdsaEllipticCurveKey": ["P-521"]}),
        ),
        ("rsa-generated", json!({"keySize": ["1024"]})),
        ("rsa-generated", json!({"algorithm": ["ES256"]})),
    ] {
        let (st, _) = s
            .admin_post(
                &t,
                "/demo/components",
                &component(json!({"name": "x", "providerId": provider, "config": config})),
            )
            .await;
        assert_eq!(st, 400, "{provider} {config}");
    }
    let (_, list) = s
        .admin_get(&t, &format!("/demo/components?type={KEY_TYPE}&name=ec"))
        .await;
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    // Client-registration policies are still listed by their own type.
    let (_, policies) = s
        .admin_get(
            &t,
            "/demo/components?type=org.keycloak.services.clientregistration.policy.ClientRegistrationPolicy",
        )
        .await;
    assert!(policies.as_array().is_some_and(|p| !p.is_empty()));
}

/// A Keycloak export carries its realm's RSA key (`components`, with the
/// private key): imported under the kid Keycloak published, it signs on,
/// so a relying party holding Keycloak's JWKS verifies Gatehouse's tokens
/// after the migration; the private key is sealed in the key table and
/// gone from the stored realm and from exports.
#[tokio::test]
async fn a_keycloak_exports_rsa_key_keeps_signing_under_its_kid() {
    use gatehouse_jose::keys::{Alg, SigningKey};
    let s = start().await;
    let t = s.admin_token().await;
    let (key, der) = SigningKey::generate(Alg::RS256).expect("key");
    let spki = key.public_key_der().expect("spki");
    let kid = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &spki).as_ref());
    // What Keycloak published for it, as a relying party cached it.
    let mut jwk = key.public_jwk().clone();
    jwk["kid"] = json!(kid);
    let cached = gatehouse_jose::verify::KeySet::from_jwks_json(
        json!({"keys": [jwk]}).to_string().as_bytes(),
    )
    .expect("jwks");
    let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
    s.import(&json!({
        "realm": "moved", "enabled": true,
        "clients": [{"clientId": "app", "secret": "app-secret", "directAccessGrantsEnabled": true}],
        "users": [{"username": "u", "enabled": true, "credentials": [{"type": "password", "value": "pw"}]}],
        "components": {"org.keycloak.keys.KeyProvider": [
            {"id": "c1", "name": "rsa-generated", "providerId": "rsa-generated", "subComponents": {},
             "config": {"privateKey": [b64], "certificate": ["MIIC..."], "priority": ["100"]}},
            {"id": "c2", "name": "hmac-generated", "providerId": "hmac-generated", "subComponents": {},
             "config": {"secret": ["c2VjcmV0"], "priority": ["100"], "algorithm": ["HS512"]}},
        ]},
    }))
    .await;
    let tok = s
        .password_tokens("moved", "app", Some("app-secret"), "u", "pw", None)
        .await;
    let at = tok["access_token"].as_str().expect("at");
    assert_eq!(header(at)["kid"], kid.as_str());
    let rules = gatehouse_jose::verify::Rules::for_issuer(&format!("{}/realms/moved", s.base));
    assert!(
        cached.verify(at, &rules).is_ok(),
        "Keycloak's cached JWKS verifies it"
    );
    let (_, list) = s
        .admin_get(&t, "/moved/components?type=org.keycloak.keys.KeyProvider")
        .await;
    let list = list.as_array().expect("list").clone();
    assert_eq!(list.len(), 1, "only the RSA key is imported: {list:?}");
    assert_eq!(list[0]["id"], kid.as_str());
    assert_eq!(list[0]["name"], "rsa-generated");
    assert!(list[0]["config"].get("privateKey").is_none());
    let export = s.export("moved").await;
    assert!(
        !export.to_string().contains(&b64),
        "the private key is not kept in the realm"
    );
    // A realm an earlier version imported still holds them: never exported.
    let store = &s.running.idp.store;
    let mut r = store
        .realm_by_name("moved")
        .await
        .expect("q")
        .expect("realm");
    r.extra.insert(
        "components".into(),
        json!({"org.keycloak.keys.KeyProvider": [{"providerId": "rsa", "config": {"privateKey": [b64]}}]}),
    );
    store.update_realm(&r, &[]).await.expect("update");
    s.running.idp.invalidate();
    assert!(!s.export("moved").await.to_string().contains(&b64));
    // The next start drops them from the database.
    gatehouse_idp::bootstrap::ensure_master(&s.running.idp, "admin", None)
        .await
        .expect("start");
    let r = store
        .realm_by_name("moved")
        .await
        .expect("q")
        .expect("realm");
    assert!(
        !serde_json::to_string(&r.extra)
            .expect("json")
            .contains(&b64)
    );
}

/// Keys as Java (and so Keycloak) encodes them, made by `KeyPairGenerator`
/// on OpenJDK 17 (RSA 2048, EC secp256r1, Ed25519): PKCS#8 v1 without the
/// public key for EC and Ed25519, and each kid as Keycloak's
/// `KeyUtils.createKeyId` computed it there (SHA-256 of the public key's
/// X.509 encoding, base64url).
const JAVA_RSA: &str = concat!(
    "MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQDI9O6AondqbKB1NEPROj/IY/1/tZlf",
    "8CqWBUtYcigQxAPNhJCKsp60Yyrz0RqRdkRpYKAJokY8/8tWc5VRE9FPctUIm4cYFWbDu+n7RXsygTkV",
    "r4QOshJqozgc7ZLG7ZfkDnq2ZKS85fMY9HOV7KOGhTH8eZ9OpiD0yUzUpwZAkreTaZMI8z9/HdQ1ZcpL",
    "qt4gQ9Jez5keBVsrzWl94Q5k+3X1buYEOjOBR/Y7QiKCAaCFkxEzicizWdiUCZb8zDKmGINNRlSu1KjG",
    "cPIdhA2t5Dl8j9augNAEwl0437mwm9L4BGAWHWTuBvJz5BYdsI1QnYOQ9mmpLe5qg+u9+pXNAgMBAAEC",
    "ggEATfJ3eozKLg0hdiTGM2dZKzThtMIvUj+5fQRjs9RfxxUI9pQ3bp0XIxgeJoGSwR5zLb6thN8dSHbd",
    "m9RsdAzwUNVVXafaEFTozf5bJTxPq4jlKAyy9/JJY3SZBNt/5cpt8qdNIOdL4Pt+vky/csVdroWGnIxe",
    "ZybYPKrCMu/wZGX0cagfQU7JvOqDJp9AVvbKi7VCt1tfO5QvqUby2naWZ85PE5/V1At4w3fX2w1oDpLm",
    "jqw9GA2p6lzbT8Kon6TTFC8TjAib5wDDmxtn7ZmQMUhn+GsUWEDYxQKb1RV+3dtngXnscUN3+1V0ayq9",
    "NmHaq4adZaRfefPPYgqPNM8jvwKBgQDnfV/FP5jye+CqHD9SxVoBsOTHuR8Hn7NM5Nurf/9jY8/8oesr",
    "DVYYZYCPMS4mYDrYwzDQOocRQehi5DTH1s6RmsALfNjPE0/CeRYZvEAF6IxXbCWFh1o9tQf+lfOeJ8eq",
    "QYlU6N6RtEDSCtM4X8xwuHmI6IZbm7WFkBVb7B2grwKBgQDeO/LNr8C373FPNQRB5YCBSn1VsoDxiZCw",
    "AamUckDJRySwAVq33nENE2JM5F79XaREWij5eTOuIfFrkdnzjj9NZdGCaZHuzxv1LDenMzaB8vea/2Ff",
    "JIfHI2X9VlZHCTYSau00duCpk1uSayizEkRbI5hzmnok+umQjE39rnD4QwKBgQCU1S72CuWzQaI4vOCZ",
    "vvkXjTwKjSM+K5eEIMB7i1gP9uSKcTBaBcEM/nWhmuUpF0W+iACiYH7mwZE/w6mLsrgtNWmz+RkMSkZF",
    "qsRi133yTomsy4N0Tonekr4JGTAAx2LAPFKnnPE8jMAAS6Vx4WX4MyMwuw9nZr1WmkShTTXfUQKBgQCx",
    "EQDHQ6aAp0YXvv0yZ+K4oRo1wrEcQehHZDuybEoUVRv1JE8cux5GNdCXxUmuBANS9qc5BonXz3GkrKQE",
    "e60SRPLmPqkopln3QZDiJlritSz1kU8K2HdagmjLrhO2K6+qgwmWSLV+R0up4Lmf3AkcuMLKMSXq+wRH",
    "yJKHcorOMwKBgEYavdZqq3KbqaR2Zfls99mcSPcBFQxDszLGihe911Phm6Ek5QUQBcgsuWYE0UeJ31PU",
    "6K2M7MdspsxKwN3xJw1mD6TErkkxLMw8B2eEXX0uFwUwdTJ8wgthUgXUrd19z0NuCWBqr29pTFm4ZGGB",
    "23znyuivZW32bEUXJpCsFlEA"
);
const JAVA_RSA_KID: &str = "0IIuMmX4JGxUVJJY3pLO2Ou0I0puBfhuj81m2UAjbV4";
const JAVA_EC: &str = concat!(
    "MEECAQAwEwYHKoZIzj0CAQYIKoZIzj0DAQcEJzAlAgEBBCCCIbkrJR0nA3DTYeir7Wd20cN2JHzpsLuY",
    "HdWZEUpYkw=="
);
const JAVA_EC_KID: &str = "2xP5_PVh9tAC0oApGApCenTVQD8s1RQ63AR7Py17usk";
const JAVA_ED: &str = "MC4CAQAwBQYDK2VwBCIEIGJJESQDAeGCM2vbAefjiZkocBf+q2AEyQWkzUAORFeB";
const JAVA_ED_KID: &str = "rteh4hOvJ5IhEHzrHJIct8oNY7GZkBw6wd3Nythz3-E";

/// A Keycloak export's generated RSA, ECDSA and EdDSA keys, encoded by
/// Java, import under the kids Keycloak published, and sign for the
/// clients that ask for their algorithms.
#[tokio::test]
async fn keycloak_exported_java_keys_keep_their_kids() {
    let s = start().await;
    let t = s.admin_token().await;
    let provider = |name: &str, config: Value| json!({"name": name, "providerId": name, "subComponents": {}, "config": config});
    s.import(&json!({
        "realm": "java", "enabled": true,
        "clients": [
            {"clientId": "rs", "secret": "s", "directAccessGrantsEnabled": true},
            {"clientId": "es", "secret": "s", "directAccessGrantsEnabled": true,
             "attributes": {"access.token.signed.response.alg": "ES256"}},
            {"clientId": "ed", "secret": "s", "directAccessGrantsEnabled": true,
             "attributes": {"access.token.signed.response.alg": "EdDSA"}},
        ],
        "users": [{"username": "u", "enabled": true, "credentials": [{"type": "password", "value": "pw"}]}],
        "components": {"org.keycloak.keys.KeyProvider": [
            provider("rsa-generated", json!({"privateKey": [JAVA_RSA], "priority": ["100"]})),
            provider("ecdsa-generated", json!({"ecdsaPrivateKey": [JAVA_EC],
                "ecdsaEllipticCurveKey": ["P-256"], "priority": ["100"]})),
            provider("eddsa-generated", json!({"eddsaPrivateKey": [JAVA_ED],
                "eddsaEllipticCurveKey": ["Ed25519"], "priority": ["100"]})),
        ]},
    }))
    .await;
    let (_, list) = s
        .admin_get(&t, "/java/components?type=org.keycloak.keys.KeyProvider")
        .await;
    let mut ids: Vec<&str> = list
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    ids.sort_unstable();
    let mut want = vec![JAVA_RSA_KID, JAVA_EC_KID, JAVA_ED_KID];
    want.sort_unstable();
    assert_eq!(ids, want);
    for (client, kid) in [
        ("rs", JAVA_RSA_KID),
        ("es", JAVA_EC_KID),
        ("ed", JAVA_ED_KID),
    ] {
        let tok = s
            .password_tokens("java", client, Some("s"), "u", "pw", None)
            .await;
        let at = tok["access_token"].as_str().expect("at");
        assert_eq!(header(at)["kid"], kid, "{client}");
        assert_eq!(s.verified("java", at).await["azp"], client);
    }
}

#[tokio::test]
async fn keycloak_realm_export_imports_and_pbkdf2_users_log_in() {
    let s = start().await;
    let t = s.admin_token().await;
    // A hand-written Keycloak export: pbkdf2-sha256 hash computed here the
    // way Keycloak does (27500 rounds, 64-byte key, base64 salt and value).
    let salt = b"saltsaltsaltsalt";
    let mut dk = [0u8; 64];
    aws_lc_rs::pbkdf2::derive(
        aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA256,
        std::num::NonZeroU32::new(27500).expect("nz"),
        salt,
        b"legacy-pw",
        &mut dk,
    );
    let b64 = base64::engine::general_purpose::STANDARD;
    let export = json!({
        "realm": "legacy", "enabled": true, "accessTokenLifespan": 120,
        "roles": {"realm": [{"name": "staff"}], "client": {"legacy-app": [{"name": "viewer"}]}},
        "groups": [{"name": "ops", "realmRoles": ["staff"], "subGroups": [{"name": "oncall"}]}],
        "clients": [{"clientId": "legacy-app", "secret": "s3", "directAccessGrantsEnabled": true, "publicClient": false,
                     "someUnknownField": {"kept": true}, "authenticationFlowBindingOverrides": {}}],
        // Keycloak 26.0's flows as its export writes them (the organization
        // step, OTP if configured; an unbound flow Gatehouse does not run).
        "browserFlow": "browser", "directGrantFlow": "direct grant", "registrationFlow": "registration",
        "authenticationFlows": [
            {"id": "f-browser", "alias": "browser", "description": "Browser based authentication", "providerId": "basic-flow",
             "topLevel": true, "builtIn": true, "authenticationExecutions": [
                {"authenticator": "auth-cookie", "authenticatorFlow": false, "requirement": "ALTERNATIVE", "priority": 10, "autheticatorFlow": false, "userSetupAllowed": false},
                {"authenticator": "auth-spnego", "authenticatorFlow": false, "requirement": "DISABLED", "priority": 20, "autheticatorFlow": false, "userSetupAllowed": false},
                {"authenticator": "identity-provider-redirector", "authenticatorFlow": false, "requirement": "ALTERNATIVE", "priority": 25, "autheticatorFlow": false, "userSetupAllowed": false},
                {"authenticatorFlow": true, "requirement": "ALTERNATIVE", "priority": 26, "autheticatorFlow": true, "flowAlias": "Organization", "userSetupAllowed": false},
                {"authenticatorFlow": true, "requirement": "ALTERNATIVE", "priority": 30, "autheticatorFlow": true, "flowAlias": "forms", "userSetupAllowed": false}]},
            {"id": "f-org", "alias": "Organization", "providerId": "basic-flow", "topLevel": false, "builtIn": true, "authenticationExecutions": [
                {"authenticatorFlow": true, "requirement": "CONDITIONAL", "priority": 10, "autheticatorFlow": true, "flowAlias": "Browser - Conditional Organization", "userSetupAllowed": false}]},
            {"id": "f-corg", "alias": "Browser - Conditional Organization", "providerId": "basic-flow", "topLevel": false, "builtIn": true, "authenticationExecutions": [
                {"authenticator": "conditional-user-configured", "authenticatorFlow": false, "requirement": "REQUIRED", "priority": 10, "autheticatorFlow": false, "userSetupAllowed": false},
                {"authenticator": "organization", "authenticatorFlow": false, "requirement": "ALTERNATIVE", "priority": 20, "autheticatorFlow": false, "userSetupAllowed": false}]},
            {"id": "f-forms", "alias": "forms", "providerId": "basic-flow", "topLevel": false, "builtIn": true, "authenticationExecutions": [
                {"authenticator": "auth-username-password-form", "authenticatorFlow": false, "requirement": "REQUIRED", "priority": 10, "autheticatorFlow": false, "userSetupAllowed": false},
                {"authenticatorFlow": true, "requirement": "CONDITIONAL", "priority": 20, "autheticatorFlow": true, "flowAlias": "Browser - Conditional OTP", "userSetupAllowed": false}]},
            {"id": "f-botp", "alias": "Browser - Conditional OTP", "providerId": "basic-flow", "topLevel": false, "builtIn": true, "authenticationExecutions": [
                {"authenticator": "conditional-user-configured", "authenticatorFlow": false, "requirement": "REQUIRED", "priority": 10, "autheticatorFlow": false, "userSetupAllowed": false},
                {"authenticator": "auth-otp-form", "authenticatorFlow": false, "requirement": "REQUIRED", "priority": 20, "autheticatorFlow": false, "userSetupAllowed": false}]},
            {"id": "f-dg", "alias": "direct grant", "providerId": "basic-flow", "topLevel": true, "builtIn": true, "authenticationExecutions": [
                {"authenticator": "direct-grant-validate-username", "authenticatorFlow": false, "requirement": "REQUIRED", "priority": 10, "autheticatorFlow": false, "userSetupAllowed": false},
                {"authenticator": "direct-grant-validate-password", "authenticatorFlow": false, "requirement": "REQUIRED", "priority": 20, "autheticatorFlow": false, "userSetupAllowed": false},
                {"authenticatorFlow": true, "requirement": "CONDITIONAL", "priority": 30, "autheticatorFlow": true, "flowAlias": "Direct Grant - Conditional OTP", "userSetupAllowed": false}]},
            {"id": "f-dgotp", "alias": "Direct Grant - Conditional OTP", "providerId": "basic-flow", "topLevel": false, "builtIn": true, "authenticationExecutions": [
                {"authenticator": "conditional-user-configured", "authenticatorFlow": false, "requirement": "REQUIRED", "priority": 10, "autheticatorFlow": false, "userSetupAllowed": false},
                {"authenticator": "direct-grant-validate-otp", "authenticatorFlow": false, "requirement": "REQUIRED", "priority": 20, "autheticatorFlow": false, "userSetupAllowed": false}]},
            {"id": "f-reg", "alias": "registration", "providerId": "basic-flow", "topLevel": true, "builtIn": true, "authenticationExecutions": [
                {"authenticator": "registration-page-form", "authenticatorFlow": true, "requirement": "REQUIRED", "priority": 10, "autheticatorFlow": true, "flowAlias": "registration form", "userSetupAllowed": false}]},
        ],
        "users": [{
            "username": "bob", "enabled": true, "email": "bob@legacy.io",
            "credentials": [{"type": "password", "createdDate": 1700000000000_i64,
                "secretData": json!({"value": b64.encode(dk), "salt": b64.encode(salt), "additionalParameters": {}}).to_string(),
                "credentialData": json!({"hashIterations": 27500, "algorithm": "pbkdf2-sha256", "additionalParameters": {}}).to_string()}],
            "realmRoles": ["staff"], "clientRoles": {"legacy-app": ["viewer"]}, "groups": ["/ops/oncall"],
        }],
    });
    assert_eq!(s.admin_post(&t, "", &export).await.0, 201);
    let login = || s.password_grant("legacy", "legacy-app", Some("s3"), "bob", "legacy-pw", None);
    let r = login().await;
    assert_eq!(r.status(), 200);
    let tok: Value = r.json().await.expect("json");
    assert_eq!(tok["expires_in"], 120);
    let c = claims(tok["access_token"].as_str().expect("at"));
    assert!(
        c["realm_access"]["roles"]
            .as_array()
            .expect("roles")
            .iter()
            .any(|r| r == "staff")
    );
    assert_eq!(
        c["resource_access"]["legacy-app"]["roles"],
        json!(["viewer"])
    );
    assert_eq!(c["groups"], json!(["oncall"]));
    // The hash was upgraded to argon2id on that login, and still verifies.
    let realm = s
        .running
        .idp
        .store
        .realm_by_name("legacy")
        .await
        .expect("q")
        .expect("realm");
    let bob = s
        .running
        .idp
        .store
        .user_by_username(&realm.id, "bob")
        .await
        .expect("q")
        .expect("bob");
    let cred = s
        .running
        .idp
        .store
        .password(&bob.id)
        .await
        .expect("q")
        .expect("cred");
    assert!(cred.credential_data.contains("argon2"));
    assert_eq!(login().await.status(), 200);
    assert_eq!(
        s.password_grant("legacy", "legacy-app", Some("s3"), "bob", "wrong", None)
            .await
            .status(),
        401
    );
    // Unknown fields survive a round trip.
    let (_, cl) = s.admin_get(&t, "/legacy/clients?clientId=legacy-app").await;
    assert_eq!(cl[0]["someUnknownField"]["kept"], true);
}

#[tokio::test]
async fn export_then_import_into_a_fresh_server_is_lossless() {
    let a = start().await;
    let t = a.demo_realm().await;
    assert_eq!(
        a.admin_post(&t, "/demo/roles", &json!({"name": "reader"}))
            .await
            .0,
        201
    );
    assert_eq!(
        a.admin_post(&t, "/demo/roles", &json!({"name": "manager"}))
            .await
            .0,
        201
    );
    let (_, reader) = a.admin_get(&t, "/demo/roles/reader").await;
    assert_eq!(
        a.admin_post(&t, "/demo/roles/manager/composites", &json!([reader]))
            .await
            .0,
        204
    );
    let (_, groups) = a.admin_get(&t, "/demo/groups").await;
    let sales = groups[0]["id"].as_str().expect("id").to_owned();
    let (_, manager) = a.admin_get(&t, "/demo/roles/manager").await;
    assert_eq!(
        a.admin_post(
            &t,
            &format!("/demo/groups/{sales}/role-mappings/realm"),
            &json!([manager])
        )
        .await
        .0,
        204
    );
    let export = a.export("demo").await;
    assert!(
        export["users"]
            .as_array()
            .expect("users")
            .iter()
            .any(|u| u["credentials"][0]["secretData"].is_string())
    );

    let b = start().await;
    b.import(&export).await;
    let tok: Value = b.alice_tokens(None).await;
    let c = claims(
        tok["access_token"]
            .as_str()
            .expect("token after round trip"),
    );
    let roles = c["realm_access"]["roles"].as_array().expect("roles");
    assert!(
        roles.iter().any(|r| r == "manager") && roles.iter().any(|r| r == "reader"),
        "{roles:?}"
    );
    assert_eq!(c["groups"], json!(["sales"]));
    let again = b.export("demo").await;
    assert_eq!(
        export["users"], again["users"],
        "users, credentials and mappings survive a round trip"
    );
    assert_eq!(export["roles"], again["roles"]);
    assert_eq!(
        export["clientScopes"], again["clientScopes"],
        "client scopes (ids, mappers) survive a round trip"
    );
    assert!(
        again["clientScopes"]
            .as_array()
            .expect("scopes")
            .iter()
            .any(|c| c["name"] == "orders:read")
    );
    let ok = b
        .password_grant(
            "demo",
            "app",
            Some("app-secret"),
            "alice",
            "alice-pw",
            Some("orders:read"),
        )
        .await;
    assert_eq!(ok.status(), 200, "an imported custom scope is grantable");
}

/// Client scopes as Keycloak has them: built-in ones in a new realm, custom
/// ones with mappers linked to a client as optional scopes, renamed and
/// deleted with the client's links following, and realm defaults for new
/// clients.
#[tokio::test]
async fn client_scopes_carry_mappers_into_tokens() {
    let s = start().await;
    let t = s.demo_realm().await;
    let send = |m: reqwest::Method, path: String, body: Option<Value>| {
        let mut r = s
            .http
            .request(m, format!("{}/admin/realms/demo{path}", s.base))
            .bearer_auth(&t);
        if let Some(b) = body {
            r = r.json(&b);
        }
        async move { r.send().await.expect("send").status().as_u16() }
    };
    let (_, all) = s.admin_get(&t, "/demo/client-scopes").await;
    let names: Vec<&str> = all
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    for n in [
        "profile",
        "email",
        "roles",
        "web-origins",
        "offline_access",
        "orders:read",
    ] {
        assert!(names.contains(&n), "{n} in {names:?}");
    }
    let email_scope = all
        .as_array()
        .expect("list")
        .iter()
        .find(|c| c["name"] == "email")
        .expect("email")
        .clone();

    // A custom scope with a hardcoded claim and an audience.
    let scope_id = s
        .admin_create(
            &t,
            "/demo/client-scopes",
            &json!({"name": "billing", "protocol": "openid-connect"}),
        )
        .await;
    assert_eq!(
        s.admin_post(&t, "/demo/client-scopes", &json!({"name": "billing"}))
            .await
            .0,
        409
    );
    let (st, _) = s
        .admin_post(
            &t,
            &format!("/demo/client-scopes/{scope_id}/protocol-mappers/models"),
            &json!({"name": "tier", "protocol": "openid-connect",
                "protocolMapper": "oidc-hardcoded-claim-mapper",
                "config": {"claim.name": "billing.tier", "claim.value": "gold",
                    "access.token.claim": "true", "id.token.claim": "false"}}),
        )
        .await;
    assert_eq!(st, 201);
    let (st, _) = s
        .admin_post(
            &t,
            &format!("/demo/client-scopes/{scope_id}/protocol-mappers/models"),
            &json!({"name": "aud", "protocol": "openid-connect",
                "protocolMapper": "oidc-audience-mapper",
                "config": {"included.custom.audience": "billing-api", "access.token.claim": "true"}}),
        )
        .await;
    assert_eq!(st, 201);

    // Not linked yet: asking for it is invalid_scope.
    let r = s
        .password_grant(
            "demo",
            "app",
            Some("app-secret"),
            "alice",
            "alice-pw",
            Some("billing"),
        )
        .await;
    assert_eq!(r.status(), 400);
    let app = s.client_uuid(&t, "demo", "app").await;
    let link = format!("/clients/{app}/optional-client-scopes/{scope_id}");
    assert_eq!(send(reqwest::Method::PUT, link.clone(), None).await, 204);
    let (_, linked) = s
        .admin_get(&t, &format!("/demo/clients/{app}/optional-client-scopes"))
        .await;
    assert!(
        linked
            .as_array()
            .expect("list")
            .iter()
            .any(|l| l["id"] == scope_id && l["name"] == "billing")
    );

    let token = |scope: Option<&'static str>| {
        let s = &s;
        async move {
            let r = s
                .password_grant(
                    "demo",
                    "app",
                    Some("app-secret"),
                    "alice",
                    "alice-pw",
                    scope,
                )
                .await;
            let st = r.status().as_u16();
            let body: Value = r.json().await.expect("json");
            (st, body)
        }
    };
    let (st, body) = token(Some("openid billing")).await;
    assert_eq!(st, 200, "{body}");
    let at = claims(body["access_token"].as_str().expect("at"));
    assert_eq!(at["billing"]["tier"], "gold");
    assert!(
        at["aud"] == "billing-api"
            || at["aud"]
                .as_array()
                .is_some_and(|a| a.contains(&json!("billing-api"))),
        "{at}"
    );
    assert!(
        at["scope"]
            .as_str()
            .expect("scope")
            .split(' ')
            .any(|x| x == "billing")
    );
    assert_eq!(at["email"], "alice@example.com");
    let idt = claims(body["id_token"].as_str().expect("id token"));
    assert!(idt.get("billing").is_none(), "id.token.claim=false");
    let (_, body) = token(None).await;
    let at = claims(body["access_token"].as_str().expect("at"));
    assert!(
        at.get("billing").is_none(),
        "optional scope only when asked"
    );

    // Rename: the client's link follows the scope.
    assert_eq!(
        send(
            reqwest::Method::PUT,
            format!("/client-scopes/{scope_id}"),
            Some(json!({"name": "invoices"}))
        )
        .await,
        204
    );
    assert_eq!(token(Some("invoices")).await.0, 200);
    assert_eq!(token(Some("billing")).await.0, 400);

    // A built-in scope's mapper removed: its claim goes.
    let email_id = email_scope["id"].as_str().expect("id");
    let mapper = email_scope["protocolMappers"]
        .as_array()
        .expect("mappers")
        .iter()
        .find(|m| m["name"] == "email")
        .expect("email mapper");
    assert_eq!(
        send(
            reqwest::Method::DELETE,
            format!(
                "/client-scopes/{email_id}/protocol-mappers/models/{}",
                mapper["id"].as_str().expect("mid")
            ),
            None
        )
        .await,
        204
    );
    let at = claims(token(None).await.1["access_token"].as_str().expect("at"));
    assert!(at.get("email").is_none(), "{at}");
    assert_eq!(at["preferred_username"], "alice");

    // Deleting the scope unlinks it.
    assert_eq!(
        send(
            reqwest::Method::DELETE,
            format!("/client-scopes/{scope_id}"),
            None
        )
        .await,
        204
    );
    assert_eq!(token(Some("invoices")).await.0, 400);
    let (_, linked) = s
        .admin_get(&t, &format!("/demo/clients/{app}/optional-client-scopes"))
        .await;
    assert!(
        !linked
            .as_array()
            .expect("list")
            .iter()
            .any(|l| l["id"] == scope_id)
    );

    // Realm defaults decide what a new client gets.
    let (_, all) = s.admin_get(&t, "/demo/client-scopes").await;
    let orders = all
        .as_array()
        .expect("list")
        .iter()
        .find(|c| c["name"] == "orders:read")
        .expect("orders")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_eq!(
        send(
            reqwest::Method::PUT,
            format!("/default-default-client-scopes/{orders}"),
            None
        )
        .await,
        204
    );
    let (_, defaults) = s.admin_get(&t, "/demo/default-default-client-scopes").await;
    assert!(
        defaults
            .as_array()
            .expect("list")
            .iter()
            .any(|d| d["name"] == "orders:read")
    );
    assert_eq!(
        s.admin_post(&t, "/demo/clients", &json!({"clientId": "fresh"}))
            .await
            .0,
        201
    );
    let (_, fresh) = s.admin_get(&t, "/demo/clients?clientId=fresh").await;
    assert!(
        fresh[0]["defaultClientScopes"]
            .as_array()
            .expect("list")
            .contains(&json!("orders:read"))
    );
    assert!(
        !fresh[0]["optionalClientScopes"]
            .as_array()
            .expect("list")
            .contains(&json!("orders:read"))
    );
    assert_eq!(
        send(reqwest::Method::GET, "/client-scopes/nope".into(), None).await,
        404
    );
}

#[tokio::test]
async fn client_sessions_stats_and_logout_all() {
    let s = start().await;
    let t = s.demo_realm().await;
    let mut refresh = vec![];
    for _ in 0..2 {
        let r = s
            .password_grant("demo", "app", Some("app-secret"), "alice", "alice-pw", None)
            .await;
        let v: Value = r.json().await.expect("json");
        refresh.push(v["refresh_token"].as_str().expect("rt").to_owned());
    }
    let app = s.client_uuid(&t, "demo", "app").await;
    let (code, list) = s
        .admin_get(&t, &format!("/demo/clients/{app}/user-sessions"))
        .await;
    assert_eq!(code, 200);
    let list = list.as_array().expect("list").clone();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["username"], "alice");
    assert_eq!(
        list[0]["clients"][&app], "app",
        "clients maps the client's id to its clientId"
    );
    let (_, page) = s
        .admin_get(
            &t,
            &format!("/demo/clients/{app}/user-sessions?first=1&max=5"),
        )
        .await;
    assert_eq!(page.as_array().map(Vec::len), Some(1));
    let (_, n) = s
        .admin_get(&t, &format!("/demo/clients/{app}/session-count"))
        .await;
    assert_eq!(n["count"], 2);
    let (_, n) = s
        .admin_get(&t, &format!("/demo/clients/{app}/offline-session-count"))
        .await;
    assert_eq!(n["count"], 0);
    let (_, stats) = s.admin_get(&t, "/demo/client-session-stats").await;
    let row = stats
        .as_array()
        .expect("stats")
        .iter()
        .find(|r| r["clientId"] == "app")
        .expect("app row")
        .clone();
    assert_eq!(
        (row["id"].as_str(), row["active"].as_str()),
        (Some(app.as_str()), Some("2"))
    );
    let (code, _) = s
        .admin_get(&t, "/demo/clients/no-such-client/session-count")
        .await;
    assert_eq!(code, 404);
    // Log everyone out: the sessions and their refresh tokens are gone.
    let r = s
        .http
        .post(format!("{}/admin/realms/demo/logout-all", s.base))
        .bearer_auth(&t)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body, json!({"successRequests": [], "failedRequests": []}));
    let (_, n) = s
        .admin_get(&t, &format!("/demo/clients/{app}/session-count"))
        .await;
    assert_eq!(n["count"], 0);
    let r = s
        .http
        .post(s.token_url("demo"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", "app"),
            ("client_secret", "app-secret"),
            ("refresh_token", refresh[0].as_str()),
        ])
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 400);
    // The admin of another realm's sessions is untouched: master's token works.
    let (code, _) = s.admin_get(&t, "/demo/client-session-stats").await;
    assert_eq!(code, 200);
}

/// Default groups, group-by-path, effective and available role mappings,
/// server info and the events config, as Keycloak's admin clients and
/// Terraform's provider use them; a user whose group does not exist is
/// refused whole.
#[tokio::test]
async fn default_groups_paths_available_roles_serverinfo_and_events_config() {
    let s = start().await;
    let t = s.demo_realm().await;
    let put = |path: String| {
        s.http
            .put(format!("{}/admin/realms{path}", s.base))
            .bearer_auth(&t)
    };
    // A subgroup by path, then made a default group.
    let (_, sales) = s.admin_get(&t, "/demo/group-by-path/sales").await;
    let sales_id = sales["id"].as_str().expect("id").to_owned();
    assert_eq!(sales["path"], "/sales");
    let (code, _) = s
        .admin_post(
            &t,
            &format!("/demo/groups/{sales_id}/children"),
            &json!({"name": "emea"}),
        )
        .await;
    assert_eq!(code, 201);
    let (code, emea) = s.admin_get(&t, "/demo/group-by-path/sales/emea").await;
    assert_eq!(code, 200);
    assert_eq!(emea["path"], "/sales/emea");
    let emea_id = emea["id"].as_str().expect("id").to_owned();
    assert_eq!(s.admin_get(&t, "/demo/group-by-path/nope").await.0, 404);
    let r = put(format!("/demo/default-groups/{emea_id}"))
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), 204);
    let (_, defaults) = s.admin_get(&t, "/demo/default-groups").await;
    assert_eq!(defaults[0]["path"], "/sales/emea");
    let (_, realm) = s.admin_get(&t, "/demo").await;
    assert_eq!(realm["defaultGroups"], json!(["/sales/emea"]));

    // A new user joins it; a user naming a missing group is not created at all.
    let dora = s
        .admin_create(
            &t,
            "/demo/users",
            &json!({"username": "dora", "enabled": true}),
        )
        .await;
    let (_, groups) = s.admin_get(&t, &format!("/demo/users/{dora}/groups")).await;
    assert_eq!(groups[0]["path"], "/sales/emea");
    let (code, _) = s
        .admin_post(
            &t,
            "/demo/users",
            &json!({"username": "eve", "groups": ["/ghosts"]}),
        )
        .await;
    assert_eq!(code, 400);
    let (_, found) = s.admin_get(&t, "/demo/users?username=eve&exact=true").await;
    assert_eq!(found, json!([]), "no half-made user");

    // Renaming the group keeps it a default group.
    let r = put(format!("/demo/groups/{emea_id}"))
        .json(&json!({"name": "europe"}))
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), 204);
    let (_, realm) = s.admin_get(&t, "/demo").await;
    assert_eq!(realm["defaultGroups"], json!(["/sales/europe"]));

    // Effective and available role mappings: a role granted to the parent
    // group reaches the subgroup's view and the member's.
    let (code, _) = s
        .admin_post(&t, "/demo/roles", &json!({"name": "auditor"}))
        .await;
    assert_eq!(code, 201);
    let (_, auditor) = s.admin_get(&t, "/demo/roles/auditor").await;
    let (code, _) = s
        .admin_post(
            &t,
            &format!("/demo/groups/{sales_id}/role-mappings/realm"),
            &json!([auditor]),
        )
        .await;
    assert_eq!(code, 204);
    let names = |v: &Value| -> Vec<String> {
        v.as_array()
            .expect("list")
            .iter()
            .map(|r| r["name"].as_str().expect("name").to_owned())
            .collect()
    };
    for holder in [format!("groups/{emea_id}"), format!("users/{dora}")] {
        let (_, eff) = s
            .admin_get(&t, &format!("/demo/{holder}/role-mappings/realm/composite"))
            .await;
        assert!(
            names(&eff).contains(&"auditor".to_owned()),
            "{holder}: {eff}"
        );
        let (_, avail) = s
            .admin_get(&t, &format!("/demo/{holder}/role-mappings/realm/available"))
            .await;
        assert!(
            !names(&avail).contains(&"auditor".to_owned()),
            "{holder}: {avail}"
        );
    }
    let (_, avail) = s
        .admin_get(
            &t,
            &format!("/demo/users/{dora}/role-mappings/realm/available"),
        )
        .await;
    // offline_access comes through the default-roles composite: had, so not available.
    assert!(
        !names(&avail).contains(&"offline_access".to_owned()),
        "{avail}"
    );
    let (_, all_roles) = s.admin_get(&t, "/demo/roles").await;
    assert!(names(&all_roles).contains(&"offline_access".to_owned()));
    let app = s.client_uuid(&t, "demo", "app").await;
    let (code, _) = s
        .admin_post(
            &t,
            &format!("/demo/clients/{app}/roles"),
            &json!({"name": "reader"}),
        )
        .await;
    assert_eq!(code, 201);
    let (_, avail) = s
        .admin_get(
            &t,
            &format!("/demo/users/{dora}/role-mappings/clients/{app}/available"),
        )
        .await;
    assert_eq!(names(&avail), ["reader"]);
    let (_, eff) = s
        .admin_get(
            &t,
            &format!("/demo/users/{dora}/role-mappings/clients/{app}/composite"),
        )
        .await;
    assert_eq!(eff, json!([]));

    // Deleting the default group drops it from the defaults.
    let r = s
        .http
        .delete(format!("{}/admin/realms/demo/groups/{sales_id}", s.base))
        .bearer_auth(&t)
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), 204);
    let (_, defaults) = s.admin_get(&t, "/demo/default-groups").await;
    assert_eq!(defaults, json!([]));

    // Server info, for the tools that read the version first.
    let r = s
        .http
        .get(format!("{}/admin/serverinfo", s.base))
        .bearer_auth(&t)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 200);
    let info: Value = r.json().await.expect("json");
    assert_eq!(info["systemInfo"]["version"], "26.0.0");
    assert!(
        info["systemInfo"]["serverTime"]
            .as_str()
            .expect("time")
            .ends_with('Z')
    );
    assert!(
        info["protocolMapperTypes"]["openid-connect"]
            .as_array()
            .expect("mappers")
            .iter()
            .any(|m| m["id"] == "oidc-audience-mapper")
    );
    let anon = s
        .http
        .get(format!("{}/admin/serverinfo", s.base))
        .send()
        .await
        .expect("get");
    assert_eq!(anon.status(), 401);

    // Events config round trip.
    let r = put("/demo/events/config".into())
        .json(
            &json!({"eventsEnabled": true, "enabledEventTypes": ["LOGIN", "LOGIN_ERROR"],
            "adminEventsEnabled": true, "adminEventsDetailsEnabled": true, "realm": "ignored"}),
        )
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), 204);
    let (_, cfg) = s.admin_get(&t, "/demo/events/config").await;
    assert_eq!(cfg["eventsEnabled"], true);
    assert_eq!(cfg["enabledEventTypes"], json!(["LOGIN", "LOGIN_ERROR"]));
    assert_eq!(cfg["adminEventsDetailsEnabled"], true);
    let (code, _) = s.admin_get(&t, "/demo").await;
    assert_eq!(code, 200, "the realm kept its name");
}

/// Partial import with each `ifResourceExists` policy (FAIL writes nothing
/// at all), and partial export without users and with masked secrets.
#[tokio::test]
async fn partial_import_policies_and_partial_export() {
    let s = start().await;
    let t = s.demo_realm().await;
    let import = |body: Value| {
        s.http
            .post(format!("{}/admin/realms/demo/partialImport", s.base))
            .bearer_auth(&t)
            .json(&body)
            .send()
    };
    let payload = |policy: &str| {
        json!({
            "ifResourceExists": policy,
            "users": [
                {"username": "alice", "firstName": "Overwritten", "enabled": true},
                {"username": "zed", "enabled": true, "groups": ["/imported"],
                 "credentials": [{"type": "password", "value": "zed-pw"}]},
            ],
            "clients": [{"clientId": "imported-cli", "publicClient": true}],
            "groups": [{"name": "imported"}],
            "roles": {"realm": [{"name": "imported-role"}],
                      "client": {"imported-cli": [{"name": "reader"}]}},
        })
    };
    // FAIL (the default): alice exists, so nothing is written.
    let r = import(payload("FAIL")).await.expect("import");
    assert_eq!(r.status(), 409);
    assert!(r.text().await.expect("body").contains("alice"));
    let (_, zed) = s.admin_get(&t, "/demo/users?username=zed&exact=true").await;
    assert_eq!(zed, json!([]), "nothing imported");
    let (_, c) = s.admin_get(&t, "/demo/clients?clientId=imported-cli").await;
    assert_eq!(c, json!([]));
    assert_eq!(
        import(json!({"ifResourceExists": "MERGE"}))
            .await
            .expect("x")
            .status(),
        400
    );

    // SKIP: alice is left alone, the rest is added.
    let r = import(payload("SKIP")).await.expect("import");
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.expect("json");
    assert_eq!(
        (
            v["added"].as_i64(),
            v["skipped"].as_i64(),
            v["overwritten"].as_i64()
        ),
        (Some(5), Some(1), Some(0))
    );
    let skipped = v["results"]
        .as_array()
        .expect("results")
        .iter()
        .find(|x| x["action"] == "SKIPPED")
        .cloned();
    assert_eq!(skipped.expect("one")["resourceName"], "alice");
    let (_, alice) = s
        .admin_get(&t, "/demo/users?username=alice&exact=true")
        .await;
    assert_eq!(alice[0]["firstName"], "Alice");
    let zed_id = v["results"]
        .as_array()
        .expect("r")
        .iter()
        .find(|x| x["resourceName"] == "zed")
        .expect("zed")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let (_, groups) = s
        .admin_get(&t, &format!("/demo/users/{zed_id}/groups"))
        .await;
    assert_eq!(groups[0]["path"], "/imported");
    let (code, _) = s.admin_get(&t, "/demo/roles/imported-role").await;
    assert_eq!(code, 200);
    assert_eq!(
        s.password_grant("demo", "app", Some("app-secret"), "zed", "zed-pw", None)
            .await
            .status(),
        200,
        "an imported user logs in"
    );

    // OVERWRITE: existing ones are replaced by the representation.
    let r = import(payload("OVERWRITE")).await.expect("import");
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.expect("json");
    assert_eq!(
        (v["added"].as_i64(), v["overwritten"].as_i64()),
        (Some(0), Some(6))
    );
    let (_, alice) = s
        .admin_get(&t, "/demo/users?username=alice&exact=true")
        .await;
    assert_eq!(alice[0]["firstName"], "Overwritten");

    // Partial export: never users; clients and groups/roles only when asked;
    // secrets masked.
    let export = |q: &str| {
        s.http
            .post(format!("{}/admin/realms/demo/partial-export{q}", s.base))
            .bearer_auth(&t)
            .send()
    };
    let bare: Value = export("")
        .await
        .expect("export")
        .json()
        .await
        .expect("json");
    assert_eq!(bare["realm"], "demo");
    assert!(
        bare.get("users").is_none()
            && bare.get("clients").is_none()
            && bare.get("groups").is_none()
    );
    let full: Value = export("?exportClients=true&exportGroupsAndRoles=true")
        .await
        .expect("export")
        .json()
        .await
        .expect("json");
    assert!(full.get("users").is_none());
    let app = full["clients"]
        .as_array()
        .expect("clients")
        .iter()
        .find(|c| c["clientId"] == "app")
        .cloned()
        .expect("app");
    assert_eq!(app["secret"], "**********");
    assert!(
        full["roles"]["realm"]
            .as_array()
            .expect("roles")
            .iter()
            .any(|r| r["name"] == "imported-role")
    );
    assert!(!full.to_string().contains("app-secret"));
}

/// A client with `fullScopeAllowed: false` gets only the roles of its scope
/// mappings (composites included) and its own client roles into tokens.
#[tokio::test]
async fn scope_mappings_limit_the_roles_of_a_narrow_client() {
    let s = start().await;
    let t = s.demo_realm().await;
    for r in ["reader", "admin-ish", "bundle", "inside-bundle"] {
        assert_eq!(
            s.admin_post(&t, "/demo/roles", &json!({"name": r})).await.0,
            201
        );
    }
    let role = |n: &'static str| {
        let s = &s;
        let t = &t;
        async move { s.admin_get(t, &format!("/demo/roles/{n}")).await.1 }
    };
    let (bundle, inside) = (role("bundle").await, role("inside-bundle").await);
    let (code, _) = s
        .admin_post(&t, "/demo/roles/bundle/composites", &json!([inside]))
        .await;
    assert_eq!(code, 204);
    let alice = s.user_id(&t, "demo", "alice").await;
    let all = json!([role("reader").await, role("admin-ish").await, bundle]);
    let (code, _) = s
        .admin_post(
            &t,
            &format!("/demo/users/{alice}/role-mappings/realm"),
            &all,
        )
        .await;
    assert_eq!(code, 204);
    let app = s.client_uuid(&t, "demo", "app").await;
    let (code, _) = s
        .admin_post(
            &t,
            &format!("/demo/clients/{app}/roles"),
            &json!({"name": "own"}),
        )
        .await;
    assert_eq!(code, 201);
    let (code, _) = s
        .admin_post(
            &t,
            &format!("/demo/users/{alice}/role-mappings/clients/{app}"),
            &json!([{"name": "own"}]),
        )
        .await;
    assert_eq!(code, 204);
    let roles_in_token = || async {
        let v: Value = s.alice_tokens(None).await;
        let c = crate::support::claims(v["access_token"].as_str().expect("at"));
        let mut realm: Vec<String> = c["realm_access"]["roles"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        realm.sort();
        (realm, c["resource_access"]["app"]["roles"].clone())
    };
    // Full scope (the default): every role.
    let (realm, own) = roles_in_token().await;
    assert!(realm.contains(&"admin-ish".to_owned()) && realm.contains(&"reader".to_owned()));
    assert_eq!(own, json!(["own"]));

    // Narrowed: only the mapped role, a mapped composite's children, and the
    // client's own roles.
    let r = s
        .http
        .put(format!("{}/admin/realms/demo/clients/{app}", s.base))
        .bearer_auth(&t)
        .json(&json!({"fullScopeAllowed": false}))
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), 204);
    let (realm, own) = roles_in_token().await;
    assert!(realm.is_empty(), "no scope mappings yet: {realm:?}");
    assert_eq!(own, json!(["own"]));
    let (code, _) = s
        .admin_post(
            &t,
            &format!("/demo/clients/{app}/scope-mappings/realm"),
            &json!([{"name": "reader"}, {"name": "bundle"}]),
        )
        .await;
    assert_eq!(code, 204);
    let (_, listed) = s
        .admin_get(&t, &format!("/demo/clients/{app}/scope-mappings/realm"))
        .await;
    assert_eq!(listed.as_array().map(Vec::len), Some(2));
    let (_, all) = s
        .admin_get(&t, &format!("/demo/clients/{app}/scope-mappings"))
        .await;
    assert_eq!(all["realmMappings"].as_array().map(Vec::len), Some(2));
    let (realm, _) = roles_in_token().await;
    assert_eq!(realm, ["bundle", "inside-bundle", "reader"]);
    let names = |v: Value| -> Vec<String> {
        let mut n: Vec<String> = v
            .as_array()
            .expect("list")
            .iter()
            .filter_map(|r| r["name"].as_str().map(str::to_owned))
            .collect();
        n.sort();
        n
    };
    let (_, composite) = s
        .admin_get(
            &t,
            &format!("/demo/clients/{app}/scope-mappings/realm/composite"),
        )
        .await;
    assert_eq!(names(composite), ["bundle", "inside-bundle", "reader"]);
    let (_, available) = s
        .admin_get(
            &t,
            &format!("/demo/clients/{app}/scope-mappings/realm/available"),
        )
        .await;
    let available = names(available);
    assert!(
        available.contains(&"admin-ish".to_owned()) && !available.contains(&"reader".to_owned())
    );
    let r = s
        .http
        .delete(format!(
            "{}/admin/realms/demo/clients/{app}/scope-mappings/realm",
            s.base
        ))
        .bearer_auth(&t)
        .json(&json!([{"name": "bundle"}]))
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), 204);
    let (realm, _) = roles_in_token().await;
    assert_eq!(realm, ["reader"]);
    // Exported in Keycloak's shape, and imported back into a fresh realm.
    let r = s
        .http
        .post(format!(
            "{}/admin/realms/demo/partial-export?exportClients=true&exportGroupsAndRoles=true",
            s.base
        ))
        .bearer_auth(&t)
        .send()
        .await
        .expect("export");
    let mut exported: Value = r.json().await.expect("json");
    assert_eq!(
        exported["scopeMappings"],
        json!([{"client": "app", "roles": ["reader"]}])
    );
    // Into another realm of the same server: without the ids, which are
    // unique server-wide (as in Keycloak).
    fn drop_ids(v: &mut Value) {
        match v {
            Value::Object(o) => {
                o.remove("id");
                o.values_mut().for_each(drop_ids);
            }
            Value::Array(a) => a.iter_mut().for_each(drop_ids),
            _ => {}
        }
    }
    drop_ids(&mut exported);
    exported["realm"] = json!("demo2");
    let (code, _) = s.admin_post(&t, "", &exported).await;
    assert_eq!(code, 201);
    let app2 = s.client_uuid(&t, "demo2", "app").await;
    let (_, listed) = s
        .admin_get(&t, &format!("/demo2/clients/{app2}/scope-mappings/realm"))
        .await;
    assert_eq!(listed[0]["name"], "reader");
    let (_, c2) = s.admin_get(&t, &format!("/demo2/clients/{app2}")).await;
    assert_eq!(c2["fullScopeAllowed"], false);
    // Unknown role: 404, nothing changed.
    let (code, _) = s
        .admin_post(
            &t,
            &format!("/demo/clients/{app}/scope-mappings/realm"),
            &json!([{"name": "nope"}]),
        )
        .await;
    assert_eq!(code, 404);
}

/// A client scope's role scope mappings widen a narrow client's tokens
/// only while the scope is in effect (here an optional scope, when the
/// request asks for it), and travel through export and import.
#[tokio::test]
async fn client_scope_mappings_apply_while_the_scope_is_in_effect() {
    let s = start().await;
    let t = s.demo_realm().await;
    assert_eq!(
        s.admin_post(&t, "/demo/roles", &json!({"name": "reader"}))
            .await
            .0,
        201
    );
    let alice = s.user_id(&t, "demo", "alice").await;
    let (code, _) = s
        .admin_post(
            &t,
            &format!("/demo/users/{alice}/role-mappings/realm"),
            &json!([{"name": "reader"}]),
        )
        .await;
    assert_eq!(code, 204);
    let (code, _) = s
        .admin_post(
            &t,
            "/demo/client-scopes",
            &json!({"name": "orders", "protocol": "openid-connect"}),
        )
        .await;
    assert_eq!(code, 201);
    let (_, scopes) = s.admin_get(&t, "/demo/client-scopes").await;
    let orders = scopes
        .as_array()
        .and_then(|a| a.iter().find(|x| x["name"] == "orders"))
        .and_then(|x| x["id"].as_str())
        .expect("scope id")
        .to_owned();
    let app = s.client_uuid(&t, "demo", "app").await;
    for (url, body) in [
        (
            format!("/demo/clients/{app}/optional-client-scopes/{orders}"),
            None,
        ),
        (
            format!("/demo/clients/{app}"),
            Some(json!({"fullScopeAllowed": false})),
        ),
    ] {
        let mut req = s
            .http
            .put(format!("{}/admin/realms{url}", s.base))
            .bearer_auth(&t);
        if let Some(b) = body {
            req = req.json(&b);
        }
        assert_eq!(req.send().await.expect("put").status(), 204, "{url}");
    }
    let (code, _) = s
        .admin_post(
            &t,
            &format!("/demo/client-scopes/{orders}/scope-mappings/realm"),
            &json!([{"name": "reader"}]),
        )
        .await;
    assert_eq!(code, 204);
    let (_, listed) = s
        .admin_get(
            &t,
            &format!("/demo/client-scopes/{orders}/scope-mappings/realm"),
        )
        .await;
    assert_eq!(listed[0]["name"], "reader");
    let (_, composite) = s
        .admin_get(
            &t,
            &format!("/demo/client-scopes/{orders}/scope-mappings/realm/composite"),
        )
        .await;
    assert_eq!(composite.as_array().map(Vec::len), Some(1));
    let realm_roles = |scope: Option<&'static str>| {
        let s = &s;
        async move {
            let v: Value = s.alice_tokens(scope).await;
            let c = crate::support::claims(v["access_token"].as_str().expect("at"));
            c["realm_access"]["roles"].clone()
        }
    };
    assert_eq!(realm_roles(None).await, Value::Null, "scope not asked for");
    assert_eq!(realm_roles(Some("orders")).await, json!(["reader"]));

    let r = s
        .http
        .post(format!(
            "{}/admin/realms/demo/partial-export?exportClients=true&exportGroupsAndRoles=true",
            s.base
        ))
        .bearer_auth(&t)
        .send()
        .await
        .expect("export");
    let exported: Value = r.json().await.expect("json");
    assert_eq!(
        exported["scopeMappings"],
        json!([{"clientScope": "orders", "roles": ["reader"]}])
    );
    // A Keycloak export's client-scope entries are imported onto the scope.
    let (code, _) = s
        .admin_post(
            &t,
            "",
            &json!({"realm": "demo3", "roles": {"realm": [{"name": "reader"}]},
                    "clientScopes": [{"name": "orders", "protocol": "openid-connect"}],
                    "scopeMappings": [{"clientScope": "orders", "roles": ["reader"]}]}),
        )
        .await;
    assert_eq!(code, 201);
    let (_, scopes3) = s.admin_get(&t, "/demo3/client-scopes").await;
    let orders3 = scopes3
        .as_array()
        .and_then(|a| a.iter().find(|x| x["name"] == "orders"))
        .and_then(|x| x["id"].as_str())
        .expect("imported scope")
        .to_owned();
    let (_, listed3) = s
        .admin_get(
            &t,
            &format!("/demo3/client-scopes/{orders3}/scope-mappings/realm"),
        )
        .await;
    assert_eq!(listed3[0]["name"], "reader");

    // Removing the mapping narrows the tokens again.
    let r = s
        .http
        .delete(format!(
            "{}/admin/realms/demo/client-scopes/{orders}/scope-mappings/realm",
            s.base
        ))
        .bearer_auth(&t)
        .json(&json!([{"name": "reader"}]))
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), 204);
    assert_eq!(realm_roles(Some("orders")).await, Value::Null);
}

/// Realm localization texts (Keycloak's `/localization` resource): list,
/// read, set one (text/plain), import a map, delete a key and a locale;
/// they travel in the realm export.
#[tokio::test]
async fn realm_localization_texts() {
    let s = start().await;
    let t = s.demo_realm().await;
    let base = format!("{}/admin/realms/demo/localization", s.base);
    let (status, none) = s.admin_get(&t, "/demo/localization").await;
    assert_eq!(status, 200);
    assert_eq!(none, json!([]));
    let put = |url: String, body: &'static str| {
        s.http
            .put(url)
            .bearer_auth(&t)
            .header("content-type", "text/plain")
            .body(body)
            .send()
    };
    assert_eq!(
        put(format!("{base}/nl/theKey"), "value")
            .await
            .expect("put")
            .status(),
        204
    );
    let r = s
        .http
        .post(format!("{base}/de"))
        .bearer_auth(&t)
        .json(&json!({"a": "eins", "b": "zwei"}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 204);
    assert_eq!(
        s.admin_get(&t, "/demo/localization").await.1,
        json!(["de", "nl"])
    );
    assert_eq!(
        s.admin_get(&t, "/demo/localization/de").await.1,
        json!({"a": "eins", "b": "zwei"})
    );
    let r = s
        .http
        .get(format!("{base}/nl/theKey"))
        .bearer_auth(&t)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.expect("text"), "value");
    // Bad input: not an object of strings, an impossible locale; missing keys 404.
    let r = s
        .http
        .post(format!("{base}/de"))
        .bearer_auth(&t)
        .json(&json!({"a": 1}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 400);
    assert_eq!(
        put(format!("{base}/..%2Fx/k"), "v")
            .await
            .expect("put")
            .status(),
        400
    );
    for url in [format!("{base}/nl/nope"), format!("{base}/xx")] {
        let r = s
            .http
            .delete(url)
            .bearer_auth(&t)
            .send()
            .await
            .expect("del");
        assert_eq!(r.status(), 404);
    }
    let r = s
        .http
        .delete(format!("{base}/nl/theKey"))
        .bearer_auth(&t)
        .send()
        .await
        .expect("del");
    assert_eq!(r.status(), 204);
    assert_eq!(s.admin_get(&t, "/demo/localization/nl").await.1, json!({}));
    let r = s
        .http
        .delete(format!("{base}/de"))
        .bearer_auth(&t)
        .send()
        .await
        .expect("del");
    assert_eq!(r.status(), 204);
    assert_eq!(s.admin_get(&t, "/demo/localization").await.1, json!([]));
    assert_eq!(
        put(format!("{base}/en/termsText"), "Terms")
            .await
            .expect("put")
            .status(),
        204
    );
    let r = s
        .http
        .post(format!("{}/admin/realms/demo/partial-export", s.base))
        .bearer_auth(&t)
        .send()
        .await
        .expect("export");
    let export: Value = r.json().await.expect("json");
    assert_eq!(export["localizationTexts"]["en"]["termsText"], "Terms");
}

/// Keycloak's client validation: a redirect URI with a fragment or a
/// code-running scheme (`javascript:`, `data:`) is refused on create and
/// update, so the `form_post` page can never post to one.
#[tokio::test]
async fn clients_cannot_register_code_running_or_fragment_redirects() {
    let s = start().await;
    let t = s.demo_realm().await;
    for uri in [
        "javascript:alert(document.domain)//",
        "data:text/html;base64,PHNjcmlwdD4=",
        "https://x.example/cb#f",
    ] {
        let (status, _) = s
            .admin_post(
                &t,
                "/demo/clients",
                &json!({"clientId": "evil", "redirectUris": [uri]}),
            )
            .await;
        assert_eq!(status, 400, "{uri}");
    }
    let (status, _) = s
        .admin_post(
            &t,
            "/demo/clients",
            &json!({"clientId": "evil", "attributes": {"post.logout.redirect.uris": "https://ok.example/##javascript:x"}}),
        )
        .await;
    assert_eq!(status, 400);
    let uuid = s.client_uuid(&t, "demo", "app").await;
    let r = s
        .http
        .put(format!("{}/admin/realms/demo/clients/{uuid}", s.base))
        .bearer_auth(&t)
        .json(&json!({"redirectUris": ["JavaScript:alert(1)"]}))
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), 400);
    let (_, app) = s.admin_get(&t, &format!("/demo/clients/{uuid}")).await;
    assert_eq!(
        app["redirectUris"],
        json!(["http://127.0.0.1/cb"]),
        "nothing written"
    );
}

/// A full realm representation is imported whole or not at all: a bad
/// client or an unsupported credential late in it leaves no realm behind.
#[tokio::test]
async fn a_failed_realm_import_leaves_nothing_behind() {
    let s = start().await;
    let t = s.admin_token().await;
    for (name, rep) in [
        (
            "bad-client",
            json!({"realm": "bad-client", "enabled": true,
                   "clients": [{"clientId": "ok"}, {"clientId": ""}], "users": [{"username": "u"}]}),
        ),
        (
            "webauthn-user",
            json!({"realm": "webauthn-user", "enabled": true, "clients": [{"clientId": "app"}],
                   "users": [{"username": "u", "credentials": [
                       {"type": "webauthn", "credentialData": "{}", "secretData": "{}"}]}]}),
        ),
    ] {
        let (st, _) = s.admin_post(&t, "", &rep).await;
        assert_eq!(st, 400, "{name}");
        assert_eq!(s.admin_get(&t, &format!("/{name}")).await.0, 404, "{name}");
        // The name is free again: a corrected import goes through.
        let fixed = json!({"realm": name, "enabled": true});
        assert_eq!(s.admin_post(&t, "", &fixed).await.0, 201, "{name}");
    }
    let running = &s.running.idp;
    let bad = json!({"realm": "cli", "clients": [{"clientId": ""}]});
    assert!(gatehouse::import_realm(running, &bad).await.is_err());
    assert!(
        running
            .store
            .realm_by_name("cli")
            .await
            .expect("q")
            .is_none()
    );
}

/// Admin mistakes get a clear 400 and write nothing; 404s read as
/// Keycloak's.
#[tokio::test]
async fn admin_input_mistakes_are_refused_clearly() {
    let s = start().await;
    let t = s.demo_realm().await;
    let (st, _) = s
        .admin_post(
            &t,
            "/demo/users",
            &json!({"username": "pwless", "credentials": "pw"}),
        )
        .await;
    assert_eq!(st, 400);
    let (_, found) = s
        .admin_get(&t, "/demo/users?username=pwless&exact=true")
        .await;
    assert_eq!(found, json!([]), "nothing created");
    // Scalars where Keycloak's lists of strings go are read as Keycloak
    // reads them, not dropped.
    let typed =
        json!({"username": "typed", "attributes": {"n": 5, "flag": true, "list": [1, "a"]}});
    assert_eq!(s.admin_post(&t, "/demo/users", &typed).await.0, 201);
    let (_, users) = s
        .admin_get(&t, "/demo/users?username=typed&exact=true")
        .await;
    assert_eq!(
        users[0]["attributes"],
        json!({"n": ["5"], "flag": ["true"], "list": ["1", "a"]})
    );
    for field in ["rootUrl", "baseUrl"] {
        let c = json!({"clientId": format!("js-{field}"), field: "javascript:alert(1)"});
        assert_eq!(
            s.admin_post(&t, "/demo/clients", &c).await.0,
            400,
            "{field}"
        );
    }
    let r = s
        .http
        .get(format!("{}/admin/realms/demo/roles/no-such-role", s.base))
        .bearer_auth(&t)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json::<Value>().await.expect("json")["errorMessage"],
        "Could not find role"
    );
    // What axum's extractors refuse comes back in the API's JSON form too.
    let (st, body) = s
        .admin_get(&t, "/demo/users?max=99999999999999999999")
        .await;
    assert_eq!(st, 400);
    assert!(
        body["errorMessage"]
            .as_str()
            .is_some_and(|m| m.contains("max")),
        "{body}"
    );
    let huge = "a".repeat(3 << 20);
    let r = s
        .http
        .post(s.token_url("demo"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", huge.as_str()),
        ])
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 413);
    assert_eq!(
        r.json::<Value>().await.expect("json")["error"],
        "invalid_request"
    );
}

/// A realm file of a few megabytes (here 2 000 users, 3.4 MB) goes in
/// through `POST /admin/realms` and `partialImport`, as Keycloak (Quarkus's
/// 10 MiB) takes it; past 10 MiB the admin API answers 413 in its own
/// JSON form, and the OAuth endpoints keep their 2 MiB.
#[tokio::test]
async fn realm_files_of_megabytes_are_imported_through_the_admin_api() {
    let s = start().await;
    let t = s.admin_token().await;
    let users = |prefix: &str| -> Vec<Value> {
        (0..2000)
            .map(|i| {
                json!({"username": format!("{prefix}{i:04}"), "enabled": true,
                       "attributes": {"bio": ["b".repeat(1600)]}})
            })
            .collect()
    };
    let realm = json!({"realm": "big", "enabled": true, "users": users("u")});
    assert!(realm.to_string().len() > 3 << 20);
    let (st, body) = s.admin_post_json(&t, "", &realm).await;
    assert_eq!(st, 201, "{body}");
    let (_, n) = s.admin_get(&t, "/big/users/count").await;
    assert_eq!(n, 2000);
    let more = json!({"ifResourceExists": "SKIP", "users": users("p")});
    let (st, body) = s.admin_post_json(&t, "/big/partialImport", &more).await;
    assert_eq!((st, &body["added"]), (200, &json!(2000)));
    let over = json!({"realm": "bigger", "description": "d".repeat(11 << 20)});
    let (st, body) = s.admin_post_json(&t, "", &over).await;
    assert_eq!(st, 413);
    assert!(body["errorMessage"].is_string(), "{body}");
    let (st, _) = s.admin_get(&t, "/bigger").await;
    assert_eq!(st, 404);
}

/// Identity providers from a Keycloak export: listed (search, brief,
/// paging), read with their mappers, removed with an admin event; creating
/// or changing one is refused (501), since Gatehouse does not broker yet.
#[tokio::test]
async fn imported_identity_providers_are_listed_and_removable_unsupported_ones_not_creatable() {
    let s = start().await;
    let t = s.admin_token().await;
    let idp = |alias: &str, provider: &str| {
        json!({"alias": alias, "displayName": alias.to_uppercase(), "providerId": provider,
               "enabled": true, "internalId": format!("id-{alias}"),
               "config": {"clientId": "x", "clientSecret": "real-secret"}})
    };
    s.import(&json!({
        "realm": "brokered", "enabled": true, "adminEventsEnabled": true,
        "identityProviders": [idp("github-corp", "github"), idp("google", "google"), idp("okta-sso", "oidc")],
        "identityProviderMappers": [
            {"name": "team", "identityProviderAlias": "okta-sso", "identityProviderMapper": "hardcoded-attribute-idp-mapper", "config": {}},
            {"name": "other", "identityProviderAlias": "google", "identityProviderMapper": "hardcoded-attribute-idp-mapper", "config": {}},
            {"id": "m2", "name": "second", "identityProviderAlias": "google", "identityProviderMapper": "hardcoded-attribute-idp-mapper", "config": {}}
        ]
    }))
    .await;
    let p = "/brokered/identity-provider/instances";
    let aliases = |v: &Value| -> Vec<String> {
        v.as_array()
            .expect("list")
            .iter()
            .map(|p| p["alias"].as_str().expect("alias").to_owned())
            .collect()
    };
    let (st, all) = s.admin_get(&t, p).await;
    assert_eq!(st, 200);
    assert_eq!(aliases(&all), ["github-corp", "google", "okta-sso"]);
    assert_eq!(all[0]["config"]["clientId"], "x");
    assert_eq!(all[0]["config"]["clientSecret"], "**********");
    let (_, found) = s.admin_get(&t, &format!("{p}?search=g")).await;
    assert_eq!(aliases(&found), ["github-corp", "google"]);
    let (_, found) = s.admin_get(&t, &format!("{p}?search=*sso*")).await;
    assert_eq!(aliases(&found), ["okta-sso"]);
    let (_, page) = s
        .admin_get(&t, &format!("{p}?first=1&max=1&briefRepresentation=true"))
        .await;
    assert_eq!(
        page,
        json!([{"alias": "google", "displayName": "GOOGLE", "providerId": "google",
                "enabled": true, "internalId": "id-google"}])
    );
    let (st, one) = s.admin_get(&t, &format!("{p}/okta-sso")).await;
    assert_eq!((st, one["providerId"].clone()), (200, json!("oidc")));
    assert_eq!(one["config"]["clientSecret"], "**********");
    let (st, mappers) = s.admin_get(&t, &format!("{p}/okta-sso/mappers")).await;
    assert_eq!(st, 200);
    assert_eq!(mappers.as_array().map(Vec::len), Some(1));
    assert_eq!(mappers[0]["name"], "team");
    let (st, err) = s.admin_get(&t, &format!("{p}/nope")).await;
    assert_eq!(st, 404);
    assert_eq!(err["errorMessage"], "Could not find identity provider");
    let (_, mut realm) = s.admin_get(&t, "/brokered").await;
    assert_eq!(
        realm["identityProviders"][0]["config"]["clientSecret"],
        "**********"
    );
    // A realm update with what GET showed leaves the providers as they were.
    realm["identityProviders"] = json!([realm["identityProviders"][0]]);
    realm["displayName"] = json!("Brokered");
    assert_eq!(s.admin_put(&t, "/brokered", Some(&realm)).await, 204);
    let kept = &s.export("brokered").await["identityProviders"];
    assert_eq!(kept.as_array().map(Vec::len), Some(3));
    assert_eq!(kept[0]["config"]["clientSecret"], "real-secret");

    // An OpenID Connect provider without its endpoints cannot log anyone
    // in: 400; a type Gatehouse does not broker: 501.
    let (st, _) = s.admin_post(&t, p, &idp("azure", "oidc")).await;
    assert_eq!(st, 400);
    let (st, _) = s.admin_post(&t, p, &idp("corp-saml", "saml")).await;
    assert_eq!(st, 501);
    let mapper = json!({"name": "m", "identityProviderMapper": "hardcoded-attribute-idp-mapper"});
    let (st, _) = s
        .admin_post(&t, &format!("{p}/google/mappers"), &mapper)
        .await;
    assert_eq!(st, 501);
    let (st, _) = s
        .admin_post(&t, &format!("{p}/nope/mappers"), &mapper)
        .await;
    assert_eq!(st, 404);
    assert_eq!(
        s.admin_put(&t, &format!("{p}/google"), Some(&idp("google", "google")))
            .await,
        501
    );
    assert_eq!(s.admin_get(&t, p).await.1.as_array().map(Vec::len), Some(3));

    assert_eq!(s.admin_delete(&t, &format!("{p}/okta-sso")).await, 204);
    assert_eq!(s.admin_delete(&t, &format!("{p}/okta-sso")).await, 404);
    assert_eq!(
        aliases(&s.admin_get(&t, p).await.1),
        ["github-corp", "google"]
    );
    // One mapper by id (Keycloak's exports carry them): read, not
    // changed, removed.
    let m2 = format!("{p}/google/mappers/m2");
    assert_eq!(s.admin_get(&t, &m2).await.1["name"], "second");
    assert_eq!(
        s.admin_get(&t, &format!("{p}/okta-sso/mappers/m2")).await.0,
        404
    );
    assert_eq!(s.admin_put(&t, &m2, Some(&mapper)).await, 501);
    assert_eq!(s.admin_delete(&t, &m2).await, 204);
    assert_eq!(s.admin_get(&t, &m2).await.0, 404);
    let exported = s.export("brokered").await;
    assert_eq!(
        exported["identityProviders"].as_array().map(Vec::len),
        Some(2)
    );
    assert_eq!(
        exported["identityProviderMappers"],
        json!([{"name": "other", "identityProviderAlias": "google", "identityProviderMapper": "hardcoded-attribute-idp-mapper", "config": {}}])
    );
    let (_, events) = s
        .admin_get(&t, "/brokered/admin-events?resourceTypes=IDENTITY_PROVIDER")
        .await;
    assert_eq!(events[0]["operationType"], "DELETE");
    assert_eq!(
        events[0]["resourcePath"],
        "identity-provider/instances/okta-sso"
    );
}

/// Impersonation as Keycloak does it: the answer sets the realm's SSO
/// cookies of a new session of the user, a client then gets the user's
/// tokens without a login, and the admin stays attributable: the
/// `IMPERSONATE` event names them and introspection shows them as `act`.
/// Impersonating in the admin's own realm ends the admin's session first.
#[tokio::test]
async fn impersonation_signs_in_as_the_user_and_keeps_the_admin_attributable() {
    let s = start().await;
    let admin = s.demo_realm().await;
    let alice = s.user_id(&admin, "demo", "alice").await;
    let impersonate = |realm: &str, id: &str, token: &str| {
        s.http
            .post(format!(
                "{}/admin/realms/{realm}/users/{id}/impersonation",
                s.base
            ))
            .bearer_auth(token)
            .json(&json!({"user": id, "realm": "master"}))
            .send()
    };
    let r = impersonate("demo", &alice, &admin).await.expect("send");
    assert_eq!(r.status(), 200);
    let sso = crate::support::set_cookie(&r, "GATEHOUSE_IDENTITY");
    let body: Value = r.json().await.expect("json");
    assert_eq!(
        body,
        json!({"sameRealm": false, "redirect": format!("{}/realms/demo/account", s.base)})
    );
    // The cookie is alice's browser session: no login page, a code at once.
    let r = s
        .http
        .get(format!(
            "{}/realms/demo/protocol/openid-connect/auth",
            s.base
        ))
        .header("cookie", &sso)
        .query(&[
            ("client_id", "app"),
            ("redirect_uri", "http://127.0.0.1/cb"),
            ("response_type", "code"),
            ("scope", "openid"),
            ("prompt", "none"),
        ])
        .send()
        .await
        .expect("auth");
    assert_eq!(r.status(), 302);
    let loc = url::Url::parse(r.headers()["location"].to_str().expect("loc")).expect("url");
    let code = loc
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("a code, not an error");
    let tokens = s
        .redeem_code("demo", ("app", "app-secret"), &code, "http://127.0.0.1/cb")
        .await;
    let at = tokens["access_token"].as_str().expect("at");
    assert_eq!(claims(at)["sub"], alice);
    let introspected = s.introspect_demo(at).await;
    assert_eq!(introspected["active"], true);
    assert_eq!(introspected["username"], "alice");
    assert_eq!(introspected["act"], json!({"sub": "admin"}));
    // A token of alice's own login has no actor.
    let own = s.alice_tokens(None).await;
    let r = s
        .introspect_demo(own["access_token"].as_str().expect("at"))
        .await;
    assert_eq!(r["active"], true);
    assert!(r.get("act").is_none());
    let (_, events) = s.admin_get(&admin, "/demo/events?type=IMPERSONATE").await;
    assert_eq!(events.as_array().map(Vec::len), Some(1));
    assert_eq!(events[0]["userId"], alice);
    assert_eq!(events[0]["details"]["impersonator"], "admin");
    assert_eq!(events[0]["details"]["impersonator_realm"], "master");
    // Unknown user: 404, nothing started.
    let r = impersonate("demo", "nope", &admin).await.expect("send");
    assert_eq!(r.status(), 404);
    // In the admin's own realm the admin's session ends first.
    let (st, _) = s
        .admin_post(&admin, "/master/users", &json!({"username": "helper"}))
        .await;
    assert_eq!(st, 201);
    let helper = s.user_id(&admin, "master", "helper").await;
    let r = impersonate("master", &helper, &admin).await.expect("send");
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.expect("json")["sameRealm"], true);
    let r = s
        .http
        .get(format!("{}/admin/realms", s.base))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401, "the admin's own session ended");
}

/// A user's links to identity-provider accounts, as Keycloak keeps them:
/// they come with an import (and go back out with the export), are added
/// and removed through `federated-identity/{provider}`, and the listing
/// shows only links to providers the realm has.
#[tokio::test]
async fn federated_identity_links_survive_import_export_and_are_managed() {
    let s = start().await;
    let t = s.admin_token().await;
    s.import(&json!({
        "realm": "linked", "enabled": true, "adminEventsEnabled": true,
        "identityProviders": [{"alias": "google", "providerId": "google", "enabled": true,
            "config": {"clientId": "x", "clientSecret": "y"}}],
        "users": [{"username": "carol", "enabled": true, "federatedIdentities": [
            {"identityProvider": "google", "userId": "g-1", "userName": "carol@gmail.example"}]}]
    }))
    .await;
    let carol = s.user_id(&t, "linked", "carol").await;
    let links = format!("/linked/users/{carol}/federated-identity");
    let google =
        json!([{"identityProvider": "google", "userId": "g-1", "userName": "carol@gmail.example"}]);
    assert_eq!(s.admin_get(&t, &links).await, (200, google.clone()));
    let (_, user) = s.admin_get(&t, &format!("/linked/users/{carol}")).await;
    assert_eq!(user["federatedIdentities"], google);
    let exported = s.export("linked").await;
    assert_eq!(exported["users"][0]["federatedIdentities"], google);
    // Found by their link, as Keycloak's `idpAlias` / `idpUserId` search.
    let (st, _) = s
        .admin_post(&t, "/linked/users", &json!({"username": "dave"}))
        .await;
    assert_eq!(st, 201);
    let names = |q: &'static str| {
        let (s, t) = (&s, &t);
        async move {
            let (_, v) = s.admin_get(t, &format!("/linked/users?{q}")).await;
            v.as_array()
                .expect("users")
                .iter()
                .map(|u| u["username"].as_str().expect("name").to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(names("idpAlias=google").await, ["carol"]);
    assert_eq!(names("idpAlias=google&idpUserId=g-1").await, ["carol"]);
    assert!(names("idpAlias=google&idpUserId=g-2").await.is_empty());
    assert!(names("idpAlias=github").await.is_empty());
    assert_eq!(names("max=10").await.len(), 2);
    let (_, n) = s.admin_get(&t, "/linked/users/count?idpAlias=google").await;
    assert_eq!(n, json!(1));
    // A second link to the same provider is a conflict; one to a provider
    // the realm does not have is kept but not listed (as in Keycloak).
    let link = |provider: &str| format!("{links}/{provider}");
    let body = json!({"userId": "g-2", "userName": "other"});
    assert_eq!(s.admin_post(&t, &link("google"), &body).await.0, 409);
    assert_eq!(s.admin_post(&t, &link("foobar"), &body).await.0, 204);
    assert_eq!(s.admin_get(&t, &links).await.1, google);
    let no_user_id = json!({"userName": "x"});
    assert_eq!(s.admin_post(&t, &link("github"), &no_user_id).await.0, 400);
    assert_eq!(s.admin_delete(&t, &link("foobar")).await, 204);
    assert_eq!(s.admin_delete(&t, &link("google")).await, 204);
    assert_eq!(s.admin_delete(&t, &link("google")).await, 404);
    assert_eq!(s.admin_get(&t, &links).await, (200, json!([])));
    let (_, events) = s
        .admin_get(&t, "/linked/admin-events?resourceTypes=USER")
        .await;
    let ops: Vec<&str> = events
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| {
            e["resourcePath"]
                .as_str()
                .is_some_and(|p| p.contains("/federated-identity/"))
        })
        .filter_map(|e| e["operationType"].as_str())
        .collect();
    assert_eq!(ops.iter().filter(|o| **o == "CREATE").count(), 1);
    assert_eq!(ops.iter().filter(|o| **o == "DELETE").count(), 2);
    // Removing the provider removes the links to it, in the same write.
    assert_eq!(s.admin_post(&t, &link("google"), &body).await.0, 204);
    assert_eq!(names("idpAlias=google").await, ["carol"]);
    let idp = "/linked/identity-provider/instances/google";
    assert_eq!(s.admin_delete(&t, idp).await, 204);
    assert!(names("idpAlias=google").await.is_empty());
    let exported = s.export("linked").await;
    let carol_rep = exported["users"]
        .as_array()
        .expect("users")
        .iter()
        .find(|u| u["username"] == "carol")
        .cloned()
        .expect("carol");
    assert!(
        carol_rep.get("federatedIdentities").is_none(),
        "{carol_rep}"
    );
}

/// The events config decides what the admin API lists, as Keycloak's
/// "save events" does: nothing while `eventsEnabled` is off, only the
/// `enabledEventTypes` when some are named, no admin events while
/// `adminEventsEnabled` is off. What was listed stays listed.
#[tokio::test]
async fn events_config_decides_which_events_are_listed() {
    let s = start().await;
    let t = s.demo_realm().await;
    // A realm created without saying starts as Keycloak's does: neither
    // user nor admin events listed (they still reach the outbox).
    assert_eq!(
        s.admin_post(&t, "", &json!({"realm": "quiet"})).await.0,
        201
    );
    let (_, config) = s.admin_get(&t, "/quiet/events/config").await;
    assert_eq!(
        (&config["eventsEnabled"], &config["adminEventsEnabled"]),
        (&json!(false), &json!(false))
    );
    let (_, none) = s.admin_get(&t, "/quiet/admin-events").await;
    assert_eq!(none, json!([]));
    let kinds = |path: &'static str| {
        let (s, t) = (&s, &t);
        async move {
            let (_, v) = s.admin_get(t, path).await;
            v.as_array()
                .expect("events")
                .iter()
                .map(|e| {
                    e["type"]
                        .as_str()
                        .or(e["operationType"].as_str())
                        .expect("kind")
                        .to_owned()
                })
                .collect::<Vec<_>>()
        }
    };
    let config = |body: Value| {
        let (s, t) = (&s, &t);
        async move { s.admin_put(t, "/demo/events/config", Some(&body)).await }
    };
    s.alice_tokens(None).await;
    assert_eq!(kinds("/demo/events").await, ["LOGIN"]);
    assert_eq!(config(json!({"eventsEnabled": false})).await, 204);
    let tokens = s.alice_tokens(None).await;
    s.public_refresh("demo", "spa", "bogus").await;
    assert_eq!(kinds("/demo/events").await, ["LOGIN"], "nothing new listed");
    let body = json!({"eventsEnabled": true, "enabledEventTypes": ["REFRESH_TOKEN"]});
    assert_eq!(config(body).await, 204);
    s.alice_tokens(None).await;
    let form = [
        ("grant_type", "refresh_token"),
        (
            "refresh_token",
            tokens["refresh_token"].as_str().expect("rt"),
        ),
    ];
    let app = Some(("app", "app-secret"));
    assert_eq!(s.token_request("demo", app, &form).await.status(), 200);
    assert_eq!(kinds("/demo/events").await, ["REFRESH_TOKEN", "LOGIN"]);
    // Admin events: the config writes above were listed (enabled by
    // default); once off, no admin write is.
    let before = kinds("/demo/admin-events").await.len();
    assert!(before >= 2);
    assert_eq!(config(json!({"adminEventsEnabled": false})).await, 204);
    let (code, _) = s
        .admin_post(&t, "/demo/roles", &json!({"name": "unlisted"}))
        .await;
    assert_eq!(code, 201);
    assert_eq!(
        kinds("/demo/admin-events").await.len(),
        before,
        "as in Keycloak, not even the write that turned them off"
    );
}

/// Event filters are applied, never dropped: a filter Gatehouse ignored
/// would hand back events the caller did not ask for. Admin events by
/// resource type and path (with `*`), by the admin's realm and address;
/// user events by address; paging applies after filtering.
#[tokio::test]
async fn event_filters_narrow_the_listing() {
    let s = start().await;
    let t = s.demo_realm().await;
    for name in ["r1", "r2", "r3"] {
        let (st, _) = s
            .admin_post(&t, "/demo/roles", &json!({"name": name}))
            .await;
        assert_eq!(st, 201);
    }
    s.alice_tokens(None).await;
    let count = |q: &'static str| {
        let (s, t) = (&s, &t);
        async move {
            let (st, v) = s.admin_get(t, &format!("/demo/{q}")).await;
            assert_eq!(st, 200, "{q}");
            v.as_array().expect("events").len()
        }
    };
    let all = count("admin-events?max=1000").await;
    assert!(all > 3);
    assert_eq!(count("admin-events?resourceTypes=REALM_ROLE").await, 3);
    assert_eq!(
        count("admin-events?resourceTypes=REALM_ROLE&max=2").await,
        2
    );
    assert_eq!(
        count("admin-events?resourceTypes=REALM_ROLE&first=2").await,
        1
    );
    assert_eq!(count("admin-events?resourcePath=roles/*").await, 3);
    assert_eq!(count("admin-events?resourcePath=roles/r2").await, 1);
    assert_eq!(count("admin-events?resourcePath=nothing/*").await, 0);
    assert_eq!(count("admin-events?authRealm=master&max=1000").await, all);
    assert_eq!(count("admin-events?authRealm=demo").await, 0);
    assert_eq!(count("events?ipAddress=127.0.0.1").await, 1);
    assert_eq!(count("events?ipAddress=10.9.9.9").await, 0);
}

/// Listing filters Keycloak's scripts use are applied, never dropped (a
/// dropped filter returns everything, and a script acting on the answer
/// acts on everyone): users by `emailVerified`, clients by attribute
/// (`q`), groups by exact name and by attribute.
#[tokio::test]
async fn listing_filters_are_applied_not_dropped() {
    let s = start().await;
    let t = s.demo_realm().await;
    let body = json!({"username": "verified", "email": "v@example.com", "emailVerified": true});
    assert_eq!(s.admin_post(&t, "/demo/users", &body).await.0, 201);
    let field = |path: String, key: &'static str| {
        let (s, t) = (&s, &t);
        async move {
            let (st, v) = s.admin_get(t, &path).await;
            assert_eq!(st, 200, "{path}");
            let mut out: Vec<String> = v
                .as_array()
                .expect("list")
                .iter()
                .map(|x| x[key].as_str().expect("field").to_owned())
                .collect();
            out.sort();
            out
        }
    };
    let users = |q: &str| field(format!("/demo/users?{q}"), "username");
    assert_eq!(users("emailVerified=true").await, ["verified"]);
    assert_eq!(users("emailVerified=false").await, ["alice"]);
    let (_, n) = s
        .admin_get(&t, "/demo/users/count?emailVerified=true")
        .await;
    assert_eq!(n, json!(1));
    let tagged = json!({"clientId": "tagged", "attributes": {"team": "blue"}});
    assert_eq!(s.admin_post(&t, "/demo/clients", &tagged).await.0, 201);
    let clients = |q: &str| field(format!("/demo/clients?{q}"), "clientId");
    assert_eq!(clients("q=team:blue").await, ["tagged"]);
    assert!(clients("q=team:red").await.is_empty());
    assert_eq!(s.admin_get(&t, "/demo/clients?q=broken").await.0, 400);
    let g = json!({"name": "sales-eu", "attributes": {"region": ["eu"]}});
    assert_eq!(s.admin_post(&t, "/demo/groups", &g).await.0, 201);
    let groups = |q: &str| field(format!("/demo/groups?{q}"), "name");
    assert_eq!(groups("search=sales").await, ["sales", "sales-eu"]);
    assert_eq!(groups("search=sales&exact=true").await, ["sales"]);
    assert_eq!(groups("q=region:eu").await, ["sales-eu"]);
    assert!(groups("q=region:us").await.is_empty());
    let (_, sales) = s
        .admin_get(&t, "/demo/groups?search=sales&exact=true")
        .await;
    let sales = sales[0]["id"].as_str().expect("id").to_owned();
    for kid in ["north", "south", "southwest"] {
        let path = format!("/demo/groups/{sales}/children");
        assert_eq!(s.admin_post(&t, &path, &json!({"name": kid})).await.0, 201);
    }
    let kids = |q: &str| field(format!("/demo/groups/{sales}/children?{q}"), "name");
    assert_eq!(kids("search=south").await, ["south", "southwest"]);
    assert_eq!(kids("search=south&exact=true").await, ["south"]);
    assert_eq!(kids("first=1&max=1").await.len(), 1);
}

/// Concurrent admin writes to one realm's settings (components,
/// localization texts, authentication flows all live in the realm's row)
/// and to one client's protocol mappers each land: none is lost to a
/// read-modify-write race, as Terraform's parallel applies would otherwise
/// provoke.
#[tokio::test]
async fn concurrent_edits_all_land() {
    let s = start().await;
    let t = s.demo_realm().await;
    let client = s.client_uuid(&t, "demo", "app").await;
    let mut writes = tokio::task::JoinSet::new();
    for i in 0..12 {
        let (http, base, t) = (s.http.clone(), s.base.clone(), t.clone());
        let client = client.clone();
        writes.spawn(async move {
            let admin = format!("{base}/admin/realms/demo");
            let policy = http
                .post(format!("{admin}/components"))
                .bearer_auth(&t)
                .json(&json!({"name": format!("policy-{i}"), "providerId": "max-clients",
                    "providerType": "org.keycloak.services.clientregistration.policy.ClientRegistrationPolicy",
                    "subType": "anonymous", "config": {"max-clients": ["100"]}}))
                .send();
            let text = http
                .put(format!("{admin}/localization/en/key{i}"))
                .bearer_auth(&t)
                .header("content-type", "text/plain")
                .body(format!("text {i}"))
                .send();
            let flow = http
                .post(format!("{admin}/authentication/flows"))
                .bearer_auth(&t)
                .json(&json!({"alias": format!("flow-{i}"), "providerId": "basic-flow",
                              "topLevel": true, "builtIn": false}))
                .send();
            let mapper = http
                .post(format!("{admin}/clients/{client}/protocol-mappers/models"))
                .bearer_auth(&t)
                .json(&json!({"name": format!("mapper-{i}"), "protocol": "openid-connect",
                    "protocolMapper": "oidc-hardcoded-claim-mapper",
                    "config": {"claim.name": format!("c{i}"), "claim.value": "v"}}))
                .send();
            let (a, b, c, d) = tokio::join!(policy, text, flow, mapper);
            [a, b, c, d].map(|r| r.expect("send").status().as_u16())
        });
    }
    while let Some(statuses) = writes.join_next().await {
        assert_eq!(statuses.expect("task"), [201, 204, 201, 201]);
    }
    let named = |list: &Value, field: &str, prefix: &str| {
        list.as_array()
            .expect("list")
            .iter()
            .filter(|v| v[field].as_str().is_some_and(|a| a.starts_with(prefix)))
            .count()
    };
    let (_, components) = s.admin_get(&t, "/demo/components").await;
    assert_eq!(named(&components, "name", "policy-"), 12);
    let (_, texts) = s.admin_get(&t, "/demo/localization/en").await;
    assert_eq!(texts.as_object().map(|o| o.len()), Some(12), "{texts}");
    let (_, flows) = s.admin_get(&t, "/demo/authentication/flows").await;
    assert_eq!(named(&flows, "alias", "flow-"), 12);
    let (_, mappers) = s
        .admin_get(
            &t,
            &format!("/demo/clients/{client}/protocol-mappers/models"),
        )
        .await;
    assert_eq!(named(&mappers, "name", "mapper-"), 12);
}

/// A service account of realm `tenant` (client `client`, secret
/// `{client}-secret`) granted one `realm-management` role by the master
/// admin: returns the role-mapping path and the role, to take it back, and
/// the account's client-credentials token.
async fn tenant_service_account(
    s: &crate::support::Server,
    master: &str,
    client: &str,
    role: &str,
) -> (String, Value, String) {
    let secret = format!("{client}-secret");
    let id = s
        .admin_create(
            master,
            "/tenant/clients",
            &json!({"clientId": client, "secret": secret, "serviceAccountsEnabled": true}),
        )
        .await;
    let (_, sa) = s
        .admin_get(
            master,
            &format!("/tenant/clients/{id}/service-account-user"),
        )
        .await;
    let rm = s.client_uuid(master, "tenant", "realm-management").await;
    let (_, role) = s
        .admin_get(master, &format!("/tenant/clients/{rm}/roles/{role}"))
        .await;
    let grant = format!(
        "/tenant/users/{}/role-mappings/clients/{rm}",
        sa["id"].as_str().expect("service account")
    );
    assert_eq!(s.admin_post(master, &grant, &json!([role])).await.0, 204);
    let token = s.service_token("tenant", client, &secret).await;
    (grant, role, token)
}

/// A realm's own administrators: a service account of realm `tenant`
/// holding `realm-management`'s `realm-admin` administers `tenant` (as
/// with Keycloak, where scripts run on such accounts), and nothing else.
#[tokio::test]
async fn a_realms_own_realm_admin_administers_that_realm_only() {
    let s = start().await;
    let master = s.admin_token().await;
    for name in ["tenant", "other"] {
        let (st, _) = s
            .admin_post(&master, "", &json!({"realm": name, "enabled": true}))
            .await;
        assert_eq!(st, 201);
    }
    let (grant, admin_role, t) =
        tenant_service_account(&s, &master, "provisioner", "realm-admin").await;
    let c = claims(&t);
    assert!(
        c["resource_access"]["realm-management"]["roles"]
            .as_array()
            .is_some_and(|r| r.contains(&json!("manage-users"))),
        "realm-admin holds the other roles: {c}"
    );
    // Users, groups, roles, clients of its realm: the whole admin API.
    let uid = s
        .admin_create(
            &t,
            "/tenant/users",
            &json!({"username": "carol", "enabled": true}),
        )
        .await;
    let gid = s
        .admin_create(&t, "/tenant/groups", &json!({"name": "staff"}))
        .await;
    assert_eq!(
        s.admin_put(&t, &format!("/tenant/users/{uid}/groups/{gid}"), None)
            .await,
        204
    );
    let (st, _) = s
        .admin_post(&t, "/tenant/roles", &json!({"name": "editor"}))
        .await;
    assert_eq!(st, 201);
    assert_eq!(s.admin_get(&t, "/tenant/roles/editor").await.0, 200);
    assert_eq!(s.admin_get(&t, "/tenant").await.0, 200);
    let app = s
        .admin_create(&t, "/tenant/clients", &json!({"clientId": "tenant-app"}))
        .await;
    for path in [
        format!("/tenant/clients/{app}/protocol-mappers/models"),
        format!("/tenant/clients/{app}/user-sessions"),
        "/tenant/roles/editor/composites".to_owned(),
        format!("/tenant/groups/{gid}/members"),
    ] {
        assert_eq!(s.admin_get(&t, &path).await.0, 200, "{path}");
    }
    assert_eq!(
        s.admin_delete(
            &t,
            &format!("/tenant/attack-detection/brute-force/users/{uid}")
        )
        .await,
        204
    );
    // Server info (Terraform's provider reads it first) and a realm list
    // holding its own realm alone.
    assert_eq!(s.admin_get_root(&t, "/admin/serverinfo").await.0, 200);
    let (st, realms) = s.admin_get(&t, "").await;
    assert_eq!(st, 200);
    let names: Vec<&str> = realms
        .as_array()
        .expect("realms")
        .iter()
        .filter_map(|r| r["realm"].as_str())
        .collect();
    assert_eq!(names, ["tenant"]);
    // Not master, not another realm, no new realms: a valid token without
    // the right is 403 there, as in Keycloak; a garbage one stays 401.
    assert_eq!(s.admin_get(&t, "/master/users").await.0, 403);
    assert_eq!(s.admin_get(&t, "/other/users").await.0, 403);
    assert_eq!(s.admin_delete(&t, "/other").await, 403);
    assert_eq!(
        s.admin_post(&t, "", &json!({"realm": "mine", "enabled": true}))
            .await
            .0,
        403
    );
    assert_eq!(s.admin_get("garbage", "/tenant/users").await.0, 401);
    // The read roles of users, groups and events read those; nothing else,
    // and never a write.
    let (_, _, reader) = tenant_service_account(&s, &master, "reader", "view-users").await;
    // The user profile's schema is for administrators of the realm or its
    // users, not for one that may only create clients (CVE-2025-14083).
    let (_, _, creator) = tenant_service_account(&s, &master, "creator", "create-client").await;
    assert_eq!(s.admin_get(&creator, "/tenant/users/profile").await.0, 403);
    assert_eq!(
        s.admin_get(&creator, "/tenant/users/profile/metadata")
            .await
            .0,
        403
    );
    for (path, status) in [
        ("/tenant/users".to_owned(), 200),
        (format!("/tenant/users/{uid}"), 200),
        (format!("/tenant/users/{uid}/groups"), 200),
        ("/tenant/groups".to_owned(), 200),
        ("/tenant/users/profile".to_owned(), 200),
        ("/tenant/clients".to_owned(), 403),
        ("/tenant/events".to_owned(), 403),
        ("/tenant/keys".to_owned(), 403),
    ] {
        assert_eq!(s.admin_get(&reader, &path).await.0, status, "{path}");
    }
    // The realm itself: its name and login-page settings, not the rest.
    let (st, brief) = s.admin_get(&reader, "/tenant").await;
    assert_eq!(st, 200);
    assert_eq!(brief["realm"], "tenant");
    assert!(brief.get("accessTokenLifespan").is_none(), "{brief}");
    assert!(brief.get("smtpServer").is_none(), "{brief}");
    let (st, _) = s
        .admin_post(&reader, "/tenant/users", &json!({"username": "nope"}))
        .await;
    assert_eq!(st, 403);
    assert_eq!(
        s.admin_delete(&reader, &format!("/tenant/users/{uid}"))
            .await,
        403
    );
    let (_, _, querier) = tenant_service_account(&s, &master, "querier", "query-users").await;
    assert_eq!(s.admin_get(&querier, "/tenant/users").await.0, 200);
    assert_eq!(
        s.admin_get(&querier, &format!("/tenant/users/{uid}"))
            .await
            .0,
        403
    );
    let (_, _, auditor) = tenant_service_account(&s, &master, "auditor", "view-events").await;
    assert_eq!(s.admin_get(&auditor, "/tenant/events").await.0, 200);
    assert_eq!(s.admin_get(&auditor, "/tenant/users").await.0, 403);
    let (_, _, viewer) = tenant_service_account(&s, &master, "viewer", "view-realm").await;
    assert_eq!(s.admin_get(&viewer, "/tenant").await.0, 200);
    assert_eq!(s.admin_get(&viewer, "/tenant/keys").await.0, 200);
    assert_eq!(s.admin_get(&viewer, "/tenant/clients").await.0, 403);
    assert_eq!(
        s.admin_put(&viewer, "/tenant", Some(&json!({"enabled": true})))
            .await,
        403
    );
    // Taking the role away takes effect at once, whatever the token says.
    let r = s
        .http
        .delete(format!("{}/admin/realms{grant}", s.base))
        .bearer_auth(&master)
        .json(&json!([admin_role]))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 204);
    assert_eq!(s.admin_get(&t, "/tenant/users").await.0, 403);
    // A realm's `manage-realm` administrator may delete it, as in Keycloak.
    let (_, _, owner) = tenant_service_account(&s, &master, "owner", "manage-realm").await;
    assert_eq!(s.admin_delete(&owner, "/other").await, 403);
    assert_eq!(s.admin_delete(&owner, "/tenant").await, 204);
    assert_eq!(s.admin_get(&master, "/tenant").await.0, 404);
}

/// A service account holding only `manage-users` (how backends provision
/// users with Keycloak): users and groups, their passwords and role
/// mappings; roles it could not hold itself stay out of its reach; other
/// parts of the realm answer 403. Clients: `view-clients` reads them
/// without their secrets, `manage-clients` with.
#[tokio::test]
async fn narrower_realm_management_roles_act_within_their_reach() {
    let s = start().await;
    let master = s.admin_token().await;
    let (st, _) = s
        .admin_post(&master, "", &json!({"realm": "tenant", "enabled": true}))
        .await;
    assert_eq!(st, 201);
    for (name, composite) in [("editor", None), ("boss", Some("manage-realm"))] {
        let (st, _) = s
            .admin_post(&master, "/tenant/roles", &json!({"name": name}))
            .await;
        assert_eq!(st, 201);
        if let Some(inner) = composite {
            let rm = s.client_uuid(&master, "tenant", "realm-management").await;
            let (_, role) = s
                .admin_get(&master, &format!("/tenant/clients/{rm}/roles/{inner}"))
                .await;
            let (st, _) = s
                .admin_post(
                    &master,
                    &format!("/tenant/roles/{name}/composites"),
                    &json!([role]),
                )
                .await;
            assert_eq!(st, 204);
        }
    }
    let (_, _, t) = tenant_service_account(&s, &master, "provisioner", "manage-users").await;
    // whoami at its own realm's console: the roles it holds there.
    let (st, me) = s
        .admin_get_root(&t, "/admin/tenant/console/whoami?currentRealm=tenant")
        .await;
    assert_eq!(st, 200);
    assert_eq!(me["realm_access"]["tenant"], json!(["manage-users"]));
    assert_eq!(me["createRealm"], false);
    assert_eq!(
        s.admin_get_root(&master, "/admin/tenant/console/whoami")
            .await
            .0,
        401,
        "a master token is not a token of tenant"
    );
    // Users: create with a password, update, reset, group membership.
    let uid = s
        .admin_create(
            &t,
            "/tenant/users",
            &json!({"username": "dave", "enabled": true, "email": "dave@example.com",
                    "credentials": [{"type": "password", "value": "first-pass", "temporary": false}]}),
        )
        .await;
    let user = format!("/tenant/users/{uid}");
    assert_eq!(
        s.admin_put(&t, &user, Some(&json!({"firstName": "Dave"})))
            .await,
        204
    );
    assert_eq!(
        s.admin_put(
            &t,
            &format!("{user}/reset-password"),
            Some(&json!({"type": "password", "value": "second-pass", "temporary": false}))
        )
        .await,
        204
    );
    let gid = s
        .admin_create(&t, "/tenant/groups", &json!({"name": "staff"}))
        .await;
    assert_eq!(
        s.admin_put(&t, &format!("{user}/groups/{gid}"), None).await,
        204
    );
    // A group holding realm-admin is out of reach, joined or at creation.
    let admins = s
        .admin_create(&master, "/tenant/groups", &json!({"name": "admins"}))
        .await;
    let rm = s.client_uuid(&master, "tenant", "realm-management").await;
    let (_, realm_admin) = s
        .admin_get(&master, &format!("/tenant/clients/{rm}/roles/realm-admin"))
        .await;
    let (st, _) = s
        .admin_post(
            &master,
            &format!("/tenant/groups/{admins}/role-mappings/clients/{rm}"),
            &json!([realm_admin]),
        )
        .await;
    assert_eq!(st, 204);
    assert_eq!(
        s.admin_put(&t, &format!("{user}/groups/{admins}"), None)
            .await,
        403
    );
    let (st, _) = s
        .admin_post(
            &t,
            "/tenant/users",
            &json!({"username": "mallory", "groups": ["/admins"]}),
        )
        .await;
    assert_eq!(st, 403);
    // Nor by moving a group it manages under it.
    let (st, _) = s
        .admin_post(
            &t,
            &format!("/tenant/groups/{admins}/children"),
            &json!({"id": gid, "name": "staff"}),
        )
        .await;
    assert_eq!(st, 403);
    assert_eq!(s.admin_get(&t, "/tenant/users/count").await.0, 200);
    // Role mappings: a plain realm role by name, yes; a realm-management
    // role it holds the power of, yes; anything above it, no, not even
    // wrapped in a composite.
    let mapping = format!("{user}/role-mappings/realm");
    let (st, _) = s
        .admin_post(&t, &mapping, &json!([{"name": "editor"}]))
        .await;
    assert_eq!(st, 204);
    let (st, _) = s.admin_post(&t, &mapping, &json!([{"name": "boss"}])).await;
    assert_eq!(st, 403);
    let client_mapping = format!("{user}/role-mappings/clients/{rm}");
    for (role, status) in [
        ("view-users", 204),
        ("query-clients", 204),
        ("manage-realm", 403),
        ("realm-admin", 403),
        ("impersonation", 403),
    ] {
        let (st, _) = s
            .admin_post(&t, &client_mapping, &json!([{"name": role}]))
            .await;
        assert_eq!(st, status, "{role}");
    }
    let (_, granted) = s.admin_get(&master, &format!("{user}/role-mappings")).await;
    let realm_names: Vec<&str> = granted["realmMappings"]
        .as_array()
        .expect("realm mappings")
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert!(realm_names.contains(&"editor"), "{granted}");
    assert!(!realm_names.contains(&"boss"), "{granted}");
    // The user logs in with the password it set.
    let r = s
        .http
        .post(s.token_url("tenant"))
        .form(&[
            ("grant_type", "password"),
            ("client_id", "admin-cli"),
            ("username", "dave"),
            ("password", "second-pass"),
        ])
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    // Outside its reach: realm settings, roles, clients, events, keys,
    // impersonation.
    assert_eq!(
        s.admin_put(&t, "/tenant", Some(&json!({"enabled": true})))
            .await,
        403
    );
    let (st, _) = s
        .admin_post(&t, "/tenant/roles", &json!({"name": "mine"}))
        .await;
    assert_eq!(st, 403);
    assert_eq!(s.admin_get(&t, "/tenant/roles").await.0, 200);
    assert_eq!(s.admin_get(&t, "/tenant/roles/editor").await.0, 403);
    for path in ["/tenant/clients", "/tenant/events", "/tenant/keys"] {
        assert_eq!(s.admin_get(&t, path).await.0, 403, "{path}");
    }
    let (st, _) = s
        .admin_post(&t, &format!("{user}/impersonation"), &json!({}))
        .await;
    assert_eq!(st, 403);
    // Clients: view-clients reads them, secret masked; manage-clients
    // reads the secret.
    let app = s
        .admin_create(
            &master,
            "/tenant/clients",
            &json!({"clientId": "app", "secret": "app-secret-value"}),
        )
        .await;
    let (_, _, viewer) = tenant_service_account(&s, &master, "viewer", "view-clients").await;
    let (st, c) = s
        .admin_get(&viewer, &format!("/tenant/clients/{app}"))
        .await;
    assert_eq!(st, 200);
    assert_ne!(c["secret"], "app-secret-value", "{c}");
    let (st, list) = s.admin_get(&viewer, "/tenant/clients?clientId=app").await;
    assert_eq!(st, 200);
    assert_ne!(list[0]["secret"], "app-secret-value", "{list}");
    assert_eq!(
        s.admin_get(&viewer, &format!("/tenant/clients/{app}/client-secret"))
            .await
            .0,
        403
    );
    let (st, _) = s
        .admin_post(&viewer, "/tenant/clients", &json!({"clientId": "nope"}))
        .await;
    assert_eq!(st, 403);
    let (_, _, manager) = tenant_service_account(&s, &master, "manager", "manage-clients").await;
    let (_, c) = s
        .admin_get(&manager, &format!("/tenant/clients/{app}"))
        .await;
    assert_eq!(c["secret"], "app-secret-value");
    let (st, secret) = s
        .admin_get(&manager, &format!("/tenant/clients/{app}/client-secret"))
        .await;
    assert_eq!((st, &secret["value"]), (200, &json!("app-secret-value")));
    assert_eq!(s.admin_get(&manager, "/tenant/users").await.0, 403);
    // The realm-management client and its roles stay with full admins:
    // renaming its own role to realm-admin would make it one.
    let rename = json!({"name": "realm-admin"});
    assert_eq!(
        s.admin_put(
            &manager,
            &format!("/tenant/clients/{rm}/roles/manage-clients"),
            Some(&rename)
        )
        .await,
        403
    );
    assert_eq!(
        s.admin_put(
            &manager,
            &format!("/tenant/clients/{rm}"),
            Some(&json!({"clientId": "realm-management"}))
        )
        .await,
        403
    );
    let (_, _, owner) = tenant_service_account(&s, &master, "owner", "manage-realm").await;
    let (_, mr) = s
        .admin_get(&master, &format!("/tenant/clients/{rm}/roles/manage-realm"))
        .await;
    let by_id = format!("/tenant/roles-by-id/{}", mr["id"].as_str().expect("id"));
    assert_eq!(s.admin_put(&owner, &by_id, Some(&rename)).await, 403);
    assert_eq!(s.admin_delete(&owner, &by_id).await, 403);
    // Other clients' roles are theirs to manage.
    let (st, _) = s
        .admin_post(
            &manager,
            &format!("/tenant/clients/{app}/roles"),
            &json!({"name": "reader"}),
        )
        .await;
    assert_eq!(st, 201);
}

/// The SMTP password is shown masked, as Keycloak shows it; writing the
/// realm back as read keeps the stored one; export keeps it too.
#[tokio::test]
async fn smtp_password_is_masked_and_survives_a_read_modify_write() {
    let s = start().await;
    let t = s.demo_realm().await;
    let smtp = json!({"smtpServer": {"host": "mail.example", "from": "id@example", "password": "mail-pw"}});
    assert_eq!(s.admin_put(&t, "/demo", Some(&smtp)).await, 204);
    let (_, mut rep) = s.admin_get(&t, "/demo").await;
    assert_eq!(rep["smtpServer"]["password"], "**********");
    rep["displayName"] = json!("Demo");
    assert_eq!(s.admin_put(&t, "/demo", Some(&rep)).await, 204);
    assert_eq!(s.export("demo").await["smtpServer"]["password"], "mail-pw");
    let (_, list) = s.admin_get(&t, "").await;
    assert!(!list.to_string().contains("mail-pw"));
}

/// Keycloak's `{realm}-realm` clients of `master`: a `master` service
/// account given `tenant-realm`'s `manage-users` (not `admin`) manages
/// tenant's users, sees tenant alone, and nothing more; the client follows
/// its realm's renames and goes with it.
#[tokio::test]
async fn master_accounts_administer_a_realm_through_its_master_client() {
    let s = start().await;
    let master = s.admin_token().await;
    for name in ["tenant", "other"] {
        let (st, _) = s
            .admin_post(&master, "", &json!({"realm": name, "enabled": true}))
            .await;
        assert_eq!(st, 201);
    }
    let (_, clients) = s
        .admin_get(&master, "/master/clients?clientId=tenant-realm")
        .await;
    assert_eq!(clients[0]["bearerOnly"], true, "{clients}");
    let tr = clients[0]["id"].as_str().expect("id").to_owned();
    // A master service account with tenant-realm's manage-users.
    let ops = s
        .admin_create(
            &master,
            "/master/clients",
            &json!({"clientId": "ops", "secret": "ops-secret", "serviceAccountsEnabled": true}),
        )
        .await;
    let (_, sa) = s
        .admin_get(
            &master,
            &format!("/master/clients/{ops}/service-account-user"),
        )
        .await;
    let (_, role) = s
        .admin_get(&master, &format!("/master/clients/{tr}/roles/manage-users"))
        .await;
    let grant = format!(
        "/master/users/{}/role-mappings/clients/{tr}",
        sa["id"].as_str().expect("sa")
    );
    assert_eq!(s.admin_post(&master, &grant, &json!([role])).await.0, 204);
    let t = s.service_token("master", "ops", "ops-secret").await;
    let uid = s
        .admin_create(
            &t,
            "/tenant/users",
            &json!({"username": "erin", "enabled": true}),
        )
        .await;
    assert_eq!(
        s.admin_get(&t, &format!("/tenant/users/{uid}")).await.0,
        200
    );
    for path in ["/other/users", "/master/users", "/tenant/clients"] {
        assert_eq!(s.admin_get(&t, path).await.0, 403, "{path}");
    }
    let (st, realms) = s.admin_get(&t, "").await;
    assert_eq!(st, 200);
    assert_eq!(realms.as_array().map(Vec::len), Some(1), "{realms}");
    assert_eq!(realms[0]["realm"], "tenant");
    assert!(
        realms[0].get("accessTokenLifespan").is_none(),
        "by name only"
    );
    let (_, me) = s
        .admin_get_root(&t, "/admin/master/console/whoami?currentRealm=tenant")
        .await;
    assert_eq!(me["realm_access"]["tenant"], json!(["manage-users"]));
    // The client is renamed with its realm and removed with it.
    assert_eq!(
        s.admin_put(&master, "/tenant", Some(&json!({"realm": "renamed"})))
            .await,
        204
    );
    let (_, found) = s
        .admin_get(&master, "/master/clients?clientId=renamed-realm")
        .await;
    assert_eq!(found[0]["id"], json!(tr));
    // A token names the client as it was: a fresh one reaches the realm.
    let fresh = &s.service_token("master", "ops", "ops-secret").await;
    assert_eq!(s.admin_get(fresh, "/renamed/users/count").await.0, 200);
    assert_eq!(s.admin_delete(&master, "/renamed").await, 204);
    let (_, gone) = s
        .admin_get(&master, "/master/clients?clientId=renamed-realm")
        .await;
    assert_eq!(gone, json!([]));
}

/// A `master` user holding only `create-realm` administers the realms it
/// creates (their `{realm}-realm` roles), as in Keycloak, and no others.
#[tokio::test]
async fn a_realm_creator_administers_the_realm_it_created() {
    let s = start().await;
    let master = s.admin_token().await;
    let (st, _) = s
        .admin_post(&master, "", &json!({"realm": "other", "enabled": true}))
        .await;
    assert_eq!(st, 201);
    let uid = s
        .admin_create(
            &master,
            "/master/users",
            &json!({"username": "creator", "enabled": true,
                    "credentials": [{"type": "password", "value": "creator-pw", "temporary": false}]}),
        )
        .await;
    let (_, role) = s.admin_get(&master, "/master/roles/create-realm").await;
    let (st, _) = s
        .admin_post(
            &master,
            &format!("/master/users/{uid}/role-mappings/realm"),
            &json!([role]),
        )
        .await;
    assert_eq!(st, 204);
    let login = || async {
        let r: Value = s
            .http
            .post(s.token_url("master"))
            .form(&[
                ("grant_type", "password"),
                ("client_id", "admin-cli"),
                ("username", "creator"),
                ("password", "creator-pw"),
            ])
            .send()
            .await
            .expect("send")
            .json()
            .await
            .expect("json");
        r["access_token"].as_str().expect("token").to_owned()
    };
    let t = login().await;
    let (st, _) = s
        .admin_post(&t, "", &json!({"realm": "mine", "enabled": true}))
        .await;
    assert_eq!(st, 201);
    // Its next token carries mine-realm's roles.
    let t = login().await;
    assert_eq!(s.admin_get(&t, "/mine").await.0, 200);
    let uid = s
        .admin_create(
            &t,
            "/mine/users",
            &json!({"username": "first", "enabled": true}),
        )
        .await;
    assert_eq!(s.admin_get(&t, &format!("/mine/users/{uid}")).await.0, 200);
    assert_eq!(s.admin_get(&t, "/other/users").await.0, 403);
    let (_, realms) = s.admin_get(&t, "").await;
    let names: Vec<&str> = realms
        .as_array()
        .expect("realms")
        .iter()
        .filter_map(|r| r["realm"].as_str())
        .collect();
    assert_eq!(names, ["mine"]);
}

/// A first start without `GATEHOUSE_ADMIN_PASSWORD` generates the admin's
/// password into a file of the data folder that only its owner can read,
/// and prints where it is, never the password: standard output is a log
/// under systemd or a container runtime. The password in it logs in.
#[cfg(unix)]
#[tokio::test]
async fn a_generated_admin_password_goes_to_a_private_file_not_to_the_output() {
    use std::os::unix::fs::PermissionsExt;
    use tokio::io::AsyncBufReadExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let cfg = dir.path().join("gatehouse.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nidentity_listen = \"127.0.0.1:0\"\ngateway_listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n",
            data.display()
        ),
    )
    .expect("write config");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["serve", "--config"])
        .arg(&cfg)
        .env_remove("GATEHOUSE_ADMIN_PASSWORD")
        .env("GATEHOUSE_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn gatehouse");
    let mut out = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut printed = String::new();
    let base = loop {
        let line = tokio::time::timeout(std::time::Duration::from_secs(30), out.next_line())
            .await
            .expect("gatehouse starts")
            .expect("read")
            .expect("a line");
        printed.push_str(&line);
        printed.push('\n');
        if let Some(addr) = line.strip_prefix("Gatehouse identity provider listening on ") {
            break addr.to_owned();
        }
    };
    let folder = std::fs::metadata(&data).expect("data").permissions().mode();
    assert_eq!(folder & 0o777, 0o700, "the data folder is its owner's");
    let file = data.join("admin-password");
    assert!(printed.contains(&file.display().to_string()), "{printed}");
    let mode = std::fs::metadata(&file).expect("file").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let password = std::fs::read_to_string(&file).expect("read");
    assert!(password.len() >= 20, "a generated password");
    let r = reqwest::Client::new()
        .post(format!(
            "{base}/realms/master/protocol/openid-connect/token"
        ))
        .form(&[
            ("grant_type", "password"),
            ("client_id", "admin-cli"),
            ("username", "admin"),
            ("password", password.as_str()),
        ])
        .send()
        .await
        .expect("token");
    assert_eq!(r.status(), 200, "the file's password is the admin's");
    child.kill().await.expect("kill");
    let mut logs = String::new();
    if let Some(mut e) = child.stderr.take() {
        use tokio::io::AsyncReadExt;
        e.read_to_string(&mut logs).await.expect("stderr");
    }
    while let Ok(Some(l)) = out.next_line().await {
        printed.push_str(&l);
    }
    assert!(
        !printed.contains(&password) && !logs.contains(&password),
        "never printed or logged"
    );
}

/// Keycloak's realm lifespans are 32-bit integers: a larger one is a 400,
/// not a lifespan that overflows `now + lifespan` in every token; a client
/// `access.token.lifespan` beyond that range counts as unset.
#[tokio::test]
async fn lifespans_beyond_keycloaks_range_are_refused_or_ignored() {
    let s = start().await;
    let t = s.demo_realm().await;
    for v in [json!(i64::MAX), json!(2_147_483_648_i64)] {
        let code = s
            .admin_put(&t, "/demo", Some(&json!({"accessTokenLifespan": v})))
            .await;
        assert_eq!(code, 400, "{v}");
    }
    let code = s
        .admin_put(
            &t,
            "/demo",
            Some(&json!({"accessTokenLifespan": i32::MAX, "accessCodeLifespan": i64::MAX})),
        )
        .await;
    assert_eq!(code, 204, "the largest Keycloak allows");
    let code = s
        .admin_put(&t, "/demo", Some(&json!({"accessTokenLifespan": 600})))
        .await;
    assert_eq!(code, 204);
    s.edit_client(&t, "demo", "app", |c| {
        c["attributes"]["access.token.lifespan"] = json!(i64::MAX.to_string());
    })
    .await;
    let tokens = s.alice_tokens(None).await;
    let at = claims(tokens["access_token"].as_str().expect("token"));
    let lifespan = at["exp"].as_i64().expect("exp") - at["iat"].as_i64().expect("iat");
    assert_eq!(lifespan, 600, "the realm's, not the client's");
}

/// No access token outlives its session, as Keycloak cuts them: one issued
/// near the end of the SSO session's, the client session's or an offline
/// session's maximum lifespan ends with it; a session-less token (client
/// credentials) keeps the whole lifespan.
#[tokio::test]
async fn access_tokens_end_with_their_session() {
    let s = start().await;
    let t = s.demo_realm().await;
    let lifespan = |tokens: &Value| {
        let at = claims(tokens["access_token"].as_str().expect("token"));
        let exp = at["exp"].as_i64().expect("exp");
        let life = exp - at["iat"].as_i64().expect("iat");
        assert_eq!(
            tokens["expires_in"],
            json!(life),
            "expires_in says the same"
        );
        if let Some(id) = tokens["id_token"].as_str() {
            assert_eq!(claims(id)["exp"], json!(exp), "the ID token's too");
        }
        life
    };
    let rep = json!({"accessTokenLifespan": 300, "ssoSessionMaxLifespan": 100,
        "offlineSessionMaxLifespanEnabled": true, "offlineSessionMaxLifespan": 120});
    assert_eq!(s.admin_put(&t, "/demo", Some(&rep)).await, 204);
    let life = lifespan(&s.alice_tokens(Some("openid")).await);
    assert!((98..=100).contains(&life), "SSO max: {life}");
    let offline = s.alice_tokens(Some("offline_access")).await;
    let life = lifespan(&offline);
    assert!((118..=120).contains(&life), "offline max: {life}");
    s.edit_client(&t, "demo", "app", |c| {
        c["attributes"]["client.session.max.lifespan"] = json!("60");
    })
    .await;
    let life = lifespan(&s.alice_tokens(None).await);
    assert!((58..=60).contains(&life), "client session max: {life}");
    let cc = s.service_token("demo", "app", "app-secret").await;
    let at = claims(&cc);
    let life = at["exp"].as_i64().expect("exp") - at["iat"].as_i64().expect("iat");
    assert_eq!(life, 300, "no session, the whole lifespan");
}

/// A client's `access.token.lifespan` of `-1` is Keycloak's "expires with
/// the session": its tokens live until the SSO session's maximum (a
/// session-less client-credentials token gets the whole maximum from now),
/// not the realm's five minutes; zero counts as unset.
#[tokio::test]
async fn access_tokens_can_expire_with_the_session() {
    let s = start().await;
    let t = s.demo_realm().await;
    let rep = json!({"accessTokenLifespan": 300, "ssoSessionMaxLifespan": 7200});
    assert_eq!(s.admin_put(&t, "/demo", Some(&rep)).await, 204);
    let life = |token: &str| {
        let at = claims(token);
        at["exp"].as_i64().expect("exp") - at["iat"].as_i64().expect("iat")
    };
    s.edit_client(&t, "demo", "app", |c| {
        c["attributes"]["access.token.lifespan"] = json!("-1");
    })
    .await;
    let tokens = s.alice_tokens(None).await;
    let l = life(tokens["access_token"].as_str().expect("token"));
    assert!((7198..=7200).contains(&l), "until the SSO maximum: {l}");
    assert_eq!(tokens["expires_in"], json!(l));
    let l = life(&s.service_token("demo", "app", "app-secret").await);
    assert_eq!(l, 7200, "a client-credentials token: the whole maximum");
    s.edit_client(&t, "demo", "app", |c| {
        c["attributes"]["access.token.lifespan"] = json!("0");
    })
    .await;
    let l = life(&s.service_token("demo", "app", "app-secret").await);
    assert_eq!(l, 300, "zero is unset: the realm's");
}

/// The realm's user profile is enforced on the admin API as Keycloak
/// does: Keycloak 26's default refuses a username with markup or
/// whitespace, one shorter than three characters, a name with `<`, a bad
/// e-mail, each as a 400 naming the field, the message key and its
/// parameters (`{"errors": [...]}` for several), and nothing is written;
/// a custom attribute's `required` (for admins), `pattern` and `options`
/// rules hold too; an update checks what it changes.
#[tokio::test]
async fn the_user_profile_rules_hold_on_the_admin_api() {
    let s = start().await;
    let t = s.demo_realm().await;
    let refused = |username: &str, extra: Value| {
        let mut rep = json!({"username": username, "enabled": true});
        if let (Some(o), Some(e)) = (rep.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        rep
    };
    for (username, extra, want) in [
        (
            "a<b",
            json!({}),
            json!({"field": "username", "errorMessage": "error-username-invalid-character", "params": ["username"]}),
        ),
        (
            "has space",
            json!({}),
            json!({"field": "username", "errorMessage": "error-username-invalid-character", "params": ["username"]}),
        ),
        (
            "ab",
            json!({}),
            json!({"field": "username", "errorMessage": "error-invalid-length", "params": ["username", 3, 255]}),
        ),
        // A Cyrillic `а` passing for a Latin one (IDN homograph).
        (
            "\u{430}dmin",
            json!({}),
            json!({"field": "username", "errorMessage": "invalidUsernameMessage", "params": ["\u{430}dmin"]}),
        ),
        (
            "mallory",
            json!({"firstName": "<script>alert(1)</script>"}),
            json!({"field": "firstName", "errorMessage": "error-person-name-invalid-character", "params": ["firstName"]}),
        ),
        (
            "mallory",
            json!({"email": "not-an-email"}),
            json!({"field": "email", "errorMessage": "error-invalid-email", "params": ["email", "not-an-email"]}),
        ),
        (
            "x y",
            json!({"lastName": "a\"b"}),
            json!({"errors": [
            {"field": "username", "errorMessage": "error-username-invalid-character", "params": ["username"]},
            {"field": "lastName", "errorMessage": "error-person-name-invalid-character", "params": ["lastName"]}]}),
        ),
    ] {
        let (st, body) = s
            .admin_post_json(&t, "/demo/users", &refused(username, extra))
            .await;
        assert_eq!((st, &body), (400, &want), "{username}");
    }
    let (_, found) = s.admin_get(&t, "/demo/users?search=mallory").await;
    assert_eq!(found, json!([]), "nothing written");
    // Names may hold what people's names hold.
    let id = s
        .admin_create(
            &t,
            "/demo/users",
            &json!({"username": "ann.o-neil@x", "firstName": "Ann-Marie",
            "lastName": "O'Neil, Jr.", "email": "ann@x.example"}),
        )
        .await;

    // An update: a changed bad value is refused and nothing changes.
    let put = |body: Value| {
        let url = format!("{}/admin/realms/demo/users/{id}", s.base);
        let http = s.http.clone();
        let t = t.clone();
        async move {
            let r = http
                .put(url)
                .bearer_auth(&t)
                .json(&body)
                .send()
                .await
                .expect("send");
            (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let (st, body) = put(json!({"firstName": "Ann>"})).await;
    assert_eq!(st, 400);
    assert_eq!(body["errorMessage"], "error-person-name-invalid-character");
    let (_, u) = s.admin_get(&t, &format!("/demo/users/{id}")).await;
    assert_eq!(u["firstName"], "Ann-Marie");
    assert_eq!(put(json!({"firstName": "Ann"})).await.0, 204);

    // A custom attribute: required for admins, a pattern and options.
    let (_, mut profile) = s.admin_get(&t, "/demo/users/profile").await;
    if let Some(a) = profile["attributes"].as_array_mut() {
        a.push(json!({"name": "employeeNumber", "required": {"roles": ["admin"]},
            "permissions": {"view": ["admin"], "edit": ["admin"]},
            "validations": {"pattern": {"pattern": "E[0-9]{4}", "error-message": "bad-employee-number"}}}));
        a.push(
            json!({"name": "tier", "permissions": {"view": ["admin"], "edit": ["admin"]},
            "validations": {"options": {"options": ["gold", "silver"]}}}),
        );
        a.push(
            json!({"name": "badge", "permissions": {"view": ["admin", "user"], "edit": ["user"]}}),
        );
    }
    assert_eq!(
        s.admin_put(&t, "/demo/users/profile", Some(&profile)).await,
        200
    );
    let (st, body) = s
        .admin_post_json(&t, "/demo/users", &json!({"username": "carol"}))
        .await;
    assert_eq!(
        (st, body),
        (
            400,
            json!({"field": "employeeNumber",
        "errorMessage": "error-user-attribute-required", "params": ["employeeNumber"]})
        )
    );
    let (st, body) = s
        .admin_post_json(
            &t,
            "/demo/users",
            &json!({"username": "carol",
            "attributes": {"employeeNumber": ["E12"], "tier": ["platinum"]}}),
        )
        .await;
    assert_eq!(
        (st, body),
        (
            400,
            json!({"errors": [
        {"field": "employeeNumber", "errorMessage": "bad-employee-number", "params": ["employeeNumber", "E[0-9]{4}"]},
        {"field": "tier", "errorMessage": "error-invalid-value", "params": ["tier", "platinum"]}]})
        )
    );
    // Only users may edit `badge`: an admin's value is refused.
    let (st, body) = s
        .admin_post_json(
            &t,
            "/demo/users",
            &json!({"username": "dave",
            "attributes": {"employeeNumber": ["E4321"], "badge": ["gold"]}}),
        )
        .await;
    assert_eq!(
        (st, body),
        (
            400,
            json!({"field": "badge",
        "errorMessage": "error-user-attribute-read-only", "params": ["badge"]})
        )
    );
    let carol = s
        .admin_create(
            &t,
            "/demo/users",
            &json!({"username": "carol",
        "attributes": {"employeeNumber": ["E1234"], "tier": ["gold"]}}),
        )
        .await;
    // The admin console's read: the user with the profile's metadata.
    let (_, u) = s
        .admin_get(&t, &format!("/demo/users/{carol}?userProfileMetadata=true"))
        .await;
    let meta = u["userProfileMetadata"]["attributes"]
        .as_array()
        .expect("metadata");
    let employee = meta
        .iter()
        .find(|a| a["name"] == "employeeNumber")
        .expect("declared");
    assert_eq!(
        (&employee["required"], &employee["readOnly"]),
        (&json!(true), &json!(false))
    );
    let (_, u) = s.admin_get(&t, &format!("/demo/users/{carol}")).await;
    assert!(u.get("userProfileMetadata").is_none());
}

/// Keycloak's user `search`: each word narrows the listing, a word
/// matches the start of the username, e-mail, first or last name (`*`
/// anywhere), a quoted word matches one of them whole, `%` and `_` are
/// plain characters, and `id:{id}` finds the one user with that id. An
/// e-mail address is kept in lower case.
#[tokio::test]
async fn user_search_matches_as_keycloaks_does() {
    let s = start().await;
    let t = s.demo_realm().await;
    let malice = s
        .admin_create(
            &t,
            "/demo/users",
            &json!({"username": "malice", "firstName": "Mal",
            "lastName": "Liddell", "email": " Malice@X.Example"}),
        )
        .await;
    // Kept in lower case, as Keycloak keeps e-mail addresses.
    let (_, u) = s.admin_get(&t, &format!("/demo/users/{malice}")).await;
    assert_eq!(u["email"], "malice@x.example");
    let names = |q: String| {
        let s = &s;
        let t = t.clone();
        async move {
            let (st, found) = s.admin_get(&t, &format!("/demo/users?{q}")).await;
            assert_eq!(st, 200, "{q}");
            let mut n: Vec<String> = found
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|u| u["username"].as_str().map(str::to_owned))
                .collect();
            n.sort();
            n
        }
    };
    for (q, want) in [
        ("search=ali", vec!["alice"]),
        ("search=ALI", vec!["alice"]),
        ("search=*lic*", vec!["alice", "malice"]),
        ("search=*lic", vec!["alice", "malice"]),
        ("search=m*ce", vec!["malice"]),
        ("search=%22alice%22", vec!["alice"]),
        ("search=%22ali%22", vec![]),
        ("search=mal%20liddell", vec!["malice"]),
        ("search=ali%20liddell", vec![]),
        ("search=a_ice", vec![]),
        ("search=%25", vec![]),
        // The field filters keep matching any part, as Keycloak's do.
        ("lastName=dde", vec!["malice"]),
    ] {
        let want: Vec<String> = want.into_iter().map(str::to_owned).collect();
        assert_eq!(names(q.to_owned()).await, want, "{q}");
    }
    assert_eq!(names(format!("search=id:{malice}")).await, ["malice"]);
    assert_eq!(names("search=id:nope".into()).await, Vec::<String>::new());
    let (_, n) = s.admin_get(&t, "/demo/users/count?search=*lic*").await;
    assert_eq!(n, 2);
}

/// With `registrationEmailAsUsername`, the admin API names a user by its
/// e-mail address whatever username is asked for, and the username
/// follows the address on an update, as Keycloak does.
#[tokio::test]
async fn email_as_username_realms_name_users_by_address() {
    let s = start().await;
    let t = s.demo_realm().await;
    let rep = json!({"registrationEmailAsUsername": true});
    assert_eq!(s.admin_put(&t, "/demo", Some(&rep)).await, 204);
    let id = s
        .admin_create(
            &t,
            "/demo/users",
            &json!({"username": "ignored", "email": "Dana@X.Example"}),
        )
        .await;
    async fn username(s: &crate::support::Server, t: String, id: String) -> String {
        let (_, u) = s.admin_get(&t, &format!("/demo/users/{id}")).await;
        u["username"].as_str().unwrap_or("").to_owned()
    }
    assert_eq!(username(&s, t.clone(), id.clone()).await, "dana@x.example");
    let path = format!("/demo/users/{id}");
    let rename = json!({"username": "someone-else"});
    assert_eq!(s.admin_put(&t, &path, Some(&rename)).await, 204);
    assert_eq!(username(&s, t.clone(), id.clone()).await, "dana@x.example");
    let moved = json!({"email": "dana@y.example"});
    assert_eq!(s.admin_put(&t, &path, Some(&moved)).await, 204);
    assert_eq!(username(&s, t.clone(), id.clone()).await, "dana@y.example");
    let (st, body) = s
        .admin_post_json(&t, "/demo/users", &json!({"username": "no-address"}))
        .await;
    assert_eq!(
        (st, body),
        (400, json!({"errorMessage": "User name is missing"}))
    );
}

/// A username is read-only on the admin API unless the realm has
/// `editUsernameAllowed` (Keycloak 24+): a rename is a 400
/// `error-user-attribute-read-only` and changes nothing.
#[tokio::test]
async fn usernames_change_only_where_the_realm_allows_it() {
    let s = start().await;
    let t = s.demo_realm().await;
    let id = s.user_id(&t, "demo", "alice").await;
    let url = format!("{}/admin/realms/demo/users/{id}", s.base);
    let rename = |to: &'static str| {
        let r = s
            .http
            .put(&url)
            .bearer_auth(&t)
            .json(&json!({"username": to}))
            .send();
        async move {
            let r = r.await.expect("send");
            (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    assert_eq!(
        rename("alicia").await,
        (
            400,
            json!({"field": "username", "errorMessage": "error-user-attribute-read-only",
            "params": ["username"]})
        )
    );
    assert_eq!(rename("ALICE").await.0, 204, "the same name in other case");
    let (_, u) = s.admin_get(&t, &format!("/demo/users/{id}")).await;
    assert_eq!(u["username"], "alice");
    let allow = json!({"editUsernameAllowed": true});
    assert_eq!(s.admin_put(&t, "/demo", Some(&allow)).await, 204);
    assert_eq!(rename("alicia").await.0, 204);
    let (_, u) = s.admin_get(&t, &format!("/demo/users/{id}")).await;
    assert_eq!(u["username"], "alicia");
}

/// `duplicateEmailsAllowed` lets two users share an address, as in
/// Keycloak; such an address then logs nobody in, while a unique one
/// still does; `loginWithEmailAllowed = false` stops logins by address.
#[tokio::test]
async fn duplicate_emails_and_logins_by_address_follow_the_realm() {
    let s = start().await;
    let t = s.demo_realm().await;
    let twin = json!({"username": "alice-two", "email": "alice@example.com",
        "credentials": [{"type": "password", "value": "alice-pw"}]});
    let (st, _) = s.admin_post(&t, "/demo/users", &twin).await;
    assert_eq!(st, 409, "duplicates are off by default");
    let login = |user: &'static str| {
        let s = &s;
        async move {
            s.password_grant("demo", "app", Some("app-secret"), user, "alice-pw", None)
                .await
                .status()
                .as_u16()
        }
    };
    assert_eq!(login("alice@example.com").await, 200);

    let dup = json!({"duplicateEmailsAllowed": true});
    assert_eq!(s.admin_put(&t, "/demo", Some(&dup)).await, 204);
    s.admin_create(&t, "/demo/users", &twin).await;
    assert_eq!(login("alice@example.com").await, 401, "two users: nobody");
    assert_eq!(login("alice").await, 200);

    let by_name = json!({"duplicateEmailsAllowed": false, "loginWithEmailAllowed": false});
    assert_eq!(s.admin_put(&t, "/demo", Some(&by_name)).await, 204);
    let solo = json!({"username": "solo", "email": "solo@example.com",
        "credentials": [{"type": "password", "value": "alice-pw"}]});
    s.admin_create(&t, "/demo/users", &solo).await;
    assert_eq!(login("solo@example.com").await, 401);
    assert_eq!(login("solo").await, 200);
}

/// The realm's default role is the realm's record, as in Keycloak: its
/// representation shows it (scripts take its id), a renamed realm keeps
/// granting it to new users under its first name, and an export from
/// before Keycloak 13 that lists `defaultRoles` by name gets them as its
/// composites.
#[tokio::test]
async fn the_default_role_survives_a_rename_and_old_exports() {
    let s = start().await;
    let t = s.demo_realm().await;
    let effective = |realm: &'static str, id: String| {
        let (s, t) = (&s, &t);
        async move {
            let (_, roles) = s
                .admin_get(
                    t,
                    &format!("/{realm}/users/{id}/role-mappings/realm/composite"),
                )
                .await;
            let mut names: Vec<String> = roles
                .as_array()
                .expect("list")
                .iter()
                .filter_map(|r| r["name"].as_str().map(str::to_owned))
                .collect();
            names.sort();
            names
        }
    };
    let (_, rep) = s.admin_get(&t, "/demo").await;
    // Keycloak's defaults where nothing was set.
    assert_eq!(rep["requiredCredentials"], json!(["password"]));
    assert_eq!(rep["smtpServer"], json!({}));
    assert_eq!(rep["attributes"], json!({}));
    assert_eq!(rep["internationalizationEnabled"], false);
    let d = &rep["defaultRole"];
    assert_eq!(d["name"], "default-roles-demo");
    assert_eq!(d["composite"], true);
    assert_eq!(d["clientRole"], false);
    assert_eq!(d["containerId"], rep["id"]);
    let (_, composites) = s
        .admin_get(
            &t,
            &format!(
                "/demo/roles-by-id/{}/composites",
                d["id"].as_str().expect("id")
            ),
        )
        .await;
    assert!(composites.to_string().contains("offline_access"));

    assert_eq!(
        s.admin_put(&t, "/demo", Some(&json!({"realm": "renamed"})))
            .await,
        204
    );
    let (_, rep) = s.admin_get(&t, "/renamed").await;
    assert_eq!(rep["defaultRole"]["name"], "default-roles-demo");
    let id = s
        .admin_create(
            &t,
            "/renamed/users",
            &json!({"username": "newcomer", "enabled": true}),
        )
        .await;
    let roles = effective("renamed", id).await;
    assert!(
        roles.contains(&"default-roles-demo".to_owned())
            && roles.contains(&"offline_access".to_owned()),
        "{roles:?}"
    );
    assert_eq!(
        s.admin_delete(&t, "/renamed/roles/default-roles-demo")
            .await,
        400,
        "still the default role"
    );
    // Writing the representation back (with another name in it) moves nothing.
    let mut back = rep.clone();
    back["defaultRole"]["name"] = json!("offline_access");
    assert_eq!(s.admin_put(&t, "/renamed", Some(&back)).await, 204);
    let (_, rep) = s.admin_get(&t, "/renamed").await;
    assert_eq!(rep["defaultRole"]["name"], "default-roles-demo");

    s.import(&json!({"realm": "old", "enabled": true,
        "roles": {"realm": [{"name": "staff"}]},
        "defaultRoles": ["staff", "legacy-user", "offline_access"]}))
        .await;
    let id = s
        .admin_create(
            &t,
            "/old/users",
            &json!({"username": "olduser", "enabled": true}),
        )
        .await;
    let roles = effective("old", id).await;
    for r in [
        "default-roles-old",
        "legacy-user",
        "offline_access",
        "staff",
    ] {
        assert!(roles.contains(&r.to_owned()), "{r}: {roles:?}");
    }
    let export = s.export("old").await;
    assert_eq!(export["defaultRole"]["name"], "default-roles-old");
}

/// An attribute whose profile permissions name `admin` neither to view nor
/// to edit is in no admin read (a user, the user list, group and role
/// members: Keycloak's CVE-2026-9088, CVE-2026-17059), an admin writing a
/// user back keeps it, and narrower administrators who may not view users
/// see no role members and no example tokens (CVE-2026-37978).
#[tokio::test]
async fn attributes_hidden_from_admins_stay_hidden_everywhere() {
    let s = start().await;
    let t = s.demo_realm().await;
    let alice = s.user_id(&t, "demo", "alice").await;
    let (_, mut rep) = s.admin_get(&t, &format!("/demo/users/{alice}")).await;
    rep["attributes"] = json!({"ssn": ["123-45-6789"], "team": ["red"]});
    assert_eq!(
        s.admin_put(&t, &format!("/demo/users/{alice}"), Some(&rep))
            .await,
        204
    );
    let (_, mut profile) = s.admin_get(&t, "/demo/users/profile").await;
    let users_only = json!({"view": ["user"], "edit": ["user"]});
    for a in profile["attributes"].as_array_mut().expect("attributes") {
        if a["name"] == "email" {
            a["permissions"] = users_only.clone();
        }
    }
    profile["attributes"]
        .as_array_mut()
        .expect("attributes")
        .push(json!({"name": "ssn", "permissions": users_only}));
    assert_eq!(
        s.admin_put(&t, "/demo/users/profile", Some(&profile)).await,
        200
    );

    let (_, groups) = s.admin_get(&t, "/demo/groups?search=sales").await;
    let sales = groups[0]["id"].as_str().expect("group").to_owned();
    let reads = [
        format!("/demo/users/{alice}"),
        "/demo/users?username=alice".to_owned(),
        format!("/demo/groups/{sales}/members"),
        "/demo/roles/default-roles-demo/users".to_owned(),
    ];
    for path in &reads {
        let (code, body) = s.admin_get(&t, path).await;
        assert_eq!(code, 200, "{path}");
        let text = body.to_string();
        assert!(text.contains("alice"), "{path}: {text}");
        assert!(
            !text.contains("123-45-6789") && !text.contains("alice@example.com"),
            "{path}: {text}"
        );
    }
    // Written back with a change: what the admin never saw stays.
    let (_, mut rep) = s.admin_get(&t, &format!("/demo/users/{alice}")).await;
    assert_eq!(rep["attributes"], json!({"team": ["red"]}));
    rep["firstName"] = json!("Alicia");
    assert_eq!(
        s.admin_put(&t, &format!("/demo/users/{alice}"), Some(&rep))
            .await,
        204
    );
    let store = &s.running.idp.store;
    let demo = store
        .realm_by_name("demo")
        .await
        .expect("query")
        .expect("realm");
    let stored = store
        .user(&demo.id, &alice)
        .await
        .expect("query")
        .expect("user");
    assert_eq!(stored.first_name.as_deref(), Some("Alicia"));
    assert_eq!(stored.email.as_deref(), Some("alice@example.com"));
    assert_eq!(
        stored.attributes.get("ssn"),
        Some(&vec!["123-45-6789".to_owned()])
    );

    // Narrower administrators of realm `tenant`.
    let master = s.admin_token().await;
    let (st, _) = s
        .admin_post(&master, "", &json!({"realm": "tenant", "enabled": true}))
        .await;
    assert_eq!(st, 201);
    let bob = s
        .admin_create(
            &master,
            "/tenant/users",
            &json!({"username": "bob", "email": "bob@example.com", "enabled": true}),
        )
        .await;
    let (_, _, clients_viewer) =
        tenant_service_account(&s, &master, "clients-viewer", "view-clients").await;
    let app = s.client_uuid(&master, "tenant", "account").await;
    let example = format!(
        "/tenant/clients/{app}/evaluate-scopes/generate-example-access-token?scope=openid&userId={bob}"
    );
    assert_eq!(s.admin_get(&clients_viewer, &example).await.0, 403);
    let (code, token) = s.admin_get(&master, &example).await;
    assert_eq!(code, 200);
    assert_eq!(token["email"], "bob@example.com");
    let (_, _, realm_viewer) =
        tenant_service_account(&s, &master, "realm-viewer", "view-realm").await;
    let members = "/tenant/roles/default-roles-tenant/users";
    let (code, list) = s.admin_get(&realm_viewer, members).await;
    assert_eq!((code, list), (200, json!([])));
    let (_, list) = s.admin_get(&master, members).await;
    assert!(list.to_string().contains("bob@example.com"));
}
