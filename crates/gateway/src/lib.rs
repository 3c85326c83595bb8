//! The gateway data plane: the front door for upstream APIs.
//!
//! A request goes through one pipeline, composed in [`pipeline::handle`]:
//! route match -> CORS preflight -> authenticate (authorizers, first that
//! accepts wins) -> authorize (route rules) -> forward with identity headers
//! -> audit line. Configuration is an immutable [`config::Snapshot`] in an
//! `ArcSwap`; a request reads one snapshot from start to finish, and reload
//! swaps it atomically.

pub mod assertion;
pub mod audit;
pub mod authn;
pub mod authz;
pub mod body;
pub mod config;
pub mod cors;
pub mod cross_site;
pub mod error;
pub mod h1pool;
pub mod h1serve;
pub mod h1wire;
pub mod identity;
pub mod identity_headers;
pub mod idle;
pub mod metadata;
pub mod metrics;
pub mod path;
pub mod pipeline;
pub mod proxy;
pub mod quota;
/// Throttling lives in `core` (the identity provider uses it too).
pub use gatehouse_core::ratelimit;
pub mod server;
pub mod tls;
pub mod unread_body;
pub mod upstream_tls;

pub use error::{Error, Result};
