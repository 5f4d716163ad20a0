//! Secret stores: the only places an agent session's secrets come from.
//!
//! A server administrator names each store in the configuration: a
//! directory of secret files, or a prefix of environment variables
//! reserved for agents. A secret capability names a store and a key in
//! it (`STORE://KEY`); a store that is not configured is refused when the
//! capability is set (`SECRET_STORE_UNKNOWN`), so nothing a project owner
//! writes can point at the server's own files, environment, database or
//! devices. Values are read when a session starts, with a size cap, on a
//! blocking thread, from regular files only (never through a link, never
//! a FIFO or a device), and they appear in no reply, error or log line.

use std::{collections::BTreeMap, path::PathBuf};

use anima_core::{
    DomainError,
    capability::{Capability, CapabilityKind, secret_reference},
    error::reason,
};
use anima_proto::v1 as pb;
use serde::{Deserialize, Serialize};

use crate::error::not_configured;

/// Largest secret value read, in bytes.
pub const MAX_SECRET_BYTES: u64 = 64 * 1024;

/// The prefix every environment store under the `ANIMA_` namespace must
/// use: the rest of that namespace is the server's own configuration.
pub const RESERVED_ENV_PREFIX: &str = "ANIMA_AGENT_SECRET_";

/// One store, as configured: a table with `kind`, or the text `dir:PATH`
/// or `env:PREFIX`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "kind")]
pub enum SecretStore {
    /// Files in a directory: key `K` is the file `PATH/K`.
    #[serde(rename = "dir")]
    Directory {
        /// An absolute directory, readable by the server.
        path: PathBuf,
    },
    /// Environment variables: key `K` is the variable `PREFIX` + `K`.
    #[serde(rename = "env")]
    Environment {
        /// The variables' common prefix, e.g. `ANIMA_AGENT_SECRET_`.
        prefix: String,
    },
}

impl SecretStore {
    /// Parses `dir:PATH` or `env:PREFIX` (the environment variable form).
    pub fn parse(spec: &str) -> anyhow::Result<Self> {
        match spec.split_once(':') {
            Some(("dir", path)) => Ok(Self::Directory { path: path.into() }),
            Some(("env", prefix)) => Ok(Self::Environment {
                prefix: prefix.into(),
            }),
            _ => anyhow::bail!("a secret store is dir:PATH or env:PREFIX, not {spec:?}"),
        }
    }
}

impl<'de> Deserialize<'de> for SecretStore {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(tag = "kind", deny_unknown_fields)]
        enum Table {
            #[serde(rename = "dir")]
            Directory { path: PathBuf },
            #[serde(rename = "env")]
            Environment { prefix: String },
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Text(String),
            Table(Table),
        }
        Ok(match Written::deserialize(deserializer)? {
            Written::Text(spec) => Self::parse(&spec).map_err(serde::de::Error::custom)?,
            Written::Table(Table::Directory { path }) => Self::Directory { path },
            Written::Table(Table::Environment { prefix }) => Self::Environment { prefix },
        })
    }
}

/// The configured stores, by name.
#[derive(Debug, Clone, Default)]
pub struct SecretStores {
    stores: BTreeMap<String, SecretStore>,
}

