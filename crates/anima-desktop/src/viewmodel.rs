//! View models: the server's records (live or cached) turned into the
//! rows the Slint screens show. Pure functions, testable without a window.

use std::collections::HashMap;

use anima_proto::{phase, v1 as pb};
use prost_types::Timestamp;
use slint::{ModelRc, SharedString, VecModel};

use crate::ui::{
    CapabilityRow, DecisionRow, DocumentRow, DocumentText, MessageRow, PersonRow, PhaseChip,
    PlanRow, ProjectRow, RepositoryRow, RevisionRow, SessionRow, SkillRow, WorkItemRow,
    WorkflowRow,
};

/// Names the UI shows for ids it knows (users, Akhs, projects).
#[derive(Debug, Clone, Default)]
pub struct Names {
    /// User id → display name.
    pub users: HashMap<String, String>,
    /// Akh id → name.
    pub akhs: HashMap<String, String>,
}

fn model<T: Clone + 'static>(rows: Vec<T>) -> ModelRc<T> {
    ModelRc::new(VecModel::from(rows))
}

fn count(value: i64) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

/// The project rows: the dashboard's per-project counts where it has
/// them, else the project's own stats; by name.
pub fn project_rows(
    projects: &[pb::Project],
    dashboard: Option<&pb::Dashboard>,
) -> Vec<ProjectRow> {
    let summaries: HashMap<&str, &pb::ProjectSummary> = dashboard
        .map(|dashboard| {
            dashboard
                .projects
                .iter()
                .map(|summary| (summary.project_id.as_str(), summary))
                .collect()
        })
        .unwrap_or_default();
    let mut rows: Vec<ProjectRow> = projects
        .iter()
        .map(|project| {
            let stats = project.stats.unwrap_or_default();
            let summary = summaries.get(project.id.as_str());
            ProjectRow {
                id: project.id.as_str().into(),
                name: project.name.as_str().into(),
                status: match pb::ProjectStatus::try_from(project.status) {
                    Ok(pb::ProjectStatus::Archived) => "archived",
                    _ => "active",
                }
                .into(),
                open: count(summary.map_or(stats.open_work_items, |s| s.open_work_items)),
                in_progress: count(summary.map_or(0, |s| s.in_progress_work_items)),
                blocked: count(summary.map_or(0, |s| s.blocked_work_items)),
                done: count(summary.map_or(0, |s| s.done_work_items)),
                sessions: count(summary.map_or(stats.active_sessions, |s| s.active_sessions)),
                decisions: count(summary.map_or(stats.open_decisions, |s| s.open_decisions)),
            }
        })
        .collect();
    rows.sort_by_key(|row| row.name.to_lowercase());
    rows
}

/// The open decisions, oldest first, each with the one input it needs.
pub fn decision_rows(dashboard: &pb::Dashboard) -> Vec<DecisionRow> {
    let projects: HashMap<&str, &str> = dashboard
        .projects
        .iter()
        .map(|summary| (summary.project_id.as_str(), summary.name.as_str()))
        .collect();
    dashboard
        .open_decisions
        .iter()
        .map(|decision| DecisionRow {
            id: decision.id.as_str().into(),
            question: decision.question.as_str().into(),
            input_label: if decision.input_label.is_empty() {
                "Your answer"
            } else {
                decision.input_label.as_str()
            }
            .into(),
            choices: model(
                decision
                    .choices
                    .iter()
                    .map(|choice| SharedString::from(choice.as_str()))
                    .collect(),
            ),
            project: projects
                .get(decision.project_id.as_str())
                .copied()
                .unwrap_or_default()
                .into(),
        })
        .collect()
}

/// The user's preferences the desktop acts on. They live in the account's
/// `preferences` on the server, so they follow the user to any machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preferences {
    /// The project list as tiles rather than rows.
    pub projects_grid: bool,
    /// Announce a decision that starts waiting for the user.
    pub notify_decisions: bool,
    /// Announce an agent session that ends.
    pub notify_agents: bool,
}

const PROJECTS_LAYOUT: &str = "desktop.projects_layout";
const NOTIFY_DECISIONS: &str = "notify.decisions";
const NOTIFY_AGENTS: &str = "notify.agents";

impl Default for Preferences {
    fn default() -> Self {
        Self {
            projects_grid: false,
            notify_decisions: true,
            notify_agents: true,
        }
    }
}

impl Preferences {
    /// Reads them from an account's preferences; what is missing or
    /// unreadable keeps its default.
    pub fn from_map(map: &HashMap<String, String>) -> Self {
        let default = Self::default();
        let switch = |key: &str, default: bool| match map.get(key).map(String::as_str) {
            Some("on") => true,
            Some("off") => false,
            _ => default,
        };
        Self {
            projects_grid: map.get(PROJECTS_LAYOUT).map(String::as_str) == Some("grid"),
            notify_decisions: switch(NOTIFY_DECISIONS, default.notify_decisions),
            notify_agents: switch(NOTIFY_AGENTS, default.notify_agents),
        }
    }

