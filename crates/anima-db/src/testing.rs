//! Throw-away databases for tests: a fresh SQLite file, or a fresh database
//! on the PostgreSQL server named by `ANIMA_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`). Each is dropped when its
//! guard is.

use std::{path::PathBuf, sync::Arc};

use sqlx::{Connection, Executor, PgConnection};

use crate::Store;

/// URL of the PostgreSQL server tests create their databases on.
pub fn postgres_admin_url() -> String {
    std::env::var("ANIMA_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A database that exists for as long as this guard does.
#[derive(Debug)]
pub struct TempDatabase {
    /// URL a store (or an `anima` process) can open.
    pub url: String,
    cleanup: Cleanup,
}

#[derive(Debug)]
enum Cleanup {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

impl TempDatabase {
    /// A new, empty SQLite database file in a temporary directory.
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path: PathBuf = dir.path().join("anima.db");
        Self {
            url: format!("sqlite://{}", path.display()),
            cleanup: Cleanup::Sqlite(dir),
        }
    }

    /// A new, empty database on the test PostgreSQL server.
    pub async fn postgres() -> Self {
        let admin_url = postgres_admin_url();
        let name = format!("anima_test_{}", uuid::Uuid::now_v7().simple());
        let mut conn = PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {admin_url} is needed for this test: {e}"));
        conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .expect("create test database");
        let base = admin_url
            .rsplit_once('/')
            .map_or(admin_url.as_str(), |(base, _)| base);
        Self {
            url: format!("{base}/{name}"),
            cleanup: Cleanup::Postgres { admin_url, name },
        }
    }

    /// Opens the store on this database.
    pub async fn open(&self) -> Arc<dyn Store> {
        crate::open(&self.url).await.expect("open test store")
    }
}

impl Drop for TempDatabase {
    fn drop(&mut self) {
        let Cleanup::Postgres { admin_url, name } = &self.cleanup else {
            return;
        };
        let (admin_url, name) = (admin_url.clone(), name.clone());
        // Drop may run inside a runtime, which must not block on another;
        // a scoped thread with its own runtime avoids that.
        std::thread::scope(|scope| {
            scope.spawn(move || {
                let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                runtime.block_on(async move {
                    if let Ok(mut conn) = PgConnection::connect(&admin_url).await {
                        let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                        let _ = conn.execute(sqlx::AssertSqlSafe(sql)).await;
                    }
                });
            });
        });
    }
}

/// Waits until no committed event waits behind a transaction still running
/// ([`Store::events_held_back`]), so the next read of the outbox sees every
/// event committed so far. On PostgreSQL the horizon is the cluster's:
/// tests of other databases running beside this one hold it back briefly.
pub async fn settle_events(store: &dyn Store) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while store.events_held_back().await.expect("read the outbox") {
        assert!(
            std::time::Instant::now() < deadline,
            "events stayed held back for 30 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
}

/// A PostgreSQL transaction that wrote an outbox event and stays open until
/// [`HeldWriter::commit`]: a writer that runs long while others commit.
pub struct HeldWriter {
    conn: PgConnection,
    /// The id of the event it wrote.
    pub event_id: i64,
}

impl HeldWriter {
    /// Opens the transaction on the database at `url` and writes one
    /// `work_item.updated` event of `work_item_id` in `project_id`.
    pub async fn begin(url: &str, project_id: &str, work_item_id: &str) -> Self {
        let mut conn = PgConnection::connect(url).await.expect("connect");
        conn.execute("BEGIN").await.expect("begin");
        let row = sqlx::query(
            "WITH event AS (INSERT INTO events \
             (kind, project_id, entity_id, work_item_id, payload, created_at, txid) \
             VALUES ('work_item.updated', $1, $2, $2, '{}', 0, pg_current_xact_id()::text::bigint) \
             RETURNING id) SELECT id, pg_notify('anima_events', '') FROM event",
        )
        .bind(project_id)
        .bind(work_item_id)
        .fetch_one(&mut conn)
        .await
        .expect("write the held event");
        let event_id = sqlx::Row::try_get(&row, "id").expect("event id");
        Self { conn, event_id }
    }

    /// Commits: its event, and every event held back behind it, become
    /// readable.
    pub async fn commit(mut self) {
        self.conn.execute("COMMIT").await.expect("commit");
    }
}

/// Brings the PostgreSQL database at `url` to schema `version` only, as an
/// older build would have left it.
pub async fn migrate_postgres_to(url: &str, version: i64) {
    let mut conn = PgConnection::connect(url).await.expect("connect");
    crate::migrations::postgres_up_to(version)
        .run(&mut conn)
        .await
        .expect("migrate");
}

/// Ends every PostgreSQL backend of the database at `url` that listens for
/// events (an outage of each instance's LISTEN connection); returns how
/// many.
pub async fn terminate_listeners(url: &str) -> usize {
    let mut conn = PgConnection::connect(url).await.expect("connect");
    let ended: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND query ILIKE 'LISTEN%'",
    )
    .fetch_all(&mut conn)
    .await
    .expect("terminate the LISTEN backends");
    ended.into_iter().filter(|ended| *ended).count()
}

/// Keeps `content` in the database at `url` the way documents' bytes were
/// kept before the library (a row of `blobs`); returns its SHA-256.
pub async fn keep_bytes_in_database(url: &str, content: &[u8]) -> String {
    let sha256 = anima_core::document::content_sha256(content);
    const INSERT: &str = "INSERT INTO blobs (sha256, size_bytes, content) VALUES ($1, $2, $3)";
    let size_bytes = content.len() as i64;
    if url.starts_with("postgres") {
        let mut conn = PgConnection::connect(url).await.expect("connect");
        sqlx::query(INSERT)
            .bind(&sha256)
            .bind(size_bytes)
            .bind(content)
            .execute(&mut conn)
            .await
            .expect("insert");
    } else {
        let mut conn = sqlx::SqliteConnection::connect(url).await.expect("connect");
        sqlx::query(INSERT)
            .bind(&sha256)
            .bind(size_bytes)
            .bind(content)
            .execute(&mut conn)
            .await
            .expect("insert");
    }
    sha256
}
