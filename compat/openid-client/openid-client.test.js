// Drives Gatehouse's OpenID Provider with openid-client (pinned in
// package.json), an OpenID Certified relying-party library: discovery,
// the authorization code flow with PKCE, state and nonce, ID token and
// userinfo validation, refresh, introspection, revocation, client
// credentials with a secret and with private_key_jwt, RP-initiated
// logout, and dynamic client registration (with a chosen ID token
// algorithm, whose signature the RP checks), and DPoP (RFC 9449): bound
// tokens from the code flow, refresh, userinfo and a gateway route.
// Starts the real binary on ephemeral ports.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import * as oidc from "openid-client";
import { startGatehouse } from "../harness.mjs";

const REDIRECT = "http://127.0.0.1:9/cb";
const LOGGED_OUT = "http://127.0.0.1:9/bye";
let gatehouse, base, keys;

before(async () => {
  gatehouse = await startGatehouse("rp-admin");
  base = gatehouse.base;
  keys = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, ["sign", "verify"]);
  const jwk = { ...(await crypto.subtle.exportKey("jwk", keys.publicKey)), kid: "rp-key-1", alg: "ES256", use: "sig" };
  const realm = {
    realm: "rp", enabled: true,
    clients: [
      { clientId: "web", secret: "web-secret", redirectUris: [REDIRECT], serviceAccountsEnabled: true,
        attributes: { "post.logout.redirect.uris": LOGGED_OUT } },
      // A public client that must bind its tokens (Keycloak's attribute).
      { clientId: "dpop-spa", publicClient: true, redirectUris: [REDIRECT],
        attributes: { "dpop.bound.access.tokens": "true" } },
      { clientId: "signer", clientAuthenticatorType: "client-jwt", serviceAccountsEnabled: true, standardFlowEnabled: false,
        attributes: { "use.jwks.string": "true", "jwks.string": JSON.stringify({ keys: [jwk] }) } },
    ],
    users: [{ username: "alice", email: "alice@example.com", emailVerified: true, firstName: "Alice", lastName: "Liddell",
      enabled: true, credentials: [{ type: "password", value: "alice-pw" }] }],
  };
  await gatehouse.importRealm(realm);
});

after(() => gatehouse?.stop());

const discover = (clientId, secret, auth) =>
  oidc.discovery(new URL(`${base}/realms/rp`), clientId, secret, auth, { execute: [oidc.allowInsecureRequests] });

/// What a browser does with the login page: fills it in and follows the
/// answer's redirect, returning the callback URL the RP receives.
async function logInAs(authorizationUrl, username, password) {
  const page = await fetch(authorizationUrl, { redirect: "manual" });
  assert.equal(page.status, 200);
  const cookie = page.headers.getSetCookie().map((c) => c.split(";")[0]).join("; ");
  const html = await page.text();
  const action = html.match(/<form[^>]*action="([^"]+)"/)[1].replaceAll("&amp;", "&");
  const csrf = html.match(/name="csrf" value="([^"]+)"/)[1];
  const r = await fetch(new URL(action, base), {
    method: "POST",
    redirect: "manual",
    headers: { cookie, "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ username, password, csrf }),
  });
  assert.equal(r.status, 302, await r.text());
  return { callback: new URL(r.headers.get("location")), sso: r.headers.getSetCookie().map((c) => c.split(";")[0]).join("; ") };
}

test("discovery names what openid-client needs", async () => {
  const config = await discover("web", "web-secret");
  const md = config.serverMetadata();
  assert.equal(md.issuer, `${base}/realms/rp`);
  assert.ok(md.code_challenge_methods_supported.includes("S256"));
  assert.equal(md.authorization_response_iss_parameter_supported, true);
});

