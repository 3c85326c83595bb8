//! Gatehouse's domain model: realms, clients, users, groups, roles, sessions
//! and events, with no I/O. Every other crate speaks these types; wire formats
//! (Keycloak JSON) are converted at the HTTP edge, storage rows in the store.

pub mod client_ip;
pub mod error;
pub mod id;
pub mod model;
pub mod password;
pub mod ratelimit;
pub mod revocation;
pub mod time;

pub use error::{Error, Result};
