//! CLI commands of the planning domain: projects and members, plans, work
//! items (with `$EDITOR` editing and description history), workflows and
//! Akhs. Projects, users, roles and workflows may be named by id or name;
//! work items by id or by key (`WI-12`) with `--project`.

use std::{collections::HashMap, io::Write, process::Command, str::FromStr};

use anima_core::{
    id::parse_id,
    planning::{Priority, WorkItemKey, WorkItemStatus},
};
use anima_proto::v1::{
    self as pb, akh_service_client::AkhServiceClient, plan_service_client::PlanServiceClient,
    project_service_client::ProjectServiceClient, work_item_service_client::WorkItemServiceClient,
    workflow_service_client::WorkflowServiceClient,
};
use anima_server::convert;
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use prost_types::{FieldMask, Timestamp};
use serde_json::{Value, json};
use tonic::transport::Channel;

use crate::{
    client::{GlobalArgs, Session, all_pages},
    output,
};

impl Session {
    fn projects(&self) -> ProjectServiceClient<Channel> {
        ProjectServiceClient::new(self.channel.clone())
    }

    fn plans(&self) -> PlanServiceClient<Channel> {
        PlanServiceClient::new(self.channel.clone())
    }

    fn work_items(&self) -> WorkItemServiceClient<Channel> {
        WorkItemServiceClient::new(self.channel.clone())
    }

    fn workflows(&self) -> WorkflowServiceClient<Channel> {
        WorkflowServiceClient::new(self.channel.clone())
    }

    fn akhs(&self) -> AkhServiceClient<Channel> {
        AkhServiceClient::new(self.channel.clone())
    }
}

fn mask(paths: Vec<&str>) -> Option<FieldMask> {
    Some(FieldMask {
        paths: paths.into_iter().map(str::to_owned).collect(),
    })
}

fn time(timestamp: &Option<Timestamp>) -> String {
    timestamp
        .as_ref()
        .map(Timestamp::to_string)
        .unwrap_or_default()
}

fn is_id(raw: &str) -> bool {
    parse_id(raw, "id").is_ok()
}

