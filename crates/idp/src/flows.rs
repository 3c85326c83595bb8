//! Keycloak's authentication flows, as far as Gatehouse runs them.
//!
//! Gatehouse's login is fixed: the SSO cookie, else username and password,
//! then a one-time code. What a realm decides, as in Keycloak, through the
//! requirements in its bound `browser` and `direct grant` flows, is who is
//! asked for the code: users who set one up (Keycloak's default: a
//! CONDITIONAL subflow with "Condition - user configured"), everyone (the
//! subflow REQUIRED: a user without a code sets one up at the next browser
//! login and the password grant refuses them), or no one (DISABLED).
//!
//! Why this exists: a Keycloak realm that makes OTP mandatory does it in its
//! flows, and an import that dropped them would let those users sign in with
//! a password alone. So flows are kept where a Keycloak export keeps them
//! (`authenticationFlows`, bound by `browserFlow` / `directGrantFlow`), read
//! on every login, and a bound flow with anything Gatehouse does not run
//! (another authenticator or condition, a choice between factors, no
//! password step) is refused when it is written: a realm never looks
//! stricter than it is.

use gatehouse_core::model::{Client, Realm};
use serde_json::{Value, json};
use std::borrow::Cow;

/// Which bound flow a login runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Browser logins (authorization endpoint, device verification page).
    Browser,
    /// The password grant.
    DirectGrant,
}

impl Kind {
    /// The realm representation's binding key and Keycloak's default flow.
    pub fn binding(self) -> (&'static str, &'static str) {
        match self {
            Kind::Browser => ("browserFlow", "browser"),
            Kind::DirectGrant => ("directGrantFlow", "direct grant"),
        }
    }
}

/// Who a flow asks for a one-time code after the password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Otp {
    /// Users who have set one up.
    WhenConfigured,
    /// Everyone.
    Required,
    /// No one.
    Off,
}

/// A bound flow Gatehouse cannot run as written.
#[derive(Debug, Clone, thiserror::Error)]
#[error("authentication flow \"{flow}\": {why}")]
pub struct Unsupported {
    pub flow: String,
    pub why: String,
}

/// The realm's flows: the stored ones (a Keycloak export's, or edited
/// through the admin API), else Keycloak's default `browser` and
/// `direct grant` flows.
pub fn flows(realm: &Realm) -> Cow<'_, [Value]> {
    match realm
        .extra
        .get("authenticationFlows")
        .and_then(Value::as_array)
    {
        Some(list) if !list.is_empty() => Cow::Borrowed(list.as_slice()),
        _ => Cow::Borrowed(DEFAULTS.as_slice()),
    }
}

/// The alias of the flow bound to `kind`.
pub fn bound_alias(realm: &Realm, kind: Kind) -> &str {
    let (key, default) = kind.binding();
    realm
        .extra
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or(default)
}

/// Who the flow bound to `kind` asks for a one-time code.
pub fn otp_rule(realm: &Realm, kind: Kind) -> Result<Otp, Unsupported> {
    otp_rule_for(realm, None, kind)
}

/// The id of the flow `client` runs for `kind` instead of the realm's
/// (Keycloak's `authenticationFlowBindingOverrides`: `browser`,
/// `direct_grant`), if it names one.
fn override_id(client: &Client, kind: Kind) -> Option<&str> {
    let key = match kind {
        Kind::Browser => "browser",
        Kind::DirectGrant => "direct_grant",
    };
    client
        .extra
        .get("authenticationFlowBindingOverrides")?
        .get(key)?
        .as_str()
        .filter(|id| !id.is_empty())
}

