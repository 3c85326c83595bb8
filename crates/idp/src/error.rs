//! Errors at the HTTP edge. OAuth endpoints answer in RFC 6749 §5.2 JSON;
//! the admin API answers in Keycloak's `{"errorMessage": ...}` shape. Domain
//! and store errors convert here and nowhere else; internal details go to the
//! log, never to the caller.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// An RFC 6749 error response.
#[derive(Debug)]
pub struct OAuthError {
    pub status: StatusCode,
    pub error: &'static str,
    pub description: String,
    /// `WWW-Authenticate` to send (401 invalid_client with Basic, userinfo).
    pub www_authenticate: Option<String>,
    /// `Retry-After` seconds (429).
    pub retry_after: Option<u64>,
}

impl OAuthError {
    /// Builds an error with `status`, RFC 6749 `error` code and description.
    pub fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        OAuthError {
            status,
            error,
            description: description.into(),
            www_authenticate: None,
            retry_after: None,
        }
    }
    /// 400 invalid_request.
    pub fn invalid_request(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", d)
    }
    /// 400 invalid_grant.
    pub fn invalid_grant(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_grant", d)
    }
    /// 401 invalid_client.
    pub fn invalid_client(d: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_client", d)
    }
    /// 400 unauthorized_client (client not allowed this grant).
    pub fn unauthorized_client(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "unauthorized_client", d)
    }
    /// 500 server_error; the detail is logged, the caller sees a generic text.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "internal error",
        )
    }
}

impl From<gatehouse_store::Error> for OAuthError {
    fn from(e: gatehouse_store::Error) -> Self {
        OAuthError::internal(e)
    }
}

impl From<gatehouse_jose::Error> for OAuthError {
    fn from(e: gatehouse_jose::Error) -> Self {
        OAuthError::internal(e)
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut r = (
            self.status,
            Json(json!({"error": self.error, "error_description": self.description})),
        )
            .into_response();
        let h = r.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        if let Some(w) = self
            .www_authenticate
            .and_then(|w| HeaderValue::from_str(&w).ok())
        {
            h.insert(header::WWW_AUTHENTICATE, w);
        }
        if let Some(s) = self.retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        r
    }
}

/// An admin API error in Keycloak's shape.
#[derive(Debug)]
pub struct AdminError {
    pub status: StatusCode,
    pub message: String,
    /// Keycloak's message key, for the errors it answers as
    /// `{"error": key, "error_description": message}` (a password policy).
    pub key: Option<&'static str>,
    /// A whole body in Keycloak's own shape, where it answers with more
    /// than a message (the user profile's refused attributes).
    pub body: Option<Box<Value>>,
}

impl AdminError {
    /// Builds an error with a status and Keycloak-style message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        AdminError {
            status,
            message: message.into(),
            key: None,
            body: None,
        }
    }
    /// 400 for attributes the realm's user profile refuses, in Keycloak's
    /// ErrorRepresentation form (`field`, `errorMessage`, `params`).
    pub fn profile(errors: &[crate::profile_rules::FieldError]) -> Self {
        let mut e = Self::bad_request(
            errors
                .first()
                .map_or_else(String::new, |e| e.message.clone()),
        );
        e.body = Some(Box::new(crate::profile_rules::admin_body(errors)));
        e
    }
    /// 400 in Keycloak's `{"error": key, "error_description": message}`
    /// shape (its `ErrorResponseException`).
    pub fn described(key: &'static str, message: impl Into<String>) -> Self {
        AdminError {
            key: Some(key),
            ..Self::bad_request(message)
        }
    }
    /// 404 "{what} not found" (`what` names the thing: "User", "Realm").
    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, format!("{what} not found"))
    }
    /// 404 with a whole message, in Keycloak's words where it has its own
    /// ("Could not find role").
    pub fn missing(message: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
    /// 400.
    pub fn bad_request(m: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, m)
    }
    /// 409.
    pub fn conflict(m: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, m)
    }
}

impl From<gatehouse_store::Error> for AdminError {
    fn from(e: gatehouse_store::Error) -> Self {
        match e {
            gatehouse_store::Error::Conflict(_) => {
                AdminError::conflict("Conflict: duplicate entity")
            }
            gatehouse_store::Error::NotFound => AdminError::not_found("Resource"),
            gatehouse_store::Error::Stale => {
                AdminError::conflict("Modified concurrently by another request; retry")
            }
            other => {
                tracing::error!(error = %other, "admin storage error");
                AdminError::new(StatusCode::INTERNAL_SERVER_ERROR, "unknown_error")
            }
        }
    }
}

impl From<gatehouse_core::Error> for AdminError {
    fn from(e: gatehouse_core::Error) -> Self {
        match e {
            gatehouse_core::Error::NotFound(w) => AdminError::not_found(w),
            gatehouse_core::Error::Conflict(m) => AdminError::conflict(m),
            gatehouse_core::Error::Invalid(m) => AdminError::bad_request(m),
            other => {
                tracing::error!(error = %other, "admin error");
                AdminError::new(StatusCode::INTERNAL_SERVER_ERROR, "unknown_error")
            }
        }
    }
}

impl From<OAuthError> for AdminError {
    fn from(e: OAuthError) -> Self {
        AdminError::new(e.status, e.description)
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let body = if let Some(b) = self.body {
            *b
        } else if self.status == StatusCode::UNAUTHORIZED {
            json!({"error": "HTTP 401 Unauthorized"})
        } else if self.status == StatusCode::FORBIDDEN {
            json!({"error": "HTTP 403 Forbidden"})
        } else {
            match self.key {
                Some(k) => json!({"error": k, "error_description": self.message}),
                None => json!({"errorMessage": self.message}),
            }
        };
        (self.status, Json(body)).into_response()
    }
}
