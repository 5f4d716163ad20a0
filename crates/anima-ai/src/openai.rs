//! An OpenAI-compatible HTTP provider: chat completions with JSON output
//! and embeddings, as OpenAI, vLLM, Ollama and llama.cpp's server speak
//! them. Timeouts, retries with backoff, replies validated (a malformed one
//! is asked for again once), and token usage and cost recorded per call.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::json;

use crate::config::ProviderConfig;

/// Why a call did not give an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderError {
    /// Down, slow, overloaded or refusing: another model may do.
    Unavailable(String),
    /// Answered twice with something that is not the JSON asked for.
    Malformed(String),
}

impl std::fmt::Display for ProviderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProviderError::Unavailable(why) | ProviderError::Malformed(why) => f.write_str(why),
        }
    }
}

/// Calls, tokens and cost of one model so far.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// Calls answered.
    pub calls: u64,
    /// Prompt tokens the provider counted.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
    /// At the configured prices.
    pub cost_usd: f64,
}

/// Usage per `provider:model`, shared by the service's providers.
pub type UsageBook = Arc<Mutex<BTreeMap<String, Usage>>>;

/// One configured OpenAI-compatible server.
pub struct OpenAiProvider {
    name: String,
    config: ProviderConfig,
    api_key: Option<String>,
    client: reqwest::Client,
    usage: UsageBook,
}

#[derive(Serialize)]
struct ChatMessage<'a> {
    role: &'a str,
    content: &'a str,
}

#[derive(Deserialize)]
struct ChatReply {
    choices: Vec<ChatChoice>,
    #[serde(default)]
    usage: Option<TokenCounts>,
}

#[derive(Deserialize)]
struct ChatChoice {
    message: ChatReplyMessage,
}

