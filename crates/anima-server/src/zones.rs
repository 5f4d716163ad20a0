//! Network zones as the server's administrators define them: a name, the
//! `host:port` patterns sandboxes may reach through the provider's egress
//! proxy, and optionally fixed addresses for some of them (`connect_to`,
//! for hosts not in public DNS). A work item is granted zones by name; a
//! name not defined here is refused when granted (`NETWORK_ZONE_UNKNOWN`),
//! and a session gets the zones' definitions as they are when it starts.

use std::{collections::BTreeMap, net::SocketAddr};

use anima_core::{
    DomainError,
    capability::{Capability, CapabilityKind},
    error::reason,
    zone::Pattern,
};
use anima_proto::v1 as pb;
use serde::{Deserialize, Serialize};

use crate::error::not_configured;

/// One zone, as configured (`[network_zones.NAME]`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct ZoneConfig {
    /// `host:port` patterns ([`Pattern`]).
    pub allow: Vec<String>,
    /// `host:port` → `address:port`: where the proxy connects for that
    /// host instead of resolving it. The address counts as named by the
    /// zone, internal or not.
    pub connect_to: BTreeMap<String, String>,
}

/// The configured zones, checked.
#[derive(Debug, Clone, Default)]
pub struct NetworkZones {
    zones: BTreeMap<String, ZoneConfig>,
}

impl NetworkZones {
    /// Checks every pattern and fixed address.
    pub fn new(zones: BTreeMap<String, ZoneConfig>) -> anyhow::Result<Self> {
        for (name, zone) in &zones {
            anyhow::ensure!(
                !name.is_empty()
                    && name.len() <= 64
                    && name.bytes().all(|b| b.is_ascii_lowercase()
                        || b.is_ascii_digit()
                        || b"._-".contains(&b)),
                "network zone name {name:?} must be 1-64 of a-z 0-9 . _ -"
            );
            anyhow::ensure!(!zone.allow.is_empty(), "network zone {name} allows nothing");
            let patterns = zone
                .allow
                .iter()
                .map(|text| Pattern::parse(text))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|err| anyhow::anyhow!("network zone {name}: {err}"))?;
            for (host, target) in &zone.connect_to {
                let (host_name, port) = host
                    .rsplit_once(':')
                    .and_then(|(host, port)| Some((host, port.parse::<u16>().ok()?)))
                    .ok_or_else(|| {
                        anyhow::anyhow!(
                            "network zone {name}: connect_to key {host:?} is not host:port"
                        )
                    })?;
                anyhow::ensure!(
                    patterns
                        .iter()
                        .any(|pattern| pattern.allows_name(host_name, port)),
                    "network zone {name}: connect_to names {host:?}, which the zone does not allow"
                );
                target.parse::<SocketAddr>().map_err(|_| {
                    anyhow::anyhow!(
                        "network zone {name}: connect_to {target:?} is not address:port"
                    )
                })?;
            }
        }
        Ok(Self { zones })
    }

    /// Refuses zones not defined here and records each granted zone's
    /// patterns on its capability, for whoever lists them.
    pub fn check(&self, capabilities: &mut [Capability]) -> Result<(), DomainError> {
        for capability in capabilities {
            if let CapabilityKind::NetworkZone { name, hosts } = &mut capability.kind {
                *hosts = self.zone(name)?.allow.clone();
            }
        }
        Ok(())
    }

    fn zone(&self, name: &str) -> Result<&ZoneConfig, DomainError> {
        self.zones.get(name).ok_or_else(|| {
            not_configured(
                reason::NETWORK_ZONE_UNKNOWN,
                "network zone",
                name,
                "network_zones",
                self.zones.keys(),
            )
        })
    }

    /// The definitions of the zones a session was granted, as they are now.
    pub fn for_session(
        &self,
        capabilities: &[Capability],
    ) -> Result<Vec<pb::EgressZone>, DomainError> {
        capabilities
            .iter()
            .filter_map(|capability| match &capability.kind {
                CapabilityKind::NetworkZone { name, .. } => Some(name),
                _ => None,
            })
            .map(|name| {
                let zone = self.zone(name)?;
                Ok(pb::EgressZone {
                    name: name.clone(),
                    allow: zone.allow.clone(),
                    connect_to: zone.connect_to.clone().into_iter().collect(),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(allow: &[&str], connect_to: &[(&str, &str)]) -> ZoneConfig {
        ZoneConfig {
            allow: allow.iter().map(|host| (*host).to_owned()).collect(),
            connect_to: connect_to
                .iter()
                .map(|(host, target)| ((*host).to_owned(), (*target).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn definitions_are_checked() {
        let ok = NetworkZones::new(BTreeMap::from([(
            "test".to_owned(),
            zone(
                &["example.test:443"],
                &[("example.test:443", "127.0.0.1:4000")],
            ),
        )]));
        assert!(ok.is_ok());
        for bad in [
            zone(&[], &[]),
            zone(&["example.test"], &[]),
            zone(
                &["example.test:443"],
                &[("other.test:443", "127.0.0.1:4000")],
            ),
            zone(&["example.test:443"], &[("example.test:443", "localhost")]),
        ] {
            assert!(
                NetworkZones::new(BTreeMap::from([("z".to_owned(), bad.clone())])).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn granted_zones_must_be_defined_and_carry_their_hosts() {
        let zones = NetworkZones::new(BTreeMap::from([(
            "pypi".to_owned(),
            zone(&["pypi.org:443"], &[]),
        )]))
        .expect("zones");
        let granted = |name: &str| Capability {
            id: String::new(),
            kind: CapabilityKind::NetworkZone {
                name: name.into(),
                hosts: vec!["anything.example:1".into()],
            },
        };
        let mut capabilities = vec![granted("pypi")];
        zones.check(&mut capabilities).expect("defined");
        assert_eq!(
            capabilities[0].kind,
            CapabilityKind::NetworkZone {
                name: "pypi".into(),
                hosts: vec!["pypi.org:443".into()]
            }
        );
        let err = zones
            .check(&mut [granted("everything")])
            .expect_err("not defined");
        assert_eq!(err.reason, reason::NETWORK_ZONE_UNKNOWN);
    }
}
