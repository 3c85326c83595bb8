//! The `apikey` authorizer: keys created through the admin API
//! (`/admin/realms/{realm}/api-keys`), sent in a header (`x-api-key` by
//! default), looked up by their SHA-256 through [`ApiKeyLookup`] and cached
//! for a few seconds. A revoked key is refused at once through the shared
//! revocation list, cache or not.

use crate::authn::Reject;
use crate::identity::Identity;
use gatehouse_core::model::{ApiKey, UsagePlan};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// A pending key lookup: the key and its realm's name.
pub type Lookup<'a> = Pin<Box<dyn Future<Output = Option<(ApiKey, String)>> + Send + 'a>>;

/// A resolved key: the caller, the key id, its usage plan.
pub type Resolved = Arc<(Arc<Identity>, String, UsagePlan)>;

/// How the gateway finds keys; the binary implements it over the store.
pub trait ApiKeyLookup: Send + Sync {
    /// The key with this SHA-256 (hex), with its realm's name.
    fn lookup<'a>(&'a self, key_hash: &'a str) -> Lookup<'a>;
}

/// The SHA-256 (hex) an API key is stored and looked up by.
pub fn key_hash(key: &str) -> String {
    gatehouse_core::id::sha256_hex(key.as_bytes())
}

/// The revocation-list id of an API key.
pub fn revocation_id(id: &str) -> String {
    format!("apikey:{id}")
}

/// A configured API-key authorizer.
pub struct ApiKeyAuthorizer {
    pub name: String,
    pub realm: String,
    pub header: http::HeaderName,
    lookup: Arc<dyn ApiKeyLookup>,
    cache: moka::sync::Cache<String, Option<Resolved>>,
}

impl ApiKeyAuthorizer {
    /// An authorizer for keys of `realm` read from `header`.
    pub fn new(
        name: &str,
        realm: &str,
        header: http::HeaderName,
        lookup: Arc<dyn ApiKeyLookup>,
    ) -> Self {
        ApiKeyAuthorizer {
            name: name.to_owned(),
            realm: realm.to_owned(),
            header,
            lookup,
            cache: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(5))
                .build(),
        }
    }

    /// The key in the request, if any.
    pub fn token<'a>(&self, headers: &'a http::HeaderMap) -> Option<Result<&'a str, Reject>> {
        match super::single(headers, &self.header)? {
            Ok(v) => v
                .to_str()
                .ok()
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(Ok),
            Err(r) => Some(Err(r)),
        }
    }

    /// The caller behind `key`, with the key id and usage plan.
    pub async fn authenticate(&self, key: &str) -> Result<Resolved, Reject> {
        if key.len() > 256 {
            return Err(Reject::Invalid("malformed api key"));
        }
        let hash = key_hash(key);
        let found = match self.cache.get(&hash) {
            Some(v) => v,
            None => {
                let v = self.lookup.lookup(&hash).await.and_then(|(k, realm)| {
                    (realm == self.realm && k.enabled).then(|| {
                        let id = Identity {
                            issuer: format!("apikey:{realm}"),
                            subject: format!("apikey:{}", k.id),
                            username: Some(k.consumer.clone()),
                            client_id: Some(k.name.clone()),
                            scopes: k.scopes.clone(),
                            exp: i64::MAX,
                            jti: Some(revocation_id(&k.id)),
                            authorizer: self.name.clone(),
                            // Everything the identity is made of: an edited
                            // key (new scopes) is a new identity to caches.
                            credential: gatehouse_core::id::sha256(
                                serde_json::json!([hash, k.id, k.consumer, k.name, k.scopes])
                                    .to_string()
                                    .as_bytes(),
                            ),
                            ..Default::default()
                        };
                        Arc::new((Arc::new(id), k.id.clone(), k.plan.clone()))
                    })
                });
                self.cache.insert(hash, v.clone());
                v
            }
        };
        found.ok_or(Reject::Invalid("unknown or disabled api key"))
    }
}
