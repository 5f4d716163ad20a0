//! Work items, their description revisions and capabilities.

use super::*;

macro_rules! work_item_sql {
    ($store:ident, $db:ty) => {
        #[async_trait]
        impl WorkItemStore for $store {
            async fn create_work_item(&self, item: NewWorkItem) -> StoreResult<WorkItem> {
                let id = new_id();
                let revision_id = new_id();
                let now = now_micros();
                let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                // Workflows change without the project lock, so one named
                // outright is read before the lock, which then holds only
                // the writes. A plan's workflow must be read under it.
                let named_workflow = match (&item.workflow_id, &item.plan_id) {
                    (Some(id), _) => Some(Self::starting_workflow(&mut tx, id).await?),
                    (None, None) => Some(Self::starting_workflow(&mut tx, STANDARD_WORKFLOW_ID).await?),
                    (None, Some(_)) => None,
                };
                let (ordered, number) = Self::next_work_item_number(&mut tx, &item.project_id).await?;
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
                        Self::starting_workflow(&mut tx, id).await?
                    }
                };
                let workflow_id = workflow.id.clone();
                let first_phase = workflow
                    .phases
                    .first()
                    .ok_or_else(|| DomainError::internal(format!("workflow {workflow_id} has no phases")))?;
                // The event is recorded under the ordering lock `ordered`
                // proves, like every event `record_for` writes.
                let _recorded: Ordered = ordered;
                sqlx::query(Self::INSERT_NEW_WORK_ITEM)
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
                    .bind(&item.description)
                    .bind(EventKind::WorkItemCreated.as_str())
                    .bind(serde_json::json!({ "key": WorkItemKey(number).to_string() }).to_string())
                    .execute(&mut *tx)
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

            async fn find_work_item(&self, project_id: &str, key: WorkItemKey) -> StoreResult<WorkItem> {
                let row = sqlx::query(concat!(work_item_select!(), " WHERE w.project_id = $1 AND w.number = $2"))
                    .bind(project_id)
                    .bind(key.0)
                    .fetch_optional(&self.pool)
                    .await?
                    .ok_or_else(|| work_item_not_found(&format!("{key} in this project")))?;
                crate::backend::rows::work_item(&row)
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
                page_of(&rows, crate::backend::rows::work_item, page, |item| item.key.0.to_string())
            }

            async fn update_work_item(&self, id: &str, changes: WorkItemChanges, actor: &Actor) -> StoreResult<WorkItem> {
                let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                let project_id = Self::work_item_project(&mut tx, id).await?;
                let ordered = Self::writable_project(&mut tx, &project_id).await?;
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
                Self::record_for(&mut tx, ordered, EventKind::WorkItemUpdated, Some(&project_id), Some(id), id, serde_json::json!({
                    "key": current.key.to_string(),
                })).await?;
                let updated = Self::work_item_in(&mut tx, id).await?;
                self.commit(tx).await?;
                Ok(updated)
            }

            async fn delete_work_item(&self, id: &str) -> StoreResult<()> {
                let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                let project_id = Self::work_item_project(&mut tx, id).await?;
                let ordered = Self::writable_project(&mut tx, &project_id).await?;
                sqlx::query("DELETE FROM work_items WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                Self::record_for(&mut tx, ordered, EventKind::WorkItemDeleted, Some(&project_id), Some(id), id, serde_json::json!({})).await?;
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
                page_of(&rows, crate::backend::rows::revision, page, |revision| revision.number.to_string())
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
                let ordered = Self::writable_project(&mut tx, &project_id).await?;
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
                let target = crate::backend::rows::revision(&row)?;
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
                Self::record_for(&mut tx, ordered, EventKind::WorkItemReverted, Some(&project_id), Some(work_item_id), work_item_id, serde_json::json!({
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
                let ordered = Self::writable_project(&mut tx, &project_id).await?;
                sqlx::query("UPDATE work_items SET capabilities = $2, updated_at = $3 WHERE id = $1")
                    .bind(work_item_id)
                    .bind(to_json(&capabilities))
                    .bind(now_micros())
                    .execute(&mut *tx)
                    .await?;
                Self::record_for(&mut tx, ordered, EventKind::WorkItemCapabilitiesChanged, Some(&project_id), Some(work_item_id), work_item_id, serde_json::json!({
                    "count": capabilities.len(),
                })).await?;
                self.commit(tx).await?;
                Ok(capabilities)
            }
        }

        impl $store {
            pub(in crate::backend) async fn work_item_project(
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

            pub(in crate::backend) async fn work_item_in(
                conn: &mut <$db as sqlx::Database>::Connection,
                id: &str,
            ) -> StoreResult<WorkItem> {
                let sql = concat!(work_item_select!(), " WHERE w.id = $1");
                Self::one_by_id(conn, sql, id, crate::backend::rows::work_item, || work_item_not_found(&format!("with id {id}"))).await
            }

            /// Appends a revision and makes it the item's current one.
            #[allow(clippy::too_many_arguments)]
            pub(in crate::backend) async fn insert_revision(
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

        }
    };
}

work_item_sql!(PostgresStore, sqlx::Postgres);
work_item_sql!(SqliteStore, sqlx::Sqlite);
