//! anima-agent: the internal AgentProviderService that provisions a sandbox
//! per agent session. [`sandbox`] is the local provider's mechanism (a
//! bubblewrap namespace set per session); [`provider`] serves it over
//! gRPC. Still to come: login into a session over SSH.

use std::path::PathBuf;

use anima_proto::v1::agent_provider_service_server::AgentProviderServiceServer;

pub mod provider;
pub mod sandbox;

use provider::LocalProvider;
use sandbox::{Limits, LocalSandboxes};

/// The tonic service of a local provider keeping its sandboxes under `dir`,
/// each seeing the host paths `read_only`.
pub fn service(
    dir: impl Into<PathBuf>,
    read_only: Vec<PathBuf>,
) -> AgentProviderServiceServer<LocalProvider> {
    AgentProviderServiceServer::new(LocalProvider::new(
        LocalSandboxes::new(dir),
        Limits::default(),
        read_only,
    ))
}
