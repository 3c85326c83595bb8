// Drives Gatehouse with Keycloak's official admin client
// (@keycloak/keycloak-admin-client, pinned in package.json) through the
// operations Gatehouse supports. Starts the real binary on ephemeral ports
// with a temporary data directory.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import KcAdminClient from "@keycloak/keycloak-admin-client";
import { startGatehouse } from "../harness.mjs";

let gatehouse, baseUrl, kc;

before(async () => {
  gatehouse = await startGatehouse("compat-admin");
  baseUrl = gatehouse.base;
  kc = new KcAdminClient({ baseUrl, realmName: "master" });
  await kc.auth({ username: "admin", password: "compat-admin", grantType: "password", clientId: "admin-cli" });
});

after(() => gatehouse?.stop());

test("realms", async () => {
  await kc.realms.create({ realm: "compat", enabled: true, displayName: "Compat", accessTokenLifespan: 120 });
  const r = await kc.realms.findOne({ realm: "compat" });
  assert.equal(r.realm, "compat");
  assert.equal(r.accessTokenLifespan, 120);
  // Events start off, as in Keycloak (realms.spec "get events config");
  // enabling them is the spec's next step.
  const events = await kc.realms.getConfigEvents({ realm: "compat" });
  assert.equal(events.adminEventsEnabled, false);
  assert.equal(events.eventsEnabled, false);
  await kc.realms.updateConfigEvents({ realm: "compat" }, { ...events, eventsEnabled: true, adminEventsEnabled: true });
  assert.equal((await kc.realms.getConfigEvents({ realm: "compat" })).eventsEnabled, true);
  await kc.realms.update({ realm: "compat" }, { displayName: "Compat 2", bruteForceProtected: true });
  assert.equal((await kc.realms.findOne({ realm: "compat" })).displayName, "Compat 2");
  const all = await kc.realms.find();
  assert.ok(all.some((x) => x.realm === "compat") && all.some((x) => x.realm === "master"));
  assert.equal((await kc.realms.findOne({ realm: "nope" })) ?? null, null, "not found is null");
  const keys = await kc.realms.getKeys({ realm: "compat" });
  assert.ok(keys.keys.length >= 1);
  await kc.realms.create({ realm: "doomed" });
  await kc.realms.del({ realm: "doomed" });
  assert.equal((await kc.realms.findOne({ realm: "doomed" })) ?? null, null, "not found is null");
});

test("clients, secrets, service accounts, mappers, client roles", async () => {
  kc.setConfig({ realmName: "compat" });
  const { id } = await kc.clients.create({ clientId: "api", secret: "s3cret", serviceAccountsEnabled: true, directAccessGrantsEnabled: true, redirectUris: ["https://app.example/cb"] });
  assert.ok(id);
  const [c] = await kc.clients.find({ clientId: "api" });
  assert.equal(c.id, id);
  assert.equal((await kc.clients.findOne({ id })).clientId, "api");
  await kc.clients.update({ id }, { ...c, description: "the API" });
  assert.equal((await kc.clients.findOne({ id })).description, "the API");
  assert.equal((await kc.clients.getClientSecret({ id })).value, "s3cret");
  const fresh = await kc.clients.generateNewClientSecret({ id });
  assert.notEqual(fresh.value, "s3cret");
  const sa = await kc.clients.getServiceAccountUser({ id });
  assert.equal(sa.username, "service-account-api");
  await kc.clients.addProtocolMapper({ id }, { name: "aud", protocol: "openid-connect", protocolMapper: "oidc-audience-mapper", config: { "included.custom.audience": "orders", "access.token.claim": "true" } });
  const mappers = await kc.clients.listProtocolMappers({ id });
  assert.equal(mappers.length, 1);
  await kc.clients.createRole({ id, name: "writer", description: "writes" });
  const roles = await kc.clients.listRoles({ id });
  assert.deepEqual(roles.map((r) => r.name), ["writer"]);
  assert.equal((await kc.clients.findRole({ id, roleName: "writer" })).description, "writes");
  await kc.clients.updateRole({ id, roleName: "writer" }, { name: "writer", description: "writes more" });
  assert.equal((await kc.clients.findRole({ id, roleName: "writer" })).description, "writes more");
  const { id: tmp } = await kc.clients.create({ clientId: "tmp", publicClient: true });
  await kc.clients.del({ id: tmp });
  assert.equal((await kc.clients.find({ clientId: "tmp" })).length, 0);
});

test("client scopes, their mappers, client and realm default scopes", async () => {
  kc.setConfig({ realmName: "compat" });
  const builtin = await kc.clientScopes.find();
  for (const n of ["profile", "email", "roles", "offline_access"]) assert.ok(builtin.some((s) => s.name === n), n);
  const { id } = await kc.clientScopes.create({ name: "reports", protocol: "openid-connect", attributes: { "include.in.token.scope": "true" } });
  assert.ok(id);
  assert.equal((await kc.clientScopes.findOneByName({ name: "reports" })).id, id);
  await kc.clientScopes.addProtocolMapper({ id }, { name: "aud", protocol: "openid-connect", protocolMapper: "oidc-audience-mapper", config: { "included.custom.audience": "reports-api", "access.token.claim": "true" } });
  await kc.clientScopes.addMultipleProtocolMappers({ id }, [
    { name: "tier", protocol: "openid-connect", protocolMapper: "oidc-hardcoded-claim-mapper", config: { "claim.name": "tier", "claim.value": "gold" } },
  ]);
  const mappers = await kc.clientScopes.listProtocolMappers({ id });
  assert.deepEqual(mappers.map((m) => m.name).sort(), ["aud", "tier"]);
  const tier = await kc.clientScopes.findProtocolMapperByName({ id, name: "tier" });
  await kc.clientScopes.delProtocolMapper({ id, mapperId: tier.id });
  assert.equal((await kc.clientScopes.listProtocolMappers({ id })).length, 1);
  await kc.clientScopes.update({ id }, { name: "reports", description: "monthly reports" });
  assert.equal((await kc.clientScopes.findOne({ id })).description, "monthly reports");

  const { id: client } = await kc.clients.create({ clientId: "reporter", publicClient: true });
  await kc.clients.addOptionalClientScope({ id: client, clientScopeId: id });
  assert.ok((await kc.clients.listOptionalClientScopes({ id: client })).some((s) => s.id === id));
  await kc.clients.delOptionalClientScope({ id: client, clientScopeId: id });
  await kc.clients.addDefaultClientScope({ id: client, clientScopeId: id });
  assert.ok((await kc.clients.listDefaultClientScopes({ id: client })).some((s) => s.name === "reports"));

  await kc.clientScopes.addDefaultOptionalClientScope({ id });
  assert.ok((await kc.clientScopes.listDefaultOptionalClientScopes()).some((s) => s.id === id));
  await kc.clientScopes.delDefaultOptionalClientScope({ id });
  assert.ok(!(await kc.clientScopes.listDefaultOptionalClientScopes()).some((s) => s.id === id));
  assert.ok((await kc.clientScopes.listDefaultClientScopes()).some((s) => s.name === "profile"));
  await kc.clientScopes.del({ id });
  assert.ok(!(await kc.clients.listDefaultClientScopes({ id: client })).some((s) => s.id === id), "deletion unlinks");
});

test("users: create with credentials, search, count, update, reset password, delete", async () => {
  kc.setConfig({ realmName: "compat" });
  const { id } = await kc.users.create({ username: "dana", email: "dana@x.io", firstName: "Dana", enabled: true, credentials: [{ type: "password", value: "pw-1", temporary: false }] });
  for (let i = 0; i < 4; i++) await kc.users.create({ username: `user${i}`, enabled: true });
  assert.equal((await kc.users.find({ username: "dana", exact: true }))[0].id, id);
  assert.equal((await kc.users.find({ email: "dana@x.io" }))[0].username, "dana");
  assert.deepEqual((await kc.users.find({ search: "user", first: 1, max: 2 })).map((u) => u.username), ["user1", "user2"]);
  assert.equal(await kc.users.count(), 5);
  await kc.users.update({ id }, { firstName: "Dana J." });
  assert.equal((await kc.users.findOne({ id })).firstName, "Dana J.");
  await kc.users.resetPassword({ id, credential: { type: "password", value: "pw-2", temporary: false } });
  // The realm's password policy: Keycloak's error and error_description.
  await kc.realms.update({ realm: "compat" }, { passwordPolicy: "length(10) and digits(1)" });
  await assert.rejects(kc.users.resetPassword({ id, credential: { type: "password", value: "short-pw", temporary: false } }),
    (e) => e.response?.status === 400 && e.responseData?.error === "invalidPasswordMinLengthMessage");
  await kc.users.resetPassword({ id, credential: { type: "password", value: "long-enough-1", temporary: false } });
  await kc.realms.update({ realm: "compat" }, { passwordPolicy: "" });
  await kc.users.resetPassword({ id, credential: { type: "password", value: "pw-2", temporary: false } });
  const creds = await kc.users.getCredentials({ id });
  assert.equal(creds[0].type, "password");
  await assert.rejects(kc.users.create({ username: "dana" }), (e) => e.response?.status === 409);
  const { id: gone } = await kc.users.create({ username: "gone" });
  await kc.users.del({ id: gone });
  assert.equal((await kc.users.findOne({ id: gone })) ?? null, null, "not found is null");
});

test("groups, subgroups, members", async () => {
  kc.setConfig({ realmName: "compat" });
  const { id: sales } = await kc.groups.create({ name: "sales" });
  const { id: emea } = await kc.groups.createChildGroup({ id: sales }, { name: "emea" });
  const groups = await kc.groups.find();
  assert.equal(groups.find((g) => g.name === "sales").id, sales);
  assert.equal((await kc.groups.findOne({ id: emea })).path, "/sales/emea");
  assert.equal((await kc.groups.listSubGroups({ parentId: sales })).length, 1);
  const [dana] = await kc.users.find({ username: "dana", exact: true });
  await kc.users.addToGroup({ id: dana.id, groupId: emea });
  assert.deepEqual((await kc.users.listGroups({ id: dana.id })).map((g) => g.name), ["emea"]);
  assert.deepEqual((await kc.groups.listMembers({ id: emea })).map((u) => u.username), ["dana"]);
  assert.equal((await kc.users.countGroups({ id: dana.id })).count, 1);
  await kc.groups.update({ id: sales }, { name: "sales-team" });
  assert.equal((await kc.groups.findOne({ id: sales })).name, "sales-team");
  await kc.users.delFromGroup({ id: dana.id, groupId: emea });
  assert.equal((await kc.users.listGroups({ id: dana.id })).length, 0);
  assert.equal((await kc.groups.count()).count, 1);
});

