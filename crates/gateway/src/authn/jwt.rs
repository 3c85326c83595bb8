//! The `jwt` authorizer: tokens from any OIDC issuer, verified against the
//! issuer's JWKS.
//!
//! Keys come from discovery (`issuer + /.well-known/openid-configuration`),
//! an explicit `jwks_uri`, or a local file; they are refreshed in the
//! background, refetched on an unknown `kid` at most once per
//! [`REFETCH_INTERVAL`], and the last good keys keep serving while the
//! issuer is down. A verified token is cached by its SHA-256 until the
//! earlier of its expiry and [`CACHE_TTL`], so a repeated token costs a hash
//! lookup; expiry is still checked on every hit.

use crate::authn::Reject;
use crate::config::AuthorizerConfig;
use crate::identity::{Identity, from_claims};
use crate::{Error, Result};
use arc_swap::ArcSwap;
use gatehouse_jose::verify::{KeySet, Purpose, Rules};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Minimum time between two JWKS fetches triggered by unknown kids.
pub const REFETCH_INTERVAL: Duration = Duration::from_secs(5);
/// Background JWKS refresh period.
pub const REFRESH_PERIOD: Duration = Duration::from_secs(300);
/// Longest time a verified token stays cached.
pub const CACHE_TTL: Duration = Duration::from_secs(60);
/// Tokens longer than this are refused before any parsing.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Tokens longer than this are not kept in a connection's memo (they are
/// still cached by hash).
const MEMO_MAX_TOKEN: usize = 8 * 1024;

/// Numbers authorizer instances, so that a connection's memo never credits
/// a token to a rebuilt authorizer (after a reload) that happens to reuse
/// the old one's address.
static INSTANCES: AtomicU64 = AtomicU64::new(1);

/// The last token one connection presented and the identity it proved.
/// A service calling an API over a kept-alive connection repeats the same
/// token on every request; recognising it by comparison skips hashing a
/// 1 KB token and the shared cache's lookup (together about a tenth of a
/// JWT request's user time). Same rules as the shared cache: the entry
/// lapses [`CACHE_TTL`] after the token was verified, and
/// [`JwtAuthorizer::authenticate`] checks expiry on whatever either gives.
#[derive(Default)]
pub struct TokenMemo(std::sync::Mutex<Option<Memo>>);

struct Memo {
    authorizer: u64,
    token: Box<[u8]>,
    id: Arc<Identity>,
}

impl TokenMemo {
    fn recall(&self, authorizer: u64, token: &[u8], now: i64) -> Option<Arc<Identity>> {
        // An HTTP/2 connection's concurrent streams do not wait for it.
        let slot = self.0.try_lock().ok()?;
        let m = slot.as_ref()?;
        (m.authorizer == authorizer
            && gatehouse_core::id::same_bytes(&m.token, token)
            && now < m.id.verified_at + CACHE_TTL.as_secs() as i64)
            .then(|| m.id.clone())
    }

    fn remember(&self, authorizer: u64, token: &[u8], id: &Arc<Identity>) {
        if token.len() > MEMO_MAX_TOKEN {
            return;
        }
        if let Ok(mut slot) = self.0.try_lock() {
            *slot = Some(Memo {
                authorizer,
                token: token.into(),
                id: id.clone(),
            });
        }
    }
}

/// A token as the request presented it.
#[derive(Debug, Clone, Copy)]
pub struct Presented<'a> {
    /// The token itself, as sent: its bytes are checked to be text only
    /// when it is verified (see [`JwtAuthorizer::authenticate`]).
    pub token: &'a [u8],
    /// Sent under the `DPoP` scheme (RFC 9449 §7.1) rather than `Bearer`.
    pub dpop: bool,
}

/// A configured JWT authorizer.
pub struct JwtAuthorizer {
    /// See [`INSTANCES`].
    instance: u64,
    name: String,
    cfg: AuthorizerConfig,
    rules: Rules,
    http: reqwest::Client,
    keys: ArcSwap<KeySet>,
    jwks_uri: ArcSwap<Option<String>>,
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
    cache: moka::sync::Cache<[u8; 32], Arc<Identity>>,
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub jwks_fetches: AtomicU64,
    pub jwks_failures: AtomicU64,
}

impl std::fmt::Debug for JwtAuthorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtAuthorizer")
            .field("name", &self.name)
            .finish()
    }
}

