//! Accounts: users, login sessions and roles.

use std::collections::BTreeMap;

use anima_core::{
    DomainError, ErrorCode, Permission,
    error::reason,
    event::EventKind,
    id::new_id,
    model::{
        AttemptCounter, AuthSession, NewUser, Role, RoleChanges, User, UserChanges, now_micros,
    },
    paging::PageRequest,
    permission::{DEFAULT_ROLES, keep_an_admin, keep_an_owner},
};
use async_trait::async_trait;
use sqlx::Row;

use super::{ADMINS_LOCK_KEY, PostgresStore, SqliteStore, page_of, user_not_found};
use crate::{AccountStore, Credentials, Page, StoreError, StoreResult};

pub(super) fn parse_preferences(json: &str) -> BTreeMap<String, String> {
    serde_json::from_str(json).unwrap_or_default()
}

fn preferences_json(preferences: &BTreeMap<String, String>) -> String {
    serde_json::to_string(preferences).unwrap_or_else(|_| "{}".into())
}

macro_rules! accounts_sql {
    ($store:ident, $db:ty) => {
        #[async_trait]
        impl AccountStore for $store {
            async fn create_user(&self, user: NewUser) -> StoreResult<User> {
                let now = now_micros();
                let id = new_id();
                let (mut tx, ordered) = self.begin_ordered(&id).await?;
                sqlx::query(
                    "INSERT INTO users (id, username, display_name, email, password_hash, \
                     is_admin, disabled, preferences, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, FALSE, '{}', $7, $7)",
                )
                .bind(&id)
                .bind(&user.username)
                .bind(&user.display_name)
                .bind(&user.email)
                .bind(&user.password_hash)
                .bind(user.is_admin)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(|e| StoreError::conflict(e, reason::USERNAME_TAKEN))?;
                Self::record(&mut tx, ordered, EventKind::UserCreated, None, &id, serde_json::json!({
                    "username": user.username,
                })).await?;
                let created = Self::user_in(&mut tx, &id).await?;
                self.commit(tx).await?;
                Ok(created)
            }

            async fn get_user(&self, id: &str) -> StoreResult<User> {
                let mut conn = self.pool.acquire().await?;
                Self::user_in(&mut conn, id).await
            }

            async fn find_credentials(&self, username: &str) -> StoreResult<Option<Credentials>> {
                let row = sqlx::query(
                    "SELECT id, username, display_name, email, is_admin, disabled, preferences, \
                     created_at, updated_at, password_hash FROM users WHERE username = $1",
                )
                .bind(username)
                .fetch_optional(&self.pool)
                .await?;
                row.map(|row| {
                    Ok(Credentials {
                        password_hash: row.try_get("password_hash")?,
                        user: crate::backend::rows::user(&row)?,
                    })
                })
                .transpose()
            }

            async fn list_users(&self, visible_to: Option<&str>, page: &PageRequest) -> StoreResult<Page<User>> {
                let rows = sqlx::query(
                    "SELECT id, username, display_name, email, is_admin, disabled, preferences, \
                     created_at, updated_at FROM users u WHERE id > $1 \
                     AND ($3 IS NULL OR u.id = $3 OR EXISTS (SELECT 1 FROM role_bindings mine \
                       JOIN role_bindings theirs ON theirs.project_id = mine.project_id \
                       WHERE mine.user_id = $3 AND theirs.user_id = u.id)) \
                     ORDER BY id LIMIT $2",
                )
                .bind(page.after.as_deref().unwrap_or(""))
                .bind(page.fetch_limit())
                .bind(visible_to)
                .fetch_all(&self.pool)
                .await?;
                page_of(&rows, crate::backend::rows::user, page, |user| user.id.clone())
            }

            async fn share_a_project(&self, a: &str, b: &str) -> StoreResult<bool> {
                sqlx::query(
                    "SELECT 1 AS shared FROM role_bindings mine JOIN role_bindings theirs \
                     ON theirs.project_id = mine.project_id \
                     WHERE mine.user_id = $1 AND theirs.user_id = $2 LIMIT 1",
                )
                .bind(a)
                .bind(b)
                .fetch_optional(&self.pool)
                .await
                .map(|row| row.is_some())
                .map_err(StoreError::from)
            }

            async fn update_user(&self, id: &str, changes: UserChanges) -> StoreResult<User> {
                let (mut tx, ordered) = self.begin_ordered(id).await?;
                if changes.is_admin.is_some() || changes.disabled.is_some() {
                    Self::advisory_lock(&mut tx, ADMINS_LOCK_KEY).await?;
                }
                let current = Self::user_in(&mut tx, id).await?;
                let preferences = changes.preferences.as_ref().unwrap_or(&current.preferences);
                let result = sqlx::query(
                    "UPDATE users SET display_name = $2, email = $3, is_admin = $4, disabled = $5, \
                     preferences = $6, password_hash = COALESCE($7, password_hash), updated_at = $8 \
                     WHERE id = $1",
                )
                .bind(id)
                .bind(changes.display_name.as_ref().unwrap_or(&current.display_name))
                .bind(changes.email.as_ref().unwrap_or(&current.email))
                .bind(changes.is_admin.unwrap_or(current.is_admin))
                .bind(changes.disabled.unwrap_or(current.disabled))
                .bind(preferences_json(preferences))
                .bind(changes.password_hash.as_deref())
                .bind(now_micros())
                .execute(&mut *tx)
                .await?;
                if result.rows_affected() == 0 {
                    return Err(user_not_found(id).into());
                }
                if changes.password_hash.is_some() || changes.disabled == Some(true) {
                    sqlx::query("DELETE FROM auth_sessions WHERE user_id = $1 AND token_hash <> $2")
                        .bind(id)
                        .bind(changes.keep_session.as_deref().unwrap_or(""))
                        .execute(&mut *tx)
                        .await?;
                }
                if current.is_admin && !current.disabled {
                    Self::keep_an_admin(&mut tx).await?;
                }
                Self::after_older_writers(&mut tx).await?;
                Self::record(&mut tx, ordered, EventKind::UserUpdated, None, id, serde_json::json!({})).await?;
                let updated = Self::user_in(&mut tx, id).await?;
                self.commit(tx).await?;
                Ok(updated)
            }

            async fn delete_user(&self, id: &str) -> StoreResult<()> {
                // The user's ordering lock, then their projects' (sorted):
                // keys outside projects always come before project keys.
                let (mut tx, ordered) = self.begin_ordered(id).await?;
                Self::advisory_lock(&mut tx, ADMINS_LOCK_KEY).await?;
                let current = Self::user_in(&mut tx, id).await?;
                // A project must keep an Owner, so its last one cannot go.
                // Lock the projects the user owns first, as removing a
                // member does, so a concurrent demotion cannot race this.
                let owned: Vec<String> = sqlx::query(
                    "SELECT project_id FROM role_bindings WHERE user_id = $1 AND role_id = $2 ORDER BY project_id",
                )
                .bind(id)
                .bind(DEFAULT_ROLES[0].id)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|row| row.try_get("project_id"))
                .collect::<Result<_, _>>()
                ?;
                for project_id in &owned {
                    Self::lock_project(&mut tx, project_id).await?;
                }
                let orphaned: Option<String> = sqlx::query(
                    "SELECT p.name FROM role_bindings b JOIN projects p ON p.id = b.project_id \
                     WHERE b.user_id = $1 AND b.role_id = $2 AND (SELECT COUNT(*) FROM role_bindings o \
                       WHERE o.project_id = b.project_id AND o.role_id = $2) = 1 \
                     ORDER BY p.id LIMIT 1",
                )
                .bind(id)
                .bind(DEFAULT_ROLES[0].id)
                .fetch_optional(&mut *tx)
                .await?
                .map(|row| row.try_get("name"))
                .transpose()
                ?;
                if let Some(project) = orphaned {
                    keep_an_owner(1, Some(&project))?;
                }
                sqlx::query("DELETE FROM users WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                if current.is_admin && !current.disabled {
                    Self::keep_an_admin(&mut tx).await?;
                }
                Self::after_older_writers(&mut tx).await?;
                Self::record(&mut tx, ordered, EventKind::UserDeleted, None, id, serde_json::json!({})).await?;
                self.commit(tx).await
            }

            async fn count_users(&self) -> StoreResult<i64> {
                sqlx::query("SELECT COUNT(*) AS n FROM users")
                    .fetch_one(&self.pool)
                    .await
                    .and_then(|row| row.try_get("n"))
                    .map_err(StoreError::from)
            }

            async fn count_attempt(&self, counters: &[AttemptCounter], now: i64) -> StoreResult<()> {
                // Ended windows go first, on their own: each row ends at its
                // own window's end, so pruning never resets a running
                // counter, and never holds up a counting transaction.
                sqlx::query(Self::PRUNE_ATTEMPTS)
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                for counter in counters {
                    let row = sqlx::query(
                        "INSERT INTO attempt_counters (counter_key, window_end, attempts) VALUES ($1, $2, 1) \
                         ON CONFLICT (counter_key) DO UPDATE SET \
                           attempts = CASE WHEN attempt_counters.window_end <= $3 THEN 1 \
                                           ELSE attempt_counters.attempts + 1 END, \
                           window_end = CASE WHEN attempt_counters.window_end <= $3 THEN $2 \
                                             ELSE attempt_counters.window_end END \
                         RETURNING attempts, window_end",
                    )
                    .bind(&counter.key)
                    .bind(now.saturating_add(counter.window_micros))
                    .bind(now)
                    .fetch_one(&mut *tx)
                    .await?;
                    let attempts: i64 = row.try_get("attempts")?;
                    let window_end: i64 = row.try_get("window_end")?;
                    if attempts > i64::from(counter.limit) {
                        // Dropping the transaction rolls back what it counted.
                        let wait = (window_end - now).max(0) / 1_000_000 + 1;
                        return Err(DomainError::new(
                            ErrorCode::ResourceExhausted,
                            reason::RATE_LIMITED,
                            format!("too many {}; try again in {wait} seconds", counter.what),
                        ).into());
                    }
                }
                tx.commit().await.map_err(StoreError::from)
            }

            async fn forget_attempts(&self, keys: &[String]) -> StoreResult<()> {
                let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                for key in keys {
                    sqlx::query("DELETE FROM attempt_counters WHERE counter_key = $1")
                        .bind(key)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await.map_err(StoreError::from)
            }

            async fn create_session(&self, session: AuthSession) -> StoreResult<()> {
                let (mut tx, ordered) = self.begin_ordered(&session.user_id).await?;
                sqlx::query(
                    "INSERT INTO auth_sessions (token_hash, user_id, created_at, last_used_at) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(&session.token_hash)
                .bind(&session.user_id)
                .bind(session.created_at)
                .bind(session.last_used_at)
                .execute(&mut *tx)
                .await?;
                Self::record(&mut tx, ordered, EventKind::LoginOpened, None, &session.user_id, serde_json::json!({})).await?;
                self.commit(tx).await
            }

            async fn get_session(&self, token_hash: &str) -> StoreResult<Option<AuthSession>> {
                let row = sqlx::query(
                    "SELECT token_hash, user_id, created_at, last_used_at FROM auth_sessions \
                     WHERE token_hash = $1",
                )
                .bind(token_hash)
                .fetch_optional(&self.pool)
                .await?;
                row.map(|row| {
                    Ok(AuthSession {
                        token_hash: row.try_get("token_hash")?,
                        user_id: row.try_get("user_id")?,
                        created_at: row.try_get("created_at")?,
                        last_used_at: row.try_get("last_used_at")?,
                    })
                })
                .transpose()
            }

            async fn session_with_user(&self, token_hash: &str) -> StoreResult<Option<(AuthSession, User)>> {
                let row = sqlx::query(
                    "SELECT s.token_hash, s.user_id, s.created_at AS session_created_at, s.last_used_at, \
                     u.id, u.username, u.display_name, u.email, u.is_admin, u.disabled, u.preferences, \
                     u.created_at, u.updated_at \
                     FROM auth_sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = $1",
                )
                .bind(token_hash)
                .fetch_optional(&self.pool)
                .await?;
                row.map(|row| {
                    Ok((
                        AuthSession {
                            token_hash: row.try_get("token_hash")?,
                            user_id: row.try_get("user_id")?,
                            created_at: row.try_get("session_created_at")?,
                            last_used_at: row.try_get("last_used_at")?,
                        },
                        crate::backend::rows::user(&row)?,
                    ))
                })
                .transpose()
            }

            async fn touch_session(&self, token_hash: &str, now: i64) -> StoreResult<()> {
                sqlx::query("UPDATE auth_sessions SET last_used_at = $2 WHERE token_hash = $1")
                    .bind(token_hash)
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn delete_session(&self, token_hash: &str) -> StoreResult<bool> {
                // Whose it is, read first: the user's ordering lock comes
                // before the delete.
                let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                let row = sqlx::query("SELECT user_id FROM auth_sessions WHERE token_hash = $1")
                    .bind(token_hash)
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(row) = row else {
                    return Ok(false);
                };
                let user_id: String = row.try_get("user_id")?;
                let ordered = Self::order_writes(&mut tx, &user_id).await?;
                let deleted = sqlx::query("DELETE FROM auth_sessions WHERE token_hash = $1")
                    .bind(token_hash)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if deleted == 0 {
                    return Ok(false);
                }
                Self::after_older_writers(&mut tx).await?;
                Self::record(&mut tx, ordered, EventKind::LoginClosed, None, &user_id, serde_json::json!({ "sessions": 1 })).await?;
                self.commit(tx).await?;
                Ok(true)
            }

            async fn delete_user_sessions(&self, user_id: &str, keep: Option<&str>) -> StoreResult<u64> {
                let (mut tx, ordered) = self.begin_ordered(user_id).await?;
                let closed = sqlx::query(
                    "DELETE FROM auth_sessions WHERE user_id = $1 AND token_hash <> $2",
                )
                .bind(user_id)
                .bind(keep.unwrap_or(""))
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if closed > 0 {
                    Self::after_older_writers(&mut tx).await?;
                    Self::record(&mut tx, ordered, EventKind::LoginClosed, None, user_id, serde_json::json!({ "sessions": closed })).await?;
                }
                self.commit(tx).await?;
                Ok(closed)
            }

            async fn list_roles(&self, page: &PageRequest) -> StoreResult<Page<Role>> {
                let mut conn = self.pool.acquire().await?;
                let rows = sqlx::query(
                    "SELECT id FROM roles WHERE id > $1 ORDER BY id LIMIT $2",
                )
                .bind(page.after.as_deref().unwrap_or(""))
                .bind(page.fetch_limit())
                .fetch_all(&mut *conn)
                .await?;
                crate::backend::page_by_ids(
                    &mut *conn,
                    rows,
                    page,
                    async |conn, id| Self::role_in(conn, id).await,
                    |role| role.id.clone(),
                )
                .await
            }

            async fn get_role(&self, id: &str) -> StoreResult<Role> {
                let mut conn = self.pool.acquire().await?;
                Self::role_in(&mut conn, id).await
            }

            async fn create_role(&self, name: &str, description: &str, permissions: &[Permission]) -> StoreResult<Role> {
                let id = new_id();
                let now = now_micros();
                let (mut tx, ordered) = self.begin_ordered(&id).await?;
                sqlx::query(
                    "INSERT INTO roles (id, name, description, builtin, created_at, updated_at) \
                     VALUES ($1, $2, $3, FALSE, $4, $4)",
                )
                .bind(&id)
                .bind(name)
                .bind(description)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(|e| StoreError::conflict(e, reason::ROLE_NAME_TAKEN))?;
                Self::set_permissions(&mut tx, &id, permissions).await?;
                Self::record(&mut tx, ordered, EventKind::RoleCreated, None, &id, serde_json::json!({ "name": name })).await?;
                let role = Self::role_in(&mut tx, &id).await?;
                self.commit(tx).await?;
                Ok(role)
            }

            async fn update_role(&self, id: &str, changes: RoleChanges) -> StoreResult<Role> {
                let (mut tx, ordered) = self.begin_ordered(id).await?;
                let current = Self::role_in(&mut tx, id).await?;
                if current.builtin {
                    return Err(DomainError::failed_precondition(
                        reason::ROLE_BUILTIN,
                        format!("the built-in role {} cannot be changed; copy it into a custom role", current.name),
                    ).into());
                }
                sqlx::query("UPDATE roles SET name = $2, description = $3, updated_at = $4 WHERE id = $1")
                    .bind(id)
                    .bind(changes.name.as_ref().unwrap_or(&current.name))
                    .bind(changes.description.as_ref().unwrap_or(&current.description))
                    .bind(now_micros())
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| StoreError::conflict(e, reason::ROLE_NAME_TAKEN))?;
                if let Some(permissions) = &changes.permissions {
                    sqlx::query("DELETE FROM role_permissions WHERE role_id = $1")
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    Self::set_permissions(&mut tx, id, permissions).await?;
                }
                Self::after_older_writers(&mut tx).await?;
                Self::record(&mut tx, ordered, EventKind::RoleUpdated, None, id, serde_json::json!({})).await?;
                let role = Self::role_in(&mut tx, id).await?;
                self.commit(tx).await?;
                Ok(role)
            }

            async fn delete_role(&self, id: &str) -> StoreResult<()> {
                let (mut tx, ordered) = self.begin_ordered(id).await?;
                let role = Self::role_in(&mut tx, id).await?;
                if role.builtin {
                    return Err(DomainError::failed_precondition(
                        reason::ROLE_BUILTIN,
                        format!("the built-in role {} cannot be deleted", role.name),
                    ).into());
                }
                let holders: i64 = sqlx::query("SELECT COUNT(*) AS n FROM role_bindings WHERE role_id = $1")
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await
                    .and_then(|row| row.try_get("n"))
                    ?;
                if holders > 0 {
                    return Err(DomainError::failed_precondition(
                        reason::ROLE_IN_USE,
                        format!("role {} is held by {holders} member(s); rebind them first", role.name),
                    ).into());
                }
                sqlx::query("DELETE FROM roles WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                Self::after_older_writers(&mut tx).await?;
                Self::record(&mut tx, ordered, EventKind::RoleDeleted, None, id, serde_json::json!({})).await?;
                self.commit(tx).await
            }
        }

        impl $store {
            /// Refuses a change that left the server without an active
            /// admin; the caller holds the admins lock.
            async fn keep_an_admin(conn: &mut <$db as sqlx::Database>::Connection) -> StoreResult<()> {
                let admins: i64 = sqlx::query("SELECT COUNT(*) AS n FROM users WHERE is_admin AND NOT disabled")
                    .fetch_one(&mut *conn)
                    .await
                    .and_then(|row| row.try_get("n"))
                    ?;
                Ok(keep_an_admin(admins)?)
            }

            async fn set_permissions(
                conn: &mut <$db as sqlx::Database>::Connection,
                role_id: &str,
                permissions: &[Permission],
            ) -> StoreResult<()> {
                for permission in permissions {
                    sqlx::query(
                        "INSERT INTO role_permissions (role_id, permission) VALUES ($1, $2) \
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(role_id)
                    .bind(permission.as_str())
                    .execute(&mut *conn)
                    .await?;
                }
                Ok(())
            }

            /// Makes the built-in roles match this build's definitions, so a
            /// permission added in code reaches existing databases.
            pub(super) async fn seed_roles(&self) -> StoreResult<()> {
                let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                let now = now_micros();
                for template in DEFAULT_ROLES {
                    sqlx::query(
                        "INSERT INTO roles (id, name, description, builtin, created_at, updated_at) \
                         VALUES ($1, $2, $3, TRUE, $4, $4) \
                         ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, \
                         description = EXCLUDED.description, builtin = TRUE",
                    )
                    .bind(template.id)
                    .bind(template.name)
                    .bind(template.description)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query("DELETE FROM role_permissions WHERE role_id = $1")
                        .bind(template.id)
                        .execute(&mut *tx)
                        .await?;
                    Self::set_permissions(&mut tx, template.id, template.permissions).await?;
                }
                self.commit(tx).await
            }
        }
    };
}

accounts_sql!(PostgresStore, sqlx::Postgres);
accounts_sql!(SqliteStore, sqlx::Sqlite);