/// Who the flow that a login of `client` runs for `kind` asks for a
/// one-time code: the client's override where it has one, else the
/// realm's bound flow.
pub fn otp_rule_for(
    realm: &Realm,
    client: Option<&Client>,
    kind: Kind,
) -> Result<Otp, Unsupported> {
    let list = flows(realm);
    let alias = match client.and_then(|c| override_id(c, kind)) {
        Some(id) => list
            .iter()
            .find(|f| f["id"].as_str() == Some(id))
            .and_then(|f| f["alias"].as_str())
            .ok_or_else(|| Unsupported {
                flow: id.to_owned(),
                why: "the realm has no flow with this id".into(),
            })?,
        None => bound_alias(realm, kind),
    };
    let unsupported = |why: &str| Unsupported {
        flow: alias.to_owned(),
        why: why.to_owned(),
    };
    let flow = by_alias(&list, alias).ok_or_else(|| unsupported("the realm has no such flow"))?;
    let mut walk = Walk {
        flows: &list,
        kind,
        organizations: realm.extra.get("organizationsEnabled") == Some(&json!(true)),
        password: false,
        sso: false,
        otp: vec![],
    };
    walk.flow(flow, 0, false).map_err(|why| unsupported(&why))?;
    if !walk.password {
        return Err(unsupported("it has no password step"));
    }
    if kind == Kind::Browser && !walk.sso {
        return Err(unsupported(
            "its Cookie step is not an ALTERNATIVE (Gatehouse always signs in from the SSO session)",
        ));
    }
    match walk.otp.as_slice() {
        [] => Ok(Otp::Off),
        [true] => Ok(Otp::WhenConfigured),
        [false] => Ok(Otp::Required),
        _ => Err(unsupported("it asks for more than one one-time code")),
    }
}

/// Checks both bound flows: what every write of flows or bindings must pass.
pub fn check(realm: &Realm) -> Result<(), Unsupported> {
    otp_rule(realm, Kind::Browser)?;
    otp_rule(realm, Kind::DirectGrant)?;
    Ok(())
}

/// Checks the flows `client` overrides the realm's with: each must exist
/// and be one Gatehouse runs, like a realm binding.
pub fn check_client(realm: &Realm, client: &Client) -> Result<(), Unsupported> {
    for kind in [Kind::Browser, Kind::DirectGrant] {
        if override_id(client, kind).is_some() {
            otp_rule_for(realm, Some(client), kind)?;
        }
    }
    Ok(())
}

/// A flow by alias.
pub fn by_alias<'a>(flows: &'a [Value], alias: &str) -> Option<&'a Value> {
    flows.iter().find(|f| f["alias"].as_str() == Some(alias))
}

/// Whether an execution runs a subflow (Keycloak writes both spellings).
pub fn is_subflow(e: &Value) -> bool {
    e["authenticatorFlow"].as_bool() == Some(true) || e["autheticatorFlow"].as_bool() == Some(true)
}

/// A flow's executions by priority, with their stored positions.
pub fn executions(flow: &Value) -> Vec<(usize, &Value)> {
    let mut list: Vec<(usize, &Value)> = flow["authenticationExecutions"]
        .as_array()
        .map(|a| a.iter().enumerate().collect())
        .unwrap_or_default();
    list.sort_by_key(|(i, e)| (e["priority"].as_i64().unwrap_or(0), *i));
    list
}

/// The executions that run (all but DISABLED ones), by priority.
fn enabled(flow: &Value) -> impl Iterator<Item = &Value> {
    executions(flow)
        .into_iter()
        .map(|(_, e)| e)
        .filter(|e| requirement(e) != "DISABLED")
}

fn requirement(e: &Value) -> &str {
    e["requirement"].as_str().unwrap_or("DISABLED")
}

struct Walk<'a> {
    flows: &'a [Value],
    kind: Kind,
    organizations: bool,
    password: bool,
    sso: bool,
    /// One entry per one-time-code step: whether a condition guards it.
    otp: Vec<bool>,
}

