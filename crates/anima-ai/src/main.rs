//! The `anima-ai` binary: AnimaAiService on its own listener.

use clap::Parser;

/// Runs the internal AI service.
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
    println!("anima-ai listening on {}", args.listen);
    tonic::transport::Server::builder()
        .add_service(anima_ai::service())
        .serve(args.listen)
        .await?;
    Ok(())
}