test("realm roles, composites, user and group role mappings", async () => {
  kc.setConfig({ realmName: "compat" });
  await kc.roles.create({ name: "reader" });
  await kc.roles.create({ name: "manager", description: "manages" });
  const reader = await kc.roles.findOneByName({ name: "reader" });
  const manager = await kc.roles.findOneByName({ name: "manager" });
  assert.equal(manager.description, "manages");
  await kc.roles.createComposite({ roleId: manager.id }, [reader]);
  assert.deepEqual((await kc.roles.getCompositeRoles({ id: manager.id })).map((r) => r.name), ["reader"]);
  assert.equal((await kc.roles.findOneById({ id: manager.id })).name, "manager");
  await kc.roles.updateByName({ name: "manager" }, { name: "manager", description: "manages a lot" });
  assert.equal((await kc.roles.findOneByName({ name: "manager" })).description, "manages a lot");
  const [dana] = await kc.users.find({ username: "dana", exact: true });
  await kc.users.addRealmRoleMappings({ id: dana.id, roles: [{ id: manager.id, name: manager.name }] });
  assert.ok((await kc.users.listRealmRoleMappings({ id: dana.id })).some((r) => r.name === "manager"));
  const effective = (await kc.users.listCompositeRealmRoleMappings({ id: dana.id })).map((r) => r.name);
  assert.ok(effective.includes("reader") && effective.includes("manager"));
  assert.deepEqual((await kc.roles.findUsersWithRole({ name: "manager" })).map((u) => u.username), ["dana"]);
  const [api] = await kc.clients.find({ clientId: "api" });
  const writer = await kc.clients.findRole({ id: api.id, roleName: "writer" });
  await kc.users.addClientRoleMappings({ id: dana.id, clientUniqueId: api.id, roles: [{ id: writer.id, name: writer.name }] });
  assert.deepEqual((await kc.users.listClientRoleMappings({ id: dana.id, clientUniqueId: api.id })).map((r) => r.name), ["writer"]);
  const all = await kc.users.listRoleMappings({ id: dana.id });
  assert.ok(all.realmMappings.some((r) => r.name === "manager"));
  assert.ok(all.clientMappings.api.mappings.some((r) => r.name === "writer"));
  await kc.users.delRealmRoleMappings({ id: dana.id, roles: [{ id: manager.id, name: manager.name }] });
  assert.ok(!(await kc.users.listRealmRoleMappings({ id: dana.id })).some((r) => r.name === "manager"));
  const [sales] = await kc.groups.find({ search: "sales" });
  await kc.groups.addRealmRoleMappings({ id: sales.id, roles: [{ id: reader.id, name: reader.name }] });
  assert.deepEqual((await kc.groups.listRealmRoleMappings({ id: sales.id })).map((r) => r.name), ["reader"]);
  // Composites mixing realm and client roles, listed by kind.
  await kc.roles.createComposite({ roleId: manager.id }, [writer]);
  assert.deepEqual((await kc.roles.getCompositeRolesForRealm({ id: manager.id })).map((r) => r.name), ["reader"]);
  assert.deepEqual((await kc.roles.getCompositeRolesForClient({ id: manager.id, clientId: api.id })).map((r) => r.name), ["writer"]);
  await kc.roles.delCompositeRoles({ id: manager.id }, [writer]);
  assert.deepEqual((await kc.roles.getCompositeRoles({ id: manager.id })).map((r) => r.name), ["reader"]);
  await kc.roles.delByName({ name: "reader" });
  assert.equal((await kc.roles.findOneByName({ name: "reader" })) ?? null, null, "not found is null");
});

test("sessions and events", async () => {
  kc.setConfig({ realmName: "compat" });
  const res = await fetch(`${baseUrl}/realms/compat/protocol/openid-connect/token`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ grant_type: "password", client_id: "api", client_secret: (await kc.clients.getClientSecret({ id: (await kc.clients.find({ clientId: "api" }))[0].id })).value, username: "dana", password: "pw-2" }),
  });
  assert.equal(res.status, 200);
  const [dana] = await kc.users.find({ username: "dana", exact: true });
  const sessions = await kc.users.listSessions({ id: dana.id });
  assert.equal(sessions.length, 1);
  const api = (await kc.clients.find({ clientId: "api" }))[0];
  assert.equal((await kc.clients.listSessions({ id: api.id }))[0].username, "dana");
  assert.equal((await kc.clients.getSessionCount({ id: api.id })).count, 1);
  const stats = await kc.realms.getClientSessionStats({ realm: "compat" });
  assert.equal(stats.find((r) => r.clientId === "api").active, "1");
  await kc.users.logout({ id: dana.id });
  assert.equal((await kc.users.listSessions({ id: dana.id })).length, 0);
  const events = await kc.realms.findEvents({ realm: "compat", type: "LOGIN" });
  assert.ok(events.some((e) => e.userId === dana.id));
  const adminEvents = await kc.realms.findAdminEvents({ realm: "compat" });
  assert.ok(adminEvents.length > 0);
  await kc.realms.logoutAll({ realm: "compat" });
});

test("attack detection: a locked user's status, unlock one, unlock all", async () => {
  kc.setConfig({ realmName: "compat" });
  await kc.realms.update({ realm: "compat" }, { bruteForceProtected: true, failureFactor: 2, waitIncrementSeconds: 60 });
  const [dana] = await kc.users.find({ username: "dana", exact: true });
  const secret = (await kc.clients.getClientSecret({ id: (await kc.clients.find({ clientId: "api" }))[0].id })).value;
  const login = (password) => fetch(`${baseUrl}/realms/compat/protocol/openid-connect/token`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ grant_type: "password", client_id: "api", client_secret: secret, username: "dana", password }),
  });
  for (let i = 0; i < 2; i++) assert.equal((await login("wrong")).status, 401);
  const status = await kc.attackDetection.findOne({ id: dana.id });
  assert.equal(status.disabled, true);
  assert.ok(status.numFailures >= 2);
  assert.equal((await login("pw-2")).status, 401, "locked");
  await kc.attackDetection.del({ id: dana.id });
  assert.equal((await kc.attackDetection.findOne({ id: dana.id })).numFailures, 0);
  assert.equal((await login("pw-2")).status, 200);
  await kc.attackDetection.delAll();
  await kc.realms.update({ realm: "compat" }, { bruteForceProtected: false });
});

test("server info, default groups, events config, effective and available role mappings", async () => {
  const info = await kc.serverInfo.find();
  assert.equal(info.systemInfo.version, "26.0.0");
  kc.setConfig({ realmName: "compat" });
  const { id: ops } = await kc.groups.create({ name: "ops" });
  await kc.realms.addDefaultGroup({ realm: "compat", id: ops });
  assert.deepEqual((await kc.realms.getDefaultGroups({ realm: "compat" })).map((g) => g.path), ["/ops"]);
  const { id: fresh } = await kc.users.create({ username: "fresh", enabled: true });
  assert.deepEqual((await kc.users.listGroups({ id: fresh })).map((g) => g.name), ["ops"]);
  await kc.realms.removeDefaultGroup({ realm: "compat", id: ops });
  assert.equal((await kc.realms.getDefaultGroups({ realm: "compat" })).length, 0);

  await kc.realms.updateConfigEvents({ realm: "compat" }, { eventsEnabled: true, enabledEventTypes: ["LOGIN"], adminEventsEnabled: true });
  const cfg = await kc.realms.getConfigEvents({ realm: "compat" });
  assert.equal(cfg.eventsEnabled, true);
  assert.deepEqual(cfg.enabledEventTypes, ["LOGIN"]);

  await kc.roles.create({ name: "pager" });
  const pager = await kc.roles.findOneByName({ name: "pager" });
  await kc.groups.addRealmRoleMappings({ id: ops, roles: [{ id: pager.id, name: "pager" }] });
  assert.ok((await kc.groups.listCompositeRealmRoleMappings({ id: ops })).some((r) => r.name === "pager"));
  assert.ok((await kc.users.listCompositeRealmRoleMappings({ id: fresh })).some((r) => r.name === "pager"));
  assert.ok(!(await kc.users.listAvailableRealmRoleMappings({ id: fresh })).some((r) => r.name === "pager"));
  const api = (await kc.clients.find({ clientId: "api" }))[0];
  const clientRoles = (await kc.clients.listRoles({ id: api.id })).map((r) => r.name).sort();
  const available = (await kc.users.listAvailableClientRoleMappings({ id: fresh, clientUniqueId: api.id })).map((r) => r.name).sort();
  assert.deepEqual(available, clientRoles);
  assert.deepEqual(await kc.users.listCompositeClientRoleMappings({ id: fresh, clientUniqueId: api.id }), []);
  await kc.users.del({ id: fresh });
});

test("partial import (skip existing) and partial export", async () => {
  const res = await kc.realms.partialImport({
    realm: "compat",
    rep: {
      ifResourceExists: "SKIP",
      users: [{ username: "dana" }, { username: "imported-user", enabled: true }],
      roles: { realm: [{ name: "imported-role" }] },
    },
  });
  assert.equal(res.added, 2);
  assert.equal(res.skipped, 1);
  assert.ok(res.results.some((r) => r.resourceName === "imported-user" && r.action === "ADDED"));
  const exported = await kc.realms.export({ realm: "compat", exportClients: true, exportGroupsAndRoles: true });
  assert.equal(exported.realm, "compat");
  assert.equal(exported.users, undefined);
  assert.ok(exported.roles.realm.some((r) => r.name === "imported-role"));
  assert.ok(exported.clients.every((c) => c.secret === undefined || c.secret === "**********"));
});

test("role scope mappings of a client without full scope", async () => {
  kc.setConfig({ realmName: "compat" });
  const api = (await kc.clients.find({ clientId: "api" }))[0];
  await kc.clients.update({ id: api.id }, { fullScopeAllowed: false });
  await kc.roles.create({ name: "scoped-role" });
  const role = await kc.roles.findOneByName({ name: "scoped-role" });
  await kc.clients.addRealmScopeMappings({ id: api.id }, [{ id: role.id, name: role.name }]);
  assert.deepEqual((await kc.clients.listRealmScopeMappings({ id: api.id })).map((r) => r.name), ["scoped-role"]);
  assert.equal((await kc.clients.listScopeMappings({ id: api.id })).realmMappings.length, 1);
  await kc.clients.delRealmScopeMappings({ id: api.id }, [{ id: role.id, name: role.name }]);
  assert.equal((await kc.clients.listRealmScopeMappings({ id: api.id })).length, 0);
  await kc.clients.update({ id: api.id }, { fullScopeAllowed: true });
});

test("scope mapping listings: composite and available", async () => {
  kc.setConfig({ realmName: "compat" });
  const api = (await kc.clients.find({ clientId: "api" }))[0];
  assert.equal((await kc.clients.listAvailableRealmScopeMappings({ id: api.id })).length, 0, "full scope: nothing left to map");
  await kc.clients.update({ id: api.id }, { fullScopeAllowed: false });
  const role = await kc.roles.findOneByName({ name: "scoped-role" });
  await kc.clients.addRealmScopeMappings({ id: api.id }, [{ id: role.id, name: role.name }]);
  assert.deepEqual((await kc.clients.listCompositeRealmScopeMappings({ id: api.id })).map((r) => r.name), ["scoped-role"]);
  assert.ok(!(await kc.clients.listAvailableRealmScopeMappings({ id: api.id })).some((r) => r.name === "scoped-role"));
  await kc.clients.delRealmScopeMappings({ id: api.id }, [{ id: role.id, name: role.name }]);
  await kc.clients.update({ id: api.id }, { fullScopeAllowed: true });
});

