//! Each record read from its row, once for both backends: plain functions
//! over [`StoredRow`], outside the backends' macros, so rustfmt and the
//! IDE see them.
//!
//! Not `#[derive(sqlx::FromRow)]`: the records live in anima-core, which
//! knows nothing of sqlx, so a derive would need a second struct per
//! record repeating its fields, and most records have columns to convert
//! (enums stored as text, JSON, actors) that a derive does not cover.

use sqlx::{Decode, Postgres, Row, Sqlite, Type, postgres::PgRow, sqlite::SqliteRow};

use anima_core::{
    agent::{AgentSession, SessionLogin, Task},
    capability::Capability,
    document::Document,
    mail::InboundRecord,
    model::{Event, User},
    planning::{
        Actor, Akh, DescriptionRevision, Member, Project, ProjectStats, WorkItem, WorkItemKey,
    },
    repository::{Repository, RepositoryLocation},
    skill::Skill,
    thread::{AttachmentRef, Decision, EmailHeaders, Message},
    workflow::{SkillRef, Workflow},
};

use super::{
    accounts::parse_preferences,
    planning::{stored, stored_json},
};
use crate::StoreResult;

/// A column type both backends decode.
pub(super) trait Column:
    for<'r> Decode<'r, Sqlite> + Type<Sqlite> + for<'r> Decode<'r, Postgres> + Type<Postgres>
{
}

impl<T> Column for T where
    T: for<'r> Decode<'r, Sqlite> + Type<Sqlite> + for<'r> Decode<'r, Postgres> + Type<Postgres>
{
}

/// A row of either backend, read column by column.
pub(super) trait StoredRow {
    /// The column `name`, decoded as `T`.
    fn col<T: Column>(&self, name: &str) -> StoreResult<T>;
}

impl StoredRow for SqliteRow {
    fn col<T: Column>(&self, name: &str) -> StoreResult<T> {
        Ok(self.try_get(name)?)
    }
}

impl StoredRow for PgRow {
    fn col<T: Column>(&self, name: &str) -> StoreResult<T> {
        Ok(self.try_get(name)?)
    }
}

pub(super) fn user(row: &impl StoredRow) -> StoreResult<User> {
    let preferences: String = row.col("preferences")?;
    Ok(User {
        id: row.col("id")?,
        username: row.col("username")?,
        display_name: row.col("display_name")?,
        email: row.col("email")?,
        is_admin: row.col("is_admin")?,
        disabled: row.col("disabled")?,
        preferences: parse_preferences(&preferences),
        created_at: row.col("created_at")?,
        updated_at: row.col("updated_at")?,
    })
}

pub(super) fn login(row: &impl StoredRow) -> StoreResult<SessionLogin> {
    let commands: String = row.col("commands")?;
    Ok(SessionLogin {
        id: row.col("id")?,
        session_id: row.col("session_id")?,
        user_id: row.col("user_id")?,
        reason: row.col("reason")?,
        created_at: row.col("created_at")?,
        expires_at: row.col("expires_at")?,
        started_at: row.col("started_at")?,
        ended_at: row.col("ended_at")?,
        commands: stored_json(&commands)?,
        bytes_in: row.col("bytes_in")?,
        bytes_out: row.col("bytes_out")?,
        exit_status: row.col("exit_status")?,
        peer: row.col("peer")?,
    })
}

pub(super) fn session(row: &impl StoredRow) -> StoreResult<AgentSession> {
    let status: String = row.col("status")?;
    let capabilities: String = row.col("capabilities")?;
    let skills: String = row.col("skills")?;
    Ok(AgentSession {
        id: row.col("id")?,
        work_item_id: row.col("work_item_id")?,
        project_id: row.col("project_id")?,
        akh_id: row.col("akh_id")?,
        status: stored(&status)?,
        capabilities: stored_json::<Vec<Capability>>(&capabilities)?,
        skills: stored_json::<Vec<SkillRef>>(&skills)?,
        phase_id: row.col("phase_id")?,
        vm_id: row.col("vm_id")?,
        error: row.col("error")?,
        exit_code: row.col("exit_code")?,
        keep_after_stop: row.col("keep_after_stop")?,
        created_at: row.col("created_at")?,
        updated_at: row.col("updated_at")?,
    })
}

