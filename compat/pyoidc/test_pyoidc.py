"""Drives Gatehouse's OpenID Provider with pyoidc (`oic`, pinned in
requirements.txt), an OpenID Certified relying-party library: discovery
(issuer checked), the code flow with client_secret_basic and
client_secret_post, ID token checks (signature from the JWKS, nonce,
at_hash and c_hash), userinfo, refresh, the implicit and hybrid response
types, dynamic registration with an initial access token followed by a
login with the registered client, and RP-initiated logout with
id_token_hint. Starts the real binary on ephemeral ports."""
import os, re, sys, unittest, urllib.parse
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from harness import Gatehouse  # noqa: E402

import requests
from oic import rndstr
from oic.oic import Client
from oic.oic.message import AuthorizationResponse, RegistrationResponse
from oic.utils.authn.client import CLIENT_AUTHN_METHOD

REDIRECT = "http://127.0.0.1:9/cb"
LOGGED_OUT = "http://127.0.0.1:9/bye"


class PyOidc(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.gatehouse = Gatehouse("rp-admin", "gatehouse-pyoidc-")
        cls.base = cls.gatehouse.base
        cls.admin = requests.post(f"{cls.base}/realms/master/protocol/openid-connect/token", data={
            "grant_type": "password", "client_id": "admin-cli", "username": "admin", "password": "rp-admin"}).json()["access_token"]
        r = requests.post(f"{cls.base}/admin/realms", headers={"Authorization": "Bearer " + cls.admin}, json={
            "realm": "rp", "enabled": True,
            "clients": [{"clientId": "web", "secret": "web-secret", "redirectUris": [REDIRECT], "implicitFlowEnabled": True,
                         "attributes": {"post.logout.redirect.uris": LOGGED_OUT}}],
            "users": [{"username": "alice", "email": "alice@example.com", "emailVerified": True, "firstName": "Alice",
                       "lastName": "Liddell", "enabled": True, "credentials": [{"type": "password", "value": "alice-pw"}]}]})
        assert r.status_code == 201, r.text
        cls.issuer = f"{cls.base}/realms/rp"

    @classmethod
    def tearDownClass(cls):
        cls.gatehouse.stop()

    def rp(self, client_id="web", secret="web-secret"):
        c = Client(client_authn_method=CLIENT_AUTHN_METHOD)
        c.provider_config(self.issuer)
        c.store_registration_info(RegistrationResponse(client_id=client_id, client_secret=secret, redirect_uris=[REDIRECT]))
        return c

    def log_in(self, c, response_type, scope=("openid", "email", "profile"), client_id="web"):
        """What a browser does: the login page filled in; the RP's callback
        parameters (query or fragment) and the state and nonce sent."""
        state, nonce = rndstr(), rndstr()
        areq = c.construct_AuthorizationRequest(request_args={
            "client_id": client_id, "response_type": response_type, "scope": list(scope),
            "nonce": nonce, "redirect_uri": REDIRECT, "state": state})
        s = requests.Session()
        page = s.get(areq.request(c.authorization_endpoint), allow_redirects=False)
        self.assertEqual(page.status_code, 200, page.text[:300])
        action = re.search(r'<form[^>]*action="([^"]+)"', page.text).group(1).replace("&amp;", "&")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        r = s.post(urllib.parse.urljoin(self.base, action),
                   data={"username": "alice", "password": "alice-pw", "csrf": csrf}, allow_redirects=False)
        self.assertEqual(r.status_code, 302, r.text[:300])
        url = urllib.parse.urlparse(r.headers["location"])
        info = url.query if response_type == "code" else url.fragment
        aresp = c.parse_response(AuthorizationResponse, info=info, sformat="urlencoded")
        self.assertEqual(aresp["state"], state)
        return aresp, state, nonce, s

    def test_1_discovery_checks_the_issuer(self):
        c = self.rp()
        self.assertEqual(c.provider_info["issuer"], self.issuer)
        self.assertIn("code id_token", c.provider_info["response_types_supported"])

    def test_2_code_flow_userinfo_refresh_with_both_secret_methods(self):
        for method in ["client_secret_basic", "client_secret_post"]:
            c = self.rp()
            aresp, state, nonce, _ = self.log_in(c, "code")
            tokens = c.do_access_token_request(state=state, request_args={"code": aresp["code"]}, authn_method=method)
            self.assertEqual(tokens["id_token"]["nonce"], nonce)
            self.assertEqual(tokens["id_token"]["aud"], ["web"])
            info = c.do_user_info_request(state=state)
            self.assertEqual((info["sub"], info["email"]), (tokens["id_token"]["sub"], "alice@example.com"))
            refreshed = c.do_access_token_refresh(state=state, authn_method=method)
            self.assertIn("access_token", refreshed)

    def test_3_implicit_and_hybrid_response_types(self):
        for rtype in ["id_token", "id_token token", "code id_token", "code token", "code id_token token"]:
            c = self.rp()
            aresp, state, nonce, _ = self.log_in(c, rtype)
            if "id_token" in rtype:
                # pyoidc checked its signature, nonce, at_hash and c_hash.
                self.assertEqual(aresp["id_token"]["nonce"], nonce, rtype)
            if "code" in rtype:
                tokens = c.do_access_token_request(state=state, request_args={"code": aresp["code"]},
                                                   authn_method="client_secret_basic")
                self.assertIn("id_token", tokens, rtype)

    def test_4_dynamic_registration_with_an_initial_access_token(self):
        r = requests.post(f"{self.base}/admin/realms/rp/clients-initial-access",
                          headers={"Authorization": "Bearer " + self.admin}, json={"count": 1, "expiration": 600})
        self.assertEqual(r.status_code, 200, r.text)
        c = Client(client_authn_method=CLIENT_AUTHN_METHOD)
        c.provider_config(self.issuer)
        reg = c.register(c.provider_info["registration_endpoint"], registration_token=r.json()["token"],
                         redirect_uris=[REDIRECT], client_name="pyoidc", token_endpoint_auth_method="client_secret_basic")
        self.assertTrue(reg["client_id"] and reg["client_secret"])
        aresp, state, _, _ = self.log_in(c, "code", client_id=reg["client_id"])
        tokens = c.do_access_token_request(state=state, request_args={"code": aresp["code"]},
                                           authn_method="client_secret_basic")
        self.assertEqual(tokens["id_token"]["aud"], [reg["client_id"]])

    def test_5_rp_initiated_logout(self):
        c = self.rp()
        aresp, state, _, browser = self.log_in(c, "code")
        c.do_access_token_request(state=state, request_args={"code": aresp["code"]}, authn_method="client_secret_basic")
        end = c.construct_EndSessionRequest(state=state, request_args={"post_logout_redirect_uri": LOGGED_OUT,
                                                                       "state": "bye"})
        r = browser.get(end.request(c.end_session_endpoint), allow_redirects=False)
        self.assertEqual(r.status_code, 302, r.text[:300])
        self.assertTrue(r.headers["location"].startswith(LOGGED_OUT + "?state=bye"), r.headers["location"])
        # The session is over: its refresh token no longer works.
        after = c.do_access_token_refresh(state=state, authn_method="client_secret_basic")
        self.assertEqual(after.get("error"), "invalid_grant", after.to_dict())


if __name__ == "__main__":
    result = unittest.main(exit=False, verbosity=2).result
    print(f"{result.testsRun - len(result.failures) - len(result.errors)} passed, {len(result.failures) + len(result.errors)} failed")
    sys.exit(0 if result.wasSuccessful() else 1)
