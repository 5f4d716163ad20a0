//! The `anima-ai` binary: AnimaAiService on its own listener. Stateless, so
//! any number can run behind a load balancer.

use anima_ai::AiConfig;
use clap::Parser;

/// Runs the internal AI service. Tiers and the model directory come from
/// `ANIMA_AI_CONFIG` (TOML) and `ANIMA_AI_MODEL_DIR` /
/// `ANIMA_AI_TIER_{MINIMAL,STANDARD,REASONING}`.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Listen address.
    #[arg(long, env = "ANIMA_AI_LISTEN", default_value = "127.0.0.1:7434")]
    listen: std::net::SocketAddr,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let config = AiConfig::from_env()?;
    println!("anima-ai listening on {}", args.listen);
    tonic::transport::Server::builder()
        .add_service(anima_ai::service(config)?)
        .serve(args.listen)
        .await?;
    Ok(())
}
