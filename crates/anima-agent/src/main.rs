//! The `anima-agent` binary: AgentProviderService on its own listener, and
//! the SSH server for logins into sandboxes.

use std::sync::Arc;

use anima_agent::{AgentOptions, audit::ServerAudit, login::LoginOptions};
use clap::Parser;

/// Runs the internal agent provider service.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Listen address.
    #[arg(long, env = "ANIMA_AGENT_LISTEN", default_value = "127.0.0.1:7435")]
    listen: std::net::SocketAddr,
    /// The service token anima-server presents (its `[agent] token`).
    #[arg(long, env = "ANIMA_AGENT_TOKEN", hide_env_values = true)]
    token: String,
    /// Where session sandboxes (workspaces, given files) are kept.
    #[arg(
        long,
        env = "ANIMA_AGENT_SANDBOXES",
        default_value = "/var/lib/anima/sandboxes"
    )]
    sandboxes: std::path::PathBuf,
    /// Host paths every sandbox sees read-only (tools installed outside
    /// /usr); in the variable, separated by `,` as in anima.toml.
    #[arg(long, env = "ANIMA_AGENT_READ_ONLY", value_delimiter = ',')]
    read_only: Vec<std::path::PathBuf>,
    /// The unprivileged host user every sandbox runs as (made by
    /// scripts/setup-debian).
    #[arg(long, env = "ANIMA_AGENT_SANDBOX_USER", default_value = anima_agent::sandbox::DEFAULT_USER)]
    sandbox_user: String,
    /// anima-server's address, where logins are reported for its audit
    /// log; without it, logins into sandboxes are refused.
    #[arg(long, env = "ANIMA_AGENT_SERVER")]
    server: Option<String>,
    /// The service token this provider presents to anima-server.
    #[arg(
        long,
        env = "ANIMA_AGENT_SERVER_TOKEN",
        hide_env_values = true,
        requires = "server"
    )]
    server_token: Option<String>,
    /// The SSH server's listen address for logins.
    #[arg(long, env = "ANIMA_AGENT_SSH_LISTEN", default_value = "127.0.0.1:7436")]
    ssh_listen: std::net::SocketAddr,
    /// The host name login credentials name (default: the SSH listen IP).
    #[arg(long, env = "ANIMA_AGENT_SSH_HOST")]
    ssh_host: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let login = match (&args.server, &args.server_token) {
        (Some(server), Some(token)) => Some((
            LoginOptions {
                listen: args.ssh_listen,
                host: args.ssh_host.clone(),
            },
            Arc::new(ServerAudit::new(server, token)?) as Arc<dyn anima_agent::audit::AuditSink>,
        )),
        (Some(_), None) => anyhow::bail!("--server needs --server-token"),
        _ => {
            eprintln!("no --server: logins into sandboxes are refused");
            None
        }
    };
    // The token is required even on loopback: sandboxes run commands.
    anyhow::ensure!(!args.token.trim().is_empty(), "ANIMA_AGENT_TOKEN is empty");
    let check = anima_proto::service_auth::ServiceTokens::configured(
        "anima-agent",
        "ANIMA_AGENT_TOKEN",
        vec![args.token.clone()],
        args.listen,
    )
    .map_err(anyhow::Error::msg)?;
    anima_agent::sandbox::LocalSandboxes::new(&args.sandboxes, args.sandbox_user.as_str())
        .check()
        .map_err(|why| anyhow::anyhow!("sandboxes cannot run here: {why}"))?;
    let service = anima_agent::service(AgentOptions {
        sandboxes: args.sandboxes,
        read_only: args.read_only,
        sandbox_user: args.sandbox_user,
        login,
    })
    .await?;
    println!("anima-agent listening on {}", args.listen);
    tonic::transport::Server::builder()
        .add_service(tonic::service::interceptor::InterceptedService::new(
            service, check,
        ))
        .serve(args.listen)
        .await?;
    Ok(())
}
