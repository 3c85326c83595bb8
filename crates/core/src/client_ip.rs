//! The caller's address behind reverse proxies. A request's socket peer is
//! the caller unless it is a configured trusted proxy; then the caller is
//! the rightmost `X-Forwarded-For` entry that is not itself a trusted
//! proxy. Entries further left were written by the client and are not
//! believed (anyone can send `X-Forwarded-For: 1.2.3.4`). Without trusted
//! proxies, the header is ignored entirely, as Keycloak does without
//! `proxy-headers`.

use ipnet::IpNet;
use std::net::IpAddr;

/// The address ranges whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

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
            .map(TrustedProxies)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// The caller's address for a request from `peer` carrying these
    /// `X-Forwarded-For` values (in header order; read from the right).
    pub fn client_ip<'a>(
        &self,
        peer: IpAddr,
        xff: impl DoubleEndedIterator<Item = &'a str>,
    ) -> IpAddr {
        if self.0.is_empty() || !self.trusts(peer) {
            return peer;
        }
        let mut caller = peer;
        for e in xff.rev().flat_map(|v| v.rsplit(',')) {
            let Ok(ip) = e.trim().parse::<IpAddr>() else {
                // Garbage where an address should be: stop at the last
                // hop we could verify.
                return caller;
            };
            caller = canonical(ip);
            if !self.trusts(caller) {
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
}