#[derive(Deserialize)]
struct ChatReplyMessage {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Deserialize, Default, Clone, Copy)]
struct TokenCounts {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

#[derive(Deserialize)]
struct EmbeddingReply {
    data: Vec<EmbeddingItem>,
    #[serde(default)]
    usage: Option<TokenCounts>,
}

#[derive(Deserialize)]
struct EmbeddingItem {
    index: usize,
    embedding: Vec<f32>,
}

impl OpenAiProvider {
    /// A provider from its configuration; the API key is read now from the
    /// variable the configuration names.
    pub fn new(name: &str, config: ProviderConfig, usage: UsageBook) -> anyhow::Result<Self> {
        // reqwest is built without a TLS crypto provider of its own, so the
        // process needs one before the first client; ring is the one linked.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let api_key = match &config.api_key_env {
            Some(variable) => Some(std::env::var(variable).map_err(|_| {
                anyhow::anyhow!("provider {name}: the API key variable {variable} is not set")
            })?),
            None => None,
        };
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.timeout_ms))
            .build()?;
        Ok(Self {
            name: name.to_owned(),
            config,
            api_key,
            client,
            usage,
        })
    }

    /// Asks `model` for a JSON object, parses it as `T` and hands it to
    /// `accept`, which checks it and makes the answer; a reply that fails
    /// either is asked for once more.
    pub async fn chat_json<T: DeserializeOwned, U>(
        &self,
        model: &str,
        system: &str,
        user: &str,
        accept: impl Fn(T) -> Result<U, String>,
    ) -> Result<U, ProviderError> {
        let body = json!({
            "model": model,
            "messages": [
                ChatMessage { role: "system", content: system },
                ChatMessage { role: "user", content: user },
            ],
            "response_format": { "type": "json_object" },
            "temperature": 0,
        });
        let mut last_problem = String::new();
        for attempt in 1..=2 {
            let reply: ChatReply = self.post(model, "chat/completions", &body).await?;
            self.record(model, reply.usage.unwrap_or_default());
            let content = reply
                .choices
                .into_iter()
                .next()
                .and_then(|choice| choice.message.content)
                .unwrap_or_default();
            match serde_json::from_str::<T>(strip_fences(&content))
                .map_err(|err| format!("not the JSON asked for: {err}"))
                .and_then(&accept)
            {
                Ok(value) => return Ok(value),
                Err(problem) => {
                    tracing::warn!(provider = %self.name, model, attempt, %problem, "malformed model reply");
                    last_problem = problem;
                }
            }
        }
        Err(ProviderError::Malformed(format!(
            "{}:{model} answered twice with a malformed reply ({last_problem})",
            self.name
        )))
    }

    /// Embeddings of `texts`, in order.
    pub async fn embed(&self, model: &str, texts: &[&str]) -> Result<Vec<Vec<f32>>, ProviderError> {
        let body = json!({ "model": model, "input": texts });
        let reply: EmbeddingReply = self.post(model, "embeddings", &body).await?;
        self.record(model, reply.usage.unwrap_or_default());
        let mut data = reply.data;
        data.sort_by_key(|item| item.index);
        if data.len() != texts.len() || data.iter().enumerate().any(|(i, item)| item.index != i) {
            return Err(ProviderError::Malformed(format!(
                "{}:{model} returned {} embeddings for {} texts",
                self.name,
                data.len(),
                texts.len()
            )));
        }
        Ok(data.into_iter().map(|item| item.embedding).collect())
    }

    /// POSTs `body` to `path`, retrying with exponential backoff on
    /// timeouts, connection failures, 429 and 5xx.
    async fn post<R: DeserializeOwned>(
        &self,
        model: &str,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<R, ProviderError> {
        let url = format!("{}/{path}", self.config.base_url.trim_end_matches('/'));
        let mut backoff = Duration::from_millis(200);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let started = Instant::now();
            let mut request = self.client.post(&url).json(body);
            if let Some(key) = &self.api_key {
                request = request.bearer_auth(key);
            }
            let outcome = match request.send().await {
                Ok(response) if response.status().is_success() => {
                    return response.json::<R>().await.map_err(|err| {
                        ProviderError::Malformed(format!(
                            "{}:{model}: unreadable reply: {err}",
                            self.name
                        ))
                    });
                }
                Ok(response) => {
                    let status = response.status();
                    let text = response.text().await.unwrap_or_default();
                    let retry = status.as_u16() == 429 || status.is_server_error();
                    (
                        retry,
                        format!(
                            "HTTP {status}: {}",
                            text.chars().take(200).collect::<String>()
                        ),
                    )
                }
                Err(err) if err.is_timeout() => (
                    true,
                    format!("no answer within {} ms", self.config.timeout_ms),
                ),
                Err(err) => (err.is_connect() || err.is_request(), format!("{err}")),
            };
            let (retry, problem) = outcome;
            tracing::warn!(
                provider = %self.name, model, attempt, elapsed_ms = started.elapsed().as_millis() as u64,
                %problem, "model call failed"
            );
            if !retry || attempt > self.config.max_retries {
                return Err(ProviderError::Unavailable(format!(
                    "{}:{model} failed after {attempt} attempt(s): {problem}",
                    self.name
                )));
            }
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
    }

    fn record(&self, model: &str, tokens: TokenCounts) {
        let cost = (tokens.prompt_tokens as f64 * self.config.input_usd_per_mtok
            + tokens.completion_tokens as f64 * self.config.output_usd_per_mtok)
            / 1e6;
        tracing::info!(
            target: "anima_ai::usage",
            provider = %self.name, model,
            prompt_tokens = tokens.prompt_tokens,
            completion_tokens = tokens.completion_tokens,
            cost_usd = cost,
            "model call"
        );
        if let Ok(mut book) = self.usage.lock() {
            let usage = book.entry(format!("{}:{model}", self.name)).or_default();
            usage.calls += 1;
            usage.prompt_tokens += tokens.prompt_tokens;
            usage.completion_tokens += tokens.completion_tokens;
            usage.cost_usd += cost;
        }
    }
}

/// Models asked for JSON sometimes wrap it in a Markdown code fence.
fn strip_fences(content: &str) -> &str {
    let trimmed = content.trim();
    trimmed
        .strip_prefix("```json")
        .or_else(|| trimmed.strip_prefix("```"))
        .and_then(|rest| rest.strip_suffix("```"))
        .map_or(trimmed, str::trim)
}

#[cfg(test)]
mod tests {
    use super::strip_fences;

    #[test]
    fn fenced_json_is_unwrapped() {
        assert_eq!(strip_fences("```json\n{\"a\":1}\n```"), "{\"a\":1}");
        assert_eq!(strip_fences(" {\"a\":1} "), "{\"a\":1}");
    }
}
