//! The two backends. Their SQL is the same text: both speak `$n` parameters,
//! `RETURNING` and `ON CONFLICT`, and the schema uses only types that map to
//! the same Rust types on both (TEXT, BIGINT, BOOLEAN). So each part of the
//! store is written once, as a macro in its module, and instantiated for
//! both backends; the few dialect differences are associated constants of
//! the store types.

/// The columns of an outbox event, as `rows::event` reads them.
macro_rules! event_select {
    () => {
        "SELECT id, txid, kind, project_id, entity_id, work_item_id, payload, created_at FROM events"
    };
}

mod accounts;
mod agent;
mod document;
mod mail;
mod planning;
mod repository;
mod rows;
mod skill;
mod thread;

use std::{
    str::FromStr,
    sync::{Arc, Once, Weak},
    time::Duration,
};

use anima_core::{
    DomainError, Permission,
    error::reason,
    event::EventKind,
    model::{Event, EventPosition, Role, User, now_micros},
    paging::PageRequest,
};
use async_trait::async_trait;
use sqlx::{
    PgPool, Row, SqlitePool,
    postgres::{PgConnectOptions, PgListener},
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous},
};

use tokio::sync::{Notify, watch};

use crate::{Page, Store, StoreResult, migrations};

/// How long to wait for a pooled connection before reporting the database
/// unavailable, instead of hanging a request.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a pooled connection may sit idle before it is pinged on its
/// way out of the pool (see [`pool_options`]).
const PING_AFTER_IDLE: Duration = Duration::from_secs(30);

