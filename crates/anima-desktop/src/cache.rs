//! The local read cache: what the server last said, kept in SQLite so the
//! client shows something at once on start, and still opens when the server
//! is down. The server is the source of truth: nothing is written here but
//! what it sent, and the whole cache can be wiped and rebuilt from it.
//!
//! Records are kept as the protobuf messages the server sent (one table,
//! keyed by kind and id, grouped by a scope such as a work item's project),
//! so a new screen needs no schema change.

use std::path::Path;

use anyhow::Context;
use sqlx::{
    Row, SqlitePool,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions},
};

/// What a cached record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The dashboard snapshot (one record).
    Dashboard,
    /// A project (scope: none).
    Project,
    /// A work item (scope: its project).
    WorkItem,
    /// A thread message (scope: its work item).
    Message,
    /// A plan (scope: its project).
    Plan,
    /// A library document (scope: its project).
    Document,
    /// A workflow (scope: none).
    Workflow,
    /// A user account (scope: none).
    User,
    /// A project membership (scope: its project).
    Member,
    /// A description revision (scope: its work item).
    Revision,
    /// An agent session (scope: its work item).
    Session,
    /// A published skill version (scope: none).
    Skill,
    /// A repository (scope: its project).
    Repository,
    /// The signed-in account, with its preferences (one record).
    Account,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Dashboard => "dashboard",
            Kind::Project => "project",
            Kind::WorkItem => "work_item",
            Kind::Message => "message",
            Kind::Plan => "plan",
            Kind::Document => "document",
            Kind::Workflow => "workflow",
            Kind::User => "user",
            Kind::Member => "member",
            Kind::Revision => "revision",
            Kind::Session => "session",
            Kind::Skill => "skill",
            Kind::Repository => "repository",
            Kind::Account => "account",
        }
    }
}

/// A record's key in the cache: its id (unique within its kind) and its
/// place in its list (text order).
pub type Key = (String, String);

/// The cache database.
#[derive(Clone)]
pub struct Cache {
    pool: SqlitePool,
}

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS records (
    kind  TEXT NOT NULL,
    id    TEXT NOT NULL,
    scope TEXT NOT NULL,
    sort  TEXT NOT NULL,
    body  BLOB NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE INDEX IF NOT EXISTS records_list ON records (kind, scope, sort);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);";

