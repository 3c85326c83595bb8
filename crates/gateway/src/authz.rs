//! Authorization per route. Rule kinds combine with AND; the values within
//! one kind with OR (`_any`) or AND (`scopes_all`). A route with an
//! authorizer and no rule admits any valid token of that authorizer.

pub mod cedar;
pub mod rules;