impl SecretStores {
    /// Checks the configuration: names are tokens, directories absolute,
    /// prefixes non-empty and outside the server's own variables.
    pub fn new(stores: BTreeMap<String, SecretStore>) -> anyhow::Result<Self> {
        for (name, store) in &stores {
            anyhow::ensure!(
                secret_reference(&format!("{name}://k")).is_some(),
                "secret store name {name:?} must be 1-64 of a-z 0-9 . _ -"
            );
            match store {
                SecretStore::Directory { path } => anyhow::ensure!(
                    path.is_absolute(),
                    "secret store {name}: the directory {} must be an absolute path",
                    path.display()
                ),
                SecretStore::Environment { prefix } => {
                    anyhow::ensure!(
                        prefix.len() >= 4
                            && prefix
                                .bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b == b'_'),
                        "secret store {name}: the prefix {prefix:?} must be at least 4 of \
                         A-Z a-z 0-9 _"
                    );
                    anyhow::ensure!(
                        !(prefix.starts_with("ANIMA") || "ANIMA_".starts_with(prefix.as_str()))
                            || prefix.starts_with(RESERVED_ENV_PREFIX),
                        "secret store {name}: the prefix {prefix:?} would reach the server's \
                         own ANIMA_ variables; use {RESERVED_ENV_PREFIX} or a prefix of your own"
                    );
                }
            }
        }
        Ok(Self { stores })
    }

    /// Refuses a capability set that names a store not configured here.
    pub fn check(&self, capabilities: &[Capability]) -> Result<(), DomainError> {
        for capability in capabilities {
            if let CapabilityKind::Secret { reference, .. } = &capability.kind {
                self.store_of(reference)?;
            }
        }
        Ok(())
    }

    /// Refuses a credential reference whose store is not configured here
    /// (`SECRET_STORE_UNKNOWN`) or that holds no value (`SECRET_NOT_FOUND`);
    /// the value itself is read and dropped.
    pub async fn check_reference(&self, reference: &str) -> Result<(), DomainError> {
        match self.value_of(reference).await? {
            Some(_) => Ok(()),
            None => Err(DomainError::failed_precondition(
                reason::SECRET_NOT_FOUND,
                format!("{reference} has no value of at most {MAX_SECRET_BYTES} bytes"),
            )),
        }
    }

    /// The value `reference` names, if its store holds one within the size
    /// cap; refused when the reference is malformed or names no
    /// configured store.
    async fn value_of(&self, reference: &str) -> Result<Option<Vec<u8>>, DomainError> {
        let (store, key) = self.store_of(reference)?;
        let store = store.clone();
        tokio::task::spawn_blocking(move || read(&store, &key))
            .await
            .map_err(|_| DomainError::internal("reading a secret stopped"))
    }

    fn store_of(&self, reference: &str) -> Result<(&SecretStore, String), DomainError> {
        let (store, key) = secret_reference(reference).ok_or_else(|| {
            DomainError::invalid_argument(
                reason::INVALID_CAPABILITY,
                format!("secret reference {reference:?} must look like STORE://KEY"),
            )
        })?;
        let known = self.stores.get(store).ok_or_else(|| {
            not_configured(
                reason::SECRET_STORE_UNKNOWN,
                "secret store",
                store,
                "secret_stores",
                self.stores.keys(),
            )
        })?;
        Ok((known, key.to_owned()))
    }

    /// The values of a session's secret capabilities, read from their
    /// stores.
    pub async fn values(
        &self,
        capabilities: &[Capability],
    ) -> Result<Vec<pb::SecretValue>, DomainError> {
        let mut values = Vec::new();
        for capability in capabilities {
            let CapabilityKind::Secret {
                name,
                reference,
                mount_as,
            } = &capability.kind
            else {
                continue;
            };
            let value = self.value_of(reference).await?.ok_or_else(|| {
                DomainError::failed_precondition(
                    reason::SECRET_NOT_FOUND,
                    format!(
                        "secret {name:?}: {reference} has no value of at most \
                         {MAX_SECRET_BYTES} bytes"
                    ),
                )
            })?;
            values.push(pb::SecretValue {
                name: name.clone(),
                mount_as: mount_as.clone(),
                value,
            });
        }
        Ok(values)
    }
}