    /// Writes them into an account's preferences, keeping the keys other
    /// clients set.
    pub fn merge_into(self, map: &mut HashMap<String, String>) {
        let switch = |on: bool| if on { "on" } else { "off" }.to_owned();
        let layout = if self.projects_grid { "grid" } else { "list" };
        map.insert(PROJECTS_LAYOUT.to_owned(), layout.to_owned());
        map.insert(NOTIFY_DECISIONS.to_owned(), switch(self.notify_decisions));
        map.insert(NOTIFY_AGENTS.to_owned(), switch(self.notify_agents));
    }
}

/// What changed between two dashboards that the user asked to be told
/// about: decisions that started waiting, agent sessions that ended.
pub fn announcements(
    before: &pb::Dashboard,
    after: &pb::Dashboard,
    preferences: Preferences,
    names: &Names,
) -> Vec<String> {
    let mut said = Vec::new();
    if preferences.notify_decisions {
        said.extend(
            after
                .open_decisions
                .iter()
                .filter(|decision| !before.open_decisions.iter().any(|d| d.id == decision.id))
                .map(|decision| format!("A decision waits for you: {}", decision.question)),
        );
    }
    if preferences.notify_agents {
        said.extend(
            before
                .active_sessions
                .iter()
                .filter(|session| !after.active_sessions.iter().any(|s| s.id == session.id))
                .flat_map(|session| session_rows([session], names))
                .map(|row| format!("{} finished an agent session", row.akh)),
        );
    }
    said
}

/// The phases of a work item's workflow, the current one marked and the
/// ones before it done.
pub fn phase_chips(workflow: Option<&pb::Workflow>, current: &str) -> Vec<PhaseChip> {
    let Some(workflow) = workflow else {
        return vec![PhaseChip {
            name: current.into(),
            current: true,
            done: false,
        }];
    };
    let position = workflow.phases.iter().position(|phase| phase.id == current);
    workflow
        .phases
        .iter()
        .enumerate()
        .map(|(index, phase)| PhaseChip {
            name: phase.name.as_str().into(),
            current: Some(index) == position,
            done: position.is_some_and(|at| index < at),
        })
        .collect()
}

/// What a work item lets its agents use.
pub fn capability_rows(capabilities: &[pb::Capability]) -> Vec<CapabilityRow> {
    use pb::capability::Kind;
    capabilities
        .iter()
        .filter_map(|capability| {
            let (kind, summary) = match capability.kind.as_ref()? {
                Kind::RepoAccess(repo) => (
                    "repository",
                    format!(
                        "{} ({})",
                        repo.repository_id,
                        if repo.write {
                            "read-write"
                        } else {
                            "read-only"
                        }
                    ),
                ),
                Kind::Secret(secret) => {
                    ("secret", format!("{} as {}", secret.name, secret.mount_as))
                }
                Kind::NetworkZone(zone) => (
                    "network",
                    format!("{}: {}", zone.name, zone.hosts.join(", ")),
                ),
                Kind::Custom(custom) => {
                    let mut attributes: Vec<String> = custom
                        .attributes
                        .iter()
                        .map(|(key, value)| format!("{key}={value}"))
                        .collect();
                    attributes.sort();
                    (custom.r#type.as_str(), attributes.join(" "))
                }
            };
            Some(CapabilityRow {
                kind: kind.into(),
                summary: summary.into(),
            })
        })
        .collect()
}

fn revision_cause(raw: i32) -> &'static str {
    match pb::RevisionCause::try_from(raw) {
        Ok(pb::RevisionCause::Create) => "created",
        Ok(pb::RevisionCause::Edit) => "edited",
        Ok(pb::RevisionCause::Revert) => "restored",
        Ok(pb::RevisionCause::AiPromotion) => "from the thread",
        _ => "changed",
    }
}

/// A description's revisions, newest first; `current` is the one shown.
pub fn revision_rows(
    revisions: &[pb::DescriptionRevision],
    current: &str,
    names: &Names,
) -> Vec<RevisionRow> {
    let mut sorted: Vec<&pb::DescriptionRevision> = revisions.iter().collect();
    sorted.sort_by_key(|revision| std::cmp::Reverse(revision.number));
    sorted
        .into_iter()
        .map(|revision| RevisionRow {
            id: revision.id.as_str().into(),
            number: count(revision.number),
            cause: revision_cause(revision.cause).into(),
            author: author(revision.author.as_ref(), names).into(),
            time: revision
                .create_time
                .as_ref()
                .map(short_time)
                .unwrap_or_default()
                .into(),
            current: revision.id == current,
        })
        .collect()
}

/// Agent sessions, in the order given.
pub fn session_rows<'a>(
    sessions: impl IntoIterator<Item = &'a pb::AgentSession>,
    names: &Names,
) -> Vec<SessionRow> {
    sessions
        .into_iter()
        .map(|session| SessionRow {
            id: session.id.as_str().into(),
            work_item_id: session.work_item_id.as_str().into(),
            status: session_status(session.status).into(),
            akh: names
                .akhs
                .get(&session.akh_id)
                .cloned()
                .unwrap_or_else(|| "an Akh".to_owned())
                .into(),
        })
        .collect()
}

