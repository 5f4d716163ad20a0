//! Which model answers which tier: configuration, never code. Read from
//! the `[ai]` section of `anima.toml` and `ANIMA_AI_*` variables, which
//! win (`ANIMA_AI_MODEL_DIR`, `ANIMA_AI_TIERS_STANDARD=local,openai:…`; see
//! [`anima_core::config`]).
//!
//! ```toml
//! [ai]
//! model_dir = "/var/lib/anima/models/all-MiniLM-L6-v2"
//! embedding = "local"
//! [ai.tiers]
//! minimal = ["local"]
//! standard = ["openai:gpt-4o-mini", "local"]
//! reasoning = ["openai:gpt-4o"]
//! [ai.providers.openai]         # any OpenAI-compatible server
//! base_url = "https://api.openai.com/v1"
//! api_key_env = "OPENAI_API_KEY"
//! timeout_ms = 30000
//! max_retries = 2
//! input_usd_per_mtok = 0.15
//! output_usd_per_mtok = 0.60
//! ```
//!
//! Each tier lists models as `local` or `PROVIDER:MODEL`, first choice
//! first; later entries are fallbacks when one is down. `embedding` names
//! the model of Embed (vectors from different models do not compare).

use std::{
    collections::BTreeMap,
    fmt,
    path::{Path, PathBuf},
};

use anima_proto::v1::ModelTier;
use anyhow::Context;
use serde::{Deserialize, Serialize};

/// Name of the model directory `scripts/setup-debian` installs.
pub const DEFAULT_MODEL_NAME: &str = "all-MiniLM-L6-v2";

/// One configured model of a tier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSpec {
    /// The embedded local provider (sentence vectors, extractive text).
    Local,
    /// A model of a configured OpenAI-compatible provider.
    Remote {
        /// The provider's name, a key of `[providers]`.
        provider: String,
        /// The model name the provider knows.
        model: String,
    },
}

impl ModelSpec {
    fn parse(spec: &str, providers: &BTreeMap<String, ProviderConfig>) -> anyhow::Result<Self> {
        let spec = spec.trim();
        if spec == "local" || spec.starts_with("local:") {
            return Ok(ModelSpec::Local);
        }
        let Some((provider, model)) = spec.split_once(':') else {
            anyhow::bail!("model {spec:?}: write `local` or `PROVIDER:MODEL`");
        };
        anyhow::ensure!(
            providers.contains_key(provider),
            "model {spec:?}: unknown model provider {provider:?}; configure [providers.{provider}] or use \"local\""
        );
        anyhow::ensure!(
            !model.trim().is_empty(),
            "model {spec:?}: the model name is empty"
        );
        Ok(ModelSpec::Remote {
            provider: provider.to_owned(),
            model: model.trim().to_owned(),
        })
    }
}

impl fmt::Display for ModelSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelSpec::Local => f.write_str("local"),
            ModelSpec::Remote { provider, model } => write!(f, "{provider}:{model}"),
        }
    }
}

/// An OpenAI-compatible HTTP provider (OpenAI, vLLM, Ollama, llama.cpp).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Base URL up to and including the version, e.g. `http://127.0.0.1:11434/v1`.
    pub base_url: String,
    /// Name of the environment variable holding the API key; none sends
    /// no `Authorization` header (local servers).
    pub api_key_env: Option<String>,
    /// Per-request timeout.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Retries after a timeout, a connection failure, 429 or 5xx.
    #[serde(default = "default_retries")]
    pub max_retries: u32,
    /// Price of a million prompt tokens, for the cost metric.
    #[serde(default)]
    pub input_usd_per_mtok: f64,
    /// Price of a million completion tokens.
    #[serde(default)]
    pub output_usd_per_mtok: f64,
}

fn default_timeout_ms() -> u64 {
    30_000
}

fn default_retries() -> u32 {
    2
}

impl Eq for ProviderConfig {}

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AiConfig {
    /// The sentence model's directory; `None` means the default location.
    pub model_dir: Option<PathBuf>,
    /// Tier → models.
    pub tiers: Tiers,
    /// The model of Embed.
    pub embedding: ModelSpec,
    /// OpenAI-compatible providers by name.
    pub providers: BTreeMap<String, ProviderConfig>,
}

impl Default for AiConfig {
    fn default() -> Self {
        Self {
            model_dir: None,
            tiers: Tiers::default(),
            embedding: ModelSpec::Local,
            providers: BTreeMap::new(),
        }
    }
}

/// `[ai]` of `anima.toml`, as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AiSettings {
    /// The sentence model's directory; empty for the default location.
    pub model_dir: String,
    /// The model of Embed: `local` or `PROVIDER:MODEL`.
    pub embedding: String,
    /// Each tier's models, first choice first.
    pub tiers: TierSettings,
    /// OpenAI-compatible providers by name.
    pub providers: BTreeMap<String, ProviderConfig>,
}

impl Default for AiSettings {
    fn default() -> Self {
        Self {
            model_dir: String::new(),
            embedding: ModelSpec::Local.to_string(),
            tiers: TierSettings::default(),
            providers: BTreeMap::new(),
        }
    }
}

