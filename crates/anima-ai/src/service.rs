//! AnimaAiService over gRPC: checks input, resolves the tier to its
//! models, tries them in order (the local provider on a blocking thread,
//! as it is CPU work; remote ones over HTTP) and records which answered.

use std::{
    collections::BTreeMap,
    future::Future,
    pin::Pin,
    sync::{Arc, OnceLock},
};

use anima_core::{
    DomainError, ErrorCode,
    capability::{self, Capability, CapabilityKind},
    error::reason,
};
use anima_proto::{
    capability::capability as capability_to_wire,
    status::to_status,
    v1::{self as pb, ModelTier, anima_ai_service_server::AnimaAiService},
};
use serde::Deserialize;
use tonic::{Request, Response, Status};

use crate::{
    config::{AiConfig, ModelSpec},
    embed::Embedder,
    local::{self, Candidate, ClassifierSettings, Source},
    openai::{OpenAiProvider, ProviderError, Usage, UsageBook},
};

/// Characters of input one request may carry in all.
pub const MAX_INPUT_CHARS: usize = 200_000;
/// Texts one Embed request may carry.
pub const MAX_EMBED_TEXTS: usize = 256;
/// Candidates one ClassifyMail request may carry.
pub const MAX_CANDIDATES: usize = anima_core::mail::MAX_CLASSIFY_CANDIDATES;
/// Sentences a summary or draft may have.
pub const MAX_SENTENCES: i32 = 20;

/// Work for the local provider.
type LocalJob<T> = Box<dyn FnOnce(&Embedder, ClassifierSettings) -> anyhow::Result<T> + Send>;

/// A call to a remote model: owns what it needs, so it can be sent.
type RemoteFuture<T> = Pin<Box<dyn Future<Output = Result<T, ProviderError>> + Send>>;

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
    providers: BTreeMap<String, Arc<OpenAiProvider>>,
    usage: UsageBook,
}

impl AiService {
    /// A service with this configuration; fails if a provider's API key
    /// variable is missing.
    pub fn new(config: AiConfig) -> anyhow::Result<Self> {
        let usage = UsageBook::default();
        let providers = config
            .providers
            .iter()
            .map(|(name, provider)| {
                Ok((
                    name.clone(),
                    Arc::new(OpenAiProvider::new(name, provider.clone(), usage.clone())?),
                ))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                settings: ClassifierSettings::default(),
                embedder: OnceLock::new(),
                providers,
                usage,
            }),
        })
    }

    /// Calls, tokens and cost per `provider:model` since start.
    pub fn usage(&self) -> BTreeMap<String, Usage> {
        self.inner
            .usage
            .lock()
            .map(|book| book.clone())
            .unwrap_or_default()
    }

    /// Runs `work` with the local embedder on a blocking thread.
    async fn run_local<T: Send + 'static>(
        &self,
        work: LocalJob<T>,
    ) -> Result<(T, String), DomainError> {
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
                        ErrorCode::Unavailable,
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

    /// Tries the tier's models in order until one answers: `local` for the
    /// local provider (`None` when it cannot do this job), `remote` for a
    /// provider's model. A model that is down or answers malformed hands
    /// over to the next; the last failure is the answer when none is left.
    async fn answer<T: Send + 'static>(
        &self,
        tier: ModelTier,
        local: Option<LocalJob<T>>,
        remote: impl Fn(Arc<OpenAiProvider>, String) -> RemoteFuture<T>,
    ) -> Result<(T, String), DomainError> {
        let mut local = local;
        let mut failure = None;
        // Owned, so the future holds no borrow of the config's list.
        let specs = self.inner.config.tiers.models(tier).to_vec();
        for spec in specs {
            match &spec {
                ModelSpec::Local => {
                    if let Some(job) = local.take() {
                        return self.run_local(job).await;
                    }
                }
                ModelSpec::Remote { provider, model } => {
                    let Some(client) = self.inner.providers.get(provider) else {
                        continue;
                    };
                    match remote(client.clone(), model.clone()).await {
                        Ok(answer) => return Ok((answer, spec.to_string())),
                        Err(err) => {
                            tracing::warn!(%spec, error = %err, "model failed; trying the next of the tier");
                            failure = Some(err);
                        }
                    }
                }
            }
        }
        Err(match failure {
            Some(ProviderError::Unavailable(why)) => {
                DomainError::new(ErrorCode::Unavailable, reason::MODEL_UNAVAILABLE, why)
            }
            Some(ProviderError::Malformed(why)) => {
                DomainError::new(ErrorCode::Unavailable, reason::MALFORMED_MODEL_REPLY, why)
            }
            None => no_model(tier),
        })
    }
}

