//! The `anima-server` binary: the API server on its own, typically against
//! PostgreSQL with several instances behind a load balancer.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

/// Runs the Anima API server.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// `anima.toml`: its `[server]` and `[agent]` sections (`anima config
    /// check` shows the effective configuration).
    #[arg(long, env = "ANIMA_CONFIG")]
    config: Option<PathBuf>,
    /// Listen address, e.g. 0.0.0.0:7433 (overrides the file).
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// postgres://… or sqlite://… (overrides the file).
    #[arg(long)]
    database_url: Option<String>,
    #[command(flatten)]
    tls: anima_server::listener::TlsArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let anima_server::config::ServerSections {
        server: mut config,
        agent,
    } = anima_server::config::ServerSections::load(args.config.as_deref())?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(url) = args.database_url {
        config.database_url = url;
    }
    args.tls.apply(&mut config);
    anyhow::ensure!(
        !config.database_url.is_empty(),
        "anima-server needs --database-url (or ANIMA_DATABASE_URL); use `anima up` for the embedded database"
    );
    let store = anima_db::open(&config.database_url)
        .await
        .context("opening the database")?;
    if let Some(admin) =
        anima_server::bootstrap_admin(&store, std::env::var("ANIMA_ADMIN_PASSWORD").ok()).await?
    {
        match admin.generated_password {
            Some(password) => println!(
                "created administrator {:?} with password {password}",
                admin.username
            ),
            None => println!(
                "created administrator {:?} with ANIMA_ADMIN_PASSWORD",
                admin.username
            ),
        }
    }
    let listener = anima_server::Listener::bind(&config).await?;
    let provider = anima_server::agents::from_config(&agent)?;
    let router =
        anima_server::router(store, &config, anima_server::Hosted::default(), provider).await?;
    // On stdout, for scripts and tests that start it on port 0.
    println!(
        "anima-server listening on {}://{}",
        listener.scheme(),
        listener.local_addr()?
    );
    anima_server::serve(listener, router, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