impl JwtAuthorizer {
    /// Validates the configuration. Keys are fetched on first use and by
    /// `Authorizer::start_background`.
    pub fn new(name: &str, cfg: AuthorizerConfig, http: reqwest::Client) -> Result<Self> {
        let at = |m: String| Error::Config(format!("authorizer '{name}': {m}"));
        if cfg.kind != "jwt" {
            return Err(at(format!(
                "unsupported type '{}' (supported: jwt)",
                cfg.kind
            )));
        }
        if cfg.issuer.is_none() && cfg.jwks_uri.is_none() && cfg.jwks_file.is_none() {
            return Err(at("needs `issuer`, `jwks_uri` or `jwks_file`".into()));
        }
        if cfg.token_header.is_some() && cfg.token_cookie.is_some() {
            return Err(at("`token_header` and `token_cookie` are exclusive".into()));
        }
        if cfg.require_dpop && (cfg.token_header.is_some() || cfg.token_cookie.is_some()) {
            return Err(at(
                "`require_dpop` needs tokens in `Authorization` (the DPoP scheme), not `token_header` or `token_cookie`"
                    .into(),
            ));
        }
        let algorithms = if cfg.algorithms.is_empty() {
            gatehouse_jose::verify::ASYMMETRIC.to_vec()
        } else {
            cfg.algorithms
                .iter()
                .map(|a| gatehouse_jose::verify::parse_alg(a).map_err(|e| at(e.to_string())))
                .collect::<Result<Vec<_>>>()?
        };
        let http = match &cfg.ca_file {
            None => http,
            Some(path) => {
                let pem = std::fs::read(path)
                    .map_err(|e| at(format!("ca_file {}: {e}", path.display())))?;
                let certs = reqwest::Certificate::from_pem_bundle(&pem)
                    .map_err(|e| at(format!("ca_file {}: {e}", path.display())))?;
                reqwest::Client::builder()
                    .tls_certs_merge(certs)
                    .timeout(Duration::from_secs(10))
                    .build()
                    .map_err(|e| at(format!("ca_file {}: {e}", path.display())))?
            }
        };
        let rules = Rules {
            issuer: cfg.issuer.clone(),
            audiences: cfg.audiences.clone(),
            algorithms,
            leeway: cfg.leeway_seconds,
            client_id_as_audience: cfg.client_id_as_audience(),
            purpose: Purpose::Access {
                id_tokens: cfg.accept_id_tokens,
            },
        };
        Ok(JwtAuthorizer {
            instance: INSTANCES.fetch_add(1, Ordering::Relaxed),
            name: name.to_owned(),
            jwks_uri: ArcSwap::from_pointee(cfg.jwks_uri.clone()),
            cfg,
            rules,
            http,
            keys: ArcSwap::from_pointee(KeySet::default()),
            last_fetch: tokio::sync::Mutex::new(None),
            cache: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(CACHE_TTL)
                .build(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            jwks_fetches: AtomicU64::new(0),
            jwks_failures: AtomicU64::new(0),
        })
    }

    /// The configuration this authorizer was built from.
    pub fn config(&self) -> &AuthorizerConfig {
        &self.cfg
    }

    /// The authorizer's name in the config.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The issuer, if configured (for RFC 9728 metadata).
    pub fn issuer(&self) -> Option<&str> {
        self.cfg.issuer.as_deref()
    }

    /// Extracts this authorizer's credential from the request headers.
    /// None when the request carries no credential of this kind; a
    /// rejection when it carries more than one (two headers, or a cookie
    /// named twice), since which one counts would be a guess.
    pub fn token<'a>(&self, headers: &'a http::HeaderMap) -> Option<Result<Presented<'a>, Reject>> {
        let bearer = |token| Presented { token, dpop: false };
        if let Some(c) = &self.cfg.token_cookie {
            let found = headers
                .get_all(http::header::COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(';'))
                .filter_map(|kv| kv.trim().split_once('='))
                .filter(|(k, _)| k == c)
                .map(|(_, v)| v);
            return super::only_one(found, "token cookie sent more than once")
                .map(|r| r.map(|t| bearer(t.as_bytes())));
        }
        let header = self.cfg.token_header.as_deref().unwrap_or("authorization");
        let v = match super::single(headers, header)? {
            Ok(v) => v.as_bytes().trim_ascii(),
            Err(r) => return Some(Err(r)),
        };
        let split = v.iter().position(|&b| b == b' ');
        match split.map(|i| (&v[..i], v[i + 1..].trim_ascii())) {
            Some((scheme, t)) if scheme.eq_ignore_ascii_case(b"bearer") => Some(Ok(bearer(t))),
            // RFC 9449 §7.1: a DPoP-bound token travels under its own
            // scheme, in `Authorization` only.
            Some((scheme, t))
                if scheme.eq_ignore_ascii_case(b"dpop") && self.cfg.token_header.is_none() =>
            {
                Some(Ok(Presented {
                    token: t,
                    dpop: true,
                }))
            }
            Some(_) => None,
            None if self.cfg.token_header.is_some() => Some(Ok(bearer(v))),
            // A bare JWT in `Authorization`, which AWS API Gateway accepts
            // (Amplify sends Cognito tokens so); any other bare value is
            // some other scheme's, not ours.
            None if looks_like_jws(v) => Some(Ok(bearer(v))),
            None => None,
        }
    }

    /// Whether this authorizer reads its token from a cookie, which a
    /// browser sends unasked (see [`crate::cross_site`]).
    pub fn reads_cookie(&self) -> bool {
        self.cfg.token_cookie.is_some()
    }

    /// Removes this authorizer's own credential slot, its `token_header`
    /// or `token_cookie` (the other cookies stay), from a request going to
    /// an upstream that is not to see tokens; `Authorization` is the
    /// pipeline's to clear.
    pub fn remove_own_slot(&self, headers: &mut http::HeaderMap) {
        if let Some(name) = &self.cfg.token_cookie {
            remove_cookie(headers, name);
        } else if let Some(name) = &self.cfg.token_header {
            headers.remove(name.as_str());
        }
    }

    /// Verifies `token` (cached) and returns the caller. `memo` is the
    /// connection's, when the request came over one. The token's bytes are
    /// checked to be text (ASCII) only when the memo does not hold them:
    /// the memo holds a token that passed, and a 1 KB token's check was
    /// 2 % of a proxied request's instructions.
    pub async fn authenticate(
        &self,
        token: &[u8],
        memo: Option<&TokenMemo>,
    ) -> std::result::Result<Arc<Identity>, Reject> {
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Err(Reject::Invalid("malformed token"));
        }
        let now = gatehouse_core::time::now();
        let recalled = memo.and_then(|m| m.recall(self.instance, token, now));
        let id = match &recalled {
            Some(id) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                id.clone()
            }
            None => {
                let text = super::ascii(token).ok_or(Reject::Invalid("malformed token"))?;
                self.verify_cached(text).await?
            }
        };
        // One expiry rule for the memo and the cache (a fresh verification
        // has passed it already); the cache is keyed by the credential.
        // Saturating: an issuer may sign `"exp": 9223372036854775807`.
        if now > id.exp.saturating_add(self.rules.leeway as i64) {
            self.cache.invalidate(&id.credential);
            return Err(Reject::Invalid("token expired"));
        }
        if let (None, Some(m)) = (recalled, memo) {
            m.remember(self.instance, token, &id);
        }
        Ok(id)
    }

    /// The shared cache's identity for `token`, or a fresh verification.
    async fn verify_cached(&self, token: &str) -> std::result::Result<Arc<Identity>, Reject> {
        let key = gatehouse_core::id::sha256(token.as_bytes());
        if let Some(id) = self.cache.get(&key) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(id);
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        if self.keys.load().is_empty() {
            self.refresh(false).await;
        }
        let mut result = self.keys.load().verify(token, &self.rules);
        if matches!(result, Err(gatehouse_jose::Error::UnknownKid)) && self.refresh(false).await {
            result = self.keys.load().verify(token, &self.rules);
        }
        let claims = result.map_err(|e| Reject::Invalid(reason(&e)))?;
        let id = Arc::new(
            from_claims(&self.cfg, &self.name, key, claims)
                .ok_or(Reject::Invalid("token has no subject"))?,
        );
        self.cache.insert(key, id.clone());
        Ok(id)
    }

    /// Fetches keys. Unless `force`, at most once per [`REFETCH_INTERVAL`];
    /// concurrent callers wait for one fetch. Returns whether new keys were
    /// loaded. On failure the previous keys stay.
    pub async fn refresh(&self, force: bool) -> bool {
        let mut last = self.last_fetch.lock().await;
        if !force && last.is_some_and(|t| t.elapsed() < REFETCH_INTERVAL) {
            return false;
        }
        *last = Some(Instant::now());
        self.jwks_fetches.fetch_add(1, Ordering::Relaxed);
        match self.fetch().await {
            Ok(ks) => {
                self.keys.store(Arc::new(ks));
                true
            }
            Err(e) => {
                self.jwks_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(authorizer = %self.name, error = %e, "JWKS fetch failed; keeping the last good keys");
                false
            }
        }
    }

    async fn fetch(&self) -> std::result::Result<KeySet, String> {
        if let Some(path) = &self.cfg.jwks_file {
            let body = tokio_read(path).await?;
            return KeySet::from_jwks_json(&body).map_err(|e| e.to_string());
        }
        let uri = match self.jwks_uri.load().as_ref().clone() {
            Some(u) => u,
            None => {
                let issuer = self.cfg.issuer.as_deref().ok_or("no issuer")?;
                let url = format!(
                    "{}/.well-known/openid-configuration",
                    issuer.trim_end_matches('/')
                );
                let doc: serde_json::Value = self.get_json(&url).await?;
                // OIDC Discovery §4.3: the document must name the same issuer.
                if doc.get("issuer").and_then(|v| v.as_str()) != Some(issuer) {
                    return Err(format!("discovery at {url} names a different issuer"));
                }
                let u = doc
                    .get("jwks_uri")
                    .and_then(|v| v.as_str())
                    .ok_or("discovery has no jwks_uri")?
                    .to_owned();
                self.jwks_uri.store(Arc::new(Some(u.clone())));
                u
            }
        };
        let resp = self
            .http
            .get(&uri)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map_err(|e| format!("GET {uri}: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("GET {uri}: {}", resp.status()));
        }
        let body = resp.bytes().await.map_err(|e| e.to_string())?;
        let ks = KeySet::from_jwks_json(&body).map_err(|e| e.to_string())?;
        if ks.is_empty() {
            return Err(format!("{uri} has no usable signing keys"));
        }
        Ok(ks)
    }

    async fn get_json(&self, url: &str) -> std::result::Result<serde_json::Value, String> {
        let r = self
            .http
            .get(url)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        if !r.status().is_success() {
            return Err(format!("GET {url}: {}", r.status()));
        }
        r.json().await.map_err(|e| format!("GET {url}: {e}"))
    }
}

