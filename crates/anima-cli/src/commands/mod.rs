//! CLI commands that talk to the API: projects and members, plans, work
//! items (with `$EDITOR` editing and description history), workflows,
//! Akhs, threads, mailboxes and their mail, the library's documents. Projects, users, roles and workflows may be named by id or name;
//! work items by id or by key (`WI-12`) with `--project`.

use std::collections::HashMap;

use anima_core::{
    id::parse_id,
    planning::{Priority, WorkItemKey, WorkItemStatus},
};
use anima_proto::convert;
use anima_proto::v1::{self as pb};
use anyhow::{Context, bail};
use clap::Args;
use prost_types::{FieldMask, Timestamp};

mod akh;
mod document;
mod mail;
mod plan;
mod project;
mod repo;
mod session;
mod skill;
mod thread;
mod work_item;
mod workflow;

pub use akh::{AkhCommand, akh};
pub use document::{DocumentCommand, document};
pub use mail::{MailCommand, MailboxCommand, mail, mailbox};
pub use plan::{PlanCommand, plan};
pub use project::{ProjectCommand, project};
pub use repo::{RepoCommand, repo};
pub use session::{SessionCommand, session};
pub use skill::{SkillCommand, skill};
pub use thread::{
    AskArgs, DecideArgs, DecisionsArgs, ThreadCommand, ask, dashboard, decide, decisions, thread,
};
pub use work_item::{WorkItemCommand, work_item_command};
pub use workflow::{WorkflowCommand, workflow};

use anima_client::{Services, Session};

fn mask(paths: Vec<&str>) -> Option<FieldMask> {
    Some(FieldMask {
        paths: paths.into_iter().map(str::to_owned).collect(),
    })
}

/// The fields an `update` command was given, collected into the record it
/// sends and the `update_mask` that names them, so a field left out is
/// never overwritten.
#[derive(Default)]
pub(crate) struct Changes(Vec<String>);

impl Changes {
    /// Writes `value` into `field` and names `path` in the mask, when the
    /// flag was given.
    pub(crate) fn set<T>(&mut self, path: &str, field: &mut T, value: Option<T>) {
        if let Some(value) = value {
            *field = value;
            self.0.push(path.to_owned());
        }
    }

    /// Names `path` in the mask without writing a field (for a field the
    /// caller fills in itself).
    pub(crate) fn name(&mut self, path: &str) {
        self.0.push(path.to_owned());
    }

    /// The mask; an error listing `flags` when no flag was given, since an
    /// empty mask would change nothing.
    pub(crate) fn mask(self, flags: &str) -> anyhow::Result<Option<FieldMask>> {
        anyhow::ensure!(!self.0.is_empty(), "nothing to change; pass {flags}");
        Ok(Some(FieldMask { paths: self.0 }))
    }
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
    let projects = session
        .list(pb::ListProjectsRequest {
            status: 0,
            ..Default::default()
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
        .get_work_item(session.request(request))
        .await?
        .into_inner())
}

/// The project and work item ids a command names; a work item alone names
/// its project.
async fn scope(
    session: &Session,
    project: Option<&str>,
    work_item_ref: Option<&str>,
) -> anyhow::Result<(String, String)> {
    let project_id = match project {
        Some(project) => project_id(session, project).await?,
        None => String::new(),
    };
    let work_item_id = match work_item_ref {
        Some(reference) => work_item(session, reference, project).await?.id,
        None => String::new(),
    };
    anyhow::ensure!(
        !project_id.is_empty() || !work_item_id.is_empty(),
        "say which project (--project or ANIMA_PROJECT) or work item (--work-item)"
    );
    Ok((project_id, work_item_id))
}

/// How a work item is named on the command line.
#[derive(Args, Clone)]
pub struct ItemRef {
    /// Work item id, or key such as WI-12 (with --project).
    item: String,
    /// Project id or name, for keys.
    #[arg(long, short, env = "ANIMA_PROJECT")]
    project: Option<String>,
}

impl ItemRef {
    /// The work item this names.
    async fn fetch(&self, session: &Session) -> anyhow::Result<pb::WorkItem> {
        work_item(session, &self.item, self.project.as_deref()).await
    }
}

/// A user id from an id or a username.
async fn user_id(session: &Session, user: &str) -> anyhow::Result<String> {
    if is_id(user) {
        return Ok(user.to_owned());
    }
    // By exact username: people not yet in a shared project are found too.
    let found = session
        .team()
        .get_user(session.request(pb::GetUserRequest {
            username: user.to_owned(),
            ..Default::default()
        }))
        .await
        .with_context(|| format!("no user named {user:?}"))?
        .into_inner();
    Ok(found.id)
}

/// A role id from an id or a name (any case).
async fn role_id(session: &Session, role: &str) -> anyhow::Result<String> {
    if is_id(role) {
        return Ok(role.to_owned());
    }
    let roles = session.list(pb::ListRolesRequest::default()).await?;
    roles
        .into_iter()
        .find(|candidate| candidate.name.eq_ignore_ascii_case(role))
        .map(|found| found.id)
        .with_context(|| format!("no role named {role:?}; `anima role list` shows them"))
}

async fn all_workflows(session: &Session) -> anyhow::Result<Vec<pb::Workflow>> {
    session
        .list(pb::ListWorkflowsRequest::default())
        .await
        .map_err(anyhow::Error::from)
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
    let users = session.list(pb::ListUsersRequest::default()).await?;
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

/// A model tier, as anima-ai's callers name it.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Tier {
    /// Smallest and cheapest.
    Minimal,
    /// Mid-range, good at text.
    Standard,
    /// Stronger reasoning, higher cost.
    Reasoning,
}

impl Tier {
    fn wire(self) -> i32 {
        (match self {
            Tier::Minimal => pb::ModelTier::Minimal,
            Tier::Standard => pb::ModelTier::Standard,
            Tier::Reasoning => pb::ModelTier::Reasoning,
        }) as i32
    }
}

/// "by MODEL (TIER tier)", for lines that say who answered.
fn answered_by(model: &str, tier: i32) -> String {
    let tier = pb::ModelTier::try_from(tier).map_or("", pb::ModelTier::name);
    format!("by {model} ({tier} tier)")
}