/// The id of a project named by id or by its exact name.
async fn project_id(session: &Session, project: &str) -> anyhow::Result<String> {
    if is_id(project) {
        return Ok(project.to_owned());
    }
    let projects = all_pages(|page_token| async {
        let page = session
            .projects()
            .list_projects(session.request(pb::ListProjectsRequest {
                page_size: 500,
                page_token,
                status: 0,
            })?)
            .await?
            .into_inner();
        Ok((page.projects, page.next_page_token))
    })
    .await?;
    let matching: Vec<&pb::Project> = projects.iter().filter(|p| p.name == project).collect();
    match matching.as_slice() {
        [one] => Ok(one.id.clone()),
        [] => bail!("none of your projects is named {project:?}; `anima project list` shows them"),
        several => bail!(
            "several projects are named {project:?}; use an id: {}",
            several
                .iter()
                .map(|p| p.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// A work item named by id, or by key within `--project`.
async fn work_item(
    session: &Session,
    reference: &str,
    project: Option<&str>,
) -> anyhow::Result<pb::WorkItem> {
    let request = if is_id(reference) {
        pb::GetWorkItemRequest {
            id: reference.to_owned(),
            ..Default::default()
        }
    } else {
        let key: WorkItemKey = reference.parse()?;
        let project =
            project.with_context(|| format!("{key} is a key; say which project with --project"))?;
        pb::GetWorkItemRequest {
            id: String::new(),
            project_id: project_id(session, project).await?,
            key: key.to_string(),
        }
    };
    Ok(session
        .work_items()
        .get_work_item(session.request(request)?)
        .await?
        .into_inner())
}

/// A user id from an id or a username.
async fn user_id(session: &Session, user: &str) -> anyhow::Result<String> {
    if is_id(user) {
        return Ok(user.to_owned());
    }
    usernames(session)
        .await?
        .into_iter()
        .find(|(_, username)| username == user)
        .map(|(id, _)| id)
        .with_context(|| format!("no user named {user:?}"))
}

/// A role id from an id or a name (any case).
async fn role_id(session: &Session, role: &str) -> anyhow::Result<String> {
    if is_id(role) {
        return Ok(role.to_owned());
    }
    let roles = all_pages(|page_token| async {
        let page = session
            .team()
            .list_roles(session.request(pb::ListRolesRequest {
                page_size: 500,
                page_token,
            })?)
            .await?
            .into_inner();
        Ok((page.roles, page.next_page_token))
    })
    .await?;
    roles
        .into_iter()
        .find(|candidate| candidate.name.eq_ignore_ascii_case(role))
        .map(|found| found.id)
        .with_context(|| format!("no role named {role:?}; `anima role list` shows them"))
}

async fn all_workflows(session: &Session) -> anyhow::Result<Vec<pb::Workflow>> {
    all_pages(|page_token| async {
        let page = session
            .workflows()
            .list_workflows(session.request(pb::ListWorkflowsRequest {
                page_size: 500,
                page_token,
            })?)
            .await?
            .into_inner();
        Ok((page.workflows, page.next_page_token))
    })
    .await
}

/// A workflow id from an id or a name (any case).
async fn workflow_id(session: &Session, workflow: &str) -> anyhow::Result<String> {
    if is_id(workflow) {
        return Ok(workflow.to_owned());
    }
    all_workflows(session)
        .await?
        .into_iter()
        .find(|candidate| candidate.name.eq_ignore_ascii_case(workflow))
        .map(|found| found.id)
        .with_context(|| {
            format!("no workflow named {workflow:?}; `anima workflow list` shows them")
        })
}

fn status_name(raw: i32) -> &'static str {
    convert::parse_work_item_status(raw)
        .ok()
        .flatten()
        .map_or("?", WorkItemStatus::as_str)
}

fn priority_name(raw: i32) -> &'static str {
    convert::parse_priority(raw)
        .ok()
        .flatten()
        .map_or("?", Priority::as_str)
}

fn project_status_name(raw: i32) -> &'static str {
    match pb::ProjectStatus::try_from(raw) {
        Ok(pb::ProjectStatus::Active) => "active",
        Ok(pb::ProjectStatus::Archived) => "archived",
        _ => "?",
    }
}

/// Usernames by user id, to show authors by name.
async fn usernames(session: &Session) -> anyhow::Result<HashMap<String, String>> {
    let users = all_pages(|page_token| async {
        let page = session
            .team()
            .list_users(session.request(pb::ListUsersRequest {
                page_size: 500,
                page_token,
            })?)
            .await?
            .into_inner();
        Ok((page.users, page.next_page_token))
    })
    .await?;
    Ok(users
        .into_iter()
        .map(|user| (user.id, user.username))
        .collect())
}

fn actor_name(actor: &Option<pb::Actor>, usernames: &HashMap<String, String>) -> String {
    use pb::actor::Kind;
    match actor.as_ref().and_then(|actor| actor.kind.as_ref()) {
        Some(Kind::UserId(id)) => usernames
            .get(id)
            .cloned()
            .unwrap_or_else(|| format!("user {id}")),
        Some(Kind::Akh(akh)) => format!("akh {}", akh.akh_id),
        Some(Kind::Service(name)) => format!("service {name}"),
        Some(Kind::Email(address)) => address.clone(),
        None => String::new(),
    }
}

// ---------------------------------------------------------------- projects

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

fn print_project(project: &pb::Project, json: bool) {
    if json {
        output::json(&project_json(project));
    } else {
        output::table(PROJECT_HEADER, &[project_row(project)]);
        if !project.description.is_empty() {
            println!("\n{}", project.description);
        }
    }
}

/// `anima project …`
pub async fn project(command: ProjectCommand) -> anyhow::Result<()> {
    match command {
        ProjectCommand::List { global, status } => {
            let session = Session::open(&global).await?;
            let status = match status.as_deref() {
                None => pb::ProjectStatus::Unspecified,
                Some("active") => pb::ProjectStatus::Active,
                Some("archived") => pb::ProjectStatus::Archived,
                Some(other) => bail!("--status must be active or archived, not {other:?}"),
            } as i32;
            let projects = all_pages(|page_token| async {
                let page = session
                    .projects()
                    .list_projects(session.request(pb::ListProjectsRequest {
                        page_size: 500,
                        page_token,
                        status,
                    })?)
                    .await?
                    .into_inner();
                Ok((page.projects, page.next_page_token))
            })
            .await?;
            if global.json {
                output::json(&Value::Array(projects.iter().map(project_json).collect()));
            } else {
                output::table(
                    PROJECT_HEADER,
                    &projects.iter().map(project_row).collect::<Vec<_>>(),
                );
            }
        }
        ProjectCommand::Create {
            global,
            name,
            description,
        } => {
            let session = Session::open(&global).await?;
            let project = session
                .projects()
                .create_project(session.request(pb::CreateProjectRequest { name, description })?)
                .await?
                .into_inner();
            print_project(&project, global.json);
        }
        ProjectCommand::Show { global, project } => {
            let session = Session::open(&global).await?;
            let id = project_id(&session, &project).await?;
            let project = session
                .projects()
                .get_project(session.request(pb::GetProjectRequest { id })?)
                .await?
                .into_inner();
            print_project(&project, global.json);
        }
        ProjectCommand::Update {
            global,
            project,
            name,
            description,
        } => {
            let session = Session::open(&global).await?;
            let mut wanted = pb::Project {
                id: project_id(&session, &project).await?,
                ..Default::default()
            };
            let mut paths = Vec::new();
            if let Some(name) = name {
                wanted.name = name;
                paths.push("name");
            }
            if let Some(description) = description {
                wanted.description = description;
                paths.push("description");
            }
            anyhow::ensure!(
                !paths.is_empty(),
                "nothing to change; pass --name or --description"
            );
            let project = session
                .projects()
                .update_project(session.request(pb::UpdateProjectRequest {
                    project: Some(wanted),
                    update_mask: mask(paths),
                })?)
                .await?
                .into_inner();
            print_project(&project, global.json);
        }
        ProjectCommand::Archive { global, project } => {
            let session = Session::open(&global).await?;
            let id = project_id(&session, &project).await?;
            let project = session
                .projects()
                .archive_project(session.request(pb::ArchiveProjectRequest { id })?)
                .await?
                .into_inner();
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
            let session = Session::open(&global).await?;
            let project_id = project_id(&session, &project).await?;
            let members = all_pages(|page_token| async {
                let page = session
                    .projects()
                    .list_project_members(session.request(pb::ListProjectMembersRequest {
                        project_id: project_id.clone(),
                        page_size: 500,
                        page_token,
                    })?)
                    .await?
                    .into_inner();
                Ok((page.members, page.next_page_token))
            })
            .await?;
            if global.json {
                output::json(&Value::Array(members.iter().map(to_json).collect()));
            } else {
                output::table(header, &members.iter().map(row).collect::<Vec<_>>());
            }
        }
        MembersCommand::Add {
            global,
            project,
            user,
            role,
        } => {
            let session = Session::open(&global).await?;
            let member = session
                .projects()
                .add_project_member(session.request(pb::AddProjectMemberRequest {
                    project_id: project_id(&session, &project).await?,
                    user_id: user_id(&session, &user).await?,
                    role_id: role_id(&session, &role).await?,
                })?)
                .await?
                .into_inner();
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
            let session = Session::open(&global).await?;
            session
                .projects()
                .remove_project_member(session.request(pb::RemoveProjectMemberRequest {
                    project_id: project_id(&session, &project).await?,
                    user_id: user_id(&session, &user).await?,
                })?)
                .await?;
            println!("removed {user} from {project}");
        }
    }
    Ok(())
}

// ------------------------------------------------------------------- plans

/// `anima plan …`
#[derive(Subcommand)]
pub enum PlanCommand {
    /// List the plans of a project with their progress.
    List {
        #[command(flatten)]
        global: GlobalArgs,
        /// Project id or name.
        #[arg(long, short, env = "ANIMA_PROJECT")]
        project: String,
    },
    /// Create a plan.
    Create {
        #[command(flatten)]
        global: GlobalArgs,
        /// Project id or name.
        #[arg(long, short, env = "ANIMA_PROJECT")]
        project: String,
        /// Plan title.
        title: String,
        #[arg(long, default_value = "")]
        description: String,
        /// Workflow id or name whose phases break down the progress
        /// [default: Standard].
        #[arg(long)]
        workflow: Option<String>,
    },
    /// Show a plan and its progress per phase.
    Show {
        #[command(flatten)]
        global: GlobalArgs,
        /// Plan id.
        plan: String,
    },
    /// Change a plan.
    Update {
        #[command(flatten)]
        global: GlobalArgs,
        /// Plan id.
        plan: String,
        #[arg(long)]
        title: Option<String>,
        #[arg(long)]
        description: Option<String>,
        /// Workflow id or name.
        #[arg(long)]
        workflow: Option<String>,
    },
    /// Delete a plan; its work items stay, without a plan.
    Delete {
        #[command(flatten)]
        global: GlobalArgs,
        /// Plan id.
        plan: String,
    },
}

fn plan_json(plan: &pb::Plan) -> Value {
    let progress = plan.progress.clone().unwrap_or_default();
    json!({
        "id": plan.id,
        "project_id": plan.project_id,
        "title": plan.title,
        "description": plan.description,
        "workflow_id": plan.workflow_id,
        "total": progress.total,
        "done": progress.done,
        "share_done": progress.share_done,
        "phases": progress.phases.iter().map(|phase| json!({
            "id": phase.phase_id,
            "name": phase.phase_name,
            "total": phase.total,
            "done": phase.done,
        })).collect::<Vec<_>>(),
        "created": time(&plan.create_time),
    })
}

fn plan_row(plan: &pb::Plan) -> Vec<String> {
    let progress = plan.progress.clone().unwrap_or_default();
    vec![
        plan.id.clone(),
        plan.title.clone(),
        format!("{}/{}", progress.done, progress.total),
        format!("{:.0}%", progress.share_done * 100.0),
    ]
}

const PLAN_HEADER: &[&str] = &["ID", "TITLE", "DONE", "SHARE"];

fn print_plan(plan: &pb::Plan, json: bool) {
    if json {
        output::json(&plan_json(plan));
        return;
    }
    output::table(PLAN_HEADER, &[plan_row(plan)]);
    let phases = plan.progress.clone().unwrap_or_default().phases;
    if !phases.is_empty() {
        println!();
        output::table(
            &["PHASE", "DONE", "ITEMS"],
            &phases
                .iter()
                .map(|phase| {
                    vec![
                        phase.phase_name.clone(),
                        phase.done.to_string(),
                        phase.total.to_string(),
                    ]
                })
                .collect::<Vec<_>>(),
        );
    }
    if !plan.description.is_empty() {
        println!("\n{}", plan.description);
    }
}

/// `anima plan …`
pub async fn plan(command: PlanCommand) -> anyhow::Result<()> {
    match command {
        PlanCommand::List { global, project } => {
            let session = Session::open(&global).await?;
            let project_id = project_id(&session, &project).await?;
            let plans = all_pages(|page_token| async {
                let page = session
                    .plans()
                    .list_plans(session.request(pb::ListPlansRequest {
                        project_id: project_id.clone(),
                        page_size: 500,
                        page_token,
                    })?)
                    .await?
                    .into_inner();
                Ok((page.plans, page.next_page_token))
            })
            .await?;
            if global.json {
                output::json(&Value::Array(plans.iter().map(plan_json).collect()));
            } else {
                output::table(PLAN_HEADER, &plans.iter().map(plan_row).collect::<Vec<_>>());
            }
        }
        PlanCommand::Create {
            global,
            project,
            title,
            description,
            workflow,
        } => {
            let session = Session::open(&global).await?;
            let workflow_id = match workflow {
                Some(workflow) => workflow_id(&session, &workflow).await?,
                None => String::new(),
            };
            let plan = session
                .plans()
                .create_plan(session.request(pb::CreatePlanRequest {
                    project_id: project_id(&session, &project).await?,
                    title,
                    description,
                    workflow_id,
                })?)
                .await?
                .into_inner();
            print_plan(&plan, global.json);
        }
        PlanCommand::Show { global, plan } => {
            let session = Session::open(&global).await?;
            let plan = session
                .plans()
                .get_plan(session.request(pb::GetPlanRequest { id: plan })?)
                .await?
                .into_inner();
            print_plan(&plan, global.json);
        }
        PlanCommand::Update {
            global,
            plan,
            title,
            description,
            workflow,
        } => {
            let session = Session::open(&global).await?;
            let mut wanted = pb::Plan {
                id: plan,
                ..Default::default()
            };
            let mut paths = Vec::new();
            if let Some(title) = title {
                wanted.title = title;
                paths.push("title");
            }
            if let Some(description) = description {
                wanted.description = description;
                paths.push("description");
            }
            if let Some(workflow) = workflow {
                wanted.workflow_id = workflow_id(&session, &workflow).await?;
                paths.push("workflow_id");
            }
            anyhow::ensure!(
                !paths.is_empty(),
                "nothing to change; pass --title, --description or --workflow"
            );
            let plan = session
                .plans()
                .update_plan(session.request(pb::UpdatePlanRequest {
                    plan: Some(wanted),
                    update_mask: mask(paths),
                })?)
                .await?
                .into_inner();
            print_plan(&plan, global.json);
        }
        PlanCommand::Delete { global, plan } => {
            let session = Session::open(&global).await?;
            session
                .plans()
                .delete_plan(session.request(pb::DeletePlanRequest { id: plan.clone() })?)
                .await?;
            println!("deleted plan {plan}");
        }
    }
    Ok(())
}

// -------------------------------------------------------------- work items

/// How a work item is named on the command line.
#[derive(Args, Clone)]
pub struct ItemRef {
    /// Work item id, or key such as WI-12 (with --project).
    item: String,
    /// Project id or name, for keys.
    #[arg(long, short, env = "ANIMA_PROJECT")]
    project: Option<String>,
}

/// `anima workitem …`
#[derive(Subcommand)]
pub enum WorkItemCommand {
    /// List the work items of a project in key order.
    List {
        #[command(flatten)]
        global: GlobalArgs,
        /// Project id or name.
        #[arg(long, short, env = "ANIMA_PROJECT")]
        project: String,
        /// Only items of this plan (id).
        #[arg(long)]
        plan: Option<String>,
        /// Only items in this status: open, in_progress, blocked, done, cancelled.
        #[arg(long, value_parser = WorkItemStatus::from_str)]
        status: Option<WorkItemStatus>,
    },
    /// Create a work item; it gets the project's next key.
    Create {
        #[command(flatten)]
        global: GlobalArgs,
        /// Project id or name.
        #[arg(long, short, env = "ANIMA_PROJECT")]
        project: String,
        /// Title.
        title: String,
        /// First description.
        #[arg(long, default_value = "")]
        description: String,
        /// Plan id.
        #[arg(long)]
        plan: Option<String>,
        /// low, medium, high or urgent [default: medium].
        #[arg(long, value_parser = Priority::from_str)]
        priority: Option<Priority>,
        /// Workflow id or name [default: the plan's, else Standard].
        #[arg(long)]
        workflow: Option<String>,
    },
    /// Show a work item with its description.
    Show {
        #[command(flatten)]
        global: GlobalArgs,
        #[command(flatten)]
        item: ItemRef,
    },
    /// Change a work item, or edit its description in $EDITOR.
    ///
    /// Without any option, opens the description in $VISUAL or $EDITOR
    /// like `git commit` does; saving it unchanged changes nothing. If
    /// someone else changed the description meanwhile, the edit is refused
    /// with STALE_REVISION instead of overwriting theirs.
    Edit {
        #[command(flatten)]
        global: GlobalArgs,
        #[command(flatten)]
        item: ItemRef,
        /// New description, instead of opening an editor.
        #[arg(long)]
        description: Option<String>,
        /// New title.
        #[arg(long)]
        title: Option<String>,
        /// open, in_progress, blocked, done or cancelled.
        #[arg(long, value_parser = WorkItemStatus::from_str)]
        status: Option<WorkItemStatus>,
        /// low, medium, high or urgent.
        #[arg(long, value_parser = Priority::from_str)]
        priority: Option<Priority>,
    },
    /// Move a work item to another phase of its workflow.
    Move {
        #[command(flatten)]
        global: GlobalArgs,
        #[command(flatten)]
        item: ItemRef,
        /// Phase id, e.g. implementation.
        phase: String,
    },
    /// List the description revisions, oldest first.
    Revisions {
        #[command(flatten)]
        global: GlobalArgs,
        #[command(flatten)]
        item: ItemRef,
    },
    /// Restore an earlier description as a new revision.
    Revert {
        #[command(flatten)]
        global: GlobalArgs,
        #[command(flatten)]
        item: ItemRef,
        /// Revision number (as `revisions` lists it) or id.
        revision: String,
    },
    /// Delete a work item and its history.
    Delete {
        #[command(flatten)]
        global: GlobalArgs,
        #[command(flatten)]
        item: ItemRef,
    },
}

fn work_item_json(item: &pb::WorkItem) -> Value {
    json!({
        "id": item.id,
        "key": item.key,
        "project_id": item.project_id,
        "plan_id": item.plan_id,
        "title": item.title,
        "status": status_name(item.status),
        "priority": priority_name(item.priority),
        "workflow_id": item.workflow_id,
        "phase": item.phase_id,
        "phase_changed_by": actor_name(&item.phase_changed_by, &HashMap::new()),
        "phase_changed": time(&item.phase_change_time),
        "description": item.description,
        "description_revision_id": item.description_revision_id,
        "capabilities": item.capabilities.len(),
        "created": time(&item.create_time),
        "updated": time(&item.update_time),
    })
}

fn work_item_row(item: &pb::WorkItem) -> Vec<String> {
    vec![
        item.key.clone(),
        item.title.clone(),
        status_name(item.status).into(),
        priority_name(item.priority).into(),
        item.phase_id.clone(),
    ]
}

const WORK_ITEM_HEADER: &[&str] = &["KEY", "TITLE", "STATUS", "PRIORITY", "PHASE"];

fn print_work_item(item: &pb::WorkItem, json: bool) {
    if json {
        output::json(&work_item_json(item));
        return;
    }
    output::table(WORK_ITEM_HEADER, &[work_item_row(item)]);
    println!("\nid: {}", item.id);
    if !item.description.is_empty() {
        println!("\n{}", item.description);
    }
}

/// Opens `text` in the user's editor and returns what they saved. The
/// editor runs through `sh` like git runs it, so `EDITOR="code --wait"`
/// works.
fn edit_in_editor(text: &str) -> anyhow::Result<String> {
    let editor = std::env::var("VISUAL")
        .or_else(|_| std::env::var("EDITOR"))
        .unwrap_or_else(|_| "vi".into());
    let mut file = tempfile::Builder::new()
        .prefix("anima-description-")
        .suffix(".md")
        .tempfile()
        .context("creating a file for the editor")?;
    file.write_all(text.as_bytes())?;
    file.flush()?;
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("sh")
        .arg(file.path())
        .status()
        .with_context(|| format!("running the editor {editor:?}"))?;
    anyhow::ensure!(
        status.success(),
        "the editor {editor:?} failed ({status}); nothing changed"
    );
    let mut edited = std::fs::read_to_string(file.path()).context("reading the edited file")?;
    // Editors end files with a newline; that alone is not an edit.
    if !text.ends_with('\n') && edited.ends_with('\n') {
        edited.pop();
    }
    Ok(edited)
}

/// `anima workitem …`
pub async fn work_item_command(command: WorkItemCommand) -> anyhow::Result<()> {
    match command {
        WorkItemCommand::List {
            global,
            project,
            plan,
            status,
        } => {
            let session = Session::open(&global).await?;
            let project_id = project_id(&session, &project).await?;
            let status = status.map_or(0, |s| convert::work_item_status(s) as i32);
            let items = all_pages(|page_token| async {
                let page = session
                    .work_items()
                    .list_work_items(session.request(pb::ListWorkItemsRequest {
                        project_id: project_id.clone(),
                        page_size: 500,
                        page_token,
                        plan_id: plan.clone().unwrap_or_default(),
                        status,
                    })?)
                    .await?
                    .into_inner();
                Ok((page.work_items, page.next_page_token))
            })
            .await?;
            if global.json {
                output::json(&Value::Array(items.iter().map(work_item_json).collect()));
            } else {
                output::table(
                    WORK_ITEM_HEADER,
                    &items.iter().map(work_item_row).collect::<Vec<_>>(),
                );
            }
        }
        WorkItemCommand::Create {
            global,
            project,
            title,
            description,
            plan,
            priority,
            workflow,
        } => {
            let session = Session::open(&global).await?;
            let workflow_id = match workflow {
                Some(workflow) => workflow_id(&session, &workflow).await?,
                None => String::new(),
            };
            let item = session
                .work_items()
                .create_work_item(session.request(pb::CreateWorkItemRequest {
                    project_id: project_id(&session, &project).await?,
                    plan_id: plan.unwrap_or_default(),
                    title,
                    description,
                    priority: priority.map_or(0, |p| convert::priority(p) as i32),
                    workflow_id,
                })?)
                .await?
                .into_inner();
            print_work_item(&item, global.json);
        }
        WorkItemCommand::Show { global, item } => {
            let session = Session::open(&global).await?;
            let item = work_item(&session, &item.item, item.project.as_deref()).await?;
            print_work_item(&item, global.json);
        }
        WorkItemCommand::Edit {
            global,
            item,
            description,
            title,
            status,
            priority,
        } => {
            let session = Session::open(&global).await?;
            let current = work_item(&session, &item.item, item.project.as_deref()).await?;
            let use_editor =
                description.is_none() && title.is_none() && status.is_none() && priority.is_none();
            let description = if use_editor {
                let edited = edit_in_editor(&current.description)?;
                if edited == current.description {
                    println!("{}: description unchanged", current.key);
                    return Ok(());
                }
                Some(edited)
            } else {
                description
            };
            let mut wanted = pb::WorkItem {
                id: current.id.clone(),
                ..Default::default()
            };
            let mut paths = Vec::new();
            if let Some(description) = description {
                wanted.description = description;
                paths.push("description");
            }
            if let Some(title) = title {
                wanted.title = title;
                paths.push("title");
            }
            if let Some(status) = status {
                wanted.status = convert::work_item_status(status) as i32;
                paths.push("status");
            }
            if let Some(priority) = priority {
                wanted.priority = convert::priority(priority) as i32;
                paths.push("priority");
            }
            let item = session
                .work_items()
                .update_work_item(session.request(pb::UpdateWorkItemRequest {
                    work_item: Some(wanted),
                    update_mask: mask(paths),
                    // The revision shown to the editor: if someone saved
                    // meanwhile, the server refuses with STALE_REVISION.
                    base_revision_id: current.description_revision_id,
                })?)
                .await?
                .into_inner();
            print_work_item(&item, global.json);
        }
        WorkItemCommand::Move {
            global,
            item,
            phase,
        } => {
            let session = Session::open(&global).await?;
            let current = work_item(&session, &item.item, item.project.as_deref()).await?;
            let item = session
                .work_items()
                .update_work_item(session.request(pb::UpdateWorkItemRequest {
                    work_item: Some(pb::WorkItem {
                        id: current.id,
                        phase_id: phase,
                        ..Default::default()
                    }),
                    update_mask: mask(vec!["phase_id"]),
                    base_revision_id: String::new(),
                })?)
                .await?
                .into_inner();
            print_work_item(&item, global.json);
        }
        WorkItemCommand::Revisions { global, item } => {
            let session = Session::open(&global).await?;
            let current = work_item(&session, &item.item, item.project.as_deref()).await?;
            let revisions = all_revisions(&session, &current.id).await?;
            let usernames = usernames(&session).await?;
            if global.json {
                output::json(&Value::Array(
                    revisions
                        .iter()
                        .map(|revision| {
                            json!({
                                "id": revision.id,
                                "number": revision.number,
                                "cause": cause_name(revision.cause),
                                "author": actor_name(&revision.author, &usernames),
                                "created": time(&revision.create_time),
                                "reverted_from": revision.reverted_from_revision_id,
                                "current": revision.id == current.description_revision_id,
                                "text": revision.text,
                            })
                        })
                        .collect(),
                ));
            } else {
                let rows: Vec<Vec<String>> = revisions
                    .iter()
                    .map(|revision| {
                        let first_line = revision.text.lines().next().unwrap_or_default();
                        vec![
                            if revision.id == current.description_revision_id {
                                format!("*{}", revision.number)
                            } else {
                                revision.number.to_string()
                            },
                            cause_name(revision.cause).into(),
                            actor_name(&revision.author, &usernames),
                            time(&revision.create_time),
                            first_line.chars().take(60).collect(),
                        ]
                    })
                    .collect();
                output::table(&["REV", "CAUSE", "AUTHOR", "TIME", "TEXT"], &rows);
            }
        }
        WorkItemCommand::Revert {
            global,
            item,
            revision,
        } => {
            let session = Session::open(&global).await?;
            let current = work_item(&session, &item.item, item.project.as_deref()).await?;
            let revision_id = if is_id(&revision) {
                revision
            } else {
                let number: i64 = revision.parse().with_context(|| {
                    format!("{revision:?} is neither a revision number nor an id")
                })?;
                all_revisions(&session, &current.id)
                    .await?
                    .into_iter()
                    .find(|candidate| candidate.number == number)
                    .map(|found| found.id)
                    .with_context(|| format!("{} has no revision {number}", current.key))?
            };
            let item = session
                .work_items()
                .revert_description(session.request(pb::RevertDescriptionRequest {
                    work_item_id: current.id,
                    revision_id,
                    base_revision_id: current.description_revision_id,
                })?)
                .await?
                .into_inner();
            print_work_item(&item, global.json);
        }
        WorkItemCommand::Delete { global, item } => {
            let session = Session::open(&global).await?;
            let current = work_item(&session, &item.item, item.project.as_deref()).await?;
            session
                .work_items()
                .delete_work_item(session.request(pb::DeleteWorkItemRequest {
                    id: current.id.clone(),
                })?)
                .await?;
            println!("deleted {} ({})", current.key, current.id);
        }
    }
    Ok(())
}

fn cause_name(raw: i32) -> &'static str {
    match pb::RevisionCause::try_from(raw) {
        Ok(pb::RevisionCause::Create) => "create",
        Ok(pb::RevisionCause::Edit) => "edit",
        Ok(pb::RevisionCause::Revert) => "revert",
        Ok(pb::RevisionCause::AiPromotion) => "ai_promotion",
        _ => "?",
    }
}

