"""Hostile-input sweep of the identity provider: every admin representation
Gatehouse takes, each field replaced by wrong types, huge, empty, null and
nested values, and raw bodies that are not JSON; every OAuth endpoint with
every grant type, each parameter replaced by hostile values, and raw bodies
and Authorization headers that do not parse; forged DPoP proofs (hostile
keys, types, algorithms and claims) wherever a proof is read. Bad input must get a 4xx: the
sweep fails on any 5xx or broken connection, naming the request.

Runs the real binary through the Python harness (ephemeral ports)."""
import base64, copy, json, os, sys
import requests

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from harness import Gatehouse  # noqa: E402

g = Gatehouse("sweep-admin", prefix="gh-sweep-")
B = g.base
s = requests.Session()
fails = []
sent = 0


def admin_token():
    r = s.post(f"{B}/realms/master/protocol/openid-connect/token",
               data=dict(grant_type="password", client_id="admin-cli", username="admin", password="sweep-admin"))
    return r.json()["access_token"]


H = {"Authorization": "Bearer " + admin_token()}


def send(method, url, what, headers=None, **kw):
    """One request; a 5xx or a broken connection is recorded as a failure."""
    global sent, H
    sent += 1
    try:
        r = s.request(method, url, headers=headers, allow_redirects=False, timeout=30, **kw)
    except requests.RequestException as e:
        fails.append((what, "no answer", str(e)[:160]))
        return None
    if r.status_code >= 500:
        fails.append((what, r.status_code, r.text[:160]))
    return r


def admin(method, path, headers=None, **kw):
    global H
    r = send(method, B + path, (method, path, str(kw.get("json", kw.get("data")))[:120]),
             headers={**H, **(headers or {})}, **kw)
    if r is not None and r.status_code == 401:
        H = {"Authorization": "Bearer " + admin_token()}
        r = send(method, B + path, (method, path), headers={**H, **(headers or {})}, **kw)
    return r


# --- admin representations
admin("POST", "/admin/realms", json={"realm": "f", "enabled": True})
admin("POST", "/admin/realms/f/clients", json={"clientId": "c1", "redirectUris": ["http://x/cb"], "secret": "s"})
cid = admin("GET", "/admin/realms/f/clients?clientId=c1").json()[0]["id"]
admin("POST", "/admin/realms/f/users",
      json={"username": "user1", "email": "user1@x.y", "credentials": [{"type": "password", "value": "pw"}]})
uid = admin("GET", "/admin/realms/f/users?username=user1").json()[0]["id"]
admin("POST", "/admin/realms/f/groups", json={"name": "g1"})
gid = admin("GET", "/admin/realms/f/groups").json()[0]["id"]
admin("POST", "/admin/realms/f/roles", json={"name": "r1"})
admin("POST", "/admin/realms/f/client-scopes", json={"name": "cs1", "protocol": "openid-connect"})
csid = [x for x in admin("GET", "/admin/realms/f/client-scopes").json() if x["name"] == "cs1"][0]["id"]
# An organization with a member and a role of its own.
admin("PUT", "/admin/realms/f", json={"organizationsEnabled": True})
admin("POST", "/admin/realms/f/organizations", json={"name": "o1", "domains": [{"name": "o1.com"}]})
oid = admin("GET", "/admin/realms/f/organizations?search=o1").json()[0]["id"]
admin("POST", f"/admin/realms/f/organizations/{oid}/members", json=uid)
OR = f"/admin/realms/f/organizations/{oid}/roles"
admin("POST", OR, json={"name": "or1"})
orid = admin("GET", OR + "?search=or1").json()[0]["id"]
r1id = admin("GET", "/admin/realms/f/roles/r1").json()["id"]
# An LDAP provider whose directory does not answer (nothing listens on
# port 1): logins of unknown names and syncs meet a dead directory.
LDAP = {"name": "dir", "providerId": "ldap", "providerType": "org.keycloak.storage.UserStorageProvider",
        "config": {"editMode": ["READ_ONLY"], "connectionUrl": ["ldap://127.0.0.1:1"], "bindDn": ["cn=a"],
                   "bindCredential": ["s"], "usersDn": ["ou=p"], "connectionTimeout": ["500"],
                   "customUserSearchFilter": ["(a=b)"], "batchSizeForSync": ["10"]}}