impl Cache {
    /// Opens (or creates) the cache file at `path`.
    pub async fn open(path: &Path) -> anyhow::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        // It holds the session token and every project's cached records.
        anima_client::keep_sqlite_private(path)?;
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal);
        Self::with(options).await
    }

    /// A cache that lives only as long as this value (tests, benchmarks).
    pub async fn in_memory() -> anyhow::Result<Self> {
        Self::with(SqliteConnectOptions::new().in_memory(true)).await
    }

    async fn with(options: SqliteConnectOptions) -> anyhow::Result<Self> {
        // One connection: an in-memory database exists per connection, and
        // the client's reads are few and small.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .context("opening the cache")?;
        sqlx::raw_sql(SCHEMA).execute(&pool).await?;
        Ok(Self { pool })
    }

    /// Replaces every record of `kind` in `scope` with `records`, at
    /// once, each stored under its `key`.
    pub async fn replace_records<M: prost::Message>(
        &self,
        kind: Kind,
        scope: &str,
        records: &[M],
        key: impl Fn(&M) -> Key,
    ) -> anyhow::Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM records WHERE kind = $1 AND scope = $2")
            .bind(kind.as_str())
            .bind(scope)
            .execute(&mut *tx)
            .await?;
        for record in records {
            Self::put(&mut tx, kind, scope, key(record), record).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Adds or updates one record under its `key`.
    pub async fn upsert_record<M: prost::Message>(
        &self,
        kind: Kind,
        scope: &str,
        record: &M,
        key: impl Fn(&M) -> Key,
    ) -> anyhow::Result<()> {
        let mut conn = self.pool.acquire().await?;
        Self::put(&mut conn, kind, scope, key(record), record).await
    }

    async fn put<M: prost::Message>(
        conn: &mut sqlx::SqliteConnection,
        kind: Kind,
        scope: &str,
        (id, sort): Key,
        record: &M,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO records (kind, id, scope, sort, body) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (kind, id) DO UPDATE SET scope = $3, sort = $4, body = $5",
        )
        .bind(kind.as_str())
        .bind(id)
        .bind(scope)
        .bind(sort)
        .bind(record.encode_to_vec())
        .execute(conn)
        .await?;
        Ok(())
    }

    /// The records of `kind` in every scope, in their order.
    pub async fn list_all<M: prost::Message + Default>(
        &self,
        kind: Kind,
    ) -> anyhow::Result<Vec<M>> {
        let rows = sqlx::query("SELECT body FROM records WHERE kind = $1 ORDER BY sort, id")
            .bind(kind.as_str())
            .fetch_all(&self.pool)
            .await?;
        decode_all(&rows)
    }

    /// The records of `kind` in `scope`, in their order.
    pub async fn list<M: prost::Message + Default>(
        &self,
        kind: Kind,
        scope: &str,
    ) -> anyhow::Result<Vec<M>> {
        let rows = sqlx::query(
            "SELECT body FROM records WHERE kind = $1 AND scope = $2 ORDER BY sort, id",
        )
        .bind(kind.as_str())
        .bind(scope)
        .fetch_all(&self.pool)
        .await?;
        decode_all(&rows)
    }

    /// One record by id.
    pub async fn get<M: prost::Message + Default>(
        &self,
        kind: Kind,
        id: &str,
    ) -> anyhow::Result<Option<M>> {
        let row = sqlx::query("SELECT body FROM records WHERE kind = $1 AND id = $2")
            .bind(kind.as_str())
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(decode).transpose()
    }

    /// Remembers a small value (the server's address, the session token).
    pub async fn set_meta(&self, key: &str, value: &str) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = $2",
        )
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A value remembered with [`Cache::set_meta`].
    pub async fn meta(&self, key: &str) -> anyhow::Result<Option<String>> {
        Ok(sqlx::query("SELECT value FROM meta WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?
            .map(|row| row.try_get("value"))
            .transpose()?)
    }

    /// Forgets a value remembered with [`Cache::set_meta`].
    pub async fn forget(&self, key: &str) -> anyhow::Result<()> {
        sqlx::query("DELETE FROM meta WHERE key = $1")
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Forgets every cached record (the login stays).
    pub async fn wipe(&self) -> anyhow::Result<()> {
        sqlx::query("DELETE FROM records")
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

fn decode<M: prost::Message + Default>(row: &sqlx::sqlite::SqliteRow) -> anyhow::Result<M> {
    let body: Vec<u8> = row.try_get("body")?;
    M::decode(body.as_slice()).context("a cached record does not decode")
}

fn decode_all<M: prost::Message + Default>(
    rows: &[sqlx::sqlite::SqliteRow],
) -> anyhow::Result<Vec<M>> {
    rows.iter().map(decode).collect()
}

#[cfg(test)]
mod tests {
    use anima_proto::v1 as pb;

    use super::*;

    fn project(id: &str, name: &str) -> pb::Project {
        pb::Project {
            id: id.into(),
            name: name.into(),
            ..pb::Project::default()
        }
    }

    fn by_name(project: &pb::Project) -> Key {
        (project.id.clone(), project.name.to_lowercase())
    }

    #[tokio::test]
    async fn records_round_trip_in_order_and_wipe() {
        let cache = Cache::in_memory().await.expect("cache");
        let (b, a) = (project("p2", "Beta"), project("p1", "Alpha"));
        cache
            .replace_records(Kind::Project, "", &[b.clone(), a.clone()], by_name)
            .await
            .expect("replace");
        let listed: Vec<pb::Project> = cache.list(Kind::Project, "").await.expect("list");
        assert_eq!(listed, [a.clone(), b.clone()]);

        // A replace drops what the server no longer has.
        cache
            .replace_records(Kind::Project, "", std::slice::from_ref(&a), by_name)
            .await
            .expect("replace");
        assert_eq!(
            cache
                .list::<pb::Project>(Kind::Project, "")
                .await
                .expect("list"),
            std::slice::from_ref(&a)
        );
        assert_eq!(
            cache
                .get::<pb::Project>(Kind::Project, "p1")
                .await
                .expect("get"),
            Some(a)
        );

        cache.set_meta("server", "http://x").await.expect("meta");
        cache.wipe().await.expect("wipe");
        assert!(
            cache
                .list::<pb::Project>(Kind::Project, "")
                .await
                .expect("list")
                .is_empty()
        );
        assert_eq!(
            cache.meta("server").await.expect("meta").as_deref(),
            Some("http://x")
        );
    }

    #[tokio::test]
    async fn a_cache_file_survives_reopening() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("cache.sqlite");
        let message = pb::Message {
            id: "m1".into(),
            body: "hello".into(),
            ..pb::Message::default()
        };
        {
            let cache = Cache::open(&path).await.expect("open");
            cache
                .upsert_record(Kind::Message, "wi-1", &message, |m| {
                    (m.id.clone(), "0001".into())
                })
                .await
                .expect("upsert");
        }
        let cache = Cache::open(&path).await.expect("reopen");
        let listed: Vec<pb::Message> = cache.list(Kind::Message, "wi-1").await.expect("list");
        assert_eq!(listed, [message]);
    }
}