async fn all_revisions(
    session: &Session,
    work_item_id: &str,
) -> anyhow::Result<Vec<pb::DescriptionRevision>> {
    all_pages(|page_token| async {
        let page = session
            .work_items()
            .get_description_revisions(session.request(pb::GetDescriptionRevisionsRequest {
                work_item_id: work_item_id.to_owned(),
                page_size: 500,
                page_token,
            })?)
            .await?
            .into_inner();
        Ok((page.revisions, page.next_page_token))
    })
    .await
}

// --------------------------------------------------------------- workflows

/// `anima workflow …`
#[derive(Subcommand)]
pub enum WorkflowCommand {
    /// List the built-in and custom workflows.
    List {
        #[command(flatten)]
        global: GlobalArgs,
    },
    /// Show a workflow's phases and the skills each requires.
    Show {
        #[command(flatten)]
        global: GlobalArgs,
        /// Workflow id or name.
        workflow: String,
    },
    /// Create a custom workflow (server administrators).
    Create {
        #[command(flatten)]
        global: GlobalArgs,
        /// Its name.
        name: String,
        #[arg(long, default_value = "")]
        description: String,
        /// A phase as `Name` or `Name:skill,skill`; repeat in order.
        #[arg(long = "phase")]
        phases: Vec<String>,
        /// Copy the phases of this workflow (id or name) instead.
        #[arg(long, conflicts_with = "phases")]
        copy_from: Option<String>,
    },
    /// Delete a custom workflow nothing uses (server administrators).
    Delete {
        #[command(flatten)]
        global: GlobalArgs,
        /// Workflow id or name.
        workflow: String,
    },
}

