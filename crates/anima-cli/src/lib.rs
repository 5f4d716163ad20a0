//! The command-line client: every `anima` command but `up` (which
//! composes the services in the `anima` binary). It stands on
//! anima-client and the wire types alone, like any other client.

mod client;
mod commands;
mod output;

use clap::Subcommand;

pub use output::describe_error;

/// The client's commands.
#[derive(Subcommand)]
pub enum Command {
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
    Project(commands::ProjectCommand),
    /// Plans and their progress.
    #[command(subcommand)]
    Plan(commands::PlanCommand),
    /// Work items: create, edit (in $EDITOR), move, history and revert.
    #[command(subcommand, name = "workitem", alias = "wi")]
    WorkItem(commands::WorkItemCommand),
    /// Workflow templates and their phases.
    #[command(subcommand)]
    Workflow(commands::WorkflowCommand),
    /// Akh personas that AI contributions speak as.
    #[command(subcommand)]
    Akh(commands::AkhCommand),
    /// A work item's discussion: show, post, follow live.
    #[command(subcommand)]
    Thread(commands::ThreadCommand),
    /// Ask for a human decision on a work item.
    Ask(commands::AskArgs),
    /// List the decisions waiting for a human.
    Decisions(commands::DecisionsArgs),
    /// Answer (or withdraw) a decision.
    Decide(commands::DecideArgs),
    /// Your projects at a glance: counts, decisions, recent activity.
    Dashboard(client::GlobalArgs),
    /// Mailboxes: create, link to projects, screening rules, rotate.
    #[command(subcommand)]
    Mailbox(commands::MailboxCommand),
    /// Fetched mail waiting for a human: triage, held, assign, release.
    #[command(subcommand)]
    Mail(commands::MailCommand),
    /// Agent sessions on work items: start, stop, list, status.
    #[command(subcommand)]
    Session(commands::SessionCommand),
    /// Skill bundles that workflow phases declare: list, get, publish.
    #[command(subcommand)]
    Skill(commands::SkillCommand),
    /// A project's repositories: list, add, remove.
    #[command(subcommand)]
    Repo(commands::RepoCommand),
    /// The library: documents and mail attachments; list, get, upload, search.
    #[command(subcommand, name = "doc", alias = "document")]
    Document(commands::DocumentCommand),
}

/// Runs one command against the server.
pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Login(args) => client::login(args).await,
        Command::Logout(args) => client::logout(args).await,
        Command::Whoami(args) => client::whoami(args).await,
        Command::User(command) => client::user(command).await,
        Command::Role(command) => client::role(command).await,
        Command::Project(command) => commands::project(command).await,
        Command::Plan(command) => commands::plan(command).await,
        Command::WorkItem(command) => commands::work_item_command(command).await,
        Command::Workflow(command) => commands::workflow(command).await,
        Command::Akh(command) => commands::akh(command).await,
        Command::Thread(command) => commands::thread(command).await,
        Command::Ask(args) => commands::ask(args).await,
        Command::Decisions(args) => commands::decisions(args).await,
        Command::Decide(args) => commands::decide(args).await,
        Command::Dashboard(global) => commands::dashboard(global).await,
        Command::Mailbox(command) => commands::mailbox(command).await,
        Command::Mail(command) => commands::mail(command).await,
        Command::Document(command) => commands::document(command).await,
        Command::Repo(command) => commands::repo(command).await,
        Command::Skill(command) => commands::skill(command).await,
        Command::Session(command) => commands::session(command).await,
    }
}