admin("POST", "/admin/realms/f/components", json=LDAP)
ldid = admin("GET", "/admin/realms/f/components?name=dir").json()[0]["id"]
# A group mapper under it (its directory never answers either).
MAPPER = {"name": "groups", "providerId": "group-ldap-mapper", "parentId": ldid,
          "providerType": "org.keycloak.storage.ldap.mappers.LDAPStorageMapper",
          "config": {"groups.dn": ["ou=g"], "mode": ["READ_ONLY"], "membership.attribute.type": ["DN"],
                     "groups.path": ["/"], "user.roles.retrieve.strategy": ["LOAD_GROUPS_BY_MEMBER_ATTRIBUTE"]}}
admin("POST", "/admin/realms/f/components", json=MAPPER)
mpid = admin("GET", f"/admin/realms/f/components?name=groups&parent={ldid}").json()[0]["id"]

MUTATIONS = [None, 0, -1, 1e308, 2**70, "", "x" * 5000, True, [], {}, [None], {"a": None}, "\u0000", "é\ud7ff",
             [1, "a", {}]]


def mutate(obj, path=()):
    if isinstance(obj, dict):
        for k, v in obj.items():
            for m in MUTATIONS:
                o = copy.deepcopy(obj)
                o[k] = m
                yield o
            for sub in mutate(v, path + (k,)):
                o = copy.deepcopy(obj)
                o[k] = sub
                yield o
    elif isinstance(obj, list) and obj:
        for m in MUTATIONS:
            yield [m] + obj[1:]


replaced = [f"/admin/realms/f", f"/admin/realms/f/clients/{cid}", f"/admin/realms/f/users/{uid}",
            f"/admin/realms/f/groups/{gid}", "/admin/realms/f/roles/r1", f"/admin/realms/f/client-scopes/{csid}",
            "/admin/realms/f/users/profile", f"{OR}/{orid}", f"/admin/realms/f/components/{ldid}",
            f"/admin/realms/f/components/{mpid}"]
for path in replaced:
    rep = admin("GET", path).json()
    for o in mutate(rep):
        admin("PUT", path, json=o)
    admin("PUT", path, json=rep)

created = {
    "/admin/realms/f/users": {"username": "new-user", "email": "n@x.y", "firstName": "a", "attributes": {"k": ["v"]},
                              "credentials": [{"type": "password", "value": "p", "temporary": False}],
                              "groups": ["/g1"], "realmRoles": ["r1"], "requiredActions": ["VERIFY_EMAIL"]},
    "/admin/realms/f/clients": {"clientId": "n", "redirectUris": ["http://x/*"],
                                "attributes": {"pkce.code.challenge.method": "S256"},
                                "protocolMappers": [{"name": "m", "protocol": "openid-connect",
                                                     "protocolMapper": "oidc-hardcoded-claim-mapper",
                                                     "config": {"claim.name": "a", "claim.value": "b"}}],
                                "defaultClientScopes": ["profile"]},
    "/admin/realms/f/groups": {"name": "n", "attributes": {"a": ["b"]}},
    "/admin/realms/f/roles": {"name": "n", "composite": True, "composites": {"realm": ["r1"]}},
    "/admin/realms/f/client-scopes": {"name": "n", "protocol": "openid-connect",
                                      "protocolMappers": [{"name": "m", "protocol": "openid-connect",
                                                           "protocolMapper": "oidc-usermodel-attribute-mapper",
                                                           "config": {"user.attribute": "a", "claim.name": "a"}}]},
    "/admin/realms": {"realm": "n", "enabled": True, "accessTokenLifespan": 60, "passwordPolicy": "length(8)",
                      "smtpServer": {"host": "h"}},
    "/admin/realms/f/identity-provider/instances": {"alias": "n", "providerId": "oidc",
                                                    "config": {"clientId": "a", "tokenUrl": "http://x",
                                                               "authorizationUrl": "http://x"}},
    "/admin/realms/f/authentication/flows": {"alias": "n", "providerId": "basic-flow", "topLevel": True},
    "/admin/realms/f/organizations": {"name": "n", "alias": "n", "domains": [{"name": "n.com"}]},
    OR: {"name": "n", "description": "d", "attributes": {"a": ["b"]}},
    f"{OR}/{orid}/composites": [{"id": r1id}],
    f"{OR}/{orid}/users": [{"id": uid}],
    f"/admin/realms/f/users/{uid}/role-mappings/realm": [{"name": "r1"}],
    f"/admin/realms/f/clients/{cid}/protocol-mappers/models": {"name": "m2", "protocol": "openid-connect",
                                                               "protocolMapper": "oidc-hardcoded-claim-mapper",
                                                               "config": {"claim.name": "a", "claim.value": "b"}},
    "/admin/realms/f/partialImport": {"ifResourceExists": "SKIP", "users": [{"username": "pi"}],
                                      "clients": [{"clientId": "pic"}]},
    "/admin/realms/f/components": LDAP,
    "/admin/realms/f/testLDAPConnection": {"action": "testAuthentication", "connectionUrl": "ldap://127.0.0.1:1",
                                           "bindDn": "cn=a", "bindCredential": "**********", "componentId": ldid,
                                           "connectionTimeout": "500", "startTls": "false", "authType": "simple"},
    f"/admin/realms/f/user-storage/{ldid}/sync?action=triggerFullSync": {},
    f"/admin/realms/f/user-storage/{ldid}/sync?action=x": {},
    f"/admin/realms/f/user-storage/{ldid}/unlink-users": {},
    "/admin/realms/f/components?mapper": MAPPER,
    f"/admin/realms/f/user-storage/{ldid}/mappers/{mpid}/sync?direction=fedToKeycloak": {},
    "/admin/api/f/clients/v2": {"clientId": "v2", "loginFlows": ["STANDARD"], "redirectUris": ["http://x/cb"],
                                "auth": {"method": "client-secret"}, "roles": ["a"]},
}
for path, rep in created.items():
    for o in mutate(rep):
        r = admin("POST", path, json=o)
        if r is not None and r.status_code == 201:
            loc = r.headers.get("Location")
            if loc:
                send("DELETE", loc, ("cleanup", loc), headers=H)
            elif path == "/admin/realms":
                admin("DELETE", "/admin/realms/n")
            elif path.startswith("/admin/api/"):
                admin("DELETE", path + "/v2")
