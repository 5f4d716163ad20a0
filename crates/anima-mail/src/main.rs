//! The `anima-mail` binary: the mail worker on its own, beside an
//! anima-server it reaches with a service token. (`anima up` runs the same
//! worker in its own process.)

use std::path::PathBuf;

use anima_mail::worker::{MailConfig, run};
use clap::{Parser, Subcommand};

/// Follows every mailbox anima-server knows through JMAP, routes each
/// mail into a work-item thread, the held list or triage, and manages the
/// mailbox accounts on the mail server.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// `anima.toml`, of which this reads the `[mail]` section (server_url,
    /// service_token, jmap_url, account_secret, …, `[mail.admin]`).
    #[arg(long, env = "ANIMA_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the worker (the default).
    Run,
    /// Prints the password anima-mail logs in to ADDRESS's account with,
    /// for mail servers whose accounts are made by hand.
    Password {
        /// The mailbox address.
        address: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = MailConfig::load(args.config.as_deref())?;
    match args.command.unwrap_or(Command::Run) {
        Command::Password { address } => {
            anyhow::ensure!(
                !config.account_secret.is_empty(),
                "no account_secret configured"
            );
            println!(
                "{}",
                anima_mail::admin::account_password(&config.account_secret, &address)
            );
            Ok(())
        }
        Command::Run => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| "info".into()),
                )
                .init();
            run(config, async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
        }
    }
}
