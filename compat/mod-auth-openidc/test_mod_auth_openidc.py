"""Drives Gatehouse with mod_auth_openidc (Debian's libapache2-mod-auth-openidc,
an OpenID Certified relying party for Apache httpd) protecting a CGI script:
discovery, the code flow with PKCE and client_secret_basic, ID token checks
(signature from the JWKS, issuer, audience, nonce, the `iss` of the
authorization response), claims handed to the application, claim-based
authorization (`Require claim`), RP-initiated logout with id_token_hint,
and back-channel logout (a logout token from Gatehouse ends the Apache
session). Starts the real Gatehouse binary and Apache on ephemeral ports;
a Python requests session plays the browser."""
import os, re, shutil, socket, stat, subprocess, sys, tempfile, time, unittest, urllib.parse
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from harness import Gatehouse  # noqa: E402

import requests

APACHE = shutil.which("apache2") or "/usr/sbin/apache2"
MODULES = "/usr/lib/apache2/modules"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ModAuthOpenidc(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.gatehouse = Gatehouse("httpd-admin", "gatehouse-httpd-")
        cls.base = cls.gatehouse.base
        port = free_port()
        cls.app = f"http://127.0.0.1:{port}"
        cls.redirect = f"{cls.app}/protected/redirect_uri"
        admin = requests.post(f"{cls.base}/realms/master/protocol/openid-connect/token", data={
            "grant_type": "password", "client_id": "admin-cli", "username": "admin",
            "password": "httpd-admin"}).json()["access_token"]
        r = requests.post(f"{cls.base}/admin/realms", headers={"Authorization": "Bearer " + admin}, json={
            "realm": "web", "enabled": True,
            "clients": [{"clientId": "apache", "secret": "apache-secret", "redirectUris": [cls.redirect],
                         "attributes": {"post.logout.redirect.uris": f"{cls.app}/loggedout",
                                        "backchannel.logout.url": f"{cls.redirect}?logout=backchannel",
                                        "backchannel.logout.session.required": "true"}}],
            "groups": [{"name": "sales"}],
            "users": [
                {"username": "alice", "email": "alice@example.com", "emailVerified": True, "firstName": "Alice",
                 "lastName": "Liddell", "enabled": True, "groups": ["/sales"],
                 "credentials": [{"type": "password", "value": "alice-pw"}]},
                {"username": "bob", "email": "bob@example.com", "emailVerified": True, "firstName": "Bob",
                 "lastName": "Builder", "enabled": True, "credentials": [{"type": "password", "value": "bob-pw"}]}]})
        assert r.status_code == 201, r.text
        cls.dir = tempfile.mkdtemp(prefix="gatehouse-httpd-")
        os.chmod(cls.dir, 0o755)
        script = os.path.join(cls.dir, "whoami.sh")
        with open(script, "w") as f:
            f.write("#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'\n"
                    "echo \"user=$REMOTE_USER\"\necho \"email=$OIDC_CLAIM_email\"\necho \"groups=$OIDC_CLAIM_groups\"\n")
        os.chmod(script, 0o755)
        with open(os.path.join(cls.dir, "loggedout"), "w") as f:
            f.write("logged out\n")
        run_as = "User www-data\nGroup www-data\n" if os.geteuid() == 0 else ""
        conf = f"""ServerRoot "{cls.dir}"
ServerName 127.0.0.1
Listen 127.0.0.1:{port}
PidFile {cls.dir}/httpd.pid
ErrorLog {cls.dir}/error.log
LogLevel warn
Mutex file:{cls.dir} default
DefaultRuntimeDir {cls.dir}
DocumentRoot {cls.dir}
{run_as}
LoadModule mpm_prefork_module {MODULES}/mod_mpm_prefork.so
LoadModule authz_core_module {MODULES}/mod_authz_core.so
LoadModule authz_user_module {MODULES}/mod_authz_user.so
LoadModule authn_core_module {MODULES}/mod_authn_core.so
LoadModule alias_module {MODULES}/mod_alias.so
LoadModule cgi_module {MODULES}/mod_cgi.so
LoadModule auth_openidc_module {MODULES}/mod_auth_openidc.so

OIDCProviderMetadataURL {cls.base}/realms/web/.well-known/openid-configuration
OIDCClientID apache
OIDCClientSecret apache-secret
OIDCRedirectURI {cls.redirect}
OIDCCryptoPassphrase compat-passphrase-0123456789
OIDCScope "openid email profile"
OIDCPKCEMethod S256
OIDCRemoteUserClaim preferred_username
OIDCDefaultLoggedOutURL {cls.app}/loggedout

ScriptAlias /protected/whoami {script}
ScriptAlias /protected/sales/whoami {script}
<Location /protected>
  AuthType openid-connect
  Require valid-user
</Location>
<Location /protected/sales>
  AuthType openid-connect
  Require claim groups:sales
</Location>
"""
        with open(os.path.join(cls.dir, "httpd.conf"), "w") as f:
            f.write(conf)
        # Its own process group: on shutdown the prefork MPM signals its whole
        # group, which would otherwise be this test and whoever started it.
        cls.httpd = subprocess.Popen([APACHE, "-f", os.path.join(cls.dir, "httpd.conf"), "-DFOREGROUND"],
                                     start_new_session=True)
        for _ in range(100):
            try:
                requests.get(f"{cls.app}/loggedout", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        else:
            raise RuntimeError("Apache did not start: " + cls.log())

    @classmethod
    def log(cls):
        try:
            with open(os.path.join(cls.dir, "error.log")) as f:
                return f.read()[-3000:]
        except OSError:
            return ""

    @classmethod
    def tearDownClass(cls):
        cls.httpd.terminate()
        cls.httpd.wait()
        cls.gatehouse.stop()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def log_in(self, s, path, username, password):
        """A browser asking Apache for `path`: sent to Gatehouse's login page,
        the form filled in, back to Apache's redirect URI, then to `path`."""
        r = s.get(self.app + path, allow_redirects=False)
        self.assertEqual(r.status_code, 302, self.log())
        auth = r.headers["location"]
        self.assertTrue(auth.startswith(f"{self.base}/realms/web/protocol/openid-connect/auth?"), auth)
        q = urllib.parse.parse_qs(urllib.parse.urlparse(auth).query)
        self.assertEqual(q["code_challenge_method"], ["S256"])
        self.assertIn("nonce", q)
        page = s.get(auth, allow_redirects=False)
        self.assertEqual(page.status_code, 200, page.text[:300])
        action = re.search(r'<form[^>]*action="([^"]+)"', page.text).group(1).replace("&amp;", "&")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        r = s.post(urllib.parse.urljoin(self.base, action),
                   data={"username": username, "password": password, "csrf": csrf}, allow_redirects=False)
        self.assertEqual(r.status_code, 302, r.text[:300])
        back = r.headers["location"]
        self.assertTrue(back.startswith(self.redirect + "?"), back)
        # Apache redeems the code, checks the ID token, starts its session.
        r = s.get(back, allow_redirects=False)
        self.assertEqual(r.status_code, 302, self.log())
        self.assertEqual(r.headers["location"], self.app + path)
        return s.get(self.app + path, allow_redirects=False)

    def whoami(self, r):
        self.assertEqual(r.status_code, 200, r.text[:300] + self.log())
        return dict(line.split("=", 1) for line in r.text.strip().splitlines())

    def test_1_code_flow_hands_the_claims_to_the_application(self):
        s = requests.Session()
        me = self.whoami(self.log_in(s, "/protected/whoami", "alice", "alice-pw"))
        self.assertEqual(me["user"], "alice")
        self.assertEqual(me["email"], "alice@example.com")
        # The Apache session holds: no second trip to Gatehouse.
        self.assertEqual(self.whoami(s.get(self.app + "/protected/whoami", allow_redirects=False))["user"], "alice")

    def test_2_require_claim_authorizes_by_group(self):
        s = requests.Session()
        me = self.whoami(self.log_in(s, "/protected/sales/whoami", "alice", "alice-pw"))
        self.assertIn("sales", me["groups"])
        bob = requests.Session()
        r = self.log_in(bob, "/protected/sales/whoami", "bob", "bob-pw")
        self.assertEqual(r.status_code, 401, r.text[:200])

    def test_3_rp_initiated_logout_ends_the_gatehouse_session(self):
        s = requests.Session()
        self.whoami(self.log_in(s, "/protected/whoami", "alice", "alice-pw"))
        r = s.get(f"{self.redirect}?logout={urllib.parse.quote(self.app + '/loggedout', safe='')}", allow_redirects=False)
        self.assertEqual(r.status_code, 302, self.log())
        end = r.headers["location"]
        self.assertTrue(end.startswith(f"{self.base}/realms/web/protocol/openid-connect/logout?"), end)
        self.assertIn("id_token_hint", urllib.parse.parse_qs(urllib.parse.urlparse(end).query))
        r = s.get(end, allow_redirects=False)
        self.assertEqual(r.status_code, 302, r.text[:300])
        self.assertTrue(r.headers["location"].startswith(self.app + "/loggedout"), r.headers["location"])
        # Both sessions are gone: Apache sends the browser to a login page again.
        r = s.get(self.app + "/protected/whoami", allow_redirects=False)
        self.assertEqual(r.status_code, 302)
        page = s.get(r.headers["location"], allow_redirects=False)
        self.assertEqual(page.status_code, 200)
        self.assertIn('name="password"', page.text)

    def test_4_back_channel_logout_ends_the_apache_session(self):
        s = requests.Session()
        self.whoami(self.log_in(s, "/protected/whoami", "alice", "alice-pw"))
        # Logged out at Gatehouse (the admin ends her sessions): Gatehouse posts
        # a logout token to Apache, which drops its session.
        admin = requests.post(f"{self.base}/realms/master/protocol/openid-connect/token", data={
            "grant_type": "password", "client_id": "admin-cli", "username": "admin",
            "password": "httpd-admin"}).json()["access_token"]
        h = {"Authorization": "Bearer " + admin}
        alice = requests.get(f"{self.base}/admin/realms/web/users?username=alice&exact=true", headers=h).json()[0]["id"]
        r = requests.post(f"{self.base}/admin/realms/web/users/{alice}/logout", headers=h)
        self.assertEqual(r.status_code, 204)
        for _ in range(50):
            r = s.get(self.app + "/protected/whoami", allow_redirects=False)
            if r.status_code == 302:
                break
            time.sleep(0.1)
        self.assertEqual(r.status_code, 302, "the Apache session survived the logout: " + self.log())
        self.assertTrue(r.headers["location"].startswith(f"{self.base}/realms/web/protocol/openid-connect/auth?"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