for path in list(created) + replaced:
    for body in [b"", b"{", b"null", b"[]", b"\xff\xfe", b'{"a":' * 2000, b'"x"', b"1e999", b'{"username":"\\ud800"}']:
        for method in ("POST", "PUT"):
            admin(method, path, data=body, headers={"Content-Type": "application/json"})
admin_sent = sent

# --- OAuth endpoints
admin("PUT", "/admin/realms/f", json={"bruteForceProtected": False})
admin("POST", "/admin/realms/f/clients",
      json={"clientId": "c2", "redirectUris": ["http://x/cb"], "secret": "s", "directAccessGrantsEnabled": True,
            "serviceAccountsEnabled": True, "attributes": {"oauth2.device.authorization.grant.enabled": "true"}})
O = f"{B}/realms/f/protocol/openid-connect"
good = s.post(O + "/token", data=dict(grant_type="password", client_id="c2", client_secret="s", username="user1",
                                      password="pw", scope="openid")).json()
VALUES = ["", "x", "\x00", "%", "%zz", "é", "a" * 50000, "http://x/cb", "openid", "S256", "-1",
          "99999999999999999999", good.get("access_token", ""), good.get("refresh_token", ""),
          good.get("id_token", ""), "a.b.c", "eyJhbGciOiJub25lIn0.e30.", "c2", "s", "user1", "pw", "true", "null", "[]",
          "{}"]
PARAMS = ["grant_type", "client_id", "client_secret", "username", "password", "scope", "code", "redirect_uri",
          "code_verifier", "refresh_token", "token", "token_type_hint", "device_code", "client_assertion",
          "client_assertion_type", "audience", "subject_token", "subject_token_type", "requested_token_type",
          "resource", "requested_subject", "permission", "response_type", "state", "nonce", "prompt", "max_age",
          "request", "request_uri", "code_challenge", "code_challenge_method", "id_token_hint",
          "post_logout_redirect_uri", "login_hint", "response_mode", "claims", "acr_values", "auth_req_id"]
GRANTS = ["password", "client_credentials", "authorization_code", "refresh_token",
          "urn:ietf:params:oauth:grant-type:device_code", "urn:ietf:params:oauth:grant-type:token-exchange",
          "urn:ietf:params:oauth:grant-type:uma-ticket", "urn:openid:params:grant-type:ciba", "x"]
base = dict(client_id="c2", client_secret="s", username="user1", password="pw", scope="openid",
            redirect_uri="http://x/cb", code="x", refresh_token=good.get("refresh_token", ""), device_code="x",
            subject_token=good.get("access_token", ""))
ENDPOINTS = ["/token", "/token/introspect", "/revoke", "/logout", "/auth/device", "/ext/par/request",
             "/ext/ciba/auth", "/userinfo", "/auth"]