// The expectations below follow Keycloak's own admin-client test suite
// (users.spec, groups.spec, roles.spec, realms.spec), which the client's
// maintainers run against a real Keycloak.
test("user profile: read, enable unmanaged attributes, hide them again", async () => {
  kc.setConfig({ realmName: "compat" });
  const profile = await kc.users.getProfile();
  assert.deepEqual(profile.attributes.slice(0, 4).map((a) => a.name), ["username", "email", "firstName", "lastName"]);
  const { id } = await kc.users.create({ username: "profiled", email: "p@x.io", enabled: true, attributes: { key: "value", department: "sales" } });
  const current = await kc.users.findOne({ id });
  assert.deepEqual(current.attributes, { key: ["value"], department: ["sales"] });
  // Attribute search (`q`), custom and built-in, equals what findOne shows.
  const { access, ...shown } = current;
  assert.ok(access);
  assert.deepEqual((await kc.users.find({ q: "key:VALUE" })).map((u) => u.id), [id]);
  assert.deepEqual((({ access: _, ...rest }) => rest)((await kc.users.find({ q: "key:value" }))[0]), shown);
  assert.deepEqual(Object.keys((await kc.users.find({ q: "key:value" }))[0]).sort(), Object.keys(current).sort());
  assert.deepEqual((await kc.users.find({ q: `email:${current.email}` })).map((u) => u.id), [id]);
  assert.equal((await kc.users.find({ q: "key:other" })).length, 0);
  assert.equal(await kc.users.count({ email: "p@x.io" }), 1);
  await assert.rejects(kc.users.find({ q: "novalue" }), (e) => e.response?.status === 400);

  // Only `department` declared, no policy: undeclared attributes are hidden and kept.
  const declared = { ...profile, attributes: [...profile.attributes, { name: "department", displayName: "Department", permissions: { view: ["admin"], edit: ["admin"] } }] };
  delete declared.unmanagedAttributePolicy;
  const stored = await kc.users.updateProfile(declared);
  assert.equal(stored.unmanagedAttributePolicy, undefined);
  assert.deepEqual((await kc.users.findOne({ id })).attributes, { department: ["sales"] });
  await kc.users.update({ id }, { attributes: { department: ["support"], key: ["changed"] } });
  assert.ok((await kc.users.getProfileMetadata()).attributes.some((a) => a.name === "department" && a.readOnly === false));
  const updated = await kc.users.updateProfile({ ...declared, unmanagedAttributePolicy: "ENABLED" });
  assert.equal(updated.unmanagedAttributePolicy, "ENABLED");
  assert.deepEqual((await kc.users.findOne({ id })).attributes, { department: ["support"], key: ["value"] }, "a hidden attribute is not written");
  assert.deepEqual(await kc.users.getUnmanagedAttributes({ id }), { key: ["value"] }, "only what the profile does not declare");
  await assert.rejects(kc.users.updateProfile({ attributes: [{ name: "username" }] }), (e) => e.response?.status === 400);
  const [brief] = await kc.users.find({ username: "profiled", exact: true, briefRepresentation: true });
  assert.equal(brief.username, "profiled");
  assert.equal(brief.attributes, undefined, "brief: no attributes");
  assert.equal(brief.requiredActions, undefined);
  await kc.users.del({ id });
});

test("user credentials, groups, consents and sessions as Keycloak's users spec uses them", async () => {
  kc.setConfig({ realmName: "compat" });
  const [dana] = await kc.users.find({ username: "dana", exact: true });
  const [cred] = await kc.users.getCredentials({ id: dana.id });
  await kc.users.updateCredentialLabel({ id: dana.id, credentialId: cred.id }, "New user label");
  assert.deepEqual((await kc.users.getCredentials({ id: dana.id })).map((c) => c.userLabel), ["New user label"]);
  assert.deepEqual(await kc.users.getUserStorageCredentialTypes({ id: dana.id }), []);
  assert.deepEqual(await kc.users.listFederatedIdentities({ id: dana.id }), []);
  // A user who lost their authenticator app: removeTotp drops the OTP credential only.
  const otp = { type: "otp", secretData: JSON.stringify({ value: "lostPhoneSecret1234" }),
    credentialData: JSON.stringify({ subType: "totp", digits: 6, counter: 0, period: 30, algorithm: "HmacSHA1" }) };
  const { id: lost } = await kc.users.create({ username: "lost-phone", enabled: true, credentials: [{ type: "password", value: "pw" }, otp] });
  assert.equal((await kc.users.findOne({ id: lost })).totp, true);
  // The admin console's drag and drop of credentials.
  const types = async () => (await kc.users.getCredentials({ id: lost })).map((c) => c.type);
  const [pw, code] = await kc.users.getCredentials({ id: lost });
  assert.deepEqual([pw.type, code.type], ["password", "otp"]);
  await kc.users.moveCredentialPositionUp({ id: lost, credentialId: code.id });
  assert.deepEqual(await types(), ["otp", "password"]);
  await kc.users.moveCredentialPositionDown({ id: lost, credentialId: code.id, newPreviousCredentialId: pw.id });
  assert.deepEqual(await types(), ["password", "otp"]);
  await assert.rejects(kc.users.moveCredentialPositionUp({ id: lost, credentialId: "nope" }), (e) => e.response?.status === 404);
  await kc.users.removeTotp({ id: lost });
  assert.deepEqual((await kc.users.getCredentials({ id: lost })).map((c) => c.type), ["password"]);
  assert.equal((await kc.users.findOne({ id: lost })).totp, false);
  // Mail: Keycloak's checks of the user first (400 without an email), 500 without a mail server,
  // then real messages to an SMTP server started here.
  await assert.rejects(kc.users.executeActionsEmail({ id: lost, actions: ["UPDATE_PASSWORD"] }), (e) => e.response?.status === 400);
  await kc.users.update({ id: lost }, { email: "lost@phone.io" });
  await assert.rejects(kc.users.executeActionsEmail({ id: lost, actions: ["UPDATE_PASSWORD"], lifespan: 3600 }), (e) => e.response?.status === 500);
  const smtp = await smtpSink();
  const smtpServer = { host: "127.0.0.1", port: String(smtp.port), from: "idp@compat.io", auth: "true", user: "mailer", password: "smtp-secret" };
  await kc.realms.update({ realm: "compat" }, { smtpServer });
  assert.equal((await kc.realms.findOne({ realm: "compat" })).smtpServer.password, "**********");
  await kc.users.executeActionsEmail({ id: lost, actions: ["UPDATE_PASSWORD"], lifespan: 3600 });
  const actions = await smtp.next();
  assert.deepEqual(actions.to, ["lost@phone.io"]);
  assert.match(actions.data, /Subject: Update Your Account/);
  assert.match(actions.data, /login-actions\/action-token\?key=/);
  await assert.rejects(kc.users.executeActionsEmail({ id: lost, actions: ["NOT_AN_ACTION"] }), (e) => e.response?.status === 400);
  await kc.users.sendVerifyEmail({ id: lost });
  assert.match((await smtp.next()).data, /Subject: Verify email/);
  // testSMTPConnection mails the calling admin (master's `admin`), the mask standing for the stored password.
  const [admin] = await kc.users.find({ realm: "master", username: "admin", exact: true });
  await kc.users.update({ realm: "master", id: admin.id }, { email: "admin@compat.io" });
  await kc.realms.testSMTPConnection({ realm: "compat" }, { ...smtpServer, password: "**********" });
  const probe = await smtp.next();
  assert.deepEqual(probe.to, ["admin@compat.io"]);
  assert.equal(probe.auth, "\0mailer\0smtp-secret");
  smtp.close();
  await kc.users.del({ id: lost });

  const { id: g1 } = await kc.groups.create({ name: "cool-group", description: "cool people" });
  assert.equal((await kc.groups.findOne({ id: g1 })).description, "cool people");
  assert.equal((await kc.groups.count({ search: "fake-group" })).count, 0);
  assert.equal((await kc.groups.count({ search: "cool" })).count, 1);
  await kc.users.addToGroup({ id: dana.id, groupId: g1 });
  assert.equal((await kc.users.countGroups({ id: dana.id, search: "cool-group" })).count, 1);
  assert.equal((await kc.users.countGroups({ id: dana.id, search: "fake-group" })).count, 0);
  assert.deepEqual((await kc.users.listGroups({ id: dana.id, search: "cool" })).map((g) => g.name), ["cool-group"]);
  await assert.rejects(kc.users.delFromGroup({ id: dana.id, groupId: "fake-group-id" }), (e) => e.response?.status === 404);
  await kc.users.delFromGroup({ id: dana.id, groupId: g1 });
  await kc.groups.del({ id: g1 });

  // An offline token is a grant Keycloak lists with the consents; revoking it ends the offline session.
  const api = (await kc.clients.find({ clientId: "api" }))[0];
  const secret = (await kc.clients.getClientSecret({ id: api.id })).value;
  const res = await fetch(`${baseUrl}/realms/compat/protocol/openid-connect/token`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ grant_type: "password", client_id: "api", client_secret: secret, username: "dana", password: "pw-2", scope: "offline_access" }),
  });
  assert.equal(res.status, 200);
  const offline = (await res.json()).refresh_token;
  assert.equal((await kc.users.listOfflineSessions({ id: dana.id, clientId: api.id })).length, 1);
  const consents = await kc.users.listConsents({ id: dana.id });
  assert.deepEqual(consents.map((c) => [c.clientId, c.additionalGrants[0].key]), [["api", "Offline Token"]]);
  await kc.users.revokeConsent({ id: dana.id, clientId: "api" });
  assert.equal((await kc.users.listOfflineSessions({ id: dana.id, clientId: api.id })).length, 0);
  const again = await fetch(`${baseUrl}/realms/compat/protocol/openid-connect/token`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ grant_type: "refresh_token", client_id: "api", client_secret: secret, refresh_token: offline }),
  });
  assert.equal(again.status, 400, "the revoked offline token is refused");
  await assert.rejects(kc.users.revokeConsent({ id: dana.id, clientId: "api" }), (e) => e.response?.status === 404);
});

test("roles spec: created name from Location, brief listings, composite search", async () => {
  kc.setConfig({ realmName: "compat" });
  const created = await kc.roles.create({ name: "cool-role" });
  assert.equal(created.roleName, "cool-role");
  const role = await kc.roles.findOneByName({ name: "cool-role" });
  assert.deepEqual(role.attributes, {});
  await kc.roles.create({ name: "compositeRole" });
  const child = await kc.roles.findOneByName({ name: "compositeRole" });
  await kc.roles.createComposite({ roleId: role.id }, [child]);
  const { attributes, ...brief } = child;
  assert.ok(attributes);
  assert.deepEqual(await kc.roles.getCompositeRoles({ id: role.id }), [brief]);
  assert.deepEqual(await kc.roles.getCompositeRoles({ id: role.id, search: "not" }), []);
  assert.deepEqual((await kc.roles.find({ search: "cool", briefRepresentation: false })).map((r) => [r.name, !!r.attributes]), [["cool-role", true]]);
  const [dana] = await kc.users.find({ username: "dana", exact: true });
  await kc.users.addRealmRoleMappings({ id: dana.id, roles: [{ id: role.id, name: role.name }] });
  assert.ok((await kc.users.listRealmRoleMappings({ id: dana.id })).some((r) => JSON.stringify(r) === JSON.stringify({ ...brief, id: role.id, name: role.name, composite: true })));
  await kc.users.delRealmRoleMappings({ id: dana.id, roles: [{ id: role.id, name: role.name }] });
  await kc.roles.delByName({ name: "compositeRole" });
  await kc.roles.delByName({ name: "cool-role" });
});