test("authorization code flow with PKCE, then userinfo, refresh, introspection, revocation and logout", async () => {
  const config = await discover("web", "web-secret");
  const verifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const nonce = oidc.randomNonce();
  const url = oidc.buildAuthorizationUrl(config, {
    redirect_uri: REDIRECT, scope: "openid profile email",
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: "S256", state, nonce,
  });
  const { callback, sso } = await logInAs(url, "alice", "alice-pw");
  // openid-client checks iss (RFC 9207), state, PKCE, the ID token's
  // signature, iss, aud, azp, exp, iat, nonce and at_hash.
  const tokens = await oidc.authorizationCodeGrant(config, callback, {
    pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce, idTokenExpected: true,
  });
  const claims = tokens.claims();
  assert.equal(claims.preferred_username, "alice");
  assert.equal(claims.email, "alice@example.com");
  const info = await oidc.fetchUserInfo(config, tokens.access_token, claims.sub);
  assert.equal(info.given_name, "Alice");
  const refreshed = await oidc.refreshTokenGrant(config, tokens.refresh_token);
  assert.equal(refreshed.claims().sub, claims.sub, "a refreshed ID token names the same user");
  const live = await oidc.tokenIntrospection(config, refreshed.access_token);
  assert.equal(live.active, true);
  assert.equal(live.username, "alice");
  await oidc.tokenRevocation(config, refreshed.access_token);
  assert.equal((await oidc.tokenIntrospection(config, refreshed.access_token)).active, false);
  // RP-initiated logout with id_token_hint ends the SSO session.
  const end = oidc.buildEndSessionUrl(config, { id_token_hint: refreshed.id_token, post_logout_redirect_uri: LOGGED_OUT, state: "bye" });
  const out = await fetch(end, { redirect: "manual", headers: { cookie: sso } });
  assert.equal(out.status, 302);
  const back = new URL(out.headers.get("location"));
  assert.equal(`${back.origin}${back.pathname}`, LOGGED_OUT);
  assert.equal(back.searchParams.get("state"), "bye");
  await assert.rejects(oidc.refreshTokenGrant(config, refreshed.refresh_token), (e) => e.error === "invalid_grant");
});

test("a wrong PKCE verifier or a mismatched state is caught", async () => {
  const config = await discover("web", "web-secret");
  const verifier = oidc.randomPKCECodeVerifier();
  const url = oidc.buildAuthorizationUrl(config, {
    redirect_uri: REDIRECT, scope: "openid", state: "s1",
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: "S256",
  });
  const { callback } = await logInAs(url, "alice", "alice-pw");
  await assert.rejects(oidc.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier, expectedState: "other" }));
  await assert.rejects(
    oidc.authorizationCodeGrant(config, callback, { pkceCodeVerifier: oidc.randomPKCECodeVerifier(), expectedState: "s1" }),
    (e) => e.error === "invalid_grant",
  );
  // A code is single-use: once redeemed, a replay is refused and the
  // tokens it gave are revoked (RFC 6749 §4.1.2).
  const { callback: second } = await logInAs(url, "alice", "alice-pw");
  const tokens = await oidc.authorizationCodeGrant(config, second, { pkceCodeVerifier: verifier, expectedState: "s1" });
  await assert.rejects(
    oidc.authorizationCodeGrant(config, second, { pkceCodeVerifier: verifier, expectedState: "s1" }),
    (e) => e.error === "invalid_grant",
  );
  assert.equal((await oidc.tokenIntrospection(config, tokens.access_token)).active, false);
});

test("client credentials with a secret and with private_key_jwt", async () => {
  const web = await discover("web", "web-secret");
  const t = await oidc.clientCredentialsGrant(web);
  assert.ok(t.access_token);
  const signer = await discover("signer", undefined, oidc.PrivateKeyJwt({ key: keys.privateKey, kid: "rp-key-1" }));
  const s = await oidc.clientCredentialsGrant(signer);
  const payload = JSON.parse(Buffer.from(s.access_token.split(".")[1], "base64url").toString());
  assert.equal(payload.azp, "signer");
  await assert.rejects(oidc.clientCredentialsGrant(await discover("signer", "not-how-it-authenticates")));
});