impl<'a> Walk<'a> {
    fn subflow(&self, e: &Value) -> Result<&'a Value, String> {
        let alias = e["flowAlias"].as_str().unwrap_or("");
        by_alias(self.flows, alias).ok_or_else(|| format!("subflow \"{alias}\" does not exist"))
    }

    /// Steps that do nothing in Gatehouse: the identity-provider redirector
    /// (Gatehouse brokers no identity providers) and Keycloak 26's
    /// organization step while the realm has organizations off.
    fn inert(&self, e: &Value, depth: usize) -> bool {
        if depth > 8 {
            return false;
        }
        if is_subflow(e) {
            let Ok(sub) = self.subflow(e) else {
                return false;
            };
            let steps: Vec<&Value> = enabled(sub).filter(|x| !is_condition(x)).collect();
            return !steps.is_empty() && steps.iter().all(|x| self.inert(x, depth + 1));
        }
        match e["authenticator"].as_str().unwrap_or("") {
            "identity-provider-redirector" => self.kind == Kind::Browser,
            "organization" => self.kind == Kind::Browser && !self.organizations,
            _ => false,
        }
    }

    fn flow(&mut self, flow: &Value, level: usize, guarded: bool) -> Result<(), String> {
        if level > 8 {
            return Err("its subflows nest too deep".into());
        }
        let mut required = vec![];
        let mut alternatives = vec![];
        for e in enabled(flow) {
            if is_condition(e) {
                continue; // read by the parent for a CONDITIONAL subflow
            }
            match requirement(e) {
                "REQUIRED" | "CONDITIONAL" => required.push(e),
                "ALTERNATIVE" => {
                    if self.kind == Kind::Browser
                        && level == 0
                        && e["authenticator"].as_str() == Some("auth-cookie")
                    {
                        self.sso = true;
                    } else if !self.inert(e, 0) {
                        alternatives.push(e);
                    }
                }
                other => return Err(format!("requirement \"{other}\" is unknown")),
            }
        }
        // Keycloak: one ALTERNATIVE must succeed, and ALTERNATIVEs beside a
        // REQUIRED step are ignored; a choice between factors is not
        // something Gatehouse's login offers.
        if !required.is_empty() && !alternatives.is_empty() {
            return Err("it mixes REQUIRED and ALTERNATIVE steps".into());
        }
        if alternatives.len() > 1 {
            return Err("it offers a choice between ALTERNATIVE steps".into());
        }
        for e in required.into_iter().chain(alternatives) {
            if is_subflow(e) {
                let sub = self.subflow(e)?;
                let conditional = requirement(e) == "CONDITIONAL";
                if conditional {
                    self.conditions(sub)?;
                }
                self.flow(sub, level + 1, guarded || conditional)?;
                continue;
            }
            let name = e["authenticator"].as_str().unwrap_or("");
            match (self.kind, name) {
                (Kind::Browser, "auth-username-password-form")
                | (Kind::DirectGrant, "direct-grant-validate-password") => self.password = true,
                (Kind::DirectGrant, "direct-grant-validate-username") => {}
                (Kind::Browser, "auth-otp-form")
                | (Kind::DirectGrant, "direct-grant-validate-otp") => self.otp.push(guarded),
                _ => {
                    return Err(format!(
                        "step \"{name}\" ({}) is not one Gatehouse runs",
                        requirement(e)
                    ));
                }
            }
        }
        Ok(())
    }

    /// A CONDITIONAL subflow runs when its conditions hold: Gatehouse
    /// evaluates "Condition - user configured" (the user has set up the
    /// subflow's factor) and no other.
    fn conditions(&self, sub: &Value) -> Result<(), String> {
        let conds: Vec<&Value> = enabled(sub).filter(|e| is_condition(e)).collect();
        if conds.is_empty() {
            return Err(format!(
                "CONDITIONAL subflow \"{}\" has no condition",
                sub["alias"].as_str().unwrap_or("")
            ));
        }
        for c in conds {
            let name = c["authenticator"].as_str().unwrap_or("");
            if name != "conditional-user-configured" || requirement(c) != "REQUIRED" {
                return Err(format!(
                    "condition \"{name}\" ({}) is not one Gatehouse evaluates",
                    requirement(c)
                ));
            }
        }
        Ok(())
    }
}

fn is_condition(e: &Value) -> bool {
    !is_subflow(e)
        && e["authenticator"]
            .as_str()
            .is_some_and(|a| a.starts_with("conditional-"))
}