fn session_status(raw: i32) -> &'static str {
    match pb::SessionStatus::try_from(raw) {
        Ok(pb::SessionStatus::Provisioning) => "provisioning",
        Ok(pb::SessionStatus::Running) => "running",
        Ok(pb::SessionStatus::Paused) => "paused",
        Ok(pb::SessionStatus::Completed) => "completed",
        Ok(pb::SessionStatus::Failed) => "failed",
        _ => "unknown",
    }
}

/// A work item status as shown.
pub fn work_item_status(raw: i32) -> &'static str {
    match pb::WorkItemStatus::try_from(raw) {
        Ok(pb::WorkItemStatus::Open) => "open",
        Ok(pb::WorkItemStatus::InProgress) => "in progress",
        Ok(pb::WorkItemStatus::Blocked) => "blocked",
        Ok(pb::WorkItemStatus::Done) => "done",
        Ok(pb::WorkItemStatus::Cancelled) => "cancelled",
        _ => "unknown",
    }
}

/// The number in a `WI-<n>` key, for ordering.
fn key_number(key: &str) -> u64 {
    key.rsplit('-')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(u64::MAX)
}

/// A project's work items, by key.
pub fn work_item_rows(items: &[pb::WorkItem]) -> Vec<WorkItemRow> {
    let mut sorted: Vec<&pb::WorkItem> = items.iter().collect();
    sorted.sort_by_key(|item| key_number(&item.key));
    sorted
        .into_iter()
        .map(|item| WorkItemRow {
            id: item.id.as_str().into(),
            key: item.key.as_str().into(),
            title: item.title.as_str().into(),
            status: work_item_status(item.status).into(),
            phase: item.phase_id.as_str().into(),
        })
        .collect()
}

/// Who wrote a message, as shown.
fn author(actor: Option<&pb::Actor>, names: &Names) -> String {
    use pb::actor::Kind;
    match actor.and_then(|actor| actor.kind.as_ref()) {
        Some(Kind::UserId(id)) => names
            .users
            .get(id)
            .cloned()
            .unwrap_or_else(|| "someone".into()),
        Some(Kind::Akh(akh)) => names
            .akhs
            .get(&akh.akh_id)
            .cloned()
            .unwrap_or_else(|| "an Akh".into()),
        Some(Kind::Service(name)) => name.clone(),
        Some(Kind::Email(address)) => address.clone(),
        None => "Anima".into(),
    }
}

fn message_kind(raw: i32) -> &'static str {
    match pb::MessageKind::try_from(raw) {
        Ok(pb::MessageKind::Akh) => "akh",
        Ok(pb::MessageKind::InboundEmail | pb::MessageKind::OutboundEmail) => "email",
        Ok(pb::MessageKind::System) => "system",
        _ => "human",
    }
}

/// A thread's messages in sequence order.
pub fn message_rows(messages: &[pb::Message], names: &Names) -> Vec<MessageRow> {
    let mut sorted: Vec<&pb::Message> = messages.iter().collect();
    sorted.sort_by_key(|message| message.sequence);
    sorted
        .into_iter()
        .map(|message| MessageRow {
            author: author(message.author.as_ref(), names).into(),
            kind: message_kind(message.kind).into(),
            body: message.body.as_str().into(),
            time: message
                .create_time
                .as_ref()
                .map(short_time)
                .unwrap_or_default()
                .into(),
        })
        .collect()
}

/// Only the email side of a thread (email mode).
pub fn email_rows(messages: &[pb::Message], names: &Names) -> Vec<MessageRow> {
    let mut emails: Vec<pb::Message> = messages
        .iter()
        .filter(|message| message_kind(message.kind) == "email")
        .cloned()
        .collect();
    emails.sort_by_key(|message| message.sequence);
    let mut rows = message_rows(&emails, names);
    for (row, message) in rows.iter_mut().zip(&emails) {
        if let Some(email) = &message.email {
            let direction = if message.kind == pb::MessageKind::OutboundEmail as i32 {
                format!("to {}", email.to.join(", "))
            } else {
                format!("from {}", email.from)
            };
            row.kind = format!("{direction} · {}", email.subject).into();
        }
    }
    rows
}

/// A project's plans with their progress, by title.
pub fn plan_rows(plans: &[pb::Plan]) -> Vec<PlanRow> {
    let mut rows: Vec<PlanRow> = plans
        .iter()
        .map(|plan| {
            let progress = plan.progress.clone().unwrap_or_default();
            PlanRow {
                title: plan.title.as_str().into(),
                done: count(progress.done),
                total: count(progress.total),
                share: progress.share_done as f32,
            }
        })
        .collect();
    rows.sort_by_key(|row| row.title.to_lowercase());
    rows
}

/// A project's repositories, by name.
pub fn repository_rows(repositories: &[pb::Repository]) -> Vec<RepositoryRow> {
    let mut rows: Vec<RepositoryRow> = repositories
        .iter()
        .map(|repository| RepositoryRow {
            name: repository.name.as_str().into(),
            forge: match pb::ForgeType::try_from(repository.forge) {
                Ok(pb::ForgeType::Github) => "GitHub",
                Ok(pb::ForgeType::Gitea) => "Gitea",
                Ok(pb::ForgeType::Gitlab) => "GitLab",
                _ => "git",
            }
            .into(),
            remote: repository.remote_url.as_str().into(),
            branch: repository.default_branch.as_str().into(),
        })
        .collect();
    rows.sort_by_key(|row| row.name.to_lowercase());
    rows
}

