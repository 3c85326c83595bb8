//! The user profile's per-attribute rules (`validations` and `required`),
//! checked as Keycloak checks them when an admin creates or edits a user:
//! a username with `<` or a first name with `<script>` is a 400 naming the
//! field, Keycloak's message key and its parameters, not a stored value
//! that every page and token carrying it must then escape.
//!
//! Keycloak's validators and their messages: `length`
//! (`error-invalid-length`, `-too-short`, `-too-long`), `email`
//! (`error-invalid-email`), `pattern` (`error-pattern-no-match` or the
//! configured `error-message`), `username-prohibited-characters` and
//! `person-name-prohibited-characters` (their fixed character sets),
//! `options` (`error-invalid-value`), `integer` / `double`
//! (`error-invalid-number`, `error-number-out-of-range`...), `uri`
//! (`error-invalid-uri`) and `multivalued` (`error-invalid-multivalued-size`).
//! Empty values are left to the `required` rule, as Keycloak's
//! `ignore.empty.value` default does. Others (`local-date`, a pattern in
//! Java syntax the `regex` crate cannot read) are not checked.
//!
//! On the admin API, a value written to an attribute whose
//! `permissions.edit` leaves out `admin` is `error-user-attribute-read-only`.
//!
//! One leniency: on an update only the values that change are checked, so
//! a user imported with a value the profile now refuses (a two-letter
//! username from an old export) can still be edited; Keycloak lets such a
//! value stand only where the attribute is read-only.

use crate::admin::user_profile;
use gatehouse_core::model::{Realm, User};
use serde_json::{Value, json};

/// Whose rules apply: Keycloak's `admin` role (the admin API) or `user`
/// (the user's own forms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The admin REST API.
    Admin,
    /// Registration, the account console and required actions.
    User,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::User => "user",
        }
    }
}

/// One refused attribute, as Keycloak's ErrorRepresentation names it.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    /// The attribute (`username`, `firstName`, a custom one).
    pub field: String,
    /// Keycloak's message key (`error-invalid-length`).
    pub message: String,
    /// The attribute name first, then the validator's own parameters.
    pub params: Vec<Value>,
}

impl FieldError {
    fn new(field: &str, message: &str, mut params: Vec<Value>) -> Self {
        params.insert(0, json!(field));
        FieldError {
            field: field.to_owned(),
            message: message.to_owned(),
            params,
        }
    }

    /// A change to an attribute the caller may not edit (Keycloak's
    /// `error-user-attribute-read-only`).
    pub fn read_only(field: &str) -> Self {
        FieldError::new(field, "error-user-attribute-read-only", vec![])
    }

    /// Keycloak's `{"field", "errorMessage", "params"}` form.
    pub fn to_json(&self) -> Value {
        json!({"field": self.field, "errorMessage": self.message, "params": self.params})
    }
}

/// The body Keycloak's admin API answers refused attributes with: the one
/// error itself, or `{"errors": [...]}` for several.
pub fn admin_body(errors: &[FieldError]) -> Value {
    match errors {
        [one] => one.to_json(),
        many => json!({"errors": many.iter().map(FieldError::to_json).collect::<Vec<_>>()}),
    }
}