test("prompt=none without a session, and max_age checked against auth_time", async () => {
  const config = await discover("web", "web-secret");
  const none = oidc.buildAuthorizationUrl(config, { redirect_uri: REDIRECT, scope: "openid", prompt: "none", state: "n1" });
  const r = await fetch(none, { redirect: "manual" });
  assert.equal(r.status, 302);
  await assert.rejects(
    oidc.authorizationCodeGrant(config, new URL(r.headers.get("location")), { expectedState: "n1" }),
    (e) => e.error === "login_required",
  );
  const verifier = oidc.randomPKCECodeVerifier();
  const url = oidc.buildAuthorizationUrl(config, {
    redirect_uri: REDIRECT, scope: "openid", state: "m1", max_age: "300",
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: "S256",
  });
  const { callback } = await logInAs(url, "alice", "alice-pw");
  const tokens = await oidc.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier, expectedState: "m1", maxAge: 300 });
  assert.ok(Math.abs(tokens.claims().auth_time - Date.now() / 1000) < 60);
});

test("dynamic client registration (RFC 7591) with an initial access token, then the code flow", async () => {
  const admin = await gatehouse.adminToken();
  const r = await fetch(`${base}/admin/realms/rp/clients-initial-access`, {
    method: "POST",
    headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
    body: JSON.stringify({ count: 1, expiration: 300 }),
  });
  const body = await r.text();
  assert.equal(r.status, 200, body); // what Keycloak's server answers
  const { token } = JSON.parse(body);
  const metadata = {
    client_name: "registered by openid-client",
    redirect_uris: [REDIRECT],
    grant_types: ["authorization_code", "refresh_token", "client_credentials"],
  };
  const options = { initialAccessToken: token, execute: [oidc.allowInsecureRequests] };
  const config = await oidc.dynamicClientRegistration(new URL(`${base}/realms/rp`), metadata, undefined, options);
  const md = config.clientMetadata();
  assert.ok(md.client_id, "a client_id was issued");
  assert.ok(md.client_secret, "a confidential client gets a secret");
  assert.ok(md.registration_access_token && md.registration_client_uri);
  // The registered client authenticates (openid-client posts the secret).
  assert.ok((await oidc.clientCredentialsGrant(config)).access_token);
  const verifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const url = oidc.buildAuthorizationUrl(config, {
    redirect_uri: REDIRECT, scope: "openid",
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: "S256", state,
  });
  const { callback } = await logInAs(url, "alice", "alice-pw");
  const tokens = await oidc.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier, expectedState: state });
  assert.equal(tokens.claims().aud, md.client_id);
  // The token allowed one registration.
  await assert.rejects(
    oidc.dynamicClientRegistration(new URL(`${base}/realms/rp`), metadata, undefined, options),
  );
  // RFC 7592: the registration access token reads the registration.
  const read = await fetch(md.registration_client_uri, { headers: { authorization: `Bearer ${md.registration_access_token}` } });
  assert.equal(read.status, 200);
  assert.equal((await read.json()).client_id, md.client_id);
});