fn document_type(raw: i32) -> &'static str {
    match pb::DocumentType::try_from(raw) {
        Ok(pb::DocumentType::Markdown) => "markdown",
        Ok(pb::DocumentType::Text) => "text",
        Ok(pb::DocumentType::Patch) => "patch",
        Ok(pb::DocumentType::Attachment) => "attachment",
        _ => "document",
    }
}

/// `1.5 MB`, `12 KB`, `300 B`.
pub fn size(bytes: i64) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{:.1} MB", b as f64 / f64::from(1 << 20)),
        b if b >= 1 << 10 => format!("{} KB", b >> 10),
        b => format!("{b} B"),
    }
}

/// The library: documents whose title contains `search` (any case),
/// newest first; what the cache can answer without the server.
pub fn document_rows(
    documents: &[pb::Document],
    projects: &[pb::Project],
    search: &str,
) -> Vec<DocumentRow> {
    let names = project_names(projects);
    let search = search.trim().to_lowercase();
    let mut found: Vec<&pb::Document> = documents
        .iter()
        .filter(|document| search.is_empty() || document.title.to_lowercase().contains(&search))
        .collect();
    found.sort_by_key(|document| std::cmp::Reverse(document.create_time.map(|t| t.seconds)));
    found
        .into_iter()
        .map(|document| document_row(document, &names, ""))
        .collect()
}

/// The library as the server's search found it (titles and text), with
/// the text around each match, in the order found.
pub fn search_rows(hits: &[pb::SearchHit], projects: &[pb::Project]) -> Vec<DocumentRow> {
    let names = project_names(projects);
    hits.iter()
        .filter_map(|hit| {
            let document = hit.document.as_ref()?;
            let snippet = match hit.snippet.as_str() {
                // A title match shows the title as its snippet.
                snippet if snippet == document.title => "",
                snippet => snippet,
            };
            Some(document_row(document, &names, snippet))
        })
        .collect()
}

fn project_names(projects: &[pb::Project]) -> HashMap<&str, &str> {
    projects
        .iter()
        .map(|project| (project.id.as_str(), project.name.as_str()))
        .collect()
}

