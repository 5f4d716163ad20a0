//! `anima repo …`: a project's repositories.

use anima_proto::v1 as pb;
use clap::{Subcommand, ValueEnum};
use serde_json::{Value, json};

use crate::{
    client::{GlobalArgs, session_for},
    output,
};

use super::{project_id, time};

/// The forge a repository is on, as the command line names it.
#[derive(Clone, Copy, ValueEnum)]
pub enum Forge {
    /// GitHub (github.com or GitHub Enterprise).
    Github,
    /// Gitea or Forgejo.
    Gitea,
    /// GitLab.
    Gitlab,
    /// A plain git server (no API to read).
    Git,
}

impl Forge {
    fn wire(self) -> pb::ForgeType {
        match self {
            Forge::Github => pb::ForgeType::Github,
            Forge::Gitea => pb::ForgeType::Gitea,
            Forge::Gitlab => pb::ForgeType::Gitlab,
            Forge::Git => pb::ForgeType::PlainGit,
        }
    }
}

fn forge_name(raw: i32) -> &'static str {
    match pb::ForgeType::try_from(raw) {
        Ok(pb::ForgeType::Github) => "github",
        Ok(pb::ForgeType::Gitea) => "gitea",
        Ok(pb::ForgeType::Gitlab) => "gitlab",
        Ok(pb::ForgeType::PlainGit) => "git",
        _ => "unknown",
    }
}

/// `anima repo …`
#[derive(Subcommand)]
pub enum RepoCommand {
    /// List a project's repositories.
    List {
        #[command(flatten)]
        global: GlobalArgs,
        /// Project id or name.
        #[arg(long, short, env = "ANIMA_PROJECT")]
        project: String,
    },
    /// Add a repository to a project (owners and admins).
    Add {
        #[command(flatten)]
        global: GlobalArgs,
        /// Project id or name.
        #[arg(long, short, env = "ANIMA_PROJECT")]
        project: String,
        /// The URL it is cloned from: https://HOST/OWNER/NAME,
        /// ssh://git@HOST/OWNER/NAME or git@HOST:OWNER/NAME.
        remote_url: String,
        /// The forge it is on.
        #[arg(long, value_enum)]
        forge: Forge,
        /// Its name in the project [default: the repository's name].
        #[arg(long, default_value = "")]
        name: String,
        /// The branch work starts from [default: main].
        #[arg(long, default_value = "")]
        branch: String,
        /// A self-hosted forge's web root when it is served under a path,
        /// e.g. https://git.example/gitea.
        #[arg(long, default_value = "")]
        base_url: String,
        /// The secret that reads it, as STORE://KEY from the server's
        /// secret stores (never the token itself).
        #[arg(long, default_value = "")]
        credential: String,
    },
    /// Remove a repository from its project (owners and admins).
    Remove {
        #[command(flatten)]
        global: GlobalArgs,
        /// Repository id.
        id: String,
    },
}

fn repo_json(repository: &pb::Repository) -> Value {
    json!({
        "id": repository.id,
        "project_id": repository.project_id,
        "name": repository.name,
        "forge": forge_name(repository.forge),
        "remote_url": repository.remote_url,
        "base_url": repository.base_url,
        "owner": repository.owner,
        "repo_name": repository.repo_name,
        "default_branch": repository.default_branch,
        "credential": repository.credential,
        "created": time(&repository.create_time),
    })
}

fn repo_row(repository: &pb::Repository) -> Vec<String> {
    vec![
        repository.id.clone(),
        repository.name.clone(),
        forge_name(repository.forge).into(),
        repository.remote_url.clone(),
        repository.default_branch.clone(),
        match repository.credential.as_str() {
            "" => "-".into(),
            credential => credential.into(),
        },
    ]
}

const REPO_HEADER: &[&str] = &["ID", "NAME", "FORGE", "REMOTE", "BRANCH", "CREDENTIAL"];

output::impl_row!(pb::Repository, REPO_HEADER, repo_json, repo_row);

/// `anima repo …`
pub async fn repo(command: RepoCommand) -> anyhow::Result<()> {
    match command {
        RepoCommand::List { global, project } => {
            let session = session_for(&global).await?;
            let project_id = project_id(&session, &project).await?;
            let repositories = session
                .list(pb::ListRepositoriesRequest {
                    project_id,
                    ..Default::default()
                })
                .await?;
            output::list(global.json, &repositories);
        }
        RepoCommand::Add {
            global,
            project,
            remote_url,
            forge,
            name,
            branch,
            base_url,
            credential,
        } => {
            let session = session_for(&global).await?;
            let project_id = project_id(&session, &project).await?;
            let repository = session
                .call(pb::AddRepositoryRequest {
                    project_id,
                    name,
                    forge: forge.wire() as i32,
                    remote_url,
                    default_branch: branch,
                    base_url,
                    credential,
                })
                .await?;
            output::one(global.json, &repository);
        }
        RepoCommand::Remove { global, id } => {
            let session = session_for(&global).await?;
            session
                .call(pb::RemoveRepositoryRequest { id: id.clone() })
                .await?;
            println!("removed repository {id}");
        }
    }
    Ok(())
}
