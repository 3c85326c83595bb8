//! Throttling: a token bucket in its GCRA form per route and caller key.
//!
//! GCRA keeps one number per key, the theoretical arrival time (TAT): a
//! request at `now` is allowed when `TAT - now <= tau` (`tau = (burst-1) * T`,
//! `T = period / rate`), and then moves TAT on by `T`. The limiter sits
//! behind [`Limiter`] so a shared (Redis) implementation can replace the
//! local one for several nodes.

use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Mutex;

/// `rate_limit = { rate = 100, per = "second", burst = 20, key = "subject" }`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Sustained requests per `per`.
    pub rate: u64,
    /// `second`, `minute`, `hour` or `day`.
    #[serde(default = "default_per")]
    pub per: String,
    /// Requests allowed at once on top of the sustained rate (>= 1).
    pub burst: Option<u64>,
    /// What a bucket belongs to: `subject`, `client`, `ip`; default the
    /// subject for authenticated routes and the IP for public ones.
    pub key: Option<String>,
}

fn default_per() -> String {
    "second".into()
}

/// A validated policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// Nanoseconds between requests at the sustained rate.
    pub interval_ns: i128,
    /// Burst size.
    pub burst: u64,
    /// Seconds of the rate's window, for `RateLimit-Policy`.
    pub window_s: u64,
    pub rate: u64,
    pub key: KeyKind,
}

/// What identifies a caller's bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Subject,
    Client,
    Ip,
}

impl RateLimitConfig {
    /// Validates into a policy; `public` picks the default key.
    pub fn policy(&self, public: bool) -> Result<Policy, String> {
        let window_s = match self.per.as_str() {
            "second" => 1,
            "minute" => 60,
            "hour" => 3600,
            "day" => 86_400,
            other => {
                return Err(format!(
                    "rate_limit.per '{other}': use second, minute, hour or day"
                ));
            }
        };
        if self.rate == 0 {
            return Err("rate_limit.rate must be positive".into());
        }
        // One request per nanosecond at most: the emission interval must
        // not round to zero (it divides the remaining count).
        let most = window_s * 1_000_000_000;
        if self.rate > most {
            return Err(format!(
                "rate_limit.rate {} is more than one request a nanosecond (at most {most} per {})",
                self.rate, self.per
            ));
        }
        let key = match self.key.as_deref() {
            None if public => KeyKind::Ip,
            None | Some("subject") => KeyKind::Subject,
            Some("client") => KeyKind::Client,
            Some("ip") => KeyKind::Ip,
            Some(other) => {
                return Err(format!(
                    "rate_limit.key '{other}': use subject, client or ip"
                ));
            }
        };
        if public && key != KeyKind::Ip {
            return Err("a public route can only limit by ip".into());
        }
        Ok(Policy {
            interval_ns: (window_s as i128 * 1_000_000_000) / self.rate as i128,
            burst: self.burst.unwrap_or(1).max(1),
            window_s,
            rate: self.rate,
            key,
        })
    }
}

/// The outcome of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// Requests left in the burst after this one.
    pub remaining: u64,
    /// Seconds until the bucket is full again.
    pub reset_s: u64,
    /// Seconds to wait before retrying (denied only).
    pub retry_after_s: u64,
}

/// A rate limiter shared by every request of every route.
pub trait Limiter: Send + Sync {
    /// Checks and counts one request for `key` under `policy` at `now_ns`.
    fn check(&self, key: &str, policy: &Policy, now_ns: i128) -> Decision;
    /// Forgets buckets that are full again (called on a timer).
    fn prune(&self, now_ns: i128);
    /// Seconds until `key` may make a request, without counting one; 0 when
    /// it may now.
    fn blocked_for(&self, key: &str, policy: &Policy, now_ns: i128) -> u64;
}

const SHARDS: usize = 16;

/// In-process GCRA, sharded to keep lock contention low.
pub struct LocalLimiter {
    shards: Vec<Mutex<HashMap<String, i128>>>,
}

