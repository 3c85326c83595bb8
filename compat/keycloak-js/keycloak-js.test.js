// Drives Gatehouse with keycloak-js (pinned in package.json), Keycloak's
// own browser adapter, in headless Chromium (Debian's package, driven by
// playwright-core): init with check-sso (silent, in an iframe, and by a
// full redirect with prompt=none), login-required, login through the login
// page, the code exchange with PKCE, updateToken, loadUserProfile,
// loadUserInfo, SSO on a reload, logout by GET and by POST, and an
// application-initiated action (login({action})) reported to
// onActionUpdate. The app is
// served from its own origin, so every call to Gatehouse is cross-origin
// and passes only if Gatehouse answers CORS as Keycloak does; a client
// whose web origins leave the app out must fail to get its tokens.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { readFileSync } from "node:fs";
import { chromium } from "playwright-core";
import { startGatehouse } from "../harness.mjs";

const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const ADAPTER = readFileSync(new URL("./node_modules/keycloak-js/lib/keycloak.js", import.meta.url));
let gatehouse, base, app, server, browser;

/// The init options of each page of the app.
const PAGES = {
  "/silent.html": { onLoad: "check-sso", pkceMethod: "S256", silentCheckSsoRedirectUri: "SILENT", checkLoginIframeInterval: 1 },
  "/redirect.html": { onLoad: "check-sso", pkceMethod: "S256" },
  "/required.html": { onLoad: "login-required", pkceMethod: "S256", logoutMethod: "POST" },
  "/query.html": { onLoad: "login-required", pkceMethod: "S256", responseMode: "query" },
  "/implicit.html": { onLoad: "login-required", flow: "implicit", checkLoginIframe: false },
};

function page(clientId, options) {
  return `<!doctype html><html><head><title>app</title></head><body>
<script type="module">
import Keycloak from "/keycloak.js";
const options = ${JSON.stringify(options)};
if (options.silentCheckSsoRedirectUri) options.silentCheckSsoRedirectUri = location.origin + "/silent-check-sso.html";
const kc = new Keycloak({ url: ${JSON.stringify(base)}, realm: "js", clientId: ${JSON.stringify(clientId)} });
window.kc = kc;
window.loggedOut = 0;
kc.onAuthLogout = () => { window.loggedOut += 1; };
window.actions = [];
kc.onActionUpdate = (status, action) => { window.actions.push([status, action]); };
window.ready = kc.init(options).then(
  (authenticated) => ({ authenticated }),
  (e) => ({ error: e instanceof Error ? e.message : JSON.stringify(e) ?? String(e) }));
</script></body></html>`;
}

/// What the app's front-channel logout URL was called with.
const frontchannelHits = [];

function serveApp(req, res) {
  const url = new URL(req.url, "http://app");
  if (url.pathname === "/fc-logout") {
    frontchannelHits.push(Object.fromEntries(url.searchParams));
    res.writeHead(200, { "content-type": "text/html" });
    return res.end("<!doctype html><title>logged out</title>");
  }
  if (url.pathname === "/keycloak.js") {
    res.writeHead(200, { "content-type": "text/javascript" });
    return res.end(ADAPTER);
  }
  if (url.pathname === "/silent-check-sso.html") {
    res.writeHead(200, { "content-type": "text/html" });
    return res.end("<!doctype html><html><body><script>parent.postMessage(location.href, location.origin)</script></body></html>");
  }
  const options = PAGES[url.pathname];
  if (!options) {
    res.writeHead(404);
    return res.end();
  }
  res.writeHead(200, { "content-type": "text/html" });
  res.end(page(url.searchParams.get("client") ?? "spa", options));
}