for ep in ENDPOINTS:
    for grant in GRANTS if ep == "/token" else GRANTS[:1]:
        for p in PARAMS:
            for v in VALUES:
                d = dict(base, grant_type=grant)
                d[p] = v
                what = (ep, grant, p, v[:20])
                if ep == "/auth":
                    send("GET", O + ep, what, params=d)
                send("POST", O + ep, what, data=d)
for ep in ENDPOINTS:
    for body, ct in [(b"\xff\xfe=\xff", "application/x-www-form-urlencoded"),
                     (b"a=1&a=2&grant_type=password&grant_type=x", "application/x-www-form-urlencoded"),
                     (b"{}", "application/json"), (b"=" * 10000, "application/x-www-form-urlencoded"),
                     (b"%", "application/x-www-form-urlencoded"), (b"x", "multipart/form-data; boundary=z")]:
        for auth in [None, "Basic", "Basic !!!", "Basic " + base64.b64encode(b"c2").decode(),
                     "Basic " + base64.b64encode(b"\xff:\xff").decode(), "Bearer", "Bearer " + "a" * 9000,
                     "Bearer a.b.c", "DPoP x"]:
            headers = {"Content-Type": ct}
            if auth:
                headers["Authorization"] = auth
            send("POST", O + ep, (ep, body[:20], auth and auth[:20]), headers=headers, data=body)
            send("GET", O + ep, (ep, "GET", auth and auth[:20]), headers=headers)

# --- DPoP proofs (RFC 9449): hostile headers, keys and claims wherever a
# proof is read (token, PAR and userinfo endpoints, admin and account APIs).
def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def forged(header, claims, sig="AAAA"):
    return ".".join([b64u(json.dumps(header).encode()), b64u(json.dumps(claims).encode()), sig])


long = "A" * 5000
JWKS = [None, "x", [], {}, {"kty": "RSA", "n": "", "e": ""}, {"kty": "RSA", "n": long, "e": long},
        {"kty": "EC", "crv": "P-256", "x": "!!", "y": 5}, {"kty": "EC", "crv": "P-521", "x": "AQAB", "y": "AQAB"},
        {"kty": "OKP", "crv": "Ed25519", "x": long}, {"kty": "oct", "k": "AAAA"},
        {"kty": "EC", "crv": "P-256", "x": "AQAB", "y": "AQAB", "d": "AQAB"}]
CLAIMS = [{}, {"jti": "j", "htm": "POST", "htu": ":::", "iat": 1}, {"jti": None, "htm": [], "htu": {}, "iat": "x"},
          {"jti": "j", "htm": "GET", "htu": "http://" + "a" * 3000, "iat": 2 ** 70, "ath": 5}]
PROOFS = ["", "x", "a.b.c", long, "\u00ff", "..", ".e30.", "e30.e30.e30"]
for alg in ["ES256", "RS256", "EdDSA", "none", "HS256", None, 5]:
    for jwk in JWKS:
        for typ in ["dpop+jwt", "JWT", None]:
            for c in CLAIMS:
                PROOFS.append(forged({"typ": typ, "alg": alg, "jwk": jwk}, c))
at = good.get("access_token", "")
DPOP_TARGETS = [("POST", O + "/token", dict(grant_type="client_credentials", client_id="c2", client_secret="s"), None),
                ("POST", O + "/ext/par/request", dict(client_id="c2", client_secret="s", response_type="code",
                                                     redirect_uri="http://x/cb"), None),
                ("GET", O + "/userinfo", None, "DPoP " + at),
                ("GET", B + "/admin/realms", None, "DPoP " + H["Authorization"].split(" ", 1)[1]),
                ("GET", B + "/realms/f/account", None, "DPoP " + at)]
for method, url, data, auth in DPOP_TARGETS:
    for proof in PROOFS:
        headers = {"DPoP": proof.encode("latin-1", "replace").decode("latin-1")}
        if auth:
            headers["Authorization"] = auth
        send(method, url, ("dpop", url[len(B):], proof[:40]), headers=headers, data=data)

g.stop()
print(f"admin API: {admin_sent} requests; OAuth endpoints: {sent - admin_sent} requests; failures: {len(fails)}")
seen = set()
for f in fails:
    key = (str(f[0])[:60], f[1])
    if key not in seen:
        seen.add(key)
        print(json.dumps(f, default=str)[:400])
sys.exit(1 if fails else 0)
