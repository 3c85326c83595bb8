//! LDAP user federation against a real OpenLDAP server (Debian's slapd,
//! started here on a free port with a throwaway database): the provider
//! created as Keycloak's admin client creates it, logins that import
//! directory users, syncs, the connection test, and removing or
//! unlinking imported users.

use crate::support::{self, Server};
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};

const SUFFIX: &str = "dc=example,dc=org";
const ADMIN_DN: &str = "cn=admin,dc=example,dc=org";
const ADMIN_PW: &str = "directory-secret";
const PEOPLE: &str = "ou=people,dc=example,dc=org";

/// A running slapd, stopped on drop: plain LDAP at `url`, LDAPS with a
/// self-signed certificate (trusted by nobody) at `ldaps_url`.
struct Slapd {
    child: Child,
    url: String,
    ldaps_url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn person(uid: &str, given: &str, sn: &str, pw: &str) -> String {
    format!(
        "dn: uid={uid},{PEOPLE}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {given}\nsn: {sn}\n\
         givenName: {given}\nmail: {uid}@example.org\nuserPassword: {pw}\n\n"
    )
}

impl Slapd {
    fn start() -> Slapd {
        let slapd = ["/usr/sbin/slapd", "/usr/local/sbin/slapd"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect("OpenLDAP's slapd is needed (apt-get install slapd ldap-utils; .ci/run installs it)");
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("db");
        std::fs::create_dir(&db).expect("db dir");
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        let made = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args(["-subj", "/CN=127.0.0.1", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("openssl");
        assert!(made.status.success(), "openssl: {made:?}");
        let conf = dir.path().join("slapd.conf");
        std::fs::write(
            &conf,
            format!(
                "TLSCertificateFile {}\nTLSCertificateKeyFile {}\n\
                 include /etc/ldap/schema/core.schema\ninclude /etc/ldap/schema/cosine.schema\n\
                 include /etc/ldap/schema/inetorgperson.schema\ninclude /etc/ldap/schema/nis.schema\n\
                 modulepath /usr/lib/ldap\n\
                 moduleload back_mdb\npidfile {}/slapd.pid\ndatabase mdb\nmaxsize 10485760\n\
                 suffix \"{SUFFIX}\"\nrootdn \"{ADMIN_DN}\"\nrootpw {ADMIN_PW}\ndirectory {}\n",
                cert.display(),
                key.display(),
                dir.path().display(),
                db.display()
            ),
        )
        .expect("slapd.conf");
        let mut ldif = format!(
            "dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n\n\
             dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n\n"
        );
        ldif.push_str(&person("jbrown", "James", "Brown", "ldap-pw"));
        ldif.push_str(&person("mgreen", "Mary", "Green", "mary-pw"));
        ldif.push_str(&person("clash", "Local", "Clash", "clash-pw"));
        let data = dir.path().join("data.ldif");
        std::fs::write(&data, ldif).expect("ldif");
        let added = Command::new("/usr/sbin/slapadd")
            .arg("-f")
            .arg(&conf)
            .arg("-l")
            .arg(&data)
            .output()
            .expect("slapadd");
        assert!(added.status.success(), "slapadd: {added:?}");
        let free = || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port")
                .port()
        };
        let (port, tls_port) = (free(), free());
        let url = format!("ldap://127.0.0.1:{port}");
        let ldaps_url = format!("ldaps://127.0.0.1:{tls_port}");
        let child = Command::new(slapd)
            .arg("-f")
            .arg(&conf)
            .arg("-h")
            .arg(format!("{url}/ {ldaps_url}/"))
            .arg("-d")
            .arg("0")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("slapd");
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Slapd {
            child,
            url,
            ldaps_url,
            _dir: dir,
        }
    }

    /// Adds entries with ldapadd, as a directory admin would.
    fn add(&self, ldif: &str) {
        self.run("ldapadd", ldif);
    }

    /// Changes entries with ldapmodify.
    fn modify(&self, ldif: &str) {
        self.run("ldapmodify", ldif);
    }

    fn run(&self, tool: &str, ldif: &str) {
        use std::io::Write;
        let mut c = Command::new(tool)
            .args(["-x", "-H", &self.url, "-D", ADMIN_DN, "-w", ADMIN_PW])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("ldapadd/ldapmodify (ldap-utils)");
        c.stdin
            .take()
            .expect("stdin")
            .write_all(ldif.as_bytes())
            .expect("write");
        assert!(c.wait().expect(tool).success(), "{tool} {ldif}");
    }
}

/// The provider as Keycloak's admin console creates one for OpenLDAP.
fn provider(url: &str, password: &str) -> Value {
    json!({
        "name": "corp-ldap", "providerId": "ldap",
        "providerType": "org.keycloak.storage.UserStorageProvider",
        "parentId": "fed",
        "config": {
            "enabled": ["true"], "vendor": ["other"], "editMode": ["READ_ONLY"],
            "connectionUrl": [url], "bindDn": [ADMIN_DN], "bindCredential": [password],
            "usersDn": [PEOPLE], "usernameLDAPAttribute": ["uid"], "rdnLDAPAttribute": ["uid"],
            "uuidLDAPAttribute": ["entryUUID"],
            "userObjectClasses": ["inetOrgPerson, organizationalPerson"],
            "searchScope": ["1"], "importEnabled": ["true"], "trustEmail": ["true"],
            "authType": ["simple"], "pagination": ["true"], "batchSizeForSync": ["1"]
        }
    })
}

async fn login(s: &Server, user: &str, pw: &str) -> (u16, Value) {
    let r = s.password_grant("fed", "cli", None, user, pw, None).await;
    let st = r.status().as_u16();
    (st, r.json().await.unwrap_or(Value::Null))
}

async fn sync(s: &Server, t: &str, id: &str, action: &str) -> (u16, Value) {
    let path = format!("/fed/user-storage/{id}/sync?action={action}");
    s.admin_post_json(t, &path, &json!({})).await
}

/// `name` among the users Gatehouse holds, listed without search terms
/// (a search would ask the directory and import the user again).
async fn local(s: &Server, t: &str, name: &str) -> Option<Value> {
    let (_, users) = s.admin_get(t, "/fed/users?max=1000").await;
    users
        .as_array()
        .and_then(|a| a.iter().find(|u| u["username"] == name))
        .cloned()
}

async fn user(s: &Server, t: &str, name: &str) -> Option<Value> {
    let (_, users) = s
        .admin_get(t, &format!("/fed/users?username={name}&exact=true"))
        .await;
    users.as_array().and_then(|a| a.first()).cloned()
}

/// A server with realm `fed` and its public client `cli` (direct grants
/// on); the server and an admin token.
async fn fed_realm() -> (Server, String) {
    let s = support::start().await;
    let t = s.admin_token().await;
    let (st, _) = s
        .admin_post(&t, "", &json!({"realm": "fed", "enabled": true}))
        .await;
    assert_eq!(st, 201);
    s.admin_create(
        &t,
        "/fed/clients",
        &json!({"clientId": "cli", "publicClient": true, "directAccessGrantsEnabled": true}),
    )
    .await;
    (s, t)
}

#[tokio::test]
async fn ldap_users_log_in_sync_and_go_with_their_provider() {
    let ldap = Slapd::start();
    let (s, t) = fed_realm().await;
    // A local user holding a name the directory also has.
    let (st, _) = s
        .admin_post(
            &t,
            "/fed/users",
            &json!({"username": "clash", "enabled": true}),
        )
        .await;
    assert_eq!(st, 201);

    // What Gatehouse cannot run is refused, not stored.
    let mut writable = provider(&ldap.url, ADMIN_PW);
    writable["config"]["editMode"] = json!(["WRITABLE"]);
    let mut kerberos = provider(&ldap.url, ADMIN_PW);
    kerberos["providerId"] = json!("kerberos");
    let mut no_mode = provider(&ldap.url, ADMIN_PW);
    no_mode["config"]
        .as_object_mut()
        .map(|c| c.remove("editMode"));
    for bad in [writable, kerberos, no_mode] {
        let (st, body) = s.admin_post_json(&t, "/fed/components", &bad).await;
        assert_eq!(st, 400, "{body}");
    }

    let id = s
        .admin_create(&t, "/fed/components", &provider(&ldap.url, ADMIN_PW))
        .await;
    let (st, c) = s.admin_get(&t, &format!("/fed/components/{id}")).await;
    assert_eq!(st, 200);
    assert_eq!(c["config"]["bindCredential"], json!(["**********"]));
    let (_, listed) = s
        .admin_get(
            &t,
            "/fed/components?type=org.keycloak.storage.UserStorageProvider",
        )
        .await;
    assert_eq!(listed.as_array().map(Vec::len), Some(1));
    assert!(!listed.to_string().contains(ADMIN_PW));
    let (st, name) = s
        .admin_get(&t, &format!("/fed/user-storage/{id}/name"))
        .await;
    assert_eq!((st, name), (200, json!({"id": id, "name": "corp-ldap"})));
    let (st, _) = s.admin_get(&t, "/fed/user-storage/nope/name").await;
    assert_eq!(st, 404);

    // A directory user logs in and is imported, linked to the provider.
    let (st, tokens) = login(&s, "jbrown", "ldap-pw").await;
    assert_eq!(st, 200, "{tokens}");
    let claims = s
        .verified("fed", tokens["access_token"].as_str().unwrap_or(""))
        .await;
    assert_eq!(claims["preferred_username"], "jbrown");
    assert_eq!(claims["email"], "jbrown@example.org");
    assert_eq!(claims["given_name"], "James");
    let u = user(&s, &t, "jbrown").await.expect("imported");
    assert_eq!(u["federationLink"], json!(id));
    assert_eq!(u["emailVerified"], true);
    assert_eq!(
        u["attributes"]["LDAP_ENTRY_DN"],
        json!([format!("uid=jbrown,{PEOPLE}")])
    );
    assert!(
        u["attributes"]["LDAP_ID"][0]
            .as_str()
            .is_some_and(|v| v.len() == 36)
    );
    // A read-only directory keeps the password.
    let r = s
        .http
        .put(format!(
            "{}/admin/realms/fed/users/{}/reset-password",
            s.base,
            u["id"].as_str().unwrap_or("")
        ))
        .bearer_auth(&t)
        .json(&json!({"type": "password", "value": "local-pw", "temporary": false}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap_or(Value::Null);
    assert_eq!(
        body["error_description"],
        "Can't reset password as account is read only"
    );
    // The entry a user binds as is not the admin's to move.
    let uid = u["id"].as_str().unwrap_or("").to_owned();
    let moved = json!({"firstName": "Jim", "attributes": {"LDAP_ENTRY_DN": [format!("uid=mgreen,{PEOPLE}")]}});
    assert_eq!(
        s.admin_put(&t, &format!("/fed/users/{uid}"), Some(&moved))
            .await,
        204
    );
    let u = user(&s, &t, "jbrown").await.expect("still there");
    assert_eq!(
        (
            u["firstName"].clone(),
            u["attributes"]["LDAP_ENTRY_DN"].clone()
        ),
        (json!("Jim"), json!([format!("uid=jbrown,{PEOPLE}")]))
    );
    assert_eq!(login(&s, "jbrown", "mary-pw").await.0, 401);
    // The directory checks the password, every time.
    for (name, pw) in [
        ("jbrown", "wrong"),
        ("jbrown", ""),
        ("*", "ldap-pw"),
        ("nobody", "x"),
    ] {
        let (st, body) = login(&s, name, pw).await;
        assert!(st == 401 || st == 400, "{name}: {st} {body}");
        // An empty password is a missing parameter before it is a
        // wrong one (and never reaches the directory as an anonymous bind).
        let want = if pw.is_empty() {
            "invalid_request"
        } else {
            "invalid_grant"
        };
        assert_eq!(body["error"], want);
    }
    assert!(user(&s, &t, "nobody").await.is_none());
    // By e-mail too.
    let (st, _) = login(&s, "mgreen@example.org", "mary-pw").await;
    assert_eq!(st, 200);

    // A full sync imports the rest, one entry per page here; a local
    // namesake is left alone.
    let (st, r) = sync(&s, &t, &id, "triggerFullSync").await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(
        (r["added"].clone(), r["failed"].clone()),
        (json!(0), json!(1)),
        "{r}"
    );
    assert_eq!(r["ignored"], false);
    assert!(
        user(&s, &t, "clash")
            .await
            .is_some_and(|u| u.get("federationLink").is_none())
    );
    // An admin's search finds directory users not imported yet, as
    // Keycloak's does (and imports them).
    ldap.add(&person("rred", "Rosa", "Red", "rosa-pw"));
    let (st, found) = s.admin_get(&t, "/fed/users?search=rre").await;
    assert_eq!(st, 200);
    let names: Vec<&str> = found
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|u| u["username"].as_str())
        .collect();
    assert_eq!(names, ["rred"]);
    assert_eq!(found[0]["federationLink"], json!(id));
    let (_, none) = s.admin_get(&t, "/fed/users?search=*)(uid=*").await;
    assert_eq!(none, json!([]));
    // Entries added later come with a changed-users sync.
    ldap.add(&person("pwhite", "Peter", "White", "peter-pw"));
    let (st, r) = sync(&s, &t, &id, "triggerChangedUsersSync").await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["added"], 1, "{r}");
    assert!(local(&s, &t, "pwhite").await.is_some());
    let (st, r) = sync(&s, &t, &id, "bogus").await;
    assert_eq!(st, 400, "{r}");
    assert_eq!(r["errorMessage"], "Unknown action: bogus");

    // The connection test, with the stored password only for its own URL.
    let test = |body: Value| {
        let s = &s;
        let t = &t;
        async move {
            s.admin_post_json(t, "/fed/testLDAPConnection", &body)
                .await
                .0
        }
    };
    assert_eq!(
        test(json!({"action": "testConnection", "connectionUrl": ldap.url})).await,
        204
    );
    assert_eq!(
        test(
            json!({"action": "testAuthentication", "connectionUrl": ldap.url, "bindDn": ADMIN_DN,
            "bindCredential": "**********", "componentId": id})
        )
        .await,
        204
    );
    assert_eq!(
        test(
            json!({"action": "testAuthentication", "connectionUrl": ldap.url, "bindDn": ADMIN_DN,
            "bindCredential": "wrong"})
        )
        .await,
        400
    );
    assert_eq!(
        test(
            json!({"action": "testAuthentication", "connectionUrl": "ldap://127.0.0.1:1",
            "bindDn": ADMIN_DN, "bindCredential": "**********", "componentId": id})
        )
        .await,
        400
    );
    assert_eq!(
        test(json!({"action": "testConnection", "connectionUrl": "ldap://127.0.0.1:1"})).await,
        400
    );
    // LDAPS checks the directory's certificate: a self-signed one is
    // refused, and so is StartTLS to a server without it trusted.
    assert_eq!(
        test(json!({"action": "testConnection", "connectionUrl": ldap.ldaps_url})).await,
        400
    );
    assert_eq!(
        test(json!({"action": "testConnection", "connectionUrl": ldap.url, "startTls": true}))
            .await,
        400
    );

    // An update that sends the mask back keeps the password: the next
    // sync can still bind.
    let mut renamed = c.clone();
    renamed["name"] = json!("corp");
    assert_eq!(
        s.admin_put(&t, &format!("/fed/components/{id}"), Some(&renamed))
            .await,
        204
    );
    let (st, r) = sync(&s, &t, &id, "triggerFullSync").await;
    assert_eq!(st, 200, "{r}");
    // A changed-users sync every second brings new entries in unasked.
    renamed["config"]["changedSyncPeriod"] = json!(["1"]);
    assert_eq!(
        s.admin_put(&t, &format!("/fed/components/{id}"), Some(&renamed))
            .await,
        204
    );
    ldap.add(&person("qblack", "Quinn", "Black", "quinn-pw"));
    let mut seen = false;
    for _ in 0..100 {
        if local(&s, &t, "qblack").await.is_some() {
            seen = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(seen, "a periodic sync imports a new directory user");

    // The name given to someone else: the entry deleted and a new one
    // made (another entryUUID). A sync leaves the old user alone (failed,
    // as Keycloak counts it); the next login re-creates the user from the
    // new entry, so nothing of the old one carries over.
    let old = local(&s, &t, "pwhite").await.expect("imported");
    ldap.run("ldapdelete", &format!("uid=pwhite,{PEOPLE}\n"));
    ldap.add(&person("pwhite", "Paula", "White", "paula-pw"));
    let (st, r) = sync(&s, &t, &id, "triggerFullSync").await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(
        r["failed"], 2,
        "the local namesake and the replaced entry: {r}"
    );
    assert_eq!(
        local(&s, &t, "pwhite")
            .await
            .map(|u| u["firstName"].clone()),
        Some(json!("Peter"))
    );
    assert_eq!(login(&s, "pwhite", "peter-pw").await.0, 401);
    assert_eq!(login(&s, "pwhite", "paula-pw").await.0, 200);
    let new = local(&s, &t, "pwhite").await.expect("re-created");
    assert_ne!(new["id"], old["id"]);
    assert_eq!(new["firstName"], "Paula");

    // Removing the imported users deletes them; the next login brings
    // the user back.
    let (st, _) = s
        .admin_post(
            &t,
            &format!("/fed/user-storage/{id}/remove-imported-users"),
            &json!({}),
        )
        .await;
    assert_eq!(st, 204);
    assert!(local(&s, &t, "jbrown").await.is_none());
    assert!(user(&s, &t, "clash").await.is_some());
    assert_eq!(login(&s, "jbrown", "ldap-pw").await.0, 200);

    // Unlinked users stay, as local users without a password.
    let (st, _) = s
        .admin_post(
            &t,
            &format!("/fed/user-storage/{id}/unlink-users"),
            &json!({}),
        )
        .await;
    assert_eq!(st, 204);
    let u = user(&s, &t, "jbrown").await.expect("still there");
    assert!(u.get("federationLink").is_none(), "{u}");
    assert_eq!(login(&s, "jbrown", "ldap-pw").await.0, 401);

    // Deleting the provider deletes the users it imported (mgreen, back
    // since the removal), not the unlinked ones.
    assert_eq!(login(&s, "mgreen", "mary-pw").await.0, 200);
    assert_eq!(
        s.admin_delete(&t, &format!("/fed/components/{id}")).await,
        204
    );
    assert!(local(&s, &t, "mgreen").await.is_none());
    assert!(user(&s, &t, "jbrown").await.is_some());
    assert_eq!(login(&s, "mgreen", "mary-pw").await.0, 401);
}

/// A Keycloak realm export whose users came from LDAP: the provider (with
/// its mappers as Keycloak nests them) and the linked users, without
/// passwords, migrate as they are and log in against the directory.
#[tokio::test]
async fn a_keycloak_export_with_ldap_users_logs_them_in_against_the_directory() {
    let ldap = Slapd::start();
    let s = support::start().await;
    let mut fed = provider(&ldap.url, ADMIN_PW);
    fed["id"] = json!("6d1a3c1e-ldap-provider");
    fed["subComponents"] = json!({"org.keycloak.storage.ldap.mappers.LDAPStorageMapper": [
        {"id": "m1", "name": "email", "providerId": "user-attribute-ldap-mapper", "subComponents": {},
         "config": {"ldap.attribute": ["mail"], "user.model.attribute": ["email"]}}]});
    s.import(&json!({
        "realm": "kc", "enabled": true,
        "clients": [{"clientId": "cli", "publicClient": true, "directAccessGrantsEnabled": true}],
        "components": {"org.keycloak.storage.UserStorageProvider": [fed]},
        "users": [{"username": "jbrown", "enabled": true, "email": "jbrown@example.org",
                   "federationLink": "6d1a3c1e-ldap-provider",
                   "attributes": {"LDAP_ENTRY_DN": [format!("uid=jbrown,{PEOPLE}")], "LDAP_ID": ["x"]}},
                  {"username": "ghost", "enabled": true, "federationLink": "left-out-of-the-export"}]
    }))
    .await;
    let grant = |pw: &'static str| {
        let s = &s;
        async move {
            s.password_grant("kc", "cli", None, "jbrown", pw, None)
                .await
                .status()
                .as_u16()
        }
    };
    assert_eq!(grant("ldap-pw").await, 200);
    assert_eq!(grant("wrong").await, 401);
    // A link to a provider the export left out: a local user, whose
    // password an admin sets.
    let t = s.admin_token().await;
    let ghost = s.user_id(&t, "kc", "ghost").await;
    let r = s
        .http
        .put(format!(
            "{}/admin/realms/kc/users/{ghost}/reset-password",
            s.base
        ))
        .bearer_auth(&t)
        .json(&json!({"type": "password", "value": "ghost-pw", "temporary": false}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 204);
    let r = s
        .password_grant("kc", "cli", None, "ghost", "ghost-pw", None)
        .await;
    assert_eq!(r.status(), 200);
    let export = s.export("kc").await;
    let stored = &export["components"]["org.keycloak.storage.UserStorageProvider"][0];
    assert_eq!(stored["subComponents"], fed["subComponents"]);
    assert_eq!(stored["config"]["bindCredential"], json!([ADMIN_PW]));
    assert_eq!(
        s.exported_user("kc", "jbrown").await["federationLink"],
        "6d1a3c1e-ldap-provider"
    );
}

const MAPPER: &str = "org.keycloak.storage.ldap.mappers.LDAPStorageMapper";

/// The names of a user's groups, or of its direct realm roles.
async fn names_of(s: &Server, t: &str, uid: &str, what: &str) -> Vec<String> {
    let (_, list) = s.admin_get(t, &format!("/fed/users/{uid}/{what}")).await;
    let mut names: Vec<String> = list
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|g| g["name"].as_str().map(str::to_owned))
        .collect();
    names.sort();
    names
}

/// The realm roles of the access token in a 200 token response.
async fn roles_in(s: &Server, r: reqwest::Response) -> String {
    assert_eq!(r.status(), 200);
    let tokens: Value = r.json().await.unwrap_or(Value::Null);
    let claims = s
        .verified("fed", tokens["access_token"].as_str().unwrap_or(""))
        .await;
    claims["realm_access"]["roles"].to_string()
}

/// Group and role mappers as Keycloak's admin console adds them: the
/// directory's groups become groups and roles at the import, are brought
/// up to date at every login and sync (a removal in the directory is gone
/// from the next token), and local memberships stay.
#[tokio::test]
async fn ldap_group_and_role_mappers_follow_the_directory() {
    let ldap = Slapd::start();
    ldap.add(&format!(
        "dn: ou=groups,{SUFFIX}\nobjectClass: organizationalUnit\nou: groups\n\n\
         dn: cn=admins,ou=groups,{SUFFIX}\nobjectClass: groupOfNames\ncn: admins\n\
         member: uid=jbrown,{PEOPLE}\n\n\
         dn: cn=staff,ou=groups,{SUFFIX}\nobjectClass: groupOfNames\ncn: staff\n\
         member: uid=jbrown,{PEOPLE}\nmember: uid=mgreen,{PEOPLE}\n\n\
         dn: ou=roles,{SUFFIX}\nobjectClass: organizationalUnit\nou: roles\n\n\
         dn: cn=auditor,ou=roles,{SUFFIX}\nobjectClass: posixGroup\ncn: auditor\n\
         gidNumber: 500\nmemberUid: jbrown\n\n"
    ));
    let (s, t) = fed_realm().await;
    s.admin_create(
        &t,
        "/fed/clients",
        &json!({"clientId": "web", "secret": "web-secret", "redirectUris": ["http://127.0.0.1/cb"]}),
    )
    .await;
    s.admin_create(&t, "/fed/roles", &json!({"name": "ldap-user"}))
        .await;
    let id = s
        .admin_create(&t, "/fed/components", &provider(&ldap.url, ADMIN_PW))
        .await;

    // A new provider comes with Keycloak's default mappers.
    let (st, mappers) = s
        .admin_get(&t, &format!("/fed/components?parent={id}&type={MAPPER}"))
        .await;
    assert_eq!(st, 200);
    let mut names: Vec<&str> = mappers
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["name"].as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "creation date",
            "email",
            "first name",
            "last name",
            "modify date",
            "username"
        ]
    );
    assert!(
        mappers
            .as_array()
            .into_iter()
            .flatten()
            .all(|m| m["parentId"] == json!(id))
    );
    // Not among the realm's own components.
    let (_, top) = s
        .admin_get(&t, &format!("/fed/components?type={MAPPER}"))
        .await;
    assert_eq!(top, json!([]));
    let (st, types) = s
        .admin_get(
            &t,
            &format!("/fed/components/{id}/sub-component-types?type={MAPPER}"),
        )
        .await;
    assert_eq!(st, 200);
    assert!(
        types
            .as_array()
            .into_iter()
            .flatten()
            .any(|t| t["id"] == "group-ldap-mapper")
    );

    let mapper = |name: &str, provider: &str, config: Value| {
        json!({"name": name, "providerId": provider, "providerType": MAPPER,
               "parentId": id, "config": config})
    };
    let groups = mapper(
        "groups",
        "group-ldap-mapper",
        json!({"groups.dn": [format!("ou=groups,{SUFFIX}")], "group.name.ldap.attribute": ["cn"],
               "group.object.classes": ["groupOfNames"], "preserve.group.inheritance": ["true"],
               "membership.ldap.attribute": ["member"], "membership.attribute.type": ["DN"],
               "membership.user.ldap.attribute": ["uid"], "mode": ["READ_ONLY"],
               "user.roles.retrieve.strategy": ["LOAD_GROUPS_BY_MEMBER_ATTRIBUTE"],
               "memberof.ldap.attribute": ["memberOf"], "groups.path": ["/"]}),
    );
    let roles = mapper(
        "roles",
        "role-ldap-mapper",
        json!({"roles.dn": [format!("ou=roles,{SUFFIX}")], "role.name.ldap.attribute": ["cn"],
               "role.object.classes": ["posixGroup"], "membership.ldap.attribute": ["memberUid"],
               "membership.attribute.type": ["UID"], "membership.user.ldap.attribute": ["uid"],
               "mode": ["READ_ONLY"], "use.realm.roles.mapping": ["true"],
               "user.roles.retrieve.strategy": ["LOAD_ROLES_BY_MEMBER_ATTRIBUTE"]}),
    );
    let fixed = mapper(
        "every user",
        "hardcoded-ldap-role-mapper",
        json!({"role": ["ldap-user"]}),
    );
    // What Gatehouse cannot run, or a mapper without its provider, is
    // refused.
    let mut orphan = groups.clone();
    orphan["parentId"] = json!("no-such-provider");
    let mut no_dn = groups.clone();
    no_dn["config"]
        .as_object_mut()
        .map(|c| c.remove("groups.dn"));
    for bad in [
        orphan,
        no_dn,
        mapper("cert", "certificate-ldap-mapper", json!({})),
    ] {
        let (st, body) = s.admin_post_json(&t, "/fed/components", &bad).await;
        assert_eq!(st, 400, "{body}");
    }
    let groups_id = s.admin_create(&t, "/fed/components", &groups).await;
    s.admin_create(&t, "/fed/components", &roles).await;
    s.admin_create(&t, "/fed/components", &fixed).await;
    // The same directory groups as roles of client cli.
    let mut client_roles = roles.clone();
    client_roles["name"] = json!("cli roles");
    client_roles["config"]["use.realm.roles.mapping"] = json!(["false"]);
    client_roles["config"]["client.id"] = json!(["cli"]);
    s.admin_create(&t, "/fed/components", &client_roles).await;
    let (st, m) = s
        .admin_get(&t, &format!("/fed/components/{groups_id}"))
        .await;
    assert_eq!((st, m["parentId"].clone()), (200, json!(id)));

    // A mapper's sync creates the directory's groups; nothing goes the
    // other way.
    let msync = format!("/fed/user-storage/{id}/mappers/{groups_id}/sync");
    let (st, r) = s
        .admin_post_json(&t, &format!("{msync}?direction=fedToKeycloak"), &json!({}))
        .await;
    assert_eq!((st, r["added"].clone()), (200, json!(2)), "{r}");
    let (_, all_groups) = s.admin_get(&t, "/fed/groups").await;
    assert_eq!(all_groups.as_array().map(Vec::len), Some(2), "{all_groups}");
    let (st, _) = s
        .admin_post_json(&t, &format!("{msync}?direction=keycloakToFed"), &json!({}))
        .await;
    assert_eq!(st, 400);

    // The import brings the directory's groups and roles.
    let (st, tokens) = login(&s, "jbrown", "ldap-pw").await;
    assert_eq!(st, 200, "{tokens}");
    let claims = s
        .verified("fed", tokens["access_token"].as_str().unwrap_or(""))
        .await;
    let roles_claim = claims["realm_access"]["roles"].to_string();
    assert!(
        roles_claim.contains("auditor") && roles_claim.contains("ldap-user"),
        "{claims}"
    );
    assert_eq!(
        claims["resource_access"]["cli"]["roles"],
        json!(["auditor"]),
        "{claims}"
    );
    let u = user(&s, &t, "jbrown").await.expect("imported");
    let uid = u["id"].as_str().unwrap_or("").to_owned();
    assert!(
        u["attributes"]["createTimestamp"][0]
            .as_str()
            .is_some_and(|v| v.ends_with('Z')),
        "{u}"
    );
    assert_eq!(names_of(&s, &t, &uid, "groups").await, ["admins", "staff"]);
    let direct = names_of(&s, &t, &uid, "role-mappings/realm").await;
    assert!(
        direct.contains(&"auditor".to_owned()) && direct.contains(&"ldap-user".to_owned()),
        "{direct:?}"
    );

    // A browser login, whose SSO session later stands in for the password.
    let auth = format!(
        "{}/realms/fed/protocol/openid-connect/auth?response_type=code&client_id=web\
         &redirect_uri=http%3A%2F%2F127.0.0.1%2Fcb&scope=openid&state=s",
        s.base
    );
    let page = s.http.get(&auth).send().await.expect("auth");
    let ok = support::LoginPage::read(&s, page)
        .await
        .post(&[("username", "jbrown"), ("password", "ldap-pw")])
        .await;
    assert_eq!(ok.status(), 302);
    let sso = support::set_cookie(&ok, "GATEHOUSE_IDENTITY");
    let sso_login = || {
        let (s, auth, sso) = (&s, &auth, &sso);
        async move {
            let r = s
                .http
                .get(auth)
                .header("cookie", sso)
                .send()
                .await
                .expect("auth");
            assert_eq!(r.status(), 302, "the SSO session skips the page");
            let loc = r.headers()["location"].to_str().unwrap_or("").to_owned();
            let code = crate::oidc::query_param(&loc, "code").unwrap_or_default();
            let form = [
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", "http://127.0.0.1/cb"),
            ];
            s.http
                .post(format!(
                    "{}/realms/fed/protocol/openid-connect/token",
                    s.base
                ))
                .basic_auth("web", Some("web-secret"))
                .form(&form)
                .send()
                .await
                .expect("token")
        }
    };
    assert_eq!(sso_login().await.status(), 200);

    // A local group the admin adds stays; a directory removal is gone
    // at the next login, from the groups and the token.
    let local_id = s
        .admin_create(&t, "/fed/groups", &json!({"name": "local-team"}))
        .await;
    assert_eq!(
        s.admin_put(&t, &format!("/fed/users/{uid}/groups/{local_id}"), None)
            .await,
        204
    );
    ldap.modify(&format!(
        "dn: cn=admins,ou=groups,{SUFFIX}\nchangetype: modify\nadd: member\nmember: uid=mgreen,{PEOPLE}\n-\n\
         delete: member\nmember: uid=jbrown,{PEOPLE}\n\n\
         dn: cn=auditor,ou=roles,{SUFFIX}\nchangetype: modify\ndelete: memberUid\nmemberUid: jbrown\n\n"
    ));
    // A login through the SSO session reads the directory again.
    assert!(!roles_in(&s, sso_login().await).await.contains("auditor"));
    ldap.modify(&format!(
        "dn: cn=auditor,ou=roles,{SUFFIX}\nchangetype: modify\nadd: memberUid\nmemberUid: jbrown\n\n"
    ));
    assert!(roles_in(&s, sso_login().await).await.contains("auditor"));
    ldap.modify(&format!(
        "dn: cn=auditor,ou=roles,{SUFFIX}\nchangetype: modify\ndelete: memberUid\nmemberUid: jbrown\n\n"
    ));
    // A refresh reads the directory too: the token it gives has lost
    // the role, with no new password.
    let rt = tokens["refresh_token"].as_str().unwrap_or("");
    let refreshed = s.public_refresh("fed", "cli", rt).await;
    assert!(!roles_in(&s, refreshed).await.contains("auditor"));
    assert_eq!(
        names_of(&s, &t, &uid, "groups").await,
        ["local-team", "staff"]
    );
    let (st, tokens) = login(&s, "jbrown", "ldap-pw").await;
    assert_eq!(st, 200, "{tokens}");
    assert_eq!(
        names_of(&s, &t, &uid, "groups").await,
        ["local-team", "staff"]
    );
    let direct = names_of(&s, &t, &uid, "role-mappings/realm").await;
    assert!(
        !direct.contains(&"auditor".to_owned()) && direct.contains(&"ldap-user".to_owned()),
        "{direct:?}"
    );
    let claims = s
        .verified("fed", tokens["access_token"].as_str().unwrap_or(""))
        .await;
    assert!(
        !claims["realm_access"]["roles"]
            .to_string()
            .contains("auditor"),
        "{claims}"
    );

    // A sync brings the other users with their groups.
    let (st, r) = sync(&s, &t, &id, "triggerFullSync").await;
    assert_eq!(st, 200, "{r}");
    let mary = local(&s, &t, "mgreen").await.expect("synced");
    let mary = mary["id"].as_str().unwrap_or("").to_owned();
    assert_eq!(names_of(&s, &t, &mary, "groups").await, ["admins", "staff"]);

    // Mappers change and go as components; the export keeps them under
    // their provider.
    let mut moved = m.clone();
    moved["config"]["groups.path"] = json!(["/nowhere"]);
    assert_eq!(
        s.admin_put(&t, &format!("/fed/components/{groups_id}"), Some(&moved))
            .await,
        204
    );
    // A group path that does not exist: the directory's groups cannot be
    // applied, so the login is refused rather than left stale.
    assert_eq!(login(&s, "jbrown", "ldap-pw").await.0, 401);
    let rt = tokens["refresh_token"].as_str().unwrap_or("");
    assert_eq!(s.public_refresh("fed", "cli", rt).await.status(), 400);
    assert_eq!(
        s.admin_delete(&t, &format!("/fed/components/{groups_id}"))
            .await,
        204
    );
    assert_eq!(login(&s, "jbrown", "ldap-pw").await.0, 200);
    let (_, after) = s
        .admin_get(&t, &format!("/fed/components?parent={id}"))
        .await;
    assert_eq!(after.as_array().map(Vec::len), Some(9), "{after}");
    let export = s.export("fed").await;
    let nested = &export["components"]["org.keycloak.storage.UserStorageProvider"][0]["subComponents"]
        [MAPPER];
    assert_eq!(nested.as_array().map(Vec::len), Some(9), "{nested}");

    // An entry deleted from the directory: its refresh tokens stop
    // working, even without group mappers' help.
    let (st, mary_tokens) = login(&s, "mgreen", "mary-pw").await;
    assert_eq!(st, 200);
    let rt = mary_tokens["refresh_token"].as_str().unwrap_or("");
    assert_eq!(s.public_refresh("fed", "cli", rt).await.status(), 200);
    ldap.run("ldapdelete", &format!("uid=mgreen,{PEOPLE}\n"));
    assert_eq!(s.public_refresh("fed", "cli", rt).await.status(), 400);

    // A provider disabled since: its users' refresh tokens stop working.
    let (st, tokens) = login(&s, "jbrown", "ldap-pw").await;
    assert_eq!(st, 200);
    let (_, mut fed) = s.admin_get(&t, &format!("/fed/components/{id}")).await;
    fed["config"]["enabled"] = json!(["false"]);
    assert_eq!(
        s.admin_put(&t, &format!("/fed/components/{id}"), Some(&fed))
            .await,
        204
    );
    let rt = tokens["refresh_token"].as_str().unwrap_or("");
    assert_eq!(s.public_refresh("fed", "cli", rt).await.status(), 400);
}

/// The paths of a user's groups.
async fn paths_of(s: &Server, t: &str, uid: &str) -> Vec<String> {
    let (_, list) = s.admin_get(t, &format!("/fed/users/{uid}/groups")).await;
    let mut paths: Vec<String> = list
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|g| g["path"].as_str().map(str::to_owned))
        .collect();
    paths.sort();
    paths
}

/// A group mapper with `preserve.group.inheritance`: a directory group
/// that is a member of another becomes its subgroup; a group with two
/// parents cannot be placed (Keycloak refuses it too), and a sync with
/// `drop.non.existing.groups.during.sync` removes what the directory no
/// longer has.
#[tokio::test]
async fn nested_ldap_groups_become_subgroups() {
    let ldap = Slapd::start();
    let g = |name: &str, members: &[String]| {
        let mut e =
            format!("dn: cn={name},ou=groups,{SUFFIX}\nobjectClass: groupOfNames\ncn: {name}\n");
        for m in members {
            e.push_str(&format!("member: {m}\n"));
        }
        e + "\n"
    };
    let group_dn = |name: &str| format!("cn={name},ou=groups,{SUFFIX}");
    let person_dn = |uid: &str| format!("uid={uid},{PEOPLE}");
    ldap.add(&format!(
        "dn: ou=groups,{SUFFIX}\nobjectClass: organizationalUnit\nou: groups\n\n{}{}{}{}{}",
        g("eng", &[group_dn("backend")]),
        // groupOfNames needs a member: clash keeps the ones emptied below.
        g("backend", &[person_dn("jbrown"), person_dn("clash")]),
        g("x", &[group_dn("shared")]),
        g("y", &[group_dn("shared"), person_dn("clash")]),
        g("shared", &[person_dn("mgreen")]),
    ));
    let (s, t) = fed_realm().await;
    let id = s
        .admin_create(&t, "/fed/components", &provider(&ldap.url, ADMIN_PW))
        .await;
    let mut groups = json!({"name": "groups", "providerId": "group-ldap-mapper", "providerType": MAPPER,
        "parentId": id, "config": {"groups.dn": [format!("ou=groups,{SUFFIX}")],
        "group.object.classes": ["groupOfNames"], "preserve.group.inheritance": ["true"],
        "membership.ldap.attribute": ["member"], "membership.attribute.type": ["DN"],
        "mode": ["READ_ONLY"], "groups.path": ["/"]}});
    // Nesting needs members named by DN (Keycloak's check).
    let mut by_uid = groups.clone();
    by_uid["config"]["membership.attribute.type"] = json!(["UID"]);
    let (st, body) = s.admin_post_json(&t, "/fed/components", &by_uid).await;
    assert_eq!(
        (st, body["errorMessage"].clone()),
        (
            400,
            json!("ldapErrorCantPreserveGroupInheritanceWithUIDMembershipType")
        )
    );
    let mapper = s.admin_create(&t, "/fed/components", &groups).await;

    let (st, _) = login(&s, "jbrown", "ldap-pw").await;
    assert_eq!(st, 200);
    let jb = s.user_id(&t, "fed", "jbrown").await;
    assert_eq!(paths_of(&s, &t, &jb).await, ["/eng/backend"]);
    // Two parents: no place for the group, so no login.
    assert_eq!(login(&s, "mgreen", "mary-pw").await.0, 401);
    let msync = format!("/fed/user-storage/{id}/mappers/{mapper}/sync?direction=fedToKeycloak");
    assert_eq!(s.admin_post_json(&t, &msync, &json!({})).await.0, 400);

    ldap.modify(&format!(
        "dn: {}\nchangetype: modify\ndelete: member\nmember: {}\n\n",
        group_dn("y"),
        group_dn("shared")
    ));
    let (st, r) = s.admin_post_json(&t, &msync, &json!({})).await;
    assert_eq!(st, 200, "{r}");
    // eng and backend are here already; x, x/shared and y are new.
    assert_eq!(
        (r["added"].clone(), r["updated"].clone()),
        (json!(3), json!(2)),
        "{r}"
    );
    assert_eq!(login(&s, "mgreen", "mary-pw").await.0, 200);
    let mg = s.user_id(&t, "fed", "mgreen").await;
    assert_eq!(paths_of(&s, &t, &mg).await, ["/x/shared"]);

    // Moved in the directory: out of backend, into x; the next login
    // follows.
    ldap.modify(&format!(
        "dn: {}\nchangetype: modify\ndelete: member\nmember: {}\n\n\
         dn: {}\nchangetype: modify\nadd: member\nmember: {}\n\n",
        group_dn("backend"),
        person_dn("jbrown"),
        group_dn("x"),
        person_dn("jbrown")
    ));
    assert_eq!(login(&s, "jbrown", "ldap-pw").await.0, 200);
    assert_eq!(paths_of(&s, &t, &jb).await, ["/x"]);

    // eng deleted in the directory: backend is a top-level group there
    // now. A sync that drops what the directory lacks removes eng here
    // (with its old backend below it) and makes backend at the top.
    ldap.run("ldapdelete", &format!("{}\n", group_dn("eng")));
    groups["config"]["drop.non.existing.groups.during.sync"] = json!(["true"]);
    assert_eq!(
        s.admin_put(&t, &format!("/fed/components/{mapper}"), Some(&groups))
            .await,
        204
    );
    let (st, r) = s.admin_post_json(&t, &msync, &json!({})).await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["removed"], 1, "{r}");
    let (_, top) = s.admin_get(&t, "/fed/groups").await;
    let mut names: Vec<&str> = top
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|g| g["name"].as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["backend", "x", "y"]);
}