before(async () => {
  gatehouse = await startGatehouse("js-admin");
  base = gatehouse.base;
  server = createServer(serveApp);
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  app = `http://127.0.0.1:${server.address().port}`;
  const realm = {
    realm: "js", enabled: true, registrationAllowed: true,
    clients: [
      // What Keycloak's admin console makes of a new SPA client.
      { clientId: "spa", publicClient: true, redirectUris: [`${app}/*`], webOrigins: ["+"], frontchannelLogout: true,
        attributes: { "post.logout.redirect.uris": "+", "pkce.code.challenge.method": "S256",
          "frontchannel.logout.url": `${app}/fc-logout` } },
      // An old-style SPA on the implicit flow (Keycloak's implicitFlowEnabled).
      { clientId: "implicit-spa", publicClient: true, standardFlowEnabled: false, implicitFlowEnabled: true,
        redirectUris: [`${app}/*`], webOrigins: ["+"] },
      // Redirects back to the app, but does not let the app's origin read its answers.
      { clientId: "elsewhere", publicClient: true, redirectUris: [`${app}/*`], webOrigins: ["https://other.example"] },
    ],
    users: [{ username: "alice", email: "alice@example.com", emailVerified: true, firstName: "Alice", lastName: "Liddell",
      enabled: true, credentials: [{ type: "password", value: "alice-pw" }] }],
  };
  await gatehouse.importRealm(realm);
  browser = await chromium.launch({ executablePath: CHROMIUM });
});

after(async () => {
  await browser?.close();
  server?.close();
  gatehouse?.stop();
});

/// The outcome of the page's keycloak.init(), once the page has settled:
/// init() may first navigate away (a check-sso redirect with prompt=none)
/// and come back, which destroys the page being asked.
async function ready(p) {
  for (let i = 0; ; i++) {
    try {
      await p.waitForLoadState();
      await p.waitForFunction(() => window.ready !== undefined);
      return await p.evaluate(() => window.ready);
    } catch (e) {
      if (i > 10 || !/context was destroyed|navigat/i.test(String(e))) throw e;
    }
  }
}

/// Fills in Gatehouse's login page, which the browser is on or is heading to.
async function logIn(p, username, password) {
  await p.waitForURL((u) => u.href.startsWith(`${base}/realms/js/protocol/openid-connect/auth`));
  await p.fill("input[name=username]", username);
  await p.fill("input[name=password]", password);
  await Promise.all([p.waitForURL((u) => u.href.startsWith(app)), p.click("[type=submit]")]);
}

test("check-sso in an iframe, login, token refresh, profile, SSO on reload, logout", async () => {
  const context = await browser.newContext();
  const p = await context.newPage();
  await p.goto(`${app}/silent.html`);
  assert.deepEqual(await ready(p), { authenticated: false });

  await p.evaluate(() => void window.kc.login());
  await logIn(p, "alice", "alice-pw");
  assert.deepEqual(await ready(p), { authenticated: true });
  // keycloak-js removed the code and state from the address.
  assert.equal(p.url(), `${app}/silent.html`);
  const first = await p.evaluate(() => ({
    user: window.kc.tokenParsed.preferred_username, azp: window.kc.tokenParsed.azp, sid: window.kc.tokenParsed.sid,
    token: window.kc.token, nonce: window.kc.idTokenParsed.nonce, refresh: typeof window.kc.refreshToken,
  }));
  assert.equal(first.user, "alice");
  assert.equal(first.azp, "spa");
  assert.ok(first.nonce, "the ID token carries keycloak-js's nonce");
  assert.equal(first.refresh, "string");

  // updateToken(-1) refreshes whatever the token's age.
  const refreshed = await p.evaluate(async () => ({ refreshed: await window.kc.updateToken(-1), token: window.kc.token }));
  assert.equal(refreshed.refreshed, true);
  assert.notEqual(refreshed.token, first.token);

  const profile = await p.evaluate(() => window.kc.loadUserProfile());
  assert.equal(profile.username, "alice");
  assert.equal(profile.email, "alice@example.com");
  assert.equal(profile.firstName, "Alice");
  assert.equal(profile.lastName, "Liddell");
  const info = await p.evaluate(() => window.kc.loadUserInfo());
  assert.equal(info.preferred_username, "alice");
  assert.equal(info.sub, await p.evaluate(() => window.kc.subject));

  // A new page load finds the SSO session through the hidden iframe
  // (prompt=none): the 3p-cookie check said "supported", so the page itself
  // never leaves the app.
  const visited = [];
  p.on("framenavigated", (f) => { if (f === p.mainFrame()) visited.push(f.url()); });
  await p.reload();
  assert.deepEqual(await ready(p), { authenticated: true });
  // A new client session of the same browser session: its id starts with that session's.
  const sid = await p.evaluate(() => window.kc.tokenParsed.sid);
  assert.equal(sid.split(".")[0], first.sid.split(".")[0]);
  assert.notEqual(sid, first.sid);
  assert.deepEqual(visited.filter((u) => !u.startsWith(app)), []);

  const hitsBefore = frontchannelHits.length;
  await p.evaluate(() => void window.kc.logout({ redirectUri: `${location.origin}/silent.html` }));
  await p.waitForURL(`${app}/silent.html`);
  assert.deepEqual(await ready(p), { authenticated: false });
  // On the way, the logout page loaded the app's front-channel logout URL
  // for each client session of the browser session, naming it.
  const hits = frontchannelHits.slice(hitsBefore);
  assert.ok(hits.some((h) => h.sid === sid && h.iss === `${base}/realms/js`), JSON.stringify(hits));
  // The session is gone: the silent check on another load finds nothing either.
  await p.reload();
  assert.deepEqual(await ready(p), { authenticated: false });
  await context.close();
});