/// The account REST API's form of the same errors (Keycloak's
/// `ErrorResponse.errors(..., false)`): always an `errors` list, the one
/// error's fields beside it too, and parameters as text with the
/// attribute's display name first.
pub fn account_body(realm: &Realm, errors: &[FieldError]) -> Value {
    let cfg = user_profile::config(realm);
    let display = |name: &str| {
        cfg["attributes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["name"] == name)
            .and_then(|a| a["displayName"].as_str())
            .unwrap_or(name)
            .to_owned()
    };
    let text = |e: &FieldError| {
        let params: Vec<Value> = e
            .params
            .iter()
            .enumerate()
            .map(|(i, p)| match p {
                Value::Null => Value::Null,
                Value::String(s) if i == 0 => json!(display(s)),
                Value::String(s) => json!(s),
                other => json!(other.to_string()),
            })
            .collect();
        json!({"field": e.field, "errorMessage": e.message, "params": params})
    };
    let list: Vec<Value> = errors.iter().map(text).collect();
    let mut body = json!({"errors": list});
    if let [one] = errors {
        let first = text(one);
        for k in ["field", "errorMessage", "params"] {
            body[k] = first[k].clone();
        }
    }
    body
}

/// The English text Keycloak's login pages show for a message key, with
/// its `{1}` / `{2}` parameters filled in; a custom key shows as written.
fn english(e: &FieldError) -> String {
    let template = match e.message.as_str() {
        "error-invalid-value" | "error-pattern-no-match" => "Invalid value.",
        "error-invalid-length" => "Length must be between {1} and {2}.",
        "error-invalid-length-too-short" => "Minimal length is {1}.",
        "error-invalid-length-too-long" => "Maximal length is {2}.",
        "error-invalid-email" => "Invalid email address.",
        "error-invalid-number" => "Invalid number.",
        "error-number-out-of-range" => "Number must be between {1} and {2}.",
        "error-number-out-of-range-too-small" => "Number must have minimal value of {1}.",
        "error-number-out-of-range-too-big" => "Number must have maximal value of {2}.",
        "error-invalid-uri" => "Invalid URL.",
        "error-invalid-date" => "Invalid date.",
        "invalidUsernameMessage" => "Invalid username.",
        "error-user-attribute-required" => "Please specify this field.",
        "error-username-invalid-character" | "error-person-name-invalid-character" => {
            "Value contains invalid character."
        }
        "error-invalid-multivalued-size" => "{0} must have at least {1} and at most {2} values.",
        other => other,
    };
    let mut out = template.to_owned();
    for (i, p) in e.params.iter().enumerate() {
        let shown = match p {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        out = out.replace(&format!("{{{i}}}"), &shown);
    }
    out
}

/// A custom attribute a user's own form offers: declared by the profile,
/// editable by `user`, and not kept for logins that ask for a scope.
#[derive(Debug, Clone, PartialEq)]
pub struct FormField {
    /// The attribute, also the form field's name.
    pub name: String,
    /// What the label says: the display name, or the attribute's name
    /// where that is a message key (`${...}`) we have no text for.
    pub label: String,
    /// Whether the profile requires it of users.
    pub required: bool,
    /// Whether the attribute holds several values: the page may post the
    /// field more than once.
    pub multivalued: bool,
    /// How the page draws it: Keycloak's `inputType` annotation (`text`,
    /// `textarea`, `select`, `multiselect`, `select-radiobuttons`,
    /// `multiselect-checkboxes`, `html5-email`...), `text` where unset.
    pub input: String,
    /// The choices of a select, radio or checkbox field, value and label:
    /// the `options` of the validator `inputOptionsFromValidation` names
    /// (`options` by default), labelled by `inputOptionLabels`.
    pub options: Vec<(String, String)>,
    /// The attribute's annotations, for the rest of how it is drawn
    /// (placeholder, helper texts, HTML input limits).
    pub annotations: serde_json::Map<String, Value>,
}

/// Whether a login page's form may repeat field `name`: one of the
/// realm's multivalued attributes that the user's pages offer.
pub fn repeatable(realm: &Realm, name: &str) -> bool {
    user_form_fields(realm)
        .iter()
        .any(|f| f.name == name && f.multivalued)
}

/// Keycloak's text for `key` where it is one (not a `${...}` message key
/// we have no bundle for), else None.
fn shown_text(v: Option<&Value>) -> Option<&str> {
    v.and_then(Value::as_str)
        .filter(|t| !t.is_empty() && !t.starts_with("${"))
}

/// The choices an attribute's field offers (see [`FormField::options`]).
fn form_options(a: &Value, annotations: &serde_json::Map<String, Value>) -> Vec<(String, String)> {
    let from = annotations
        .get("inputOptionsFromValidation")
        .and_then(Value::as_str)
        .unwrap_or("options");
    let labels = annotations.get("inputOptionLabels");
    a["validations"][from]["options"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|v| {
            let label = shown_text(labels.and_then(|l| l.get(v))).unwrap_or(v);
            (v.to_owned(), label.to_owned())
        })
        .collect()
}

/// The custom attributes the registration and update-profile pages show,
/// in the profile's order.
pub fn user_form_fields(realm: &Realm) -> Vec<FormField> {
    let cfg = user_profile::config(realm);
    cfg["attributes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| {
            let name = a["name"].as_str()?;
            let edit = a["permissions"]["edit"].as_array()?;
            let scoped = a["selector"]["scopes"]
                .as_array()
                .is_some_and(|s| !s.is_empty());
            if user_profile::BUILT_IN.contains(&name) || scoped || !edit.iter().any(|r| r == "user")
            {
                return None;
            }
            let label = shown_text(a.get("displayName")).unwrap_or(name);
            let annotations = a["annotations"].as_object().cloned().unwrap_or_default();
            Some(FormField {
                name: name.to_owned(),
                label: label.to_owned(),
                required: required(a, Role::User),
                multivalued: a["multivalued"] == json!(true),
                input: annotations
                    .get("inputType")
                    .and_then(Value::as_str)
                    .unwrap_or("text")
                    .to_owned(),
                options: form_options(a, &annotations),
                annotations,
            })
        })
        .collect()
}

/// Sets a custom attribute from its form field: the values entered (the
/// first alone for a single-valued attribute), none for an empty field.
pub fn put_form_values(u: &mut User, field: &FormField, mut values: Vec<String>) {
    values.retain(|v| !v.is_empty());
    if !field.multivalued {
        values.truncate(1);
    }
    if values.is_empty() {
        u.attributes.remove(&field.name);
    } else {
        u.attributes.insert(field.name.clone(), values);
    }
}

/// The English message of the first rule a user's own form breaks:
/// `asked` (the user as the form would leave it) against the profile, for
/// the built-in fields the form shows (`shown`) and its custom attributes.
pub fn form_refusal(
    realm: &Realm,
    before: Option<&User>,
    asked: &User,
    shown: &[&str],
) -> Option<String> {
    let custom = user_form_fields(realm);
    let on_form = |n: &str| shown.contains(&n) || custom.iter().any(|f| f.name == n);
    check_where(realm, Role::User, before, asked, on_form)
        .first()
        .map(english)
}

/// An attribute's values on a user: the four built-in fields or a custom
/// attribute.
fn values<'a>(u: &'a User, name: &str) -> Vec<&'a str> {
    let one = |v: &'a Option<String>| v.as_deref().into_iter().collect();
    match name {
        "username" => vec![u.username.as_str()],
        "email" => one(&u.email),
        "firstName" => one(&u.first_name),
        "lastName" => one(&u.last_name),
        _ => u
            .attributes
            .get(name)
            .map(|v| v.iter().map(String::as_str).collect())
            .unwrap_or_default(),
    }
}