fn document_row(
    document: &pb::Document,
    names: &HashMap<&str, &str>,
    snippet: &str,
) -> DocumentRow {
    DocumentRow {
        id: document.id.as_str().into(),
        title: document.title.as_str().into(),
        kind: document_type(document.r#type).into(),
        size: size(document.size_bytes).into(),
        project: names
            .get(document.project_id.as_str())
            .copied()
            .unwrap_or_default()
            .into(),
        time: document
            .create_time
            .as_ref()
            .map(short_time)
            .unwrap_or_default()
            .into(),
        snippet: snippet.into(),
        not_searchable: match document.not_indexed_reason.as_str() {
            "" => "".into(),
            why => format!("Not searchable: {why}").into(),
        },
    }
}

/// A document opened in the reader: its text, one line about it, and a
/// note when part of the text, or all of it, is not shown.
pub fn document_text(text: &pb::DocumentText, projects: &[pb::Project]) -> DocumentText {
    let document = text.document.clone().unwrap_or_default();
    let row = document_row(&document, &project_names(projects), "");
    let about = [row.project, row.kind, row.size, row.time]
        .iter()
        .filter(|part| !part.is_empty())
        .map(SharedString::as_str)
        .collect::<Vec<_>>()
        .join(" · ");
    let note = if !document.not_indexed_reason.is_empty() {
        format!("No text to show: {}", document.not_indexed_reason)
    } else if text.next_offset > 0 {
        format!(
            "The first {} of {} characters are shown.",
            grouped(text.next_offset),
            grouped(text.total_chars)
        )
    } else {
        String::new()
    };
    DocumentText {
        id: document.id.into(),
        title: document.title.into(),
        about: about.into(),
        text: text.text.as_str().into(),
        note: note.into(),
    }
}

/// A number with its thousands grouped: 100,000.
fn grouped(value: i64) -> String {
    let digits = value.unsigned_abs().to_string();
    let mut out = String::new();
    for (n, digit) in digits.chars().enumerate() {
        if n > 0 && (digits.len() - n).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    if value < 0 {
        out.insert(0, '-');
    }
    out
}

/// Workflows, built-ins first, with their phases and skills in order.
pub fn workflow_rows(workflows: &[pb::Workflow]) -> Vec<WorkflowRow> {
    let mut sorted: Vec<&pb::Workflow> = workflows.iter().collect();
    sorted.sort_by_key(|workflow| (!workflow.builtin, workflow.name.to_lowercase()));
    sorted
        .into_iter()
        .map(|workflow| WorkflowRow {
            id: workflow.id.as_str().into(),
            name: workflow.name.as_str().into(),
            builtin: workflow.builtin,
            phases: workflow
                .phases
                .iter()
                .map(|step| {
                    let skills = phase::skill_labels(step);
                    if skills.is_empty() {
                        step.name.clone()
                    } else {
                        format!("{} ({})", step.name, skills.join(", "))
                    }
                })
                .collect::<Vec<_>>()
                .join("  →  ")
                .into(),
        })
        .collect()
}

/// Phases typed as `Name:skill,skill@version; Name2` (the workflow form).
pub fn parse_phases(text: &str) -> Vec<pb::Phase> {
    text.split(';')
        .map(str::trim)
        .filter(|text| !text.is_empty())
        .map(phase::parse)
        .collect()
}

/// People with their role in each project they belong to, by name.
pub fn people_rows(
    users: &[pb::User],
    members: &[pb::ProjectMember],
    projects: &[pb::Project],
) -> Vec<PersonRow> {
    let names: HashMap<&str, &str> = projects
        .iter()
        .map(|project| (project.id.as_str(), project.name.as_str()))
        .collect();
    let mut rows: Vec<PersonRow> = users
        .iter()
        .map(|user| {
            let mut roles: Vec<String> = members
                .iter()
                .filter(|member| member.user_id == user.id)
                .map(|member| {
                    format!(
                        "{}: {}",
                        names
                            .get(member.project_id.as_str())
                            .copied()
                            .unwrap_or("?"),
                        member.role_name
                    )
                })
                .collect();
            roles.sort();
            PersonRow {
                name: if user.display_name.is_empty() {
                    user.username.as_str()
                } else {
                    user.display_name.as_str()
                }
                .into(),
                username: user.username.as_str().into(),
                admin: user.is_admin,
                disabled: user.disabled,
                roles: if roles.is_empty() {
                    "no project".to_owned()
                } else {
                    roles.join(" · ")
                }
                .into(),
            }
        })
        .collect();
    rows.sort_by_key(|row| row.name.to_lowercase());
    rows
}

/// The skills a project's work items need, from their workflows' phases,
/// each with its newest published version (or that none is published).
pub fn project_skill_rows(
    items: &[pb::WorkItem],
    workflows: &[pb::Workflow],
    skills: &[pb::Skill],
) -> Vec<SkillRow> {
    let used: std::collections::HashSet<&str> =
        items.iter().map(|item| item.workflow_id.as_str()).collect();
    let mut phases_of: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for workflow in workflows
        .iter()
        .filter(|workflow| used.contains(workflow.id.as_str()))
    {
        for phase in &workflow.phases {
            for skill in &phase.required_skills {
                let phases = phases_of.entry(skill.name.as_str()).or_default();
                if !phases.contains(&phase.name.as_str()) {
                    phases.push(&phase.name);
                }
            }
        }
    }
    phases_of
        .into_iter()
        .map(|(name, phases)| {
            let newest = skills
                .iter()
                .filter(|skill| skill.name == name)
                .max_by_key(|skill| skill.create_time.map(|time| (time.seconds, time.nanos)));
            SkillRow {
                name: name.into(),
                version: newest
                    .map_or_else(|| "not published".to_owned(), |skill| skill.version.clone())
                    .into(),
                phases: phases.join(", ").into(),
            }
        })
        .collect()
}

/// A workflow's phases as the form edits them: `Name:skill,skill@v; Next`.
pub fn phases_text(workflow: &pb::Workflow) -> String {
    workflow
        .phases
        .iter()
        .map(phase::format)
        .collect::<Vec<_>>()
        .join("; ")
}

/// `YYYY-MM-DD HH:MM` in UTC.
pub fn short_time(timestamp: &Timestamp) -> String {
    let days = timestamp.seconds.div_euclid(86_400);
    let seconds = timestamp.seconds.rem_euclid(86_400);
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}",
        seconds / 3_600,
        seconds % 3_600 / 60
    )
}

/// Rows as a Slint model.
pub fn rows<T: Clone + 'static>(rows: Vec<T>) -> ModelRc<T> {
    model(rows)
}

#[cfg(test)]
mod tests {
    use slint::Model;

    use super::*;

    fn project(id: &str, name: &str, open: i64) -> pb::Project {
        pb::Project {
            id: id.into(),
            name: name.into(),
            status: pb::ProjectStatus::Active as i32,
            stats: Some(pb::ProjectStats {
                open_work_items: open,
                ..pb::ProjectStats::default()
            }),
            ..pb::Project::default()
        }
    }

    #[test]
    fn the_reader_says_what_it_does_not_show() {
        let document = pb::Document {
            id: "d".into(),
            project_id: "a".into(),
            title: "Spec.md".into(),
            r#type: pb::DocumentType::Markdown as i32,
            size_bytes: 2048,
            ..pb::Document::default()
        };
        let part = pb::DocumentText {
            document: Some(document.clone()),
            text: "# Spec".into(),
            total_chars: 1_234_567,
            next_offset: 100_000,
            ..pb::DocumentText::default()
        };
        let reading = document_text(&part, &[project("a", "Alpha", 0)]);
        assert_eq!(reading.title, "Spec.md");
        assert!(reading.about.starts_with("Alpha · "), "{}", reading.about);
        assert_eq!(
            reading.note,
            "The first 100,000 of 1,234,567 characters are shown."
        );
        let whole = pb::DocumentText {
            next_offset: 0,
            total_chars: 6,
            ..part.clone()
        };
        assert_eq!(document_text(&whole, &[]).note, "");
        let unread = pb::DocumentText {
            document: Some(pb::Document {
                not_indexed_reason: "the PDF cannot be parsed".into(),
                ..document
            }),
            text: String::new(),
            ..part
        };
        assert_eq!(
            document_text(&unread, &[]).note,
            "No text to show: the PDF cannot be parsed"
        );
        assert_eq!(
            (grouped(0), grouped(999), grouped(-1000)),
            ("0".into(), "999".into(), "-1,000".into())
        );
    }

