//! Capabilities: what a work item's agent sessions may use — repositories,
//! secrets (by reference only), network zones and free-form typed entries.
//! The sandbox gets exactly these and nothing else, so they are validated
//! strictly on the way in.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{
    error::{DomainError, reason},
    id::{new_id, parse_id},
    validate::MAX_NAME_CHARS,
};

/// Most capabilities one work item may declare.
pub const MAX_CAPABILITIES: usize = 100;
/// Most hosts in one network zone.
pub const MAX_ZONE_HOSTS: usize = 100;
/// Most attributes of a custom capability.
pub const MAX_ATTRIBUTES: usize = 50;

/// One capability of a work item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capability {
    /// UUIDv7, assigned by the server when a client sends none.
    pub id: String,
    /// What it grants.
    pub kind: CapabilityKind,
}

/// What a capability grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CapabilityKind {
    /// Access to one repository of the project.
    RepoAccess {
        /// Repository id.
        repository_id: String,
        /// Push as well as pull.
        write: bool,
    },
    /// A secret, by reference: its value is never stored by Anima; it is
    /// read from a store when a session starts.
    Secret {
        /// Name shown to humans.
        name: String,
        /// Where it lives, `STORE://KEY` ([`secret_reference`]): a store
        /// the server's administrators configured and a key in it.
        reference: String,
        /// File name under which the sandbox sees it.
        mount_as: String,
    },
    /// A network zone a server administrator defined: the hosts the
    /// sandbox may reach through the provider's egress proxy.
    NetworkZone {
        /// Zone name, as the server's configuration defines it.
        name: String,
        /// Its `host:port` patterns when it was granted (for display; a
        /// session gets the zone's definition when it starts).
        hosts: Vec<String>,
    },
    /// Anything else, typed by the client.
    Custom {
        /// Lower-case type, e.g. `gcp.service_account`.
        type_name: String,
        /// Its attributes.
        attributes: BTreeMap<String, String>,
    },
}

fn invalid(message: String) -> DomainError {
    DomainError::invalid_argument(reason::INVALID_CAPABILITY, message)
}

fn required(field: &str, value: &str, index: usize) -> Result<(), DomainError> {
    if value.trim().is_empty() {
        return Err(invalid(format!(
            "capability #{index}: {field} must not be empty"
        )));
    }
    if value.chars().count() > MAX_NAME_CHARS || value.chars().any(char::is_control) {
        return Err(invalid(format!(
            "capability #{index}: {field} must be at most {MAX_NAME_CHARS} printable characters"
        )));
    }
    Ok(())
}