pub(super) fn task(row: &impl StoredRow) -> StoreResult<Task> {
    let status: String = row.col("status")?;
    Ok(Task {
        id: row.col("id")?,
        session_id: row.col("session_id")?,
        work_item_id: row.col("work_item_id")?,
        title: row.col("title")?,
        status: stored(&status)?,
        note: row.col("note")?,
        created_at: row.col("created_at")?,
        updated_at: row.col("updated_at")?,
    })
}

pub(super) fn document(row: &impl StoredRow) -> StoreResult<Document> {
    let doc_type: String = row.col("doc_type")?;
    let created_by: String = row.col("created_by")?;
    Ok(Document {
        id: row.col("id")?,
        project_id: row.col("project_id")?,
        work_item_id: row.col("work_item_id")?,
        title: row.col("title")?,
        doc_type: stored(&doc_type)?,
        media_type: row.col("media_type")?,
        size_bytes: row.col("size_bytes")?,
        sha256: row.col("sha256")?,
        not_indexed_reason: row.col("not_indexed_reason")?,
        created_by: stored_json(&created_by)?,
        created_at: row.col("created_at")?,
        awaits_review: row.col("awaits_review")?,
    })
}

pub(super) fn repository(row: &impl StoredRow) -> StoreResult<Repository> {
    let forge: String = row.col("forge")?;
    let created_by: String = row.col("created_by")?;
    Ok(Repository {
        id: row.col("id")?,
        project_id: row.col("project_id")?,
        name: row.col("name")?,
        forge: stored(&forge)?,
        remote_url: row.col("remote_url")?,
        location: RepositoryLocation {
            web_base: row.col("web_base")?,
            owner: row.col("owner")?,
            name: row.col("repo")?,
        },
        default_branch: row.col("default_branch")?,
        credential: row.col("credential")?,
        created_by: stored_json(&created_by)?,
        created_at: row.col("created_at")?,
    })
}

pub(super) fn inbound(row: &impl StoredRow) -> StoreResult<InboundRecord> {
    let state: String = row.col("state")?;
    let content: String = row.col("content")?;
    let suggestion: Option<String> = row.col("suggestion")?;
    let settled_by: Option<String> = row.col("settled_by")?;
    Ok(InboundRecord {
        id: row.col("id")?,
        mailbox_id: row.col("mailbox_id")?,
        message_id: row.col("message_id")?,
        state: stored(&state)?,
        reason: row.col("reason")?,
        work_item_id: row.col("work_item_id")?,
        sender: row.col("sender")?,
        subject: row.col("subject")?,
        content: stored_json(&content)?,
        suggestion: suggestion.as_deref().map(stored_json).transpose()?,
        posted_message_id: row.col("posted_message_id")?,
        settled_by: settled_by.as_deref().map(Actor::from_json).transpose()?,
        created_at: row.col("created_at")?,
    })
}

pub(super) fn event(row: &impl StoredRow) -> StoreResult<Event> {
    let kind: String = row.col("kind")?;
    Ok(Event {
        id: row.col("id")?,
        txid: row.col("txid")?,
        kind: stored(&kind)?,
        project_id: row.col("project_id")?,
        entity_id: row.col("entity_id")?,
        work_item_id: row.col("work_item_id")?,
        payload: row.col("payload")?,
        created_at: row.col("created_at")?,
    })
}

pub(super) fn akh(row: &impl StoredRow) -> StoreResult<Akh> {
    Ok(Akh {
        id: row.col("id")?,
        name: row.col("name")?,
        description: row.col("description")?,
        avatar_color: row.col("avatar_color")?,
        created_at: row.col("created_at")?,
        updated_at: row.col("updated_at")?,
    })
}

pub(super) fn project(row: &impl StoredRow) -> StoreResult<Project> {
    let status: String = row.col("status")?;
    Ok(Project {
        id: row.col("id")?,
        name: row.col("name")?,
        description: row.col("description")?,
        status: stored(&status)?,
        stats: ProjectStats {
            plans: row.col("plan_count")?,
            work_items: row.col("item_count")?,
            open_work_items: row.col("open_count")?,
            active_sessions: row.col("session_count")?,
            open_decisions: row.col("decision_count")?,
        },
        created_at: row.col("created_at")?,
        updated_at: row.col("updated_at")?,
    })
}

pub(super) fn member(row: &impl StoredRow) -> StoreResult<Member> {
    Ok(Member {
        project_id: row.col("project_id")?,
        user_id: row.col("user_id")?,
        username: row.col("username")?,
        role_id: row.col("role_id")?,
        role_name: row.col("role_name")?,
    })
}

