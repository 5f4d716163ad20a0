//! Agent providers: what sets up and tears down the sandbox of an agent
//! session, and says when its agent has ended. The real one (anima-agent's
//! AgentProviderService) is reached by gRPC ([`RemoteProvider`]).

use std::{path::PathBuf, sync::Arc};

use anima_core::{DomainError, ErrorCode, agent::AgentSession, error::reason};
use anima_proto::{
    capability::capability,
    v1::{self as pb, agent_provider_service_client::AgentProviderServiceClient},
};
use async_trait::async_trait;
use tonic::{
    metadata::{Ascii, MetadataValue},
    transport::Channel,
};
use tonic_types::StatusExt;

use crate::{
    auth::write_private_file,
    config::{AgentConfig, AgentProviderKind},
};

/// What a provider is told when a session starts.
#[derive(Debug, Clone)]
pub struct ProvisionRequest {
    /// The session, with its capabilities and skills.
    pub session: AgentSession,
    /// The session's MCP token, to deploy into the sandbox. It exists only
    /// here and in the sandbox; the server keeps its hash.
    pub mcp_token: String,
    /// The Akh's name, the identity the agent writes as.
    pub akh_name: String,
    /// The current phase's skills, in the sandbox before the agent starts.
    pub skills: Vec<pb::SkillBundle>,
    /// The values of its secret capabilities, read from the server's
    /// stores.
    pub secrets: Vec<pb::SecretValue>,
    /// The definitions of its network zones.
    pub zones: Vec<pb::EgressZone>,
}

/// Where a sandbox's agent stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentState {
    /// The provider cannot tell (an agent run by hand): the session ends
    /// when someone stops it.
    Unknown,
    /// Still running.
    Running,
    /// Its command ended.
    Ended {
        /// Whether it exited with 0.
        success: bool,
        /// Its exit code (-1 when a signal ended it).
        exit_code: i32,
        /// The last lines it wrote.
        last_output: Vec<String>,
    },
}

/// Sets up and tears down sandboxes for agent sessions.
#[async_trait]
pub trait AgentProvider: Send + Sync {
    /// Provisions a sandbox for a session; returns the provider's id for it.
    async fn provision(&self, request: ProvisionRequest) -> Result<String, DomainError>;
    /// Destroys a session's sandbox.
    async fn destroy(&self, session: &AgentSession) -> Result<(), DomainError>;
    /// Where the agent of sandbox `vm_id` stands; a sandbox the provider
    /// no longer has is `NOT_FOUND`/`VM_NOT_FOUND`.
    async fn state(&self, vm_id: &str) -> Result<AgentState, DomainError> {
        let _ = vm_id;
        Ok(AgentState::Unknown)
    }
    /// Replaces the skills in sandbox `vm_id` (its work item changed
    /// phase). Providers without a sandbox have nowhere to put them.
    async fn deploy_skills(
        &self,
        vm_id: &str,
        skills: Vec<pb::SkillBundle>,
    ) -> Result<(), DomainError> {
        let _ = (vm_id, skills);
        Ok(())
    }
    /// One-time SSH credentials into sandbox `vm_id`, for `user_id` alone.
    async fn login_credentials(
        &self,
        vm_id: &str,
        user_id: &str,
    ) -> Result<pb::LoginCredentials, DomainError> {
        let _ = (vm_id, user_id);
        Err(DomainError::failed_precondition(
            reason::LOGIN_UNAVAILABLE,
            "this agent provider cannot open shells into sessions",
        ))
    }
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

/// anima-agent's AgentProviderService, reached with a service token (or in
/// this process, without); each sandbox runs `agent_command` and reaches
/// the server's MCP endpoint.
#[derive(Clone)]
pub struct RemoteProvider {
    client: AgentProviderServiceClient<Channel>,
    /// `Bearer TOKEN`, checked once when the provider is made; none in
    /// process.
    authorization: Option<MetadataValue<Ascii>>,
    mcp_endpoint: String,
    agent_command: String,
}

impl RemoteProvider {
    /// A provider at `url` (connected on first use).
    pub fn new(
        url: &str,
        token: &str,
        mcp_endpoint: &str,
        agent_command: &str,
    ) -> anyhow::Result<Self> {
        let channel = Channel::from_shared(url.to_owned())
            // Not repeated: a URL may carry credentials.
            .map_err(|err| anyhow::anyhow!("the agent provider's url is not a URL: {err}"))?
            .connect_lazy();
        let authorization = format!("Bearer {token}")
            .parse()
            .map_err(|_| anyhow::anyhow!("the agent token is not a valid header value"))?;
        Ok(Self {
            client: AgentProviderServiceClient::new(channel),
            authorization: Some(authorization),
            mcp_endpoint: mcp_endpoint.to_owned(),
            agent_command: agent_command.to_owned(),
        })
    }

    /// anima-agent hosted in this process, over
    /// [`crate::in_process::channel`].
    pub fn hosted(channel: Channel, mcp_endpoint: &str, agent_command: &str) -> Self {
        Self {
            client: AgentProviderServiceClient::new(channel),
            authorization: None,
            mcp_endpoint: mcp_endpoint.to_owned(),
            agent_command: agent_command.to_owned(),
        }
    }

    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(authorization) = &self.authorization {
            request
                .metadata_mut()
                .insert("authorization", authorization.clone());
        }
        request
    }
}

