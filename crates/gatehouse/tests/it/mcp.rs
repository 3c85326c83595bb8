//! An MCP client's whole way in, as the MCP authorization spec lays it
//! out, against Gatehouse as both authorization server and gateway: a 401
//! naming the protected resource metadata (RFC 9728), that metadata
//! naming the authorization server, its metadata (RFC 8414) naming the
//! registration endpoint, anonymous dynamic registration (RFC 7591)
//! under a realm policy that trusts the agents' hosts, the code flow with
//! PKCE and a consent screen, and the token accepted at the gateway for
//! that resource only.

use crate::peers::upstream;
use crate::support::{LoginPage, between, start};
use base64::Engine;
use serde_json::{Value, json};

#[tokio::test]
async fn an_mcp_client_goes_from_a_401_to_a_call() {
    let s = start().await;
    let admin = s.demo_realm().await;
    let up = upstream().await;
    let resource = format!("{}/mcp", s.gw);
    s.configure(&format!(
        r#"
[gateway]
public_url = "{gw}"

[authorizers.gatehouse]
type = "jwt"
issuer = "{base}/realms/demo"

[[routes]]
name = "mcp"
path = "/mcp"
upstream = "{up}"
authorizers = ["gatehouse"]
audience = "{resource}"
"#,
        gw = s.gw,
        base = s.base,
        up = up.url,
    ))
    .expect("config");

    // The realm's admin: tokens of every new client carry the MCP server
    // as audience (a default client scope with an audience mapper), and
    // agents on this host may register themselves.
    let scope_id = s
        .admin_create(
            &admin,
            "/demo/client-scopes",
            &json!({"name": "mcp", "protocol": "openid-connect",
                "attributes": {"include.in.token.scope": "false"},
                "protocolMappers": [{"name": "mcp audience", "protocol": "openid-connect",
                    "protocolMapper": "oidc-audience-mapper",
                    "config": {"included.custom.audience": resource, "access.token.claim": "true"}}]}),
        )
        .await;
    let default_scope = format!("/demo/default-default-client-scopes/{scope_id}");
    assert_eq!(s.admin_put(&admin, &default_scope, None).await, 204);
    let type_q = "org.keycloak.services.clientregistration.policy.ClientRegistrationPolicy";
    let (_, policies) = s
        .admin_get(&admin, &format!("/demo/components?type={type_q}"))
        .await;
    let mut trusted = policies
        .as_array()
        .expect("list")
        .iter()
        .find(|p| p["providerId"] == "trusted-hosts")
        .expect("trusted hosts")
        .clone();
    trusted["config"]["trusted-hosts"] = json!(["127.0.0.1"]);
    let policy = format!("/demo/components/{}", trusted["id"].as_str().expect("id"));
    assert_eq!(s.admin_put(&admin, &policy, Some(&trusted)).await, 204);

    // 1. A call without a token: 401 naming the resource metadata.
    let r = s.http.get(&resource).send().await.expect("call");
    assert_eq!(r.status(), 401);
    let challenge = r.headers()["www-authenticate"]
        .to_str()
        .expect("challenge")
        .to_owned();
    let metadata_url = between(&challenge, "resource_metadata=\"", "\"").to_owned();
    let prm: Value = s
        .http
        .get(&metadata_url)
        .send()
        .await
        .expect("prm")
        .json()
        .await
        .expect("json");
    assert_eq!(prm["resource"], resource.as_str());
    let issuer = prm["authorization_servers"][0]
        .as_str()
        .expect("issuer")
        .to_owned();

    // 2. The authorization server's metadata, at the RFC 8414 path.
    let path = issuer.strip_prefix(&s.base).expect("our issuer");
    let asm: Value = s
        .http
        .get(format!(
            "{}/.well-known/oauth-authorization-server{path}",
            s.base
        ))
        .send()
        .await
        .expect("asm")
        .json()
        .await
        .expect("json");
    assert_eq!(asm["issuer"], issuer.as_str());
    assert!(
        asm["code_challenge_methods_supported"]
            .as_array()
            .expect("pkce")
            .contains(&json!("S256"))
    );

    // 3. Anonymous registration as a public client.
    let redirect = "http://127.0.0.1:33418/callback";
    let reg: Value = {
        let r = s
            .http
            .post(asm["registration_endpoint"].as_str().expect("endpoint"))
            .json(
                &json!({"client_name": "Claude-like agent", "redirect_uris": [redirect],
                "grant_types": ["authorization_code", "refresh_token"],
                "token_endpoint_auth_method": "none"}),
            )
            .send()
            .await
            .expect("register");
        assert_eq!(r.status(), 201);
        r.json().await.expect("json")
    };
    let client_id = reg["client_id"].as_str().expect("client id").to_owned();
    assert!(reg.get("client_secret").is_none(), "a public client");

    // 4. The code flow with PKCE and the resource; consent on the way.
    let verifier =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(gatehouse_core::id::bytes::<32>());
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(gatehouse_core::id::sha256(verifier.as_bytes()));
    let first = s
        .http
        .get(asm["authorization_endpoint"].as_str().expect("auth"))
        .query(&[
            ("client_id", client_id.as_str()),
            ("redirect_uri", redirect),
            ("response_type", "code"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("state", "mcp-state"),
            ("resource", resource.as_str()),
        ])
        .send()
        .await
        .expect("authorize");
    let login = LoginPage::read(&s, first).await;
    let r = login
        .post(&[("username", "alice"), ("password", "alice-pw")])
        .await;
    assert_eq!(r.status(), 200, "the consent page");
    let html = r.text().await.expect("html");
    assert!(html.contains("Claude-like agent"), "{html}");
    let done = login.post_form(&s, &html, &[("accept", "Yes")]).await;
    assert_eq!(done.status(), 302);
    let loc = url::Url::parse(done.headers()["location"].to_str().expect("loc")).expect("url");
    let code = loc
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("code");
    let r = s
        .http
        .post(asm["token_endpoint"].as_str().expect("token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", client_id.as_str()),
            ("code", code.as_str()),
            ("redirect_uri", redirect),
            ("code_verifier", verifier.as_str()),
            ("resource", resource.as_str()),
        ])
        .send()
        .await
        .expect("token");
    assert_eq!(r.status(), 200);
    let tokens: Value = r.json().await.expect("json");
    let token = tokens["access_token"].as_str().expect("access token");
    assert_eq!(crate::support::claims(token)["aud"], resource.as_str());

    // 5. The call goes through, with the caller's identity.
    let r = s
        .http
        .get(&resource)
        .bearer_auth(token)
        .send()
        .await
        .expect("call");
    assert_eq!(r.status(), 200);
    assert_eq!(up.hits(), 1);
    // A token of the same realm minted for another audience is not one
    // for this resource (RFC 8707): refused before the upstream.
    let other: Value = s.alice_tokens(None).await;
    let r = s
        .http
        .get(&resource)
        .bearer_auth(other["access_token"].as_str().expect("token"))
        .send()
        .await
        .expect("call");
    assert_eq!(r.status(), 401);
    let challenge = r.headers()["www-authenticate"].to_str().expect("challenge");
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert_eq!(up.hits(), 1);
}