test("check-sso by a full redirect with prompt=none comes back unauthenticated, then finds the session", async () => {
  const context = await browser.newContext();
  const p = await context.newPage();
  await p.goto(`${app}/redirect.html`);
  assert.deepEqual(await ready(p), { authenticated: false });
  assert.equal(p.url(), `${app}/redirect.html`);

  await p.goto(`${app}/required.html`);
  await logIn(p, "alice", "alice-pw");
  assert.deepEqual(await ready(p), { authenticated: true });

  await p.goto(`${app}/redirect.html`);
  assert.deepEqual(await ready(p), { authenticated: true });
  assert.equal(await p.evaluate(() => window.kc.tokenParsed.preferred_username), "alice");
  await context.close();
});

test("login-required with the answer in the query, a wrong password first, and logout by POST", async () => {
  const context = await browser.newContext();
  const p = await context.newPage();
  await p.goto(`${app}/query.html`);
  await p.waitForURL((u) => u.href.startsWith(`${base}/realms/js/protocol/openid-connect/auth`));
  await p.fill("input[name=username]", "alice");
  await p.fill("input[name=password]", "not-her-password");
  await p.click("[type=submit]");
  assert.ok(p.url().startsWith(base), "a wrong password stays on the login page");
  assert.match(await p.content(), /Invalid username or password/);
  await p.fill("input[name=username]", "alice");
  await p.fill("input[name=password]", "alice-pw");
  await Promise.all([p.waitForURL((u) => u.href.startsWith(app)), p.click("[type=submit]")]);
  assert.deepEqual(await ready(p), { authenticated: true });
  assert.equal(p.url(), `${app}/query.html`);

  // /required.html logs out with a form POST to the end-session endpoint.
  await p.goto(`${app}/required.html`);
  assert.deepEqual(await ready(p), { authenticated: true });
  await p.evaluate(() => void window.kc.logout({ redirectUri: `${location.origin}/redirect.html` }));
  await p.waitForURL(`${app}/redirect.html`);
  assert.deepEqual(await ready(p), { authenticated: false });
  await context.close();
});

test("a client whose web origins leave the app out cannot get its tokens from the browser", async () => {
  const context = await browser.newContext();
  const p = await context.newPage();
  await p.goto(`${app}/required.html?client=elsewhere`);
  await logIn(p, "alice", "alice-pw");
  const outcome = await ready(p);
  assert.equal(outcome.authenticated, undefined, `expected init to fail, got ${JSON.stringify(outcome)}`);
  assert.ok(outcome.error);
  await context.close();
});

