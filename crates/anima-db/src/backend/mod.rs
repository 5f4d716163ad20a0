//! The two backends. Their SQL is the same text: both speak `$n` parameters,
//! `RETURNING` and `ON CONFLICT`, and the schema uses only types that map to
//! the same Rust types on both (TEXT, BIGINT, BOOLEAN). So each part of the
//! store is written once, as a macro in its module, and instantiated for
//! both backends; the few dialect differences are associated constants of
//! the store types.

mod accounts;
mod agent;
mod document;
mod mail;
mod planning;
mod rows;
mod skill;
mod thread;

use std::{
    str::FromStr,
    sync::{Arc, Once},
    time::Duration,
};

use anima_core::{
    DomainError, Permission,
    error::reason,
    event::EventKind,
    model::{Event, Role, User, now_micros},
    paging::PageRequest,
};
use async_trait::async_trait;
use sqlx::{
    PgPool, Row, SqlitePool,
    postgres::{PgListener, PgPoolOptions},
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};

use tokio::sync::watch;

use crate::{Page, Store, StoreError, StoreResult, migrations};

/// How long to wait for a pooled connection before reporting the database
/// unavailable, instead of hanging a request.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Key of the advisory lock that orders outbox writers on PostgreSQL.
const OUTBOX_LOCK_KEY: i64 = 0x616e_696d_615f_6f62;

/// Key of the advisory lock that serialises changes to who is an active
/// server admin on PostgreSQL, so the last one cannot be removed by two
/// changes that each see the other admin still there.
const ADMINS_LOCK_KEY: i64 = 0x616e_696d_615f_6164;

/// PostgreSQL channel on which writers announce new events to the other
/// server instances.
const EVENTS_CHANNEL: &str = "anima_events";

/// One page of a list from the rows its query fetched (one more than the
/// page holds when more follow), each read by `read`, with the token of
/// the next page taken from the last row's `key`.
fn page_of<R, T>(
    rows: &[R],
    read: impl Fn(&R) -> StoreResult<T>,
    page: &PageRequest,
    key: impl Fn(&T) -> String,
) -> StoreResult<Page<T>> {
    let mut items = rows.iter().map(read).collect::<StoreResult<Vec<_>>>()?;
    let next_page_token = page.finish(&mut items, key);
    Ok(Page {
        items,
        next_page_token,
    })
}

/// One page of a list whose query selects only the ids (one more than the
/// page holds when more follow), each record then read in full by `read`
/// on the same connection (records with rows of their own, such as a
/// role's permissions).
async fn page_by_ids<C, T>(
    conn: &mut C,
    rows: Vec<impl rows::StoredRow>,
    page: &PageRequest,
    mut read: impl AsyncFnMut(&mut C, &str) -> StoreResult<T>,
    key: impl Fn(&T) -> String,
) -> StoreResult<Page<T>> {
    let mut items = Vec::with_capacity(rows.len());
    for row in &rows {
        let id: String = row.col("id")?;
        items.push(read(conn, &id).await?);
    }
    let next_page_token = page.finish(&mut items, key);
    Ok(Page {
        items,
        next_page_token,
    })
}

fn user_not_found(id: &str) -> DomainError {
    DomainError::not_found(reason::USER_NOT_FOUND, format!("no user with id {id}"))
}

fn role_not_found(id: &str) -> DomainError {
    DomainError::not_found(reason::ROLE_NOT_FOUND, format!("no role with id {id}"))
}

/// Permission names stored in rows that this build no longer knows are
/// skipped rather than failing every check of the role.
fn known_permissions(names: Vec<String>) -> Vec<Permission> {
    let mut permissions: Vec<Permission> = names
        .iter()
        .filter_map(|name| Permission::from_str(name).ok())
        .collect();
    permissions.sort();
    permissions
}

