//! AgentProviderService over [`LocalSandboxes`]: a session's capabilities
//! become its sandbox (secret values, read by anima-server from its
//! configured stores, as files), its MCP endpoint, token and Akh identity
//! are written where the agent finds them, and its skills beside its
//! workspace.
//!
//! A sandbox reaches its MCP endpoint, and only `/mcp` there, through the
//! forwarding socket named in `mcp.json`, and its network zones through
//! the egress proxy (`HTTP_PROXY`). Login credentials come from
//! [`Logins`] when it runs.

use std::{path::PathBuf, sync::Arc};

use anima_core::{DomainError, ErrorCode, error::reason};
use anima_proto::{
    status::to_status,
    v1::{self as pb, agent_provider_service_server::AgentProviderService},
};
use serde_json::json;
use tonic::{Request, Response, Status};

use crate::{
    login::Logins,
    sandbox::{FORWARD_SOCKET, Limits, LocalSandboxes, Running, SandboxSpec, relative},
};

/// Where the MCP client configuration appears inside the sandbox.
pub const MCP_CONFIG: &str = "/run/anima/mcp.json";

/// The provider service: sandboxes by VM id (`local:SESSION`).
pub struct LocalProvider {
    sandboxes: LocalSandboxes,
    limits: Limits,
    read_only: Vec<PathBuf>,
    running: Running,
    logins: Option<Arc<Logins>>,
}

impl LocalProvider {
    /// A provider keeping its sandboxes under `sandboxes`; each sees the
    /// host paths `read_only` (tools installed outside `/usr`). Without
    /// logins, GetLoginCredentials is refused.
    pub fn new(
        sandboxes: LocalSandboxes,
        limits: Limits,
        read_only: Vec<PathBuf>,
        running: Running,
        logins: Option<Arc<Logins>>,
    ) -> Self {
        Self {
            sandboxes,
            limits,
            read_only,
            running,
            logins,
        }
    }
}

fn invalid(message: impl Into<String>) -> DomainError {
    DomainError::invalid_argument(reason::INVALID_FIELD, message)
}

fn failed(err: impl std::fmt::Display) -> DomainError {
    DomainError::new(
        ErrorCode::Unavailable,
        reason::AGENT_PROVIDER_FAILED,
        format!("the sandbox failed: {err:#}"),
    )
}

fn vm_not_found(vm_id: &str) -> DomainError {
    DomainError::not_found(reason::VM_NOT_FOUND, format!("no sandbox {vm_id}"))
}

/// What of a secret `value` is kept out of recorded output: output is kept
/// line by line, so each of its lines (a key file has several, a token
/// file ends in a newline), without line ends, and the value trimmed.
fn redactions(value: &[u8]) -> Vec<Vec<u8>> {
    let trim = |mut bytes: &[u8]| {
        while let [rest @ .., b'\n' | b'\r'] = bytes {
            bytes = rest;
        }
        bytes.to_vec()
    };
    let mut all: Vec<Vec<u8>> = value.split(|&b| b == b'\n').map(trim).collect();
    all.push(trim(value));
    all.retain(|part| !part.is_empty());
    // Longest first, so a line is not cut up by a shorter part of it.
    all.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    all.dedup();
    all
}

/// `host:port` of an `http://` endpoint URL.
fn endpoint_address(endpoint: &str) -> Result<String, DomainError> {
    let uri: tonic::codegen::http::Uri = endpoint
        .parse()
        .map_err(|err| invalid(format!("mcp_endpoint {endpoint:?}: {err}")))?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http"), Some(host)) => Ok(format!("{host}:{}", uri.port_u16().unwrap_or(80))),
        _ => Err(invalid(format!(
            "mcp_endpoint {endpoint:?} must be an http:// URL"
        ))),
    }
}

