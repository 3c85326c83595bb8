// Starts the real Gatehouse binary for the Node compatibility suites: on
// ephemeral loopback ports, a temporary data directory, a cheap password
// hash (test speed only) and the given admin password. Resolves with the
// identity listener's base URL, the gateway listener's, a stop function,
// an admin-token getter, a realm importer and `configureGateway(toml)`,
// which writes the gateway's routes and authorizers and reloads them
// (SIGHUP), for suites that need the identity listener's URL in them.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const BIN = process.env.GATEHOUSE_BIN ?? new URL("../target/debug/gatehouse", import.meta.url).pathname;

export async function startGatehouse(adminPassword) {
  const dir = mkdtempSync(join(tmpdir(), "gatehouse-compat-"));
  const configFile = join(dir, "gatehouse.toml");
  writeFileSync(configFile, "");
  const proc = spawn(BIN, ["serve", "--config", configFile], {
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
  const [base, gw] = await new Promise((resolve, reject) => {
    let out = "";
    proc.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/identity provider listening on (http:\/\/[0-9.:]+)/);
      const g = out.match(/gateway listening on (http:\/\/[0-9.:]+)/);
      if (m && g) resolve([m[1], g[1]]);
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
  // The gateway's part of the config file, reloaded at once; resolves
  // once the gateway serves `probe` (a path of the new config) with
  // anything but 404.
  const configureGateway = async (toml, probe) => {
    writeFileSync(configFile, toml);
    proc.kill("SIGHUP");
    for (let i = 0; i < 100; i++) {
      if ((await fetch(`${gw}${probe}`)).status !== 404) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error("the gateway did not load its new config");
  };
  return { base, gw, stop, adminToken, importRealm, configureGateway };
}
