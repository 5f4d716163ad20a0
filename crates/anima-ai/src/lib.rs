//! anima-ai: the internal AnimaAiService (summaries, classification, gap
//! analysis) behind model tiers. Its issue has not landed: the service is
//! served so that callers and reflection see it, and every RPC answers
//! `UNIMPLEMENTED`.

use anima_proto::v1::anima_ai_service_server::{AnimaAiService, AnimaAiServiceServer};

/// The AI service as it stands: every RPC unimplemented.
#[derive(Debug, Clone, Copy, Default)]
pub struct AiService;

impl AnimaAiService for AiService {}

/// The tonic service to mount on a server.
pub fn service() -> AnimaAiServiceServer<AiService> {
    AnimaAiServiceServer::new(AiService)
}