/// `[ai.tiers]`: `local` or `PROVIDER:MODEL` per entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TierSettings {
    /// See [`Tiers::minimal`].
    pub minimal: Vec<String>,
    /// See [`Tiers::standard`].
    pub standard: Vec<String>,
    /// See [`Tiers::reasoning`].
    pub reasoning: Vec<String>,
}

impl Default for TierSettings {
    fn default() -> Self {
        let names = |specs: Vec<ModelSpec>| specs.iter().map(ToString::to_string).collect();
        let tiers = Tiers::default();
        Self {
            minimal: names(tiers.minimal),
            standard: names(tiers.standard),
            reasoning: names(tiers.reasoning),
        }
    }
}

/// The one section anima-ai reads on its own.
#[derive(Default, Serialize, Deserialize)]
#[serde(default)]
struct AiSection {
    ai: AiSettings,
}

impl AiConfig {
    /// The `[ai]` section of `anima.toml` (if given) with its `ANIMA_AI_*`
    /// variables, checked.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        let section: AiSection = anima_core::config::read(file)?;
        Self::from_settings(section.ai)
    }

    /// Checks the settings: every model names a configured provider, no
    /// local model reasons, provider URLs are http(s).
    pub fn from_settings(settings: AiSettings) -> anyhow::Result<Self> {
        let providers = settings.providers;
        for (name, provider) in &providers {
            anyhow::ensure!(
                provider.base_url.starts_with("http://")
                    || provider.base_url.starts_with("https://"),
                "provider {name}: base_url must be an http(s) URL"
            );
        }
        let tier = |name: &str, specs: Vec<String>| {
            specs
                .iter()
                .map(|spec| ModelSpec::parse(spec, &providers))
                .collect::<anyhow::Result<Vec<ModelSpec>>>()
                .with_context(|| format!("tier {name}"))
        };
        let tiers = Tiers {
            minimal: tier("minimal", settings.tiers.minimal)?,
            standard: tier("standard", settings.tiers.standard)?,
            reasoning: tier("reasoning", settings.tiers.reasoning)?,
        };
        anyhow::ensure!(
            !tiers.reasoning.contains(&ModelSpec::Local),
            "tier reasoning: the local provider does not reason; configure a model that does, or none"
        );
        let embedding = ModelSpec::parse(&settings.embedding, &providers).context("embedding")?;
        Ok(Self {
            model_dir: Some(PathBuf::from(settings.model_dir))
                .filter(|dir| !dir.as_os_str().is_empty()),
            tiers,
            embedding,
            providers,
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

    fn load(file: &str, env: &'static [(&'static str, &'static str)]) -> anyhow::Result<AiConfig> {
        let section: AiSection = anima_core::config::load(Some(("anima.toml", file)), |name| {
            env.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        })?;
        AiConfig::from_settings(section.ai)
    }

    #[test]
    fn defaults_leave_reasoning_unconfigured() {
        let config = load("", &[]).expect("config");
        assert_eq!(config.tiers, Tiers::default());
        assert!(config.tiers.models(ModelTier::Reasoning).is_empty());
        assert_eq!(config.embedding, ModelSpec::Local);
    }

    #[test]
    fn remote_models_name_a_configured_provider() {
        let config = load(
            "[ai.tiers]\nreasoning = [\"vllm:qwen-32b\", \"openai:gpt-4o\"]\n\
             [ai.providers.vllm]\nbase_url = \"http://10.0.0.9:8000/v1\"\n\
             [ai.providers.openai]\nbase_url = \"https://api.openai.com/v1\"\napi_key_env = \"OPENAI_API_KEY\"\n",
            &[],
        )
        .expect("config");
        assert_eq!(
            config
                .tiers
                .reasoning
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            ["vllm:qwen-32b", "openai:gpt-4o"]
        );
        assert_eq!(config.providers["vllm"].timeout_ms, 30_000);
        let err = load("", &[("ANIMA_AI_TIERS_REASONING", "nowhere:model")])
            .expect_err("unconfigured provider");
        assert!(
            format!("{err:#}").contains("unknown model provider"),
            "{err:#}"
        );
    }

    #[test]
    fn variables_override_the_file_and_bad_specs_are_refused() {
        let config = load(
            "[ai]\nmodel_dir = \"/m\"\n[ai.tiers]\nminimal = []\n",
            &[("ANIMA_AI_MODEL_DIR", "/other")],
        )
        .expect("config");
        assert!(config.tiers.minimal.is_empty());
        assert_eq!(config.model_dir(), Some(PathBuf::from("/other")));

        let err =
            load("", &[("ANIMA_AI_TIERS_STANDARD", "local, gpt:4")]).expect_err("unknown provider");
        assert!(
            format!("{err:#}").contains("unknown model provider"),
            "{err:#}"
        );
        let err =
            load("", &[("ANIMA_AI_TIERS_REASONING", "local")]).expect_err("local cannot reason");
        assert!(format!("{err:#}").contains("does not reason"), "{err:#}");
        assert!(load("[ai]\ncolour = 1\n", &[]).is_err());
    }
}