test("the session-status iframe notices a logout in another tab", async () => {
  const context = await browser.newContext();
  const a = await context.newPage();
  await a.goto(`${app}/silent.html`);
  assert.deepEqual(await ready(a), { authenticated: false });
  await a.evaluate(() => void window.kc.login());
  await logIn(a, "alice", "alice-pw");
  assert.deepEqual(await ready(a), { authenticated: true });

  const b = await context.newPage();
  await b.goto(`${app}/silent.html`);
  assert.deepEqual(await ready(b), { authenticated: true });
  // The iframe is asked every second and answers "unchanged" while the
  // session lasts: nothing is logged out.
  await b.waitForTimeout(2500);
  assert.equal(await b.evaluate(() => window.loggedOut), 0);
  assert.equal(await b.evaluate(() => window.kc.authenticated), true);

  await a.evaluate(() => void window.kc.logout({ redirectUri: `${location.origin}/silent.html` }));
  await a.waitForURL(`${app}/silent.html`);
  assert.deepEqual(await ready(a), { authenticated: false });
  // Tab B learns it from the iframe, without a request of its own.
  await b.waitForFunction(() => window.loggedOut > 0, null, { timeout: 10000 });
  assert.equal(await b.evaluate(() => window.kc.authenticated), false);
  await context.close();
});

test("the implicit flow: tokens straight from the fragment, nonce checked by keycloak-js", async () => {
  const context = await browser.newContext();
  const p = await context.newPage();
  await p.goto(`${app}/implicit.html?client=implicit-spa`);
  await logIn(p, "alice", "alice-pw");
  assert.deepEqual(await ready(p), { authenticated: true });
  const got = await p.evaluate(() => ({
    user: window.kc.tokenParsed.preferred_username, azp: window.kc.tokenParsed.azp,
    nonce: window.kc.idTokenParsed.nonce, refresh: window.kc.refreshToken,
  }));
  assert.equal(got.user, "alice");
  assert.equal(got.azp, "implicit-spa");
  assert.ok(got.nonce);
  assert.equal(got.refresh, undefined, "no refresh token from the front channel");
  await context.close();
});

test("an application-initiated action: login({action}) in a fresh session asks for a new password, and onActionUpdate hears success", async () => {
  const ctx = await browser.newContext();
  const p = await ctx.newPage();
  await p.goto(`${app}/required.html`);
  await logIn(p, "alice", "alice-pw");
  assert.deepEqual(await ready(p), { authenticated: true });
  await Promise.all([
    p.waitForURL((u) => u.href.startsWith(`${base}/realms/js/protocol/openid-connect/auth`)),
    // Called once evaluate has returned: login() navigates away.
    p.evaluate(() => { setTimeout(() => window.kc.login({ action: "UPDATE_PASSWORD" }), 0); }),
  ]);
  // Just logged in: the session stands in for the password (Keycloak's
  // max_auth_age), so the action's page comes at once, with its Cancel.
  await p.waitForSelector("input[name=password-new]");
  assert.equal(await p.locator("button[name=cancel-aia]").count(), 1);
  await p.fill("input[name=password-new]", "alice-pw-2");
  await p.fill("input[name=password-confirm]", "alice-pw-2");
  await Promise.all([p.waitForURL((u) => u.href.startsWith(app)), p.click("button:not([name=cancel-aia])[type=submit]")]);
  assert.deepEqual(await ready(p), { authenticated: true });
  assert.deepEqual(await p.evaluate(() => window.actions), [["success", "UPDATE_PASSWORD"]]);
  await ctx.close();
});

test("register(): Gatehouse's registration page, then the app holds the new user's tokens", async () => {
  const ctx = await browser.newContext();
  const p = await ctx.newPage();
  await p.goto(`${app}/redirect.html`);
  assert.deepEqual(await ready(p), { authenticated: false });
  await Promise.all([
    p.waitForURL((u) => u.href.startsWith(`${base}/realms/js/protocol/openid-connect/registrations`)),
    p.evaluate(() => { setTimeout(() => window.kc.register(), 0); }),
  ]);
  await p.fill("input[name=firstName]", "Reg");
  await p.fill("input[name=lastName]", "Istered");
  await p.fill("input[name=email]", "reg@example.com");
  await p.fill("input[name=username]", "reg");
  await p.fill("input[name=password]", "reg-pw-1");
  await p.fill("input[name=password-confirm]", "reg-pw-1");
  await Promise.all([p.waitForURL((u) => u.href.startsWith(app)), p.click("[type=submit]")]);
  assert.deepEqual(await ready(p), { authenticated: true });
  assert.equal(await p.evaluate(() => window.kc.tokenParsed.preferred_username), "reg");
  assert.equal(await p.evaluate(() => window.kc.tokenParsed.email), "reg@example.com");
  await ctx.close();
});