fn no_model(tier: ModelTier) -> DomainError {
    DomainError::failed_precondition(
        reason::NO_MODEL_FOR_TIER,
        format!(
            "no model is configured for the {0} tier ([ai.tiers] {0} in anima.toml, or ANIMA_AI_TIERS_{1})",
            tier.name(),
            tier.name().to_uppercase(),
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

/// What a remote model returns for ClassifyMail.
#[derive(Deserialize)]
struct RemoteClassification {
    work_item_id: Option<String>,
    confidence: f64,
}

/// What a remote model returns for Summarize and GenerateDescription.
#[derive(Deserialize)]
struct RemoteText {
    text: String,
    #[serde(default)]
    source_ids: Vec<String>,
}

#[derive(Deserialize)]
struct RemoteGap {
    gap_report: String,
}

#[derive(Deserialize)]
struct RemoteReview {
    review: bool,
    reason: String,
}

#[derive(Deserialize)]
struct RemoteCapabilities {
    capabilities: Vec<CapabilityKind>,
}

/// The instruction every remote call ends with.
const JSON_ONLY: &str = "Answer with one JSON object and nothing else.";

fn sources_block(sources: &[pb::TextSource]) -> String {
    sources
        .iter()
        .map(|source| format!("[{}]\n{}\n", source.id, source.text))
        .collect()
}

/// Remote text answers cite whole sources, by the ids the model names.
fn check_remote_text(answer: RemoteText, sources: &[pb::TextSource]) -> Result<RemoteText, String> {
    if answer.text.trim().is_empty() {
        return Err("empty text".into());
    }
    match answer
        .source_ids
        .iter()
        .find(|id| !sources.iter().any(|source| &source.id == *id))
    {
        Some(id) => Err(format!("cites unknown source {id:?}")),
        None => Ok(answer),
    }
}

fn whole_source_citations(ids: &[String], sources: &[pb::TextSource]) -> Vec<local::Citation> {
    ids.iter()
        .filter_map(|id| sources.iter().find(|source| &source.id == id))
        .map(|source| local::Citation {
            source_id: source.id.clone(),
            start: 0,
            end: source.text.len(),
        })
        .collect()
}

fn local_sources(sources: &[pb::TextSource]) -> Vec<Source<'_>> {
    sources
        .iter()
        .map(|source| Source {
            id: &source.id,
            text: &source.text,
        })
        .collect()
}

#[tonic::async_trait]
impl AnimaAiService for AiService {
    async fn classify_mail(
        &self,
        request: Request<pb::ClassifyMailRequest>,
    ) -> Reply<pb::ClassifyMailResponse> {
        let request = Arc::new(request.into_inner());
        if request.candidates.len() > MAX_CANDIDATES {
            return Err(to_status(DomainError::invalid_argument(
                reason::FIELD_TOO_LONG,
                format!(
                    "{} candidates; the limit is {MAX_CANDIDATES}",
                    request.candidates.len()
                ),
            )));
        }
        require_text(
            "the mail",
            [request.subject.as_str(), request.body.as_str()],
        )
        .map_err(to_status)?;
        limit_size(
            "the mail and its candidates",
            [request.subject.as_str(), request.body.as_str()]
                .into_iter()
                .chain(request.candidates.iter().flat_map(|c| {
                    [c.title.as_str(), c.description.as_str()]
                        .into_iter()
                        .chain(c.recent_messages.iter().map(String::as_str))
                })),
        )
        .map_err(to_status)?;
        let job: LocalJob<local::Classification> = {
            let request = request.clone();
            Box::new(move |embedder, settings| {
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
        };
        let threshold = self.inner.settings.threshold;
        let (classification, model) = self
            .answer(ModelTier::Minimal, Some(job), {
                let request = request.clone();
                move |provider, model| -> RemoteFuture<_> {
                    Box::pin(remote_classify(provider, model, request.clone(), threshold))
                }
            })
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::ClassifyMailResponse {
            work_item_id: classification.work_item_id.unwrap_or_default(),
            confidence: classification.confidence,
            tier: ModelTier::Minimal as i32,
            model,
            best_work_item_id: classification.best.unwrap_or_default(),
        }))
    }

    async fn summarize(
        &self,
        request: Request<pb::SummarizeRequest>,
    ) -> Reply<pb::SummarizeResponse> {
        let request = Arc::new(request.into_inner());
        let tier = tier(request.tier, ModelTier::Standard).map_err(to_status)?;
        let count = sentences(request.max_sentences, 3).map_err(to_status)?;
        check_text(
            "the sources",
            request.sources.iter().map(|s| s.text.as_str()),
        )
        .map_err(to_status)?;
        let job: LocalJob<(String, Vec<local::Citation>)> = {
            let request = request.clone();
            Box::new(move |embedder, _| {
                let extract = local::summarize(embedder, &local_sources(&request.sources), count)?;
                Ok((extract.sentences.join(" "), extract.citations))
            })
        };
        let ((summary, cited), model) = self
            .answer(tier, Some(job), {
                let request = request.clone();
                move |provider, model| -> RemoteFuture<_> {
                    Box::pin(remote_summary(provider, model, request.clone(), count))
                }
            })
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::SummarizeResponse {
            summary,
            citations: citations(cited),
            model,
        }))
    }

    async fn generate_description(
        &self,
        request: Request<pb::GenerateDescriptionRequest>,
    ) -> Reply<pb::GenerateDescriptionResponse> {
        let request = Arc::new(request.into_inner());
        let tier = tier(request.tier, ModelTier::Standard).map_err(to_status)?;
        if request.title.trim().is_empty() {
            return Err(to_status(DomainError::invalid_argument(
                reason::FIELD_REQUIRED,
                "title is required",
            )));
        }
        check_text(
            "the context",
            request.context.iter().map(|s| s.text.as_str()),
        )
        .map_err(to_status)?;
        let job: LocalJob<(String, Vec<local::Citation>)> = {
            let request = request.clone();
            Box::new(move |embedder, _| {
                let (description, extract) = local::describe(
                    embedder,
                    &request.title,
                    &local_sources(&request.context),
                    5,
                )?;
                Ok((description, extract.citations))
            })
        };
        let ((description, cited), model) = self
            .answer(tier, Some(job), {
                let request = request.clone();
                move |provider, model| -> RemoteFuture<_> {
                    Box::pin(remote_description(provider, model, request.clone()))
                }
            })
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::GenerateDescriptionResponse {
            description,
            citations: citations(cited),
            model,
        }))
    }

    async fn analyze_gap(
        &self,
        request: Request<pb::AnalyzeGapRequest>,
    ) -> Reply<pb::AnalyzeGapResponse> {
        let request = Arc::new(request.into_inner());
        check_text(
            "the plan and its state",
            [
                request.plan_json.as_str(),
                request.implementation_state.as_str(),
            ],
        )
        .map_err(to_status)?;
        let (gap_report, model) = self
            .answer(ModelTier::Reasoning, None, {
                let request = request.clone();
                move |provider, model| -> RemoteFuture<_> {
                    Box::pin(remote_gap(provider, model, request.clone()))
                }
            })
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::AnalyzeGapResponse { gap_report, model }))
    }

    async fn should_review(
        &self,
        request: Request<pb::ShouldReviewRequest>,
    ) -> Reply<pb::ShouldReviewResponse> {
        let request = Arc::new(request.into_inner());
        check_text(
            "the work item and its changes",
            [request.work_item_json.as_str(), request.changes.as_str()],
        )
        .map_err(to_status)?;
        let (answer, model) = self
            .answer(ModelTier::Reasoning, None, {
                let request = request.clone();
                move |provider, model| -> RemoteFuture<_> {
                    Box::pin(remote_review(provider, model, request.clone()))
                }
            })
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::ShouldReviewResponse {
            review: answer.review,
            reason: answer.reason,
            model,
        }))
    }

    async fn derive_capabilities(
        &self,
        request: Request<pb::DeriveCapabilitiesRequest>,
    ) -> Reply<pb::DeriveCapabilitiesResponse> {
        let request = Arc::new(request.into_inner());
        check_text("the work item", [request.work_item_json.as_str()]).map_err(to_status)?;
        let (capabilities, model) = self
            .answer(ModelTier::Reasoning, None, {
                let request = request.clone();
                move |provider, model| -> RemoteFuture<_> {
                    Box::pin(remote_capabilities(provider, model, request.clone()))
                }
            })
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::DeriveCapabilitiesResponse {
            capabilities: capabilities.into_iter().map(capability_to_wire).collect(),
            model,
        }))
    }

    async fn embed(&self, request: Request<pb::EmbedRequest>) -> Reply<pb::EmbedResponse> {
        let request = Arc::new(request.into_inner());
        if request.texts.len() > MAX_EMBED_TEXTS {
            return Err(to_status(DomainError::invalid_argument(
                reason::FIELD_TOO_LONG,
                format!(
                    "{} texts; the limit is {MAX_EMBED_TEXTS} per request",
                    request.texts.len()
                ),
            )));
        }
        check_text("the texts", request.texts.iter().map(String::as_str)).map_err(to_status)?;
        let (vectors, model) = match &self.inner.config.embedding {
            ModelSpec::Local => {
                let request = request.clone();
                self.run_local(Box::new(move |embedder, _| {
                    let texts: Vec<&str> = request.texts.iter().map(String::as_str).collect();
                    embedder.embed(&texts)
                }))
                .await
            }
            spec @ ModelSpec::Remote { provider, model } => {
                let texts: Vec<&str> = request.texts.iter().map(String::as_str).collect();
                match self.inner.providers.get(provider) {
                    Some(client) => client
                        .embed(model, &texts)
                        .await
                        .map(|vectors| (vectors, spec.to_string()))
                        .map_err(|err| {
                            DomainError::new(
                                ErrorCode::Unavailable,
                                reason::MODEL_UNAVAILABLE,
                                err.to_string(),
                            )
                        }),
                    None => Err(DomainError::internal(format!(
                        "provider {provider} is not configured"
                    ))),
                }
            }
        }
        .map_err(to_status)?;
        let dimensions = vectors.first().map_or(0, Vec::len) as i32;
        Ok(Response::new(pb::EmbedResponse {
            vectors: vectors
                .into_iter()
                .map(|values| pb::Vector { values })
                .collect(),
            model,
            dimensions,
        }))
    }
}

