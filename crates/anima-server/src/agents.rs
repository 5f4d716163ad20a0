//! Agent providers: what sets up and tears down the sandbox of an agent
//! session. The real one (anima-agent) is a gRPC client behind this trait;
//! the server only needs to know that sessions start and stop.

use std::{path::PathBuf, sync::Arc};

use anima_core::{DomainError, ErrorCode, agent::AgentSession, error::reason};
use async_trait::async_trait;

use crate::auth::write_private_file;

/// What a provider is told when a session starts.
#[derive(Debug, Clone)]
pub struct ProvisionRequest {
    /// The session, with its capabilities and skills.
    pub session: AgentSession,
    /// The session's MCP token, to deploy into the sandbox. It exists only
    /// here and in the sandbox; the server keeps its hash.
    pub mcp_token: String,
}

/// Sets up and tears down sandboxes for agent sessions.
#[async_trait]
pub trait AgentProvider: Send + Sync {
    /// Provisions a sandbox for a session; returns the provider's id for it.
    async fn provision(&self, request: ProvisionRequest) -> Result<String, DomainError>;
    /// Destroys a session's sandbox.
    async fn destroy(&self, session: &AgentSession) -> Result<(), DomainError>;
}

fn provider_failed(err: impl std::fmt::Display) -> DomainError {
    DomainError::new(
        ErrorCode::Unavailable,
        reason::AGENT_PROVIDER_FAILED,
        format!("the agent provider failed: {err}"),
    )
}

/// For agents run by hand (e.g. a developer's own coding agent): provisions
/// nothing, and writes each session's credentials to `DIR/SESSION.json`
/// (readable by the owner only) for the person starting the agent.
#[derive(Debug, Clone)]
pub struct ManualProvider {
    dir: PathBuf,
}

impl ManualProvider {
    /// A provider writing into `dir` (created if missing).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }
}

#[async_trait]
impl AgentProvider for ManualProvider {
    async fn provision(&self, request: ProvisionRequest) -> Result<String, DomainError> {
        let session = &request.session;
        let credentials = serde_json::json!({
            "session_id": session.id,
            "work_item_id": session.work_item_id,
            "akh_id": session.akh_id,
            "mcp_token": request.mcp_token,
            "skills": session.skills.iter().map(|s| &s.name).collect::<Vec<_>>(),
        });
        let path = self.dir.join(format!("{}.json", session.id));
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&dir)?;
            write_private_file(&path, credentials.to_string().as_bytes())
        })
        .await
        .map_err(provider_failed)?
        .map_err(provider_failed)?;
        Ok(format!("manual:{}", session.id))
    }

    async fn destroy(&self, session: &AgentSession) -> Result<(), DomainError> {
        let path = self.dir.join(format!("{}.json", session.id));
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(provider_failed(err)),
        }
    }
}

/// The provider a configuration names: `""` for none, `manual:DIR`.
pub fn from_config(spec: &str) -> anyhow::Result<Option<Arc<dyn AgentProvider>>> {
    match spec.split_once(':') {
        None if spec.is_empty() => Ok(None),
        Some(("manual", dir)) if !dir.is_empty() => Ok(Some(Arc::new(ManualProvider::new(dir)))),
        _ => anyhow::bail!("agent_provider must be empty or manual:DIR, not {spec:?}"),
    }
}
