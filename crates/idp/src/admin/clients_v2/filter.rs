//! The `q` filter of Keycloak's v2 listings: the subset of SCIM filters
//! (RFC 7644 §3.4.2.2) Keycloak takes. Comparisons `eq`, `ne`, `co`, `sw`,
//! `ew` and `pr`; `and`, `or` (weaker) and `not`; parentheses. Strings are
//! double-quoted and compared case-sensitively; `true`, `false` and `null`
//! are bare. On a list field (`redirectUris`, `roles`...) a comparison
//! holds when any element matches, and `ne` when none equals. `gt`, `ge`,
//! `lt`, `le`, unknown fields and anything malformed are refused (a 400),
//! never read loosely, so a typo cannot widen a listing.

use serde_json::Value;

/// Fields a filter may name: the representation's top-level ones
/// ([`super::FIELDS`]), and `auth`'s own.
fn known(field: &str) -> bool {
    super::FIELDS.contains(&field) || matches!(field, "auth.method" | "auth.certificate")
}

/// A parsed filter.
#[derive(Debug, PartialEq)]
pub enum Expr {
    Or(Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Compare(String, Op, Literal),
    Present(String),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
}

/// A filter's value.
#[derive(Debug, PartialEq)]
pub enum Literal {
    Str(String),
    Bool(bool),
    Null,
}

#[derive(Debug, PartialEq)]
enum Token {
    Word(String),
    Str(String),
    Open,
    Close,
}

fn tokens(text: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' => {
                chars.next();
                out.push(Token::Open);
            }
            ')' => {
                chars.next();
                out.push(Token::Close);
            }
            '"' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(e @ ('"' | '\\')) => s.push(e),
                            _ => return Err("Invalid escape in a filter string".into()),
                        },
                        Some(ch) => s.push(ch),
                        None => return Err("Unterminated string in the filter".into()),
                    }
                }
                out.push(Token::Str(s));
            }
            _ => {
                let mut w = String::new();
                while let Some(&ch) = chars.peek() {
                    if ch.is_whitespace() || matches!(ch, '(' | ')' | '"') {
                        break;
                    }
                    w.push(ch);
                    chars.next();
                }
                out.push(Token::Word(w));
            }
        }
    }
    Ok(out)
}

/// Parses a filter; the error says what is wrong with it.
pub fn parse(text: &str) -> Result<Expr, String> {
    let toks = tokens(text)?;
    let mut p = Parser { toks, at: 0 };
    let e = p.or()?;
    if p.at != p.toks.len() {
        return Err("Unexpected text after the end of the filter".into());
    }
    Ok(e)
}

struct Parser {
    toks: Vec<Token>,
    at: usize,
}

