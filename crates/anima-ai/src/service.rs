//! AnimaAiService over gRPC: checks input, resolves the tier, runs the
//! provider on a blocking thread (it is CPU work) and records which model
//! answered.

use std::sync::{Arc, OnceLock};

use anima_core::{DomainError, error::reason};
use anima_proto::{
    status::to_status,
    v1::{self as pb, ModelTier, anima_ai_service_server::AnimaAiService},
};
use tonic::{Request, Response, Status};

use crate::{
    config::{AiConfig, ModelSpec},
    embed::Embedder,
    local::{self, Candidate, ClassifierSettings, Source},
};

/// Characters of input one request may carry in all.
pub const MAX_INPUT_CHARS: usize = 200_000;
/// Texts one Embed request may carry.
pub const MAX_EMBED_TEXTS: usize = 256;
/// Candidates one ClassifyMail request may carry.
pub const MAX_CANDIDATES: usize = 200;
/// Sentences a summary or draft may have.
pub const MAX_SENTENCES: i32 = 20;

/// The service. Cheap to clone; the model loads on first use, so a server
/// that never asks for vectors never holds the model's memory.
#[derive(Clone)]
pub struct AiService {
    inner: Arc<Inner>,
}

struct Inner {
    config: AiConfig,
    settings: ClassifierSettings,
    embedder: OnceLock<Result<Embedder, String>>,
}

impl AiService {
    /// A service with this configuration.
    pub fn new(config: AiConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                settings: ClassifierSettings::default(),
                embedder: OnceLock::new(),
            }),
        }
    }

    /// Runs `work` with the local embedder on a blocking thread, once the
    /// tier (if the RPC has one) is known to be served by the local
    /// provider. Embed has no tier: vectors always come from the local
    /// model, so that every stored vector is comparable.
    async fn local<T: Send + 'static>(
        &self,
        tier: Option<ModelTier>,
        work: impl FnOnce(&Embedder, ClassifierSettings) -> anyhow::Result<T> + Send + 'static,
    ) -> Result<(T, String), DomainError> {
        if let Some(tier) = tier {
            let Some(ModelSpec::Local) = self.inner.config.tiers.models(tier).first() else {
                return Err(no_model(tier));
            };
        }
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let embedder = inner
                .embedder
                .get_or_init(|| {
                    Embedder::load_or_fallback(inner.config.model_dir().as_deref())
                        .map_err(|err| format!("{err:#}"))
                })
                .as_ref()
                .map_err(|err| {
                    DomainError::new(
                        anima_core::ErrorCode::Unavailable,
                        reason::MODEL_UNAVAILABLE,
                        format!("the local model failed to load: {err}"),
                    )
                })?;
            let answer = work(embedder, inner.settings)
                .map_err(|err| DomainError::internal(format!("local model: {err:#}")))?;
            Ok((answer, format!("local:{}", embedder.name())))
        })
        .await
        .map_err(|err| DomainError::internal(format!("model task: {err}")))?
    }
}

fn no_model(tier: ModelTier) -> DomainError {
    DomainError::failed_precondition(
        reason::NO_MODEL_FOR_TIER,
        format!(
            "no model is configured for the {} tier (ANIMA_AI_TIER_{})",
            tier.as_str_name()
                .trim_start_matches("MODEL_TIER_")
                .to_lowercase(),
            tier.as_str_name().trim_start_matches("MODEL_TIER_"),
        ),
    )
}

/// The tier a request names; unspecified means the RPC's default.
fn tier(raw: i32, default: ModelTier) -> Result<ModelTier, DomainError> {
    match ModelTier::try_from(raw) {
        Ok(ModelTier::Unspecified) => Ok(default),
        Ok(tier) => Ok(tier),
        Err(_) => Err(DomainError::invalid_argument(
            reason::UNKNOWN_TIER,
            format!("unknown model tier {raw}; use minimal, standard or reasoning"),
        )),
    }
}