test("realms spec: whoami, events clearing, management permissions, adapter config", async () => {
  kc.setConfig({ realmName: "master" });
  const me = await kc.whoAmI.find({ currentRealm: "compat" });
  assert.equal(me.realm, "master");
  assert.equal(me.createRealm, true);
  assert.ok(me.realm_access.compat.includes("manage-users"));
  assert.ok((await kc.users.listAvailableRealmRoleMappings({ id: me.userId })).length === 0, "admin holds create-realm through admin");
  kc.setConfig({ realmName: "compat" });
  assert.ok((await kc.realms.findEvents({ realm: "compat" })).length > 0);
  await kc.realms.clearEvents({ realm: "compat" });
  await kc.realms.clearAdminEvents({ realm: "compat" });
  assert.deepEqual(await kc.realms.findEvents({ realm: "compat" }), []);
  assert.deepEqual(await kc.realms.findAdminEvents({ realm: "compat" }), []);
  assert.deepEqual(await kc.realms.getUsersManagementPermissions({ realm: "compat" }), { enabled: false });
  // Fine-grained admin permissions: off everywhere, and enabling them is refused, not ignored.
  const [someClient] = await kc.clients.find({ clientId: "api" });
  const [someGroup] = await kc.groups.find();
  const someRole = (await kc.roles.find())[0];
  assert.deepEqual(await kc.clients.listFineGrainPermissions({ id: someClient.id }), { enabled: false });
  assert.deepEqual(await kc.groups.listPermissions({ id: someGroup.id }), { enabled: false });
  assert.deepEqual(await kc.roles.listPermissions({ id: someRole.id }), { enabled: false });
  assert.deepEqual(await kc.groups.updatePermission({ id: someGroup.id }, { enabled: false }), { enabled: false });
  await assert.rejects(kc.clients.updateFineGrainPermission({ id: someClient.id }, { enabled: true }), (e) => e.response?.status === 400);
  await assert.rejects(kc.realms.updateUsersManagementPermissions({ realm: "compat", enabled: true }), (e) => e.response?.status === 400);
  await assert.rejects(kc.groups.listPermissions({ id: "no-such-group" }), (e) => e.response?.status === 404);
  // cache.spec.ts: each clear answers 204 (an error status would throw;
  // the client resolves with an empty body).
  for (const clear of ["clearUserCache", "clearKeysCache", "clearCrlCache", "clearRealmCache"]) {
    assert.ok(!(await kc.cache[clear]({ realm: "compat" })), clear);
  }
  const api = (await kc.clients.find({ clientId: "api" }))[0];
  const json = JSON.parse(await kc.clients.getInstallationProviders({ id: api.id, providerId: "keycloak-oidc-keycloak-json" }).then((x) => (typeof x === "string" ? x : JSON.stringify(x))));
  assert.equal(json.resource, "api");
  assert.equal(json.realm, "compat");
  assert.equal(json.credentials.secret, (await kc.clients.getClientSecret({ id: api.id })).value);
  const xml = await kc.clients.getInstallationProviders({ id: api.id, providerId: "keycloak-oidc-jboss-subsystem" });
  assert.equal(typeof xml, "string");
  assert.ok(xml.includes("<resource>api</resource>"));
});

test("client scope evaluation: mappers, granted roles, example tokens", async () => {
  kc.setConfig({ realmName: "compat" });
  const api = (await kc.clients.find({ clientId: "api" }))[0];
  const [dana] = await kc.users.find({ username: "dana", exact: true });
  const mappers = await kc.clients.evaluateListProtocolMapper({ id: api.id, scope: "openid" });
  assert.ok(mappers.some((m) => m.mapperName === "aud" && m.containerType === "client"), "the client's own mapper");
  assert.ok(mappers.some((m) => m.containerName === "profile" && m.containerType === "client-scope"));
  const granted = await kc.clients.evaluatePermission({ id: api.id, roleContainer: "compat", type: "granted", scope: "openid" });
  assert.ok(granted.some((r) => r.name === "offline_access"), "full scope: every realm role");
  const at = await kc.clients.evaluateGenerateAccessToken({ id: api.id, userId: dana.id, scope: "openid" });
  assert.equal(at.sub, dana.id);
  assert.equal(at.azp, "api");
  // The audience mapper's, and account's (its roles come with the default
  // roles), as a Keycloak token has both.
  assert.deepEqual([at.aud].flat().sort(), ["account", "orders"], "the audience mapper applies");
  assert.equal(at.preferred_username, "dana");
  const idt = await kc.clients.evaluateGenerateIdToken({ id: api.id, userId: dana.id, scope: "openid" });
  assert.equal(idt.typ, "ID");
  assert.equal(idt.aud, "api");
  const ui = await kc.clients.evaluateGenerateUserInfo({ id: api.id, userId: dana.id, scope: "openid" });
  assert.equal(ui.sub, dana.id);
  assert.equal(ui.preferred_username, "dana");
  await assert.rejects(kc.clients.evaluateGenerateAccessToken({ id: api.id, userId: dana.id, scope: "no-such-scope" }), (e) => e.response?.status === 400);
});

test("client scope scope mappings, as Keycloak's clientScopes spec uses them", async () => {
  kc.setConfig({ realmName: "compat" });
  const { id } = await kc.clientScopes.create({ name: "best-of-the-bests-scope", protocol: "openid-connect" });
  const scope = await kc.clientScopes.findOneByName({ name: "best-of-the-bests-scope" });
  assert.deepEqual(await kc.clientScopes.findOne({ id }), scope);
  assert.equal(await kc.clientScopes.findOneByName({ name: "I do not exist" }), undefined);
  const { id: clientUniqueId } = await kc.clients.create({ clientId: "scopeMappings-dummy" });
  await kc.clients.createRole({ id: clientUniqueId, name: "scopeMappingsRole-dummy" });
  const available = (await kc.clientScopes.listAvailableClientScopeMappings({ id, client: clientUniqueId })).filter((r) => !r.composite);
  assert.deepEqual(available.map((r) => r.name), ["scopeMappingsRole-dummy"]);
  await kc.clientScopes.addClientScopeMappings({ id, client: clientUniqueId }, available);
  assert.deepEqual(await kc.clientScopes.listClientScopeMappings({ id, client: clientUniqueId }), available);
  assert.equal((await kc.clientScopes.listCompositeClientScopeMappings({ id, client: clientUniqueId })).length, 1);
  assert.equal((await kc.clientScopes.listScopeMappings({ id })).clientMappings["scopeMappings-dummy"].mappings.length, 1);
  await kc.clientScopes.delClientScopeMappings({ id, client: clientUniqueId }, available);
  assert.deepEqual(await kc.clientScopes.listClientScopeMappings({ id, client: clientUniqueId }), []);
  const realmAvailable = await kc.clientScopes.listAvailableRealmScopeMappings({ id });
  await kc.clientScopes.addRealmScopeMappings({ id }, realmAvailable);
  assert.deepEqual((await kc.clientScopes.listRealmScopeMappings({ id })).map((r) => r.name).sort(), realmAvailable.map((r) => r.name).sort());
  await kc.clientScopes.delRealmScopeMappings({ id }, await kc.clientScopes.listRealmScopeMappings({ id }));
  assert.deepEqual(await kc.clientScopes.listRealmScopeMappings({ id }), []);
  await kc.clients.del({ id: clientUniqueId });
  await kc.clientScopes.delByName({ name: "best-of-the-bests-scope" });
});

test("group user integration, as Keycloak's groupUser spec checks it", async () => {
  kc.setConfig({ realmName: "compat" });
  const group = await kc.groups.create({ name: "group-user-spec" });
  const currentGroup = await kc.groups.findOne({ id: group.id });
  const user = await kc.users.create({ username: "group-user-spec", email: "gus@keycloak.org", enabled: true });
  const currentUser = await kc.users.findOne({ id: user.id });
  assert.deepEqual(await kc.users.listGroups({ id: currentUser.id }), []);
  await kc.users.addToGroup({ id: currentUser.id, groupId: currentGroup.id });
  const { id, name, path } = currentGroup;
  assert.deepEqual((await kc.users.listGroups({ id: currentUser.id }))[0], { id, name, path });
  assert.ok("subGroupCount" in (await kc.users.listGroups({ id: currentUser.id, briefRepresentation: false }))[0]);
  const { access, ...withoutAccess } = currentUser;
  assert.ok(access);
  assert.deepEqual((await kc.groups.listMembers({ id: currentGroup.id }))[0], withoutAccess);
  await kc.users.delFromGroup({ id: currentUser.id, groupId: currentGroup.id });
  assert.deepEqual(await kc.users.listGroups({ id: currentUser.id }), []);
  await kc.groups.del({ id: currentGroup.id });
  await kc.users.del({ id: currentUser.id });
});

test("required actions registry, as Keycloak's authenticationManagement spec drives it", async () => {
  await kc.realms.create({ id: "ra-spec", realm: "ra-spec", enabled: true });
  kc.setConfig({ realmName: "ra-spec" });
  const am = kc.authenticationManagement;
  await am.deleteRequiredAction({ alias: "UPDATE_PROFILE" });
  const unregistered = await am.getUnregisteredRequiredActions();
  assert.ok(unregistered.length >= 1);
  const provider = unregistered[0];
  assert.equal(provider.providerId, "UPDATE_PROFILE");
  const registered = await am.registerRequiredAction({ providerId: provider.providerId, name: provider.name });
  assert.ok(registered === "" || registered === undefined || Object.keys(registered ?? {}).length === 0);
  assert.ok(Array.isArray(await am.getRequiredActions()));
  const ra = await am.getRequiredActionForAlias({ alias: provider.providerId });
  assert.equal(ra.alias, "UPDATE_PROFILE");
  await am.updateRequiredAction({ alias: provider.providerId }, { ...ra, enabled: true, priority: 10 });
  const before = await am.getRequiredActionForAlias({ alias: provider.providerId });
  await am.lowerRequiredActionPriority({ alias: provider.providerId });
  assert.ok((await am.getRequiredActionForAlias({ alias: provider.providerId })).priority > before.priority);
  const lowered = await am.getRequiredActionForAlias({ alias: provider.providerId });
  await am.raiseRequiredActionPriority({ alias: provider.providerId });
  assert.ok((await am.getRequiredActionForAlias({ alias: provider.providerId })).priority < lowered.priority);
  // Required-action config: UPDATE_PASSWORD's max_auth_age.
  const described = await am.getRequiredActionConfigDescription({ alias: "UPDATE_PASSWORD" });
  assert.deepEqual(described.properties.map((p) => p.name), ["max_auth_age"]);
  await am.updateRequiredActionConfig({ alias: "UPDATE_PASSWORD" }, { config: { max_auth_age: "120" } });
  assert.deepEqual((await am.getRequiredActionConfig({ alias: "UPDATE_PASSWORD" })).config, { max_auth_age: "120" });
  await am.removeRequiredActionConfig({ alias: "UPDATE_PASSWORD" });
  assert.deepEqual((await am.getRequiredActionConfig({ alias: "UPDATE_PASSWORD" })).config, {});
  await assert.rejects(am.getRequiredActionConfig({ alias: "UPDATE_PROFILE" }), (e) => e.response?.status === 400);
  kc.setConfig({ realmName: "master" });
  await kc.realms.del({ realm: "ra-spec" });
});

