//! anima-ai: the internal AnimaAiService. Callers name a model tier
//! (minimal, standard, reasoning), never a model; configuration maps tiers
//! to models ([`config`]). The embedded local provider ([`local`], on the
//! sentence vectors of [`embed`]) is the default and needs no network;
//! [`openai`] speaks to any OpenAI-compatible server.
//! Stateless: everything a request needs comes in the request.

pub mod config;
pub mod embed;
pub mod eval;
pub mod local;
pub mod openai;
mod service;

use anima_proto::v1::anima_ai_service_server::AnimaAiServiceServer;
pub use config::AiConfig;
pub use service::{AiService, MAX_CANDIDATES, MAX_EMBED_TEXTS, MAX_INPUT_CHARS, MAX_SENTENCES};

/// The tonic service to mount on a server; fails if a provider's API key
/// variable is missing.
pub fn service(config: AiConfig) -> anyhow::Result<AnimaAiServiceServer<AiService>> {
    Ok(AnimaAiServiceServer::new(AiService::new(config)?))
}
