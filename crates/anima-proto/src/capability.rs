//! Capabilities between the wire and the domain, shared by every crate
//! that serves or proposes them.

use anima_core::{
    DomainError,
    capability::{Capability, CapabilityKind},
    error::reason,
};

use crate::v1 as pb;

/// A capability on the wire.
pub fn capability(capability: Capability) -> pb::Capability {
    use pb::capability::Kind;
    let kind = match capability.kind {
        CapabilityKind::RepoAccess {
            repository_id,
            write,
        } => Kind::RepoAccess(pb::RepoAccess {
            repository_id,
            write,
        }),
        CapabilityKind::Secret {
            name,
            reference,
            mount_as,
        } => Kind::Secret(pb::SecretRef {
            name,
            reference,
            mount_as,
        }),
        CapabilityKind::NetworkZone { name, hosts } => {
            Kind::NetworkZone(pb::NetworkZone { name, hosts })
        }
        CapabilityKind::Custom {
            type_name,
            attributes,
        } => Kind::Custom(pb::CustomCapability {
            r#type: type_name,
            attributes: attributes.into_iter().collect(),
        }),
    };
    pb::Capability {
        id: capability.id,
        kind: Some(kind),
    }
}

/// A capability from the wire, not yet validated; one without a kind is refused.
pub fn parse_capability(
    index: usize,
    capability: pb::Capability,
) -> Result<Capability, DomainError> {
    use pb::capability::Kind;
    let kind = match capability.kind {
        Some(Kind::RepoAccess(access)) => CapabilityKind::RepoAccess {
            repository_id: access.repository_id,
            write: access.write,
        },
        Some(Kind::Secret(secret)) => CapabilityKind::Secret {
            name: secret.name,
            reference: secret.reference,
            mount_as: secret.mount_as,
        },
        Some(Kind::NetworkZone(zone)) => CapabilityKind::NetworkZone {
            name: zone.name,
            hosts: zone.hosts,
        },
        Some(Kind::Custom(custom)) => CapabilityKind::Custom {
            type_name: custom.r#type,
            attributes: custom.attributes.into_iter().collect(),
        },
        None => {
            return Err(DomainError::invalid_argument(
                reason::INVALID_CAPABILITY,
                format!("capability #{} has no kind", index + 1),
            ));
        }
    };
    Ok(Capability {
        id: capability.id,
        kind,
    })
}