/// A stable id for something Keycloak gives a UUID and a realm export
/// leaves out (execution ids, the default flows' ids): derived from what
/// names it, so it survives restarts and nodes agree on it.
pub fn derived_id(parts: &[&str]) -> String {
    gatehouse_core::id::derived(&parts.join("\u{0}"))
}

fn step(authenticator: &str, requirement: &str, priority: i64) -> Value {
    json!({"authenticator": authenticator, "authenticatorFlow": false, "autheticatorFlow": false,
           "requirement": requirement, "priority": priority, "userSetupAllowed": false})
}

fn sub(alias: &str, requirement: &str, priority: i64) -> Value {
    json!({"authenticatorFlow": true, "autheticatorFlow": true, "flowAlias": alias,
           "requirement": requirement, "priority": priority, "userSetupAllowed": false})
}

/// A default flow; its id is derived where one is shown (the admin API,
/// export), not on every login that reads the flow.
fn flow(alias: &str, description: &str, top: bool, steps: Vec<Value>) -> Value {
    json!({"alias": alias, "description": description, "providerId": "basic-flow",
           "topLevel": top, "builtIn": true, "authenticationExecutions": steps})
}

/// Built once: every login of a realm that never changed its flows reads
/// them.
static DEFAULTS: std::sync::LazyLock<Vec<Value>> = std::sync::LazyLock::new(defaults);

