"""Drives Gatehouse with python-keycloak (pinned in requirements.txt):
admin operations through KeycloakAdmin, token operations through
KeycloakOpenID. Starts the real binary on ephemeral ports."""
import hashlib, hmac, json, os, struct, sys, time, unittest
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from harness import Gatehouse  # noqa: E402

from keycloak import KeycloakAdmin, KeycloakOpenID, KeycloakOpenIDConnection
from keycloak.exceptions import KeycloakError


class SmtpSink:
    """A minimal SMTP server (EHLO, MAIL, RCPT, DATA, QUIT) on an ephemeral
    port, handing over each message as (recipients, data)."""

    def __init__(self):
        import queue, socketserver, threading
        self.messages = queue.Queue()
        messages = self.messages

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                self.wfile.write(b"220 sink ESMTP\r\n")
                to = []
                while True:
                    line = self.rfile.readline().decode("utf-8", "replace")
                    if not line:
                        return
                    cmd = line.strip().upper()
                    if cmd.startswith(("EHLO", "HELO")):
                        self.wfile.write(b"250-sink\r\n250 8BITMIME\r\n")
                    elif cmd.startswith("RCPT TO"):
                        to.append(line[line.index("<") + 1:line.index(">")])
                        self.wfile.write(b"250 OK\r\n")
                    elif cmd == "DATA":
                        self.wfile.write(b"354 go ahead\r\n")
                        data = []
                        while True:
                            l = self.rfile.readline().decode("utf-8", "replace")
                            if l in ("", ".\r\n"):
                                break
                            data.append(l[1:] if l.startswith(".") else l)
                        messages.put((to, "".join(data)))
                        to = []
                        self.wfile.write(b"250 OK queued\r\n")
                    elif cmd == "QUIT":
                        self.wfile.write(b"221 bye\r\n")
                        return
                    else:
                        self.wfile.write(b"250 OK\r\n")

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def next(self):
        return self.messages.get(timeout=10)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class PythonKeycloak(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.gatehouse = Gatehouse("py-admin", "gatehouse-py-")
        cls.base = cls.gatehouse.base
        conn = KeycloakOpenIDConnection(server_url=cls.base, username="admin", password="py-admin",
                                        realm_name="master", user_realm_name="master", client_id="admin-cli")
        cls.admin = KeycloakAdmin(connection=conn)
        cls.admin.create_realm(payload={"realm": "py", "enabled": True}, skip_exists=False)
        cls.admin.change_current_realm("py")

    @classmethod
    def tearDownClass(cls):
        cls.gatehouse.stop()

    def test_1_clients_users_groups_roles(self):
        a = self.admin
        cid = a.create_client({"clientId": "py-app", "secret": "py-secret", "directAccessGrantsEnabled": True,
                               "serviceAccountsEnabled": True})
        self.assertEqual(a.get_client_id("py-app"), cid)
        self.assertEqual(a.get_client_secrets(cid)["value"], "py-secret")
        uid = a.create_user({"username": "pat", "email": "pat@py.io", "enabled": True,
                             "credentials": [{"type": "password", "value": "pat-pw", "temporary": False}]})
        self.assertEqual(a.get_user_id("pat"), uid)
        self.assertEqual(a.users_count(), 1)
        self.assertEqual(a.get_users({"email": "pat@py.io"})[0]["username"], "pat")
        a.update_user(uid, {"firstName": "Pat"})
        self.assertEqual(a.get_user(uid)["firstName"], "Pat")
        with self.assertRaises(KeycloakError):
            a.create_user({"username": "pat"}, exist_ok=False)
        gid = a.create_group({"name": "ops"})
        a.group_user_add(uid, gid)
        self.assertEqual([u["username"] for u in a.get_group_members(gid)], ["pat"])
        a.create_realm_role({"name": "operator"})
        role = a.get_realm_role("operator")
        a.assign_realm_roles(uid, [role])
        self.assertIn("operator", [r["name"] for r in a.get_realm_roles_of_user(uid)])
        a.create_client_role(cid, {"name": "viewer"})
        a.assign_client_role(uid, cid, [a.get_client_role(cid, "viewer")])
        self.assertEqual([r["name"] for r in a.get_client_roles_of_user(uid, cid)], ["viewer"])
        a.set_user_password(uid, "pat-pw-2", temporary=False)
        # A client role made of a client role and a realm role, by name.
        a.create_client_role(cid, {"name": "auditor"})
        a.add_composite_client_roles_to_role(cid, "auditor", [a.get_client_role(cid, "viewer"), role])
        self.assertEqual(sorted(r["name"] for r in a.get_composite_client_roles_of_role(cid, "auditor")),
                         ["operator", "viewer"])
        a.remove_composite_client_roles_from_role(cid, "auditor", [a.get_client_role(cid, "viewer")])
        self.assertEqual([r["name"] for r in a.get_composite_client_roles_of_role(cid, "auditor")], ["operator"])
        self.assertEqual(a.get_composite_realm_roles_of_role("operator"), [])
        a.delete_client_role(cid, "auditor")
        # Lookups scripts make first: server version, a group by its path,
        # what a user has through composites and what is left to grant.
        self.assertEqual(a.get_server_info()["systemInfo"]["version"], "26.0.0")
        self.assertEqual(a.get_group_by_path("/ops")["id"], gid)
        self.assertIn("operator", [r["name"] for r in a.get_composite_realm_roles_of_user(uid)])
        self.assertNotIn("operator", [r["name"] for r in a.get_available_realm_roles_of_user(uid)])
        self.assertEqual(a.get_available_client_roles_of_user(uid, cid), [])
        # Which groups hold a role; attribute search; no federated logins.
        a.assign_group_realm_roles(gid, [role])
        self.assertEqual([g["path"] for g in a.get_realm_role_groups("operator")], ["/ops"])
        a.assign_group_client_roles(gid, cid, [a.get_client_role(cid, "viewer")])
        self.assertEqual([g["name"] for g in a.get_client_role_groups(cid, "viewer")], ["ops"])
        self.assertEqual([u["username"] for u in a.get_users({"q": "email:pat@py.io"})], ["pat"])
        self.assertEqual(a.get_user_social_logins(uid), [])
        self.assertEqual(a.get_client_installation_provider(cid, "keycloak-oidc-keycloak-json")["resource"], "py-app")
        self.assertIn("UPDATE_PASSWORD", [r["alias"] for r in a.get_required_actions()])

    def test_2_tokens_introspection_userinfo_logout(self):
        oidc = KeycloakOpenID(server_url=self.base, realm_name="py", client_id="py-app", client_secret_key="py-secret")
        self.assertEqual(oidc.well_known()["issuer"], f"{self.base}/realms/py")
        tok = oidc.token("pat", "pat-pw-2")
        self.assertIn("access_token", tok)
        info = oidc.userinfo(tok["access_token"])
        self.assertEqual(info["preferred_username"], "pat")
        self.assertTrue(oidc.introspect(tok["access_token"])["active"])
        fresh = oidc.refresh_token(tok["refresh_token"])
        oidc.logout(fresh["refresh_token"])
        self.assertFalse(oidc.introspect(fresh["access_token"])["active"])
        decoded = oidc.decode_token(fresh["access_token"], validate=True)
        self.assertEqual(decoded["azp"], "py-app")
        # The offline check python-keycloak's README shows: the realm's
        # public key (GET /realms/{realm}) as a PEM, then decode with it.
        from jwcrypto import jwk
        pem = "-----BEGIN PUBLIC KEY-----\n" + oidc.public_key() + "\n-----END PUBLIC KEY-----"
        offline = oidc.decode_token(fresh["access_token"], key=jwk.JWK.from_pem(pem.encode()))
        self.assertEqual(offline["azp"], "py-app")
        self.assertTrue(oidc.token(grant_type="client_credentials")["access_token"])

    def test_2a_initial_access_token_and_client_registration(self):
        iat = self.admin.create_initial_access_token(count=1, expiration=60)
        self.assertTrue(iat["token"])
        oidc = KeycloakOpenID(server_url=self.base, realm_name="py", client_id="unused")
        # python-keycloak speaks Keycloak's `default` registration provider.
        reg = oidc.register_client(iat["token"], {"clientId": "py-registered", "serviceAccountsEnabled": True,
                                                  "redirectUris": ["https://py.example/cb"]})
        self.assertEqual(reg["clientId"], "py-registered")
        self.assertTrue(reg["secret"] and reg["registrationAccessToken"])
        client = KeycloakOpenID(server_url=self.base, realm_name="py", client_id="py-registered",
                                client_secret_key=reg["secret"])
        self.assertTrue(client.token(grant_type="client_credentials")["access_token"])
        updated = oidc.update_client(reg["registrationAccessToken"], "py-registered",
                                     {**reg, "redirectUris": ["https://py.example/cb2"]})
        self.assertEqual(updated["redirectUris"], ["https://py.example/cb2"])
        with self.assertRaises(KeycloakError):
            oidc.register_client(iat["token"], {"clientId": "py-second"})

    def test_2b_brute_force_status_and_unlock(self):
        a = self.admin
        a.update_realm("py", {"bruteForceProtected": True, "failureFactor": 2, "waitIncrementSeconds": 60})
        uid = a.get_user_id("pat")
        oidc = KeycloakOpenID(server_url=self.base, realm_name="py", client_id="py-app", client_secret_key="py-secret")
        for _ in range(2):
            with self.assertRaises(KeycloakError):
                oidc.token("pat", "wrong")
        status = a.get_bruteforce_detection_status(uid)
        self.assertTrue(status["disabled"])
        with self.assertRaises(KeycloakError):
            oidc.token("pat", "pat-pw-2")
        a.clear_bruteforce_attempts_for_user(uid)
        self.assertEqual(a.get_bruteforce_detection_status(uid)["numFailures"], 0)
        self.assertIn("access_token", oidc.token("pat", "pat-pw-2"))
        a.clear_all_bruteforce_attempts()
        a.update_realm("py", {"bruteForceProtected": False})

    def test_2c_one_time_passwords_and_registration_policies(self):
        """A Keycloak user with an authenticator app (credentials as Keycloak
        exports them): the password grant wants python-keycloak's `totp`.
        The TOTP code is computed here, independently of Gatehouse (RFC 6238)."""
        a = self.admin
        secret = "pyOtpSecret12345678x"

        def totp(step):
            mac = hmac.new(secret.encode(), struct.pack(">Q", step), hashlib.sha1).digest()
            off = mac[-1] & 0x0F
            return "%06d" % ((struct.unpack(">I", mac[off:off + 4])[0] & 0x7FFFFFFF) % 1000000)

        otp = {"type": "otp", "userLabel": "phone",
               "credentialData": json.dumps({"subType": "totp", "digits": 6, "counter": 0, "period": 30,
                                             "algorithm": "HmacSHA1"}),
               "secretData": json.dumps({"value": secret})}
        uid = a.create_user({"username": "otto", "enabled": True,
                             "credentials": [{"type": "password", "value": "otto-pw"}, otp]})
        oidc = KeycloakOpenID(server_url=self.base, realm_name="py", client_id="py-app", client_secret_key="py-secret")
        with self.assertRaises(KeycloakError):
            oidc.token("otto", "otto-pw")
        step = int(time.time()) // 30
        self.assertIn("access_token", oidc.token("otto", "otto-pw", totp=totp(step)))
        with self.assertRaises(KeycloakError):
            oidc.token("otto", "otto-pw", totp=totp(step))  # a code works once
        creds = a.get_credentials(uid)
        self.assertEqual(sorted(c["type"] for c in creds), ["otp", "password"])
        self.assertTrue(all("secretData" not in c for c in creds))
        a.delete_credential(uid, next(c["id"] for c in creds if c["type"] == "otp"))
        self.assertIn("access_token", oidc.token("otto", "otto-pw"))
        # OTP made mandatory in the realm's direct grant flow: a user without
        # a code is refused until the flow is conditional again.
        self.assertIn("direct grant", [f["alias"] for f in a.get_authentication_flows()])
        rows = a.get_authentication_flow_executions("direct grant")
        sub = next(r for r in rows if r.get("authenticationFlow"))
        a.update_authentication_flow_executions({**sub, "requirement": "REQUIRED"}, "direct grant")
        with self.assertRaises(KeycloakError):
            oidc.token("otto", "otto-pw")
        a.update_authentication_flow_executions({**sub, "requirement": "CONDITIONAL"}, "direct grant")
        self.assertIn("access_token", oidc.token("otto", "otto-pw"))
        policies = a.get_components(
            query={"type": "org.keycloak.services.clientregistration.policy.ClientRegistrationPolicy"})
        self.assertEqual(len(policies), 8)
        self.assertIn("trusted-hosts", [p["providerId"] for p in policies])
        a.delete_user(uid)

    def test_2d_token_exchange(self):
        """KeycloakOpenID.exchange_token as python-keycloak sends it (no
        subject_token_type, a refresh token asked for by default)."""
        a = self.admin
        a.create_client({"clientId": "py-backend", "secret": "py-backend-secret",
                         "attributes": {"standard.token.exchange.enabled": "true",
                                        "standard.token.exchange.enableRefreshRequestedTokenType": "SAME_SESSION"}})
        a.create_client({"clientId": "py-front", "secret": "py-front-secret", "directAccessGrantsEnabled": True,
                         "protocolMappers": [{"name": "to-backend", "protocol": "openid-connect",
                                              "protocolMapper": "oidc-audience-mapper",
                                              "config": {"included.client.audience": "py-backend",
                                                         "access.token.claim": "true"}}]})
        front = KeycloakOpenID(server_url=self.base, realm_name="py", client_id="py-front",
                               client_secret_key="py-front-secret")
        user_token = front.token("pat", "pat-pw-2")["access_token"]
        backend = KeycloakOpenID(server_url=self.base, realm_name="py", client_id="py-backend",
                                 client_secret_key="py-backend-secret")
        out = backend.exchange_token(user_token)
        self.assertEqual(out["issued_token_type"], "urn:ietf:params:oauth:token-type:refresh_token")
        self.assertEqual(backend.decode_token(out["access_token"], validate=True)["azp"], "py-backend")
        self.assertTrue(backend.refresh_token(out["refresh_token"])["access_token"])
        with self.assertRaises(KeycloakError):
            front.exchange_token(user_token)

    def test_2e_organizations(self):
        """python-keycloak's organization calls (ids sent bare, paging
        through first/max), and the claim a member's token gets."""
        a = self.admin
        a.update_realm("py", {"organizationsEnabled": True})
        oid = a.create_organization({"name": "Py Org", "alias": "py-org", "domains": [{"name": "py.example"}]})
        self.assertEqual([o["alias"] for o in a.get_organizations()], ["py-org"])
        self.assertEqual(a.get_organization(oid)["domains"][0]["name"], "py.example")
        a.update_organization(oid, {"name": "Py Org", "description": "renamed"})
        self.assertEqual(a.get_organization(oid)["description"], "renamed")
        uid = a.get_user_id("pat")
        a.organization_user_add(uid, oid)
        self.assertEqual([m["username"] for m in a.get_organization_members(oid)], ["pat"])
        self.assertEqual([o["id"] for o in a.get_user_organizations(uid)], [oid])
        oidc = KeycloakOpenID(server_url=self.base, realm_name="py", client_id="py-app", client_secret_key="py-secret")
        a.update_client(a.get_client_id("py-app"), {"optionalClientScopes": ["organization"]})
        tok = oidc.token("pat", "pat-pw-2", scope="openid organization:*")
        self.assertEqual(oidc.decode_token(tok["access_token"], validate=True)["organization"], ["py-org"])
        a.organization_user_remove(uid, oid)
        self.assertEqual(a.get_organization_members(oid), [])
        a.delete_organization(oid)
        self.assertEqual(a.get_organizations(), [])

    def test_2f_realm_admin_service_account(self):
        """The common script setup: a service account of the realm itself,
        given realm-management's realm-admin, drives that realm's admin API
        with the client-credentials grant."""
        a = self.admin
        cid = a.create_client({"clientId": "py-ops", "secret": "py-ops-secret", "serviceAccountsEnabled": True})
        sa = a.get_client_service_account_user(cid)
        rm = a.get_client_id("realm-management")
        a.assign_client_role(sa["id"], rm, [a.get_client_role(rm, "realm-admin")])
        conn = KeycloakOpenIDConnection(server_url=self.base, realm_name="py", client_id="py-ops",
                                        client_secret_key="py-ops-secret")
        ops = KeycloakAdmin(connection=conn)
        uid = ops.create_user({"username": "ops-made", "enabled": True})
        self.assertEqual(ops.get_user(uid)["username"], "ops-made")
        self.assertIn("py-ops", [c["clientId"] for c in ops.get_clients()])
        ops.delete_user(uid)
        ops.change_current_realm("master")
        with self.assertRaises(KeycloakError):
            ops.get_users()

    def test_2g_user_manager_service_account(self):
        """The narrower setup backends use: a service account holding only
        manage-users and view-realm creates users with passwords and assigns
        them realm roles looked up by name, and cannot reach past that."""
        a = self.admin
        a.create_realm_role({"name": "py-member"})
        cid = a.create_client({"clientId": "py-provisioner", "secret": "py-prov-secret",
                               "serviceAccountsEnabled": True})
        sa = a.get_client_service_account_user(cid)
        rm = a.get_client_id("realm-management")
        a.assign_client_role(sa["id"], rm, [a.get_client_role(rm, "manage-users"),
                                            a.get_client_role(rm, "view-realm")])
        conn = KeycloakOpenIDConnection(server_url=self.base, realm_name="py", client_id="py-provisioner",
                                        client_secret_key="py-prov-secret")
        prov = KeycloakAdmin(connection=conn)
        uid = prov.create_user({"username": "prov-made", "enabled": True,
                                "credentials": [{"type": "password", "value": "prov-pw", "temporary": False}]})
        prov.assign_realm_roles(uid, [prov.get_realm_role("py-member")])
        self.assertIn("py-member", [r["name"] for r in prov.get_realm_roles_of_user(uid)])
        prov.set_user_password(uid, "prov-pw-2", temporary=False)
        with self.assertRaises(KeycloakError):
            prov.assign_client_role(uid, rm, [a.get_client_role(rm, "realm-admin")])
        with self.assertRaises(KeycloakError):
            prov.create_client({"clientId": "not-mine"})
        oidc = KeycloakOpenID(server_url=self.base, realm_name="py", client_id="py-app", client_secret_key="py-secret")
        tok = oidc.token("prov-made", "prov-pw-2")
        self.assertIn("py-member", oidc.decode_token(tok["access_token"], validate=True)["realm_access"]["roles"])
        prov.delete_user(uid)

    def test_2h_authorization_services_and_uma(self):
        """A resource server set up through KeycloakAdmin's authz calls,
        asked through KeycloakOpenID's uma_permissions / has_uma_access and
        KeycloakUMA's protection API (uma2-configuration, resource sets,
        permission tickets, permissions_check)."""
        from keycloak import KeycloakUMA
        from keycloak.uma_permissions import UMAPermission
        a = self.admin
        cid = a.create_client({"clientId": "py-rs", "secret": "py-rs-secret", "serviceAccountsEnabled": True,
                               "directAccessGrantsEnabled": True, "authorizationServicesEnabled": True})
        a.create_realm_role({"name": "py-reader"})
        uid = a.create_user({"username": "reader", "enabled": True,
                             "credentials": [{"type": "password", "value": "reader-pw", "temporary": False}]})
        a.assign_realm_roles(uid, [a.get_realm_role("py-reader")])
        a.create_client_authz_scopes(cid, {"name": "read"})
        res = a.create_client_authz_resource(cid, {"name": "Docs", "uris": ["/docs/*"], "scopes": [{"name": "read"}]})
        self.assertTrue(res["_id"])
        self.assertIn("Docs", [r["name"] for r in a.get_client_authz_resources(cid)])
        role = a.get_realm_role("py-reader")
        policy = a.create_client_authz_role_based_policy(cid, {"name": "readers", "roles": [{"id": role["id"]}]})
        a.create_client_authz_resource_based_permission(cid, {"name": "docs", "resources": [res["_id"]],
                                                              "policies": [policy["id"]]})
        self.assertIn("docs", [p["name"] for p in a.get_client_authz_permissions(cid)])
        settings = a.get_client_authz_settings(cid)
        self.assertIn("docs", [p["name"] for p in settings["policies"]])

        oidc = KeycloakOpenID(server_url=self.base, realm_name="py", client_id="py-rs", client_secret_key="py-rs-secret")
        reader = oidc.token("reader", "reader-pw")["access_token"]
        granted = oidc.uma_permissions(reader, "Docs#read")
        self.assertEqual([(g["rsname"], g.get("scopes")) for g in granted], [("Docs", ["read"])])
        self.assertTrue(oidc.has_uma_access(reader, "Docs#read").is_authorized)
        a.create_user({"username": "outsider", "enabled": True,
                       "credentials": [{"type": "password", "value": "out-pw", "temporary": False}]})
        outsider = oidc.token("outsider", "out-pw")["access_token"]
        self.assertFalse(oidc.has_uma_access(outsider, "Docs#read").is_authorized)

        conn = KeycloakOpenIDConnection(server_url=self.base, realm_name="py", client_id="py-rs",
                                        client_secret_key="py-rs-secret")
        uma = KeycloakUMA(connection=conn)
        self.assertTrue(uma.uma_well_known["permission_endpoint"].endswith("/authz/protection/permission"))
        self.assertIn(res["_id"], uma.resource_set_list_ids(uri="/docs/a", matchingUri=True))
        self.assertEqual(uma.resource_set_read(res["_id"])["name"], "Docs")
        ticket = uma.permission_ticket_create([UMAPermission(resource="Docs", scope="read")])
        self.assertTrue(ticket["ticket"])
        self.assertTrue(uma.permissions_check(reader, [UMAPermission(resource="Docs", scope="read")]))
        self.assertFalse(uma.permissions_check(outsider, [UMAPermission(resource="Docs", scope="read")]))

    def test_2i_mail_and_password_policy(self):
        """send_update_account and send_verify_email mail real messages to an
        SMTP server started here; the realm's password policy refuses a weak
        set_user_password."""
        a = self.admin
        sink = SmtpSink()
        try:
            a.update_realm("py", {"smtpServer": {"host": "127.0.0.1", "port": str(sink.port), "from": "idp@py.io"}})
            uid = a.create_user({"username": "mailme", "email": "mailme@py.io", "enabled": True})
            a.send_update_account(uid, ["UPDATE_PASSWORD"], lifespan=600)
            to, data = sink.next()
            self.assertEqual(to, ["mailme@py.io"])
            self.assertIn("Subject: Update Your Account", data)
            self.assertIn("login-actions/action-token?key=", data.replace("=\r\n", ""))
            a.send_verify_email(uid)
            self.assertIn("Subject: Verify email", sink.next()[1])
            with self.assertRaises(KeycloakError):
                a.send_update_account(uid, ["NOT_AN_ACTION"])
        finally:
            sink.close()
        a.update_realm("py", {"passwordPolicy": "length(12) and digits(1)"})
        with self.assertRaises(KeycloakError) as e:
            a.set_user_password(uid, "short1", temporary=False)
        self.assertEqual(e.exception.response_code, 400)
        a.set_user_password(uid, "long-enough-pw-1", temporary=False)
        a.update_realm("py", {"passwordPolicy": ""})
        a.delete_user(uid)

    def test_3_delete(self):
        a = self.admin
        uid = a.get_user_id("pat")
        a.delete_user(uid)
        self.assertIsNone(a.get_user_id("pat"))


if __name__ == "__main__":
    result = unittest.main(exit=False, verbosity=2).result
    print(f"{result.testsRun - len(result.failures) - len(result.errors)} passed, {len(result.failures) + len(result.errors)} failed")
    sys.exit(0 if result.wasSuccessful() else 1)