/// Proposed capabilities: no ids yet, validation assigns them.
fn proposed(kinds: Vec<CapabilityKind>) -> Vec<Capability> {
    kinds
        .into_iter()
        .map(|kind| Capability {
            id: String::new(),
            kind,
        })
        .collect()
}

async fn remote_classify(
    provider: Arc<OpenAiProvider>,
    model: String,
    request: Arc<pb::ClassifyMailRequest>,
    threshold: f64,
) -> Result<local::Classification, ProviderError> {
    let candidates: String = request
        .candidates
        .iter()
        .map(|c| {
            format!(
                "- id {}: {}\n  {}\n",
                c.work_item_id, c.title, c.description
            )
        })
        .collect();
    let user = format!(
        "Work items:\n{candidates}\nMail from {}\nSubject: {}\n\n{}",
        request.from, request.subject, request.body
    );
    let system = format!(
        "You route an email to the work item it is about. Give {{\"work_item_id\": the id, or null if it is about none of them, \"confidence\": 0..1}}. {JSON_ONLY}"
    );
    let answer: RemoteClassification = provider
        .chat_json(&model, &system, &user, |answer: RemoteClassification| {
            if !(0.0..=1.0).contains(&answer.confidence) {
                return Err(format!("confidence {} outside 0..1", answer.confidence));
            }
            match &answer.work_item_id {
                Some(id) if !request.candidates.iter().any(|c| &c.work_item_id == id) => {
                    Err(format!("unknown work item {id:?}"))
                }
                _ => Ok(answer),
            }
        })
        .await?;
    Ok(local::Classification {
        work_item_id: answer
            .work_item_id
            .clone()
            .filter(|_| answer.confidence >= threshold),
        confidence: answer.confidence,
        best: answer.work_item_id,
    })
}

