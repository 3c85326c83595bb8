//! Keycloak's organizations: the admin API (`/admin/realms/{realm}/organizations`)
//! and the `organization` claim of tokens.

use crate::support::{Server, claims, start};
use serde_json::{Value, json};

/// The `organization` claim of a password-grant token of alice through the
/// public client `spa`, asking for `scope`.
async fn org_claim(s: &Server, scope: &str) -> (Value, Value) {
    let t = s
        .password_tokens("demo", "spa", None, "alice", "alice-pw", Some(scope))
        .await;
    let c = claims(t["access_token"].as_str().expect("access token"));
    (c["organization"].clone(), t["scope"].clone())
}

/// Turns organizations on in the demo realm and creates one from `rep`.
async fn first_organization(s: &Server, admin: &str, rep: &Value) -> String {
    let on = json!({"organizationsEnabled": true});
    assert_eq!(s.admin_put(admin, "/demo", Some(&on)).await, 204);
    s.admin_create(admin, "/demo/organizations", rep).await
}

#[tokio::test]
async fn organizations_admin_api_and_the_organization_claim() {
    let s = start().await;
    let admin = s.demo_realm().await;
    // Off until the realm turns it on, as in Keycloak.
    let (st, body) = s.admin_get(&admin, "/demo/organizations").await;
    assert_eq!(
        (st, &body["errorMessage"]),
        (404, &json!("Organizations not enabled for this realm."))
    );
    let (_, realm) = s.admin_get(&admin, "/demo").await;
    assert_eq!(realm["organizationsEnabled"], false);
    assert_eq!(
        s.admin_put(
            &admin,
            "/demo",
            Some(&json!({"organizationsEnabled": true}))
        )
        .await,
        204
    );

    // Create, read, search, count.
    let acme = s
        .admin_create(
            &admin,
            "/demo/organizations",
            &json!({"name": "Acme", "domains": [{"name": "Acme.com"}],
                    "attributes": {"tier": ["gold"]}, "description": "a customer"}),
        )
        .await;
    let (_, list) = s.admin_get(&admin, "/demo/organizations").await;
    assert_eq!(list[0]["alias"], "Acme", "the alias defaults to the name");
    assert_eq!(
        list[0]["domains"],
        json!([{"name": "acme.com", "verified": false}])
    );
    assert!(list[0].get("attributes").is_none(), "brief by default");
    let (_, one) = s
        .admin_get(&admin, &format!("/demo/organizations/{acme}"))
        .await;
    assert_eq!(one["attributes"]["tier"], json!(["gold"]));
    for (rep, status) in [
        (json!({"name": "Acme"}), 409),
        (
            json!({"name": "Other", "domains": [{"name": "acme.com"}]}),
            409,
        ),
        (
            json!({"name": "Other", "domains": [{"name": "not a domain"}]}),
            400,
        ),
        (json!({"domains": [{"name": "other.com"}]}), 400),
        (json!(["not", "an", "object"]), 400),
    ] {
        let (st, _) = s.admin_post(&admin, "/demo/organizations", &rep).await;
        assert_eq!(st, status, "{rep}");
    }
    for (query, n) in [
        ("search=acme.c", 1),
        ("search=acme&exact=true", 1),
        ("search=acm&exact=true", 0),
        ("q=tier:gold", 1),
        ("q=tier:silver", 0),
    ] {
        let (_, count) = s
            .admin_get(&admin, &format!("/demo/organizations/count?{query}"))
            .await;
        assert_eq!(count, json!(n), "{query}");
    }
    let path = format!("/demo/organizations/{acme}");
    assert_eq!(
        s.admin_put(&admin, &path, Some(&json!({"alias": "renamed"})))
            .await,
        400
    );

    // Members: added by id, listed with their membership type.
    let alice = s.user_id(&admin, "demo", "alice").await;
    let members = format!("{path}/members");
    let (st, _) = s.admin_post(&admin, &members, &json!(alice)).await;
    assert_eq!(st, 201);
    let (st, _) = s.admin_post(&admin, &members, &json!(alice)).await;
    assert_eq!(st, 409);
    let (st, _) = s.admin_post(&admin, &members, &json!("no-such-user")).await;
    assert_eq!(st, 400);
    let (_, listed) = s.admin_get(&admin, &members).await;
    assert_eq!(
        (&listed[0]["username"], &listed[0]["membershipType"]),
        (&json!("alice"), &json!("UNMANAGED"))
    );
    // Brief by default (Keycloak 26.7); whole when asked.
    assert!(listed[0].get("requiredActions").is_none(), "{listed}");
    let (_, whole) = s
        .admin_get(&admin, &format!("{members}?briefRepresentation=false"))
        .await;
    assert!(whole[0]["requiredActions"].is_array(), "{whole}");
    assert_eq!(whole[0]["membershipType"], "UNMANAGED");
    let (_, n) = s.admin_get(&admin, &format!("{members}/count")).await;
    assert_eq!(n, json!(1));
    let (_, mine) = s
        .admin_get(
            &admin,
            &format!("/demo/organizations/members/{alice}/organizations"),
        )
        .await;
    assert_eq!(mine[0]["name"], "Acme");

    // The claim: plain `organization` names the only one; with two, the
    // scope has to say which (`organization:<alias>`) or all (`*`).
    let (org, scope) = org_claim(&s, "organization").await;
    assert_eq!(org, json!(["Acme"]));
    assert!(
        scope
            .as_str()
            .is_some_and(|x| x.split(' ').any(|s| s == "organization"))
    );
    let (org, _) = org_claim(&s, "openid").await;
    assert_eq!(org, Value::Null, "not asked for");
    let beta = s
        .admin_create(
            &admin,
            "/demo/organizations",
            &json!({"name": "Beta", "alias": "beta"}),
        )
        .await;
    let (st, _) = s
        .admin_post(
            &admin,
            &format!("/demo/organizations/{beta}/members"),
            &json!(alice),
        )
        .await;
    assert_eq!(st, 201);
    assert_eq!(org_claim(&s, "organization").await.0, Value::Null);
    assert_eq!(org_claim(&s, "organization:beta").await.0, json!(["beta"]));
    let (org, scope) = org_claim(&s, "organization:*").await;
    assert_eq!(org, json!(["Acme", "beta"]));
    assert!(scope.as_str().is_some_and(|x| x.contains("organization:*")));
    // A disabled organization is not named.
    assert_eq!(
        s.admin_put(
            &admin,
            &format!("/demo/organizations/{beta}"),
            Some(&json!({"enabled": false}))
        )
        .await,
        204
    );
    assert_eq!(org_claim(&s, "organization:*").await.0, json!(["Acme"]));
    // The mapper's "add organization id" gives a map by alias.
    let (_, scopes) = s.admin_get(&admin, "/demo/client-scopes").await;
    let scope = scopes
        .as_array()
        .expect("scopes")
        .iter()
        .find(|c| c["name"] == "organization")
        .expect("organization scope")
        .clone();
    let mut mapper = scope["protocolMappers"][0].clone();
    mapper["config"]["addOrganizationId"] = json!("true");
    let mpath = format!(
        "/demo/client-scopes/{}/protocol-mappers/models/{}",
        scope["id"].as_str().expect("id"),
        mapper["id"].as_str().expect("mapper id")
    );
    assert_eq!(s.admin_put(&admin, &mpath, Some(&mapper)).await, 204);
    assert_eq!(
        org_claim(&s, "organization:*").await.0,
        json!({"Acme": {"id": acme}})
    );

    // The Account API lists the user's own, with their domains by name.
    let t = s.alice_tokens(None).await;
    let mine: Value = s
        .http
        .get(format!("{}/realms/demo/account/organizations", s.base))
        .bearer_auth(t["access_token"].as_str().expect("at"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(mine[0]["alias"], "Acme");
    assert_eq!(mine[0]["domains"], json!(["acme.com"]));

    // A realm export carries them, members and all; importing it brings
    // them back with their ids.
    let export = s.export("demo").await;
    let orgs = export["organizations"].as_array().expect("organizations");
    assert_eq!(orgs.len(), 2);
    assert_eq!(orgs[0]["members"][0]["username"], "alice");
    assert_eq!(s.admin_delete(&admin, "/demo").await, 204);
    s.import(&export).await;
    assert_eq!(
        org_claim(&s, "organization:*").await.0,
        json!({"Acme": {"id": acme}})
    );

    // Leaving and deleting.
    assert_eq!(
        s.admin_delete(&admin, &format!("{members}/{alice}")).await,
        204
    );
    assert_eq!(
        s.admin_delete(&admin, &format!("{members}/{alice}")).await,
        404
    );
    assert_eq!(s.admin_delete(&admin, &path).await, 204);
    let (st, body) = s.admin_get(&admin, &path).await;
    assert_eq!(
        (st, &body["errorMessage"]),
        (404, &json!("Organization not found."))
    );
}

#[tokio::test]
async fn organizations_link_the_realms_identity_providers() {
    let s = start().await;
    let admin = s.admin_token().await;
    let idp = |alias: &str| {
        json!({"alias": alias, "providerId": "oidc", "enabled": true,
                                   "config": {"clientId": "x", "clientSecret": "y"}})
    };
    let (st, _) = s
        .admin_post(
            &admin,
            "",
            &json!({"realm": "corp", "enabled": true, "organizationsEnabled": true,
                    "identityProviders": [idp("corp-sso"), idp("other-sso")]}),
        )
        .await;
    assert_eq!(st, 201);
    let a = s
        .admin_create(&admin, "/corp/organizations", &json!({"name": "A"}))
        .await;
    let b = s
        .admin_create(&admin, "/corp/organizations", &json!({"name": "B"}))
        .await;
    let links = |id: &str| format!("/corp/organizations/{id}/identity-providers");
    assert_eq!(
        s.admin_post(&admin, &links(&a), &json!("corp-sso")).await.0,
        204
    );
    assert_eq!(
        s.admin_post(&admin, &links(&a), &json!("nope")).await.0,
        400
    );
    assert_eq!(
        s.admin_post(&admin, &links(&b), &json!("corp-sso")).await.0,
        409
    );
    let (_, linked) = s.admin_get(&admin, &links(&a)).await;
    assert_eq!(linked.as_array().map(Vec::len), Some(1));
    assert_eq!(linked[0]["alias"], "corp-sso");
    let one = format!("{}/corp-sso", links(&a));
    assert_eq!(s.admin_get(&admin, &one).await.0, 200);
    assert_eq!(s.admin_delete(&admin, &one).await, 204);
    assert_eq!(s.admin_delete(&admin, &one).await, 404);
    // Invitations are e-mail: without an SMTP server, Keycloak's 500 (the
    // sending itself is tested in `mail.rs`).
    let r = s
        .http
        .post(format!(
            "{}/admin/realms/corp/organizations/{a}/members/invite-user",
            s.base
        ))
        .bearer_auth(&admin)
        .form(&[("email", "new@corp.example")])
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 500);
    let (_, pending) = s
        .admin_get(&admin, &format!("/corp/organizations/{a}/invitations"))
        .await;
    assert_eq!(pending, json!([]), "nothing kept of a mail not sent");
}

#[tokio::test]
async fn organization_groups_are_a_tree_of_the_organizations_members() {
    let s = start().await;
    let admin = s.demo_realm().await;
    let org = first_organization(
        &s,
        &admin,
        &json!({"name": "Acme", "domains": [{"name": "acme.com"}]}),
    )
    .await;
    let groups = format!("/demo/organizations/{org}/groups");
    // Created with a Location and the brief group in the body.
    let (st, made) = s
        .admin_post_json(
            &admin,
            &groups,
            &json!({"name": "eng", "description": "builders"}),
        )
        .await;
    assert_eq!(st, 201, "{made}");
    let eng = made["id"].as_str().expect("id").to_owned();
    assert_eq!(made["path"], "/eng");
    let (st, _) = s.admin_post(&admin, &groups, &json!({"name": "eng"})).await;
    assert_eq!(st, 409);
    let (st, _) = s.admin_post(&admin, &groups, &json!({"name": " "})).await;
    assert_eq!(st, 400);
    let backend = s
        .admin_create(
            &admin,
            &format!("{groups}/{eng}/children"),
            &json!({"name": "backend"}),
        )
        .await;
    let (_, one) = s.admin_get(&admin, &format!("{groups}/{backend}")).await;
    assert_eq!(
        (one["path"].as_str(), one["parentId"].as_str()),
        (Some("/eng/backend"), Some(eng.as_str()))
    );
    assert_eq!(one["realmRoles"], json!([]));
    let (_, top) = s.admin_get(&admin, &groups).await;
    assert_eq!(top.as_array().map(Vec::len), Some(1));
    assert_eq!(top[0]["subGroupCount"], 1);
    let (_, found) = s.admin_get(&admin, &format!("{groups}?search=BACK")).await;
    assert_eq!(found[0]["id"], backend.as_str());
    let (_, n) = s.admin_get(&admin, &format!("{groups}/count")).await;
    assert_eq!(n, json!({"count": 1}));
    // The realm's own groups never show them.
    let (_, realm_groups) = s.admin_get(&admin, "/demo/groups?search=eng").await;
    assert_eq!(realm_groups, json!([]));

    // Only the organization's members join; leaving it leaves its groups.
    let alice = s.user_id(&admin, "demo", "alice").await;
    let member = format!("{groups}/{backend}/members/{alice}");
    assert_eq!(s.admin_put(&admin, &member, None).await, 400);
    let (st, _) = s
        .admin_post(
            &admin,
            &format!("/demo/organizations/{org}/members"),
            &json!(alice),
        )
        .await;
    assert_eq!(st, 201);
    assert_eq!(s.admin_put(&admin, &member, None).await, 204);
    let (_, listed) = s
        .admin_get(&admin, &format!("{groups}/{backend}/members"))
        .await;
    assert_eq!(listed[0]["username"], "alice");
    assert!(listed[0].get("requiredActions").is_none(), "brief");
    let (_, hers) = s
        .admin_get(
            &admin,
            &format!("/demo/organizations/{org}/members/{alice}/groups"),
        )
        .await;
    assert_eq!(hers[0]["path"], "/eng/backend");
    // Roles mapped to a group reach its subgroups' members' tokens.
    s.admin_post(&admin, "/demo/roles", &json!({"name": "org-reader"}))
        .await;
    let (_, role) = s.admin_get(&admin, "/demo/roles/org-reader").await;
    let mappings = format!("{groups}/{eng}/role-mappings");
    let (st, _) = s
        .admin_post(
            &admin,
            &format!("{mappings}/realm"),
            &json!([{"id": role["id"], "name": "org-reader"}]),
        )
        .await;
    assert_eq!(st, 204);
    let (_, all) = s.admin_get(&admin, &mappings).await;
    assert_eq!(all["realmMappings"][0]["name"], "org-reader");
    let (_, composite) = s
        .admin_get(
            &admin,
            &format!("{groups}/{backend}/role-mappings/realm/composite"),
        )
        .await;
    assert!(
        composite
            .as_array()
            .expect("roles")
            .iter()
            .any(|r| r["name"] == "org-reader"),
        "{composite}"
    );
    let roles_of_alice = || async {
        let t = s
            .password_tokens("demo", "spa", None, "alice", "alice-pw", None)
            .await;
        claims(t["access_token"].as_str().expect("token"))["realm_access"]["roles"].clone()
    };
    assert!(
        roles_of_alice()
            .await
            .as_array()
            .expect("roles")
            .contains(&json!("org-reader"))
    );
    // Keycloak's organization group membership mapper adds her groups
    // there, and their roles with `addGroupRoleMappings`.
    let (_, spa) = s.admin_get(&admin, "/demo/clients?clientId=spa").await;
    let spa = spa[0]["id"].as_str().expect("spa").to_owned();
    let (st, _) = s
        .admin_post(
            &admin,
            &format!("/demo/clients/{spa}/protocol-mappers/models"),
            &json!({"name": "org-groups", "protocol": "openid-connect",
                "protocolMapper": "oidc-organization-group-membership-mapper",
                "config": {"addGroupRoleMappings": "true", "access.token.claim": "true"}}),
        )
        .await;
    assert_eq!(st, 201);
    let (claim, _) = org_claim(&s, "organization").await;
    assert_eq!(claim["Acme"]["groups"], json!(["/eng/backend"]), "{claim}");
    assert_eq!(
        claim["Acme"]["realm_access"]["roles"],
        json!(["org-reader"]),
        "{claim}"
    );
    let r = s
        .http
        .delete(format!("{}/admin/realms{mappings}/realm", s.base))
        .bearer_auth(&admin)
        .json(&json!([{"id": role["id"], "name": "org-reader"}]))
        .send()
        .await
        .expect("unmap");
    assert_eq!(r.status(), 204);
    assert!(
        !roles_of_alice()
            .await
            .as_array()
            .expect("roles")
            .contains(&json!("org-reader"))
    );
    assert_eq!(
        s.admin_delete(
            &admin,
            &format!("/demo/organizations/{org}/members/{alice}")
        )
        .await,
        204
    );
    let (_, listed) = s
        .admin_get(&admin, &format!("{groups}/{backend}/members"))
        .await;
    assert_eq!(listed, json!([]));

    // Moved to the top (204), renamed, and deleted with its subtree.
    let (st, _) = s
        .admin_post(&admin, &groups, &json!({"id": backend, "name": "backend"}))
        .await;
    assert_eq!(st, 204);
    let (st, _) = s
        .admin_post(
            &admin,
            &format!("{groups}/{backend}/children"),
            &json!({"id": backend, "name": "backend"}),
        )
        .await;
    assert_eq!(st, 400, "not under itself");
    let (_, top) = s.admin_get(&admin, &groups).await;
    assert_eq!(top.as_array().map(Vec::len), Some(2));
    assert_eq!(
        s.admin_put(
            &admin,
            &format!("{groups}/{eng}"),
            Some(&json!({"name": "backend"}))
        )
        .await,
        409
    );
    assert_eq!(
        s.admin_put(
            &admin,
            &format!("{groups}/{eng}"),
            Some(&json!({"name": "engineering"}))
        )
        .await,
        204
    );
    s.admin_create(
        &admin,
        &format!("{groups}/{eng}/children"),
        &json!({"name": "qa"}),
    )
    .await;
    // Export writes the tree with its roles; an import builds it again.
    let (st, _) = s
        .admin_post(
            &admin,
            &format!("{mappings}/realm"),
            &json!([{"id": role["id"], "name": "org-reader"}]),
        )
        .await;
    assert_eq!(st, 204);
    let export = s.export("demo").await;
    let exported = export["organizations"][0]["groups"].clone();
    let eng_rep = exported
        .as_array()
        .expect("groups")
        .iter()
        .find(|g| g["name"] == "engineering")
        .expect("engineering")
        .clone();
    assert_eq!(eng_rep["realmRoles"], json!(["org-reader"]));
    assert_eq!(eng_rep["subGroups"][0]["name"], "qa");
    // Into another realm (the export's own ids belong to this one).
    fn without_ids(v: &mut Value) {
        if let Some(o) = v.as_object_mut() {
            o.remove("id");
            o.values_mut().for_each(without_ids);
        } else if let Some(a) = v.as_array_mut() {
            a.iter_mut().for_each(without_ids);
        }
    }
    let mut tree = json!([eng_rep]);
    without_ids(&mut tree);
    s.import(
        &json!({"realm": "demo-copy", "enabled": true, "organizationsEnabled": true,
        "roles": {"realm": [{"name": "org-reader"}]},
        "organizations": [{"name": "Beta", "domains": [{"name": "beta.com"}], "groups": tree}]}),
    )
    .await;
    let (_, copies) = s.admin_get(&admin, "/demo-copy/organizations").await;
    let copy = copies[0]["id"].as_str().expect("org id").to_owned();
    let copy_groups = format!("/demo-copy/organizations/{copy}/groups");
    let (_, copied) = s
        .admin_get(&admin, &format!("{copy_groups}?search=qa"))
        .await;
    assert_eq!(copied[0]["path"], "/engineering/qa");
    let (_, top) = s.admin_get(&admin, &copy_groups).await;
    let (_, roles) = s
        .admin_get(
            &admin,
            &format!(
                "{copy_groups}/{}/role-mappings/realm",
                top[0]["id"].as_str().expect("id")
            ),
        )
        .await;
    assert_eq!(roles[0]["name"], "org-reader");
    assert_eq!(
        s.admin_delete(&admin, &format!("{groups}/{eng}")).await,
        204
    );
    let (_, found) = s.admin_get(&admin, &format!("{groups}?search=qa")).await;
    assert_eq!(found, json!([]), "the subtree went too");
    let (st, _) = s.admin_get(&admin, &format!("{groups}/{eng}")).await;
    assert_eq!(st, 404);
}

/// A DELETE with a JSON body (Keycloak's way of removing list members).
async fn admin_delete_json(s: &Server, admin: &str, path: &str, body: &Value) -> u16 {
    s.http
        .delete(format!("{}/admin/realms{path}", s.base))
        .bearer_auth(admin)
        .json(body)
        .send()
        .await
        .expect("delete")
        .status()
        .as_u16()
}

#[tokio::test]
async fn organization_roles_as_keycloaks_organizations_spec_manages_them() {
    let s = start().await;
    let admin = s.demo_realm().await;
    let org = first_organization(
        &s,
        &admin,
        &json!({"name": "orgRoles", "alias": "org-roles", "domains": [{"name": "roles.org"}]}),
    )
    .await;
    let roles = format!("/demo/organizations/{org}/roles");
    let alice = s.user_id(&admin, "demo", "alice").await;
    let (st, _) = s
        .admin_post(
            &admin,
            &format!("/demo/organizations/{org}/members"),
            &json!(alice),
        )
        .await;
    assert_eq!(st, 201);

    // Every organization has its default role.
    let (st, default) = s.admin_get(&admin, &format!("{roles}/default")).await;
    assert_eq!(st, 200, "{default}");
    assert_eq!(default["name"], "default-roles-org-roles");
    assert_eq!(default["containerId"], org.as_str());
    assert_eq!(default["clientRole"], false);
    let default_id = default["id"].as_str().expect("id").to_owned();

    // Created from Location, counted with the default one, searched.
    let child = s
        .admin_create(&admin, &roles, &json!({"name": "child-role"}))
        .await;
    let created = s
        .admin_create(
            &admin,
            &roles,
            &json!({"name": "organization-role", "description": "before update"}),
        )
        .await;
    let (st, _) = s
        .admin_post(&admin, &roles, &json!({"name": "child-role"}))
        .await;
    assert_eq!(st, 409, "names are unique within the organization");
    let (st, _) = s.admin_post(&admin, &roles, &json!({"name": " "})).await;
    assert_eq!(st, 400);
    let (_, n) = s.admin_get(&admin, &format!("{roles}/count")).await;
    assert_eq!(n, json!(3));
    let (_, found) = s
        .admin_get(
            &admin,
            &format!("{roles}?search=organization-role&briefRepresentation=false"),
        )
        .await;
    assert_eq!(found.as_array().map(Vec::len), Some(1), "{found}");
    assert!(found[0].get("attributes").is_some(), "not brief");
    let (_, listed) = s.admin_get(&admin, &roles).await;
    assert!(listed[0].get("attributes").is_none(), "brief by default");
    // A realm role of the same name is another role.
    let (_, realm_roles) = s
        .admin_get(&admin, "/demo/roles?search=organization-role")
        .await;
    assert_eq!(
        realm_roles,
        json!([]),
        "organization roles are not realm roles"
    );

    assert_eq!(
        s.admin_put(
            &admin,
            &format!("{roles}/{created}"),
            Some(&json!({"name": "organization-role", "description": "after update"}))
        )
        .await,
        204
    );
    let (_, role) = s.admin_get(&admin, &format!("{roles}/{created}")).await;
    assert_eq!(role["description"], "after update");

    // Composites: the organization's roles, realm roles, client roles;
    // never the default role nor an administration role.
    s.admin_post(
        &admin,
        "/demo/roles",
        &json!({"name": "org-composite-realm-role"}),
    )
    .await;
    let (_, realm_role) = s
        .admin_get(&admin, "/demo/roles/org-composite-realm-role")
        .await;
    let (_, spa) = s.admin_get(&admin, "/demo/clients?clientId=spa").await;
    let spa = spa[0]["id"].as_str().expect("spa").to_owned();
    s.admin_post(
        &admin,
        &format!("/demo/clients/{spa}/roles"),
        &json!({"name": "org-composite-client-role"}),
    )
    .await;
    let (_, client_role) = s
        .admin_get(
            &admin,
            &format!("/demo/clients/{spa}/roles/org-composite-client-role"),
        )
        .await;
    let composites = format!("{roles}/{created}/composites");
    let three = json!([{"id": child}, {"id": realm_role["id"]}, {"id": client_role["id"]}]);
    let (st, _) = s.admin_post(&admin, &composites, &three).await;
    assert_eq!(st, 204);
    let (_, all) = s.admin_get(&admin, &composites).await;
    assert_eq!(all.as_array().map(Vec::len), Some(3), "{all}");
    let (_, only_realm) = s.admin_get(&admin, &format!("{composites}/realm")).await;
    assert_eq!(only_realm[0]["name"], "org-composite-realm-role");
    assert_eq!(only_realm.as_array().map(Vec::len), Some(1));
    let (_, only_client) = s
        .admin_get(&admin, &format!("{composites}/clients/{spa}"))
        .await;
    assert_eq!(only_client[0]["name"], "org-composite-client-role");
    let (_, role) = s.admin_get(&admin, &format!("{roles}/{created}")).await;
    assert_eq!(role["composite"], true);
    let (st, body) = s
        .admin_post(&admin, &composites, &json!([{"id": default_id}]))
        .await;
    assert_eq!(st, 400, "{body:?}");
    let (_, mgmt) = s
        .admin_get(&admin, "/demo/clients?clientId=realm-management")
        .await;
    let mgmt = mgmt[0]["id"].as_str().expect("realm-management").to_owned();
    let (_, manage_users) = s
        .admin_get(&admin, &format!("/demo/clients/{mgmt}/roles/manage-users"))
        .await;
    let (st, body) = s
        .admin_post(&admin, &composites, &json!([{"id": manage_users["id"]}]))
        .await;
    assert_eq!(st, 400, "no administration roles: {body:?}");
    let (st, _) = s
        .admin_post(&admin, &composites, &json!([{"id": "no-such-role"}]))
        .await;
    assert_eq!(st, 404);
    let (_, available) = s
        .admin_get(
            &admin,
            &format!("{composites}/available?source=organization"),
        )
        .await;
    assert_eq!(available, json!([]), "child is in, the default role never");
    let (st, _) = s
        .admin_get(&admin, &format!("{composites}/available?source=nowhere"))
        .await;
    assert_eq!(st, 400);

    // Users: members only; the default role follows membership.
    let users = format!("{roles}/{created}/users");
    let bob = s
        .admin_create(
            &admin,
            "/demo/users",
            &json!({"username": "bob", "enabled": true}),
        )
        .await;
    let (st, body) = s.admin_post(&admin, &users, &json!([{"id": bob}])).await;
    assert_eq!(st, 400, "bob is not a member: {body:?}");
    let (_, available) = s.admin_get(&admin, &format!("{users}/available")).await;
    assert_eq!(available[0]["username"], "alice");
    let (_, found) = s
        .admin_get(&admin, &format!("{users}/available?search=ALI"))
        .await;
    assert_eq!(found[0]["username"], "alice", "search in any case");
    let (_, none) = s
        .admin_get(&admin, &format!("{users}/available?search=ali&exact=true"))
        .await;
    assert_eq!(none, json!([]), "exact: whole values only");
    let (st, _) = s.admin_post(&admin, &users, &json!([{"id": alice}])).await;
    assert_eq!(st, 204);
    let (_, holders) = s
        .admin_get(&admin, &format!("{users}?briefRepresentation=true"))
        .await;
    assert_eq!(holders.as_array().map(Vec::len), Some(1));
    assert_eq!(holders[0]["username"], "alice");
    let (st, _) = s
        .admin_post(
            &admin,
            &format!("{roles}/default/users"),
            &json!([{"id": alice}]),
        )
        .await;
    assert_eq!(st, 400);

    // Tokens: with Keycloak's organization role membership mapper, her
    // roles there and what they contain, in the organization's entry only.
    let (st, _) = s
        .admin_post(
            &admin,
            &format!("/demo/clients/{spa}/protocol-mappers/models"),
            &json!({"name": "org-roles", "protocol": "openid-connect",
                "protocolMapper": "oidc-organization-role-membership-mapper",
                "config": {"access.token.claim": "true"}}),
        )
        .await;
    assert_eq!(st, 201);
    let t = s
        .password_tokens(
            "demo",
            "spa",
            None,
            "alice",
            "alice-pw",
            Some("organization"),
        )
        .await;
    let c = claims(t["access_token"].as_str().expect("access token"));
    let entry = &c["organization"]["org-roles"];
    assert_eq!(
        entry["roles"],
        json!(["child-role", "default-roles-org-roles", "organization-role"]),
        "{c}"
    );
    assert_eq!(
        entry["realm_access"]["roles"],
        json!(["org-composite-realm-role"])
    );
    assert_eq!(
        entry["resource_access"]["spa"]["roles"],
        json!(["org-composite-client-role"])
    );
    let top_realm = c["realm_access"]["roles"].as_array().expect("roles");
    assert!(
        !top_realm.contains(&json!("org-composite-realm-role")),
        "organization roles never reach realm_access: {c}"
    );

    // Export writes them; an import into another realm builds them again.
    let export = s.export("demo").await;
    let exported = &export["organizations"][0];
    assert_eq!(exported["defaultRole"]["name"], "default-roles-org-roles");
    let exported_role = exported["roles"]
        .as_array()
        .expect("roles")
        .iter()
        .find(|r| r["name"] == "organization-role")
        .expect("organization-role")
        .clone();
    assert_eq!(
        exported_role["composites"]["organization"],
        json!(["child-role"])
    );
    assert_eq!(
        exported_role["composites"]["realm"],
        json!(["org-composite-realm-role"])
    );
    assert_eq!(
        exported_role["composites"]["client"]["spa"],
        json!(["org-composite-client-role"])
    );
    assert_eq!(
        exported["members"][0]["organizationRoles"],
        json!(["organization-role"])
    );
    s.import(
        &json!({"realm": "demo-copy", "enabled": true, "organizationsEnabled": true,
        "roles": {"realm": [{"name": "org-composite-realm-role"}]},
        "users": [{"username": "carol", "enabled": true}],
        "organizations": [{"name": "Copy", "alias": "copy", "domains": [{"name": "copy.org"}],
            "roles": [exported_role, {"name": "child-role"}],
            "members": [{"username": "carol", "organizationRoles": ["organization-role"]}]}]}),
    )
    .await;
    let (_, copies) = s.admin_get(&admin, "/demo-copy/organizations").await;
    let copy = copies[0]["id"].as_str().expect("org id").to_owned();
    let copy_roles = format!("/demo-copy/organizations/{copy}/roles");
    let (_, n) = s.admin_get(&admin, &format!("{copy_roles}/count")).await;
    assert_eq!(n, json!(3), "its two and the default role");
    let (_, d) = s.admin_get(&admin, &format!("{copy_roles}/default")).await;
    assert_eq!(d["name"], "default-roles-copy");
    let (_, found) = s
        .admin_get(&admin, &format!("{copy_roles}?search=organization-role"))
        .await;
    let copied = found[0]["id"].as_str().expect("id");
    let (_, inside) = s
        .admin_get(&admin, &format!("{copy_roles}/{copied}/composites"))
        .await;
    let names: Vec<&str> = inside
        .as_array()
        .expect("composites")
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(
        names,
        ["child-role", "org-composite-realm-role"],
        "spa is not in that realm"
    );
    let (_, holders) = s
        .admin_get(&admin, &format!("{copy_roles}/{copied}/users"))
        .await;
    assert_eq!(holders[0]["username"], "carol");

    // Leaving the organization ends the grant; a rejoin does not bring it back.
    assert_eq!(
        s.admin_delete(
            &admin,
            &format!("/demo/organizations/{org}/members/{alice}")
        )
        .await,
        204
    );
    s.admin_post(
        &admin,
        &format!("/demo/organizations/{org}/members"),
        &json!(alice),
    )
    .await;
    let (_, holders) = s.admin_get(&admin, &users).await;
    assert_eq!(holders, json!([]));

    // Removing composites and roles; the default role stays.
    assert_eq!(
        admin_delete_json(&s, &admin, &composites, &three).await,
        204
    );
    let (_, all) = s.admin_get(&admin, &composites).await;
    assert_eq!(all, json!([]));
    assert_eq!(
        s.admin_delete(&admin, &format!("{roles}/{default_id}"))
            .await,
        400
    );
    assert_eq!(
        s.admin_delete(&admin, &format!("{roles}/{created}")).await,
        204
    );
    let (st, _) = s.admin_get(&admin, &format!("{roles}/{created}")).await;
    assert_eq!(st, 404);
    let (_, n) = s.admin_get(&admin, &format!("{roles}/count")).await;
    assert_eq!(n, json!(2));
}
