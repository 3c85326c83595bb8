// Starts the real Gatehouse binary for the Node compatibility suites: on
// ephemeral loopback ports, a temporary data directory, a cheap password
// hash (test speed only) and the given admin password. Resolves with the
// identity listener's base URL, a stop function, an admin-token getter and
// a realm importer.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const BIN = process.env.GATEHOUSE_BIN ?? new URL("../target/debug/gatehouse", import.meta.url).pathname;

export async function startGatehouse(adminPassword) {
  const dir = mkdtempSync(join(tmpdir(), "gatehouse-compat-"));
  const proc = spawn(BIN, ["serve"], {
    env: {
      ...process.env,
      GATEHOUSE_SERVER_DATA_DIR: dir,
      GATEHOUSE_SERVER_IDENTITY_LISTEN: "127.0.0.1:0",
      GATEHOUSE_SERVER_GATEWAY_LISTEN: "127.0.0.1:0",
      GATEHOUSE_SERVER_PASSWORD_MEMORY_KIB: "64",
      GATEHOUSE_SERVER_PASSWORD_ITERATIONS: "1",
      GATEHOUSE_ADMIN_PASSWORD: adminPassword,
      GATEHOUSE_LOG: "warn",
    },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const stop = () => {
    proc.kill();
    rmSync(dir, { recursive: true, force: true });
  };
  const base = await new Promise((resolve, reject) => {
    let out = "";
    proc.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/identity provider listening on (http:\/\/[0-9.:]+)/);
      if (m) resolve(m[1]);
    });
    proc.on("exit", (c) => reject(new Error(`gatehouse exited with ${c}: ${out}`)));
    setTimeout(() => reject(new Error("gatehouse did not start")), 20000).unref();
  });
  // A master-realm admin token, as an admin script gets one.
  const adminToken = async () => {
    const r = await fetch(`${base}/realms/master/protocol/openid-connect/token`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ grant_type: "password", client_id: "admin-cli", username: "admin", password: adminPassword }),
    });
    if (r.status !== 200) throw new Error(`admin token: ${r.status}`);
    return (await r.json()).access_token;
  };
  // Creates a realm from a (Keycloak) representation; throws unless 201.
  const importRealm = async (realm) => {
    const r = await fetch(`${base}/admin/realms`, {
      method: "POST",
      headers: { authorization: `Bearer ${await adminToken()}`, "content-type": "application/json" },
      body: JSON.stringify(realm),
    });
    if (r.status !== 201) throw new Error(`realm import: ${r.status} ${await r.text()}`);
  };
  return { base, stop, adminToken, importRealm };
}
