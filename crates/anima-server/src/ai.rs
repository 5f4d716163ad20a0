//! anima-server's side of anima-ai: a gRPC client that presents the
//! server's service token and turns anima-ai's errors back into domain
//! errors with the same reason, so callers see why (no model for the tier,
//! model down, malformed replies).

use std::time::Duration;

use anima_core::{DomainError, ErrorCode, error::reason};
use anima_proto::v1::{self as pb, anima_ai_service_client::AnimaAiServiceClient};
use tonic::{
    Code, Status,
    metadata::{Ascii, MetadataValue},
    transport::Channel,
};
use tonic_types::StatusExt;

use crate::{
    auth::Caller,
    config::ServerConfig,
    limits::{Metered, RateLimiter},
};

/// Longest a model call may take, retries included, before the caller is
/// told anima-ai is unavailable.
const AI_DEADLINE: Duration = Duration::from_secs(180);

/// Reasons anima-ai answers with that mean the same here.
const PASSED_THROUGH: &[&str] = &[
    reason::NO_MODEL_FOR_TIER,
    reason::MODEL_UNAVAILABLE,
    reason::MALFORMED_MODEL_REPLY,
    reason::UNKNOWN_TIER,
    reason::FIELD_REQUIRED,
    reason::FIELD_TOO_LONG,
    reason::INVALID_FIELD,
    reason::INVALID_CAPABILITY,
];

/// A handle on anima-ai, or on its absence. Cheap to clone.
#[derive(Clone)]
pub struct Ai {
    /// The client and the `authorization` it presents (none in process).
    remote: Option<(AnimaAiServiceClient<Channel>, Option<MetadataValue<Ascii>>)>,
    /// Counts users' requests, when metered.
    limiter: Option<RateLimiter>,
}

/// Leave to make one model call, from [`Ai::admit`] or
/// [`Ai::admit_mail_of`]: every call takes one, so none goes unmetered.
#[derive(Debug)]
pub struct Admission(());

macro_rules! forward {
    ($(#[$doc:meta])* $name:ident($request:ty) -> $response:ty) => {
        $(#[$doc])*
        pub async fn $name(
            &self,
            _admitted: Admission,
            request: $request,
        ) -> Result<$response, DomainError> {
            let (mut client, request) = self.prepare(request)?;
            client
                .$name(request)
                .await
                .map(tonic::Response::into_inner)
                .map_err(from_status)
        }
    };
}

impl Ai {
    /// From `ai_url` and `ai_token`; connects on first use.
    pub fn from_config(config: &ServerConfig) -> anyhow::Result<Self> {
        if config.ai_url.is_empty() {
            return Ok(Self {
                remote: None,
                limiter: None,
            });
        }
        let channel = Channel::from_shared(config.ai_url.clone())?.connect_lazy();
        let authorization = format!("Bearer {}", config.ai_token)
            .parse()
            .map_err(|_| anyhow::anyhow!("the configured ai_token is not a valid header value"))?;
        Ok(Self {
            remote: Some((AnimaAiServiceClient::new(channel), Some(authorization))),
            limiter: None,
        })
    }

    /// anima-ai hosted in this process, over [`crate::in_process::channel`].
    pub fn hosted(channel: Channel) -> Self {
        Self {
            remote: Some((AnimaAiServiceClient::new(channel), None)),
            limiter: None,
        }
    }

    /// Meters users' requests with `limiter` (`ai_calls_per_hour`).
    pub fn metered(self, limiter: RateLimiter) -> Self {
        Self {
            limiter: Some(limiter),
            ..self
        }
    }

    /// Counts one request made for `caller` (`ai_calls_per_hour`), or
    /// refuses it (`RESOURCE_EXHAUSTED`/`RATE_LIMITED`). Nothing is counted
    /// without anima-ai.
    pub async fn admit(&self, caller: Option<&Caller>) -> Result<Admission, DomainError> {
        if let (Some(_), Some(limiter)) = (&self.remote, &self.limiter) {
            limiter.take_for(Metered::AiCall, caller).await?;
        }
        Ok(Admission(()))
    }

    /// Counts one classification of mail that arrived for `project_id`
    /// (`mail_classifications_per_hour`): anyone can send mail, so it is
    /// counted by the project that pays for it.
    pub async fn admit_mail_of(&self, project_id: &str) -> Result<Admission, DomainError> {
        if let (Some(_), Some(limiter)) = (&self.remote, &self.limiter) {
            limiter
                .take(Metered::MailClassification, project_id)
                .await?;
        }
        Ok(Admission(()))
    }

    fn prepare<T>(
        &self,
        message: T,
    ) -> Result<(AnimaAiServiceClient<Channel>, tonic::Request<T>), DomainError> {
        let (client, authorization) = self.remote.as_ref().ok_or_else(|| {
            DomainError::failed_precondition(
                reason::NO_AI_SERVICE,
                "this server has no anima-ai configured (ai_url / ANIMA_AI_URL)",
            )
        })?;
        let mut request = tonic::Request::new(message);
        request.set_timeout(AI_DEADLINE);
        if let Some(authorization) = authorization {
            request
                .metadata_mut()
                .insert("authorization", authorization.clone());
        }
        Ok((client.clone(), request))
    }

    forward!(
        /// The work item a mail is about, among candidates (minimal tier).
        classify_mail(pb::ClassifyMailRequest) -> pb::ClassifyMailResponse
    );
    forward!(
        /// An extractive or model-written summary with citations.
        summarize(pb::SummarizeRequest) -> pb::SummarizeResponse
    );
    forward!(
        /// A description draft.
        generate_description(pb::GenerateDescriptionRequest) -> pb::GenerateDescriptionResponse
    );
    forward!(
        /// Proposed capabilities (reasoning tier).
        derive_capabilities(pb::DeriveCapabilitiesRequest) -> pb::DeriveCapabilitiesResponse
    );
    forward!(
        /// Whether changes need a human review (reasoning tier).
        should_review(pb::ShouldReviewRequest) -> pb::ShouldReviewResponse
    );
    forward!(
        /// A plan against its implementation (reasoning tier).
        analyze_gap(pb::AnalyzeGapRequest) -> pb::AnalyzeGapResponse
    );
}

/// anima-ai's status as a domain error: its reason when it is one callers
/// can act on, else a generic one; its refusing our token is our
/// misconfiguration, reported as internal.
fn from_status(status: Status) -> DomainError {
    let wire_reason = status.get_details_error_info().map(|info| info.reason);
    let reason = wire_reason
        .as_deref()
        .and_then(|wire| PASSED_THROUGH.iter().find(|known| **known == wire))
        .copied()
        .unwrap_or(reason::AI_SERVICE_FAILED);
    let code = match status.code() {
        Code::InvalidArgument => ErrorCode::InvalidArgument,
        Code::FailedPrecondition => ErrorCode::FailedPrecondition,
        Code::Unavailable | Code::DeadlineExceeded => ErrorCode::Unavailable,
        Code::Unauthenticated | Code::PermissionDenied => {
            return DomainError::internal(format!(
                "anima-ai refused this server's token (check ai_token): {}",
                status.message()
            ));
        }
        _ => ErrorCode::Internal,
    };
    let message = match (status.code(), wire_reason) {
        (Code::Unavailable, None) => format!("anima-ai is unreachable: {}", status.message()),
        _ => status.message().to_owned(),
    };
    DomainError::new(code, reason, message)
}