/// Refuses input with no words to work on.
fn require_text<'a>(
    what: &str,
    texts: impl IntoIterator<Item = &'a str>,
) -> Result<(), DomainError> {
    if texts.into_iter().all(|text| text.trim().is_empty()) {
        return Err(DomainError::invalid_argument(
            reason::FIELD_REQUIRED,
            format!("{what} has no text to work on"),
        ));
    }
    Ok(())
}

/// Refuses more input than one request may carry, and says the limit.
fn limit_size<'a>(what: &str, texts: impl IntoIterator<Item = &'a str>) -> Result<(), DomainError> {
    let chars: usize = texts.into_iter().map(|text| text.chars().count()).sum();
    if chars > MAX_INPUT_CHARS {
        return Err(DomainError::invalid_argument(
            reason::FIELD_TOO_LONG,
            format!("{what} holds {chars} characters; the limit is {MAX_INPUT_CHARS}"),
        ));
    }
    Ok(())
}

/// Both of the above.
fn check_text<'a>(
    what: &str,
    texts: impl IntoIterator<Item = &'a str> + Clone,
) -> Result<(), DomainError> {
    require_text(what, texts.clone())?;
    limit_size(what, texts)
}

fn sentences(raw: i32, default: i32) -> Result<usize, DomainError> {
    match raw {
        0 => Ok(default as usize),
        1..=MAX_SENTENCES => Ok(raw as usize),
        _ => Err(DomainError::invalid_argument(
            reason::INVALID_FIELD,
            format!("max_sentences must be 1..={MAX_SENTENCES} (0 for the default), not {raw}"),
        )),
    }
}

fn citations(citations: Vec<local::Citation>) -> Vec<pb::Citation> {
    citations
        .into_iter()
        .map(|citation| pb::Citation {
            source_id: citation.source_id,
            start: citation.start as i32,
            end: citation.end as i32,
        })
        .collect()
}