    #[test]
    fn projects_take_the_dashboards_counts_and_sort_by_name() {
        let dashboard = pb::Dashboard {
            projects: vec![pb::ProjectSummary {
                project_id: "b".into(),
                name: "beta".into(),
                open_work_items: 7,
                blocked_work_items: 2,
                active_sessions: 1,
                open_decisions: 3,
                ..pb::ProjectSummary::default()
            }],
            ..pb::Dashboard::default()
        };
        let rows = project_rows(
            &[project("b", "beta", 1), project("a", "Alpha", 4)],
            Some(&dashboard),
        );
        let names: Vec<&str> = rows.iter().map(|row| row.name.as_str()).collect();
        assert_eq!(names, ["Alpha", "beta"]);
        assert_eq!(
            (rows[0].open, rows[0].sessions),
            (4, 0),
            "stats without a summary"
        );
        assert_eq!(
            (
                rows[1].open,
                rows[1].blocked,
                rows[1].sessions,
                rows[1].decisions
            ),
            (7, 2, 1, 3)
        );
    }

    #[test]
    fn preferences_round_trip_and_default_when_unreadable() {
        let mut map = HashMap::from([
            ("theme.other-client".to_owned(), "kept".to_owned()),
            (NOTIFY_AGENTS.to_owned(), "maybe".to_owned()),
        ]);
        assert_eq!(Preferences::from_map(&map), Preferences::default());
        let chosen = Preferences {
            projects_grid: true,
            notify_decisions: false,
            notify_agents: true,
        };
        chosen.merge_into(&mut map);
        assert_eq!(Preferences::from_map(&map), chosen);
        assert_eq!(map["theme.other-client"], "kept");
        assert_eq!(map[NOTIFY_DECISIONS], "off");
    }

    #[test]
    fn announcements_tell_new_decisions_and_ended_sessions_as_asked() {
        let decision = |id: &str| pb::Decision {
            id: id.into(),
            question: format!("Question {id}?"),
            ..pb::Decision::default()
        };
        let session = |id: &str| pb::AgentSession {
            id: id.into(),
            akh_id: "thoth".into(),
            ..pb::AgentSession::default()
        };
        let before = pb::Dashboard {
            open_decisions: vec![decision("old")],
            active_sessions: vec![session("s1"), session("s2")],
            ..pb::Dashboard::default()
        };
        let after = pb::Dashboard {
            open_decisions: vec![decision("old"), decision("new")],
            active_sessions: vec![session("s2")],
            ..pb::Dashboard::default()
        };
        let names = Names {
            akhs: HashMap::from([("thoth".to_owned(), "Thoth".to_owned())]),
            ..Names::default()
        };
        let all = Preferences::default();
        assert_eq!(
            announcements(&before, &after, all, &names),
            [
                "A decision waits for you: Question new?",
                "Thoth finished an agent session"
            ]
        );
        let quiet = Preferences {
            notify_decisions: false,
            notify_agents: false,
            ..all
        };
        assert!(announcements(&before, &after, quiet, &names).is_empty());
        assert!(announcements(&after, &after, all, &names).is_empty());
    }

    #[test]
    fn decisions_carry_their_one_input() {
        let dashboard = pb::Dashboard {
            open_decisions: vec![
                pb::Decision {
                    id: "d1".into(),
                    project_id: "p".into(),
                    question: "Ship on Friday?".into(),
                    choices: vec!["yes".into(), "no".into()],
                    ..pb::Decision::default()
                },
                pb::Decision {
                    id: "d2".into(),
                    question: "Which budget?".into(),
                    ..pb::Decision::default()
                },
            ],
            projects: vec![pb::ProjectSummary {
                project_id: "p".into(),
                name: "Shop".into(),
                ..pb::ProjectSummary::default()
            }],
            ..pb::Dashboard::default()
        };
        let rows = decision_rows(&dashboard);
        assert_eq!(rows[0].project, "Shop");
        assert_eq!(rows[0].choices.row_count(), 2);
        assert_eq!(rows[1].choices.row_count(), 0);
        assert_eq!(rows[1].input_label, "Your answer");
    }

