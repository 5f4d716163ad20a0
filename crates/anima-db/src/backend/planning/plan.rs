//! Plans, with their progress computed from their work items on every read.

use super::*;

macro_rules! plan_sql {
    ($store:ident, $db:ty) => {
        #[async_trait]
        impl PlanStore for $store {
            async fn create_plan(&self, plan: NewPlan) -> StoreResult<Plan> {
                let id = new_id();
                let now = now_micros();
                let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                let ordered = Self::writable_project(&mut tx, &plan.project_id).await?;
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
                Self::record(&mut tx, ordered, EventKind::PlanCreated, Some(&plan.project_id), &id, serde_json::json!({ "title": plan.title })).await?;
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
                let rows = sqlx::query(
                    "SELECT id FROM plans WHERE project_id = $1 AND id > $2 ORDER BY id LIMIT $3",
                )
                .bind(project_id)
                .bind(page.after.as_deref().unwrap_or(""))
                .bind(page.fetch_limit())
                .fetch_all(&mut *conn)
                .await?;
                crate::backend::page_by_ids(
                    &mut *conn,
                    rows,
                    page,
                    async |conn, id| Self::plan_in(conn, id).await,
                    |plan| plan.id.clone(),
                )
                .await
            }

            async fn update_plan(&self, id: &str, changes: PlanChanges) -> StoreResult<Plan> {
                let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                let project_id = Self::plan_project(&mut tx, id).await?;
                let ordered = Self::writable_project(&mut tx, &project_id).await?;
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
                Self::record(&mut tx, ordered, EventKind::PlanUpdated, Some(&project_id), id, serde_json::json!({})).await?;
                let plan = Self::plan_in(&mut tx, id).await?;
                self.commit(tx).await?;
                Ok(plan)
            }

            async fn delete_plan(&self, id: &str) -> StoreResult<()> {
                let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                let project_id = Self::plan_project(&mut tx, id).await?;
                let ordered = Self::writable_project(&mut tx, &project_id).await?;
                sqlx::query("DELETE FROM plans WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                Self::record(&mut tx, ordered, EventKind::PlanDeleted, Some(&project_id), id, serde_json::json!({})).await?;
                self.commit(tx).await
            }
        }

        impl $store {
            pub(in crate::backend) async fn plan_project(
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

            pub(in crate::backend) async fn plan_in(
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
        }
    };
}

plan_sql!(PostgresStore, sqlx::Postgres);
plan_sql!(SqliteStore, sqlx::Sqlite);
