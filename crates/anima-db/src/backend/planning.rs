//! Planning: projects and members, plans, work items with their description
//! history and capabilities, workflows and Akhs.
//!
//! Every write into a project first takes the project's row
//! ([`PostgresStore::LOCK_PROJECT`]), which serialises writers of one
//! project: key numbering, the stale-revision check, the last-Owner check
//! and the archived check all read a state nobody else can change before
//! the transaction commits.

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
        Plan, PlanChanges, PlanProgress, Project, ProjectChanges, ProjectStats, ProjectStatus,
        RevisionCause, WorkItem, WorkItemChanges, WorkItemKey, WorkItemStatus,
    },
    workflow::{Phase, STANDARD_WORKFLOW_ID, Workflow, WorkflowChanges, builtin_workflows},
};
use async_trait::async_trait;
use sqlx::Row;

use super::{PostgresStore, SqliteStore, known_permissions};
use crate::{Page, PlanningStore, ProjectFilter, StoreError, StoreResult, WorkItemFilter};

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

macro_rules! member_select {
    () => {
        "SELECT b.project_id, b.user_id, u.username, b.role_id, r.name AS role_name \
         FROM role_bindings b JOIN users u ON u.id = b.user_id JOIN roles r ON r.id = b.role_id"
    };
}

/// The Owner role: a project always keeps at least one holder.
const OWNER_ROLE_ID: &str = DEFAULT_ROLES[0].id;

