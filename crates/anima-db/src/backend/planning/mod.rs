//! Planning: projects and members, plans, work items with their description
//! history and capabilities, workflows and Akhs.
//!
//! Every write into a project first takes the project's ordering lock
//! (`lock_project`), which serialises writers of one project: key
//! numbering, the stale-revision check, the last-Owner check and the
//! archived check all read a state nobody else can change before the
//! transaction commits.

use std::str::FromStr;

use anima_core::{
    DomainError, Permission,
    capability::Capability,
    error::reason,
    event::EventKind,
    id::new_id,
    model::now_micros,
    paging::PageRequest,
    permission::{DEFAULT_ROLES, keep_an_owner, require_covers},
    planning::{
        Actor, Akh, AkhChanges, DescriptionRevision, Member, NewPlan, NewWorkItem, PhaseProgress,
        Plan, PlanChanges, PlanProgress, Project, ProjectChanges, ProjectStatus, RevisionCause,
        WorkItem, WorkItemChanges, WorkItemKey, WorkItemStatus,
    },
    workflow::{Phase, STANDARD_WORKFLOW_ID, Workflow, WorkflowChanges, builtin_workflows},
};
use async_trait::async_trait;
use sqlx::Row;

use super::{Ordered, PostgresStore, SqliteStore, known_permissions, page_of};
use crate::{
    AkhStore, Page, PlanStore, ProjectFilter, ProjectStore, StoreError, StoreResult,
    WorkItemFilter, WorkItemStore, WorkflowStore,
};

/// Reads an enum stored as text; a value this build does not know is a
/// server fault, not the caller's.
pub(super) fn stored<T: FromStr<Err = DomainError>>(text: &str) -> StoreResult<T> {
    text.parse().map_err(|err: DomainError| {
        DomainError::internal(format!("stored value: {}", err.message)).into()
    })
}

pub(super) fn stored_json<T: serde::de::DeserializeOwned>(json: &str) -> StoreResult<T> {
    serde_json::from_str(json).map_err(|e| {
        DomainError::internal(format!("stored JSON {json:?} is unreadable: {e}")).into()
    })
}

pub(super) fn to_json<T: serde::Serialize>(value: &T) -> String {
    // Plain data with string keys serialises without fail.
    serde_json::to_string(value).unwrap_or_default()
}

fn project_not_found(id: &str) -> DomainError {
    DomainError::not_found(
        reason::PROJECT_NOT_FOUND,
        format!("no project with id {id}"),
    )
}

fn archived() -> DomainError {
    DomainError::failed_precondition(
        reason::PROJECT_ARCHIVED,
        "the project is archived; it can be read but not changed",
    )
}

fn plan_not_found(id: &str) -> DomainError {
    DomainError::not_found(
        reason::PLAN_NOT_FOUND,
        format!("no plan with id {id} in this project"),
    )
}

fn work_item_not_found(what: &str) -> DomainError {
    DomainError::not_found(reason::WORK_ITEM_NOT_FOUND, format!("no work item {what}"))
}

fn workflow_not_found(id: &str) -> DomainError {
    DomainError::not_found(
        reason::WORKFLOW_NOT_FOUND,
        format!("no workflow with id {id}"),
    )
}

fn akh_not_found(id: &str) -> DomainError {
    DomainError::not_found(reason::AKH_NOT_FOUND, format!("no Akh with id {id}"))
}

fn builtin_workflow(workflow: &Workflow) -> DomainError {
    DomainError::failed_precondition(
        reason::WORKFLOW_BUILTIN,
        format!(
            "the built-in workflow {:?} is read-only; create a copy with copy_from_id",
            workflow.name
        ),
    )
}