async fn remote_summary(
    provider: Arc<OpenAiProvider>,
    model: String,
    request: Arc<pb::SummarizeRequest>,
    count: usize,
) -> Result<(String, Vec<local::Citation>), ProviderError> {
    let system = format!(
        "Summarise the messages in at most {count} sentences. Give {{\"text\": the summary, \"source_ids\": ids of the messages it draws on}}. {JSON_ONLY}"
    );
    let answer: RemoteText = provider
        .chat_json(
            &model,
            &system,
            &sources_block(&request.sources),
            |answer| check_remote_text(answer, &request.sources),
        )
        .await?;
    let cited = whole_source_citations(&answer.source_ids, &request.sources);
    Ok((answer.text, cited))
}

async fn remote_description(
    provider: Arc<OpenAiProvider>,
    model: String,
    request: Arc<pb::GenerateDescriptionRequest>,
) -> Result<(String, Vec<local::Citation>), ProviderError> {
    let system = format!(
        "Write the description of a work item titled {:?} from the discussion: goal, context, acceptance criteria, in Markdown. Give {{\"text\": the description, \"source_ids\": ids of the messages it draws on}}. {JSON_ONLY}",
        request.title
    );
    let answer: RemoteText = provider
        .chat_json(
            &model,
            &system,
            &sources_block(&request.context),
            |answer| check_remote_text(answer, &request.context),
        )
        .await?;
    let cited = whole_source_citations(&answer.source_ids, &request.context);
    Ok((answer.text, cited))
}

