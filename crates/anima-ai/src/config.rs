//! Which model answers which tier: configuration, never code. Read from a
//! TOML file (`ANIMA_AI_CONFIG`) and `ANIMA_AI_*` variables, which win.
//!
//! ```toml
//! model_dir = "/var/lib/anima/models/all-MiniLM-L6-v2"
//! embedding = "local"
//! [tiers]
//! minimal = ["local"]
//! standard = ["openai:gpt-4o-mini", "local"]
//! reasoning = ["openai:gpt-4o"]
//! [providers.openai]            # any OpenAI-compatible server
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

use std::{collections::BTreeMap, fmt, path::PathBuf};

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
#[derive(Debug, Clone, PartialEq, Deserialize)]
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

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    model_dir: Option<PathBuf>,
    embedding: Option<String>,
    #[serde(default)]
    tiers: FileTiers,
    #[serde(default)]
    providers: BTreeMap<String, ProviderConfig>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileTiers {
    minimal: Option<Vec<String>>,
    standard: Option<Vec<String>>,
    reasoning: Option<Vec<String>>,
}

impl AiConfig {
    /// From `ANIMA_AI_CONFIG` (a TOML file) if set, then `ANIMA_AI_MODEL_DIR`,
    /// `ANIMA_AI_EMBEDDING` and `ANIMA_AI_TIER_{MINIMAL,STANDARD,REASONING}`
    /// (comma-separated model lists; empty means none). Providers are
    /// configured in the file only.
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
        let providers = file.providers;
        for (name, provider) in &providers {
            anyhow::ensure!(
                provider.base_url.starts_with("http://")
                    || provider.base_url.starts_with("https://"),
                "provider {name}: base_url must be an http(s) URL"
            );
        }
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
                    .map(|spec| ModelSpec::parse(spec, &providers))
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
        let embedding = match var("ANIMA_AI_EMBEDDING").or(file.embedding) {
            Some(spec) => ModelSpec::parse(&spec, &providers).context("embedding")?,
            None => ModelSpec::Local,
        };
        Ok(Self {
            model_dir: var("ANIMA_AI_MODEL_DIR")
                .map(PathBuf::from)
                .or(file.model_dir),
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
        assert_eq!(config.embedding, ModelSpec::Local);
    }

    #[test]
    fn remote_models_name_a_configured_provider() {
        let file: FileConfig = toml::from_str(
            "[tiers]\nreasoning = [\"vllm:qwen-32b\", \"openai:gpt-4o\"]\n\
             [providers.vllm]\nbase_url = \"http://10.0.0.9:8000/v1\"\n\
             [providers.openai]\nbase_url = \"https://api.openai.com/v1\"\napi_key_env = \"OPENAI_API_KEY\"\n",
        )
        .expect("toml");
        let config = AiConfig::build(file, vars(&[])).expect("config");
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
        let err = AiConfig::build(
            FileConfig::default(),
            vars(&[("ANIMA_AI_TIER_REASONING", "nowhere:model")]),
        )
        .expect_err("unconfigured provider");
        assert!(
            format!("{err:#}").contains("unknown model provider"),
            "{err:#}"
        );
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
