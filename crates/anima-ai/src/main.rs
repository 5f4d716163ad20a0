//! The `anima-ai` binary: AnimaAiService on its own listener. Stateless, so
//! any number can run behind a load balancer.

use anima_ai::AiConfig;
use clap::Parser;

/// Runs the internal AI service. Tiers and the model directory come from
/// the `[ai]` section of `anima.toml` and `ANIMA_AI_*` variables
/// (`anima config check` lists them).
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// `anima.toml`, of which this reads the `[ai]` section.
    #[arg(long, env = "ANIMA_CONFIG")]
    config: Option<std::path::PathBuf>,
    /// Listen address.
    #[arg(long, env = "ANIMA_AI_LISTEN", default_value = "127.0.0.1:7434")]
    listen: std::net::SocketAddr,
    /// Bearer tokens callers must present (comma-separated; several may be
    /// valid at once while they rotate). Required unless listening on
    /// loopback only.
    #[arg(
        long,
        env = "ANIMA_AI_TOKENS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    tokens: Vec<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let tokens = anima_proto::service_auth::ServiceTokens::configured(
        "anima-ai",
        "ANIMA_AI_TOKENS",
        args.tokens,
        args.listen,
    )
    .map_err(anyhow::Error::msg)?;
    let config = AiConfig::load(args.config.as_deref())?;
    let service = anima_ai::service(config)?;
    println!("anima-ai listening on {}", args.listen);
    tonic::transport::Server::builder()
        .add_service(tonic::service::interceptor::InterceptedService::new(
            service, tokens,
        ))
        .serve(args.listen)
        .await?;
    Ok(())
}