macro_rules! planning_sql {
    ($store:ident, $db:ty) => {
        #[async_trait]
        impl PlanningStore for $store {
            async fn create_project(&self, name: &str, description: &str, owner_id: &str) -> StoreResult<Project> {
                let id = new_id();
                let now = now_micros();
                let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                Self::user_in(&mut tx, owner_id).await?;
                sqlx::query(
                    "INSERT INTO projects (id, name, description, status, created_at, updated_at) \
                     VALUES ($1, $2, $3, 'active', $4, $4)",
                )
                .bind(&id)
                .bind(name)
                .bind(description)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO role_bindings (user_id, project_id, role_id, created_at) VALUES ($1, $2, $3, $4)",
                )
                .bind(owner_id)
                .bind(&id)
                .bind(OWNER_ROLE_ID)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                Self::record(&mut tx, EventKind::ProjectCreated, Some(&id), &id, serde_json::json!({ "name": name })).await?;
                let project = Self::project_in(&mut tx, &id).await?;
                self.commit(tx).await?;
                Ok(project)
            }

            async fn get_project(&self, id: &str) -> StoreResult<Project> {
                let mut conn = self.pool.acquire().await?;
                Self::project_in(&mut conn, id).await
            }

            async fn list_projects(&self, filter: &ProjectFilter, page: &PageRequest) -> StoreResult<Page<Project>> {
                let rows = sqlx::query(concat!(
                    project_select!(),
                    " WHERE ($1 = '' OR EXISTS (SELECT 1 FROM role_bindings b \
                       WHERE b.project_id = p.id AND b.user_id = $1)) \
                     AND ($2 = '' OR p.status = $2) AND p.id > $3 ORDER BY p.id LIMIT $4"
                ))
                .bind(filter.member.as_deref().unwrap_or(""))
                .bind(filter.status.map_or("", ProjectStatus::as_str))
                .bind(page.after.as_deref().unwrap_or(""))
                .bind(page.fetch_limit())
                .fetch_all(&self.pool)
                .await?;
                let mut items = rows.iter().map(Self::project_row).collect::<Result<Vec<_>, _>>()?;
                let next_page_token = page.finish(&mut items, |project| project.id.clone());
                Ok(Page { items, next_page_token })
            }

            async fn update_project(&self, id: &str, changes: ProjectChanges) -> StoreResult<Project> {
                let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                Self::writable_project(&mut tx, id).await?;
                let current = Self::project_in(&mut tx, id).await?;
                sqlx::query("UPDATE projects SET name = $2, description = $3, updated_at = $4 WHERE id = $1")
                    .bind(id)
                    .bind(changes.name.as_ref().unwrap_or(&current.name))
                    .bind(changes.description.as_ref().unwrap_or(&current.description))
                    .bind(now_micros())
                    .execute(&mut *tx)
                    .await?;
                Self::record(&mut tx, EventKind::ProjectUpdated, Some(id), id, serde_json::json!({})).await?;
                let project = Self::project_in(&mut tx, id).await?;
                self.commit(tx).await?;
                Ok(project)
            }

            async fn archive_project(&self, id: &str) -> StoreResult<Project> {
                let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                if Self::lock_project(&mut tx, id).await? == ProjectStatus::Active {
                    sqlx::query("UPDATE projects SET status = 'archived', updated_at = $2 WHERE id = $1")
                        .bind(id)
                        .bind(now_micros())
                        .execute(&mut *tx)
                        .await?;
                    Self::record(&mut tx, EventKind::ProjectArchived, Some(id), id, serde_json::json!({})).await?;
                }
                let project = Self::project_in(&mut tx, id).await?;
                self.commit(tx).await?;
                Ok(project)
            }

            async fn list_members(&self, project_id: &str, page: &PageRequest) -> StoreResult<Page<Member>> {
                let mut conn = self.pool.acquire().await?;
                Self::project_exists(&mut conn, project_id).await?;
                let rows = sqlx::query(concat!(
                    member_select!(),
                    " WHERE b.project_id = $1 AND b.user_id > $2 ORDER BY b.user_id LIMIT $3"
                ))
                .bind(project_id)
                .bind(page.after.as_deref().unwrap_or(""))
                .bind(page.fetch_limit())
                .fetch_all(&mut *conn)
                .await?;
                let mut items = rows.iter().map(Self::member_row).collect::<Result<Vec<_>, _>>()?;
                let next_page_token = page.finish(&mut items, |member| member.user_id.clone());
                Ok(Page { items, next_page_token })
            }

            async fn add_member(&self, project_id: &str, user_id: &str, role_id: &str, by: Option<&str>) -> StoreResult<Member> {
                let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                Self::writable_project(&mut tx, project_id).await?;
                let role = Self::role_in(&mut tx, role_id).await?;
                Self::user_in(&mut tx, user_id).await?;
                let current = Self::member_in(&mut tx, project_id, user_id).await?;
                if let Some(by) = by {
                    let held = Self::permissions_in(&mut tx, by, project_id).await?;
                    require_covers(&held, &role.permissions)?;
                    if let Some(current) = &current {
                        require_covers(&held, &Self::role_in(&mut tx, &current.role_id).await?.permissions)?;
                    }
                }
                if let Some(current) = current {
                    if current.role_id == OWNER_ROLE_ID && role_id != OWNER_ROLE_ID {
                        Self::keep_an_owner(&mut tx, project_id).await?;
                    }
                }
                sqlx::query(
                    "INSERT INTO role_bindings (user_id, project_id, role_id, created_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (user_id, project_id) DO UPDATE SET role_id = EXCLUDED.role_id",
                )
                .bind(user_id)
                .bind(project_id)
                .bind(role_id)
                .bind(now_micros())
                .execute(&mut *tx)
                .await?;
                Self::record(&mut tx, EventKind::MemberAdded, Some(project_id), user_id, serde_json::json!({ "role_id": role_id })).await?;
                let member = Self::member_in(&mut tx, project_id, user_id)
                    .await?
                    .ok_or_else(|| DomainError::internal("binding vanished inside its transaction"))?;
                self.commit(tx).await?;
                Ok(member)
            }

            async fn remove_member(&self, project_id: &str, user_id: &str, by: Option<&str>) -> StoreResult<()> {
                let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                Self::writable_project(&mut tx, project_id).await?;
                let member = Self::member_in(&mut tx, project_id, user_id).await?.ok_or_else(|| {
                    DomainError::not_found(
                        reason::MEMBER_NOT_FOUND,
                        format!("user {user_id} is not a member of this project"),
                    )
                })?;
                if let Some(by) = by {
                    let held = Self::permissions_in(&mut tx, by, project_id).await?;
                    require_covers(&held, &Self::role_in(&mut tx, &member.role_id).await?.permissions)?;
                }
                if member.role_id == OWNER_ROLE_ID {
                    Self::keep_an_owner(&mut tx, project_id).await?;
                }
                sqlx::query("DELETE FROM role_bindings WHERE project_id = $1 AND user_id = $2")
                    .bind(project_id)
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?;
                Self::record(&mut tx, EventKind::MemberRemoved, Some(project_id), user_id, serde_json::json!({})).await?;
                self.commit(tx).await
            }

            async fn project_permissions(&self, user_id: &str, project_id: &str) -> StoreResult<Vec<Permission>> {
                let mut conn = self.pool.acquire().await?;
                Self::permissions_in(&mut conn, user_id, project_id).await
            }

            async fn create_plan(&self, plan: NewPlan) -> StoreResult<Plan> {
                let id = new_id();
                let now = now_micros();
                let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                Self::writable_project(&mut tx, &plan.project_id).await?;
                Self::workflow_in(&mut tx, &plan.workflow_id).await?;
                sqlx::query(
                    "INSERT INTO plans (id, project_id, title, description, workflow_id, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $6)",
                )
                .bind(&id)
                .bind(&plan.project_id)
                .bind(&plan.title)
                .bind(&plan.description)
                .bind(&plan.workflow_id)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(|e| StoreError::conflict(e, reason::WORKFLOW_NOT_FOUND))?;
                Self::record(&mut tx, EventKind::PlanCreated, Some(&plan.project_id), &id, serde_json::json!({ "title": plan.title })).await?;
                let created = Self::plan_in(&mut tx, &id).await?;
                self.commit(tx).await?;
                Ok(created)
            }

            async fn get_plan(&self, id: &str) -> StoreResult<Plan> {
                let mut conn = self.pool.acquire().await?;
                Self::plan_in(&mut conn, id).await
            }

            async fn list_plans(&self, project_id: &str, page: &PageRequest) -> StoreResult<Page<Plan>> {
                let mut conn = self.pool.acquire().await?;
                Self::project_exists(&mut conn, project_id).await?;
                let ids: Vec<String> = sqlx::query(
                    "SELECT id FROM plans WHERE project_id = $1 AND id > $2 ORDER BY id LIMIT $3",
                )
                .bind(project_id)
                .bind(page.after.as_deref().unwrap_or(""))
                .bind(page.fetch_limit())
                .fetch_all(&mut *conn)
                .await?
                .iter()
                .map(|row| row.try_get("id"))
                .collect::<Result<_, _>>()
                ?;
                let mut items = Vec::with_capacity(ids.len());
                for id in &ids {
                    items.push(Self::plan_in(&mut conn, id).await?);
                }
                let next_page_token = page.finish(&mut items, |plan| plan.id.clone());
                Ok(Page { items, next_page_token })
            }

            async fn update_plan(&self, id: &str, changes: PlanChanges) -> StoreResult<Plan> {
                let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                let project_id = Self::plan_project(&mut tx, id).await?;
                Self::writable_project(&mut tx, &project_id).await?;
                let current = Self::plan_in(&mut tx, id).await?;
                if let Some(workflow_id) = &changes.workflow_id {
                    Self::workflow_in(&mut tx, workflow_id).await?;
                }
                sqlx::query(
                    "UPDATE plans SET title = $2, description = $3, workflow_id = $4, updated_at = $5 WHERE id = $1",
                )
                .bind(id)
                .bind(changes.title.as_ref().unwrap_or(&current.title))
                .bind(changes.description.as_ref().unwrap_or(&current.description))
                .bind(changes.workflow_id.as_ref().unwrap_or(&current.workflow_id))
                .bind(now_micros())
                .execute(&mut *tx)
                .await
                .map_err(|e| StoreError::conflict(e, reason::WORKFLOW_NOT_FOUND))?;
                Self::record(&mut tx, EventKind::PlanUpdated, Some(&project_id), id, serde_json::json!({})).await?;
                let plan = Self::plan_in(&mut tx, id).await?;
                self.commit(tx).await?;
                Ok(plan)
            }

            async fn delete_plan(&self, id: &str) -> StoreResult<()> {
                let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                let project_id = Self::plan_project(&mut tx, id).await?;
                Self::writable_project(&mut tx, &project_id).await?;
                sqlx::query("DELETE FROM plans WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                Self::record(&mut tx, EventKind::PlanDeleted, Some(&project_id), id, serde_json::json!({})).await?;
                self.commit(tx).await
            }

            async fn create_work_item(&self, item: NewWorkItem) -> StoreResult<WorkItem> {
                let id = new_id();
                let revision_id = new_id();
                let now = now_micros();
                let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                // Workflows change without the project lock, so one named
                // outright is read before the lock, which then holds only
                // the writes. A plan's workflow must be read under it.
                let named_workflow = match (&item.workflow_id, &item.plan_id) {
                    (Some(id), _) => Some(Self::workflow_in(&mut tx, id).await?),
                    (None, None) => Some(Self::workflow_in(&mut tx, STANDARD_WORKFLOW_ID).await?),
                    (None, Some(_)) => None,
                };
                let number = Self::next_work_item_number(&mut tx, &item.project_id).await?;
                let plan_workflow_id: Option<String> = match &item.plan_id {
                    Some(plan_id) => Some(
                        sqlx::query("SELECT workflow_id FROM plans WHERE id = $1 AND project_id = $2")
                            .bind(plan_id)
                            .bind(&item.project_id)
                            .fetch_optional(&mut *tx)
                            .await?
                            .ok_or_else(|| plan_not_found(plan_id))?
                            .try_get("workflow_id")
                            ?,
                    ),
                    None => None,
                };
                let workflow = match named_workflow {
                    Some(workflow) => workflow,
                    None => {
                        let id = plan_workflow_id.as_deref().unwrap_or(STANDARD_WORKFLOW_ID);
                        Self::workflow_in(&mut tx, id).await?
                    }
                };
                let workflow_id = workflow.id.clone();
                let first_phase = workflow
                    .phases
                    .first()
                    .ok_or_else(|| DomainError::internal(format!("workflow {workflow_id} has no phases")))?;
                sqlx::query(
                    "INSERT INTO work_items (id, project_id, plan_id, number, title, description_revision_id, \
                     status, priority, workflow_id, phase_id, phase_changed_by, phase_changed_at, capabilities, \
                     created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, 'open', $7, $8, $9, $10, $11, '[]', $11, $11)",
                )
                .bind(&id)
                .bind(&item.project_id)
                .bind(item.plan_id.as_deref())
                .bind(number)
                .bind(&item.title)
                .bind(&revision_id)
                .bind(item.priority.as_str())
                .bind(&workflow_id)
                .bind(&first_phase.id)
                .bind(item.author.to_json())
                .bind(now)
                .execute(&mut *tx)
                .await?;
                // The first revision: number 1, and the item already points
                // at it, so none of insert_revision's extra work is needed.
                sqlx::query(
                    "INSERT INTO description_revisions (id, work_item_id, number, text, author, cause, \
                     reverted_from, source_message_id, created_at) VALUES ($1, $2, 1, $3, $4, 'create', NULL, NULL, $5)",
                )
                .bind(&revision_id)
                .bind(&id)
                .bind(&item.description)
                .bind(item.author.to_json())
                .bind(now)
                .execute(&mut *tx)
                .await?;
                Self::record_for(
                    &mut tx,
                    EventKind::WorkItemCreated,
                    Some(&item.project_id),
                    Some(&id),
                    &id,
                    serde_json::json!({ "key": WorkItemKey(number).to_string() }),
                )
                .await?;
                self.commit(tx).await?;
                // Everything it holds was just written; reading it back
                // inside the project lock would only hold writers longer.
                Ok(WorkItem {
                    id,
                    project_id: item.project_id,
                    plan_id: item.plan_id,
                    key: WorkItemKey(number),
                    title: item.title,
                    description: item.description,
                    description_revision_id: revision_id,
                    status: WorkItemStatus::Open,
                    priority: item.priority,
                    workflow_id,
                    phase_id: first_phase.id.clone(),
                    phase_changed_by: item.author,
                    phase_changed_at: now,
                    capabilities: Vec::new(),
                    created_at: now,
                    updated_at: now,
                })
            }

            async fn get_work_item(&self, id: &str) -> StoreResult<WorkItem> {
                let mut conn = self.pool.acquire().await?;
                Self::work_item_in(&mut conn, id).await
            }

            async fn get_work_item_for_user(
                &self,
                id: &str,
                user_id: &str,
                permission: Permission,
            ) -> StoreResult<(WorkItem, bool)> {
                let row = sqlx::query(concat!(
                    work_item_select!(
                        ", EXISTS (SELECT 1 FROM role_bindings rb \
                         JOIN role_permissions rp ON rp.role_id = rb.role_id \
                         WHERE rb.user_id = $2 AND rb.project_id = w.project_id \
                         AND rp.permission = $3) AS permitted"
                    ),
                    " WHERE w.id = $1"
                ))
                .bind(id)
                .bind(user_id)
                .bind(permission.as_str())
                .fetch_optional(&self.pool)
                .await?
                .ok_or_else(|| work_item_not_found(&format!("with id {id}")))?;
                Ok((Self::work_item_row(&row)?, row.try_get("permitted")?))
            }

            async fn find_work_item(&self, project_id: &str, key: WorkItemKey) -> StoreResult<WorkItem> {
                let row = sqlx::query(concat!(work_item_select!(), " WHERE w.project_id = $1 AND w.number = $2"))
                    .bind(project_id)
                    .bind(key.0)
                    .fetch_optional(&self.pool)
                    .await?
                    .ok_or_else(|| work_item_not_found(&format!("{key} in this project")))?;
                Self::work_item_row(&row)
            }

            async fn list_work_items(
                &self,
                project_id: &str,
                filter: &WorkItemFilter,
                page: &PageRequest,
            ) -> StoreResult<Page<WorkItem>> {
                let mut conn = self.pool.acquire().await?;
                Self::project_exists(&mut conn, project_id).await?;
                let rows = sqlx::query(concat!(
                    work_item_select!(),
                    " WHERE w.project_id = $1 AND w.number > $2 \
                     AND ($3 = '' OR w.plan_id = $3) AND ($4 = '' OR w.status = $4) \
                     ORDER BY w.number LIMIT $5"
                ))
                .bind(project_id)
                .bind(page.after_number()?)
                .bind(filter.plan_id.as_deref().unwrap_or(""))
                .bind(filter.status.map_or("", WorkItemStatus::as_str))
                .bind(page.fetch_limit())
                .fetch_all(&mut *conn)
                .await?;
                let mut items = rows.iter().map(Self::work_item_row).collect::<Result<Vec<_>, _>>()?;
                let next_page_token = page.finish(&mut items, |item| item.key.0.to_string());
                Ok(Page { items, next_page_token })
            }

            async fn update_work_item(&self, id: &str, changes: WorkItemChanges, actor: &Actor) -> StoreResult<WorkItem> {
                let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                let project_id = Self::work_item_project(&mut tx, id).await?;
                Self::writable_project(&mut tx, &project_id).await?;
                let current = Self::work_item_in(&mut tx, id).await?;
                let now = now_micros();

                let plan_id = match &changes.plan_id {
                    Some(Some(plan_id)) => {
                        if Self::plan_project(&mut tx, plan_id).await? != project_id {
                            return Err(plan_not_found(plan_id).into());
                        }
                        Some(plan_id.clone())
                    }
                    Some(None) => None,
                    None => current.plan_id.clone(),
                };
                let (phase_id, phase_changed_by, phase_changed_at) = match &changes.phase_id {
                    Some(phase_id) if *phase_id != current.phase_id => {
                        let workflow = Self::workflow_in(&mut tx, &current.workflow_id).await?;
                        workflow.require_phase(phase_id)?;
                        (phase_id.clone(), actor.clone(), now)
                    }
                    _ => (current.phase_id.clone(), current.phase_changed_by.clone(), current.phase_changed_at),
                };
                if let Some(edit) = &changes.description {
                    if edit.base_revision_id != current.description_revision_id {
                        return Err(stale_revision(&edit.base_revision_id, &current).into());
                    }
                }
                sqlx::query(
                    "UPDATE work_items SET title = $2, status = $3, priority = $4, plan_id = $5, phase_id = $6, \
                     phase_changed_by = $7, phase_changed_at = $8, updated_at = $9 WHERE id = $1",
                )
                .bind(id)
                .bind(changes.title.as_ref().unwrap_or(&current.title))
                .bind(changes.status.unwrap_or(current.status).as_str())
                .bind(changes.priority.unwrap_or(current.priority).as_str())
                .bind(plan_id.as_deref())
                .bind(&phase_id)
                .bind(phase_changed_by.to_json())
                .bind(phase_changed_at)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(|e| StoreError::conflict(e, reason::PLAN_NOT_FOUND))?;
                // Saving an unchanged text is not a change: no new revision.
                if let Some(edit) = changes.description.filter(|edit| edit.text != current.description) {
                    Self::insert_revision(
                        &mut tx,
                        &new_id(),
                        id,
                        &edit.text,
                        actor,
                        edit.cause,
                        None,
                        edit.source_message_id.as_deref(),
                    )
                    .await?;
                }
                Self::record_for(&mut tx, EventKind::WorkItemUpdated, Some(&project_id), Some(id), id, serde_json::json!({
                    "key": current.key.to_string(),
                })).await?;
                let updated = Self::work_item_in(&mut tx, id).await?;
                self.commit(tx).await?;
                Ok(updated)
            }

            async fn delete_work_item(&self, id: &str) -> StoreResult<()> {
                let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                let project_id = Self::work_item_project(&mut tx, id).await?;
                Self::writable_project(&mut tx, &project_id).await?;
                sqlx::query("DELETE FROM work_items WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                Self::record_for(&mut tx, EventKind::WorkItemDeleted, Some(&project_id), Some(id), id, serde_json::json!({})).await?;
                self.commit(tx).await
            }

            async fn list_revisions(&self, work_item_id: &str, page: &PageRequest) -> StoreResult<Page<DescriptionRevision>> {
                let mut conn = self.pool.acquire().await?;
                Self::work_item_project(&mut conn, work_item_id).await?;
                let rows = sqlx::query(concat!(
                    "SELECT id, work_item_id, number, text, author, cause, reverted_from, source_message_id, \
                     created_at FROM description_revisions",
                    " WHERE work_item_id = $1 AND number > $2 ORDER BY number LIMIT $3"
                ))
                .bind(work_item_id)
                .bind(page.after_number()?)
                .bind(page.fetch_limit())
                .fetch_all(&mut *conn)
                .await?;
                let mut items = rows.iter().map(Self::revision_row).collect::<Result<Vec<_>, _>>()?;
                let next_page_token = page.finish(&mut items, |revision| revision.number.to_string());
                Ok(Page { items, next_page_token })
            }

            async fn revert_description(
                &self,
                work_item_id: &str,
                revision_id: &str,
                base_revision_id: Option<&str>,
                actor: &Actor,
            ) -> StoreResult<WorkItem> {
                let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                let project_id = Self::work_item_project(&mut tx, work_item_id).await?;
                Self::writable_project(&mut tx, &project_id).await?;
                let current = Self::work_item_in(&mut tx, work_item_id).await?;
                if let Some(base) = base_revision_id {
                    if base != current.description_revision_id {
                        return Err(stale_revision(base, &current).into());
                    }
                }
                let row = sqlx::query(concat!(
                    "SELECT id, work_item_id, number, text, author, cause, reverted_from, source_message_id, \
                     created_at FROM description_revisions",
                    " WHERE id = $1 AND work_item_id = $2"
                ))
                .bind(revision_id)
                .bind(work_item_id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| {
                    DomainError::not_found(
                        reason::REVISION_NOT_FOUND,
                        format!("{} has no description revision {revision_id}", current.key),
                    )
                })?;
                let target = Self::revision_row(&row)?;
                Self::insert_revision(
                    &mut tx,
                    &new_id(),
                    work_item_id,
                    &target.text,
                    actor,
                    RevisionCause::Revert,
                    Some(&target.id),
                    None,
                )
                .await?;
                sqlx::query("UPDATE work_items SET updated_at = $2 WHERE id = $1")
                    .bind(work_item_id)
                    .bind(now_micros())
                    .execute(&mut *tx)
                    .await?;
                Self::record_for(&mut tx, EventKind::WorkItemReverted, Some(&project_id), Some(work_item_id), work_item_id, serde_json::json!({
                    "key": current.key.to_string(),
                    "revision": target.number,
                })).await?;
                let updated = Self::work_item_in(&mut tx, work_item_id).await?;
                self.commit(tx).await?;
                Ok(updated)
            }

            async fn set_capabilities(&self, work_item_id: &str, capabilities: Vec<Capability>) -> StoreResult<Vec<Capability>> {
                let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                let project_id = Self::work_item_project(&mut tx, work_item_id).await?;
                Self::writable_project(&mut tx, &project_id).await?;
                sqlx::query("UPDATE work_items SET capabilities = $2, updated_at = $3 WHERE id = $1")
                    .bind(work_item_id)
                    .bind(to_json(&capabilities))
                    .bind(now_micros())
                    .execute(&mut *tx)
                    .await?;
                Self::record_for(&mut tx, EventKind::WorkItemCapabilitiesChanged, Some(&project_id), Some(work_item_id), work_item_id, serde_json::json!({
                    "count": capabilities.len(),
                })).await?;
                self.commit(tx).await?;
                Ok(capabilities)
            }

            async fn list_workflows(&self, page: &PageRequest) -> StoreResult<Page<Workflow>> {
                let rows = sqlx::query(concat!(
                    "SELECT id, name, description, phases, builtin, created_at, updated_at FROM workflows",
                    " WHERE id > $1 ORDER BY id LIMIT $2"
                ))
                .bind(page.after.as_deref().unwrap_or(""))
                .bind(page.fetch_limit())
                .fetch_all(&self.pool)
                .await?;
                let mut items = rows.iter().map(Self::workflow_row).collect::<Result<Vec<_>, _>>()?;
                let next_page_token = page.finish(&mut items, |workflow| workflow.id.clone());
                Ok(Page { items, next_page_token })
            }

            async fn get_workflow(&self, id: &str) -> StoreResult<Workflow> {
                let mut conn = self.pool.acquire().await?;
                Self::workflow_in(&mut conn, id).await
            }

            async fn create_workflow(&self, name: &str, description: &str, phases: Vec<Phase>) -> StoreResult<Workflow> {
                let id = new_id();
                let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                sqlx::query(
                    "INSERT INTO workflows (id, name, description, phases, builtin, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, FALSE, $5, $5)",
                )
                .bind(&id)
                .bind(name)
                .bind(description)
                .bind(to_json(&phases))
                .bind(now_micros())
                .execute(&mut *tx)
                .await
                .map_err(|e| StoreError::conflict(e, reason::WORKFLOW_NAME_TAKEN))?;
                Self::record(&mut tx, EventKind::WorkflowCreated, None, &id, serde_json::json!({ "name": name })).await?;
                let workflow = Self::workflow_in(&mut tx, &id).await?;
                self.commit(tx).await?;
                Ok(workflow)
            }

            async fn update_workflow(&self, id: &str, changes: WorkflowChanges) -> StoreResult<Workflow> {
                let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                let current = Self::workflow_in(&mut tx, id).await?;
                if current.builtin {
                    return Err(builtin_workflow(&current).into());
                }
                if let Some(phases) = &changes.phases {
                    let used: Vec<String> = sqlx::query("SELECT DISTINCT phase_id FROM work_items WHERE workflow_id = $1")
                        .bind(id)
                        .fetch_all(&mut *tx)
                        .await?
                        .iter()
                        .map(|row| row.try_get("phase_id"))
                        .collect::<Result<_, _>>()
                        ?;
                    if let Some(dropped) = used.iter().find(|used| !phases.iter().any(|phase| phase.id == **used)) {
                        return Err(DomainError::failed_precondition(
                            reason::WORKFLOW_IN_USE,
                            format!("work items are in phase {dropped:?}; move them before removing it"),
                        ).into());
                    }
                }
                sqlx::query("UPDATE workflows SET name = $2, description = $3, phases = $4, updated_at = $5 WHERE id = $1")
                    .bind(id)
                    .bind(changes.name.as_ref().unwrap_or(&current.name))
                    .bind(changes.description.as_ref().unwrap_or(&current.description))
                    .bind(to_json(changes.phases.as_ref().unwrap_or(&current.phases)))
                    .bind(now_micros())
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| StoreError::conflict(e, reason::WORKFLOW_NAME_TAKEN))?;
                Self::record(&mut tx, EventKind::WorkflowUpdated, None, id, serde_json::json!({})).await?;
                let workflow = Self::workflow_in(&mut tx, id).await?;
                self.commit(tx).await?;
                Ok(workflow)
            }

            async fn delete_workflow(&self, id: &str) -> StoreResult<()> {
                let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                let workflow = Self::workflow_in(&mut tx, id).await?;
                if workflow.builtin {
                    return Err(builtin_workflow(&workflow).into());
                }
                let users: i64 = sqlx::query(
                    "SELECT (SELECT COUNT(*) FROM plans WHERE workflow_id = $1) \
                     + (SELECT COUNT(*) FROM work_items WHERE workflow_id = $1) AS n",
                )
                .bind(id)
                .fetch_one(&mut *tx)
                .await
                .and_then(|row| row.try_get("n"))
                ?;
                if users > 0 {
                    return Err(DomainError::failed_precondition(
                        reason::WORKFLOW_IN_USE,
                        format!("workflow {:?} is used by {users} plan(s) and work item(s)", workflow.name),
                    ).into());
                }
                sqlx::query("DELETE FROM workflows WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| StoreError::conflict(e, reason::WORKFLOW_IN_USE))?;
                Self::record(&mut tx, EventKind::WorkflowDeleted, None, id, serde_json::json!({})).await?;
                self.commit(tx).await
            }

            async fn list_akhs(&self, page: &PageRequest) -> StoreResult<Page<Akh>> {
                let rows = sqlx::query(concat!(
                    "SELECT id, name, description, avatar_color, created_at, updated_at FROM akhs",
                    " WHERE id > $1 ORDER BY id LIMIT $2"
                ))
                .bind(page.after.as_deref().unwrap_or(""))
                .bind(page.fetch_limit())
                .fetch_all(&self.pool)
                .await?;
                let mut items = rows.iter().map(Self::akh_row).collect::<Result<Vec<_>, _>>()?;
                let next_page_token = page.finish(&mut items, |akh| akh.id.clone());
                Ok(Page { items, next_page_token })
            }

            async fn get_akh(&self, id: &str) -> StoreResult<Akh> {
                let mut conn = self.pool.acquire().await?;
                Self::akh_in(&mut conn, id).await
            }

            async fn create_akh(&self, name: &str, description: &str, avatar_color: &str) -> StoreResult<Akh> {
                let id = new_id();
                let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                sqlx::query(
                    "INSERT INTO akhs (id, name, description, avatar_color, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $5)",
                )
                .bind(&id)
                .bind(name)
                .bind(description)
                .bind(avatar_color)
                .bind(now_micros())
                .execute(&mut *tx)
                .await
                .map_err(|e| StoreError::conflict(e, reason::AKH_NAME_TAKEN))?;
                Self::record(&mut tx, EventKind::AkhCreated, None, &id, serde_json::json!({ "name": name })).await?;
                let akh = Self::akh_in(&mut tx, &id).await?;
                self.commit(tx).await?;
                Ok(akh)
            }

            async fn update_akh(&self, id: &str, changes: AkhChanges) -> StoreResult<Akh> {
                let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                let current = Self::akh_in(&mut tx, id).await?;
                sqlx::query("UPDATE akhs SET name = $2, description = $3, avatar_color = $4, updated_at = $5 WHERE id = $1")
                    .bind(id)
                    .bind(changes.name.as_ref().unwrap_or(&current.name))
                    .bind(changes.description.as_ref().unwrap_or(&current.description))
                    .bind(changes.avatar_color.as_ref().unwrap_or(&current.avatar_color))
                    .bind(now_micros())
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| StoreError::conflict(e, reason::AKH_NAME_TAKEN))?;
                Self::record(&mut tx, EventKind::AkhUpdated, None, id, serde_json::json!({})).await?;
                let akh = Self::akh_in(&mut tx, id).await?;
                self.commit(tx).await?;
                Ok(akh)
            }

            async fn delete_akh(&self, id: &str) -> StoreResult<()> {
                let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                Self::akh_in(&mut tx, id).await?;
                sqlx::query("DELETE FROM akhs WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                Self::record(&mut tx, EventKind::AkhDeleted, None, id, serde_json::json!({})).await?;
                self.commit(tx).await
            }
        }

        impl $store {
            /// Takes the project's row for the rest of the transaction and
            /// returns its status.
            pub(super) async fn lock_project(
                conn: &mut <$db as sqlx::Database>::Connection,
                id: &str,
            ) -> StoreResult<ProjectStatus> {
                let status: String = sqlx::query(Self::LOCK_PROJECT)
                    .bind(id)
                    .fetch_optional(&mut *conn)
                    .await?
                    .ok_or_else(|| project_not_found(id))?
                    .try_get("status")
                    ?;
                stored(&status)
            }

            /// Locks a project that must accept writes and takes the next
            /// work item number from its counter, in one round trip: the
            /// lock is held until commit, so every statement saved inside
            /// it is throughput for every writer of the project.
            async fn next_work_item_number(
                conn: &mut <$db as sqlx::Database>::Connection,
                project_id: &str,
            ) -> StoreResult<i64> {
                let row = sqlx::query(
                    "UPDATE projects SET work_item_seq = work_item_seq + 1 WHERE id = $1 \
                     RETURNING status, work_item_seq",
                )
                .bind(project_id)
                .fetch_optional(&mut *conn)
                .await?
                .ok_or_else(|| project_not_found(project_id))?;
                let status: String = row.try_get("status")?;
                if stored::<ProjectStatus>(&status)? == ProjectStatus::Archived {
                    return Err(archived().into());
                }
                row.try_get("work_item_seq").map_err(StoreError::from)
            }

            /// Fails unless the project exists; for reads, which take no lock.
            pub(super) async fn project_exists(
                conn: &mut <$db as sqlx::Database>::Connection,
                id: &str,
            ) -> StoreResult<()> {
                sqlx::query("SELECT id FROM projects WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut *conn)
                    .await?
                    .map(drop)
                    .ok_or_else(|| project_not_found(id).into())
            }

            /// Locks a project that must accept writes.
            pub(super) async fn writable_project(
                conn: &mut <$db as sqlx::Database>::Connection,
                id: &str,
            ) -> StoreResult<()> {
                match Self::lock_project(conn, id).await? {
                    ProjectStatus::Active => Ok(()),
                    ProjectStatus::Archived => Err(archived().into()),
                }
            }

            fn project_row(row: &<$db as sqlx::Database>::Row) -> StoreResult<Project> {
                let status: String = row.try_get("status")?;
                Ok(Project {
                    id: row.try_get("id")?,
                    name: row.try_get("name")?,
                    description: row.try_get("description")?,
                    status: stored(&status)?,
                    stats: ProjectStats {
                        plans: row.try_get("plan_count")?,
                        work_items: row.try_get("item_count")?,
                        open_work_items: row.try_get("open_count")?,
                        active_sessions: row.try_get("session_count")?,
                        open_decisions: row.try_get("decision_count")?,
                    },
                    created_at: row.try_get("created_at")?,
                    updated_at: row.try_get("updated_at")?,
                })
            }

            async fn project_in(
                conn: &mut <$db as sqlx::Database>::Connection,
                id: &str,
            ) -> StoreResult<Project> {
                let sql = concat!(project_select!(), " WHERE p.id = $1");
                Self::one_by_id(conn, sql, id, Self::project_row, || project_not_found(id)).await
            }

            fn member_row(row: &<$db as sqlx::Database>::Row) -> StoreResult<Member> {
                Ok(Member {
                    project_id: row.try_get("project_id")?,
                    user_id: row.try_get("user_id")?,
                    username: row.try_get("username")?,
                    role_id: row.try_get("role_id")?,
                    role_name: row.try_get("role_name")?,
                })
            }

            async fn member_in(
                conn: &mut <$db as sqlx::Database>::Connection,
                project_id: &str,
                user_id: &str,
            ) -> StoreResult<Option<Member>> {
                sqlx::query(concat!(member_select!(), " WHERE b.project_id = $1 AND b.user_id = $2"))
                    .bind(project_id)
                    .bind(user_id)
                    .fetch_optional(&mut *conn)
                    .await?
                    .map(|row| Self::member_row(&row))
                    .transpose()
            }

            async fn permissions_in(
                conn: &mut <$db as sqlx::Database>::Connection,
                user_id: &str,
                project_id: &str,
            ) -> StoreResult<Vec<Permission>> {
                let names: Vec<String> = sqlx::query(
                    "SELECT rp.permission FROM role_bindings rb \
                     JOIN role_permissions rp ON rp.role_id = rb.role_id \
                     WHERE rb.user_id = $1 AND rb.project_id = $2",
                )
                .bind(user_id)
                .bind(project_id)
                .fetch_all(&mut *conn)
                .await?
                .iter()
                .map(|row| row.try_get("permission"))
                .collect::<Result<_, _>>()
                ?;
                Ok(known_permissions(names))
            }

            /// Refuses to take the Owner role from its last holder.
            async fn keep_an_owner(
                conn: &mut <$db as sqlx::Database>::Connection,
                project_id: &str,
            ) -> StoreResult<()> {
                let owners: i64 = sqlx::query(
                    "SELECT COUNT(*) AS n FROM role_bindings WHERE project_id = $1 AND role_id = $2",
                )
                .bind(project_id)
                .bind(OWNER_ROLE_ID)
                .fetch_one(&mut *conn)
                .await
                .and_then(|row| row.try_get("n"))
                ?;
                Ok(keep_an_owner(owners, None)?)
            }

            async fn plan_project(
                conn: &mut <$db as sqlx::Database>::Connection,
                id: &str,
            ) -> StoreResult<String> {
                sqlx::query("SELECT project_id FROM plans WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut *conn)
                    .await?
                    .ok_or_else(|| plan_not_found(id))?
                    .try_get("project_id")
                    .map_err(StoreError::from)
            }

            async fn plan_in(
                conn: &mut <$db as sqlx::Database>::Connection,
                id: &str,
            ) -> StoreResult<Plan> {
                let row = sqlx::query(concat!(
                    "SELECT id, project_id, title, description, workflow_id, created_at, updated_at FROM plans",
                    " WHERE id = $1"
                ))
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?
                .ok_or_else(|| plan_not_found(id))?;
                let workflow_id: String = row.try_get("workflow_id")?;
                let workflow = Self::workflow_in(&mut *conn, &workflow_id).await?;
                let counts = sqlx::query(
                    "SELECT phase_id, status, COUNT(*) AS n FROM work_items \
                     WHERE plan_id = $1 AND status <> 'cancelled' GROUP BY phase_id, status",
                )
                .bind(id)
                .fetch_all(&mut *conn)
                .await?;
                let mut progress = PlanProgress {
                    total: 0,
                    done: 0,
                    phases: workflow
                        .phases
                        .iter()
                        .map(|phase| PhaseProgress {
                            phase_id: phase.id.clone(),
                            phase_name: phase.name.clone(),
                            total: 0,
                            done: 0,
                        })
                        .collect(),
                };
                for count in &counts {
                    let phase_id: String = count.try_get("phase_id")?;
                    let status: String = count.try_get("status")?;
                    let n: i64 = count.try_get("n")?;
                    let done = if status == WorkItemStatus::Done.as_str() { n } else { 0 };
                    progress.total += n;
                    progress.done += done;
                    if let Some(phase) = progress.phases.iter_mut().find(|p| p.phase_id == phase_id) {
                        phase.total += n;
                        phase.done += done;
                    }
                }
                Ok(Plan {
                    id: row.try_get("id")?,
                    project_id: row.try_get("project_id")?,
                    title: row.try_get("title")?,
                    description: row.try_get("description")?,
                    workflow_id,
                    progress,
                    created_at: row.try_get("created_at")?,
                    updated_at: row.try_get("updated_at")?,
                })
            }

            pub(super) async fn work_item_project(
                conn: &mut <$db as sqlx::Database>::Connection,
                id: &str,
            ) -> StoreResult<String> {
                sqlx::query("SELECT project_id FROM work_items WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut *conn)
                    .await?
                    .ok_or_else(|| work_item_not_found(&format!("with id {id}")))?
                    .try_get("project_id")
                    .map_err(StoreError::from)
            }

            fn work_item_row(row: &<$db as sqlx::Database>::Row) -> StoreResult<WorkItem> {
                let status: String = row.try_get("status")?;
                let priority: String = row.try_get("priority")?;
                let phase_changed_by: String = row.try_get("phase_changed_by")?;
                let capabilities: String = row.try_get("capabilities")?;
                Ok(WorkItem {
                    id: row.try_get("id")?,
                    project_id: row.try_get("project_id")?,
                    plan_id: row.try_get("plan_id")?,
                    key: WorkItemKey(row.try_get("number")?),
                    title: row.try_get("title")?,
                    description: row.try_get("description")?,
                    description_revision_id: row.try_get("description_revision_id")?,
                    status: stored(&status)?,
                    priority: stored(&priority)?,
                    workflow_id: row.try_get("workflow_id")?,
                    phase_id: row.try_get("phase_id")?,
                    phase_changed_by: Actor::from_json(&phase_changed_by)?,
                    phase_changed_at: row.try_get("phase_changed_at")?,
                    capabilities: stored_json(&capabilities)?,
                    created_at: row.try_get("created_at")?,
                    updated_at: row.try_get("updated_at")?,
                })
            }

            pub(super) async fn work_item_in(
                conn: &mut <$db as sqlx::Database>::Connection,
                id: &str,
            ) -> StoreResult<WorkItem> {
                let sql = concat!(work_item_select!(), " WHERE w.id = $1");
                Self::one_by_id(conn, sql, id, Self::work_item_row, || work_item_not_found(&format!("with id {id}"))).await
            }

            /// Appends a revision and makes it the item's current one.
            #[allow(clippy::too_many_arguments)]
            async fn insert_revision(
                conn: &mut <$db as sqlx::Database>::Connection,
                id: &str,
                work_item_id: &str,
                text: &str,
                author: &Actor,
                cause: RevisionCause,
                reverted_from: Option<&str>,
                source_message_id: Option<&str>,
            ) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO description_revisions (id, work_item_id, number, text, author, cause, \
                     reverted_from, source_message_id, created_at) \
                     SELECT $1, $2, COALESCE(MAX(number), 0) + 1, $3, $4, $5, $6, $7, $8 \
                     FROM description_revisions WHERE work_item_id = $2",
                )
                .bind(id)
                .bind(work_item_id)
                .bind(text)
                .bind(author.to_json())
                .bind(cause.as_str())
                .bind(reverted_from)
                .bind(source_message_id)
                .bind(now_micros())
                .execute(&mut *conn)
                .await?;
                sqlx::query("UPDATE work_items SET description_revision_id = $2 WHERE id = $1")
                    .bind(work_item_id)
                    .bind(id)
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            }

            fn revision_row(row: &<$db as sqlx::Database>::Row) -> StoreResult<DescriptionRevision> {
                let author: String = row.try_get("author")?;
                let cause: String = row.try_get("cause")?;
                Ok(DescriptionRevision {
                    id: row.try_get("id")?,
                    work_item_id: row.try_get("work_item_id")?,
                    number: row.try_get("number")?,
                    text: row.try_get("text")?,
                    author: Actor::from_json(&author)?,
                    cause: stored(&cause)?,
                    reverted_from: row.try_get("reverted_from")?,
                    source_message_id: row.try_get("source_message_id")?,
                    created_at: row.try_get("created_at")?,
                })
            }

            fn workflow_row(row: &<$db as sqlx::Database>::Row) -> StoreResult<Workflow> {
                let phases: String = row.try_get("phases")?;
                Ok(Workflow {
                    id: row.try_get("id")?,
                    name: row.try_get("name")?,
                    description: row.try_get("description")?,
                    phases: stored_json(&phases)?,
                    builtin: row.try_get("builtin")?,
                    created_at: row.try_get("created_at")?,
                    updated_at: row.try_get("updated_at")?,
                })
            }

            pub(super) async fn workflow_in(
                conn: &mut <$db as sqlx::Database>::Connection,
                id: &str,
            ) -> StoreResult<Workflow> {
                let sql = concat!(
                    "SELECT id, name, description, phases, builtin, created_at, updated_at FROM workflows",
                    " WHERE id = $1"
                );
                Self::one_by_id(conn, sql, id, Self::workflow_row, || workflow_not_found(id)).await
            }

            fn akh_row(row: &<$db as sqlx::Database>::Row) -> StoreResult<Akh> {
                Ok(Akh {
                    id: row.try_get("id")?,
                    name: row.try_get("name")?,
                    description: row.try_get("description")?,
                    avatar_color: row.try_get("avatar_color")?,
                    created_at: row.try_get("created_at")?,
                    updated_at: row.try_get("updated_at")?,
                })
            }

            pub(super) async fn akh_in(
                conn: &mut <$db as sqlx::Database>::Connection,
                id: &str,
            ) -> StoreResult<Akh> {
                let sql = concat!(
                    "SELECT id, name, description, avatar_color, created_at, updated_at FROM akhs",
                    " WHERE id = $1"
                );
                Self::one_by_id(conn, sql, id, Self::akh_row, || akh_not_found(id)).await
            }

            /// Makes the built-in workflows match this build's definitions.
            pub(super) async fn seed_workflows(&self) -> StoreResult<()> {
                let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                let now = now_micros();
                for workflow in builtin_workflows() {
                    sqlx::query(
                        "INSERT INTO workflows (id, name, description, phases, builtin, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, TRUE, $5, $5) \
                         ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, \
                         description = EXCLUDED.description, phases = EXCLUDED.phases, builtin = TRUE",
                    )
                    .bind(&workflow.id)
                    .bind(&workflow.name)
                    .bind(&workflow.description)
                    .bind(to_json(&workflow.phases))
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                self.commit(tx).await
            }
        }
    };
}

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

planning_sql!(PostgresStore, sqlx::Postgres);
planning_sql!(SqliteStore, sqlx::Sqlite);
