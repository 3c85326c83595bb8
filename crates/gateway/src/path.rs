//! Request-path normalization before routing (RFC 3986 §6.2.2).
//!
//! Why: a gateway that routes on the raw path and forwards it raw lets
//! `/public/../admin` (or `/public/%2e%2e/admin`, or `//admin`) match a
//! public route, or no protected one, while the upstream, which resolves
//! dot segments and merges slashes, serves `/admin`: an authorization
//! bypass. So the gateway routes on, authorizes and forwards one and the
//! same normalized path, and refuses outright the spellings whose meaning
//! differs from one upstream to the next (encoded `/` or `\`, a literal
//! `\`, `..;` that Tomcat reads as `..`, NUL, escapes that are not UTF-8
//! such as the overlong `%c0%ae`), as Envoy does with
//! `normalize_path`, `merge_slashes` and `path_with_escaped_slashes_action:
//! REJECT_REQUEST`.

/// Why a path was refused (for the audit line; the caller only sees 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// `%` not followed by two hex digits.
    BadEscape,
    /// `%2F` or `%5C`: a separator some upstreams decode and some do not.
    EncodedSeparator,
    /// A literal `\`, a separator on some upstreams.
    Backslash,
    /// `%00`.
    Nul,
    /// A dot segment with parameters (`..;x`), a dot segment on Tomcat.
    DotSegmentParams,
    /// Escapes that decode to invalid UTF-8, such as the overlong
    /// `%c0%ae` that old decoders read as `.`.
    InvalidUtf8,
}

impl Rejected {
    /// The audit line's reason.
    pub fn reason(self) -> &'static str {
        match self {
            Rejected::BadEscape => "path: malformed percent-encoding",
            Rejected::EncodedSeparator => "path: encoded slash or backslash",
            Rejected::Backslash => "path: backslash",
            Rejected::Nul => "path: NUL",
            Rejected::DotSegmentParams => "path: dot segment with parameters",
            Rejected::InvalidUtf8 => "path: escapes that are not UTF-8",
        }
    }
}