/// The sandbox a provisioning request describes.
fn spec_of(
    request: &pb::ProvisionVmRequest,
    limits: Limits,
    read_only: &[PathBuf],
) -> Result<SandboxSpec, DomainError> {
    let command = request.agent_command.trim();
    if command.is_empty() {
        return Err(invalid("agent_command is required"));
    }
    let mut files = vec![(
        "mcp.json".to_owned(),
        json!({
            "endpoint": request.mcp_endpoint,
            // Sessions without network reach the endpoint through this.
            "socket": FORWARD_SOCKET,
            "token": request.mcp_token,
            "session_id": request.session_id,
            "work_item_id": request.work_item_id,
            "akh": {"id": request.akh_id, "name": request.akh_name},
        })
        .to_string()
        .into_bytes(),
    )];
    let mut redact = vec![request.mcp_token.clone().into_bytes()];
    for secret in &request.secrets {
        relative(&secret.mount_as)
            .map_err(|err| invalid(format!("secret {:?}: {err:#}", secret.name)))?;
        files.push((format!("secrets/{}", secret.mount_as), secret.value.clone()));
        redact.extend(redactions(&secret.value));
    }
    Ok(SandboxSpec {
        session_id: request.session_id.clone(),
        command: vec!["/bin/sh".into(), "-c".into(), command.to_owned()],
        env: vec![
            ("ANIMA_MCP_CONFIG".into(), MCP_CONFIG.into()),
            ("ANIMA_MCP_ENDPOINT".into(), request.mcp_endpoint.clone()),
            ("ANIMA_SESSION_ID".into(), request.session_id.clone()),
            ("ANIMA_WORK_ITEM_ID".into(), request.work_item_id.clone()),
            ("ANIMA_AKH_NAME".into(), request.akh_name.clone()),
        ],
        files,
        redact,
        limits,
        forward_to: Some(endpoint_address(&request.mcp_endpoint)?),
        read_only: read_only.to_vec(),
        skills: skill_files(&request.skills)?,
        zones: Arc::new(crate::egress::Zones::parse(&request.zones).map_err(invalid)?),
    })
}

/// Skill bundles as files of the sandbox's skills directory
/// (`SKILLS_MOUNT/skills`, [`crate::sandbox::SKILLS_MOUNT`]):
/// `NAME/manifest.json` and `NAME/PATH` for each file of the bundle.
fn skill_files(bundles: &[pb::SkillBundle]) -> Result<Vec<(String, Vec<u8>)>, DomainError> {
    let mut files = Vec::new();
    for bundle in bundles {
        let name = bundle
            .r#ref
            .as_ref()
            .map(|r| r.name.as_str())
            .unwrap_or_default();
        relative(name).map_err(|err| invalid(format!("skill: {err:#}")))?;
        files.push((
            format!("{name}/manifest.json"),
            bundle.manifest_json.clone().into_bytes(),
        ));
        for (path, content) in &bundle.files {
            relative(path).map_err(|err| invalid(format!("skill {name}: {err:#}")))?;
            files.push((format!("{name}/{path}"), content.clone()));
        }
    }
    Ok(files)
}

impl LocalProvider {
    async fn provision(
        &self,
        request: pb::ProvisionVmRequest,
    ) -> Result<pb::ProvisionVmResponse, DomainError> {
        let spec = spec_of(&request, self.limits, &self.read_only)?;
        let vm_id = format!("local:{}", request.session_id);
        let mut running = self.running.lock().await;
        if running.contains_key(&vm_id) {
            return Err(DomainError::new(
                ErrorCode::AlreadyExists,
                reason::INVALID_FIELD,
                format!("session {} has a sandbox already", request.session_id),
            ));
        }
        let sandbox = self.sandboxes.start(&spec).await.map_err(failed)?;
        running.insert(vm_id.clone(), sandbox);
        Ok(pb::ProvisionVmResponse { vm_id })
    }

    async fn destroy(
        &self,
        request: pb::DestroyVmRequest,
    ) -> Result<pb::DestroyVmResponse, DomainError> {
        let sandbox = self
            .running
            .lock()
            .await
            .remove(&request.vm_id)
            .ok_or_else(|| vm_not_found(&request.vm_id))?;
        if let Some(logins) = &self.logins {
            logins.revoke(&request.vm_id);
        }
        sandbox.destroy(request.keep).await.map_err(failed)?;
        Ok(pb::DestroyVmResponse {})
    }