test("authentication flows: make OTP mandatory the way admin scripts do, and the password grant follows", async () => {
  await kc.realms.create({ realm: "flows", enabled: true });
  kc.setConfig({ realmName: "flows" });
  const am = kc.authenticationManagement;
  const flows = await am.getFlows();
  assert.deepEqual(flows.map((f) => f.alias).sort(), ["browser", "direct grant"]);
  const direct = flows.find((f) => f.alias === "direct grant");
  assert.equal((await am.getFlow({ flowId: direct.id })).description, "OpenID Connect Resource Owner Grant");
  const executions = await am.getExecutions({ flow: "direct grant" });
  assert.deepEqual(executions.map((e) => [e.displayName, e.level]), [
    ["Username Validation", 0], ["Password", 0], ["Direct Grant - Conditional OTP", 0],
    ["Condition - user configured", 1], ["OTP", 1]]);
  const conditional = executions.find((e) => e.authenticationFlow);
  assert.equal(conditional.requirement, "CONDITIONAL");

  await kc.clients.create({ clientId: "cli", secret: "cli-secret", directAccessGrantsEnabled: true });
  await kc.users.create({ username: "nocode", enabled: true, credentials: [{ type: "password", value: "pw", temporary: false }] });
  const grant = () => fetch(`${baseUrl}/realms/flows/protocol/openid-connect/token`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ grant_type: "password", client_id: "cli", client_secret: "cli-secret", username: "nocode", password: "pw" }),
  });
  assert.equal((await grant()).status, 200);
  await am.updateExecution({ flow: "direct grant" }, { ...conditional, requirement: "REQUIRED" });
  assert.equal((await am.getExecutions({ flow: "direct grant" })).find((e) => e.authenticationFlow).requirement, "REQUIRED");
  const refused = await grant();
  assert.equal(refused.status, 401);
  assert.equal((await refused.json()).error, "invalid_grant");
  // A step Gatehouse does not run is refused, with the reason.
  const kerberos = (await am.getExecutions({ flow: "browser" })).find((e) => e.providerId === "auth-spnego");
  await assert.rejects(am.updateExecution({ flow: "browser" }, { ...kerberos, requirement: "ALTERNATIVE" }),
    (e) => e.response?.status === 400);
  kc.setConfig({ realmName: "master" });
  await kc.realms.del({ realm: "flows" });
});

test("a client's own direct grant flow (authenticationFlowBindingOverrides), and the brute-force settings", async () => {
  await kc.realms.create({ realm: "override", enabled: true });
  kc.setConfig({ realmName: "override" });
  const realm = await kc.realms.findOne({ realm: "override" });
  assert.equal(realm.quickLoginCheckMilliSeconds, 1000);
  assert.equal(realm.minimumQuickLoginWaitSeconds, 60);
  const am = kc.authenticationManagement;
  await am.copyFlow({ flow: "direct grant", newName: "strict" });
  const sub = (await am.getExecutions({ flow: "strict" })).find((e) => e.authenticationFlow);
  await am.updateExecution({ flow: "strict" }, { ...sub, requirement: "REQUIRED" });
  const strict = (await am.getFlows()).find((f) => f.alias === "strict");
  const { id } = await kc.clients.create({ clientId: "cli", secret: "cli-secret", directAccessGrantsEnabled: true });
  await kc.users.create({ username: "nocode", enabled: true, credentials: [{ type: "password", value: "pw", temporary: false }] });
  const grant = () => fetch(`${baseUrl}/realms/override/protocol/openid-connect/token`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ grant_type: "password", client_id: "cli", client_secret: "cli-secret", username: "nocode", password: "pw" }),
  });
  assert.equal((await grant()).status, 200);
  await kc.clients.update({ id }, { authenticationFlowBindingOverrides: { direct_grant: strict.id } });
  assert.equal((await kc.clients.findOne({ id })).authenticationFlowBindingOverrides.direct_grant, strict.id);
  assert.equal((await grant()).status, 401, "the client's flow asks for a code");
  await assert.rejects(am.deleteFlow({ flowId: strict.id }), (e) => e.response?.status === 409);
  await kc.clients.update({ id }, { authenticationFlowBindingOverrides: { direct_grant: "" } });
  assert.equal((await grant()).status, 200);
  kc.setConfig({ realmName: "master" });
  await kc.realms.del({ realm: "override" });
});

test("client policies, as Keycloak's clientPolicies spec uses them; ones that would need enforcing are refused", async () => {
  kc.setConfig({ realmName: "compat" });
  const cp = kc.clientPolicies;
  assert.deepEqual(await cp.updatePolicy({ policies: [{ name: "new_test_policy" }] }), "");
  const profiles = await cp.listProfiles({ includeGlobalProfiles: true });
  assert.deepEqual(profiles, { profiles: [], globalProfiles: [] });
  assert.deepEqual(await cp.createProfiles({ profiles: [{ name: "test", executors: [] }], globalProfiles: profiles.globalProfiles }), "");
  assert.deepEqual((await cp.listProfiles({ includeGlobalProfiles: false })).profiles.map((p) => p.name), ["test"]);
  assert.deepEqual((await cp.listPolicies()).policies.map((p) => p.name), ["new_test_policy"]);
  // An executor Gatehouse does not run, or a global profile it does not have: 400, nothing stored.
  await assert.rejects(cp.createProfiles({ profiles: [{ name: "pkce", executors: [{ executor: "pkce-enforcer", configuration: {} }] }] }),
    (e) => e.response?.status === 400);
  await assert.rejects(cp.updatePolicy({ policies: [{ name: "fapi", enabled: true, profiles: ["fapi-1-advanced"] }] }),
    (e) => e.response?.status === 400);
  assert.deepEqual((await cp.listPolicies()).policies.map((p) => p.name), ["new_test_policy"]);
  await assert.rejects(kc.realms.create({ realm: "fapi-realm", enabled: true,
    clientPolicies: { policies: [{ name: "fapi", enabled: true, profiles: ["fapi-1-advanced"], conditions: [] }] } }),
    (e) => e.response?.status === 400);
  assert.equal((await kc.realms.findOne({ realm: "fapi-realm" })) ?? null, null, "nothing created");
  await cp.updatePolicy({ policies: [] });
  await cp.createProfiles({ profiles: [] });
});

test("client initial access, as Keycloak's realms spec uses it, then a registration with the token", async () => {
  kc.setConfig({ realmName: "compat" });
  const created = await kc.realms.createClientsInitialAccess({ realm: "compat" }, { count: 1, expiration: 0 });
  assert.ok(created.token && created.id);
  assert.equal(created.remainingCount, 1);
  const listed = await kc.realms.getClientsInitialAccess({ realm: "compat" });
  const mine = listed.find((x) => x.id === created.id);
  assert.equal(mine.count, 1);
  assert.equal(mine.token, undefined, "the token is shown once");
  // What Keycloak's scripts do with it: Keycloak's default registration provider.
  const r = await fetch(`${baseUrl}/realms/compat/clients-registrations/default`, {
    method: "POST",
    headers: { authorization: `bearer ${created.token}`, "content-type": "application/json" },
    body: JSON.stringify({ clientId: "self-registered" }),
  });
  const body = await r.text();
  assert.equal(r.status, 201, body);
  const rep = JSON.parse(body);
  assert.ok(rep.id && rep.secret && rep.registrationAccessToken);
  assert.equal((await kc.clients.find({ clientId: "self-registered" }))[0].id, rep.id);
  const rotated = await kc.clients.generateRegistrationAccessToken({ id: rep.id });
  assert.ok(rotated.registrationAccessToken && rotated.registrationAccessToken !== rep.registrationAccessToken);
  const old = await fetch(`${baseUrl}/realms/compat/clients-registrations/default/self-registered`, {
    headers: { authorization: `Bearer ${rep.registrationAccessToken}` },
  });
  assert.equal(old.status, 401, "the replaced registration token no longer works");
  assert.equal((await kc.realms.getClientsInitialAccess({ realm: "compat" })).find((x) => x.id === created.id).remainingCount, 0);
  await kc.realms.delClientsInitialAccess({ realm: "compat", id: created.id });
  assert.ok(!(await kc.realms.getClientsInitialAccess({ realm: "compat" })).some((x) => x.id === created.id));
});

test("client-registration policies through the components resource, as Keycloak's admin console manages them", async () => {
  kc.setConfig({ realmName: "compat" });
  const type = "org.keycloak.services.clientregistration.policy.ClientRegistrationPolicy";
  const policies = await kc.components.find({ type });
  assert.equal(policies.length, 8);
  const trusted = policies.find((p) => p.providerId === "trusted-hosts" && p.subType === "anonymous");
  // Anonymous registration is refused until a host is trusted.
  const register = () => fetch(`${baseUrl}/realms/compat/clients-registrations/openid-connect`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ redirect_uris: ["http://127.0.0.1/agent/cb"], token_endpoint_auth_method: "none" }),
  });
  assert.equal((await register()).status, 403);
  await kc.components.update({ id: trusted.id }, { ...trusted, config: { ...trusted.config, "trusted-hosts": ["127.0.0.1"] } });
  assert.deepEqual((await kc.components.findOne({ id: trusted.id })).config["trusted-hosts"], ["127.0.0.1"]);
  const ok = await register();
  assert.equal(ok.status, 201, await ok.clone().text());
  const limit = await kc.components.create({ name: "Tight limit", providerId: "max-clients", providerType: type,
    subType: "anonymous", config: { "max-clients": ["1"] } });
  assert.ok(limit.id);
  assert.equal((await register()).status, 403);
  await kc.components.del({ id: limit.id });
  await kc.components.del({ id: trusted.id });
  assert.equal((await kc.components.find({ type })).length, 7);
});

test("realm localization, as Keycloak's realms spec uses it", async () => {
  kc.setConfig({ realmName: "compat" });
  await kc.realms.update({ realm: "compat" }, { internationalizationEnabled: true, supportedLocales: ["en", "nl", "de"] });
  await kc.realms.addLocalization({ realm: "compat", selectedLocale: "nl", key: "theKey" }, "value");
  assert.deepEqual(await kc.realms.getRealmSpecificLocales({ realm: "compat" }), ["nl"]);
  const texts = await kc.realms.getRealmLocalizationTexts({ realm: "compat", selectedLocale: "nl" });
  assert.equal(texts.theKey, "value");
  await kc.realms.deleteRealmLocalizationTexts({ realm: "compat", selectedLocale: "nl", key: "theKey" });
  assert.deepEqual(await kc.realms.getRealmLocalizationTexts({ realm: "compat", selectedLocale: "nl" }), {});
});