/// The normalized form of `path`, or `None` when it already is normal (the
/// common case, decided in one pass without allocating).
pub fn normalize(path: &str) -> Result<Option<String>, Rejected> {
    if !path.starts_with('/') || !needs_work(path.as_bytes()) {
        return Ok(None);
    }
    let decoded = decode_unreserved(path)?;
    let trailing = decoded.ends_with('/');
    let mut segments: Vec<&str> = Vec::new();
    let mut ends_in_dir = trailing;
    for seg in decoded.split('/').filter(|s| !s.is_empty()) {
        ends_in_dir = false;
        match seg {
            "." => ends_in_dir = true,
            ".." => {
                segments.pop();
                ends_in_dir = true;
            }
            s if s.starts_with(".;") || s.starts_with("..;") => {
                return Err(Rejected::DotSegmentParams);
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(decoded.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if out.is_empty() || ends_in_dir || trailing {
        out.push('/');
    }
    Ok((out != path).then_some(out))
}

/// Whether anything in `p` could change under normalization or be refused:
/// a `%`, a `\`, or a `/` followed by `/` or `.`.
fn needs_work(p: &[u8]) -> bool {
    let mut prev = 0u8;
    for &b in p {
        if b == b'%' || b == b'\\' || (prev == b'/' && (b == b'/' || b == b'.')) {
            return true;
        }
        prev = b;
    }
    false
}

/// Decodes escapes of unreserved characters (`%41` → `A`, `%2e` → `.`) and
/// upper-cases the hex of the others, refusing what [`Rejected`] names.
fn decode_unreserved(path: &str) -> Result<String, Rejected> {
    let b = path.as_bytes();
    let mut out = String::with_capacity(b.len());
    // The bytes of the current run of escapes of non-ASCII bytes: each run
    // must be whole UTF-8 (checked when it ends).
    let mut run: Vec<u8> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if !run.is_empty()
            && (b[i] != b'%' || b.get(i + 1).and_then(|c| hex(*c)).is_none_or(|h| h < 8))
        {
            std::str::from_utf8(&run).map_err(|_| Rejected::InvalidUtf8)?;
            run.clear();
        }
        match b[i] {
            b'\\' => return Err(Rejected::Backslash),
            b'%' => {
                let (Some(h), Some(l)) = (
                    b.get(i + 1).and_then(|c| hex(*c)),
                    b.get(i + 2).and_then(|c| hex(*c)),
                ) else {
                    return Err(Rejected::BadEscape);
                };
                let c = h << 4 | l;
                match c {
                    b'/' | b'\\' => return Err(Rejected::EncodedSeparator),
                    0 => return Err(Rejected::Nul),
                    c if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') => {
                        out.push(c as char)
                    }
                    c => {
                        if c >= 0x80 {
                            run.push(c);
                        }
                        out.push('%');
                        out.push(char::from(HEX[usize::from(c >> 4)]));
                        out.push(char::from(HEX[usize::from(c & 15)]));
                    }
                }
                i += 3;
            }
            _ => {
                // Copy the run up to the next `%` or `\` at once (keeps
                // multi-byte characters whole).
                let end = b[i..]
                    .iter()
                    .position(|c| *c == b'%' || *c == b'\\')
                    .map_or(b.len(), |n| i + n);
                out.push_str(&path[i..end]);
                i = end;
            }
        }
    }
    std::str::from_utf8(&run).map_err(|_| Rejected::InvalidUtf8)?;
    Ok(out)
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(p: &str) -> Result<String, Rejected> {
        normalize(p).map(|o| o.unwrap_or_else(|| p.to_owned()))
    }

    #[test]
    fn normal_paths_are_left_alone_without_allocating() {
        for p in [
            "/",
            "/orders",
            "/orders/42",
            "/a/b/",
            "/a.b/c..d/.e",
            "/x;y=1",
        ] {
            assert_eq!(normalize(p), Ok(None), "{p}");
        }
    }

    #[test]
    fn dot_segments_and_repeated_slashes_resolve_as_rfc_3986_says() {
        let cases = [
            ("/public/../orders/42", "/orders/42"),
            ("/public/./x", "/public/x"),
            ("/../../orders", "/orders"),
            ("//orders//42", "/orders/42"),
            ("/a/b/..", "/a/"),
            ("/a/b/.", "/a/b/"),
            ("/..", "/"),
            ("/public/%2e%2e/orders", "/orders"),
            ("/public/%2E./orders", "/orders"),
            ("/%6Frders", "/orders"),
            ("/a%7e%20b", "/a~%20b"),
            ("/a%c3%a9", "/a%C3%A9"),
            ("/%e2%82%ac%20%c3%a9", "/%E2%82%AC%20%C3%A9"),
            ("/é/../x", "/x"),
        ];
        for (raw, want) in cases {
            assert_eq!(n(raw).as_deref(), Ok(want), "{raw}");
        }
    }

    #[test]
    fn ambiguous_spellings_are_refused() {
        let cases = [
            ("/public/..%2Forders", Rejected::EncodedSeparator),
            ("/public%2f..%2forders", Rejected::EncodedSeparator),
            ("/public/..%5Corders", Rejected::EncodedSeparator),
            ("/public\\..\\orders", Rejected::Backslash),
            ("/public/..;/orders", Rejected::DotSegmentParams),
            ("/public/.;x/orders", Rejected::DotSegmentParams),
            ("/a%00b", Rejected::Nul),
            ("/a%zz", Rejected::BadEscape),
            ("/a%4", Rejected::BadEscape),
            ("/public/%c0%ae%c0%ae/orders", Rejected::InvalidUtf8),
            ("/a%c3", Rejected::InvalidUtf8),
            ("/a%c3/b", Rejected::InvalidUtf8),
            ("/a%ff", Rejected::InvalidUtf8),
            ("/a%e2%82/x", Rejected::InvalidUtf8),
        ];
        for (raw, want) in cases {
            assert_eq!(normalize(raw), Err(want), "{raw}");
        }
    }

    #[test]
    fn normalizing_twice_changes_nothing_and_never_panics() {
        // Every short path over an alphabet of the characters that matter.
        let alphabet = ['/', '.', '%', '2', 'e', 'F', 'a', ';', '\\'];
        let mut stack = vec![String::from("/")];
        while let Some(p) = stack.pop() {
            if let Ok(once) = n(&p) {
                assert!(once.starts_with('/'), "{p} -> {once}");
                assert!(!once.contains("//"), "{p} -> {once}");
                assert_eq!(normalize(&once), Ok(None), "{p} -> {once}");
            }
            if p.len() < 7 {
                for c in alphabet {
                    stack.push(format!("{p}{c}"));
                }
            }
        }
    }
}
