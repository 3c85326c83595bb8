//! An OpenID Connect identity provider as a realm configures it: Keycloak's
//! IdentityProviderRepresentation (`providerId` `oidc` or `keycloak-oidc`)
//! read into what a brokered login needs.

use serde_json::Value;

/// The provider types Gatehouse brokers: Keycloak's generic OpenID Connect
/// provider and its Keycloak-flavoured twin (same protocol).
pub const SUPPORTED: [&str; 2] = ["oidc", "keycloak-oidc"];

/// How the client authenticates at the provider's token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// `client_secret_post`: Keycloak's default for OIDC providers.
    Post,
    /// `client_secret_basic`.
    Basic,
}

/// Keycloak's `syncMode`: whether a returning user's profile is refreshed
/// from the provider at each login (`FORCE`) or only set at the first
/// (`IMPORT`, and `LEGACY`, which behaves the same for new providers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    Import,
    Force,
}

/// A configured OIDC provider.
#[derive(Debug, Clone)]
pub struct OidcProvider {
    pub alias: String,
    pub display_name: String,
    pub enabled: bool,
    /// Not offered on the login page (still reachable by `kc_idp_hint`).
    pub hide_on_login: bool,
    /// Only for linking from the account console: never a login.
    pub link_only: bool,
    /// Mark brokered users' email addresses verified.
    pub trust_email: bool,
    pub sync_mode: SyncMode,
    pub client_id: String,
    pub client_secret: String,
    pub client_auth: ClientAuth,
    pub authorization_url: String,
    pub token_url: String,
    pub userinfo_url: Option<String>,
    /// The `iss` its ID tokens must carry, when configured.
    pub issuer: Option<String>,
    /// Where its signing keys are, when signatures are validated.
    pub jwks_url: Option<String>,
    pub validate_signature: bool,
    pub scope: String,
    pub pkce: bool,
    /// Seconds of clock difference tolerated in `exp` and `iat`.
    pub clock_skew: i64,
    /// `prompt` sent to the provider (`login`, `consent`, `select_account`,
    /// `none`), when configured.
    pub prompt: Option<String>,
    /// Pass the client's `login_hint` on to the provider (`loginHint`).
    pub login_hint: bool,
    /// Place on the login page (`guiOrder`; then by alias).
    pub gui_order: i64,
    /// Where a logout here sends the browser to log out there too
    /// (`logoutUrl`, the provider's `end_session_endpoint`).
    pub logout_url: Option<String>,
    /// Send the provider's ID token as `id_token_hint` with that logout
    /// (`sendIdTokenOnLogout`, on by default), and our `client_id`
    /// (`sendClientIdOnLogout`).
    pub send_id_token_on_logout: bool,
    pub send_client_id_on_logout: bool,
}

fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn flag(v: &Value, key: &str, default: bool) -> bool {
    match v.get(key) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => default,
    }
}

fn absolute_url(config: &Value, key: &str) -> Result<Option<String>, String> {
    match text(config, key) {
        None => Ok(None),
        Some(u) => match url::Url::parse(u) {
            Ok(p) if matches!(p.scheme(), "https" | "http") => Ok(Some(u.to_owned())),
            _ => Err(format!("{key} must be an absolute http(s) URL")),
        },
    }
}

