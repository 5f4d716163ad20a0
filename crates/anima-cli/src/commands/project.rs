//! `anima project …`: projects and their members.

use anima_proto::v1 as pb;
use anyhow::bail;
use clap::Subcommand;
use serde_json::{Value, json};

use crate::{
    client::{GlobalArgs, session_for},
    output,
};

use super::{Changes, project_id, project_status_name, role_id, time, user_id};

/// `anima project …`
#[derive(Subcommand)]
pub enum ProjectCommand {
    /// List the projects you are a member of.
    List {
        #[command(flatten)]
        global: GlobalArgs,
        /// Only projects in this status: active or archived.
        #[arg(long)]
        status: Option<String>,
    },
    /// Create a project; you become its Owner.
    Create {
        #[command(flatten)]
        global: GlobalArgs,
        /// Project name.
        name: String,
        /// What the project is about.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Show a project and its numbers.
    Show {
        #[command(flatten)]
        global: GlobalArgs,
        /// Project id or name.
        project: String,
    },
    /// Rename or re-describe a project.
    Update {
        #[command(flatten)]
        global: GlobalArgs,
        /// Project id or name.
        project: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        description: Option<String>,
    },
    /// Archive a project: it stays readable but accepts no changes.
    Archive {
        #[command(flatten)]
        global: GlobalArgs,
        /// Project id or name.
        project: String,
    },
    /// List, add and remove members.
    #[command(subcommand)]
    Members(MembersCommand),
}

/// `anima project members …`
#[derive(Subcommand)]
pub enum MembersCommand {
    /// List the members of a project and their roles.
    List {
        #[command(flatten)]
        global: GlobalArgs,
        /// Project id or name.
        project: String,
    },
    /// Add a member, or change the role of one.
    Add {
        #[command(flatten)]
        global: GlobalArgs,
        /// Project id or name.
        project: String,
        /// User id or username.
        user: String,
        /// Role id or name (Owner, Admin, Member, Viewer or a custom one).
        #[arg(long, default_value = "Member")]
        role: String,
    },
    /// Remove a member (the last Owner stays).
    Remove {
        #[command(flatten)]
        global: GlobalArgs,
        /// Project id or name.
        project: String,
        /// User id or username.
        user: String,
    },
}

fn project_json(project: &pb::Project) -> Value {
    let stats = project.stats.unwrap_or_default();
    json!({
        "id": project.id,
        "name": project.name,
        "description": project.description,
        "status": project_status_name(project.status),
        "plans": stats.plans,
        "work_items": stats.work_items,
        "open_work_items": stats.open_work_items,
        "created": time(&project.create_time),
        "updated": time(&project.update_time),
    })
}

fn project_row(project: &pb::Project) -> Vec<String> {
    let stats = project.stats.unwrap_or_default();
    vec![
        project.id.clone(),
        project.name.clone(),
        project_status_name(project.status).into(),
        stats.plans.to_string(),
        format!("{}/{}", stats.open_work_items, stats.work_items),
    ]
}

const PROJECT_HEADER: &[&str] = &["ID", "NAME", "STATUS", "PLANS", "OPEN/ITEMS"];

output::impl_row!(pb::Project, PROJECT_HEADER, project_json, project_row);

fn print_project(project: &pb::Project, json: bool) {
    output::one(json, project);
    if !json && !project.description.is_empty() {
        println!("\n{}", output::safe(&project.description));
    }
}

/// `anima project …`
pub async fn project(command: ProjectCommand) -> anyhow::Result<()> {
    match command {
        ProjectCommand::List { global, status } => {
            let session = session_for(&global).await?;
            let status = match status.as_deref() {
                None => pb::ProjectStatus::Unspecified,
                Some("active") => pb::ProjectStatus::Active,
                Some("archived") => pb::ProjectStatus::Archived,
                Some(other) => bail!("--status must be active or archived, not {other:?}"),
            } as i32;
            let projects = session
                .list(pb::ListProjectsRequest {
                    status,
                    ..Default::default()
                })
                .await?;
            output::list(global.json, &projects);
        }
        ProjectCommand::Create {
            global,
            name,
            description,
        } => {
            let session = session_for(&global).await?;
            let project = session
                .call(pb::CreateProjectRequest { name, description })
                .await?;
            print_project(&project, global.json);
        }
        ProjectCommand::Show { global, project } => {
            let session = session_for(&global).await?;
            let id = project_id(&session, &project).await?;
            let project = session.call(pb::GetProjectRequest { id }).await?;
            print_project(&project, global.json);
        }
        ProjectCommand::Update {
            global,
            project,
            name,
            description,
        } => {
            let session = session_for(&global).await?;
            let mut wanted = pb::Project {
                id: project_id(&session, &project).await?,
                ..Default::default()
            };
            let mut changes = Changes::default();
            changes.set("name", &mut wanted.name, name);
            changes.set("description", &mut wanted.description, description);
            let update_mask = changes.mask("--name or --description")?;
            let project = session
                .call(pb::UpdateProjectRequest {
                    project: Some(wanted),
                    update_mask,
                })
                .await?;
            print_project(&project, global.json);
        }
        ProjectCommand::Archive { global, project } => {
            let session = session_for(&global).await?;
            let id = project_id(&session, &project).await?;
            let project = session.call(pb::ArchiveProjectRequest { id }).await?;
            print_project(&project, global.json);
        }
        ProjectCommand::Members(command) => members(command).await?,
    }
    Ok(())
}

async fn members(command: MembersCommand) -> anyhow::Result<()> {
    let header = &["USER ID", "USERNAME", "ROLE"];
    let row = |member: &pb::ProjectMember| {
        vec![
            member.user_id.clone(),
            member.username.clone(),
            member.role_name.clone(),
        ]
    };
    let to_json = |member: &pb::ProjectMember| {
        json!({
            "project_id": member.project_id,
            "user_id": member.user_id,
            "username": member.username,
            "role_id": member.role_id,
            "role": member.role_name,
        })
    };
    match command {
        MembersCommand::List { global, project } => {
            let session = session_for(&global).await?;
            let project_id = project_id(&session, &project).await?;
            let members = session
                .list(pb::ListProjectMembersRequest {
                    project_id: project_id.clone(),
                    ..Default::default()
                })
                .await?;
            output::rows(global.json, &members, header, to_json, row);
        }
        MembersCommand::Add {
            global,
            project,
            user,
            role,
        } => {
            let session = session_for(&global).await?;
            let member = session
                .call(pb::AddProjectMemberRequest {
                    project_id: project_id(&session, &project).await?,
                    user_id: user_id(&session, &user).await?,
                    role_id: role_id(&session, &role).await?,
                })
                .await?;
            if global.json {
                output::json(&to_json(&member));
            } else {
                output::table(header, &[row(&member)]);
            }
        }
        MembersCommand::Remove {
            global,
            project,
            user,
        } => {
            let session = session_for(&global).await?;
            session
                .call(pb::RemoveProjectMemberRequest {
                    project_id: project_id(&session, &project).await?,
                    user_id: user_id(&session, &user).await?,
                })
                .await?;
            println!("removed {user} from {project}");
        }
    }
    Ok(())
}