async fn tokio_read(path: &std::path::Path) -> std::result::Result<Vec<u8>, String> {
    let p = path.to_owned();
    tokio::task::spawn_blocking(move || std::fs::read(&p))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Compact JWS shape: three base64url segments.
fn looks_like_jws(v: &[u8]) -> bool {
    v.iter().filter(|&&b| b == b'.').count() == 2
        && v.iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn reason(e: &gatehouse_jose::Error) -> &'static str {
    use gatehouse_jose::Error as E;
    match e {
        E::Malformed => "malformed token",
        E::UnknownKid => "unknown signing key",
        E::BadSignature => "bad signature",
        E::Expired => "token expired",
        E::NotYetValid => "token not yet valid",
        E::Issuer => "wrong issuer",
        E::Audience => "wrong audience",
        E::Algorithm => "algorithm not allowed",
        E::Critical => "critical header not understood",
        E::TokenType => "not an access token",
        _ => "invalid token",
    }
}

/// Drops cookie `name` from the request's `Cookie` headers, which become one
/// (RFC 6265 §5.4) holding the others; none is left if none remain. A
/// request without that cookie is left as it came.
fn remove_cookie(headers: &mut http::HeaderMap, name: &str) {
    let named = |pair: &str| pair.trim().split_once('=').is_some_and(|(k, _)| k == name);
    let present = headers
        .get_all(http::header::COOKIE)
        .iter()
        .any(|v| v.to_str().map_or(true, |v| v.split(';').any(named)));
    if !present {
        return;
    }
    let kept: Vec<String> = headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|p| !p.is_empty() && !named(p))
        .map(str::to_owned)
        .collect();
    headers.remove(http::header::COOKIE);
    if let Ok(v) = http::HeaderValue::from_str(&kept.join("; "))
        && !kept.is_empty()
    {
        headers.insert(http::header::COOKIE, v);
    }
}
