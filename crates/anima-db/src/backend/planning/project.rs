//! Projects and their members, and the project's ordering lock that every
//! write into a project takes first.

use super::*;

macro_rules! project_sql {
    ($store:ident, $db:ty) => {
        #[async_trait]
        impl ProjectStore for $store {
            async fn create_project(&self, name: &str, description: &str, owner_id: &str) -> StoreResult<Project> {
                let id = new_id();
                let now = now_micros();
                let (mut tx, ordered) = self.begin_ordered(&id).await?;
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
                Self::record(&mut tx, ordered, EventKind::ProjectCreated, Some(&id), &id, serde_json::json!({ "name": name })).await?;
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
                page_of(&rows, crate::backend::rows::project, page, |project| project.id.clone())
            }

            async fn update_project(&self, id: &str, changes: ProjectChanges) -> StoreResult<Project> {
                let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                let ordered = Self::writable_project(&mut tx, id).await?;
                let current = Self::project_in(&mut tx, id).await?;
                sqlx::query("UPDATE projects SET name = $2, description = $3, updated_at = $4 WHERE id = $1")
                    .bind(id)
                    .bind(changes.name.as_ref().unwrap_or(&current.name))
                    .bind(changes.description.as_ref().unwrap_or(&current.description))
                    .bind(now_micros())
                    .execute(&mut *tx)
                    .await?;
                Self::record(&mut tx, ordered, EventKind::ProjectUpdated, Some(id), id, serde_json::json!({})).await?;
                let project = Self::project_in(&mut tx, id).await?;
                self.commit(tx).await?;
                Ok(project)
            }

            async fn archive_project(&self, id: &str) -> StoreResult<Project> {
                let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                if let (ordered, ProjectStatus::Active) = Self::lock_project(&mut tx, id).await? {
                    sqlx::query("UPDATE projects SET status = 'archived', updated_at = $2 WHERE id = $1")
                        .bind(id)
                        .bind(now_micros())
                        .execute(&mut *tx)
                        .await?;
                    Self::record(&mut tx, ordered, EventKind::ProjectArchived, Some(id), id, serde_json::json!({})).await?;
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
                page_of(&rows, crate::backend::rows::member, page, |member| member.user_id.clone())
            }

            async fn add_member(&self, project_id: &str, user_id: &str, role_id: &str, by: Option<&str>) -> StoreResult<Member> {
                let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                let ordered = Self::writable_project(&mut tx, project_id).await?;
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
                Self::record(&mut tx, ordered, EventKind::MemberAdded, Some(project_id), user_id, serde_json::json!({ "role_id": role_id })).await?;
                let member = Self::member_in(&mut tx, project_id, user_id)
                    .await?
                    .ok_or_else(|| DomainError::internal("binding vanished inside its transaction"))?;
                self.commit(tx).await?;
                Ok(member)
            }

            async fn remove_member(&self, project_id: &str, user_id: &str, by: Option<&str>) -> StoreResult<()> {
                let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                let ordered = Self::writable_project(&mut tx, project_id).await?;
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
                Self::record(&mut tx, ordered, EventKind::MemberRemoved, Some(project_id), user_id, serde_json::json!({})).await?;
                self.commit(tx).await
            }

            async fn project_permissions(&self, user_id: &str, project_id: &str) -> StoreResult<Vec<Permission>> {
                let mut conn = self.pool.acquire().await?;
                Self::permissions_in(&mut conn, user_id, project_id).await
            }
        }

        impl $store {
            /// Takes the project's ordering lock for the rest of the
            /// transaction, before its first write, and returns the
            /// project's status.
            pub(in crate::backend) async fn lock_project(
                conn: &mut <$db as sqlx::Database>::Connection,
                id: &str,
            ) -> StoreResult<(Ordered, ProjectStatus)> {
                let ordered = Self::order_writes(&mut *conn, id).await?;
                let status: String = sqlx::query(Self::LOCK_PROJECT)
                    .bind(id)
                    .fetch_optional(&mut *conn)
                    .await?
                    .ok_or_else(|| project_not_found(id))?
                    .try_get("status")
                    ?;
                Ok((ordered, stored(&status)?))
            }

            /// Locks a project that must accept writes and takes the next
            /// work item number from its counter, in one round trip: the
            /// lock is held until commit, so every statement saved inside
            /// it is throughput for every writer of the project.
            pub(in crate::backend) async fn next_work_item_number(
                conn: &mut <$db as sqlx::Database>::Connection,
                project_id: &str,
            ) -> StoreResult<(Ordered, i64)> {
                let ordered = Self::order_writes(&mut *conn, project_id).await?;
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
                Ok((ordered, row.try_get("work_item_seq")?))
            }

            /// Fails unless the project exists; for reads, which take no lock.
            pub(in crate::backend) async fn project_exists(
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
            pub(in crate::backend) async fn writable_project(
                conn: &mut <$db as sqlx::Database>::Connection,
                id: &str,
            ) -> StoreResult<Ordered> {
                match Self::lock_project(conn, id).await? {
                    (ordered, ProjectStatus::Active) => Ok(ordered),
                    (_, ProjectStatus::Archived) => Err(archived().into()),
                }
            }

            pub(in crate::backend) async fn project_in(
                conn: &mut <$db as sqlx::Database>::Connection,
                id: &str,
            ) -> StoreResult<Project> {
                let sql = concat!(project_select!(), " WHERE p.id = $1");
                Self::one_by_id(conn, sql, id, crate::backend::rows::project, || project_not_found(id)).await
            }

            pub(in crate::backend) async fn member_in(
                conn: &mut <$db as sqlx::Database>::Connection,
                project_id: &str,
                user_id: &str,
            ) -> StoreResult<Option<Member>> {
                sqlx::query(concat!(member_select!(), " WHERE b.project_id = $1 AND b.user_id = $2"))
                    .bind(project_id)
                    .bind(user_id)
                    .fetch_optional(&mut *conn)
                    .await?
                    .map(|row| crate::backend::rows::member(&row))
                    .transpose()
            }

            pub(in crate::backend) async fn permissions_in(
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
            pub(in crate::backend) async fn keep_an_owner(
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
        }
    };
}

project_sql!(PostgresStore, sqlx::Postgres);
project_sql!(SqliteStore, sqlx::Sqlite);