pub(super) fn work_item(row: &impl StoredRow) -> StoreResult<WorkItem> {
    let status: String = row.col("status")?;
    let priority: String = row.col("priority")?;
    let phase_changed_by: String = row.col("phase_changed_by")?;
    let capabilities: String = row.col("capabilities")?;
    Ok(WorkItem {
        id: row.col("id")?,
        project_id: row.col("project_id")?,
        plan_id: row.col("plan_id")?,
        key: WorkItemKey(row.col("number")?),
        title: row.col("title")?,
        description: row.col("description")?,
        description_revision_id: row.col("description_revision_id")?,
        status: stored(&status)?,
        priority: stored(&priority)?,
        workflow_id: row.col("workflow_id")?,
        phase_id: row.col("phase_id")?,
        phase_changed_by: Actor::from_json(&phase_changed_by)?,
        phase_changed_at: row.col("phase_changed_at")?,
        capabilities: stored_json(&capabilities)?,
        created_at: row.col("created_at")?,
        updated_at: row.col("updated_at")?,
    })
}

pub(super) fn revision(row: &impl StoredRow) -> StoreResult<DescriptionRevision> {
    let author: String = row.col("author")?;
    let cause: String = row.col("cause")?;
    Ok(DescriptionRevision {
        id: row.col("id")?,
        work_item_id: row.col("work_item_id")?,
        number: row.col("number")?,
        text: row.col("text")?,
        author: Actor::from_json(&author)?,
        cause: stored(&cause)?,
        reverted_from: row.col("reverted_from")?,
        source_message_id: row.col("source_message_id")?,
        created_at: row.col("created_at")?,
    })
}

pub(super) fn workflow(row: &impl StoredRow) -> StoreResult<Workflow> {
    let phases: String = row.col("phases")?;
    Ok(Workflow {
        id: row.col("id")?,
        name: row.col("name")?,
        description: row.col("description")?,
        phases: stored_json(&phases)?,
        builtin: row.col("builtin")?,
        created_at: row.col("created_at")?,
        updated_at: row.col("updated_at")?,
    })
}

pub(super) fn skill(row: &impl StoredRow) -> StoreResult<Skill> {
    Ok(Skill {
        name: row.col("name")?,
        version: row.col("version")?,
        description: row.col("description")?,
        manifest: row.col("manifest")?,
        files: Vec::new(),
        file_count: row.col("file_count")?,
        size_bytes: row.col("size_bytes")?,
        created_by: row.col("created_by")?,
        created_at: row.col("created_at")?,
    })
}

pub(super) fn message(row: &impl StoredRow) -> StoreResult<Message> {
    let kind: String = row.col("kind")?;
    let author: String = row.col("author")?;
    let email: Option<String> = row.col("email")?;
    let attachments: String = row.col("attachments")?;
    let delivery_state: Option<String> = row.col("delivery_state")?;
    Ok(Message {
        id: row.col("id")?,
        work_item_id: row.col("work_item_id")?,
        project_id: row.col("project_id")?,
        sequence: row.col("sequence")?,
        kind: stored(&kind)?,
        author: Actor::from_json(&author)?,
        body: row.col("body")?,
        email: email
            .as_deref()
            .map(stored_json::<EmailHeaders>)
            .transpose()?,
        attachments: stored_json::<Vec<AttachmentRef>>(&attachments)?,
        delivery_state: delivery_state.as_deref().map(stored).transpose()?,
        delivery_error: row.col("delivery_error")?,
        created_at: row.col("created_at")?,
    })
}

pub(super) fn decision(row: &impl StoredRow) -> StoreResult<Decision> {
    let choices: String = row.col("choices")?;
    let asked_by: String = row.col("asked_by")?;
    let state: String = row.col("state")?;
    Ok(Decision {
        id: row.col("id")?,
        work_item_id: row.col("work_item_id")?,
        project_id: row.col("project_id")?,
        question: row.col("question")?,
        input_label: row.col("input_label")?,
        choices: stored_json(&choices)?,
        asked_by: Actor::from_json(&asked_by)?,
        assignee_user_id: row.col("assignee_user_id")?,
        state: stored(&state)?,
        answer: row.col("answer")?,
        answered_by: row.col("answered_by")?,
        created_at: row.col("created_at")?,
        resolved_at: row.col("resolved_at")?,
    })
}