    #[test]
    fn messages_show_who_wrote_them_in_sequence() {
        let names = Names {
            users: [("u1".to_owned(), "Ada".to_owned())].into(),
            akhs: [("k1".to_owned(), "Thoth".to_owned())].into(),
        };
        let message = |sequence, kind: pb::MessageKind, author| pb::Message {
            sequence,
            kind: kind as i32,
            author: Some(pb::Actor { kind: Some(author) }),
            body: format!("#{sequence}"),
            create_time: Some(Timestamp {
                seconds: 1_764_028_800 + 3_661,
                nanos: 0,
            }),
            ..pb::Message::default()
        };
        let rows = message_rows(
            &[
                message(
                    2,
                    pb::MessageKind::Akh,
                    pb::actor::Kind::Akh(pb::AkhActor {
                        akh_id: "k1".into(),
                        ..pb::AkhActor::default()
                    }),
                ),
                message(
                    1,
                    pb::MessageKind::Human,
                    pb::actor::Kind::UserId("u1".into()),
                ),
                message(
                    3,
                    pb::MessageKind::InboundEmail,
                    pb::actor::Kind::Email("c@example.org".into()),
                ),
            ],
            &names,
        );
        let shown: Vec<(&str, &str, &str)> = rows
            .iter()
            .map(|row| (row.body.as_str(), row.author.as_str(), row.kind.as_str()))
            .collect();
        assert_eq!(
            shown,
            [
                ("#1", "Ada", "human"),
                ("#2", "Thoth", "akh"),
                ("#3", "c@example.org", "email")
            ]
        );
        assert_eq!(rows[0].time, "2025-11-25 01:01");
    }

    #[test]
    fn the_library_searches_titles_newest_first() {
        let document = |id: &str, title: &str, seconds, size| pb::Document {
            id: id.into(),
            project_id: "p".into(),
            title: title.into(),
            size_bytes: size,
            r#type: pb::DocumentType::Attachment as i32,
            create_time: Some(Timestamp { seconds, nanos: 0 }),
            ..pb::Document::default()
        };
        let documents = [
            document("1", "Invoice March.pdf", 10, 2_500_000),
            document("2", "notes.md", 30, 900),
            document("3", "invoice april.pdf", 20, 4_096),
        ];
        let rows = document_rows(&documents, &[project("p", "Shop", 0)], " INVOICE ");
        let shown: Vec<(&str, &str, &str)> = rows
            .iter()
            .map(|row| (row.title.as_str(), row.size.as_str(), row.project.as_str()))
            .collect();
        assert_eq!(
            shown,
            [
                ("invoice april.pdf", "4 KB", "Shop"),
                ("Invoice March.pdf", "2.4 MB", "Shop")
            ]
        );
        assert_eq!(document_rows(&documents, &[], "").len(), 3);

        let hit = |document: pb::Document, snippet: &str| pb::SearchHit {
            snippet: snippet.into(),
            document: Some(document),
            score: 1.0,
            chunk: 0,
        };
        let rows = search_rows(
            &[
                hit(
                    document("2", "notes.md", 30, 900),
                    "pay the invoice by Friday",
                ),
                hit(
                    document("1", "Invoice March.pdf", 10, 10),
                    "Invoice March.pdf",
                ),
            ],
            &[project("p", "Shop", 0)],
        );
        let shown: Vec<(&str, &str)> = rows
            .iter()
            .map(|row| (row.title.as_str(), row.snippet.as_str()))
            .collect();
        assert_eq!(
            shown,
            [
                ("notes.md", "pay the invoice by Friday"),
                ("Invoice March.pdf", "")
            ],
            "the server's order; a title match needs no snippet"
        );
    }

    #[test]
    fn workflows_show_phases_and_parse_back() {
        let phases = parse_phases("Triage: debugging, code-reading ; Fix:coding@2.0;  Verify ;");
        assert_eq!(phases.len(), 3);
        assert_eq!(phases[1].required_skills[0].version, "2.0");
        let rows = workflow_rows(&[
            pb::Workflow {
                name: "Mine".into(),
                phases: phases.clone(),
                ..pb::Workflow::default()
            },
            pb::Workflow {
                name: "Standard".into(),
                builtin: true,
                ..pb::Workflow::default()
            },
        ]);
        assert_eq!(rows[0].name, "Standard", "built-ins first");
        assert_eq!(
            rows[1].phases,
            "Triage (debugging, code-reading)  →  Fix (coding@2.0)  →  Verify"
        );
    }

    #[test]
    fn projects_show_the_skills_their_workflows_need() {
        let workflow = pb::Workflow {
            id: "w".into(),
            phases: vec![
                pb::Phase {
                    name: "Triage".into(),
                    required_skills: parse_phases("x:debugging,code-reading")[0]
                        .required_skills
                        .clone(),
                    ..pb::Phase::default()
                },
                pb::Phase {
                    name: "Fix".into(),
                    required_skills: parse_phases("x:debugging@2")[0].required_skills.clone(),
                    ..pb::Phase::default()
                },
            ],
            ..pb::Workflow::default()
        };
        let item = pb::WorkItem {
            workflow_id: "w".into(),
            ..pb::WorkItem::default()
        };
        let skill = |version: &str, seconds| pb::Skill {
            name: "debugging".into(),
            version: version.into(),
            create_time: Some(Timestamp { seconds, nanos: 0 }),
            ..pb::Skill::default()
        };
        let rows = project_skill_rows(
            &[item],
            std::slice::from_ref(&workflow),
            &[skill("2", 20), skill("1", 10)],
        );
        let shown: Vec<(&str, &str, &str)> = rows
            .iter()
            .map(|row| (row.name.as_str(), row.version.as_str(), row.phases.as_str()))
            .collect();
        assert_eq!(
            shown,
            [
                ("code-reading", "not published", "Triage"),
                ("debugging", "2", "Triage, Fix")
            ]
        );
        assert_eq!(
            phases_text(&workflow),
            "Triage:debugging,code-reading; Fix:debugging@2"
        );
        assert_eq!(parse_phases(&phases_text(&workflow)), workflow.phases);
    }