impl Parser {
    fn keyword(&self, k: &str) -> bool {
        matches!(self.toks.get(self.at), Some(Token::Word(w)) if w.eq_ignore_ascii_case(k))
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut left = self.and()?;
        while self.keyword("or") {
            self.at += 1;
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut left = self.unary()?;
        while self.keyword("and") {
            self.at += 1;
            left = Expr::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, String> {
        if self.keyword("not") {
            self.at += 1;
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        if self.toks.get(self.at) == Some(&Token::Open) {
            self.at += 1;
            let e = self.or()?;
            if self.toks.get(self.at) != Some(&Token::Close) {
                return Err("Missing ')' in the filter".into());
            }
            self.at += 1;
            return Ok(e);
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Expr, String> {
        let Some(Token::Word(field)) = self.toks.get(self.at) else {
            return Err("Expected a field name in the filter".into());
        };
        if !known(field) {
            return Err(format!("Unknown field in the filter: {field}"));
        }
        let field = field.clone();
        self.at += 1;
        let Some(Token::Word(op)) = self.toks.get(self.at) else {
            return Err(format!("Expected an operator after {field}"));
        };
        let op = match op.to_ascii_lowercase().as_str() {
            "pr" => {
                self.at += 1;
                return Ok(Expr::Present(field));
            }
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "co" => Op::Co,
            "sw" => Op::Sw,
            "ew" => Op::Ew,
            "gt" | "ge" | "lt" | "le" => {
                return Err(format!("Unsupported operator in the filter: {op}"));
            }
            _ => return Err(format!("Unknown operator in the filter: {op}")),
        };
        self.at += 1;
        let value = match self.toks.get(self.at) {
            Some(Token::Str(s)) => Literal::Str(s.clone()),
            Some(Token::Word(w)) if w == "true" => Literal::Bool(true),
            Some(Token::Word(w)) if w == "false" => Literal::Bool(false),
            Some(Token::Word(w)) if w == "null" => Literal::Null,
            _ => {
                return Err(format!(
                    "Expected a quoted string, true, false or null after {field}"
                ));
            }
        };
        if !matches!(value, Literal::Str(_)) && !matches!(op, Op::Eq | Op::Ne) {
            return Err("co, sw and ew compare strings only".into());
        }
        self.at += 1;
        Ok(Expr::Compare(field, op, value))
    }
}

/// The value of `field` (dotted for `auth`'s) in a representation.
fn lookup<'a>(rep: &'a Value, field: &str) -> &'a Value {
    field.split('.').fold(rep, |v, k| &v[k])
}

fn one_matches(v: &Value, op: Op, lit: &Literal) -> bool {
    match (v, lit) {
        (Value::String(s), Literal::Str(l)) => match op {
            Op::Eq | Op::Ne => s == l,
            Op::Co => s.contains(l.as_str()),
            Op::Sw => s.starts_with(l.as_str()),
            Op::Ew => s.ends_with(l.as_str()),
        },
        (Value::Bool(b), Literal::Bool(l)) => b == l,
        _ => false,
    }
}

fn absent(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

impl Expr {
    /// Whether the representation `rep` passes the filter.
    pub fn matches(&self, rep: &Value) -> bool {
        match self {
            Expr::Or(a, b) => a.matches(rep) || b.matches(rep),
            Expr::And(a, b) => a.matches(rep) && b.matches(rep),
            Expr::Not(e) => !e.matches(rep),
            Expr::Present(f) => !absent(lookup(rep, f)),
            Expr::Compare(f, op, lit) => {
                let v = lookup(rep, f);
                let hit = match (v, lit) {
                    (_, Literal::Null) => absent(v),
                    (Value::Array(items), _) => items.iter().any(|i| one_matches(i, *op, lit)),
                    _ => one_matches(v, *op, lit),
                };
                if *op == Op::Ne { !hit } else { hit }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rep() -> Value {
        json!({"clientId": "web-app", "enabled": true, "protocol": "openid-connect",
               "redirectUris": ["https://a/cb", "https://b/cb"], "auth": {"method": "client-secret"}})
    }

    fn hits(q: &str) -> bool {
        parse(q).expect(q).matches(&rep())
    }

    #[test]
    fn comparisons_on_strings_booleans_lists_and_null() {
        assert!(hits(r#"clientId eq "web-app""#));
        assert!(!hits(r#"clientId eq "Web-App""#), "case-sensitive");
        assert!(hits(
            r#"clientId sw "web" and clientId ew "app" and clientId co "b-a""#
        ));
        assert!(hits("enabled eq true"));
        assert!(!hits("enabled eq false"));
        assert!(hits(r#"redirectUris eq "https://b/cb""#));
        assert!(hits(r#"redirectUris ne "https://c/cb""#));
        assert!(!hits(r#"redirectUris ne "https://a/cb""#));
        assert!(hits("description eq null"));
        assert!(hits("not (description pr) and redirectUris pr"));
        assert!(hits(r#"auth.method eq "client-secret""#));
        assert!(hits(r#"clientId eq "x" or protocol eq "openid-connect""#));
        assert!(!hits(
            r#"clientId eq "x" or protocol eq "saml" and enabled eq true"#
        ));
        assert!(
            parse(r#"CLIENTID eq "web-app""#).is_err(),
            "field names are exact"
        );
    }

    #[test]
    fn precedence_is_not_then_and_then_or() {
        let e = parse(r#"clientId eq "a" or clientId eq "b" and enabled eq true"#).expect("parse");
        assert!(matches!(e, Expr::Or(_, ref r) if matches!(**r, Expr::And(_, _))));
    }

    #[test]
    fn malformed_filters_unknown_fields_and_ordering_operators_are_refused() {
        for bad in [
            "",
            "clientId",
            r#"clientId eq"#,
            r#"clientId eq web"#,
            r#"secret eq "x""#,
            r#"clientId gt "a""#,
            r#"clientId le "a""#,
            r#"(clientId eq "a""#,
            r#"clientId eq "a")"#,
            r#"clientId eq "a" and"#,
            r#"clientId co true"#,
            r#"clientId eq "unterminated"#,
            r#"clientId eq "bad \q escape""#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
