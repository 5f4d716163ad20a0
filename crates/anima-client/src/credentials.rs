//! The login the command-line client keeps between runs: which server,
//! which CA, who, and the session token, in a file only its owner reads.

use std::path::PathBuf;

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// What `anima login` stores.
#[derive(Serialize, Deserialize)]
pub struct Credentials {
    /// The server the token belongs to; it is never sent anywhere else.
    pub server: String,
    /// The CA the server's certificate is checked against, if not the
    /// system's roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<PathBuf>,
    /// Who logged in.
    pub username: String,
    /// The session token.
    pub token: String,
}

impl Credentials {
    /// Where they live: `credentials.json` in [`config_dir`].
    pub fn path() -> anyhow::Result<PathBuf> {
        Ok(config_dir()?.join("credentials.json"))
    }

    /// The stored login, if there is one.
    pub fn load() -> anyhow::Result<Option<Self>> {
        let path = Self::path()?;
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Some(
                serde_json::from_str(&text)
                    .with_context(|| format!("reading {}", path.display()))?,
            )),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Stores the login (readable by its owner only) and says where.
    pub fn save(&self) -> anyhow::Result<PathBuf> {
        let path = Self::path()?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let text = serde_json::to_string_pretty(self)?;
        crate::write_private_file(&path, text.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }

    /// Forgets the stored login; none stored is fine.
    pub fn forget() -> anyhow::Result<()> {
        let path = Self::path()?;
        match std::fs::remove_file(&path) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                Err(err).with_context(|| format!("removing {}", path.display()))
            }
            _ => Ok(()),
        }
    }
}

/// Where the command-line client keeps its session: `$ANIMA_CONFIG_DIR`,
/// else the platform config directory (`~/.config/anima` on Linux).
pub fn config_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("ANIMA_CONFIG_DIR") {
        return Ok(PathBuf::from(dir));
    }
    dirs::config_dir()
        .map(|dir| dir.join("anima"))
        .ok_or_else(|| anyhow::anyhow!("no config directory; set ANIMA_CONFIG_DIR"))
}