test("identity providers a realm export brought: listed, read, removed; OpenID Connect ones created from discovery, others refused", async () => {
  await kc.realms.create({
    realm: "brokered", enabled: true,
    identityProviders: [
      { alias: "github", providerId: "github", enabled: true, config: { clientId: "gh", clientSecret: "s3cret" } },
      { alias: "corp-oidc", providerId: "oidc", enabled: true, config: { clientId: "corp" } },
    ],
    identityProviderMappers: [{ name: "dept", identityProviderAlias: "corp-oidc", identityProviderMapper: "hardcoded-attribute-idp-mapper", config: {} }],
  });
  kc.setConfig({ realmName: "brokered" });
  const ip = kc.identityProviders;
  assert.deepEqual((await ip.find()).map((p) => p.alias), ["github", "corp-oidc"]);
  assert.deepEqual((await ip.find({ search: "corp" })).map((p) => p.alias), ["corp-oidc"]);
  const gh = await ip.findOne({ alias: "github" });
  assert.equal(gh.providerId, "github");
  assert.equal(gh.config.clientSecret, "**********");
  assert.equal((await ip.findOne({ alias: "nope" })) ?? null, null, "not found is null");
  assert.deepEqual((await ip.findMappers({ alias: "corp-oidc" })).map((m) => m.name), ["dept"]);
  await assert.rejects(ip.create({ alias: "corp-saml", providerId: "saml" }), (e) => e.response?.status === 501);
  await assert.rejects(ip.create({ alias: "azure", providerId: "oidc" }), (e) => e.response?.status === 400);
  const imported = await ip.importFromUrl({ providerId: "oidc", fromUrl: `${baseUrl}/realms/master/.well-known/openid-configuration` });
  assert.equal(imported.authorizationUrl, `${baseUrl}/realms/master/protocol/openid-connect/auth`);
  assert.equal(imported.validateSignature, "true");
  const made = await ip.create({ alias: "upstream", providerId: "keycloak-oidc", displayName: "Upstream",
    config: { ...imported, clientId: "broker", clientSecret: "broker-secret" } });
  assert.equal(made.id, "upstream");
  const up = await ip.findOne({ alias: "upstream" });
  assert.equal(up.config.clientSecret, "**********");
  await ip.update({ alias: "upstream" }, { ...up, displayName: "Upstream IdP" });
  assert.equal((await ip.findOne({ alias: "upstream" })).displayName, "Upstream IdP");
  // Its keys are read at each login (validateSignature with a jwksUrl): reloading says so.
  assert.equal(await ip.reloadKeys({ alias: "upstream" }), true);
  assert.equal(await ip.reloadKeys({ alias: "github" }), false);
  assert.deepEqual(await ip.listPermissions({ alias: "upstream" }), { enabled: false });
  await assert.rejects(ip.updatePermission({ alias: "upstream" }, { enabled: true }), (e) => e.response?.status === 400);
  assert.equal((await ip.findFactory({ providerId: "oidc" })).id, "oidc");
  const mapper = await ip.createMapper({ alias: "upstream", identityProviderMapper: {
    name: "eng is developer", identityProviderAlias: "upstream", identityProviderMapper: "oidc-role-idp-mapper",
    config: { claim: "groups", "claim.value": "eng", role: "developer", syncMode: "FORCE" } } });
  assert.ok(mapper.id);
  await ip.updateMapper({ alias: "upstream", id: mapper.id }, { id: mapper.id, identityProviderAlias: "upstream",
    identityProviderMapper: "oidc-role-idp-mapper", name: "eng is developer",
    config: { claim: "groups", "claim.value": "engineering", role: "developer" } });
  assert.equal((await ip.findOneMapper({ alias: "upstream", id: mapper.id })).config["claim.value"], "engineering");
  await ip.delMapper({ alias: "upstream", id: mapper.id });
  assert.deepEqual(await ip.findMappers({ alias: "upstream" }), []);
  await ip.del({ alias: "upstream" });
  await ip.del({ alias: "corp-oidc" });
  assert.deepEqual((await ip.find()).map((p) => p.alias), ["github"]);
  kc.setConfig({ realmName: "master" });
  await kc.realms.del({ realm: "brokered" });
});

test("cluster nodes, push revocation and registration policy providers, as Keycloak's clients and realms specs use them", async () => {
  kc.setConfig({ realmName: "compat" });
  const { id } = await kc.clients.create({ clientId: "clustered" });
  await kc.clients.addClusterNode({ id, node: "127.0.0.1" });
  assert.deepEqual(Object.keys((await kc.clients.findOne({ id })).registeredNodes), ["127.0.0.1"]);
  // No admin URL: nothing to reach, nothing claimed as reached.
  assert.deepEqual(await kc.clients.testNodesAvailable({ id }), { successRequests: [], failedRequests: [] });
  assert.deepEqual(await kc.clients.pushRevocation({ id }), { successRequests: [], failedRequests: [] });
  await kc.clients.deleteClusterNode({ id, node: "127.0.0.1" });
  assert.equal((await kc.clients.findOne({ id })).registeredNodes, undefined);
  await assert.rejects(kc.clients.deleteClusterNode({ id, node: "127.0.0.1" }), /404|not have node/);
  // With an admin URL, Gatehouse does not send the old adapter calls and says so.
  const c = await kc.clients.findOne({ id });
  await kc.clients.update({ id }, { ...c, adminUrl: "https://app.example/admin" });
  const pushed = await kc.realms.pushRevocation({ realm: "compat" });
  assert.deepEqual(pushed.successRequests, []);
  assert.deepEqual(pushed.failedRequests, ["https://app.example/admin"]);
  const providers = await kc.realms.getClientRegistrationPolicyProviders({ realm: "compat" });
  assert.deepEqual(providers.map((p) => p.id).sort(), ["allowed-client-templates", "allowed-protocol-mappers", "consent-required", "max-clients", "scope", "trusted-hosts"]);
  const hosts = providers.find((p) => p.id === "trusted-hosts");
  assert.ok(hosts.properties.some((p) => p.name === "trusted-hosts" && p.type === "MultivaluedString"));
  await kc.clients.del({ id });
});

test("client attribute certificates, as Keycloak's clients spec generates and downloads them", async () => {
  kc.setConfig({ realmName: "compat" });
  const { id } = await kc.clients.create({ clientId: "keyed" });
  const attr = "jwt.credential";
  const keystoreConfig = { format: "JKS", keyAlias: "new", keyPassword: "password", realmAlias: "master",
    realmCertificate: false, storePassword: "password" };
  const file = await kc.clients.generateAndDownloadKey({ id, attr }, keystoreConfig);
  assert.ok(file);
  const certificate = await kc.clients.generateKey({ id, attr });
  assert.ok(certificate.certificate && certificate.privateKey);
  assert.deepEqual(await kc.clients.getKeyInfo({ id, attr }), certificate);
  assert.ok(await kc.clients.downloadKey({ id, attr }, keystoreConfig));
  await kc.clients.del({ id });
});

test("impersonation, as Keycloak's users spec calls it", async () => {
  kc.setConfig({ realmName: "compat" });
  // An earlier test saved only LOGIN events: save every type again.
  await kc.realms.updateConfigEvents({ realm: "compat" }, { eventsEnabled: true, enabledEventTypes: [] });
  const { id } = await kc.users.create({ username: "impersonated", enabled: true });
  const result = await kc.users.impersonation({ id }, { user: id, realm: "master" });
  assert.equal(result.sameRealm, false);
  assert.equal(result.redirect, `${baseUrl}/realms/compat/account`);
  const events = await kc.realms.findEvents({ realm: "compat", type: "IMPERSONATE" });
  assert.equal(events.length, 1);
  assert.equal(events[0].userId, id);
  assert.equal(events[0].details.impersonator, "admin");
  await kc.users.del({ id });
});

test("federated identity links, as Keycloak's users spec manages them", async () => {
  kc.setConfig({ realmName: "compat" });
  const { id } = await kc.users.create({ username: "linked", enabled: true });
  assert.deepEqual(await kc.users.listFederatedIdentities({ id }), []);
  await kc.users.addToFederatedIdentity({ id, federatedIdentityId: "foobar", federatedIdentity: { identityProvider: "foobar", userId: "userid1", userName: "username1" } });
  // Kept, but listed only once the realm has a provider of that alias.
  assert.deepEqual(await kc.users.listFederatedIdentities({ id }), []);
  await assert.rejects(kc.users.addToFederatedIdentity({ id, federatedIdentityId: "foobar", federatedIdentity: { userId: "u2", userName: "n2" } }), /409|already linked/);
  await kc.users.delFromFederatedIdentity({ id, federatedIdentityId: "foobar" });
  await assert.rejects(kc.users.delFromFederatedIdentity({ id, federatedIdentityId: "foobar" }), /404|Link not found/);
  await kc.users.del({ id });
});

test("client authenticator and authenticator providers: the ones Gatehouse knows", async () => {
  kc.setConfig({ realmName: "compat" });
  const providers = await kc.authenticationManagement.getClientAuthenticatorProviders();
  assert.deepEqual(providers.map((p) => p.id).sort(), ["client-jwt", "client-secret", "client-secret-jwt"]);
  assert.ok(providers.every((p) => p.displayName && p.description));
  const authenticators = await kc.authenticationManagement.getAuthenticatorProviders();
  assert.ok(authenticators.some((p) => p.id === "auth-otp-form" && p.displayName === "OTP Form"));
  // No self-registration, so no registration forms.
  assert.deepEqual(await kc.authenticationManagement.getFormProviders(), []);
  assert.deepEqual(await kc.authenticationManagement.getFormActionProviders(), []);
});

test("authentication flows created, copied, updated and deleted, as Keycloak's authenticationManagement spec does", async () => {
  kc.setConfig({ realmName: "compat" });
  const am = kc.authenticationManagement;
  await am.createFlow({ alias: "test", providerId: "basic-flow", description: "", topLevel: true, builtIn: false });
  assert.ok((await am.getFlows()).find((f) => f.alias === "test"));
  await am.copyFlow({ flow: "browser", newName: "copy of browser" });
  const flow = (await am.getFlows()).find((f) => f.alias === "copy of browser");
  assert.ok(flow && flow.builtIn === false);
  assert.ok((await am.getExecutions({ flow: "copy of browser" })).length > 5);
  const updated = await am.updateFlow({ flowId: flow.id }, { ...flow, description: "Updated description" });
  assert.equal(updated.description, "Updated description");
  await am.deleteFlow({ flowId: flow.id });
  assert.equal((await am.getFlows()).find((f) => f.alias === "copy of browser"), undefined);
  const test = (await am.getFlows()).find((f) => f.alias === "test");
  await am.deleteFlow({ flowId: test.id });
});

test("flow executions added, reordered and deleted, as Keycloak's authenticationManagement spec does", async () => {
  kc.setConfig({ realmName: "compat" });
  const am = kc.authenticationManagement;
  const flow = "executionTest";
  await am.copyFlow({ flow: "browser", newName: flow });
  const added = await am.addExecutionToFlow({ flow, provider: "auth-otp-form" });
  assert.ok(added.id);
  const sub = await am.addFlowToFlow({ flow, alias: "subFlow", description: "", provider: "registration-page-form", type: "basic-flow" });
  assert.ok(sub.id);
  let ex = await am.getExecutions({ flow });
  assert.ok(ex.map((e) => e.displayName).includes("subFlow"));
  let last = ex[ex.length - 1];
  const choice = last.requirementChoices[1];
  await am.updateExecution({ flow }, { ...last, requirement: choice });
  ex = await am.getExecutions({ flow });
  assert.equal(ex[ex.length - 1].requirement, choice);
  const first = ex[0].id;
  await am.delExecution({ id: first });
  ex = await am.getExecutions({ flow });
  assert.equal(ex.find((e) => e.id === first), undefined);
  last = ex[ex.length - 1];
  await am.raisePriorityExecution({ id: last.id });
  ex = await am.getExecutions({ flow });
  assert.equal(ex.find((e) => e.id === last.id).index, last.index - 1);
  const top = ex[0];
  await am.lowerPriorityExecution({ id: top.id });
  ex = await am.getExecutions({ flow });
  assert.equal(ex.find((e) => e.id === top.id).index, top.index + 1);
  const f = (await am.getFlows()).find((x) => x.alias === flow);
  await am.deleteFlow({ flowId: f.id });
});

test("step configs and config descriptions, as Keycloak's authenticationManagement spec uses them", async () => {
  kc.setConfig({ realmName: "compat" });
  const am = kc.authenticationManagement;
  await am.copyFlow({ flow: "browser", newName: "configTest" });
  const execution = (await am.getExecutions({ flow: "configTest" }))[0];
  let config = await am.createConfig({ id: execution.id, alias: "test" });
  config = await am.getConfig({ id: config.id });
  assert.equal(config.alias, "test");
  await am.updateConfig({ ...config, config: { defaultProvider: "sdf" } });
  config = await am.getConfig({ id: config.id });
  assert.equal(config.config.defaultProvider, "sdf");
  await am.delConfig({ id: config.id });
  await assert.rejects(am.getConfig({ id: config.id }));
  const description = await am.getConfigDescription({ providerId: execution.providerId });
  assert.equal(description.providerId, execution.providerId);
  const f = (await am.getFlows()).find((x) => x.alias === "configTest");
  await am.deleteFlow({ flowId: f.id });
});

