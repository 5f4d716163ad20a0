//! `anima`: run the whole product (`anima up`) or talk to a running server.

mod config;
mod up;

use clap::{Parser, Subcommand};

/// Anima: a command post for projects run with AI agents.
#[derive(Parser)]
#[command(version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every service in one process on an embedded SQLite database
    /// (or PostgreSQL with --database-url). Creates an admin on first start.
    Up(up::UpArgs),
    /// Check anima.toml and the ANIMA_* variables, or list them.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    #[command(flatten)]
    Client(anima_cli::Command),
}

fn main() -> std::process::ExitCode {
    // `anima up` reads untrusted PDFs in child processes of this binary.
    anima_library::serve_pdf_reader_if_asked();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Up(args) => up::run(args).await,
            Command::Config(command) => config::run(command),
            Command::Client(command) => anima_cli::run(command).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", anima_cli::describe_error(&err));
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    /// clap checks its definitions only when a command is parsed; this
    /// checks all of them at once.
    #[test]
    fn every_command_is_well_formed() {
        <super::Cli as clap::CommandFactory>::command().debug_assert();
    }
}
