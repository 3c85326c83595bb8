//! The one integration-test binary: each module starts the real server on
//! an ephemeral loopback port with a temporary SQLite database and talks
//! HTTP to it.

mod account;
mod admin;
mod authz;
mod broker;
mod clients_v2;
mod consent;
mod dpop;
mod gateway;
mod implicit;
mod ldap;
mod logout;
mod mail;
mod mcp;
mod oidc;
mod organizations;
mod otp;
mod pairwise;
mod peers;
mod registration;
mod request_object;
mod rp;
mod self_registration;
mod support;
