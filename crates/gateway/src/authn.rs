//! Authentication: turning a request's credentials into an [`Identity`].
//! One module per authorizer type; a route tries its authorizers in order
//! and the first that accepts wins.

pub mod jwt;

/// Why a credential was not accepted. Reasons go to the audit log only;
/// callers get a generic 401.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reject {
    /// No credential of the kind this authorizer reads.
    Missing,
    /// A credential was there but is not acceptable.
    Invalid(&'static str),
}

impl Reject {
    /// The reason for the audit log.
    pub fn reason(&self) -> &'static str {
        match self {
            Reject::Missing => "no credentials",
            Reject::Invalid(r) => r,
        }
    }
}