test("organizations, as Keycloak's organizations spec uses them: off until enabled, CRUD, members", async () => {
  kc.setConfig({ realmName: "master" });
  await assert.rejects(kc.organizations.find(), (e) => e.response?.status === 404);
  await kc.realms.update({ realm: "master" }, { organizationsEnabled: true });
  assert.deepEqual(await kc.organizations.find(), []);
  const myOrganization = { name: "orga", enabled: true, domains: [{ name: "orga.com" }] };
  const org = await kc.organizations.create(myOrganization);
  assert.ok(org.id);
  myOrganization.enabled = false;
  await kc.organizations.updateById({ id: org.id }, myOrganization);
  let all = await kc.organizations.find();
  assert.equal(all.length, 1);
  assert.equal(all[0].enabled, false);
  const user = await kc.users.create({ username: "organization-member", enabled: true });
  await kc.organizations.addMember({ orgId: org.id, userId: user.id });
  const members = await kc.organizations.listMembers({ orgId: org.id });
  assert.deepEqual(members.map((m) => m.username), ["organization-member"]);
  assert.equal((await kc.organizations.getMember({ orgId: org.id, userId: user.id })).id, user.id);
  const orgs = await kc.organizations.memberOrganizations({ userId: user.id });
  assert.deepEqual(orgs.map((o) => o.name), ["orga"]);
  await kc.organizations.delMember({ orgId: org.id, userId: user.id });
  assert.deepEqual(await kc.organizations.listMembers({ orgId: org.id }), []);
  // Invitations are mailed (an SMTP server started here) and kept until accepted, withdrawn or resent.
  const smtp = await smtpSink();
  await kc.realms.update({ realm: "master" }, { smtpServer: { host: "127.0.0.1", port: String(smtp.port), from: "idp@compat.io" } });
  const form = new FormData();
  form.append("email", "invitee@orga.com");
  form.append("firstName", "In");
  form.append("lastName", "Vitee");
  await kc.organizations.invite({ orgId: org.id }, form);
  const mail = await smtp.next();
  assert.deepEqual(mail.to, ["invitee@orga.com"]);
  assert.match(mail.data, /Subject: Invitation to join the orga organization/);
  await assert.rejects(kc.organizations.invite({ orgId: org.id }, form), (e) => e.response?.status === 409);
  await kc.users.update({ id: user.id }, { email: "member@orga.com" });
  const byId = new FormData();
  byId.append("id", user.id);
  await kc.organizations.inviteExistingUser({ orgId: org.id }, byId);
  assert.deepEqual((await smtp.next()).to, ["member@orga.com"]);
  const invitations = await kc.organizations.listInvitations({ orgId: org.id });
  assert.deepEqual(invitations.map((i) => i.email).sort(), ["invitee@orga.com", "member@orga.com"]);
  assert.ok(invitations.every((i) => i.status === "PENDING" && i.organizationId === org.id && i.inviteLink));
  const invitee = invitations.find((i) => i.email === "invitee@orga.com");
  assert.equal((await kc.organizations.findInvitation({ orgId: org.id, invitationId: invitee.id })).firstName, "In");
  await kc.organizations.resendInvitation({ orgId: org.id, invitationId: invitee.id });
  assert.deepEqual((await smtp.next()).to, ["invitee@orga.com"]);
  const resent = (await kc.organizations.listInvitations({ orgId: org.id })).find((i) => i.email === "invitee@orga.com");
  assert.notEqual(resent.id, invitee.id, "a new invitation");
  await kc.organizations.deleteInvitation({ orgId: org.id, invitationId: resent.id });
  assert.deepEqual((await kc.organizations.listInvitations({ orgId: org.id })).map((i) => i.email), ["member@orga.com"]);
  smtp.close();
  await kc.organizations.delById({ id: org.id });
  all = await kc.organizations.find();
  assert.deepEqual(all, []);
  await kc.users.del({ id: user.id });
  await kc.realms.update({ realm: "master" }, { organizationsEnabled: false });
});

test("realm keys through key-provider components, as Keycloak's admin console and kcadm scripts rotate them", async () => {
  kc.setConfig({ realmName: "master" });
  await kc.realms.create({ realm: "keys-compat", enabled: true });
  kc.setConfig({ realmName: "keys-compat" });
  const type = "org.keycloak.keys.KeyProvider";
  const token = async () => {
    const r = await fetch(`${baseUrl}/realms/master/protocol/openid-connect/token`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ grant_type: "password", client_id: "admin-cli", username: "admin", password: "compat-admin" }),
    });
    return (await r.json()).access_token;
  };
  // The realm signs with its first key before any component is added.
  const before = await kc.realms.getKeys({ realm: "keys-compat" });
  const firstKid = before.active.RS256;
  assert.ok(firstKid);
  const providers = await kc.components.find({ type });
  assert.deepEqual(providers.map((p) => [p.id, p.providerId]), [[firstKid, "rsa-generated"]]);
  const realm = await kc.realms.findOne({ realm: "keys-compat" });
  const created = await kc.components.create({ name: "rsa-rotated", providerId: "rsa-generated", providerType: type,
    parentId: realm.id, config: { priority: ["200"], algorithm: ["PS256"] } });
  assert.ok(created.id);
  let keys = await kc.realms.getKeys({ realm: "keys-compat" });
  assert.equal(keys.active.PS256, created.id);
  assert.equal(keys.active.RS256, firstKid);
  const rsa = await kc.components.findOne({ id: firstKid });
  await kc.components.update({ id: firstKid }, { ...rsa, config: { ...rsa.config, active: ["false"] } });
  keys = await kc.realms.getKeys({ realm: "keys-compat" });
  assert.equal(keys.keys.find((k) => k.kid === firstKid).status, "PASSIVE");
  // No active RS256 key left: the realm made one, as Keycloak makes a
  // fallback key.
  const fallback = keys.active.RS256;
  assert.ok(fallback && fallback !== firstKid);
  await kc.components.del({ id: created.id });
  assert.deepEqual((await kc.components.find({ type })).map((p) => p.id).sort(), [firstKid, fallback].sort());
  assert.ok(await token(), "the master realm's logins are untouched");
  kc.setConfig({ realmName: "master" });
  await kc.realms.del({ realm: "keys-compat" });
});

test("authorization services, as Keycloak's clients spec drives them: scopes, resources, policies, permissions, import and export", async () => {
  kc.setConfig({ realmName: "compat" });
  const { id } = await kc.clients.create({ clientId: "authz-rs" });
  const client = await kc.clients.findOne({ id });
  await kc.clients.update({ id }, { clientId: client.clientId, authorizationServicesEnabled: true, serviceAccountsEnabled: true });
  const user = await kc.users.create({ username: "authz-user", enabled: true });

  const scopes = (await Promise.all(["testScopeA", "testScopeB", "testScopeC"].map((name) =>
    kc.clients.createAuthorizationScope({ id }, { name })))).sort((a, b) => (a.name < b.name ? -1 : 1));
  const listed = await kc.clients.listAllScopes({ id });
  assert.deepEqual(listed.sort((a, b) => (a.name < b.name ? -1 : 1)), scopes);
  const updatedScope = { ...scopes[0], displayName: "Hello" };
  await kc.clients.updateAuthorizationScope({ id, scopeId: scopes[0].id }, updatedScope);
  assert.deepEqual(await kc.clients.getAuthorizationScope({ id, scopeId: scopes[0].id }), updatedScope);
  assert.deepEqual(await kc.clients.listAllResourcesByScope({ id, scopeId: scopes[0].id }), []);
  assert.deepEqual(await kc.clients.listAllPermissionsByScope({ id, scopeId: scopes[0].id }), []);

  await kc.clients.importResource({ id }, { allowRemoteResourceManagement: true, policyEnforcementMode: "ENFORCING",
    resources: [], policies: [], scopes: [], decisionStrategy: "UNANIMOUS" });
  const exported = await kc.clients.exportResource({ id });
  assert.equal(exported.allowRemoteResourceManagement, true);
  assert.equal(exported.resources.length, 1, "the default resource");

  const resource = await kc.clients.createResource({ id }, { name: "testResourceName", type: "testResourceType", scopes });
  assert.deepEqual(await kc.clients.getResource({ id, resourceId: resource._id }), resource);
  const server = await kc.clients.getResourceServer({ id });
  assert.equal(server.clientId, id);
  server.decisionStrategy = "UNANIMOUS";
  await kc.clients.updateResourceServer({ id }, server);
  assert.ok(await kc.clients.listPermissionsByResource({ id, resourceId: resource._id }));
  const byResource = await kc.clients.listScopesByResource({ id, resourceName: resource._id });
  assert.deepEqual(byResource.sort((a, b) => (a.name < b.name ? -1 : 1)), scopes);
  assert.ok((await kc.clients.listResources({ id })).some((r) => r._id === resource._id));
  await kc.clients.updateResource({ id, resourceId: resource._id }, { ...resource, name: "foo" });
  assert.equal((await kc.clients.getResource({ id, resourceId: resource._id })).name, "foo");

  const policy = await kc.clients.createPolicy({ id, type: "user" }, { name: "testPolicyName", logic: "POSITIVE", users: [user.id] });
  assert.ok(policy.id);
  assert.ok(await kc.clients.listDependentPolicies({ id, policyId: policy.id }));
  await kc.clients.createPermission({ id, type: "scope" }, { name: "testPermissionName", logic: "POSITIVE",
    resources: [resource._id], policies: [policy.id], scopes: scopes.map((s) => s.id) });
  const found = await kc.clients.findPermissions({ id, name: "testPermissionName" });
  assert.equal(found.length, 1);
  assert.equal(found[0].logic, "POSITIVE");
  const byType = await kc.clients.listPermissionScope({ id, name: "testPermissionName" });
  assert.equal(byType.length, 1);
  const permission = found[0];
  const assocScopes = await kc.clients.getAssociatedScopes({ id, permissionId: permission.id });
  assert.deepEqual(assocScopes.sort((a, b) => (a.name < b.name ? -1 : 1)), scopes.map(({ id, name }) => ({ id, name })));
  const assocPolicies = await kc.clients.getAssociatedPolicies({ id, permissionId: permission.id });
  assert.deepEqual(assocPolicies.map((p) => p.id), [policy.id]);
  assert.deepEqual(await kc.clients.getAssociatedResources({ id, permissionId: permission.id }),
    [{ _id: resource._id, name: "foo" }]);
  assert.ok((await kc.clients.listPolicyProviders({ id })).some((p) => p.type === "role"));
  assert.equal((await kc.clients.findPolicyByName({ id, name: "testPolicyName" })).id, policy.id);
  assert.equal((await kc.clients.findOnePolicyWithType({ id, type: "user", policyId: policy.id })).users[0], user.id);
  // The admin console's evaluation, for the policy's user.
  const evaluation = await kc.clients.evaluateResource({ id },
    { userId: user.id, resources: [{ _id: resource._id, scopes: [] }], roleIds: [], entitlements: false, context: { attributes: {} } });
  assert.equal(evaluation.status, "PERMIT");
  assert.equal(evaluation.results[0].allowedScopes.length, 3);
  await kc.clients.delPermission({ id, type: "scope", permissionId: permission.id });
  await kc.clients.delPolicy({ id, policyId: policy.id });
  await kc.clients.delResource({ id, resourceId: resource._id });
  await kc.clients.delAuthorizationScope({ id, scopeId: scopes[2].id });
  assert.equal((await kc.clients.listAllScopes({ id })).length, 2);

  await kc.clients.update({ id }, { clientId: client.clientId, authorizationServicesEnabled: false, serviceAccountsEnabled: false });
  await kc.users.del({ id: user.id });
  await kc.clients.del({ id });
});