/// Helpers every part of the store shares, and the [`Store`] root.
macro_rules! common_sql {
    ($store:ident, $db:ty, $backend:literal) => {
        #[async_trait]
        impl Store for $store {
            fn backend(&self) -> &'static str {
                $backend
            }

            async fn events_after(&self, after: i64, limit: i64) -> StoreResult<Vec<Event>> {
                let rows = sqlx::query(
                    "SELECT id, kind, project_id, entity_id, work_item_id, payload, created_at \
                     FROM events WHERE id > $1 ORDER BY id LIMIT $2",
                )
                .bind(after)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(crate::backend::rows::event).collect()
            }

            async fn work_item_events_after(
                &self,
                work_item_id: &str,
                after: i64,
                limit: i64,
            ) -> StoreResult<Vec<Event>> {
                let rows = sqlx::query(
                    "SELECT id, kind, project_id, entity_id, work_item_id, payload, created_at \
                     FROM events WHERE work_item_id = $1 AND id > $2 ORDER BY id LIMIT $3",
                )
                .bind(work_item_id)
                .bind(after)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(crate::backend::rows::event).collect()
            }

            async fn last_event_id(&self) -> StoreResult<i64> {
                sqlx::query("SELECT COALESCE(MAX(id), 0) AS id FROM events")
                    .fetch_one(&self.pool)
                    .await
                    .and_then(|row| row.try_get("id"))
                    .map_err(StoreError::from)
            }

            fn commits(&self) -> watch::Receiver<u64> {
                self.listen_for_other_writers();
                self.commits.subscribe()
            }
        }
        impl $store {

            /// The one row `sql` selects by `id` (its only parameter), read
            /// by `read`; `missing` when there is none.
            async fn one_by_id<T>(
                conn: &mut <$db as sqlx::Database>::Connection,
                sql: &'static str,
                id: &str,
                read: fn(&<$db as sqlx::Database>::Row) -> StoreResult<T>,
                missing: impl FnOnce() -> DomainError,
            ) -> StoreResult<T> {
                let row = sqlx::query(sql)
                    .bind(id)
                    .fetch_optional(&mut *conn)
                    .await?
                    .ok_or_else(missing)?;
                read(&row)
            }

            /// Writes the outbox row of a change inside its transaction.
            async fn record(
                conn: &mut <$db as sqlx::Database>::Connection,
                kind: EventKind,
                project_id: Option<&str>,
                entity_id: &str,
                payload: serde_json::Value,
            ) -> StoreResult<()> {
                Self::record_for(conn, kind, project_id, None, entity_id, payload).await
            }

            /// Takes a transaction-scoped advisory lock (PostgreSQL; SQLite
            /// serialises writers already).
            async fn advisory_lock(
                conn: &mut <$db as sqlx::Database>::Connection,
                key: i64,
            ) -> StoreResult<()> {
                if let Some(lock) = Self::ADVISORY_LOCK {
                    sqlx::query(lock).bind(key).execute(&mut *conn).await?;
                }
                Ok(())
            }

            /// Writes the outbox row of a change that concerns a work item.
            async fn record_for(
                conn: &mut <$db as sqlx::Database>::Connection,
                kind: EventKind,
                project_id: Option<&str>,
                work_item_id: Option<&str>,
                entity_id: &str,
                payload: serde_json::Value,
            ) -> StoreResult<()> {
                Self::advisory_lock(&mut *conn, OUTBOX_LOCK_KEY).await?;
                sqlx::query(Self::INSERT_EVENT)
                    .bind(kind.as_str())
                    .bind(project_id)
                    .bind(entity_id)
                    .bind(work_item_id)
                    .bind(payload.to_string())
                    .bind(now_micros())
                    .bind(EVENTS_CHANNEL)
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            }

            /// Commits a write and wakes this process's event readers.
            async fn commit(&self, tx: sqlx::Transaction<'_, $db>) -> StoreResult<()> {
                tx.commit().await?;
                self.commits
                    .send_modify(|count| *count = count.wrapping_add(1));
                Ok(())
            }

            async fn user_in(
                conn: &mut <$db as sqlx::Database>::Connection,
                id: &str,
            ) -> StoreResult<User> {
                let sql = "SELECT id, username, display_name, email, is_admin, disabled, preferences, \
                     created_at, updated_at FROM users WHERE id = $1";
                Self::one_by_id(conn, sql, id, crate::backend::rows::user, || user_not_found(id)).await
            }

            async fn role_in(
                conn: &mut <$db as sqlx::Database>::Connection,
                id: &str,
            ) -> StoreResult<Role> {
                let row =
                    sqlx::query("SELECT id, name, description, builtin FROM roles WHERE id = $1")
                        .bind(id)
                        .fetch_optional(&mut *conn)
                        .await?
                        .ok_or_else(|| role_not_found(id))?;
                let names: Vec<String> =
                    sqlx::query("SELECT permission FROM role_permissions WHERE role_id = $1")
                        .bind(id)
                        .fetch_all(&mut *conn)
                        .await?
                        .iter()
                        .map(|row| row.try_get("permission"))
                        .collect::<Result<_, _>>()?;
                Ok(Role {
                    id: row.try_get("id")?,
                    name: row.try_get("name")?,
                    description: row.try_get("description")?,
                    builtin: row.try_get("builtin")?,
                    permissions: known_permissions(names),
                })
            }
        }
    };
}

/// PostgreSQL backend: the production store, shared by several servers.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    commits: Arc<watch::Sender<u64>>,
    listening: Arc<Once>,
}

impl PostgresStore {
    /// Opens a write transaction.
    const BEGIN_WRITE: &'static str = "BEGIN";
    /// Removes counters whose window ended, skipping rows a counting
    /// transaction holds: pruning never waits, so never deadlocks with one.
    const PRUNE_ATTEMPTS: &'static str = "DELETE FROM attempt_counters WHERE counter_key IN \
         (SELECT counter_key FROM attempt_counters WHERE window_end <= $1 \
          LIMIT 1000 FOR UPDATE SKIP LOCKED)";
    /// Held until commit. On the outbox key, the next writer takes its
    /// event id only after this one is visible, so a reader never sees id
    /// n+1 before id n.
    const ADVISORY_LOCK: Option<&'static str> = Some("SELECT pg_advisory_xact_lock($1)");
    /// Locks a project row for the rest of the transaction, so writes into
    /// one project (key numbering, archiving, owner checks) are serialised.
    const LOCK_PROJECT: &'static str = "SELECT status FROM projects WHERE id = $1 FOR UPDATE";
    /// Inserts an outbox row and, in the same round trip, announces it on
    /// the channel (`$7`); PostgreSQL delivers the notification at commit
    /// to every instance listening.
    const INSERT_EVENT: &'static str = "WITH event AS (INSERT INTO events \
         (kind, project_id, entity_id, work_item_id, payload, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id) SELECT pg_notify($7, '') FROM event";