    async fn deploy(
        &self,
        request: pb::DeploySkillsRequest,
    ) -> Result<pb::DeploySkillsResponse, DomainError> {
        let running = self.running.lock().await;
        let sandbox = running
            .get(&request.vm_id)
            .ok_or_else(|| vm_not_found(&request.vm_id))?;
        // A phase change replaces the skills of the phase before.
        sandbox
            .replace_skills(&skill_files(&request.skills)?)
            .map_err(failed)?;
        Ok(pb::DeploySkillsResponse {})
    }

    async fn status(&self, request: pb::GetVmStatusRequest) -> Result<pb::VmStatus, DomainError> {
        let mut running = self.running.lock().await;
        let sandbox = running
            .get_mut(&request.vm_id)
            .ok_or_else(|| vm_not_found(&request.vm_id))?;
        let (state, exit_code) = match sandbox.try_exit().map_err(failed)? {
            None => (pb::VmState::Running, 0),
            Some(Some(0)) => (pb::VmState::Exited, 0),
            Some(Some(code)) => (pb::VmState::Failed, code),
            // Ended by a signal: killed, or over its CPU time.
            Some(None) => (pb::VmState::Failed, -1),
        };
        Ok(pb::VmStatus {
            vm_id: request.vm_id,
            state: state as i32,
            exit_code,
            last_output_lines: sandbox.last_output(),
        })
    }

    async fn login_credentials(
        &self,
        request: pb::GetLoginCredentialsRequest,
    ) -> Result<pb::LoginCredentials, DomainError> {
        let Some(logins) = &self.logins else {
            return Err(DomainError::failed_precondition(
                reason::LOGIN_UNAVAILABLE,
                "this anima-agent runs no SSH server (it needs --ssh-listen and the server's \
                 address to keep the audit log)",
            ));
        };
        if !self.running.lock().await.contains_key(&request.vm_id) {
            return Err(vm_not_found(&request.vm_id));
        }
        let credentials = logins.issue(&request.vm_id).map_err(failed)?;
        tracing::info!(
            vm = %request.vm_id,
            user = %request.requested_by_user_id,
            login = %credentials.username,
            "issued login credentials"
        );
        Ok(credentials)
    }
}

#[tonic::async_trait]
impl AgentProviderService for LocalProvider {
    async fn provision_vm(
        &self,
        request: Request<pb::ProvisionVmRequest>,
    ) -> Result<Response<pb::ProvisionVmResponse>, Status> {
        self.provision(request.into_inner())
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn destroy_vm(
        &self,
        request: Request<pb::DestroyVmRequest>,
    ) -> Result<Response<pb::DestroyVmResponse>, Status> {
        self.destroy(request.into_inner())
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn deploy_skills(
        &self,
        request: Request<pb::DeploySkillsRequest>,
    ) -> Result<Response<pb::DeploySkillsResponse>, Status> {
        self.deploy(request.into_inner())
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn get_vm_status(
        &self,
        request: Request<pb::GetVmStatusRequest>,
    ) -> Result<Response<pb::VmStatus>, Status> {
        self.status(request.into_inner())
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn get_login_credentials(
        &self,
        request: Request<pb::GetLoginCredentialsRequest>,
    ) -> Result<Response<pb::LoginCredentials>, Status> {
        self.login_credentials(request.into_inner())
            .await
            .map(Response::new)
            .map_err(to_status)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_line_of_a_secret_is_redacted() {
        assert_eq!(
            super::redactions(b"-----BEGIN-----\nAAAA\r\n-----END-----\n"),
            [
                b"-----BEGIN-----\nAAAA\r\n-----END-----".to_vec(),
                b"-----BEGIN-----".to_vec(),
                b"-----END-----".to_vec(),
                b"AAAA".to_vec(),
            ]
        );
        assert_eq!(super::redactions(b"token\n"), [b"token".to_vec()]);
        assert!(super::redactions(b"\n\n").is_empty());
    }
}
