//! Protocol-mapper list edits shared by clients
//! (`/clients/{id}/protocol-mappers/...`) and client scopes
//! (`/client-scopes/{id}/protocol-mappers/...`): both own a list of mappers
//! with the same rules (unique names, ids kept on update).

use crate::error::AdminError;
use crate::repr;
use gatehouse_core::model::ProtocolMapper;
use serde_json::{Value, json};

/// The list as Keycloak returns it.
pub fn list(ms: &[ProtocolMapper]) -> Value {
    json!(ms.iter().map(repr::mapper).collect::<Vec<_>>())
}

/// One mapper, or Keycloak's 404.
pub fn find(ms: &[ProtocolMapper], mid: &str) -> Result<Value, AdminError> {
    ms.iter()
        .find(|m| m.id == mid)
        .map(repr::mapper)
        .ok_or_else(|| AdminError::not_found("Model"))
}

/// Adds a mapper from its representation; a taken name is a 409.
/// Returns the new mapper's id.
pub fn add(ms: &mut Vec<ProtocolMapper>, rep: &Value) -> Result<String, AdminError> {
    let m = repr::parse_mapper(rep).map_err(AdminError::bad_request)?;
    if ms.iter().any(|x| x.name == m.name || x.id == m.id) {
        return Err(AdminError::conflict(
            "Protocol mapper exists with same name",
        ));
    }
    let id = m.id.clone();
    ms.push(m);
    Ok(id)
}

/// Replaces mapper `mid` (its id stays).
pub fn replace(ms: &mut [ProtocolMapper], mid: &str, rep: &Value) -> Result<(), AdminError> {
    let mut m = repr::parse_mapper(rep).map_err(AdminError::bad_request)?;
    m.id = mid.to_owned();
    let slot = ms
        .iter_mut()
        .find(|x| x.id == mid)
        .ok_or_else(|| AdminError::not_found("Model"))?;
    *slot = m;
    Ok(())
}

/// Removes mapper `mid`, or Keycloak's 404.
pub fn remove(ms: &mut Vec<ProtocolMapper>, mid: &str) -> Result<(), AdminError> {
    let before = ms.len();
    ms.retain(|m| m.id != mid);
    if ms.len() == before {
        return Err(AdminError::not_found("Model"));
    }
    Ok(())
}
