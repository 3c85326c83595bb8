//! `multipart/form-data` bodies (RFC 7578) for the admin endpoints Keycloak
//! defines as uploads (a client's keystore or certificate). Small and
//! strict: the whole body is in memory (axum's body limit bounds it), each
//! part needs a `Content-Disposition: form-data; name="..."`, and anything
//! malformed is refused rather than guessed at.

use std::collections::HashMap;

/// The boundary named by a `multipart/form-data` content type.
fn boundary(content_type: &str) -> Option<&str> {
    let mut params = content_type.split(';');
    if !params
        .next()?
        .trim()
        .eq_ignore_ascii_case("multipart/form-data")
    {
        return None;
    }
    params.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"'))
            .filter(|b| !b.is_empty() && b.len() <= 70)
    })
}

/// The `name` of a part's `Content-Disposition: form-data` header.
fn part_name(headers: &str) -> Option<String> {
    headers.split("\r\n").find_map(|line| {
        let (k, v) = line.split_once(':')?;
        if !k.trim().eq_ignore_ascii_case("content-disposition") {
            return None;
        }
        let mut params = v.split(';');
        if !params.next()?.trim().eq_ignore_ascii_case("form-data") {
            return None;
        }
        params.find_map(|p| {
            let (k, v) = p.split_once('=')?;
            (k.trim() == "name").then(|| v.trim().trim_matches('"').to_owned())
        })
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The parts of `body` by name (a repeated name keeps its first part), or
/// None when the body is not well-formed `multipart/form-data`.
pub fn parse(content_type: &str, body: &[u8]) -> Option<HashMap<String, Vec<u8>>> {
    let delimiter = format!("--{}", boundary(content_type)?);
    let mut parts = HashMap::new();
    // Text before the first delimiter is a preamble and ignored.
    let mut rest = &body[find(body, delimiter.as_bytes())? + delimiter.len()..];
    let next = format!("\r\n{delimiter}");
    loop {
        if rest.starts_with(b"--") {
            return Some(parts);
        }
        rest = rest.strip_prefix(b"\r\n")?;
        let end = find(rest, next.as_bytes())?;
        let part = &rest[..end];
        let split = find(part, b"\r\n\r\n")?;
        let headers = std::str::from_utf8(&part[..split]).ok()?;
        let name = part_name(headers)?;
        parts
            .entry(name)
            .or_insert_with(|| part[split + 4..].to_vec());
        rest = &rest[end + next.len()..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CT: &str = "multipart/form-data; boundary=----x1";

    #[test]
    fn fields_and_files_by_name() {
        let body = b"preamble\r\n------x1\r\nContent-Disposition: form-data; name=\"keystoreFormat\"\r\n\r\nJKS\r\n------x1\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jks\"\r\nContent-Type: application/octet-stream\r\n\r\n\x00\r\n--\xfe\r\n------x1--\r\n";
        let parts = parse(CT, body).expect("parsed");
        assert_eq!(parts["keystoreFormat"], b"JKS");
        assert_eq!(parts["file"], b"\x00\r\n--\xfe");
        assert!(parse("multipart/form-data; boundary=\"----x1\"", body).is_some());
    }

    #[test]
    fn malformed_bodies_are_refused() {
        for (ct, body) in [
            ("application/json", &b"{}"[..]),
            ("multipart/form-data", b"------x1--"),
            (CT, b"no delimiter"),
            (
                CT,
                b"------x1\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nunterminated",
            ),
            (
                CT,
                b"------x1\r\nX-No-Disposition: 1\r\n\r\nv\r\n------x1--",
            ),
            (
                CT,
                b"------x1\r\nContent-Disposition: attachment; name=\"a\"\r\n\r\nv\r\n------x1--",
            ),
        ] {
            assert!(parse(ct, body).is_none(), "{ct} {body:?}");
        }
    }

    proptest! {
        /// Any body: no panic; any values survive a round trip.
        #[test]
        fn any_body_is_parsed_or_refused(body in proptest::collection::vec(any::<u8>(), 0..200),
                                         a in proptest::collection::vec(any::<u8>(), 0..50)) {
            let _ = parse(CT, &body);
            if find(&a, b"\r\n------x1").is_none() {
                let mut b = b"------x1\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n".to_vec();
                b.extend_from_slice(&a);
                b.extend_from_slice(b"\r\n------x1--");
                let parts = parse(CT, &b);
                prop_assert_eq!(parts.as_ref().and_then(|p| p.get("a")), Some(&a));
            }
        }
    }
}