impl Default for LocalLimiter {
    fn default() -> Self {
        LocalLimiter {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }
}

fn shard_of(key: &str) -> usize {
    // FNV-1a: cheap and stable, good enough to spread keys over shards.
    let mut h: u64 = 0xcbf29ce484222325;
    for b in key.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    (h as usize) % SHARDS
}

fn ceil_s(ns: i128) -> u64 {
    if ns <= 0 {
        0
    } else {
        ((ns + 999_999_999) / 1_000_000_000) as u64
    }
}

impl Limiter for LocalLimiter {
    fn check(&self, key: &str, p: &Policy, now: i128) -> Decision {
        let tau = p.interval_ns * (p.burst as i128 - 1);
        let Ok(mut map) = self.shards[shard_of(key)].lock() else {
            // A poisoned shard: fail open would be a silent outage of the
            // limit, fail closed an outage of the route; keep serving.
            return Decision {
                allowed: true,
                remaining: 0,
                reset_s: 0,
                retry_after_s: 0,
            };
        };
        let tat = map.get(key).copied().unwrap_or(now).max(now);
        if tat - now > tau {
            let wait = tat - now - tau;
            return Decision {
                allowed: false,
                remaining: 0,
                reset_s: ceil_s(tat - now),
                retry_after_s: ceil_s(wait).max(1),
            };
        }
        let new_tat = tat + p.interval_ns;
        map.insert(key.to_owned(), new_tat);
        let used = new_tat - now;
        let remaining = ((tau + p.interval_ns - used) / p.interval_ns).max(0) as u64;
        Decision {
            allowed: true,
            remaining,
            reset_s: ceil_s(used),
            retry_after_s: 0,
        }
    }

    fn blocked_for(&self, key: &str, p: &Policy, now: i128) -> u64 {
        let tau = p.interval_ns * (p.burst as i128 - 1);
        let Ok(map) = self.shards[shard_of(key)].lock() else {
            return 0;
        };
        match map.get(key) {
            Some(tat) if *tat - now > tau => ceil_s(*tat - now - tau).max(1),
            _ => 0,
        }
    }

    fn prune(&self, now: i128) {
        for s in &self.shards {
            if let Ok(mut m) = s.lock() {
                m.retain(|_, tat| *tat > now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(rate: u64, burst: u64) -> Policy {
        RateLimitConfig {
            rate,
            per: "second".into(),
            burst: Some(burst),
            key: None,
        }
        .policy(false)
        .expect("policy")
    }

    #[test]
    fn burst_then_sustained_rate() {
        let l = LocalLimiter::default();
        let p = policy(10, 3); // one every 100 ms, 3 at once
        let t0: i128 = 1_000_000_000_000;
        let d: Vec<Decision> = (0..4).map(|_| l.check("k", &p, t0)).collect();
        assert_eq!(
            d.iter().map(|x| x.allowed).collect::<Vec<_>>(),
            vec![true, true, true, false]
        );
        assert_eq!(
            d.iter().map(|x| x.remaining).collect::<Vec<_>>(),
            vec![2, 1, 0, 0]
        );
        assert_eq!(d[3].retry_after_s, 1);
        // 100 ms later exactly one more fits.
        assert!(l.check("k", &p, t0 + 100_000_000).allowed);
        assert!(!l.check("k", &p, t0 + 100_000_000).allowed);
        // Other keys are independent.
        assert!(l.check("other", &p, t0).allowed);
        assert!(l.blocked_for("k", &p, t0 + 100_000_000) >= 1);
        assert_eq!(l.blocked_for("other", &p, t0), 0);
        // After a long pause the bucket is full and pruning forgets it.
        l.prune(t0 + 10_000_000_000);
        assert_eq!(l.check("k", &p, t0 + 10_000_000_000).remaining, 2);
    }

    #[test]
    fn bad_policies_are_refused() {
        let c = |per: &str, key: Option<&str>| RateLimitConfig {
            rate: 1,
            per: per.into(),
            burst: None,
            key: key.map(str::to_owned),
        };
        assert!(c("fortnight", None).policy(false).is_err());
        assert!(c("second", Some("subject")).policy(true).is_err());
        assert_eq!(c("minute", None).policy(true).expect("ok").key, KeyKind::Ip);
        // Faster than one a nanosecond: the interval would be 0 and every
        // request would divide by it.
        let fast = |rate: u64| RateLimitConfig {
            rate,
            ..c("second", None)
        };
        assert!(fast(1_000_000_001).policy(false).is_err());
        let p = fast(1_000_000_000).policy(false).expect("the fastest");
        assert!(LocalLimiter::default().check("k", &p, 0).allowed);
    }
}
