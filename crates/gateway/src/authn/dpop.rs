//! DPoP at the gateway (RFC 9449 §7): a token bound to a key (`cnf.jkt`)
//! is accepted only with the `DPoP` scheme and a fresh proof of that key
//! for this very request; a bound token sent as a plain bearer token, or
//! a bearer token sent under the DPoP scheme, is refused. Other gateways
//! see a valid JWT and let a stolen bound token through.

use crate::authn::Reject;
use crate::authn::jwt::Presented;
use crate::identity::{Binding, Identity};
use gatehouse_jose::dpop::{Expected, ReplayCache};

/// The `DPoP` request header.
pub const HEADER: http::HeaderName = http::HeaderName::from_static("dpop");

/// Checks the binding of an authenticated token; `required` refuses
/// unbound ones (the authorizer's `require_dpop`). `url` gives the URL the
/// client addressed (the gateway's public URL and the request's path); it
/// is built only when a proof must be checked.
pub fn check(
    id: &Identity,
    presented: &Presented<'_>,
    headers: &http::HeaderMap,
    method: &http::Method,
    url: impl FnOnce() -> String,
    required: bool,
    replay: &ReplayCache,
) -> Result<(), Reject> {
    let jkt = match (&id.binding, presented.dpop) {
        (Binding::None, false) if required => {
            return Err(invalid_token("a DPoP-bound token is required"));
        }
        (Binding::None, false) => return Ok(()),
        (Binding::None, true) => {
            return Err(invalid_token(
                "DPoP scheme with a token that is not DPoP-bound",
            ));
        }
        (Binding::Unverifiable, _) => {
            return Err(invalid_token(
                "token bound by a confirmation method the gateway cannot check",
            ));
        }
        (Binding::Dpop(_), false) => {
            return Err(invalid_token(
                "DPoP-bound token sent without the DPoP scheme",
            ));
        }
        (Binding::Dpop(jkt), true) => jkt,
    };
    let proof = match crate::authn::single(headers, &HEADER) {
        None => return Err(invalid_proof("DPoP proof is missing")),
        Some(Err(_)) => return Err(invalid_proof("DPoP proof sent more than once")),
        Some(Ok(v)) => crate::authn::text(v)
            .ok_or_else(|| invalid_proof("DPoP header verification failure"))?,
    };
    // The token was verified, so it is text.
    let token = crate::authn::ascii(presented.token).ok_or(invalid_token("malformed token"))?;
    let now = gatehouse_core::time::now();
    let url = url();
    let want = Expected {
        method: method.as_str(),
        url: &url,
        access_token: Some(token),
        now,
    };
    let proven =
        gatehouse_jose::dpop::verify(proof, &want).map_err(|e| invalid_proof(e.summary()))?;
    if !gatehouse_core::id::same_bytes(proven.jkt.as_bytes(), jkt.as_bytes()) {
        return Err(invalid_proof(
            "DPoP proof made with another key than the token's",
        ));
    }
    replay
        .first_use(&proven, now)
        .map_err(|e| invalid_proof(e.summary()))
}

fn invalid_proof(reason: &'static str) -> Reject {
    Reject::Dpop {
        error: "invalid_dpop_proof",
        reason,
    }
}

fn invalid_token(reason: &'static str) -> Reject {
    Reject::Dpop {
        error: "invalid_token",
        reason,
    }
}