/// A token of lower-case letters, digits and `._-` (types, attribute keys).
fn is_token(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

/// A host name, IP address or CIDR range, with an optional `:port`.
fn is_host(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 253
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:/*[]".contains(&b))
        && !value.starts_with(['-', '.'])
}

/// The store and key of a secret reference `STORE://KEY`, if it is one:
/// the store a token of lower-case letters, digits and `._-`, the key
/// 1-128 of letters, digits and `._-`, not starting with a dot (so it
/// names one entry of its store and nothing beside or above it).
pub fn secret_reference(reference: &str) -> Option<(&str, &str)> {
    let (store, key) = reference.split_once("://")?;
    let key_ok = !key.is_empty()
        && key.len() <= 128
        && !key.starts_with('.')
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    (is_token(store) && key_ok).then_some((store, key))
}

/// Validates a full set of capabilities, assigning ids to new ones.
/// Duplicate ids are refused; so is anything a sandbox could misread.
pub fn validate(capabilities: Vec<Capability>) -> Result<Vec<Capability>, DomainError> {
    if capabilities.len() > MAX_CAPABILITIES {
        return Err(invalid(format!(
            "at most {MAX_CAPABILITIES} capabilities per work item (got {})",
            capabilities.len()
        )));
    }
    let mut seen = Vec::with_capacity(capabilities.len());
    let mut checked = Vec::with_capacity(capabilities.len());
    for (index, capability) in capabilities.into_iter().enumerate() {
        let index = index + 1;
        let id = if capability.id.is_empty() {
            new_id()
        } else {
            parse_id(&capability.id, "capability id")?
        };
        if seen.contains(&id) {
            return Err(invalid(format!(
                "capability #{index}: id {id} appears twice"
            )));
        }
        seen.push(id.clone());
        match &capability.kind {
            CapabilityKind::RepoAccess { repository_id, .. } => {
                parse_id(repository_id, "repository_id")?;
            }
            CapabilityKind::Secret {
                name,
                reference,
                mount_as,
            } => {
                required("secret name", name, index)?;
                required("secret reference", reference, index)?;
                if secret_reference(reference).is_none() {
                    return Err(invalid(format!(
                        "capability #{index}: secret reference {reference:?} must look like \
                         STORE://KEY, a secret store of this server and a key in it (1-128 of \
                         A-Z a-z 0-9 . _ -, not starting with a dot), e.g. ci://deploy-token; \
                         secret values are never stored"
                    )));
                }
                required("secret mount_as", mount_as, index)?;
                let unsafe_path = mount_as.starts_with('/')
                    || mount_as
                        .split('/')
                        .any(|part| part.is_empty() || part == "..");
                if unsafe_path {
                    return Err(invalid(format!(
                        "capability #{index}: mount_as {mount_as:?} must be a relative path \
                         without empty or `..` parts"
                    )));
                }
            }
            CapabilityKind::NetworkZone { name, hosts } => {
                required("zone name", name, index)?;
                // The hosts are the zone's, as its definition on the
                // server says; a client may leave them out.
                if hosts.len() > MAX_ZONE_HOSTS {
                    return Err(invalid(format!(
                        "capability #{index}: a network zone has at most {MAX_ZONE_HOSTS} hosts"
                    )));
                }
                if let Some(bad) = hosts.iter().find(|host| !is_host(host)) {
                    return Err(invalid(format!(
                        "capability #{index}: {bad:?} is not a host name, address or range"
                    )));
                }
            }
            CapabilityKind::Custom {
                type_name,
                attributes,
            } => {
                if !is_token(type_name) {
                    return Err(invalid(format!(
                        "capability #{index}: type {type_name:?} must be 1-64 of a-z 0-9 . _ -"
                    )));
                }
                if attributes.len() > MAX_ATTRIBUTES {
                    return Err(invalid(format!(
                        "capability #{index}: at most {MAX_ATTRIBUTES} attributes"
                    )));
                }
                for (key, value) in attributes {
                    if !is_token(key) {
                        return Err(invalid(format!(
                            "capability #{index}: attribute key {key:?} must be 1-64 of a-z 0-9 . _ -"
                        )));
                    }
                    if value.chars().count() > MAX_NAME_CHARS * 10 {
                        return Err(invalid(format!(
                            "capability #{index}: attribute {key} is too long"
                        )));
                    }
                }
            }
        }
        checked.push(Capability {
            id,
            kind: capability.kind,
        });
    }
    Ok(checked)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(reference: &str, mount_as: &str) -> Capability {
        Capability {
            id: String::new(),
            kind: CapabilityKind::Secret {
                name: "token".into(),
                reference: reference.into(),
                mount_as: mount_as.into(),
            },
        }
    }

    #[test]
    fn secret_references_name_one_key_of_one_store() {
        assert_eq!(
            secret_reference("ci://deploy-token"),
            Some(("ci", "deploy-token"))
        );
        assert_eq!(
            secret_reference("env://PYPI_TOKEN"),
            Some(("env", "PYPI_TOKEN"))
        );
        for bad in [
            "ci://",
            "ci://../etc/passwd",
            "ci://a/b",
            "ci://.hidden",
            "file:///proc/self/environ",
            "Ci://x",
            "ci:/x",
            "plain",
        ] {
            assert_eq!(secret_reference(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn ids_are_assigned_and_kept() {
        let kept = new_id();
        let mut given = secret("vault://kv-a", "a");
        given.id = kept.clone();
        let checked = validate(vec![secret("vault://kv-a", "a"), given]).expect("valid");
        assert!(!checked[0].id.is_empty());
        assert_eq!(checked[1].id, kept);
    }

    #[test]
    fn unsafe_entries_are_refused() {
        for bad in [
            secret("plain-value", "a"),
            secret("vault://kv-a", "/etc/passwd"),
            secret("vault://kv-a", "../a"),
            Capability {
                id: String::new(),
                kind: CapabilityKind::NetworkZone {
                    name: "z".into(),
                    hosts: vec!["ok.example".into(), "bad host".into()],
                },
            },
            Capability {
                id: String::new(),
                kind: CapabilityKind::RepoAccess {
                    repository_id: "nope".into(),
                    write: false,
                },
            },
            Capability {
                id: String::new(),
                kind: CapabilityKind::Custom {
                    type_name: "Bad Type".into(),
                    attributes: BTreeMap::new(),
                },
            },
        ] {
            assert!(validate(vec![bad.clone()]).is_err(), "{bad:?}");
        }
        let twice = secret("vault://kv-a", "a");
        let mut twice = vec![twice.clone(), twice];
        let id = new_id();
        for capability in &mut twice {
            capability.id = id.clone();
        }
        assert!(validate(twice).is_err());
    }
}