/// Keycloak 26's default `browser` and `direct grant` flows (the steps
/// Gatehouse runs; the others Keycloak creates serve features Gatehouse
/// does not have).
fn defaults() -> Vec<Value> {
    vec![
        flow(
            "browser",
            "Browser based authentication",
            true,
            vec![
                step("auth-cookie", "ALTERNATIVE", 10),
                step("auth-spnego", "DISABLED", 20),
                step("identity-provider-redirector", "ALTERNATIVE", 25),
                sub("forms", "ALTERNATIVE", 30),
            ],
        ),
        flow(
            "forms",
            "Username, password, otp and other auth forms.",
            false,
            vec![
                step("auth-username-password-form", "REQUIRED", 10),
                sub("Browser - Conditional 2FA", "CONDITIONAL", 20),
            ],
        ),
        flow(
            "Browser - Conditional 2FA",
            "Flow to determine if any 2FA is required for the authentication",
            false,
            vec![
                step("conditional-user-configured", "REQUIRED", 10),
                step("auth-otp-form", "ALTERNATIVE", 30),
            ],
        ),
        flow(
            "direct grant",
            "OpenID Connect Resource Owner Grant",
            true,
            vec![
                step("direct-grant-validate-username", "REQUIRED", 10),
                step("direct-grant-validate-password", "REQUIRED", 20),
                sub("Direct Grant - Conditional OTP", "CONDITIONAL", 30),
            ],
        ),
        flow(
            "Direct Grant - Conditional OTP",
            "Flow to determine if the OTP is required for the authentication",
            false,
            vec![
                step("conditional-user-configured", "REQUIRED", 10),
                step("direct-grant-validate-otp", "REQUIRED", 20),
            ],
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn realm_with(flows: Value, bindings: &[(&str, &str)]) -> Realm {
        let mut r = Realm::new("t");
        r.extra.insert("authenticationFlows".into(), flows);
        for (k, v) in bindings {
            r.extra.insert((*k).into(), json!(v));
        }
        r
    }

    fn set(realm: &mut Realm, flow: &str, priority: i64, req: &str) {
        let mut list = flows(realm).into_owned();
        for f in &mut list {
            if f["alias"] == flow {
                for e in f["authenticationExecutions"]
                    .as_array_mut()
                    .into_iter()
                    .flatten()
                {
                    if e["priority"] == priority {
                        e["requirement"] = json!(req);
                    }
                }
            }
        }
        realm
            .extra
            .insert("authenticationFlows".into(), json!(list));
    }

    #[test]
    fn keycloak_defaults_ask_users_who_set_up_a_code() {
        let r = Realm::new("t");
        assert_eq!(otp_rule(&r, Kind::Browser).ok(), Some(Otp::WhenConfigured));
        assert_eq!(
            otp_rule(&r, Kind::DirectGrant).ok(),
            Some(Otp::WhenConfigured)
        );
    }

    #[test]
    fn required_and_disabled_subflows_change_who_is_asked() {
        let mut r = Realm::new("t");
        set(&mut r, "forms", 20, "REQUIRED");
        assert_eq!(otp_rule(&r, Kind::Browser).ok(), Some(Otp::Required));
        set(&mut r, "Direct Grant - Conditional OTP", 20, "DISABLED");
        assert_eq!(otp_rule(&r, Kind::DirectGrant).ok(), Some(Otp::Off));
        set(&mut r, "forms", 20, "DISABLED");
        assert_eq!(otp_rule(&r, Kind::Browser).ok(), Some(Otp::Off));
    }

    #[test]
    fn what_gatehouse_does_not_run_is_refused() {
        // WebAuthn as a second alternative: a choice of factors.
        let mut r = Realm::new("t");
        let mut list = flows(&r).into_owned();
        list[2]["authenticationExecutions"]
            .as_array_mut()
            .expect("steps")
            .push(step("webauthn-authenticator", "ALTERNATIVE", 40));
        r.extra.insert("authenticationFlows".into(), json!(list));
        let e = otp_rule(&r, Kind::Browser).expect_err("refused");
        assert!(e.to_string().contains("choice"), "{e}");
        // A role condition.
        let mut r = Realm::new("t");
        let mut list = flows(&r).into_owned();
        list[4]["authenticationExecutions"]
            .as_array_mut()
            .expect("steps")
            .push(step("conditional-user-role", "REQUIRED", 15));
        r.extra.insert("authenticationFlows".into(), json!(list));
        let e = otp_rule(&r, Kind::DirectGrant).expect_err("refused");
        assert!(e.to_string().contains("conditional-user-role"), "{e}");
        // No password; a binding to a missing flow; Kerberos enabled.
        let mut r = Realm::new("t");
        set(&mut r, "forms", 10, "DISABLED");
        assert!(otp_rule(&r, Kind::Browser).is_err());
        let r = realm_with(json!([]), &[("browserFlow", "custom")]);
        assert!(otp_rule(&r, Kind::Browser).is_err());
        let mut r = Realm::new("t");
        set(&mut r, "browser", 20, "ALTERNATIVE");
        assert!(otp_rule(&r, Kind::Browser).is_err());
    }

    #[test]
    fn keycloak_26_organization_step_is_inert_while_organizations_are_off() {
        let mut r = Realm::new("t");
        let mut list = flows(&r).into_owned();
        list[0]["authenticationExecutions"]
            .as_array_mut()
            .expect("steps")
            .push(sub("Organization", "ALTERNATIVE", 26));
        list.push(
            json!({"alias": "Organization", "authenticationExecutions": [
            sub("Browser - Conditional Organization", "CONDITIONAL", 10)]}),
        );
        list.push(
            json!({"alias": "Browser - Conditional Organization", "authenticationExecutions": [
            step("conditional-user-configured", "REQUIRED", 10),
            step("organization", "ALTERNATIVE", 20)]}),
        );
        r.extra.insert("authenticationFlows".into(), json!(list));
        assert_eq!(otp_rule(&r, Kind::Browser).ok(), Some(Otp::WhenConfigured));
        r.extra.insert("organizationsEnabled".into(), json!(true));
        assert!(otp_rule(&r, Kind::Browser).is_err());
    }

    #[test]
    fn derived_ids_are_stable_and_uuid_shaped() {
        let a = derived_id(&["r", "flow", "browser"]);
        assert_eq!(a, derived_id(&["r", "flow", "browser"]));
        assert_ne!(a, derived_id(&["r", "flow", "direct grant"]));
        assert_eq!(a.len(), 36);
        assert_eq!(a.matches('-').count(), 4);
    }
}
