//! The `anima-agent` binary: AgentProviderService on its own listener.

use clap::Parser;

/// Runs the internal agent provider service.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Listen address.
    #[arg(long, env = "ANIMA_AGENT_LISTEN", default_value = "127.0.0.1:7435")]
    listen: std::net::SocketAddr,
    /// Where session sandboxes (workspaces, given files) are kept.
    #[arg(
        long,
        env = "ANIMA_AGENT_SANDBOXES",
        default_value = "/var/lib/anima/sandboxes"
    )]
    sandboxes: std::path::PathBuf,
    /// Host paths every sandbox sees read-only (tools installed outside
    /// /usr); in the variable, separated by `:`.
    #[arg(long, env = "ANIMA_AGENT_READ_ONLY", value_delimiter = ':')]
    read_only: Vec<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    println!("anima-agent listening on {}", args.listen);
    tonic::transport::Server::builder()
        .add_service(anima_agent::service(args.sandboxes, args.read_only))
        .serve(args.listen)
        .await?;
    Ok(())
}
