//! E-mail through a realm's SMTP server: the settings are Keycloak's
//! `smtpServer` map (so a Keycloak export or the admin console's form
//! configures it unchanged), the messages Keycloak's English ones
//! (password reset, e-mail verification, "update your account", the test
//! message).
//!
//! Sending is one SMTP exchange per message, with a timeout: these mails
//! are rare, and a pooled connection to a server that may change with the
//! realm's settings would outlive its configuration.

use gatehouse_core::model::Realm;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::Value;
use std::time::Duration;

/// How long one SMTP exchange may take (Keycloak's default timeouts are
/// 10 s for connecting and for each read).
const TIMEOUT: Duration = Duration::from_secs(10);

/// Why a message was not sent. The text is for the log; it never holds
/// the SMTP password.
#[derive(Debug)]
pub enum MailError {
    /// The realm has no SMTP server (no `smtpServer.host`).
    NotConfigured,
    /// The settings cannot work (bad address, bad port).
    Invalid(String),
    /// The server refused or could not be reached.
    Failed(String),
}

impl std::fmt::Display for MailError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MailError::NotConfigured => f.write_str("the realm has no SMTP server configured"),
            MailError::Invalid(m) => write!(f, "invalid SMTP settings: {m}"),
            MailError::Failed(m) => write!(f, "sending failed: {m}"),
        }
    }
}

/// One message: a subject, and the same text as plain text and HTML.
pub struct Mail {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// A realm's SMTP settings (`smtpServer`), read as Keycloak reads them:
/// every value a string (`"true"`, `"587"`), numbers and booleans accepted
/// too.
pub struct Smtp<'a> {
    settings: &'a Value,
}

