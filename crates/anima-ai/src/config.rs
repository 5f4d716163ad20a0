//! Which model answers which tier: configuration, never code. Read from a
//! TOML file (`ANIMA_AI_CONFIG`) and `ANIMA_AI_*` variables, which win.
//!
//! ```toml
//! model_dir = "/var/lib/anima/models/all-MiniLM-L6-v2"
//! [tiers]
//! minimal = ["local"]
//! standard = ["local"]
//! reasoning = []
//! ```
//!
//! Each tier lists models as `provider` or `provider:model`, first choice
//! first; later entries are fallbacks.

use std::{fmt, path::PathBuf, str::FromStr};

use anima_proto::v1::ModelTier;
use anyhow::Context;
use serde::Deserialize;

/// Name of the model directory `scripts/setup-debian` installs.
pub const DEFAULT_MODEL_NAME: &str = "all-MiniLM-L6-v2";

/// One configured model of a tier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSpec {
    /// The embedded local provider (sentence vectors, extractive text).
    Local,
}

impl FromStr for ModelSpec {
    type Err = anyhow::Error;

    fn from_str(spec: &str) -> anyhow::Result<Self> {
        let (provider, _model) = spec.split_once(':').unwrap_or((spec, ""));
        match provider.trim() {
            "local" => Ok(ModelSpec::Local),
            other => anyhow::bail!(
                "unknown model provider {other:?} in {spec:?}; this build knows \"local\""
            ),
        }
    }
}

impl fmt::Display for ModelSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelSpec::Local => f.write_str("local"),
        }
    }
}

/// The models of each tier, first choice first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tiers {
    /// Mail classification, screening, routing.
    pub minimal: Vec<ModelSpec>,
    /// Summaries and description drafts.
    pub standard: Vec<ModelSpec>,
    /// Gap analysis, review decisions, capability derivation.
    pub reasoning: Vec<ModelSpec>,
}

impl Default for Tiers {
    /// The local provider for what it can do; no reasoning model, so
    /// reasoning requests fail clearly instead of being guessed at.
    fn default() -> Self {
        Self {
            minimal: vec![ModelSpec::Local],
            standard: vec![ModelSpec::Local],
            reasoning: Vec::new(),
        }
    }
}

impl Tiers {
    /// The models configured for `tier`.
    pub fn models(&self, tier: ModelTier) -> &[ModelSpec] {
        match tier {
            ModelTier::Minimal => &self.minimal,
            ModelTier::Standard | ModelTier::Unspecified => &self.standard,
            ModelTier::Reasoning => &self.reasoning,
        }
    }
}

/// The whole configuration of anima-ai.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AiConfig {
    /// The sentence model's directory; `None` means the default location.
    pub model_dir: Option<PathBuf>,
    /// Tier → models.
    pub tiers: Tiers,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    model_dir: Option<PathBuf>,
    #[serde(default)]
    tiers: FileTiers,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileTiers {
    minimal: Option<Vec<String>>,
    standard: Option<Vec<String>>,
    reasoning: Option<Vec<String>>,
}

impl AiConfig {
    /// From `ANIMA_AI_CONFIG` (a TOML file) if set, then `ANIMA_AI_MODEL_DIR`
    /// and `ANIMA_AI_TIER_{MINIMAL,STANDARD,REASONING}` (comma-separated
    /// model lists; empty means none).
    pub fn from_env() -> anyhow::Result<Self> {
        let var = |name: &str| std::env::var(name).ok();
        let file = match var("ANIMA_AI_CONFIG") {
            Some(path) => {
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("reading ANIMA_AI_CONFIG {path}"))?;
                toml::from_str(&text).with_context(|| format!("parsing {path}"))?
            }
            None => FileConfig::default(),
        };
        Self::build(file, var)
    }

    fn build(file: FileConfig, var: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let defaults = Tiers::default();
        let tier = |name: &str, from_file: Option<Vec<String>>, default: Vec<ModelSpec>| {
            let listed: Option<Vec<String>> = var(&format!("ANIMA_AI_TIER_{name}"))
                .map(|list| {
                    list.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .or(from_file);
            match listed {
                Some(specs) => specs
                    .iter()
                    .map(|spec| spec.parse())
                    .collect::<anyhow::Result<Vec<ModelSpec>>>()
                    .with_context(|| format!("tier {}", name.to_lowercase())),
                None => Ok(default),
            }
        };
        let tiers = Tiers {
            minimal: tier("MINIMAL", file.tiers.minimal, defaults.minimal)?,
            standard: tier("STANDARD", file.tiers.standard, defaults.standard)?,
            reasoning: tier("REASONING", file.tiers.reasoning, defaults.reasoning)?,
        };
        anyhow::ensure!(
            !tiers.reasoning.contains(&ModelSpec::Local),
            "tier reasoning: the local provider does not reason; configure a model that does, or none"
        );
        Ok(Self {
            model_dir: var("ANIMA_AI_MODEL_DIR")
                .map(PathBuf::from)
                .or(file.model_dir),
            tiers,
        })
    }

    /// The sentence model's directory: configured, else
    /// `$XDG_DATA_HOME/anima/models/all-MiniLM-L6-v2`.
    pub fn model_dir(&self) -> Option<PathBuf> {
        self.model_dir.clone().or_else(|| {
            dirs::data_dir().map(|dir| dir.join("anima").join("models").join(DEFAULT_MODEL_NAME))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        }
    }

    #[test]
    fn defaults_leave_reasoning_unconfigured() {
        let config = AiConfig::build(FileConfig::default(), vars(&[])).expect("config");
        assert_eq!(config.tiers, Tiers::default());
        assert!(config.tiers.models(ModelTier::Reasoning).is_empty());
    }

    #[test]
    fn variables_override_the_file_and_bad_specs_are_refused() {
        let file: FileConfig =
            toml::from_str("model_dir = \"/m\"\n[tiers]\nminimal = []\n").expect("toml");
        let config =
            AiConfig::build(file, vars(&[("ANIMA_AI_MODEL_DIR", "/other")])).expect("config");
        assert!(config.tiers.minimal.is_empty());
        assert_eq!(config.model_dir(), Some(PathBuf::from("/other")));

        let err = AiConfig::build(
            FileConfig::default(),
            vars(&[("ANIMA_AI_TIER_STANDARD", "local, gpt:4")]),
        )
        .expect_err("unknown provider");
        assert!(
            format!("{err:#}").contains("unknown model provider"),
            "{err:#}"
        );
        let err = AiConfig::build(
            FileConfig::default(),
            vars(&[("ANIMA_AI_TIER_REASONING", "local")]),
        )
        .expect_err("local cannot reason");
        assert!(format!("{err:#}").contains("does not reason"), "{err:#}");
        assert!(toml::from_str::<FileConfig>("colour = 1").is_err());
    }
}