    /// Connects, migrates and seeds the built-in roles and workflows.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect(url)
            .await?;
        migrations::postgres()
            .run(&pool)
            .await
            .map_err(|e| DomainError::internal(format!("migrating PostgreSQL failed: {e}")))?;
        let store = Self {
            pool,
            commits: Arc::new(watch::channel(0).0),
            listening: Arc::new(Once::new()),
        };
        store.seed_roles().await?;
        store.seed_workflows().await?;
        Ok(store)
    }

    /// Relays other instances' commits (PostgreSQL NOTIFY) into the commit
    /// signal, once per store. The task ends when the store is dropped.
    fn listen_for_other_writers(&self) {
        self.listening.call_once(|| {
            let pool = self.pool.clone();
            let commits = Arc::downgrade(&self.commits);
            tokio::spawn(async move {
                let mut listener = None;
                loop {
                    let Some(signal) = commits.upgrade() else {
                        return;
                    };
                    if listener.is_none() {
                        match PgListener::connect_with(&pool).await {
                            Ok(mut connected) => match connected.listen(EVENTS_CHANNEL).await {
                                Ok(()) => listener = Some(connected),
                                Err(err) => tracing::warn!(%err, "cannot LISTEN for events"),
                            },
                            Err(err) => tracing::warn!(%err, "cannot connect to LISTEN for events"),
                        }
                        // Whatever was announced while we were not
                        // listening: readers look again.
                        signal.send_modify(|count| *count = count.wrapping_add(1));
                    }
                    drop(signal);
                    let Some(connected) = listener.as_mut() else {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    };
                    // Wake up now and then to notice a dropped store.
                    match tokio::time::timeout(Duration::from_secs(5), connected.try_recv()).await {
                        Ok(Ok(Some(_))) => {
                            if let Some(signal) = commits.upgrade() {
                                signal.send_modify(|count| *count = count.wrapping_add(1));
                            }
                        }
                        Ok(Ok(None)) => {
                            // The connection dropped; the next call
                            // reconnects. Readers look again meanwhile.
                            if let Some(signal) = commits.upgrade() {
                                signal.send_modify(|count| *count = count.wrapping_add(1));
                            }
                        }
                        Ok(Err(err)) => {
                            tracing::warn!(%err, "lost the LISTEN connection; reconnecting");
                            listener = None;
                        }
                        Err(_elapsed) => {}
                    }
                }
            });
        });
    }
}

common_sql!(PostgresStore, sqlx::Postgres, "postgres");

/// Embedded SQLite backend: the default of `anima up`.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    commits: Arc<watch::Sender<u64>>,
}

impl SqliteStore {
    /// Takes the write lock up front: a deferred transaction that later
    /// upgrades to writing fails with SQLITE_BUSY instead of waiting.
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";
    /// Removes counters whose window ended (writers are serialised).
    const PRUNE_ATTEMPTS: &'static str = "DELETE FROM attempt_counters WHERE window_end <= $1";
    /// SQLite serialises writers already.
    const ADVISORY_LOCK: Option<&'static str> = None;
    /// Writers are serialised already; reading the status is enough.
    const LOCK_PROJECT: &'static str = "SELECT status FROM projects WHERE id = $1";
    /// Inserts an outbox row. One process owns the file, so the commit
    /// signal reaches every reader; `$7` (the channel) goes unused.
    const INSERT_EVENT: &'static str = "INSERT INTO events \
         (kind, project_id, entity_id, work_item_id, payload, created_at) \
         SELECT $1, $2, $3, $4, $5, $6 WHERE $7 IS NOT NULL";

    /// Opens (creating if missing), migrates and seeds the built-in roles
    /// and workflows.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| {
                DomainError::invalid_argument(reason::INVALID_FIELD, format!("bad SQLite URL: {e}"))
            })?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await?;
        migrations::sqlite()
            .run(&pool)
            .await
            .map_err(|e| DomainError::internal(format!("migrating SQLite failed: {e}")))?;
        let store = Self {
            pool,
            commits: Arc::new(watch::channel(0).0),
        };
        store.seed_roles().await?;
        store.seed_workflows().await?;
        Ok(store)
    }

    /// One process owns the database file: local commits are all there is.
    fn listen_for_other_writers(&self) {}
}

common_sql!(SqliteStore, sqlx::Sqlite, "sqlite");