/// A key's value, if the store has one within the size cap. Why it has
/// none is not told: the caller's message would carry it to a user.
fn read(store: &SecretStore, key: &str) -> Option<Vec<u8>> {
    match store {
        SecretStore::Directory { path } => {
            use std::{io::Read, os::unix::fs::OpenOptionsExt};
            // Never through a link, and opening a FIFO must not wait for
            // a writer; what is opened must then be a regular file.
            let file = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
                .open(path.join(key))
                .ok()?;
            let metadata = file.metadata().ok()?;
            if !metadata.is_file() || metadata.len() > MAX_SECRET_BYTES {
                return None;
            }
            let mut value = Vec::new();
            file.take(MAX_SECRET_BYTES + 1)
                .read_to_end(&mut value)
                .ok()?;
            (value.len() as u64 <= MAX_SECRET_BYTES).then_some(value)
        }
        SecretStore::Environment { prefix } => {
            use std::os::unix::ffi::OsStringExt;
            let value = std::env::var_os(format!("{prefix}{key}"))?.into_vec();
            (value.len() as u64 <= MAX_SECRET_BYTES).then_some(value)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(reference: &str) -> Capability {
        Capability {
            id: String::new(),
            kind: CapabilityKind::Secret {
                name: "s".into(),
                reference: reference.into(),
                mount_as: "s".into(),
            },
        }
    }

    fn stores(dir: &std::path::Path) -> SecretStores {
        SecretStores::new(BTreeMap::from([
            (
                "files".to_owned(),
                SecretStore::Directory {
                    path: dir.to_owned(),
                },
            ),
            (
                "agents".to_owned(),
                SecretStore::Environment {
                    prefix: "ANIMA_AGENT_SECRET_TEST_".into(),
                },
            ),
        ]))
        .expect("stores")
    }

    #[test]
    fn stores_that_reach_the_servers_own_variables_are_refused() {
        for prefix in ["ANIMA_", "ANIMA_SERVICE_", "ANIM", "ANIMA", "A_", ""] {
            let config = BTreeMap::from([(
                "env".to_owned(),
                SecretStore::Environment {
                    prefix: prefix.into(),
                },
            )]);
            assert!(SecretStores::new(config).is_err(), "{prefix:?}");
        }
        for prefix in [RESERVED_ENV_PREFIX, "CI_SECRET_"] {
            let config = BTreeMap::from([(
                "env".to_owned(),
                SecretStore::Environment {
                    prefix: prefix.into(),
                },
            )]);
            assert!(SecretStores::new(config).is_ok(), "{prefix:?}");
        }
        let relative = BTreeMap::from([(
            "files".to_owned(),
            SecretStore::Directory {
                path: "secrets".into(),
            },
        )]);
        assert!(SecretStores::new(relative).is_err());
    }

    #[test]
    fn only_configured_stores_are_accepted() {
        let dir = tempfile::tempdir().expect("dir");
        let stores = stores(dir.path());
        assert!(stores.check(&[secret("files://token")]).is_ok());
        for bad in ["env://ANIMA_SERVICE_TOKENS", "vault://kv-a"] {
            let err = stores.check(&[secret(bad)]).expect_err(bad);
            assert_eq!(err.reason, reason::SECRET_STORE_UNKNOWN, "{bad}");
        }
        let err = stores
            .check(&[secret("file:///proc/self/environ")])
            .expect_err("not STORE://KEY");
        assert_eq!(err.reason, reason::INVALID_CAPABILITY);
    }

    #[tokio::test]
    async fn values_are_regular_files_within_the_cap_and_never_links() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(dir.path().join("token"), b"s3cret").expect("write");
        std::fs::write(
            dir.path().join("huge"),
            vec![b'x'; usize::try_from(MAX_SECRET_BYTES).unwrap_or(0) + 1],
        )
        .expect("write");
        std::os::unix::fs::symlink("/etc/hostname", dir.path().join("link")).expect("link");
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("zero")).expect("link");
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo");
        assert!(made.success());
        let stores = stores(dir.path());
        let values = stores
            .values(&[secret("files://token")])
            .await
            .expect("value");
        assert_eq!(values[0].value, b"s3cret");
        for refused in [
            "files://huge",
            "files://link",
            "files://zero",
            "files://fifo",
            "files://missing",
            "agents://NOT_SET",
        ] {
            let err = stores.values(&[secret(refused)]).await.expect_err(refused);
            assert_eq!(err.reason, reason::SECRET_NOT_FOUND, "{refused}");
            assert!(
                !err.message.contains("No such file")
                    && !err.message.contains(&*dir.path().to_string_lossy()),
                "the refusal says nothing of the host: {}",
                err.message
            );
        }
    }
}
