//! `anima.toml` as `anima up` reads it, every component's section at once,
//! and `anima config check`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};

/// The whole configuration file: one section per component. The
/// standalone binaries (anima-server, anima-ai, anima-mail, anima-library)
/// read their own sections of the same file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnimaConfig {
    /// `[server]`: the API server.
    pub server: anima_server::ServerConfig,
    /// `[ai]`: which model answers which tier.
    pub ai: anima_ai::config::AiSettings,
    /// `[mail]`: the mail worker; without `jmap_url`, no mail is followed.
    pub mail: anima_mail::worker::MailConfig,
    /// `[agent]`: who runs agent sessions and what their sandboxes run.
    pub agent: anima_server::config::AgentConfig,
    /// `[library]`: where documents' bytes are kept.
    pub library: anima_library::LibrarySettings,
}

impl AnimaConfig {
    /// Reads `file` (if given) and the `ANIMA_*` variables, which win.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        Ok(anima_core::config::read(file)?)
    }

    /// Everything a start would refuse that can be known without starting:
    /// each section's own checks.
    pub fn check(&self) -> anyhow::Result<()> {
        self.server.check().context("[server]")?;
        anima_ai::AiConfig::from_settings(self.ai.clone()).context("[ai]")?;
        self.library.check().context("[library]")?;
        if self.mail.is_enabled() {
            self.mail.check_settings().context("[mail]")?;
        }
        match self.agent.provider {
            // `anima up` hosts the sandboxes itself.
            anima_server::config::AgentProviderKind::Local => {}
            _ => {
                anima_server::agents::from_config(&self.agent)?;
            }
        }
        Ok(())
    }
}

/// `anima config`: the configuration file.
#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Validate anima.toml and the ANIMA_* variables as `anima up` reads
    /// them, then print the effective configuration (secrets masked) as
    /// TOML.
    Check(CheckArgs),
    /// List every key of anima.toml with the variable that sets it.
    Variables,
}

/// Options of `anima config check`.
#[derive(Args)]
pub struct CheckArgs {
    /// The file to check.
    #[arg(long, env = "ANIMA_CONFIG")]
    config: Option<PathBuf>,
}

/// Runs an `anima config` command.
pub fn run(command: ConfigCommand) -> anyhow::Result<()> {
    match command {
        ConfigCommand::Check(args) => {
            let config = AnimaConfig::load(args.config.as_deref())?;
            config.check()?;
            print!("{}", anima_core::config::masked(&config)?);
            eprintln!(
                "{} is valid",
                args.config
                    .as_deref()
                    .map_or("the configuration".into(), |path| path
                        .display()
                        .to_string())
            );
        }
        ConfigCommand::Variables => {
            for variable in anima_core::config::variables(&AnimaConfig::default())? {
                println!("{:<48} {}", variable.path.join("."), variable.name);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// Two keys with one variable would be set together by surprise.
    #[test]
    fn every_key_has_its_own_variable() {
        let variables = anima_core::config::variables(&AnimaConfig::default()).expect("keys");
        let names: BTreeSet<&str> = variables.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names.len(), variables.len(), "{variables:#?}");
        for name in [
            "ANIMA_LISTEN",
            "ANIMA_AI_MODEL_DIR",
            "ANIMA_MAIL_JMAP_URL",
            "ANIMA_LIBRARY_STORE",
        ] {
            assert!(names.contains(name), "{name} missing");
        }
        assert!(names.contains("ANIMA_AGENT_COMMAND"));
        assert!(names.contains("ANIMA_RATE_LIMITS_UPLOADS_PER_HOUR"));
    }

    /// Agents may be granted variables under the reserved prefix (an
    /// `env` secret store); no setting of the server may live there.
    #[test]
    fn no_key_is_readable_as_an_agent_secret() {
        let reserved = anima_server::secrets::RESERVED_ENV_PREFIX;
        for variable in anima_core::config::variables(&AnimaConfig::default()).expect("keys") {
            assert!(!variable.name.starts_with(reserved), "{}", variable.name);
        }
    }

    #[test]
    fn the_documented_example_is_valid() {
        let config: AnimaConfig = anima_core::config::load(
            Some((
                "anima.example.toml",
                include_str!("../../../anima.example.toml"),
            )),
            |_| None,
        )
        .expect("example");
        config.check().expect("valid");
    }
}