/// Checks `after` against the realm's profile for `role`; `before` is the
/// stored user on an update (None when creating). Empty when all is well.
pub fn check(realm: &Realm, role: Role, before: Option<&User>, after: &User) -> Vec<FieldError> {
    check_where(realm, role, before, after, |_| true)
}

/// [`check`] for the attributes `asked` names only: a form that shows the
/// built-in fields alone cannot be refused for a custom one it never
/// offered.
fn check_where(
    realm: &Realm,
    role: Role,
    before: Option<&User>,
    after: &User,
    asked: impl Fn(&str) -> bool,
) -> Vec<FieldError> {
    let cfg = user_profile::config(realm);
    let mut errors = Vec::new();
    for attr in cfg["attributes"].as_array().into_iter().flatten() {
        let Some(name) = attr["name"].as_str().filter(|n| asked(n)) else {
            continue;
        };
        let now = values(after, name);
        let blank = now.iter().all(|v| v.trim().is_empty());
        if blank && required(attr, role) {
            errors.push(FieldError::new(
                name,
                "error-user-attribute-required",
                vec![],
            ));
            continue;
        }
        if before.is_some_and(|b| values(b, name) == now) {
            continue;
        }
        // An admin may not write what the profile lets only users edit
        // (where it says who may; a value being cleared or first set to
        // nothing is no write).
        if role == Role::Admin && !blank && !editable_by_admin(attr) {
            errors.push(FieldError::read_only(name));
            continue;
        }
        let Some(rules) = attr["validations"].as_object() else {
            continue;
        };
        for (validator, config) in rules {
            if let Some(e) = validate(realm, after, name, validator, config, &now) {
                errors.push(e);
            }
        }
    }
    errors
}

/// Whether the attribute's `permissions.edit`, where it has one, names
/// `admin`.
fn editable_by_admin(attr: &Value) -> bool {
    match attr.get("permissions").and_then(|p| p.get("edit")) {
        Some(Value::Array(roles)) => roles.iter().any(|r| r.as_str() == Some("admin")),
        _ => true,
    }
}

/// Keycloak's `required`: present, for every role or one naming `role`,
/// and not limited to login scopes (which only a login requests).
fn required(attr: &Value, role: Role) -> bool {
    let Some(rule) = attr.get("required").filter(|r| !r.is_null()) else {
        return false;
    };
    let listed = |key: &str| {
        rule.get(key)
            .and_then(Value::as_array)
            .filter(|a| !a.is_empty())
    };
    if listed("scopes").is_some() && role == Role::Admin {
        return false;
    }
    listed("roles").is_none_or(|roles| roles.iter().any(|r| r.as_str() == Some(role.name())))
}