/// A provider's refusal a caller can act on keeps its reason (a missing
/// secret stays `SECRET_NOT_FOUND`); anything else is the provider failing.
fn from_status(status: tonic::Status) -> DomainError {
    let wire_reason = status.get_details_error_info().map(|info| info.reason);
    match (status.code(), wire_reason.as_deref()) {
        (tonic::Code::FailedPrecondition, Some(reason::SECRET_NOT_FOUND)) => {
            DomainError::failed_precondition(reason::SECRET_NOT_FOUND, status.message())
        }
        (tonic::Code::FailedPrecondition, Some(reason::LOGIN_UNAVAILABLE)) => {
            DomainError::failed_precondition(reason::LOGIN_UNAVAILABLE, status.message())
        }
        (tonic::Code::NotFound, _) => {
            DomainError::not_found(reason::VM_NOT_FOUND, status.message())
        }
        (tonic::Code::InvalidArgument, _) => DomainError::failed_precondition(
            reason::AGENT_PROVIDER_FAILED,
            format!(
                "the agent provider refused the session: {}",
                status.message()
            ),
        ),
        _ => provider_failed(status.message()),
    }
}

#[async_trait]
impl AgentProvider for RemoteProvider {
    async fn provision(&self, request: ProvisionRequest) -> Result<String, DomainError> {
        let session = request.session;
        let provisioned = self
            .client
            .clone()
            .provision_vm(self.request(pb::ProvisionVmRequest {
                session_id: session.id,
                work_item_id: session.work_item_id,
                capabilities: session.capabilities.into_iter().map(capability).collect(),
                akh_id: session.akh_id,
                akh_name: request.akh_name,
                mcp_endpoint: self.mcp_endpoint.clone(),
                mcp_token: request.mcp_token,
                agent_command: self.agent_command.clone(),
                skills: request.skills,
                secrets: request.secrets,
                zones: request.zones,
            }))
            .await
            .map_err(from_status)?;
        Ok(provisioned.into_inner().vm_id)
    }

    async fn destroy(&self, session: &AgentSession) -> Result<(), DomainError> {
        let destroyed = self
            .client
            .clone()
            .destroy_vm(self.request(pb::DestroyVmRequest {
                vm_id: session.vm_id.clone(),
                keep: session.keep_after_stop,
            }))
            .await;
        match destroyed {
            Ok(_) => Ok(()),
            // Gone already: what destroying wants.
            Err(status) if status.code() == tonic::Code::NotFound => Ok(()),
            Err(status) => Err(from_status(status)),
        }
    }

    async fn state(&self, vm_id: &str) -> Result<AgentState, DomainError> {
        let status = self
            .client
            .clone()
            .get_vm_status(self.request(pb::GetVmStatusRequest {
                vm_id: vm_id.to_owned(),
            }))
            .await
            .map_err(from_status)?
            .into_inner();
        Ok(match status.state() {
            pb::VmState::Exited | pb::VmState::Failed | pb::VmState::Destroyed => {
                AgentState::Ended {
                    success: status.state() == pb::VmState::Exited,
                    exit_code: status.exit_code,
                    last_output: status.last_output_lines,
                }
            }
            pb::VmState::Unspecified | pb::VmState::Provisioning | pb::VmState::Running => {
                AgentState::Running
            }
        })
    }

    async fn deploy_skills(
        &self,
        vm_id: &str,
        skills: Vec<pb::SkillBundle>,
    ) -> Result<(), DomainError> {
        self.client
            .clone()
            .deploy_skills(self.request(pb::DeploySkillsRequest {
                vm_id: vm_id.to_owned(),
                skills,
            }))
            .await
            .map_err(from_status)?;
        Ok(())
    }

    async fn login_credentials(
        &self,
        vm_id: &str,
        user_id: &str,
    ) -> Result<pb::LoginCredentials, DomainError> {
        Ok(self
            .client
            .clone()
            .get_login_credentials(self.request(pb::GetLoginCredentialsRequest {
                vm_id: vm_id.to_owned(),
                requested_by_user_id: user_id.to_owned(),
            }))
            .await
            .map_err(from_status)?
            .into_inner())
    }
}

/// The provider `[agent]` configures; `None` when sessions cannot start.
/// `local` is `anima up`'s own sandboxes: on its own, anima-server has
/// none.
pub fn from_config(agent: &AgentConfig) -> anyhow::Result<Option<Arc<dyn AgentProvider>>> {
    Ok(match agent.provider {
        AgentProviderKind::None => None,
        AgentProviderKind::Local if agent.command.is_empty() => None,
        AgentProviderKind::Local => anyhow::bail!(
            "[agent] provider = \"local\" runs sessions in `anima up`'s own sandboxes; \
             anima-server on its own needs provider = \"remote\" (anima-agent at url)"
        ),
        AgentProviderKind::Manual => {
            anyhow::ensure!(
                !agent.credentials_dir.is_empty(),
                "[agent] provider = \"manual\" needs credentials_dir"
            );
            Some(Arc::new(ManualProvider::new(&agent.credentials_dir)))
        }
        AgentProviderKind::Remote => {
            anyhow::ensure!(
                !agent.url.is_empty(),
                "[agent] provider = \"remote\" needs the url of anima-agent"
            );
            Some(Arc::new(RemoteProvider::new(
                &agent.url,
                &agent.token,
                &agent.mcp_endpoint,
                &agent.command,
            )?))
        }
    })
}