type Reply<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl AnimaAiService for AiService {
    async fn classify_mail(
        &self,
        request: Request<pb::ClassifyMailRequest>,
    ) -> Reply<pb::ClassifyMailResponse> {
        let request = request.into_inner();
        let answer = async {
            if request.candidates.len() > MAX_CANDIDATES {
                return Err(DomainError::invalid_argument(
                    reason::FIELD_TOO_LONG,
                    format!(
                        "{} candidates; the limit is {MAX_CANDIDATES}",
                        request.candidates.len()
                    ),
                ));
            }
            require_text(
                "the mail",
                [request.subject.as_str(), request.body.as_str()],
            )?;
            limit_size(
                "the mail and its candidates",
                [request.subject.as_str(), request.body.as_str()]
                    .into_iter()
                    .chain(request.candidates.iter().flat_map(|c| {
                        [c.title.as_str(), c.description.as_str()]
                            .into_iter()
                            .chain(c.recent_messages.iter().map(String::as_str))
                    })),
            )?;
            self.local(Some(ModelTier::Minimal), move |embedder, settings| {
                let candidates: Vec<Candidate<'_>> = request
                    .candidates
                    .iter()
                    .map(|c| Candidate {
                        id: &c.work_item_id,
                        title: &c.title,
                        description: &c.description,
                        recent: c.recent_messages.iter().map(String::as_str).collect(),
                    })
                    .collect();
                local::classify(
                    embedder,
                    settings,
                    &request.subject,
                    &request.body,
                    &candidates,
                )
            })
            .await
        }
        .await
        .map_err(to_status)?;
        let (classification, model) = answer;
        Ok(Response::new(pb::ClassifyMailResponse {
            work_item_id: classification.work_item_id.unwrap_or_default(),
            confidence: classification.confidence,
            tier: ModelTier::Minimal as i32,
            model,
        }))
    }

    async fn summarize(
        &self,
        request: Request<pb::SummarizeRequest>,
    ) -> Reply<pb::SummarizeResponse> {
        let request = request.into_inner();
        let (extract, model) = async {
            let tier = tier(request.tier, ModelTier::Standard)?;
            let count = sentences(request.max_sentences, 3)?;
            check_text(
                "the sources",
                request.sources.iter().map(|s| s.text.as_str()),
            )?;
            self.local(Some(tier), move |embedder, _| {
                let sources: Vec<Source<'_>> = request
                    .sources
                    .iter()
                    .map(|s| Source {
                        id: &s.id,
                        text: &s.text,
                    })
                    .collect();
                local::summarize(embedder, &sources, count)
            })
            .await
        }
        .await
        .map_err(to_status)?;
        Ok(Response::new(pb::SummarizeResponse {
            summary: extract.sentences.join(" "),
            citations: citations(extract.citations),
            model,
        }))
    }

    async fn generate_description(
        &self,
        request: Request<pb::GenerateDescriptionRequest>,
    ) -> Reply<pb::GenerateDescriptionResponse> {
        let request = request.into_inner();
        let ((description, extract), model) = async {
            let tier = tier(request.tier, ModelTier::Standard)?;
            if request.title.trim().is_empty() {
                return Err(DomainError::invalid_argument(
                    reason::FIELD_REQUIRED,
                    "title is required",
                ));
            }
            check_text(
                "the context",
                request.context.iter().map(|s| s.text.as_str()),
            )?;
            self.local(Some(tier), move |embedder, _| {
                let context: Vec<Source<'_>> = request
                    .context
                    .iter()
                    .map(|s| Source {
                        id: &s.id,
                        text: &s.text,
                    })
                    .collect();
                local::describe(embedder, &request.title, &context, 5)
            })
            .await
        }
        .await
        .map_err(to_status)?;
        Ok(Response::new(pb::GenerateDescriptionResponse {
            description,
            citations: citations(extract.citations),
            model,
        }))
    }

    async fn analyze_gap(
        &self,
        _: Request<pb::AnalyzeGapRequest>,
    ) -> Reply<pb::AnalyzeGapResponse> {
        Err(to_status(self.reasoning_model()))
    }

    async fn should_review(
        &self,
        _: Request<pb::ShouldReviewRequest>,
    ) -> Reply<pb::ShouldReviewResponse> {
        Err(to_status(self.reasoning_model()))
    }

    async fn derive_capabilities(
        &self,
        _: Request<pb::DeriveCapabilitiesRequest>,
    ) -> Reply<pb::DeriveCapabilitiesResponse> {
        Err(to_status(self.reasoning_model()))
    }

    async fn embed(&self, request: Request<pb::EmbedRequest>) -> Reply<pb::EmbedResponse> {
        let request = request.into_inner();
        let ((vectors, dimensions), model) = async {
            if request.texts.len() > MAX_EMBED_TEXTS {
                return Err(DomainError::invalid_argument(
                    reason::FIELD_TOO_LONG,
                    format!(
                        "{} texts; the limit is {MAX_EMBED_TEXTS} per request",
                        request.texts.len()
                    ),
                ));
            }
            check_text("the texts", request.texts.iter().map(String::as_str))?;
            self.local(None, move |embedder, _| {
                let texts: Vec<&str> = request.texts.iter().map(String::as_str).collect();
                Ok((embedder.embed(&texts)?, embedder.dimensions()))
            })
            .await
        }
        .await
        .map_err(to_status)?;
        Ok(Response::new(pb::EmbedResponse {
            vectors: vectors
                .into_iter()
                .map(|values| pb::Vector { values })
                .collect(),
            model,
            dimensions: dimensions as i32,
        }))
    }
}

impl AiService {
    /// The reasoning tier's answer while only the local provider exists:
    /// configuration refuses "local" for reasoning, so it has no model.
    fn reasoning_model(&self) -> DomainError {
        no_model(ModelTier::Reasoning)
    }
}