    #[test]
    fn people_show_their_role_per_project() {
        let user = |id: &str, name: &str| pb::User {
            id: id.into(),
            username: name.into(),
            ..pb::User::default()
        };
        let member = |user: &str, project: &str, role: &str| pb::ProjectMember {
            user_id: user.into(),
            project_id: project.into(),
            role_name: role.into(),
            ..pb::ProjectMember::default()
        };
        let rows = people_rows(
            &[user("u2", "zoe"), user("u1", "ada")],
            &[member("u1", "p1", "Owner"), member("u1", "p2", "Viewer")],
            &[project("p1", "Shop", 0), project("p2", "Desk", 0)],
        );
        assert_eq!(rows[0].username, "ada");
        assert_eq!(rows[0].roles, "Desk: Viewer · Shop: Owner");
        assert_eq!(rows[1].roles, "no project");
    }

    #[test]
    fn plans_show_their_progress() {
        let rows = plan_rows(&[pb::Plan {
            title: "Launch".into(),
            progress: Some(pb::PlanProgress {
                total: 4,
                done: 1,
                share_done: 0.25,
                ..pb::PlanProgress::default()
            }),
            ..pb::Plan::default()
        }]);
        assert_eq!((rows[0].done, rows[0].total), (1, 4));
        assert!((rows[0].share - 0.25).abs() < f32::EPSILON);
    }

    #[test]
    fn the_phase_strip_marks_where_the_item_is() {
        let workflow = pb::Workflow {
            phases: ["analysis", "implementation", "review"]
                .map(|id| pb::Phase {
                    id: id.into(),
                    name: id.to_uppercase(),
                    ..pb::Phase::default()
                })
                .to_vec(),
            ..pb::Workflow::default()
        };
        let chips = phase_chips(Some(&workflow), "implementation");
        let shown: Vec<(bool, bool)> = chips.iter().map(|chip| (chip.done, chip.current)).collect();
        assert_eq!(shown, [(true, false), (false, true), (false, false)]);
        assert_eq!(phase_chips(None, "triage")[0].name, "triage");
    }

    #[test]
    fn revisions_show_newest_first_and_which_is_current() {
        let revision = |id: &str, number, cause: pb::RevisionCause| pb::DescriptionRevision {
            id: id.into(),
            number,
            cause: cause as i32,
            ..pb::DescriptionRevision::default()
        };
        let rows = revision_rows(
            &[
                revision("r1", 1, pb::RevisionCause::Create),
                revision("r3", 3, pb::RevisionCause::Revert),
                revision("r2", 2, pb::RevisionCause::Edit),
            ],
            "r3",
            &Names::default(),
        );
        let shown: Vec<(i32, &str, bool)> = rows
            .iter()
            .map(|row| (row.number, row.cause.as_str(), row.current))
            .collect();
        assert_eq!(
            shown,
            [
                (3, "restored", true),
                (2, "edited", false),
                (1, "created", false)
            ]
        );
    }

    #[test]
    fn capabilities_read_as_sentences() {
        let rows = capability_rows(&[
            pb::Capability {
                id: String::new(),
                kind: Some(pb::capability::Kind::Secret(pb::SecretRef {
                    name: "deploy key".into(),
                    reference: "vault://x".into(),
                    mount_as: "deploy_key".into(),
                })),
            },
            pb::Capability {
                id: String::new(),
                kind: Some(pb::capability::Kind::NetworkZone(pb::NetworkZone {
                    name: "registry".into(),
                    hosts: vec!["crates.io".into()],
                })),
            },
        ]);
        let shown: Vec<(&str, &str)> = rows
            .iter()
            .map(|row| (row.kind.as_str(), row.summary.as_str()))
            .collect();
        assert_eq!(
            shown,
            [
                ("secret", "deploy key as deploy_key"),
                ("network", "registry: crates.io")
            ]
        );
    }

    #[test]
    fn work_items_sort_by_key_number() {
        let item = |key: &str| pb::WorkItem {
            key: key.into(),
            phase_id: "analysis".into(),
            status: pb::WorkItemStatus::InProgress as i32,
            ..pb::WorkItem::default()
        };
        let rows = work_item_rows(&[item("WI-10"), item("WI-2"), item("WI-1")]);
        let keys: Vec<&str> = rows.iter().map(|row| row.key.as_str()).collect();
        assert_eq!(keys, ["WI-1", "WI-2", "WI-10"]);
        assert_eq!(rows[0].status, "in progress");
    }
}