test("a client picks its ID token and userinfo algorithms at registration; the RP checks the signatures against the JWKS", async () => {
  const admin = await gatehouse.adminToken();
  const r = await fetch(`${base}/admin/realms/rp/clients-initial-access`, {
    method: "POST",
    headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
    body: JSON.stringify({ count: 1, expiration: 300 }),
  });
  const { token } = await r.json();
  const metadata = { redirect_uris: [REDIRECT], id_token_signed_response_alg: "PS384", userinfo_signed_response_alg: "ES256" };
  const options = { initialAccessToken: token, execute: [oidc.allowInsecureRequests] };
  const config = await oidc.dynamicClientRegistration(new URL(`${base}/realms/rp`), metadata, undefined, options);
  assert.equal(config.clientMetadata().id_token_signed_response_alg, "PS384");
  assert.ok(config.serverMetadata().id_token_signing_alg_values_supported.includes("PS384"));
  // Non-repudiation: the ID token's signature is verified with the key
  // the realm publishes, not only its claims.
  oidc.enableNonRepudiationChecks(config);
  const verifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const nonce = oidc.randomNonce();
  const url = oidc.buildAuthorizationUrl(config, {
    redirect_uri: REDIRECT, scope: "openid", nonce,
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: "S256", state,
  });
  const { callback } = await logInAs(url, "alice", "alice-pw");
  const tokens = await oidc.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce });
  const header = JSON.parse(Buffer.from(tokens.id_token.split(".")[0], "base64url"));
  assert.equal(header.alg, "PS384");
  assert.equal(tokens.claims().sub.length > 0, true);
  // Userinfo comes as a JWT signed ES256 for this client; the RP checks
  // its signature, issuer and audience.
  const info = await oidc.fetchUserInfo(config, tokens.access_token, tokens.claims().sub);
  assert.equal(info.preferred_username, "alice");
  assert.equal(info.aud, config.clientMetadata().client_id);
  // The refreshed ID token is the same algorithm and verifies too.
  const refreshed = await oidc.refreshTokenGrant(config, tokens.refresh_token);
  assert.equal(JSON.parse(Buffer.from(refreshed.id_token.split(".")[0], "base64url")).alg, "PS384");
});

test("DPoP: openid-client binds the code flow's tokens to its key, refreshes and calls userinfo and a gateway route with proofs", async () => {
  await gatehouse.configureGateway(`
[authorizers.rp]
type = "jwt"
issuer = "${base}/realms/rp"

[[routes]]
name = "orders"
path = "/orders"
upstream = "builtin:echo"
authorizers = ["rp"]
`, "/orders");
  const config = await discover("dpop-spa", undefined, oidc.None());
  assert.ok(config.serverMetadata().dpop_signing_alg_values_supported.includes("ES256"));
  const DPoP = oidc.getDPoPHandle(config, await oidc.randomDPoPKeyPair("ES256"));
  const verifier = oidc.randomPKCECodeVerifier();
  const url = oidc.buildAuthorizationUrl(config, {
    redirect_uri: REDIRECT, scope: "openid", state: "d1",
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: "S256",
  });
  const { callback } = await logInAs(url, "alice", "alice-pw");
  // The client requires DPoP: without a proof the code is refused.
  await assert.rejects(
    oidc.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier, expectedState: "d1" }),
    (e) => e.error === "invalid_request" && e.error_description === "DPoP proof is missing",
  );
  const { callback: again } = await logInAs(url, "alice", "alice-pw");
  const tokens = await oidc.authorizationCodeGrant(config, again, { pkceCodeVerifier: verifier, expectedState: "d1" }, undefined, { DPoP });
  assert.equal(tokens.token_type.toLowerCase(), "dpop");
  const info = await oidc.fetchUserInfo(config, tokens.access_token, tokens.claims().sub, { DPoP });
  assert.equal(info.preferred_username, "alice");
  const refreshed = await oidc.refreshTokenGrant(config, tokens.refresh_token, undefined, { DPoP });
  assert.equal(refreshed.token_type.toLowerCase(), "dpop");
  // A bound refresh token is refused with another key.
  const other = oidc.getDPoPHandle(config, await oidc.randomDPoPKeyPair("ES256"));
  await assert.rejects(oidc.refreshTokenGrant(config, refreshed.refresh_token, undefined, { DPoP: other }));

  // The gateway: a proof from openid-client passes; the token alone does not.
  const api = new URL(`${gatehouse.gw}/orders/42`);
  const r = await oidc.fetchProtectedResource(config, refreshed.access_token, api, "GET", undefined, undefined, { DPoP });
  assert.equal(r.status, 200);
  const stolen = await fetch(api, { headers: { authorization: `Bearer ${refreshed.access_token}` } });
  assert.equal(stolen.status, 401);
  assert.ok(stolen.headers.get("www-authenticate").includes('DPoP algs="'));
});