macro_rules! project_select {
    () => {
        "SELECT p.id, p.name, p.description, p.status, p.created_at, p.updated_at, \
         (SELECT COUNT(*) FROM plans x WHERE x.project_id = p.id) AS plan_count, \
         (SELECT COUNT(*) FROM work_items w WHERE w.project_id = p.id) AS item_count, \
         (SELECT COUNT(*) FROM work_items w WHERE w.project_id = p.id \
            AND w.status NOT IN ('done', 'cancelled')) AS open_count, \
         (SELECT COUNT(*) FROM agent_sessions s WHERE s.project_id = p.id \
            AND s.status IN ('provisioning', 'running', 'paused')) AS session_count, \
         (SELECT COUNT(*) FROM decisions d WHERE d.project_id = p.id \
            AND d.state = 'open') AS decision_count \
         FROM projects p"
    };
}

/// The columns `work_item_row` reads, with optional extra columns.
macro_rules! work_item_select {
    () => {
        work_item_select!("")
    };
    ($extra:literal) => {
        concat!(
            "SELECT w.id, w.project_id, w.plan_id, w.number, w.title, r.text AS description, \
             w.description_revision_id, w.status, w.priority, w.workflow_id, w.phase_id, \
             w.phase_changed_by, w.phase_changed_at, w.capabilities, w.created_at, w.updated_at",
            $extra,
            " FROM work_items w JOIN description_revisions r ON r.id = w.description_revision_id"
        )
    };
}

/// The rows of a new work item and of its first revision, by the
/// parameters `create_work_item` binds: $1 id, $2 project, $3 plan,
/// $4 number, $5 title, $6 revision id, $7 priority, $8 workflow,
/// $9 phase, $10 author, $11 time, $12 description; its event takes
/// $13 kind and $14 payload.
macro_rules! new_work_item_rows {
    (item) => {
        "INSERT INTO work_items (id, project_id, plan_id, number, title, description_revision_id, \
         status, priority, workflow_id, phase_id, phase_changed_by, phase_changed_at, capabilities, \
         created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 'open', $7, $8, $9, $10, $11, '[]', $11, $11)"
    };
    // Number 1, and the item already points at it: none of
    // insert_revision's extra work is needed.
    (revision) => {
        "INSERT INTO description_revisions (id, work_item_id, number, text, author, cause, \
         reverted_from, source_message_id, created_at) \
         VALUES ($6, $1, 1, $12, $10, 'create', NULL, NULL, $11)"
    };
}

impl PostgresStore {
    /// A new work item, its first revision and its event in one
    /// statement: one round trip inside the project's ordering lock
    /// instead of three (PostgreSQL checks the revision's reference to
    /// the item at the statement's end).
    const INSERT_NEW_WORK_ITEM: &'static str = concat!(
        "WITH item AS (",
        new_work_item_rows!(item),
        "), revision AS (",
        new_work_item_rows!(revision),
        ") INSERT INTO events (kind, project_id, entity_id, work_item_id, payload, created_at, txid) \
         VALUES ($13, $2, $1, $1, $14, $11, pg_current_xact_id()::text::bigint)"
    );
}

impl SqliteStore {
    /// The same three rows as three statements of one query (SQLite has
    /// no data-modifying `WITH`; the file is local, so no round trip is
    /// saved or lost).
    const INSERT_NEW_WORK_ITEM: &'static str = concat!(
        new_work_item_rows!(item),
        "; ",
        new_work_item_rows!(revision),
        "; INSERT INTO events (kind, project_id, entity_id, work_item_id, payload, created_at) \
         VALUES ($13, $2, $1, $1, $14, $11)"
    );
}

macro_rules! member_select {
    () => {
        "SELECT b.project_id, b.user_id, u.username, b.role_id, r.name AS role_name \
         FROM role_bindings b JOIN users u ON u.id = b.user_id JOIN roles r ON r.id = b.role_id"
    };
}

/// The Owner role: a project always keeps at least one holder.
const OWNER_ROLE_ID: &str = DEFAULT_ROLES[0].id;

fn stale_revision(base: &str, current: &WorkItem) -> DomainError {
    DomainError::aborted(
        reason::STALE_REVISION,
        format!(
            "{} changed meanwhile: the edit was based on revision {base}, the current one is {}; \
             re-read the description and apply the edit again",
            current.key, current.description_revision_id
        ),
    )
}

// After the macros above, which the parts use.
mod akh;
mod plan;
mod project;
mod work_item;
mod workflow;
