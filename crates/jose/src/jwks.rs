//! The JWKS document a realm publishes.

use serde_json::{Value, json};

/// Builds `{"keys": [...]}` from public JWKs.
pub fn document<'a>(keys: impl IntoIterator<Item = &'a Value>) -> Value {
    json!({ "keys": keys.into_iter().cloned().collect::<Vec<_>>() })
}
