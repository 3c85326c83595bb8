//! The authorization-code flow with PKCE driven by the `openidconnect`
//! crate as the relying party: discovery, authorization URL, the login
//! page, code exchange, ID-token verification against the published JWKS
//! (signature, issuer, audience, nonce, expiry), and userinfo.

use crate::support::start;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreProviderMetadata, CoreUserInfoClaims,
};
use openidconnect::{
    AuthorizationCode, ClientId, CsrfToken, IssuerUrl, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, RedirectUrl, Scope, TokenResponse,
};

/// openidconnect's HTTP calls, made with our reqwest (no second HTTP stack).
async fn http(
    req: openidconnect::HttpRequest,
) -> Result<openidconnect::HttpResponse, reqwest::Error> {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let (parts, body) = req.into_parts();
    let mut r = client
        .request(parts.method, parts.uri.to_string())
        .body(body);
    for (k, v) in &parts.headers {
        r = r.header(k, v);
    }
    let resp = r.send().await?;
    let mut out = http::Response::builder().status(resp.status());
    for (k, v) in resp.headers() {
        out = out.header(k, v);
    }
    let bytes = resp.bytes().await?.to_vec();
    Ok(out.body(bytes).unwrap_or_default())
}

#[tokio::test]
async fn openidconnect_relying_party_completes_the_code_flow() {
    let s = start().await;
    s.demo_realm().await;
    let issuer = IssuerUrl::new(format!("{}/realms/demo", s.base)).expect("issuer");
    let meta = CoreProviderMetadata::discover_async(issuer, &http)
        .await
        .expect("discovery");
    let client = CoreClient::from_provider_metadata(meta, ClientId::new("spa".into()), None)
        .set_redirect_uri(RedirectUrl::new("http://127.0.0.1/spa/cb".into()).expect("redirect"));
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, csrf, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("email".into()))
        .set_pkce_challenge(challenge)
        .url();

    // The browser part: the login page and its form.
    let page = s.http.get(url.as_str()).send().await.expect("auth");
    let done = s.log_in_alice(page).await;
    assert_eq!(done.status(), 302);
    let location = url::Url::parse(done.headers()["location"].to_str().expect("loc")).expect("url");
    let param = |k: &str| {
        location
            .query_pairs()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.into_owned())
    };
    assert_eq!(param("state").as_deref(), Some(csrf.secret().as_str()));
    let code = param("code").expect("code");

    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .expect("token endpoint known")
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("code exchange");
    let id_token = tokens.id_token().expect("id token");
    let claims = id_token
        .claims(&client.id_token_verifier(), &nonce)
        .expect("ID token verifies");
    assert_eq!(
        claims.preferred_username().map(|u| u.as_str()),
        Some("alice")
    );
    assert_eq!(
        claims.email().map(|e| e.as_str()),
        Some("alice@example.com")
    );
    assert!(claims.auth_time().is_some());
    // A login with credentials is level 1, as Keycloak says it.
    assert_eq!(claims.auth_context_ref().map(|a| a.as_str()), Some("1"));
    // at_hash binds the access token to the ID token.
    let expected = openidconnect::AccessTokenHash::from_token(
        tokens.access_token(),
        id_token.signing_alg().expect("alg"),
        id_token
            .signing_key(&client.id_token_verifier())
            .expect("key"),
    )
    .expect("hash");
    assert_eq!(claims.access_token_hash(), Some(&expected));
    // A wrong nonce is refused by the relying party.
    assert!(
        id_token
            .claims(&client.id_token_verifier(), &Nonce::new("other".into()))
            .is_err()
    );

    let info: CoreUserInfoClaims = client
        .user_info(tokens.access_token().to_owned(), None)
        .expect("userinfo endpoint known")
        .request_async(&http)
        .await
        .expect("userinfo");
    assert_eq!(info.subject(), claims.subject());
    assert_eq!(info.preferred_username().map(|u| u.as_str()), Some("alice"));
}