// A minimal SMTP server (EHLO, AUTH PLAIN, MAIL, RCPT, DATA, QUIT) that hands over each message received.
async function smtpSink() {
  const { createServer } = await import("node:net");
  const queue = [];
  const waiting = [];
  const server = createServer((sock) => {
    let buf = "";
    let mail = { to: [], auth: null, data: "" };
    let inData = false;
    sock.write("220 sink ESMTP\r\n");
    sock.on("data", (chunk) => {
      buf += chunk.toString("utf8");
      let i;
      while ((i = buf.indexOf("\r\n")) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 2);
        if (inData) {
          if (line === ".") {
            inData = false;
            const m = mail;
            mail = { to: [], auth: m.auth, data: "" };
            if (waiting.length) waiting.shift()(m); else queue.push(m);
            sock.write("250 OK queued\r\n");
          } else {
            mail.data += (line.startsWith(".") ? line.slice(1) : line) + "\r\n";
          }
          continue;
        }
        const upper = line.toUpperCase();
        if (upper.startsWith("EHLO") || upper.startsWith("HELO")) sock.write("250-sink\r\n250-AUTH PLAIN\r\n250 8BITMIME\r\n");
        else if (upper.startsWith("AUTH PLAIN ")) { mail.auth = Buffer.from(line.slice(11), "base64").toString("utf8"); sock.write("235 2.7.0 OK\r\n"); }
        else if (upper.startsWith("RCPT TO")) { mail.to.push(line.slice(line.indexOf("<") + 1, line.indexOf(">"))); sock.write("250 OK\r\n"); }
        else if (upper === "DATA") { inData = true; sock.write("354 go ahead\r\n"); }
        else if (upper === "QUIT") { sock.end("221 bye\r\n"); }
        else sock.write("250 OK\r\n");
      }
    });
    sock.on("error", () => {});
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: server.address().port,
    next: () => (queue.length ? Promise.resolve(queue.shift()) : new Promise((resolve) => waiting.push(resolve))),
    close: () => server.close(),
  };
}

test("clients v2 API (client-admin-api:v2), as Keycloak's clientsV2 spec uses it", async () => {
  const v2kc = new KcAdminClient({ baseUrl, realmName: "master", enableExperimentalApis: true });
  await v2kc.auth({ username: "admin", password: "compat-admin", grantType: "password", clientId: "admin-cli" });
  const api = () => v2kc.clients.v2();
  const created = await api().post({ clientId: "v2-app", protocol: "openid-connect", enabled: true });
  assert.equal(created.clientId, "v2-app");
  assert.ok(created.uuid);
  assert.ok((await api().get()).some((c) => c.clientId === "v2-app"));
  assert.equal((await api().byId("v2-app").get()).clientId, "v2-app");
  // PUT replaces, PATCH merges, and both answer the client as it now is.
  await api().byId("v2-app").put({ clientId: "v2-app", protocol: "openid-connect", description: "Updated via V2 API test" });
  assert.equal((await api().byId("v2-app").get()).description, "Updated via V2 API test");
  const patched = await api().byId("v2-app").patch({ additionalData: { displayName: "Patched Display Name" } });
  assert.equal(patched.displayName, "Patched Display Name");
  assert.equal((await api().byId("v2-app").get()).displayName, "Patched Display Name");
  assert.equal((await api().byId("v2-app").get()).description, "Updated via V2 API test");
  // Filter, sort, project.
  await api().post({ clientId: "Zeta-v2", protocol: "openid-connect", description: "Client 1", enabled: true });
  await api().post({ clientId: "alpha-v2", protocol: "openid-connect", enabled: true });
  const sorted = (await api().get({ queryParameters: { sort: "clientId" } })).map((c) => c.clientId);
  assert.deepEqual([...sorted].sort((a, b) => a.localeCompare(b, undefined, { sensitivity: "base" })), sorted);
  const filtered = await api().get({ queryParameters: { fields: ["clientId"], q: 'clientId eq "Zeta-v2"' } });
  assert.equal(filtered.length, 1);
  assert.equal(filtered[0].clientId, "Zeta-v2");
  assert.equal(filtered[0].description, undefined);
  await assert.rejects(api().get({ queryParameters: { q: 'clientId gt "a"' } }), (e) => e.responseStatusCode === 400);
  // A full OIDC client: flows, secret, web origins; the v1 API sees the same client.
  const full = await api().post({ clientId: "full-config-v2", protocol: "openid-connect", enabled: true,
    displayName: "Full Config Test Client", description: "A client with full OIDC configuration",
    redirectUris: ["http://localhost:3000/callback"], roles: ["reader"],
    // The generated serializer drops the OIDC-only fields; they travel as additional data.
    additionalData: { webOrigins: ["http://localhost:3000"], loginFlows: ["STANDARD", "SERVICE_ACCOUNT"],
      auth: { method: "client-secret" } } });
  assert.ok(full.auth.secret, "a secret is generated");
  assert.deepEqual(full.roles, ["reader"]);
  const [v1] = await kc.clients.find({ realm: "master", clientId: "full-config-v2" });
  assert.equal(v1.name, "Full Config Test Client");
  assert.equal(v1.publicClient, false);
  assert.equal(v1.serviceAccountsEnabled, true);
  assert.deepEqual((await kc.clients.listRoles({ realm: "master", id: v1.id })).map((r) => r.name), ["reader"]);
  for (const id of ["v2-app", "Zeta-v2", "alpha-v2", "full-config-v2"]) {
    await api().byId(id).delete();
  }
  assert.ok(!(await api().get()).some((c) => c.clientId === "v2-app"));
  await assert.rejects(api().byId("v2-app").get(), (e) => e.responseStatusCode === 404);
});

test("organization groups, as Keycloak's organizations spec uses them", async () => {
  await kc.realms.update({ realm: "master" }, { organizationsEnabled: true });
  const org = await kc.organizations.create({ realm: "master", name: "orgG", enabled: true, domains: [{ name: "orgg.com" }] });
  const groups = kc.organizations.groups(org.id);
  const group = await groups.create({ realm: "master", name: "cool-group" });
  assert.ok(group.id);
  const child = await groups.createChildGroup({ realm: "master", id: group.id }, { name: "child" });
  assert.ok(child.id);
  assert.deepEqual((await groups.listSubGroups({ realm: "master", parentId: group.id })).map((g) => g.name), ["child"]);
  assert.equal((await groups.findOne({ realm: "master", id: child.id })).path, "/cool-group/child");
  const [user] = await kc.users.find({ realm: "master", username: "admin", exact: true });
  await kc.organizations.addMember({ realm: "master", orgId: org.id, userId: user.id });
  await groups.addMemberToOrgGroup({ realm: "master", groupId: group.id, userId: user.id });
  assert.deepEqual((await groups.listMembers({ realm: "master", id: group.id })).map((u) => u.username), ["admin"]);
  assert.deepEqual((await groups.listOrgGroups({ realm: "master", id: user.id })).map((g) => g.name), ["cool-group"]);
  await kc.roles.create({ realm: "master", name: "org-group-role" });
  const role = await kc.roles.findOneByName({ realm: "master", name: "org-group-role" });
  await groups.addRealmRoleMappings({ realm: "master", id: group.id, roles: [{ id: role.id, name: role.name }] });
  assert.deepEqual((await groups.listRealmRoleMappings({ realm: "master", id: group.id })).map((r) => r.name), ["org-group-role"]);
  assert.equal((await groups.listRoleMappings({ realm: "master", id: group.id })).realmMappings[0].name, "org-group-role");
  await groups.delRealmRoleMappings({ realm: "master", id: group.id, roles: [{ id: role.id, name: role.name }] });
  assert.deepEqual(await groups.listRealmRoleMappings({ realm: "master", id: group.id }), []);
  await kc.roles.delByName({ realm: "master", name: "org-group-role" });
  await groups.removeMemberFromOrgGroup({ realm: "master", groupId: group.id, userId: user.id });
  await groups.del({ realm: "master", id: group.id });
  assert.deepEqual(await groups.find({ realm: "master" }), []);
  await kc.organizations.delById({ realm: "master", id: org.id });
});

test("user federation providers, as Keycloak's userStorageProvider spec uses them", async () => {
  const fed = await kc.components.create({
    name: "ldap-compat",
    parentId: "master",
    providerId: "ldap",
    providerType: "org.keycloak.storage.UserStorageProvider",
    config: { editMode: ["READ_ONLY"], bindCredential: ["never-shown"] },
  });
  assert.ok(fed.id);
  const name = await kc.userStorageProvider.name({ id: fed.id });
  assert.deepEqual(name, { id: fed.id, name: "ldap-compat" });
  await kc.userStorageProvider.removeImportedUsers({ id: fed.id });
  await kc.userStorageProvider.unlinkUsers({ id: fed.id });
  const shown = await kc.components.findOne({ id: fed.id });
  assert.deepEqual(shown.config.bindCredential, ["**********"]);
  // No connection URL: a sync reports the directory error as a 400.
  await assert.rejects(kc.userStorageProvider.sync({ id: fed.id, action: "triggerFullSync" }), /400|LDAP/);
  await assert.rejects(
    kc.components.create({ name: "kerb", providerId: "kerberos", providerType: "org.keycloak.storage.UserStorageProvider", config: {} }),
    /400|not supported/,
  );
  // Its mappers: Keycloak's defaults, listed by parent, the mapper types
  // offered, one added and synced (a hardcoded role has nothing to sync).
  const mapperType = "org.keycloak.storage.ldap.mappers.LDAPStorageMapper";
  const defaults = await kc.components.find({ parent: fed.id, type: mapperType });
  assert.deepEqual(defaults.map((m) => m.name).sort(), ["creation date", "email", "first name", "last name", "modify date", "username"]);
  const types = await kc.components.listSubComponents({ id: fed.id, type: mapperType });
  assert.ok(types.some((t) => t.id === "group-ldap-mapper"));
  await kc.roles.create({ name: "ldap-compat-role" });
  const mapper = await kc.components.create({
    name: "fixed role",
    parentId: fed.id,
    providerId: "hardcoded-ldap-role-mapper",
    providerType: mapperType,
    config: { role: ["ldap-compat-role"] },
  });
  const synced = await kc.userStorageProvider.mappersSync({ parentId: fed.id, id: mapper.id, direction: "fedToKeycloak" });
  assert.equal(synced.added, 0);
  assert.equal((await kc.components.findOne({ id: mapper.id })).parentId, fed.id);
  await kc.components.del({ id: mapper.id });
  assert.equal((await kc.components.find({ parent: fed.id })).length, 6);
  await kc.roles.delByName({ name: "ldap-compat-role" });
  await kc.components.del({ id: fed.id });
  await assert.rejects(kc.userStorageProvider.name({ id: fed.id }), /404|Could not find/);
});