impl<'a> Smtp<'a> {
    /// The realm's server, if it has one.
    pub fn of(realm: &'a Realm) -> Option<Smtp<'a>> {
        realm
            .extra
            .get("smtpServer")
            .filter(|s| {
                s.get("host")
                    .and_then(Value::as_str)
                    .is_some_and(|h| !h.is_empty())
            })
            .map(|settings| Smtp { settings })
    }

    /// Settings given as they are (the admin console's "test connection").
    pub fn from_settings(settings: &'a Value) -> Smtp<'a> {
        Smtp { settings }
    }

    fn text(&self, key: &str) -> Option<String> {
        match self.settings.get(key)? {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    fn flag(&self, key: &str) -> bool {
        self.text(key)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    /// Sends `mail` to `to` (`name` shown beside the address).
    pub async fn send(&self, to: &str, name: Option<&str>, mail: &Mail) -> Result<(), MailError> {
        let host = self.text("host").ok_or(MailError::NotConfigured)?;
        let ssl = self.flag("ssl");
        let port = match self.text("port") {
            Some(p) => p
                .parse::<u16>()
                .map_err(|_| MailError::Invalid(format!("port {p:?}")))?,
            // Keycloak's defaults: 465 for SSL, else 25.
            None if ssl => 465,
            None => 25,
        };
        let from = self
            .text("from")
            .ok_or_else(|| MailError::Invalid("no from address".into()))?;
        let from = mailbox(&from, self.text("fromDisplayName").as_deref())?;
        let message = Message::builder().from(from).to(mailbox(to, name)?);
        let message = match self.text("replyTo") {
            Some(r) => message.reply_to(mailbox(&r, self.text("replyToDisplayName").as_deref())?),
            None => message,
        };
        let message = match self.text("envelopeFrom") {
            Some(e) => message.sender(mailbox(&e, None)?),
            None => message,
        };
        let message = message
            .subject(&mail.subject)
            .multipart(MultiPart::alternative_plain_html(
                mail.text.clone(),
                mail.html.clone(),
            ))
            .map_err(|e| MailError::Invalid(e.to_string()))?;
        let tls = if ssl || self.flag("starttls") {
            let params =
                TlsParameters::new(host.clone()).map_err(|e| MailError::Invalid(e.to_string()))?;
            if ssl {
                Tls::Wrapper(params)
            } else {
                Tls::Required(params)
            }
        } else {
            Tls::None
        };
        let mut transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(port)
            .tls(tls)
            .timeout(Some(TIMEOUT));
        if self.flag("auth") {
            let user = self.text("user").unwrap_or_default();
            let password = self.text("password").unwrap_or_default();
            transport = transport.credentials(Credentials::new(user, password));
        }
        transport
            .build()
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| MailError::Failed(e.to_string()))
    }
}

fn mailbox(address: &str, name: Option<&str>) -> Result<Mailbox, MailError> {
    let address = address
        .trim()
        .parse()
        .map_err(|_| MailError::Invalid(format!("address {address:?}")))?;
    Ok(Mailbox::new(name.map(str::to_owned), address))
}

/// How long a link lives, in words, as Keycloak's `linkExpirationFormatter`
/// says it ("5 minutes", "12 hours", "1 day").
pub fn lifespan_words(seconds: i64) -> String {
    let (n, unit) = if seconds % 86_400 == 0 && seconds >= 86_400 {
        (seconds / 86_400, "day")
    } else if seconds % 3600 == 0 && seconds >= 3600 {
        (seconds / 3600, "hour")
    } else if seconds % 60 == 0 && seconds >= 60 {
        (seconds / 60, "minute")
    } else {
        (seconds, "second")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// The realm's name as its mails show it (its display name, else its name).
fn realm_title(realm: &Realm) -> &str {
    realm.display_name.as_deref().unwrap_or(&realm.name)
}

/// A message of paragraphs and one link, as text and as HTML.
fn compose(subject: &str, before: &[String], link: Option<&str>, after: &[String]) -> Mail {
    use crate::oidc::auth::esc;
    let mut text = String::new();
    let mut html = String::from("<html><body>");
    for p in before {
        text.push_str(p);
        text.push_str("\n\n");
        html.push_str(&format!("<p>{}</p>", esc(p)));
    }
    if let Some(l) = link {
        text.push_str(l);
        text.push_str("\n\n");
        html.push_str(&format!(
            "<p><a href=\"{l}\">Link to {}</a></p>",
            esc(subject),
            l = esc(l)
        ));
    }
    for p in after {
        text.push_str(p);
        text.push_str("\n\n");
        html.push_str(&format!("<p>{}</p>", esc(p)));
    }
    html.push_str("</body></html>");
    Mail {
        // Names that come from settings (an organization's, a realm's) stay
        // on the subject's one line.
        subject: subject.replace(char::is_control, " "),
        text: text.trim_end().to_owned(),
        html,
    }
}

/// Keycloak's "Reset password" message.
pub fn password_reset(realm: &Realm, link: &str, lifespan: i64) -> Mail {
    compose(
        "Reset password",
        &[format!(
            "Someone just requested to change your {} account's credentials. If this was you, click on the link below to reset them.",
            realm_title(realm)
        )],
        Some(link),
        &[
            format!("This link and code will expire within {}.", lifespan_words(lifespan)),
            "If you don't want to reset your credentials, just ignore this message and nothing will be changed.".into(),
        ],
    )
}

/// Keycloak's "Verify email" message.
pub fn verify_email(realm: &Realm, link: &str, lifespan: i64) -> Mail {
    compose(
        "Verify email",
        &[format!(
            "Someone has created a {} account with this email address. If this was you, click the link below to verify your email address",
            realm_title(realm)
        )],
        Some(link),
        &[
            format!("This link will expire within {}.", lifespan_words(lifespan)),
            "If you didn't create this account, just ignore this message.".into(),
        ],
    )
}

/// Keycloak's "Update Your Account" message, naming the actions.
pub fn execute_actions(realm: &Realm, actions: &[String], link: &str, lifespan: i64) -> Mail {
    let names: Vec<&str> = actions.iter().map(|a| action_name(a)).collect();
    compose(
        "Update Your Account",
        &[format!(
            "Your administrator has just requested that you update your {} account by performing the following action(s): {}. Click on the link below to start this process.",
            realm_title(realm),
            names.join(", ")
        )],
        Some(link),
        &[
            format!("This link will expire within {}.", lifespan_words(lifespan)),
            "If you are unaware that your administrator has requested this, just ignore this message and nothing will be changed.".into(),
        ],
    )
}

/// Keycloak's organization invitation.
pub fn org_invite(org: &str, link: &str, lifespan: i64) -> Mail {
    compose(
        &format!("Invitation to join the {org} organization"),
        &[format!(
            "You were invited to join the {org} organization. Click the link below to join."
        )],
        Some(link),
        &[
            format!("This link will expire within {}.", lifespan_words(lifespan)),
            "If you don't want to join the organization, just ignore this message.".into(),
        ],
    )
}

/// A message of paragraphs and no link (the event listener's notices).
pub fn notice(subject: &str, paragraphs: &[String]) -> Mail {
    compose(subject, paragraphs, None, &[])
}

/// An event's time (Unix ms) as Keycloak's event mails print it, Java's
/// `Date.toString()` in UTC: `Tue Nov 14 22:13:20 UTC 2023`.
pub fn event_date(ms: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let t = secs.rem_euclid(86_400);
    let (y, m, d) = gatehouse_core::time::civil_from_days(days);
    format!(
        "{} {} {d:02} {:02}:{:02}:{:02} UTC {y}",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(m - 1).clamp(0, 11) as usize],
        t / 3600,
        t % 3600 / 60,
        t % 60
    )
}

/// The admin console's test message.
pub fn test_message() -> Mail {
    compose(
        "[Gatehouse] - SMTP test message",
        &["This is a test message".into()],
        None,
        &[],
    )
}

/// A required action as Keycloak's messages name it.
pub fn action_name(alias: &str) -> &str {
    match alias {
        "UPDATE_PASSWORD" => "Update Password",
        "VERIFY_EMAIL" => "Verify Email",
        "UPDATE_PROFILE" => "Update Profile",
        "CONFIGURE_TOTP" => "Configure OTP",
        "TERMS_AND_CONDITIONS" => "Terms and Conditions",
        "UPDATE_EMAIL" => "Update Email",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifespans_read_as_keycloak_says_them() {
        assert_eq!(lifespan_words(300), "5 minutes");
        assert_eq!(lifespan_words(43_200), "12 hours");
        assert_eq!(lifespan_words(86_400), "1 day");
        assert_eq!(lifespan_words(60), "1 minute");
        assert_eq!(lifespan_words(90), "90 seconds");
    }

    #[test]
    fn messages_escape_what_they_show() {
        let mut realm = Realm::new("r");
        realm.display_name = Some("<b>Corp</b>".into());
        let m = password_reset(&realm, "https://id/x?a=1&b=2", 300);
        assert!(m.text.contains("<b>Corp</b> account's credentials"));
        assert!(m.html.contains("&lt;b&gt;Corp&lt;/b&gt;"));
        assert!(m.html.contains("href=\"https://id/x?a=1&amp;b=2\""));
        assert!(m.text.contains("5 minutes"));
    }

    #[test]
    fn a_subject_cannot_add_headers() {
        // An organization's name goes into a subject: a line break in it
        // must not start a header of its own.
        let m = org_invite("Acme\r\nBcc: evil@example.com", "https://id/x", 60);
        let msg = Message::builder()
            .from(mailbox("idp@example.com", None).expect("from"))
            .to(mailbox("u@example.com", None).expect("to"))
            .subject(&m.subject)
            .body(m.text)
            .expect("message");
        let raw = String::from_utf8(msg.formatted()).expect("utf8");
        let head = raw.split("\r\n\r\n").next().expect("head");
        assert!(!head.contains("\r\nBcc:"), "{raw}");
        assert!(!m.subject.contains(['\r', '\n']), "{}", m.subject);
    }

    #[tokio::test]
    async fn a_realm_without_a_host_sends_nothing() {
        let realm = Realm::new("r");
        assert!(Smtp::of(&realm).is_none());
        let settings = serde_json::json!({"host": "127.0.0.1", "port": "x", "from": "a@b"});
        let e = Smtp::from_settings(&settings)
            .send("u@example.com", None, &test_message())
            .await;
        assert!(matches!(e, Err(MailError::Invalid(_))));
        let settings = serde_json::json!({"host": "127.0.0.1", "port": 1});
        let e = Smtp::from_settings(&settings)
            .send("u@example.com", None, &test_message())
            .await;
        assert!(matches!(e, Err(MailError::Invalid(_))));
    }
}
