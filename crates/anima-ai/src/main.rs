//! The `anima-ai` binary: AnimaAiService on its own listener. Stateless, so
//! any number can run behind a load balancer.

use anima_ai::AiConfig;
use anima_core::error::reason;
use clap::Parser;
use tonic::{Request, Status};

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
    let tokens: Vec<String> = args
        .tokens
        .into_iter()
        .map(|token| token.trim().to_owned())
        .filter(|token| !token.is_empty())
        .collect();
    for token in &tokens {
        anima_core::service_token::check_strength("a token of ANIMA_AI_TOKENS", token)
            .map_err(anyhow::Error::msg)?;
    }
    anyhow::ensure!(
        !tokens.is_empty() || args.listen.ip().is_loopback(),
        "anima-ai on {} would answer anyone: set ANIMA_AI_TOKENS, or listen on loopback",
        args.listen
    );
    let config = AiConfig::load(args.config.as_deref())?;
    let service = anima_ai::service(config)?;
    println!("anima-ai listening on {}", args.listen);
    tonic::transport::Server::builder()
        .add_service(tonic::service::interceptor::InterceptedService::new(
            service,
            move |request: Request<()>| check_token(&tokens, request),
        ))
        .serve(args.listen)
        .await?;
    Ok(())
}

/// Lets a request through when no tokens are configured (loopback only) or
/// when it carries one of them.
fn check_token(tokens: &[String], request: Request<()>) -> Result<Request<()>, Status> {
    if tokens.is_empty() {
        return Ok(request);
    }
    let presented = request
        .metadata()
        .get("authorization")
        .and_then(|value| value.to_str().ok());
    if anima_core::service_token::header_matches_any(presented, tokens) {
        Ok(request)
    } else {
        Err(anima_proto::status::to_status(
            anima_core::DomainError::unauthenticated(
                reason::UNAUTHENTICATED,
                "anima-ai needs one of its service tokens",
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_auth(value: Option<&str>) -> Request<()> {
        let mut request = Request::new(());
        if let Some(value) = value {
            request
                .metadata_mut()
                .insert("authorization", value.parse().expect("header"));
        }
        request
    }

    #[test]
    fn only_configured_tokens_pass() {
        let tokens = vec!["old".to_owned(), "new".to_owned()];
        assert!(check_token(&tokens, with_auth(Some("Bearer new"))).is_ok());
        assert!(check_token(&tokens, with_auth(Some("Bearer old"))).is_ok());
        for refused in [None, Some("Bearer other"), Some("new")] {
            let status = check_token(&tokens, with_auth(refused)).expect_err("refused");
            assert_eq!(status.code(), tonic::Code::Unauthenticated);
        }
        assert!(
            check_token(&[], with_auth(None)).is_ok(),
            "loopback without tokens"
        );
    }
}