/// Pool settings shared by both backends: at most `max_connections`, a
/// bounded wait for one, and a ping only for a connection that sat idle.
///
/// sqlx pings every connection it hands out by default, which is one more
/// round trip before every query: the largest cost left on a point read
/// once sessions come from memory. A connection in use within the last
/// [`PING_AFTER_IDLE`] is trusted instead (sqlx still pings it when it is
/// returned, off the request's path); if the database went away since,
/// the one query on it fails and the broken connection is closed.
fn pool_options<DB: sqlx::Database>(max_connections: u32) -> sqlx::pool::PoolOptions<DB> {
    sqlx::pool::PoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for > PING_AFTER_IDLE {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
}

/// Key of the advisory lock that serialises changes to who is an active
/// server admin on PostgreSQL, so the last one cannot be removed by two
/// changes that each see the other admin still there.
const ADMINS_LOCK_KEY: i64 = 0x616e_696d_615f_6164;

/// How long a PostgreSQL session may sit idle inside a transaction.
const WRITER_IDLE_TIMEOUT: &str = "10s";

/// PostgreSQL channel on which writers announce new events to the other
/// server instances.
const EVENTS_CHANNEL: &str = "anima_events";

/// Proof that a write transaction took its ordering lock
/// ([`PostgresStore::ORDER_WRITES`]) before its first write, which the
/// outbox asks for before it records an event.
///
/// Events are delivered by writing transaction id, and PostgreSQL gives a
/// transaction its id at its first write. Taken before that write, the
/// lock makes the writers of one key (a project, or an entity outside
/// projects) take their ids in the order they commit, so their events
/// arrive in commit order: a thread's messages by sequence, a work item's
/// updates as they were saved.
#[derive(Clone, Copy)]
struct Ordered(());

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
    ($store:ident, $db:ty, $backend:literal, $visible:literal) => {
        #[async_trait]
        impl Store for $store {
            fn backend(&self) -> &'static str {
                $backend
            }

            async fn events_after(
                &self,
                after: EventPosition,
                limit: i64,
            ) -> StoreResult<Vec<Event>> {
                let sql = concat!(
                    event_select!(),
                    " WHERE (txid, id) > ($1, $2) AND ",
                    $visible,
                    " ORDER BY txid, id LIMIT $3"
                );
                self.events_page(sql, after, limit).await
            }

            async fn work_item_events_after(
                &self,
                work_item_id: &str,
                after: EventPosition,
                limit: i64,
            ) -> StoreResult<Vec<Event>> {
                let rows = sqlx::query(concat!(
                    event_select!(),
                    " WHERE work_item_id = $1 AND (txid, id) > ($2, $3) AND ",
                    $visible,
                    " ORDER BY txid, id LIMIT $4"
                ))
                .bind(work_item_id)
                .bind(after.txid)
                .bind(after.id)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(crate::backend::rows::event).collect()
            }

            async fn last_event(&self) -> StoreResult<EventPosition> {
                let row = sqlx::query(concat!(
                    "SELECT txid, id FROM events WHERE ",
                    $visible,
                    " ORDER BY txid DESC, id DESC LIMIT 1"
                ))
                .fetch_optional(&self.pool)
                .await?;
                Ok(match row {
                    Some(row) => EventPosition {
                        txid: row.try_get("txid")?,
                        id: row.try_get("id")?,
                    },
                    None => EventPosition::default(),
                })
            }

            async fn events_held_back(&self) -> StoreResult<bool> {
                let row = sqlx::query(concat!(
                    "SELECT EXISTS (SELECT 1 FROM events WHERE NOT (",
                    $visible,
                    ")) AS held"
                ))
                .fetch_one(&self.pool)
                .await?;
                Ok(row.try_get("held")?)
            }

            async fn held_back_events(
                &self,
                after: EventPosition,
                limit: i64,
            ) -> StoreResult<Vec<Event>> {
                let sql = concat!(
                    event_select!(),
                    " WHERE (txid, id) > ($1, $2) AND NOT (",
                    $visible,
                    ") ORDER BY txid, id LIMIT $3"
                );
                self.events_page(sql, after, limit).await
            }

            async fn event_position(&self, id: i64) -> StoreResult<Option<EventPosition>> {
                if id == 0 {
                    return Ok(Some(EventPosition::default()));
                }
                // Only an event readers may take: a cursor beyond the
                // horizon would pass over events still to commit below it.
                let row = sqlx::query(concat!(
                    "SELECT txid FROM events WHERE id = $1 AND ",
                    $visible
                ))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
                row.map(|row| Ok(EventPosition { txid: row.try_get("txid")?, id }))
                    .transpose()
            }

            fn commits(&self) -> watch::Receiver<u64> {
                self.listen_for_other_writers();
                self.commits.subscribe()
            }

            fn feed(&self) -> watch::Receiver<u64> {
                self.listen_for_other_writers();
                self.feed.subscribe()
            }
        }
        impl $store {

            /// The events `sql` selects after the position `after` (`$1`,
            /// `$2`), at most `limit` (`$3`).
            async fn events_page(
                &self,
                sql: &'static str,
                after: EventPosition,
                limit: i64,
            ) -> StoreResult<Vec<Event>> {
                let rows = sqlx::query(sql)
                    .bind(after.txid)
                    .bind(after.id)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(crate::backend::rows::event).collect()
            }

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
                ordered: Ordered,
                kind: EventKind,
                project_id: Option<&str>,
                entity_id: &str,
                payload: serde_json::Value,
            ) -> StoreResult<()> {
                Self::record_for(conn, ordered, kind, project_id, None, entity_id, payload).await
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

            /// Takes the ordering lock of `key` (a project's id, or the id
            /// of an entity outside projects) for the rest of the
            /// transaction; see [`Ordered`]. Fails, as a bug, when the
            /// transaction wrote before it.
            async fn order_writes(
                conn: &mut <$db as sqlx::Database>::Connection,
                key: &str,
            ) -> StoreResult<Ordered> {
                if let Some(lock) = Self::ORDER_WRITES {
                    let fresh: bool = sqlx::query(lock)
                        .bind(key)
                        .fetch_one(&mut *conn)
                        .await?
                        .try_get("fresh")?;
                    if !fresh {
                        return Err(DomainError::internal(
                            "a transaction wrote before taking its ordering lock",
                        )
                        .into());
                    }
                }
                Ok(Ordered(()))
            }

            /// Waits, before a change that takes access away commits, until
            /// every transaction that began writing before it has ended
            /// (PostgreSQL): events are delivered by transaction, so an event
            /// of an older writer that committed after the change would be
            /// delivered before it, to a reader the change shuts out. Gives
            /// up after two seconds (an older writer waiting on this one's
            /// locks), leaving that writer's events as they fall.
            async fn after_older_writers(
                conn: &mut <$db as sqlx::Database>::Connection,
            ) -> StoreResult<()> {
                let Some(oldest) = Self::OLDEST_WRITER else {
                    return Ok(());
                };
                let deadline = std::time::Instant::now() + Duration::from_secs(2);
                let mut pause = Duration::from_millis(1);
                while !sqlx::query(oldest)
                    .fetch_one(&mut *conn)
                    .await?
                    .try_get::<bool, _>("oldest")?
                {
                    if std::time::Instant::now() >= deadline {
                        tracing::warn!("an older writer still runs; revoking without waiting for it");
                        break;
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(20));
                }
                Ok(())
            }

            /// Opens a write transaction holding the ordering lock of `key`.
            async fn begin_ordered(
                &self,
                key: &str,
            ) -> StoreResult<(sqlx::Transaction<'static, $db>, Ordered)> {
                let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                let ordered = Self::order_writes(&mut tx, key).await?;
                Ok((tx, ordered))
            }

            /// Writes the outbox row of a change that concerns a work item.
            async fn record_for(
                conn: &mut <$db as sqlx::Database>::Connection,
                _ordered: Ordered,
                kind: EventKind,
                project_id: Option<&str>,
                work_item_id: Option<&str>,
                entity_id: &str,
                payload: serde_json::Value,
            ) -> StoreResult<()> {
                sqlx::query(Self::INSERT_EVENT)
                    .bind(kind.as_str())
                    .bind(project_id)
                    .bind(entity_id)
                    .bind(work_item_id)
                    .bind(payload.to_string())
                    .bind(now_micros())
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            }

            /// Commits a write and wakes this process's event readers.
            async fn commit(&self, tx: sqlx::Transaction<'_, $db>) -> StoreResult<()> {
                tx.commit().await?;
                self.commits
                    .send_modify(|count| *count = count.wrapping_add(1));
                self.announce_commit();
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
    /// See [`Store::feed`]: 0 until the LISTEN connection is up.
    feed: Arc<watch::Sender<u64>>,
    listening: Arc<Once>,
    /// Wakes [`Self::announce_commits`].
    committed: Arc<Notify>,
}

impl PostgresStore {
    /// Opens a write transaction.
    const BEGIN_WRITE: &'static str = "BEGIN";
    /// Removes counters whose window ended, skipping rows a counting
    /// transaction holds: pruning never waits, so never deadlocks with one.
    const PRUNE_ATTEMPTS: &'static str = "DELETE FROM attempt_counters WHERE counter_key IN \
         (SELECT counter_key FROM attempt_counters WHERE window_end <= $1 \
          LIMIT 1000 FOR UPDATE SKIP LOCKED)";
    /// Held until commit.
    const ADVISORY_LOCK: Option<&'static str> = Some("SELECT pg_advisory_xact_lock($1)");
    /// The ordering lock of a key ([`Ordered`]), held until commit, and
    /// whether the transaction has no id yet (has not written). Two-int
    /// advisory locks are apart from the one-bigint ones above.
    ///
    /// It also bounds each later statement of the writer to 30 s:
    /// readers deliver no event of a transaction younger than the oldest
    /// one running, so a writer that ran on would hold back every stream.
    const ORDER_WRITES: Option<&'static str> = Some(
        "SELECT pg_current_xact_id_if_assigned() IS NULL AS fresh, \
         set_config('statement_timeout', '30s', true) AS bounded \
         FROM pg_advisory_xact_lock(1634626913, hashtext($1))",
    );
    /// Whether this transaction is the oldest one running (it has written,
    /// so it has an id).
    const OLDEST_WRITER: Option<&'static str> =
        Some("SELECT pg_snapshot_xmin(pg_current_snapshot()) = pg_current_xact_id() AS oldest");
    /// The project's status, read after its ordering lock is held (so
    /// after every earlier writer of the project committed): writes into
    /// one project (key numbering, archiving, owner checks) are serialised
    /// by that lock.
    const LOCK_PROJECT: &'static str = "SELECT status FROM projects WHERE id = $1";
    /// Inserts an outbox row with its transaction's id. Other instances
    /// hear of it from [`Self::announce_commits`] once it committed.
    const INSERT_EVENT: &'static str = "INSERT INTO events \
         (kind, project_id, entity_id, work_item_id, payload, created_at, txid) \
         VALUES ($1, $2, $3, $4, $5, $6, pg_current_xact_id()::text::bigint)";

    /// Connects, migrates and seeds the built-in roles and workflows.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| {
                DomainError::invalid_argument(
                    reason::INVALID_FIELD,
                    format!("bad PostgreSQL URL: {e}"),
                )
            })?
            // A transaction left open between statements holds back every
            // stream (see ORDER_WRITES); PostgreSQL ends it.
            .options([("idle_in_transaction_session_timeout", WRITER_IDLE_TIMEOUT)]);
        let pool = pool_options::<sqlx::Postgres>(16)
            .connect_with(options)
            .await?;
        migrations::postgres()
            .run(&pool)
            .await
            .map_err(|e| DomainError::internal(format!("migrating PostgreSQL failed: {e}")))?;
        let store = Self {
            pool,
            commits: Arc::new(watch::channel(0).0),
            feed: Arc::new(watch::channel(0).0),
            listening: Arc::new(Once::new()),
            committed: Arc::new(Notify::new()),
        };
        Self::announce_commits(store.pool.clone(), Arc::downgrade(&store.committed));
        store.seed_roles().await?;
        store.seed_workflows().await?;
        Ok(store)
    }

    /// Has [`Self::announce_commits`] tell other instances of a commit.
    fn announce_commit(&self) {
        self.committed.notify_one();
    }

    /// Tells other instances that this one committed, with a NOTIFY of its
    /// own after the commit, never inside a writing transaction: PostgreSQL
    /// serialises the commits of every transaction that notified, holding a
    /// database-wide lock from queueing the notification until the commit
    /// is flushed, so writers of different projects could not share a WAL
    /// flush. Commits made while a NOTIFY is on its way are announced
    /// together by the next. If one cannot be sent, the other instances
    /// find the events when they next poll. The task ends once the store
    /// is dropped.
    fn announce_commits(pool: PgPool, committed: Weak<Notify>) {
        tokio::spawn(async move {
            loop {
                let Some(signal) = committed.upgrade() else {
                    return;
                };
                // Wake up now and then to notice a dropped store.
                let woken = tokio::time::timeout(Duration::from_secs(5), signal.notified()).await;
                drop(signal);
                if woken.is_err() {
                    continue;
                }
                let sent = sqlx::query("SELECT pg_notify($1, '')")
                    .bind(EVENTS_CHANNEL)
                    .execute(&pool)
                    .await;
                if let Err(err) = sent {
                    tracing::warn!(%err, "cannot announce commits to other instances; they poll meanwhile");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        });
    }

    /// Relays other instances' commits (PostgreSQL NOTIFY) into the commit
    /// signal, once per store. The task ends when the store is dropped.
    fn listen_for_other_writers(&self) {
        self.listening.call_once(|| {
            let pool = self.pool.clone();
            let commits = Arc::downgrade(&self.commits);
            let feed = self.feed.clone();
            tokio::spawn(async move {
                let mut listener = None;
                let mut connections = 0;
                loop {
                    let Some(signal) = commits.upgrade() else {
                        return;
                    };
                    if listener.is_none() {
                        match PgListener::connect_with(&pool).await {
                            Ok(mut connected) => match connected.listen(EVENTS_CHANNEL).await {
                                Ok(()) => {
                                    listener = Some(connected);
                                    connections += 1;
                                    feed.send_replace(connections);
                                }
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
                            // The connection dropped: reconnect (as a new
                            // feed). Readers look again meanwhile, and
                            // nothing heard from other instances is
                            // complete until it is back.
                            feed.send_replace(0);
                            listener = None;
                            if let Some(signal) = commits.upgrade() {
                                signal.send_modify(|count| *count = count.wrapping_add(1));
                            }
                        }
                        Ok(Err(err)) => {
                            tracing::warn!(%err, "lost the LISTEN connection; reconnecting");
                            feed.send_replace(0);
                            listener = None;
                        }
                        Err(_elapsed) => {}
                    }
                }
            });
        });
    }
}

// A reader takes only the events of transactions older than every one
// still running: a later commit can then never land behind what it read.
common_sql!(
    PostgresStore,
    sqlx::Postgres,
    "postgres",
    "txid < pg_snapshot_xmin(pg_current_snapshot())::text::bigint"
);

/// Embedded SQLite backend: the default of `anima up`.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    commits: Arc<watch::Sender<u64>>,
    /// See [`Store::feed`]: always 1.
    feed: Arc<watch::Sender<u64>>,
}

impl SqliteStore {
    /// Takes the write lock up front: a deferred transaction that later
    /// upgrades to writing fails with SQLITE_BUSY instead of waiting.
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";
    /// Removes counters whose window ended (writers are serialised).
    const PRUNE_ATTEMPTS: &'static str = "DELETE FROM attempt_counters WHERE window_end <= $1";
    /// SQLite serialises writers already.
    const ADVISORY_LOCK: Option<&'static str> = None;
    /// One writer at a time commits in id order: nothing to order.
    const ORDER_WRITES: Option<&'static str> = None;
    /// No other writer runs beside this one.
    const OLDEST_WRITER: Option<&'static str> = None;
    /// Writers are serialised already; reading the status is enough.
    const LOCK_PROJECT: &'static str = "SELECT status FROM projects WHERE id = $1";
    /// Inserts an outbox row. One process owns the file, so the commit
    /// signal reaches every reader.
    const INSERT_EVENT: &'static str = "INSERT INTO events \
         (kind, project_id, entity_id, work_item_id, payload, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)";

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
        let pool = pool_options::<sqlx::Sqlite>(8)
            .connect_with(options)
            .await?;
        migrations::sqlite()
            .run(&pool)
            .await
            .map_err(|e| DomainError::internal(format!("migrating SQLite failed: {e}")))?;
        let store = Self {
            pool,
            commits: Arc::new(watch::channel(0).0),
            feed: Arc::new(watch::channel(1).0),
        };
        store.seed_roles().await?;
        store.seed_workflows().await?;
        Ok(store)
    }

    /// One process owns the database file: local commits are all there is.
    fn listen_for_other_writers(&self) {}

    /// Nobody else to tell.
    fn announce_commit(&self) {}
}

// One writer commits in id order: every stored event may be read.
common_sql!(SqliteStore, sqlx::Sqlite, "sqlite", "TRUE");
