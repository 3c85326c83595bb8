//! Pairwise subject identifiers (OIDC Core §8.1), as Keycloak's
//! `oidc-sha256-pairwise-sub-mapper` makes them: a client with that
//! mapper sees each user under a `sub` of its own sector (the host of its
//! redirect URIs, or of the mapper's `sectorIdentifierUri`), so clients of
//! different sectors cannot link their users by `sub`. The value is
//! Keycloak's: the name-based (version 3) UUID of
//! SHA-256(sector ‖ user id ‖ salt), so subjects survive a migration.
//!
//! Tokens, ID tokens, userinfo and logout tokens carry it; the server
//! finds the user behind one through the token's session (or, for a
//! service account's token, its client), never by searching subjects.

use gatehouse_core::model::{Client, ProtocolMapper};
use md5::Digest as _;

/// Keycloak's mapper type.
pub const MAPPER: &str = "oidc-sha256-pairwise-sub-mapper";
const SALT: &str = "pairwiseSubAlgorithmSalt";
const SECTOR_URI: &str = "sectorIdentifierUri";

/// The client's pairwise mapper, if it has one.
pub fn mapper_of(client: &Client) -> Option<&ProtocolMapper> {
    client
        .protocol_mappers
        .iter()
        .find(|m| m.protocol_mapper == MAPPER)
}

fn host(uri: &str) -> Option<String> {
    url::Url::parse(uri)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
}

/// The client's sector: the host of the mapper's sector identifier URI,
/// else the one host all its redirect URIs share (Keycloak's rule).
pub fn sector(client: &Client, m: &ProtocolMapper) -> Result<String, String> {
    if let Some(uri) = m.config.get(SECTOR_URI).filter(|u| !u.is_empty()) {
        return host(uri).ok_or_else(|| format!("Invalid {SECTOR_URI}: {uri}"));
    }
    let mut hosts: Vec<String> = client
        .redirect_uris
        .iter()
        .filter_map(|u| host(u))
        .collect();
    hosts.sort();
    hosts.dedup();
    match hosts.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err("Client redirect URIs must contain a valid host component".into()),
        _ => Err(
            "Without a configured Sector Identifier URI, client redirect URIs must not contain multiple host components"
                .into(),
        ),
    }
}

/// Keycloak's pairwise value: `UUID.nameUUIDFromBytes(sha256(sector ‖
/// local ‖ salt))`.
pub fn value(sector: &str, local: &str, salt: &str) -> String {
    let hash = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        &[sector.as_bytes(), local.as_bytes(), salt.as_bytes()].concat(),
    );
    let mut b: [u8; 16] = md5::Md5::digest(hash.as_ref()).into();
    b[6] = (b[6] & 0x0f) | 0x30;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The `sub` `client` sees for the user `user_id`: pairwise with the
/// mapper, the user's id without. A mapper whose sector cannot be told
/// (its client was saved before the check) gives an error rather than
/// the public id.
pub fn sub_for(client: &Client, user_id: &str) -> Result<String, String> {
    match mapper_of(client) {
        None => Ok(user_id.to_owned()),
        Some(m) => {
            let salt = m.config.get(SALT).map(String::as_str).unwrap_or_default();
            Ok(value(&sector(client, m)?, user_id, salt))
        }
    }
}

/// Whether `sub` is how `client` sees the user `user_id`.
pub fn names(client: &Client, user_id: &str, sub: &str) -> bool {
    sub_for(client, user_id).is_ok_and(|s| s == sub)
}

/// Readies a client's pairwise mapper before the client is stored: a salt
/// of its own when none is set (as Keycloak makes one), and a sector that
/// can be told, else the reason it cannot (a 400 for the caller).
pub fn prepare(client: &mut Client) -> Result<(), String> {
    let Some(i) = client
        .protocol_mappers
        .iter()
        .position(|m| m.protocol_mapper == MAPPER)
    else {
        return Ok(());
    };
    let m = &client.protocol_mappers[i];
    sector(client, m)?;
    let m = &mut client.protocol_mappers[i];
    if m.config.get(SALT).is_none_or(String::is_empty) {
        m.config.insert(SALT.into(), gatehouse_core::id::token());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value OpenJDK 17 computes with Keycloak's algorithm for these
    /// inputs (`UUID.nameUUIDFromBytes` of the SHA-256 digest).
    #[test]
    fn subjects_are_keycloaks() {
        assert_eq!(
            value(
                "client.example.org",
                "5f8b2a1e-0000-4000-8000-000000000001",
                "s3cr3t-salt"
            ),
            "32d0e5a6-7bdb-3737-add2-22e95ad289f6"
        );
    }

    #[test]
    fn the_sector_is_the_one_redirect_host_or_the_sector_uri() {
        let mut c = Client::new("r", "app");
        let mut m = ProtocolMapper {
            id: "m".into(),
            name: "pairwise".into(),
            protocol: "openid-connect".into(),
            protocol_mapper: MAPPER.into(),
            config: Default::default(),
        };
        c.redirect_uris = vec![
            "https://a.example/cb".into(),
            "https://a.example/other".into(),
        ];
        assert_eq!(sector(&c, &m).as_deref(), Ok("a.example"));
        c.redirect_uris.push("https://b.example/cb".into());
        assert!(sector(&c, &m).is_err());
        m.config
            .insert(SECTOR_URI.into(), "https://sector.example/uris.json".into());
        assert_eq!(sector(&c, &m).as_deref(), Ok("sector.example"));
        c.protocol_mappers.push(m);
        prepare(&mut c).expect("prepared");
        assert!(!c.protocol_mappers[0].config[SALT].is_empty());
        let sub = sub_for(&c, "u1").expect("sub");
        assert!(names(&c, "u1", &sub) && !names(&c, "u2", &sub));
        assert_ne!(sub, "u1");
    }
}
