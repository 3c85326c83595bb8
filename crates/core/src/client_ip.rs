//! The caller's address behind reverse proxies. A request's socket peer is
//! the caller unless it is a configured trusted proxy; then the caller is
//! the rightmost forwarded-for entry that is not itself a trusted proxy.
//! Entries further left were written by the client and are not believed
//! (anyone can send `X-Forwarded-For: 1.2.3.4`). Which header the proxies
//! write is configured, as Keycloak's `proxy-headers`: `X-Forwarded-For`
//! (`xforwarded`, the default) or RFC 7239 `Forwarded` (`forwarded`, its
//! `for=` parameters). Without trusted proxies, neither is read.

use ipnet::IpNet;
use std::net::IpAddr;

/// Which header trusted proxies name the client in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ProxyHeader {
    /// `X-Forwarded-For: client, proxy1`.
    #[default]
    XForwarded,
    /// RFC 7239 `Forwarded: for=client;proto=https, for="[2001:db8::1]:443"`.
    Forwarded,
}

impl ProxyHeader {
    /// Parses Keycloak's `proxy-headers` values.
    pub fn parse(s: &str) -> Result<ProxyHeader, String> {
        match s {
            "xforwarded" => Ok(ProxyHeader::XForwarded),
            "forwarded" => Ok(ProxyHeader::Forwarded),
            other => Err(format!(
                "proxy_headers '{other}': use xforwarded or forwarded"
            )),
        }
    }

    /// The header's name, lower case.
    pub fn name(self) -> &'static str {
        match self {
            ProxyHeader::XForwarded => "x-forwarded-for",
            ProxyHeader::Forwarded => "forwarded",
        }
    }
}

/// The address ranges whose forwarding header is believed, and which
/// header that is.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>, ProxyHeader);

impl TrustedProxies {
    /// Parses CIDR ranges (`10.0.0.0/8`) or single addresses (`127.0.0.1`).
    pub fn parse<S: AsRef<str>>(ranges: &[S]) -> Result<TrustedProxies, String> {
        ranges
            .iter()
            .map(|r| {
                let r = r.as_ref().trim();
                r.parse::<IpNet>()
                    .or_else(|_| r.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("trusted proxy '{r}': not an address or CIDR range"))
            })
            .collect::<Result<_, _>>()
            .map(|nets| TrustedProxies(nets, ProxyHeader::XForwarded))
    }

    /// The same proxies, read through `header`.
    pub fn with_header(mut self, header: ProxyHeader) -> TrustedProxies {
        self.1 = header;
        self
    }

    /// The header the caller's address is read from.
    pub fn header(&self) -> ProxyHeader {
        self.1
    }

    /// Whether `ip` is one of the trusted proxies: only their forwarding
    /// headers are believed (and passed on by the gateway).
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// The caller's address for a request from `peer` carrying these
    /// values of [`Self::header`] (in header order; read from the right).
    pub fn client_ip<'a>(
        &self,
        peer: IpAddr,
        values: impl DoubleEndedIterator<Item = &'a str>,
    ) -> IpAddr {
        if self.0.is_empty() || !self.trusts(peer) {
            return peer;
        }
        let mut caller = peer;
        for v in values.rev() {
            // X-Forwarded-For has no quoting: split in place, no allocation
            // on the gateway's request path.
            let done = match self.1 {
                ProxyHeader::XForwarded => {
                    self.walk(&mut caller, v.rsplit(',').map(|e| Some(e.trim())))
                }
                ProxyHeader::Forwarded => self.walk(
                    &mut caller,
                    split_unquoted(v, b',').into_iter().rev().map(forwarded_for),
                ),
            };
            if done {
                return caller;
            }
        }
        caller
    }

    /// Whether no proxy is trusted (the header is then never read).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl TrustedProxies {
    /// Walks hop addresses from the right, moving `caller` to each while it
    /// is a trusted proxy; true once the caller is found (an untrusted
    /// address) or an entry is not an address (then the last verified hop
    /// stands).
    fn walk<'a>(&self, caller: &mut IpAddr, nodes: impl Iterator<Item = Option<&'a str>>) -> bool {
        for node in nodes {
            let Some(Ok(ip)) = node.map(str::parse::<IpAddr>) else {
                return true;
            };
            *caller = canonical(ip);
            if !self.trusts(*caller) {
                return true;
            }
        }
        false
    }
}

/// `s` split at `sep` outside double-quoted strings (RFC 7230 lists of
/// RFC 7239 elements may quote values).
fn split_unquoted(s: &str, sep: u8) -> Vec<&str> {
    let mut out = vec![];
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, &b) in s.as_bytes().iter().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            _ if b == sep && !quoted => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

