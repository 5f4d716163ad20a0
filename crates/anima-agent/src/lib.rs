//! anima-agent: the internal AgentProviderService that provisions a sandbox
//! per agent session. [`sandbox`] is the local provider's mechanism (a
//! bubblewrap namespace set per session, run by an unprivileged user, with
//! [`cgroup`] limits and [`confine`]'s pre-exec hook); [`forward`] is its
//! way to `/mcp` and [`egress`] its way to its network zones; [`provider`] serves it over gRPC; [`login`] is
//! its SSH server for admin shells, recorded by [`audit`].

use std::{path::PathBuf, sync::Arc};

use anima_proto::v1::agent_provider_service_server::AgentProviderServiceServer;

pub mod audit;
pub mod cgroup;
pub mod confine;
pub mod egress;
pub mod forward;
pub mod login;
pub mod provider;
pub mod proxy;
pub mod sandbox;

use audit::AuditSink;
use login::{LoginOptions, Logins};
use provider::LocalProvider;
use sandbox::{Limits, LocalSandboxes, Running};

/// How a local provider runs.
pub struct AgentOptions {
    /// Where sandboxes (and the SSH host key) are kept.
    pub sandboxes: PathBuf,
    /// Host paths every sandbox sees read-only.
    pub read_only: Vec<PathBuf>,
    /// The unprivileged host user sandboxes run as
    /// ([`sandbox::DEFAULT_USER`] unless configured).
    pub sandbox_user: String,
    /// The SSH server for logins and where they are reported; none: no
    /// logins.
    pub login: Option<(LoginOptions, Arc<dyn AuditSink>)>,
}

/// The tonic service of a local provider, with its SSH server started.
pub async fn service(
    options: AgentOptions,
) -> anyhow::Result<AgentProviderServiceServer<LocalProvider>> {
    Ok(AgentProviderServiceServer::new(
        local_provider(options).await?,
    ))
}

/// A local provider, with its SSH server started.
pub async fn local_provider(options: AgentOptions) -> anyhow::Result<LocalProvider> {
    let running = Running::default();
    let logins = match options.login {
        Some((login, audit)) => Some(
            Logins::start(
                login,
                &options.sandboxes.join("ssh_host_ed25519_key"),
                audit,
                running.clone(),
            )
            .await?,
        ),
        None => None,
    };
    let sandboxes = LocalSandboxes::new(options.sandboxes, options.sandbox_user);
    if sandboxes.check().is_ok() {
        sandboxes.reclaim();
    }
    Ok(LocalProvider::new(
        sandboxes,
        Limits::default(),
        options.read_only,
        running,
        logins,
    ))
}