impl OidcProvider {
    /// Reads a representation. Errors are for the administrator: what is
    /// missing or not supported, by its config key.
    pub fn from_rep(rep: &Value) -> Result<OidcProvider, String> {
        let alias = text(rep, "alias").ok_or("alias is required")?.to_owned();
        let kind = text(rep, "providerId").unwrap_or("oidc");
        if !SUPPORTED.contains(&kind) {
            return Err(format!(
                "identity providers of type {kind} are not supported: Gatehouse brokers OpenID Connect providers (oidc, keycloak-oidc)"
            ));
        }
        let empty = Value::Object(Default::default());
        let config = rep.get("config").unwrap_or(&empty);
        let required = |key: &str| {
            absolute_url(config, key)?.ok_or_else(|| format!("config.{key} is required"))
        };
        let client_auth = match text(config, "clientAuthMethod").unwrap_or("client_secret_post") {
            "client_secret_post" => ClientAuth::Post,
            "client_secret_basic" => ClientAuth::Basic,
            other => {
                return Err(format!(
                    "config.clientAuthMethod {other} is not supported: use client_secret_post or client_secret_basic"
                ));
            }
        };
        let validate_signature = flag(config, "validateSignature", false);
        let jwks_url = absolute_url(config, "jwksUrl")?;
        if validate_signature && jwks_url.is_none() {
            return Err(
                "config.jwksUrl is required to validate signatures (static keys are not supported)"
                    .into(),
            );
        }
        if flag(config, "pkceEnabled", false)
            && text(config, "pkceMethod").is_some_and(|m| m != "S256")
        {
            return Err("config.pkceMethod must be S256".into());
        }
        let mut scope = text(config, "defaultScope").unwrap_or("openid").to_owned();
        if !scope.split_whitespace().any(|s| s == "openid") {
            scope = format!("openid {scope}");
        }
        let sync_mode = match text(config, "syncMode").unwrap_or("LEGACY") {
            "FORCE" => SyncMode::Force,
            "IMPORT" | "LEGACY" => SyncMode::Import,
            other => {
                return Err(format!(
                    "config.syncMode {other} is not one of IMPORT, LEGACY, FORCE"
                ));
            }
        };
        let clock_skew = match text(config, "allowedClockSkew") {
            None => 0,
            Some(s) => s
                .parse::<i64>()
                .ok()
                .filter(|n| (0..=3600).contains(n))
                .ok_or("config.allowedClockSkew must be seconds between 0 and 3600")?,
        };
        let userinfo_url = if flag(config, "disableUserInfo", false) {
            None
        } else {
            absolute_url(config, "userInfoUrl")?
        };
        let prompt = match text(config, "prompt") {
            None | Some("unspecified") => None,
            Some(p @ ("none" | "login" | "consent" | "select_account")) => Some(p.to_owned()),
            Some(other) => {
                return Err(format!(
                    "config.prompt {other} is not one of none, login, consent, select_account"
                ));
            }
        };
        Ok(OidcProvider {
            logout_url: absolute_url(config, "logoutUrl")?,
            send_id_token_on_logout: flag(config, "sendIdTokenOnLogout", true),
            send_client_id_on_logout: flag(config, "sendClientIdOnLogout", false),
            prompt,
            login_hint: flag(config, "loginHint", false),
            gui_order: text(config, "guiOrder")
                .and_then(|g| g.parse().ok())
                .unwrap_or(i64::MAX),
            display_name: text(rep, "displayName").unwrap_or(&alias).to_owned(),
            enabled: flag(rep, "enabled", true),
            hide_on_login: flag(rep, "hideOnLogin", false)
                || flag(config, "hideOnLoginPage", false),
            link_only: flag(rep, "linkOnly", false),
            trust_email: flag(rep, "trustEmail", false),
            sync_mode,
            client_id: text(config, "clientId")
                .ok_or("config.clientId is required")?
                .to_owned(),
            client_secret: config
                .get("clientSecret")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            client_auth,
            authorization_url: required("authorizationUrl")?,
            token_url: required("tokenUrl")?,
            userinfo_url,
            issuer: text(config, "issuer").map(str::to_owned),
            jwks_url,
            validate_signature,
            scope,
            pkce: flag(config, "pkceEnabled", false),
            clock_skew,
            alias,
        })
    }

    /// Whether the login page offers it.
    pub fn on_login_page(&self) -> bool {
        self.enabled && !self.hide_on_login && !self.link_only
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rep(config: Value) -> Value {
        json!({"alias": "corp", "providerId": "oidc", "config": config})
    }

    #[test]
    fn a_complete_provider_reads_with_keycloaks_defaults() {
        let p = OidcProvider::from_rep(&rep(json!({
            "clientId": "gh", "clientSecret": "s",
            "authorizationUrl": "https://idp.example/auth", "tokenUrl": "https://idp.example/token",
            "defaultScope": "email profile",
        })))
        .expect("valid");
        assert_eq!(p.client_auth, ClientAuth::Post);
        assert_eq!(p.scope, "openid email profile");
        assert_eq!(p.display_name, "corp");
        assert!(p.enabled && p.on_login_page() && !p.validate_signature && !p.pkce);
        assert_eq!(p.sync_mode, SyncMode::Import);
    }

    #[test]
    fn what_cannot_work_is_refused_by_name() {
        for (config, needle) in [
            (
                json!({"tokenUrl": "https://x/t", "clientId": "c"}),
                "authorizationUrl",
            ),
            (
                json!({"authorizationUrl": "https://x/a", "tokenUrl": "ftp://x/t", "clientId": "c"}),
                "tokenUrl",
            ),
            (
                json!({"authorizationUrl": "https://x/a", "tokenUrl": "https://x/t"}),
                "clientId",
            ),
            (
                json!({"authorizationUrl": "https://x/a", "tokenUrl": "https://x/t", "clientId": "c",
                       "clientAuthMethod": "private_key_jwt"}),
                "clientAuthMethod",
            ),
            (
                json!({"authorizationUrl": "https://x/a", "tokenUrl": "https://x/t", "clientId": "c",
                       "validateSignature": "true"}),
                "jwksUrl",
            ),
        ] {
            let e = OidcProvider::from_rep(&rep(config)).expect_err("refused");
            assert!(e.contains(needle), "{e}");
        }
        let saml = json!({"alias": "s", "providerId": "saml"});
        assert!(
            OidcProvider::from_rep(&saml)
                .expect_err("saml")
                .contains("saml")
        );
    }
}