fn workflow_json(workflow: &pb::Workflow) -> Value {
    json!({
        "id": workflow.id,
        "name": workflow.name,
        "description": workflow.description,
        "builtin": workflow.builtin,
        "phases": workflow.phases.iter().map(|phase| json!({
            "id": phase.id,
            "name": phase.name,
            "required_skills": phase.required_skills.iter().map(|s| s.name.clone()).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

fn phases_line(workflow: &pb::Workflow) -> String {
    workflow
        .phases
        .iter()
        .map(|phase| phase.name.as_str())
        .collect::<Vec<_>>()
        .join(" → ")
}

fn print_workflow(workflow: &pb::Workflow, json: bool) {
    if json {
        output::json(&workflow_json(workflow));
        return;
    }
    println!(
        "{} ({}){}",
        workflow.name,
        workflow.id,
        if workflow.builtin { ", built-in" } else { "" }
    );
    if !workflow.description.is_empty() {
        println!("{}", workflow.description);
    }
    println!();
    output::table(
        &["PHASE ID", "NAME", "REQUIRED SKILLS"],
        &workflow
            .phases
            .iter()
            .map(|phase| {
                vec![
                    phase.id.clone(),
                    phase.name.clone(),
                    phase
                        .required_skills
                        .iter()
                        .map(|skill| skill.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                ]
            })
            .collect::<Vec<_>>(),
    );
}

fn parse_phase(raw: &str) -> pb::Phase {
    let (name, skills) = raw.split_once(':').unwrap_or((raw, ""));
    pb::Phase {
        id: String::new(),
        name: name.trim().to_owned(),
        required_skills: skills
            .split(',')
            .map(str::trim)
            .filter(|skill| !skill.is_empty())
            .map(|skill| pb::SkillRef {
                name: skill.to_owned(),
                version: String::new(),
            })
            .collect(),
    }
}

/// `anima workflow …`
pub async fn workflow(command: WorkflowCommand) -> anyhow::Result<()> {
    match command {
        WorkflowCommand::List { global } => {
            let session = Session::open(&global).await?;
            let workflows = all_workflows(&session).await?;
            if global.json {
                output::json(&Value::Array(workflows.iter().map(workflow_json).collect()));
            } else {
                output::table(
                    &["ID", "NAME", "BUILTIN", "PHASES"],
                    &workflows
                        .iter()
                        .map(|workflow| {
                            vec![
                                workflow.id.clone(),
                                workflow.name.clone(),
                                if workflow.builtin { "yes" } else { "" }.into(),
                                phases_line(workflow),
                            ]
                        })
                        .collect::<Vec<_>>(),
                );
            }
        }
        WorkflowCommand::Show { global, workflow } => {
            let session = Session::open(&global).await?;
            let id = workflow_id(&session, &workflow).await?;
            let workflow = session
                .workflows()
                .get_workflow(session.request(pb::GetWorkflowRequest { id })?)
                .await?
                .into_inner();
            print_workflow(&workflow, global.json);
        }
        WorkflowCommand::Create {
            global,
            name,
            description,
            phases,
            copy_from,
        } => {
            let session = Session::open(&global).await?;
            let copy_from_id = match copy_from {
                Some(source) => workflow_id(&session, &source).await?,
                None => String::new(),
            };
            let workflow = session
                .workflows()
                .create_workflow(session.request(pb::CreateWorkflowRequest {
                    name,
                    description,
                    phases: phases.iter().map(|raw| parse_phase(raw)).collect(),
                    copy_from_id,
                })?)
                .await?
                .into_inner();
            print_workflow(&workflow, global.json);
        }
        WorkflowCommand::Delete { global, workflow } => {
            let session = Session::open(&global).await?;
            let id = workflow_id(&session, &workflow).await?;
            session
                .workflows()
                .delete_workflow(session.request(pb::DeleteWorkflowRequest { id: id.clone() })?)
                .await?;
            println!("deleted workflow {id}");
        }
    }
    Ok(())
}

// -------------------------------------------------------------------- akhs

/// `anima akh …`
#[derive(Subcommand)]
pub enum AkhCommand {
    /// List the Akh personas.
    List {
        #[command(flatten)]
        global: GlobalArgs,
    },
    /// Create an Akh (server administrators).
    Create {
        #[command(flatten)]
        global: GlobalArgs,
        /// Unique name.
        name: String,
        /// Its voice: how it writes.
        #[arg(long, default_value = "")]
        description: String,
        /// Avatar colour as #rrggbb.
        #[arg(long, default_value = "")]
        color: String,
    },
    /// Change an Akh (server administrators).
    Update {
        #[command(flatten)]
        global: GlobalArgs,
        /// Akh id.
        akh: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        description: Option<String>,
        #[arg(long)]
        color: Option<String>,
    },
    /// Delete an Akh (server administrators).
    Delete {
        #[command(flatten)]
        global: GlobalArgs,
        /// Akh id.
        akh: String,
    },
}

fn akh_json(akh: &pb::Akh) -> Value {
    json!({
        "id": akh.id,
        "name": akh.name,
        "description": akh.description,
        "avatar_color": akh.avatar_color,
    })
}

fn akh_row(akh: &pb::Akh) -> Vec<String> {
    vec![
        akh.id.clone(),
        akh.name.clone(),
        akh.avatar_color.clone(),
        akh.description.lines().next().unwrap_or_default().into(),
    ]
}

const AKH_HEADER: &[&str] = &["ID", "NAME", "COLOR", "VOICE"];

fn print_akh(akh: &pb::Akh, json: bool) {
    if json {
        output::json(&akh_json(akh));
    } else {
        output::table(AKH_HEADER, &[akh_row(akh)]);
    }
}

/// `anima akh …`
pub async fn akh(command: AkhCommand) -> anyhow::Result<()> {
    match command {
        AkhCommand::List { global } => {
            let session = Session::open(&global).await?;
            let akhs = all_pages(|page_token| async {
                let page = session
                    .akhs()
                    .list_akhs(session.request(pb::ListAkhsRequest {
                        page_size: 500,
                        page_token,
                    })?)
                    .await?
                    .into_inner();
                Ok((page.akhs, page.next_page_token))
            })
            .await?;
            if global.json {
                output::json(&Value::Array(akhs.iter().map(akh_json).collect()));
            } else {
                output::table(AKH_HEADER, &akhs.iter().map(akh_row).collect::<Vec<_>>());
            }
        }
        AkhCommand::Create {
            global,
            name,
            description,
            color,
        } => {
            let session = Session::open(&global).await?;
            let akh = session
                .akhs()
                .create_akh(session.request(pb::CreateAkhRequest {
                    name,
                    description,
                    avatar_color: color,
                })?)
                .await?
                .into_inner();
            print_akh(&akh, global.json);
        }
        AkhCommand::Update {
            global,
            akh,
            name,
            description,
            color,
        } => {
            let session = Session::open(&global).await?;
            let mut wanted = pb::Akh {
                id: akh,
                ..Default::default()
            };
            let mut paths = Vec::new();
            if let Some(name) = name {
                wanted.name = name;
                paths.push("name");
            }
            if let Some(description) = description {
                wanted.description = description;
                paths.push("description");
            }
            if let Some(color) = color {
                wanted.avatar_color = color;
                paths.push("avatar_color");
            }
            anyhow::ensure!(
                !paths.is_empty(),
                "nothing to change; pass --name, --description or --color"
            );
            let akh = session
                .akhs()
                .update_akh(session.request(pb::UpdateAkhRequest {
                    akh: Some(wanted),
                    update_mask: mask(paths),
                })?)
                .await?
                .into_inner();
            print_akh(&akh, global.json);
        }
        AkhCommand::Delete { global, akh } => {
            let session = Session::open(&global).await?;
            session
                .akhs()
                .delete_akh(session.request(pb::DeleteAkhRequest { id: akh.clone() })?)
                .await?;
            println!("deleted Akh {akh}");
        }
    }
    Ok(())
}