/// The address of a `Forwarded` element's `for=` node (RFC 7239 §6):
/// `192.0.2.1`, `"192.0.2.1:8080"`, `"[2001:db8::1]"` or
/// `"[2001:db8::1]:443"`; None for `unknown`, obfuscated names or none.
fn forwarded_for(element: &str) -> Option<&str> {
    let value = split_unquoted(element, b';').into_iter().find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        k.trim().eq_ignore_ascii_case("for").then(|| v.trim())
    })?;
    let node = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value);
    match node.strip_prefix('[') {
        Some(v6) => v6.split_once(']').map(|(ip, _)| ip),
        None => Some(node.split_once(':').map_or(node, |(ip, _)| ip)),
    }
}

/// IPv4-mapped IPv6 (`::ffff:10.0.0.1`) as plain IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn only_trusted_hops_are_believed() {
        let t = TrustedProxies::parse(&["10.0.0.0/8", "127.0.0.1"]).expect("parse");
        let from = |peer: &str, xff: &[&str]| t.client_ip(ip(peer), xff.iter().copied());
        // Untrusted peer: its header is ignored.
        assert_eq!(from("203.0.113.9", &["1.2.3.4"]), ip("203.0.113.9"));
        // Trusted peer: rightmost untrusted entry.
        assert_eq!(
            from("127.0.0.1", &["1.2.3.4, 198.51.100.7"]),
            ip("198.51.100.7")
        );
        assert_eq!(
            from("127.0.0.1", &["198.51.100.7, 10.1.1.1"]),
            ip("198.51.100.7")
        );
        // Several header lines count as one list.
        assert_eq!(
            from("127.0.0.1", &["9.9.9.9", "198.51.100.7"]),
            ip("198.51.100.7")
        );
        // No header, or garbage: the last verified hop.
        assert_eq!(from("127.0.0.1", &[]), ip("127.0.0.1"));
        assert_eq!(from("127.0.0.1", &["nonsense"]), ip("127.0.0.1"));
        assert_eq!(
            from("::ffff:127.0.0.1", &["198.51.100.7"]),
            ip("198.51.100.7")
        );
        // Nothing trusted: the header never counts.
        let none = TrustedProxies::default();
        assert_eq!(
            none.client_ip(ip("127.0.0.1"), ["1.2.3.4"].into_iter()),
            ip("127.0.0.1")
        );
        assert!(TrustedProxies::parse(&["10.0.0.0/33"]).is_err());
    }

    #[test]
    fn rfc_7239_forwarded_for_nodes() {
        let t = TrustedProxies::parse(&["10.0.0.0/8"])
            .expect("parse")
            .with_header(ProxyHeader::Forwarded);
        let from = |v: &[&str]| t.client_ip(ip("10.0.0.2"), v.iter().copied());
        assert_eq!(from(&["for=198.51.100.7"]), ip("198.51.100.7"));
        assert_eq!(
            from(&["for=1.2.3.4, for=198.51.100.7;proto=https;by=10.0.0.2"]),
            ip("198.51.100.7")
        );
        assert_eq!(
            from(&["for=\"[2001:db8:cafe::17]:4711\", For=10.1.1.1"]),
            ip("2001:db8:cafe::17")
        );
        assert_eq!(from(&["for=\"198.51.100.7:8080\""]), ip("198.51.100.7"));
        assert_eq!(from(&["proto=https;for=198.51.100.7"]), ip("198.51.100.7"));
        // Unknown or obfuscated: the last verified hop.
        assert_eq!(from(&["for=unknown"]), ip("10.0.0.2"));
        assert_eq!(from(&["for=_hidden, for=10.1.1.1"]), ip("10.1.1.1"));
        assert_eq!(from(&["proto=https"]), ip("10.0.0.2"));
        // Commas inside quotes do not split elements.
        assert_eq!(from(&["for=198.51.100.7;x=\"a,b\""]), ip("198.51.100.7"));
        assert_eq!(ProxyHeader::parse("forwarded"), Ok(ProxyHeader::Forwarded));
        assert!(ProxyHeader::parse("both").is_err());
    }

    proptest::proptest! {
        /// Whatever a client writes in either header, reading it never
        /// panics, and the answer is the peer or an address the header
        /// actually names.
        #[test]
        fn any_header_text_is_read_safely(v in "[ -~]{0,80}", forwarded in proptest::bool::ANY) {
            let header = if forwarded { ProxyHeader::Forwarded } else { ProxyHeader::XForwarded };
            let t = TrustedProxies::parse(&["127.0.0.0/8"]).expect("parse").with_header(header);
            let got = t.client_ip(ip("127.0.0.1"), [v.as_str()].into_iter());
            proptest::prop_assert!(got == ip("127.0.0.1") || v.contains(&got.to_string()) || got.is_loopback() || v.contains(':'));
        }
    }
}