async fn remote_gap(
    provider: Arc<OpenAiProvider>,
    model: String,
    request: Arc<pb::AnalyzeGapRequest>,
) -> Result<String, ProviderError> {
    let system = format!(
        "Compare a plan with the state of its implementation and report what is missing, what diverges and what is at risk, in Markdown. Give {{\"gap_report\": the report}}. {JSON_ONLY}"
    );
    let user = format!(
        "Plan:\n{}\n\nImplementation state:\n{}",
        request.plan_json, request.implementation_state
    );
    let answer: RemoteGap = provider
        .chat_json(&model, &system, &user, |answer: RemoteGap| {
            if answer.gap_report.trim().is_empty() {
                Err("empty report".into())
            } else {
                Ok(answer)
            }
        })
        .await?;
    Ok(answer.gap_report)
}

async fn remote_review(
    provider: Arc<OpenAiProvider>,
    model: String,
    request: Arc<pb::ShouldReviewRequest>,
) -> Result<RemoteReview, ProviderError> {
    let system = format!(
        "Decide whether these changes to a work item need a human code review before they land. Give {{\"review\": true or false, \"reason\": one or two sentences}}. {JSON_ONLY}"
    );
    let user = format!(
        "Work item:\n{}\n\nChanges:\n{}",
        request.work_item_json, request.changes
    );
    provider
        .chat_json(&model, &system, &user, |answer: RemoteReview| {
            if answer.reason.trim().is_empty() {
                Err("no reason given".into())
            } else {
                Ok(answer)
            }
        })
        .await
}

async fn remote_capabilities(
    provider: Arc<OpenAiProvider>,
    model: String,
    request: Arc<pb::DeriveCapabilitiesRequest>,
) -> Result<Vec<Capability>, ProviderError> {
    let system = format!(
        "List what an agent sandbox needs to do this work item: repositories, secrets by reference, network zones. \
         Give {{\"capabilities\": [objects, each one of {{\"type\": \"repo_access\", \"repository_id\", \"write\"}}, \
         {{\"type\": \"secret\", \"name\", \"reference\" (STORE://KEY, KEY of letters, digits and ._-), \"mount_as\"}}, \
         {{\"type\": \"network_zone\", \"name\", \"hosts\": [..]}}, \
         {{\"type\": \"custom\", \"type_name\", \"attributes\": {{..}}}}]}}. {JSON_ONLY}"
    );
    provider
        .chat_json(
            &model,
            &system,
            &request.work_item_json,
            |answer: RemoteCapabilities| {
                capability::validate(proposed(answer.capabilities)).map_err(|err| err.message)
            },
        )
        .await
}
