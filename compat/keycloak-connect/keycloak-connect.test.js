// Protects an Express app with keycloak-connect (Keycloak's Node.js
// adapter, pinned in package.json): bearer-only token checks and its
// policy enforcer, which asks Gatehouse's token endpoint (the UMA grant)
// whether the caller holds `resource:scope`, both with the confidential
// resource server's secret and the user's token as `subject_token`
// (response_mode=permissions) and with the RPT it hands back
// (response_mode=token). The realm, with its authorization settings, is
// imported in Keycloak's export form. Starts the real binary on ephemeral
// ports.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import express from "express";
import Keycloak from "keycloak-connect";
import { startGatehouse } from "../harness.mjs";

let gatehouse, base, server, appUrl;

const permission = (name, scopes, policies, resources) => ({
  name, type: "scope", logic: "POSITIVE", decisionStrategy: "AFFIRMATIVE",
  config: { scopes: JSON.stringify(scopes), applyPolicies: JSON.stringify(policies),
    ...(resources ? { resources: JSON.stringify(resources) } : {}) },
});

before(async () => {
  gatehouse = await startGatehouse("connect-admin");
  base = gatehouse.base;
  await gatehouse.importRealm({
    realm: "shop", enabled: true,
    groups: [{ name: "staff" }],
    clients: [
      { clientId: "web", publicClient: true, directAccessGrantsEnabled: true },
      { clientId: "orders-api", secret: "orders-secret", serviceAccountsEnabled: true,
        authorizationServicesEnabled: true,
        authorizationSettings: {
          policyEnforcementMode: "ENFORCING", decisionStrategy: "UNANIMOUS",
          scopes: [{ name: "view" }, { name: "cancel" }],
          resources: [{ name: "Orders", type: "urn:orders", uris: ["/orders/*"], scopes: [{ name: "view" }, { name: "cancel" }] }],
          policies: [
            { name: "staff", type: "group", logic: "POSITIVE",
              config: { groups: JSON.stringify([{ path: "/staff", extendChildren: false }]) } },
            { name: "managers", type: "role", logic: "POSITIVE",
              config: { roles: JSON.stringify([{ id: "manager", required: true }]) } },
            permission("view orders", ["view"], ["staff"], ["Orders"]),
            permission("cancel orders", ["cancel"], ["managers"]),
          ],
        } },
    ],
    roles: { realm: [{ name: "manager" }] },
    users: [
      { username: "ann", enabled: true, groups: ["/staff"], realmRoles: ["manager"],
        credentials: [{ type: "password", value: "ann-pw" }] },
      { username: "sam", enabled: true, groups: ["/staff"], credentials: [{ type: "password", value: "sam-pw" }] },
      { username: "eve", enabled: true, credentials: [{ type: "password", value: "eve-pw" }] },
    ],
  });

  const config = { realm: "shop", "auth-server-url": base, resource: "orders-api",
    credentials: { secret: "orders-secret" }, "bearer-only": true, "ssl-required": "none" };
  const keycloak = new Keycloak({}, config);
  const app = express();
  app.use(keycloak.middleware());
  app.get("/orders", keycloak.protect(), keycloak.enforcer("Orders:view"), (req, res) =>
    res.json({ permissions: req.permissions }));
  app.post("/orders/1/cancel", keycloak.protect(), keycloak.enforcer("Orders:cancel"), (_req, res) => res.json({ ok: true }));
  // The enforcer validates the RPT as a grant and checks its permissions.
  app.get("/rpt", keycloak.protect(), keycloak.enforcer("Orders:cancel", { response_mode: "token" }), (_req, res) =>
    res.json({ ok: true }));
  await new Promise((resolve) => { server = app.listen(0, "127.0.0.1", resolve); });
  appUrl = `http://127.0.0.1:${server.address().port}`;
});

after(() => { server?.close(); gatehouse?.stop(); });

const tokenOf = async (username, password) => {
  const r = await fetch(`${base}/realms/shop/protocol/openid-connect/token`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ grant_type: "password", client_id: "web", username, password }),
  });
  assert.equal(r.status, 200);
  return (await r.json()).access_token;
};

const call = (method, path, token) =>
  fetch(`${appUrl}${path}`, { method, headers: token ? { authorization: `Bearer ${token}` } : {} });

test("the policy enforcer admits who the resource server's permissions grant, and no one else", async () => {
  const ann = await tokenOf("ann", "ann-pw");
  const sam = await tokenOf("sam", "sam-pw");
  const eve = await tokenOf("eve", "eve-pw");
  const listed = await call("GET", "/orders", ann);
  assert.equal(listed.status, 200);
  const { permissions } = await listed.json();
  assert.ok(permissions.some((p) => p.rsname === "Orders" && p.scopes.includes("view")), JSON.stringify(permissions));
  assert.equal((await call("GET", "/orders", sam)).status, 200);
  assert.equal((await call("GET", "/orders", eve)).status, 403);
  assert.equal((await call("POST", "/orders/1/cancel", ann)).status, 200);
  assert.equal((await call("POST", "/orders/1/cancel", sam)).status, 403, "the manager role is required");
  // No token at all never reaches the enforcer.
  assert.equal((await call("GET", "/orders")).status, 403);
});

test("with response_mode=token the enforcer takes the RPT and reads its permissions", async () => {
  assert.equal((await call("GET", "/rpt", await tokenOf("ann", "ann-pw"))).status, 200);
  assert.equal((await call("GET", "/rpt", await tokenOf("sam", "sam-pw"))).status, 403);
});
