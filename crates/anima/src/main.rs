//! `anima`: run the whole product (`anima up`) or talk to a running server.

mod client;
mod output;
mod planning;
mod up;

use std::path::PathBuf;

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
    /// Log in and keep the session token in the user's config directory.
    Login(client::LoginArgs),
    /// Revoke the stored session and forget it.
    Logout(client::GlobalArgs),
    /// Show who the stored session belongs to.
    Whoami(client::GlobalArgs),
    /// Manage user accounts (admin).
    #[command(subcommand)]
    User(client::UserCommand),
    /// List roles and their permissions.
    #[command(subcommand)]
    Role(client::RoleCommand),
    /// Projects and their members.
    #[command(subcommand)]
    Project(planning::ProjectCommand),
    /// Plans and their progress.
    #[command(subcommand)]
    Plan(planning::PlanCommand),
    /// Work items: create, edit (in $EDITOR), move, history and revert.
    #[command(subcommand, name = "workitem", alias = "wi")]
    WorkItem(planning::WorkItemCommand),
    /// Workflow templates and their phases.
    #[command(subcommand)]
    Workflow(planning::WorkflowCommand),
    /// Akh personas that AI contributions speak as.
    #[command(subcommand)]
    Akh(planning::AkhCommand),
}

fn main() -> std::process::ExitCode {
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
            Command::Login(args) => client::login(args).await,
            Command::Logout(args) => client::logout(args).await,
            Command::Whoami(args) => client::whoami(args).await,
            Command::User(command) => client::user(command).await,
            Command::Role(command) => client::role(command).await,
            Command::Project(command) => planning::project(command).await,
            Command::Plan(command) => planning::plan(command).await,
            Command::WorkItem(command) => planning::work_item_command(command).await,
            Command::Workflow(command) => planning::workflow(command).await,
            Command::Akh(command) => planning::akh(command).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", output::describe_error(&err));
            std::process::ExitCode::FAILURE
        }
    }
}

/// Where the CLI keeps its session: `$ANIMA_CONFIG_DIR`, else the
/// platform config directory (`~/.config/anima` on Linux).
fn config_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("ANIMA_CONFIG_DIR") {
        return Ok(PathBuf::from(dir));
    }
    dirs::config_dir()
        .map(|dir| dir.join("anima"))
        .ok_or_else(|| anyhow::anyhow!("no config directory; set ANIMA_CONFIG_DIR"))
}
