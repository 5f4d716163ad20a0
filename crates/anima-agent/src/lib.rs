//! anima-agent: the internal AgentProviderService that provisions a sandbox
//! per agent session. Built so far: [`sandbox`], the local provider's
//! mechanism (a bubblewrap namespace set per session). The service itself
//! is served so that callers and reflection see it, and every RPC still
//! answers `UNIMPLEMENTED`.

pub mod sandbox;

use anima_proto::v1::agent_provider_service_server::{
    AgentProviderService, AgentProviderServiceServer,
};

/// The provider service as it stands: every RPC unimplemented.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProviderService;

impl AgentProviderService for ProviderService {}

/// The tonic service to mount on a server.
pub fn service() -> AgentProviderServiceServer<ProviderService> {
    AgentProviderServiceServer::new(ProviderService)
}