/// A validator's number setting, given as a number or as text.
fn number(config: &Value, key: &str) -> Option<f64> {
    match config.get(key)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A number setting as Keycloak's parameters show it (integers stay
/// integers).
fn shown(n: Option<f64>) -> Value {
    match n {
        Some(n) if n.fract() == 0.0 && n.abs() < 9.0e15 => json!(n as i64),
        Some(n) => json!(n),
        None => Value::Null,
    }
}

/// Keycloak's error for `n` outside `min` / `max`: the key (`keys`: both
/// bounds set, only a minimum, only a maximum) names the bounds that are
/// set, and the parameters are both.
fn out_of_range(
    name: &str,
    n: f64,
    (min, max): (Option<f64>, Option<f64>),
    keys: [&str; 3],
) -> Option<FieldError> {
    if !(min.is_some_and(|m| n < m) || max.is_some_and(|m| n > m)) {
        return None;
    }
    let key = match (min, max) {
        (Some(_), None) => keys[1],
        (None, Some(_)) => keys[2],
        _ => keys[0],
    };
    Some(FieldError::new(name, key, vec![shown(min), shown(max)]))
}

/// The one error `validator` finds in `vals`, if any.
fn validate(
    realm: &Realm,
    user: &User,
    name: &str,
    validator: &str,
    config: &Value,
    vals: &[&str],
) -> Option<FieldError> {
    let custom = |default: &str| {
        config
            .get("error-message")
            .and_then(Value::as_str)
            .filter(|m| !m.is_empty())
            .unwrap_or(default)
            .to_owned()
    };
    if validator == "up-username-not-idn-homograph" {
        // Keycloak's `Validation.isUsernameValid` on the first value:
        // Latin and Common-script characters only, so that no username
        // spelled with Cyrillic or Greek look-alikes (`аdmin`) can pass
        // for another. Its parameter is the value, not the attribute.
        let v = vals.first().filter(|v| !v.trim().is_empty())?;
        return (!latin_or_common(v)).then(|| FieldError {
            field: name.to_owned(),
            message: "invalidUsernameMessage".to_owned(),
            params: vec![json!(v)],
        });
    }
    if validator == "multivalued" {
        let (min, max) = (number(config, "min"), number(config, "max"));
        let n = vals.iter().filter(|v| !v.trim().is_empty()).count() as f64;
        let key = "error-invalid-multivalued-size";
        return out_of_range(name, n, (min, max), [key; 3]);
    }
    let ignore_empty = config
        .get("ignore.empty.value")
        .is_none_or(|v| v != &json!(false) && v != &json!("false"));
    for &v in vals {
        if v.is_empty() && ignore_empty {
            continue;
        }
        let found = match validator {
            "length" => {
                let (min, max) = (number(config, "min"), number(config, "max"));
                let trim = config
                    .get("trim-disabled")
                    .is_none_or(|t| t != &json!(true) && t != &json!("true"));
                let text = if trim { v.trim() } else { v };
                // Java counts UTF-16 units.
                let len = text.encode_utf16().count() as f64;
                let keys = [
                    "error-invalid-length",
                    "error-invalid-length-too-short",
                    "error-invalid-length-too-long",
                ];
                out_of_range(name, len, (min, max), keys)
            }
            "email" => {
                let local_max = number(config, "max-local-length").unwrap_or(64.0);
                (!email_ok(v, local_max as usize))
                    .then(|| FieldError::new(name, "error-invalid-email", vec![json!(v)]))
            }
            "pattern" => {
                let pattern = config.get("pattern").and_then(Value::as_str)?;
                let re = regex::Regex::new(&format!("^(?:{pattern})$")).ok()?;
                (!re.is_match(v)).then(|| {
                    FieldError::new(
                        name,
                        &custom("error-pattern-no-match"),
                        vec![json!(pattern)],
                    )
                })
            }
            "username-prohibited-characters" => {
                // An e-mail as username is the email validator's to check.
                let email_as_username = realm.flag("registrationEmailAsUsername");
                (!email_as_username && v.chars().any(username_prohibited)).then(|| {
                    FieldError::new(name, &custom("error-username-invalid-character"), vec![])
                })
            }
            "person-name-prohibited-characters" => {
                v.chars().any(person_name_prohibited).then(|| {
                    FieldError::new(name, &custom("error-person-name-invalid-character"), vec![])
                })
            }
            "options" => {
                let options = config.get("options").and_then(Value::as_array)?;
                (!options.iter().any(|o| o.as_str() == Some(v)))
                    .then(|| FieldError::new(name, "error-invalid-value", vec![json!(v)]))
            }
            "integer" | "double" => {
                let parsed = if validator == "integer" {
                    v.trim().parse::<i64>().ok().map(|n| n as f64)
                } else {
                    v.trim().parse::<f64>().ok().filter(|n| n.is_finite())
                };
                let (min, max) = (number(config, "min"), number(config, "max"));
                let keys = [
                    "error-number-out-of-range",
                    "error-number-out-of-range-too-small",
                    "error-number-out-of-range-too-big",
                ];
                match parsed {
                    None => Some(FieldError::new(name, "error-invalid-number", vec![])),
                    Some(n) => out_of_range(name, n, (min, max), keys),
                }
            }
            "uri" => url::Url::parse(v)
                .is_err()
                .then(|| FieldError::new(name, "error-invalid-uri", vec![json!(v)])),
            "iso-date" => {
                (!iso_date(v)).then(|| FieldError::new(name, "error-invalid-date", vec![json!(v)]))
            }
            "local-date" => date_order(realm, user)
                .filter(|order| !local_date(v, order))
                .map(|_| FieldError::new(name, "error-invalid-date", vec![])),
            _ => None,
        };
        if found.is_some() {
            return found;
        }
    }
    None
}

/// Java's `^[\p{IsLatin}|\p{IsCommon}]+$` (the `|` included, as Java
/// reads it inside a class).
fn latin_or_common(v: &str) -> bool {
    static SCRIPTS: std::sync::LazyLock<Option<regex::Regex>> =
        std::sync::LazyLock::new(|| regex::Regex::new(r"^[\p{sc=Latin}\p{sc=Common}|]+$").ok());
    SCRIPTS.as_ref().is_none_or(|re| re.is_match(v))
}

/// Whether `y`-`m`-`d` is a day of the proleptic Gregorian calendar.
fn real_day(y: i64, m: i64, d: i64) -> bool {
    (1..=12).contains(&m)
        && (1..=31).contains(&d)
        && gatehouse_core::time::civil_from_days(gatehouse_core::time::days_from_civil(y, m, d))
            == (y, m, d)
}

/// Java's `ISO_LOCAL_DATE`, strict, which Keycloak's `iso-date` parses
/// with (what an HTML date input sends): `2024-02-29`; a year of more than
/// four digits carries its sign.
fn iso_date(v: &str) -> bool {
    let mut parts = v.rsplitn(3, '-');
    let (Some(d), Some(m), Some(y)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let digits = |t: &str, n: std::ops::RangeInclusive<usize>| {
        n.contains(&t.len()) && t.bytes().all(|b| b.is_ascii_digit())
    };
    let year_ok = match y.as_bytes().first() {
        Some(b'+') => digits(&y[1..], 5..=9),
        Some(b'-') => digits(&y[1..], 4..=9),
        _ => digits(y, 4..=4),
    };
    year_ok
        && digits(m, 2..=2)
        && digits(d, 2..=2)
        && matches!(
            (y.parse(), m.parse(), d.parse()),
            (Ok(y), Ok(m), Ok(d)) if real_day(y, m, d)
        )
}

/// The order of a short date's fields and their separator in a locale.
#[derive(Debug, PartialEq)]
enum DateOrder {
    /// Month, day, year (`en`: `12/31/24`).
    Mdy(char),
    /// Day, month, year (`de`: `31.12.24`, `fr`: `31/12/2024`).
    Dmy(char),
    /// Year, month, day (`ja`: `2024/12/31`, `sv`: `2024-12-31`).
    Ymd(char),
}

/// The short date form `local-date` reads for `user`: Keycloak resolves the
/// locale as its login pages do (English unless the realm is
/// internationalized; then the user's `locale`, else the realm's default)
/// and parses with Java's `DateFormat.SHORT` of that locale, whose CLDR
/// patterns these are. None for a locale whose short date is not plain
/// digits and one separator (Hungarian's `y. MM. dd.`, Arabic and Persian
/// digits, Thai's Buddhist years): those values go unchecked.
fn date_order(realm: &Realm, user: &User) -> Option<DateOrder> {
    let locale = if realm.flag("internationalizationEnabled") {
        user.attributes
            .get("locale")
            .and_then(|l| l.first())
            .map(String::as_str)
            .or_else(|| realm.extra.get("defaultLocale").and_then(Value::as_str))
            .unwrap_or("en")
    } else {
        "en"
    };
    let mut tags = locale.split(['-', '_']);
    let language = tags.next().unwrap_or_default().to_ascii_lowercase();
    let region = tags.next().unwrap_or_default().to_ascii_uppercase();
    Some(match (language.as_str(), region.as_str()) {
        ("en", "" | "US" | "PH") | ("fil", _) => DateOrder::Mdy('/'),
        ("en", "CA") => DateOrder::Ymd('-'),
        ("en", "ZA") => DateOrder::Ymd('/'),
        ("en" | "fr" | "es" | "it" | "pt" | "el" | "ca" | "vi" | "id", _) => DateOrder::Dmy('/'),
        (
            "de" | "ru" | "pl" | "cs" | "fi" | "nb" | "no" | "tr" | "uk" | "ro" | "da" | "lv"
            | "ka",
            _,
        ) => DateOrder::Dmy('.'),
        ("nl", _) => DateOrder::Dmy('-'),
        ("ja" | "zh", _) => DateOrder::Ymd('/'),
        ("sv" | "lt", _) => DateOrder::Ymd('-'),
        _ => return None,
    })
}

/// Java's non-lenient `DateFormat.parse` of a short date: numeric fields
/// of any width in the locale's order, a two-digit year within 80 years
/// before and 20 after now (a longer one as written), the day real; text
/// after the date is ignored, as `parse(String)` ignores it.
fn local_date(v: &str, order: &DateOrder) -> bool {
    let sep = match order {
        DateOrder::Mdy(c) | DateOrder::Dmy(c) | DateOrder::Ymd(c) => *c,
    };
    let mut rest = v;
    let mut fields = [(0i64, 0usize); 3];
    for (i, field) in fields.iter_mut().enumerate() {
        let len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let Ok(n) = rest[..len].parse::<i64>() else {
            return false;
        };
        *field = (n, len);
        rest = &rest[len..];
        if i < 2 {
            match rest.strip_prefix(sep) {
                Some(r) => rest = r,
                None => return false,
            }
        }
    }
    let ((y, y_len), m, d) = match order {
        DateOrder::Mdy(_) => (fields[2], fields[0].0, fields[1].0),
        DateOrder::Dmy(_) => (fields[2], fields[1].0, fields[0].0),
        DateOrder::Ymd(_) => (fields[0], fields[1].0, fields[2].0),
    };
    let year = if y_len == 2 {
        // SimpleDateFormat's default century: 80 years back, 20 ahead.
        let (this_year, _, _) =
            gatehouse_core::time::civil_from_days(gatehouse_core::time::now().div_euclid(86_400));
        let start = this_year - 80;
        let candidate = start - start.rem_euclid(100) + y;
        if candidate < start {
            candidate + 100
        } else {
            candidate
        }
    } else {
        y
    };
    // A lenient-free Java calendar has no year 0.
    year >= 1 && real_day(year, m, d)
}

/// Java's `\s`, `\v` and `\h` whitespace and `\p{Cntrl}` controls, which
/// both of Keycloak's character validators refuse (names may hold spaces).
fn java_space(c: char) -> bool {
    matches!(
        c,
        ' ' | '\t' | '\u{a0}' | '\u{1680}' | '\u{180e}' | '\u{2000}'
            ..='\u{200a}' | '\u{202f}' | '\u{205f}' | '\u{3000}'
    ) || java_vertical(c)
}

fn java_vertical(c: char) -> bool {
    matches!(
        c,
        '\n' | '\u{b}' | '\u{c}' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}'
    )
}

/// Keycloak's `username-prohibited-characters`: markup, quotes, shell and
/// path characters, whitespace and controls.
fn username_prohibited(c: char) -> bool {
    "<>&\"'$%!#?§,;:*~/\\|^=[]{}()`".contains(c) || java_space(c) || c.is_ascii_control()
}

/// Keycloak's `person-name-prohibited-characters`: as for usernames, but a
/// name may hold spaces, apostrophes, commas and colons.
fn person_name_prohibited(c: char) -> bool {
    "<>&\"$%!#?§;*~/\\|^=[]{}()".contains(c) || java_vertical(c) || c.is_ascii_control()
}

/// Keycloak's e-mail check (Hibernate Validator's): a dot-atom or quoted
/// local part of at most `local_max` characters, and a host name or an
/// address literal.
fn email_ok(v: &str, local_max: usize) -> bool {
    let Some((local, domain)) = v.rsplit_once('@') else {
        return false;
    };
    let atom =
        |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~-".contains(c) || !c.is_ascii();
    let word = |w: &str| {
        if let Some(q) = w.strip_prefix('"').and_then(|w| w.strip_suffix('"')) {
            !q.is_empty() && !q.chars().any(|c| c.is_ascii_control())
        } else {
            !w.is_empty() && w.chars().all(atom)
        }
    };
    if local.is_empty() || local.chars().count() > local_max || !local.split('.').all(word) {
        return false;
    }
    if let Some(literal) = domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
        let ip = literal.strip_prefix("IPv6:").unwrap_or(literal);
        return ip.parse::<std::net::IpAddr>().is_ok();
    }
    let label = |l: &str| {
        !l.is_empty()
            && l.chars().count() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_alphanumeric() || c == '-')
    };
    !domain.is_empty() && domain.len() <= 255 && domain.split('.').all(label)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> User {
        User::new("r", name)
    }

    #[test]
    fn usernames_and_names_follow_keycloaks_character_sets() {
        let realm = Realm::new("r");
        for ok in [
            "alice",
            "a.b-c_d@e",
            "\u{10d}esk\u{fd}",
            "\u{1e9e}tra\u{df}e",
        ] {
            assert!(
                check(&realm, Role::Admin, None, &user(ok)).is_empty(),
                "{ok}"
            );
        }
        for bad in [
            "a b",
            "a<b",
            "x'y",
            "a\tb",
            "a/b",
            "a\\b",
            "a:b",
            "a,b",
            "a\u{2028}b",
            "a\u{a0}b",
        ] {
            let e = check(&realm, Role::Admin, None, &user(bad));
            assert_eq!(e.len(), 1, "{bad:?}");
            assert_eq!(e[0].message, "error-username-invalid-character");
            assert_eq!(e[0].params, vec![json!("username")]);
        }
        // Letters of other scripts: Keycloak's IDN-homograph rule, the
        // value as its parameter (Cyrillic `а` in `аdmin`, Greek, CJK).
        for homograph in [
            "\u{430}dmin",
            "\u{397}\u{3bb}\u{3af}\u{3b1}\u{3c2}",
            "\u{5c71}\u{7530}\u{592a}\u{90ce}",
        ] {
            let e = check(&realm, Role::Admin, None, &user(homograph));
            assert_eq!(e.len(), 1, "{homograph}");
            assert_eq!(
                (e[0].message.as_str(), &e[0].params),
                (
                    "invalidUsernameMessage",
                    &vec![json!(homograph.to_lowercase())]
                )
            );
            assert_eq!(english(&e[0]), "Invalid username.");
        }
        let short = check(&realm, Role::Admin, None, &user("ab"));
        assert_eq!(short[0].message, "error-invalid-length");
        assert_eq!(
            short[0].params,
            vec![json!("username"), json!(3), json!(255)]
        );

        let mut u = user("alice");
        u.first_name = Some("Ann-Marie O'Neil, Jr.".into());
        u.last_name = Some("<script>".into());
        let e = check(&realm, Role::Admin, None, &u);
        assert_eq!(e.len(), 1);
        assert_eq!(
            (e[0].field.as_str(), e[0].message.as_str()),
            ("lastName", "error-person-name-invalid-character")
        );
    }

    #[test]
    fn emails_are_checked_as_keycloak_does() {
        for ok in [
            "a@b",
            "a.b+c@x.example",
            "\"q x\"@x.example",
            "a@[127.0.0.1]",
            "\u{e9}@x.example",
        ] {
            assert!(email_ok(ok, 64), "{ok}");
        }
        for bad in [
            "ab",
            "@x",
            "a@",
            "a..b@x",
            "a@-x.example",
            "a@x..example",
            "a b@x",
            &format!("{}@x", "a".repeat(65)),
        ] {
            assert!(!email_ok(bad, 64), "{bad}");
        }
    }

    #[test]
    fn dates_are_read_as_javas_iso_and_short_formats_read_them() {
        for ok in ["2024-02-29", "0001-01-01", "+10000-12-31", "-0044-03-15"] {
            assert!(iso_date(ok), "{ok}");
        }
        for bad in [
            "2023-02-29",
            "2024-2-29",
            "2024-13-01",
            "2024-00-10",
            "24-01-01",
            "+2024-01-01",
            "2024-01-01T00:00",
            "2024/01/01",
            "",
            "--",
        ] {
            assert!(!iso_date(bad), "{bad}");
        }
        let en = DateOrder::Mdy('/');
        for ok in ["12/31/24", "1/2/2024", "02/29/2024", "2/29/24 and more"] {
            assert!(local_date(ok, &en), "{ok}");
        }
        for bad in [
            "31/12/24",
            "2/30/2024",
            "2024-01-01",
            "1/2",
            "a/b/c",
            "1/2/0",
        ] {
            assert!(!local_date(bad, &en), "{bad}");
        }
        assert!(local_date("31.12.24", &DateOrder::Dmy('.')));
        assert!(!local_date("12/31/24", &DateOrder::Dmy('.')));
        assert!(local_date("2024/12/31", &DateOrder::Ymd('/')));

        // The locale: English unless the realm is internationalized, then
        // the user's, else the realm's default.
        let mut realm = Realm::new("r");
        let mut u = user("alice");
        u.attributes.insert("locale".into(), vec!["de".into()]);
        assert_eq!(date_order(&realm, &u), Some(DateOrder::Mdy('/')));
        realm
            .extra
            .insert("internationalizationEnabled".into(), json!(true));
        assert_eq!(date_order(&realm, &u), Some(DateOrder::Dmy('.')));
        realm.extra.insert("defaultLocale".into(), json!("ja"));
        assert_eq!(date_order(&realm, &user("bob")), Some(DateOrder::Ymd('/')));
        u.attributes.insert("locale".into(), vec!["hu".into()]);
        assert_eq!(date_order(&realm, &u), None);
        u.attributes.insert("locale".into(), vec!["de-AT".into()]);
        assert_eq!(date_order(&realm, &u), Some(DateOrder::Dmy('.')));

        // As validators of a custom attribute.
        let mut cfg = user_profile::config(&realm);
        if let Some(a) = cfg["attributes"].as_array_mut() {
            a.push(json!({"name": "born", "validations": {"iso-date": {}}}));
            a.push(json!({"name": "hired", "validations": {"local-date": {}}}));
        }
        user_profile::store(&mut realm, &cfg);
        let mut u = user("alice");
        u.attributes
            .insert("born".into(), vec!["1990-02-30".into()]);
        u.attributes
            .insert("hired".into(), vec!["2024/12/31".into()]);
        let e = check(&realm, Role::Admin, None, &u);
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(
            (e[0].field.as_str(), e[0].message.as_str()),
            ("born", "error-invalid-date")
        );
        assert_eq!(english(&e[0]), "Invalid date.");
        u.attributes
            .insert("born".into(), vec!["1990-02-28".into()]);
        u.attributes
            .insert("hired".into(), vec!["31.12.2024".into()]);
        let e = check(&realm, Role::Admin, None, &u);
        assert_eq!(
            (e[0].field.as_str(), e[0].message.as_str()),
            ("hired", "error-invalid-date")
        );
    }

    #[test]
    fn an_update_checks_only_what_changes_and_required_follows_the_role() {
        let mut realm = Realm::new("r");
        let mut cfg = user_profile::config(&realm);
        if let Some(a) = cfg["attributes"].as_array_mut() {
            a.push(json!({"name": "dept", "required": {"roles": ["admin"]},
                "validations": {"options": {"options": ["sales", "support"]}}}));
            a.push(json!({"name": "age", "required": {"roles": ["user"]},
                "validations": {"integer": {"min": "18"}}}));
        }
        user_profile::store(&mut realm, &cfg);
        let old = user("ab");
        let mut new = old.clone();
        new.attributes.insert("dept".into(), vec!["sales".into()]);
        assert!(
            check(&realm, Role::Admin, Some(&old), &new).is_empty(),
            "the old username stands"
        );
        let e = check(&realm, Role::Admin, None, &new);
        assert_eq!(e.len(), 1, "a new user's is checked");

        let mut u = user("alice");
        let e = check(&realm, Role::Admin, None, &u);
        assert_eq!(
            e,
            vec![FieldError::new(
                "dept",
                "error-user-attribute-required",
                vec![]
            )]
        );
        u.attributes.insert("dept".into(), vec!["hr".into()]);
        u.attributes.insert("age".into(), vec!["12".into()]);
        let e = check(&realm, Role::Admin, None, &u);
        let keys: Vec<&str> = e.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(
            keys,
            ["error-invalid-value", "error-number-out-of-range-too-small"]
        );
        assert_eq!(e[1].params, vec![json!("age"), json!(18), Value::Null]);
        u.attributes.remove("age");
        u.email = None;
        let e = check(&realm, Role::User, None, &u);
        let fields: Vec<&str> = e.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["email", "firstName", "lastName", "dept", "age"]);
    }
}
