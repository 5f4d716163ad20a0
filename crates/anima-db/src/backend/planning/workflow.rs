//! Workflows: the built-in ones are seeded from code and read-only.

use super::*;

macro_rules! workflow_sql {
    ($store:ident, $db:ty) => {
        #[async_trait]
        impl WorkflowStore for $store {
            async fn list_workflows(&self, page: &PageRequest) -> StoreResult<Page<Workflow>> {
                let rows = sqlx::query(concat!(
                    "SELECT id, name, description, phases, builtin, created_at, updated_at FROM workflows",
                    " WHERE id > $1 ORDER BY id LIMIT $2"
                ))
                .bind(page.after.as_deref().unwrap_or(""))
                .bind(page.fetch_limit())
                .fetch_all(&self.pool)
                .await?;
                page_of(&rows, crate::backend::rows::workflow, page, |workflow| workflow.id.clone())
            }

            async fn get_workflow(&self, id: &str) -> StoreResult<Workflow> {
                let mut conn = self.pool.acquire().await?;
                Self::workflow_in(&mut conn, id).await
            }

            async fn create_workflow(&self, name: &str, description: &str, phases: Vec<Phase>) -> StoreResult<Workflow> {
                let id = new_id();
                let (mut tx, ordered) = self.begin_ordered(&id).await?;
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
                Self::record(&mut tx, ordered, EventKind::WorkflowCreated, None, &id, serde_json::json!({ "name": name })).await?;
                let workflow = Self::workflow_in(&mut tx, &id).await?;
                self.commit(tx).await?;
                Ok(workflow)
            }

            async fn update_workflow(&self, id: &str, changes: WorkflowChanges) -> StoreResult<Workflow> {
                let (mut tx, ordered) = self.begin_ordered(id).await?;
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
                Self::record(&mut tx, ordered, EventKind::WorkflowUpdated, None, id, serde_json::json!({})).await?;
                let workflow = Self::workflow_in(&mut tx, id).await?;
                self.commit(tx).await?;
                Ok(workflow)
            }

            async fn delete_workflow(&self, id: &str) -> StoreResult<()> {
                let (mut tx, ordered) = self.begin_ordered(id).await?;
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
                Self::record(&mut tx, ordered, EventKind::WorkflowDeleted, None, id, serde_json::json!({})).await?;
                self.commit(tx).await
            }
        }

        impl $store {

            pub(in crate::backend) async fn workflow_in(
                conn: &mut <$db as sqlx::Database>::Connection,
                id: &str,
            ) -> StoreResult<Workflow> {
                let sql = concat!(
                    "SELECT id, name, description, phases, builtin, created_at, updated_at FROM workflows",
                    " WHERE id = $1"
                );
                Self::one_by_id(conn, sql, id, crate::backend::rows::workflow, || workflow_not_found(id)).await
            }

            /// The workflow a new work item starts in. Built-in workflows
            /// cannot be edited and are seeded from this build at start, so
            /// they come from memory: one round trip less on the default
            /// create path, which holds its project's ordering lock.
            pub(in crate::backend) async fn starting_workflow(
                conn: &mut <$db as sqlx::Database>::Connection,
                id: &str,
            ) -> StoreResult<Workflow> {
                match builtin_workflows().into_iter().find(|workflow| workflow.id == id) {
                    Some(builtin) => Ok(builtin),
                    None => Self::workflow_in(conn, id).await,
                }
            }

            /// Makes the built-in workflows match this build's definitions.
            pub(in crate::backend) async fn seed_workflows(&self) -> StoreResult<()> {
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

workflow_sql!(PostgresStore, sqlx::Postgres);
workflow_sql!(SqliteStore, sqlx::Sqlite);
