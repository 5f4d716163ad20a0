//! The search index: documents as anima-server names them, their chunks,
//! each chunk's words (SQLite FTS5 or PostgreSQL `tsvector`) and vector.
//! One trait, [`IndexStore`], two backends that share their SQL where the
//! dialects agree ([`sql`]); the conformance suite (`tests/index.rs`) runs
//! unchanged against both.
//!
//! A forgotten document keeps a row marked `forgotten`, and indexing takes
//! that row's lock before it writes chunks: a document deleted while it is
//! being indexed, or whose index request arrives after its deletion, never
//! leaves chunks behind.

mod sql;

use std::{collections::BTreeSet, path::Path, str::FromStr, time::Duration};

use anima_core::{DomainError, ErrorCode, error::reason};
use anyhow::Context;
use async_trait::async_trait;
pub use sql::{PostgresIndex, SqliteIndex};
use sqlx::{
    Connection,
    migrate::{Migration, MigrationType, Migrator},
    postgres::PgPoolOptions,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};

/// A document as the index keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedDocument {
    /// anima-server's id.
    pub id: String,
    /// Its project.
    pub project_id: String,
    /// Its work item, if any.
    pub work_item_id: Option<String>,
    /// markdown, text, patch, attachment.
    pub doc_type: String,
    /// Its title (searched with every chunk).
    pub title: String,
}

/// What a search may see of the index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchScope {
    /// Only documents of these projects (none: nothing is found); a set,
    /// since every chunk a search looks at is checked against it.
    pub project_ids: BTreeSet<String>,
    /// Only documents of this work item.
    pub work_item_id: Option<String>,
    /// Only documents of these types (none: every type).
    pub doc_types: Vec<String>,
}

impl SearchScope {
    /// Whether a chunk of a document with these fields is in scope.
    pub fn admits(&self, project_id: &str, work_item_id: Option<&str>, doc_type: &str) -> bool {
        self.project_ids.contains(project_id)
            && self
                .work_item_id
                .as_deref()
                .is_none_or(|wanted| work_item_id == Some(wanted))
            && (self.doc_types.is_empty() || self.doc_types.iter().any(|kind| kind == doc_type))
    }
}

/// Where a chunk belongs, as search filters it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkPlace {
    /// The chunk's key (its row's sequence number).
    pub seq: i64,
    /// Its document's project, work item and type.
    pub project_id: String,
    /// Its document's work item.
    pub work_item_id: Option<String>,
    /// Its document's type.
    pub doc_type: String,
}

/// A chunk waiting for its vector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingChunk {
    /// Where it belongs.
    pub place: ChunkPlace,
    /// Its document's title.
    pub title: String,
    /// Its text.
    pub text: String,
}

/// A chunk as search shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredChunk {
    /// Its key.
    pub seq: i64,
    /// Its document.
    pub document_id: String,
    /// Its place in the document, from 0.
    pub ordinal: i32,
    /// Its document's title.
    pub title: String,
    /// Its text.
    pub text: String,
}

/// What indexing a document did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replaced {
    /// Its chunks were stored; these chunks' vectors (of the chunks it had
    /// before) are gone.
    Stored {
        /// The keys of vectors removed with the old chunks.
        removed: Vec<i64>,
    },
    /// The document was forgotten before: nothing was stored.
    Forgotten,
}

/// The count, highest and sum of the keys of one model's vectors.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Fingerprint {
    /// How many.
    pub count: i64,
    /// The highest key.
    pub max_seq: i64,
    /// The sum of the keys.
    pub sum_seq: i64,
}

/// How much the index holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IndexStats {
    /// Documents indexed (not forgotten).
    pub documents: i64,
    /// Their chunks.
    pub chunks: i64,
    /// Chunks with a vector of the model asked about.
    pub embedded: i64,
}

/// Failures of the index, as callers see them.
pub type IndexResult<T> = Result<T, DomainError>;

/// The index over one database.
#[async_trait]
pub trait IndexStore: Send + Sync + 'static {
    /// Stores `document` with these chunks (text only; vectors come
    /// later), replacing the chunks it had; nothing when it was forgotten.
    async fn replace_document(
        &self,
        document: &IndexedDocument,
        chunks: &[String],
    ) -> IndexResult<Replaced>;
    /// Forgets the document for good (its row keeps only its id, so that
    /// a late index request never brings it back); the keys of the
    /// vectors removed.
    async fn forget_document(&self, id: &str) -> IndexResult<Vec<i64>>;
    /// Drops what is left of documents forgotten before `before` (µs since
    /// the epoch): no late request comes that late, and the ids would
    /// otherwise pile up forever; how many went.
    async fn prune_forgotten(&self, before: i64) -> IndexResult<u64>;
    /// Every document indexed and not forgotten.
    async fn documents(&self) -> IndexResult<Vec<IndexedDocument>>;
    /// Up to `limit` chunks without a vector of `model` (any vector, when
    /// `model` is `None`), oldest first.
    async fn pending_chunks(
        &self,
        model: Option<&str>,
        limit: i64,
    ) -> IndexResult<Vec<PendingChunk>>;
    /// Sets chunks' vectors; the keys of the chunks that still existed.
    async fn set_vectors(&self, model: &str, vectors: &[(i64, Vec<f32>)]) -> IndexResult<Vec<i64>>;
    /// Up to `limit` vectors of `model` with keys above `after`, in key
    /// order, with their chunks' places (to build the vector index).
    async fn vectors(
        &self,
        model: &str,
        after: i64,
        limit: i64,
    ) -> IndexResult<Vec<(ChunkPlace, Vec<f32>)>>;
    /// Up to `limit` places of chunks with vectors of `model` and keys above
    /// `after`, in key order (to rebuild the graph's filters from a
    /// snapshot, without the vectors).
    async fn places(&self, model: &str, after: i64, limit: i64) -> IndexResult<Vec<ChunkPlace>>;
    /// What identifies the set of `model`'s vectors: a graph saved with the
    /// same fingerprint holds exactly them (a chunk's vector of one model
    /// never changes; new chunks get new keys).
    async fn fingerprint(&self, model: &str) -> IndexResult<Fingerprint>;
    /// The keys of up to `limit` chunks in scope that contain the query's
    /// words, best first (BM25 on SQLite, `ts_rank` on PostgreSQL).
    async fn lexical(
        &self,
        query: &crate::search::Terms,
        scope: &SearchScope,
        limit: i64,
    ) -> IndexResult<Vec<i64>>;
    /// These chunks, in no particular order; missing ones are left out.
    async fn chunks(&self, seqs: &[i64]) -> IndexResult<Vec<StoredChunk>>;
    /// Marks every chunk's vector as wanting a new one (it stays until
    /// replaced); how many were marked.
    async fn mark_all_for_embedding(&self) -> IndexResult<i64>;
    /// Counts, with vectors counted for `model`.
    async fn stats(&self, model: Option<&str>) -> IndexResult<IndexStats>;
    /// Refuses (`INDEX_TAKEN_OVER`) when another process took over the
    /// index this one writes ([`open_writer`]); what this one keeps beside
    /// the index (its saved vector graph) is then no longer its to write.
    async fn check_writer(&self) -> IndexResult<()>;
}

/// The index named by `url` (`sqlite://PATH` or `postgres://…`), created
/// and migrated on first use, for a process that does not keep a vector
/// graph of it (tools, tests, benchmarks); a library service opens it with
/// [`open_writer`].
pub async fn open(url: &str) -> anyhow::Result<std::sync::Arc<dyn IndexStore>> {
    open_as(url, false).await
}

/// [`open`], once no other process writes the index, which then cannot
/// until this one drops it. Each library service keeps a vector graph in
/// step with what it writes itself; a second one writing the same index
/// would leave each graph without the other's vectors.
pub async fn open_writer(url: &str) -> anyhow::Result<std::sync::Arc<dyn IndexStore>> {
    open_as(url, true).await
}

/// The advisory lock key on PostgreSQL ("animaLib"): locks are per database,
/// so indexes in different databases do not meet.
const WRITER_LOCK_KEY: i64 = 0x616e_696d_614c_6962;

/// This process's right to write an index: the lock that keeps a second
/// writer out, and the epoch it took with it, which each write checks (a
/// lock can end unnoticed: PostgreSQL ends it with a connection that a
/// restart, failover or `pg_terminate_backend` closes, and a lock file can
/// be deleted). Whoever takes the lock next raises the epoch, so from then
/// on this process's writes are refused instead of slipping past the
/// successor's vector graph.
pub(crate) struct Writer {
    /// Held until this process ends or drops the index.
    _lock: WriterLock,
    /// The epoch taken with the lock.
    pub(crate) epoch: i64,
}

/// What stops a second process writing an index while this one does.
enum WriterLock {
    /// A session advisory lock on PostgreSQL, held by a connection of its
    /// own (it ends with the connection).
    Postgres {
        _connection: std::sync::Mutex<sqlx::PgConnection>,
    },
    /// An exclusive lock on a file beside the SQLite database (the kernel
    /// ends it with the process).
    Sqlite { _file: std::fs::File },
}

/// Raises the index's writer epoch (see [`Writer`]), returning the new one.
const TAKE_EPOCH: &str = "UPDATE library_writer SET epoch = epoch + 1 WHERE id = 1 RETURNING epoch";

/// The right to write of a process that holds `lock`, once `take` raised
/// the epoch.
async fn writer_of(
    lock: Option<WriterLock>,
    take: impl Future<Output = Result<i64, sqlx::Error>>,
) -> anyhow::Result<Option<Writer>> {
    let Some(lock) = lock else {
        return Ok(None);
    };
    let epoch = take.await.context("taking the index's writer epoch")?;
    Ok(Some(Writer { _lock: lock, epoch }))
}

/// The error of a write by a process whose writer lock someone else holds
/// now ([`Writer`]).
pub(crate) fn taken_over() -> DomainError {
    tracing::error!(
        "another library service took this index over (this one lost its writer lock); \
         writes are refused: restart this service, or stop it"
    );
    DomainError::new(
        ErrorCode::Unavailable,
        reason::INDEX_TAKEN_OVER,
        "another library service writes this index now",
    )
}

/// Refuses `url`'s index when another process writes it.
fn already_written() -> anyhow::Error {
    anyhow::anyhow!(
        "another anima-library process writes this index; run one library service per index \
         and point the other servers at it ([library] url)"
    )
}

async fn open_as(url: &str, writer: bool) -> anyhow::Result<std::sync::Arc<dyn IndexStore>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let lock = match writer {
            true => {
                let mut connection = sqlx::PgConnection::connect(url)
                    .await
                    .context("connecting to the index database")?;
                let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                    .bind(WRITER_LOCK_KEY)
                    .fetch_one(&mut connection)
                    .await
                    .context("locking the index")?;
                if !locked {
                    return Err(already_written());
                }
                Some(WriterLock::Postgres {
                    _connection: std::sync::Mutex::new(connection),
                })
            }
            false => None,
        };
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await
            .context("connecting to the index database")?;
        migrator(POSTGRES)
            .run(&pool)
            .await
            .context("migrating the index")?;
        let writer = writer_of(lock, sqlx::query_scalar(TAKE_EPOCH).fetch_one(&pool)).await?;
        return Ok(std::sync::Arc::new(PostgresIndex::new(pool, writer)));
    }
    let path = url
        .strip_prefix("sqlite://")
        // The URL is not repeated: a mistyped one may hold a password.
        .context("[library] index: write sqlite://PATH or postgres://…")?;
    if let Some(dir) = Path::new(path)
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let lock = match writer {
        true => {
            // Beside the database file the options name (a query string
            // is not part of it).
            let file_path = path.split_once('?').map_or(path, |(file, _)| file);
            if file_path.is_empty() || file_path == ":memory:" {
                anyhow::bail!("a library service's index must be a file: [library] index");
            }
            let lock = format!("{file_path}.writer");
            let file = crate::create_private(Path::new(&lock))?;
            match file.try_lock() {
                Ok(()) => Some(WriterLock::Sqlite { _file: file }),
                Err(std::fs::TryLockError::WouldBlock) => return Err(already_written()),
                Err(std::fs::TryLockError::Error(error)) => {
                    return Err(error).with_context(|| format!("locking {lock}"));
                }
            }
        }
        false => None,
    };
    let options = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await
        .with_context(|| format!("opening {path}"))?;
    migrator(SQLITE)
        .run(&pool)
        .await
        .context("migrating the index")?;
    let writer = writer_of(lock, sqlx::query_scalar(TAKE_EPOCH).fetch_one(&pool)).await?;
    Ok(std::sync::Arc::new(SqliteIndex::new(pool, writer)))
}

/// Migrations: version, description, SQL.
type Step = (i64, &'static str, &'static str);

const SQLITE: &[Step] = &[
    (
        1,
        "index",
        include_str!("../../migrations/sqlite/0001_index.sql"),
    ),
    (
        2,
        "vocabulary",
        include_str!("../../migrations/sqlite/0002_vocabulary.sql"),
    ),
    (
        3,
        "writer",
        include_str!("../../migrations/sqlite/0003_writer.sql"),
    ),
];
const POSTGRES: &[Step] = &[
    (
        1,
        "index",
        include_str!("../../migrations/postgres/0001_index.sql"),
    ),
    (
        2,
        "forgotten",
        include_str!("../../migrations/postgres/0002_forgotten.sql"),
    ),
    (
        3,
        "writer",
        include_str!("../../migrations/postgres/0003_writer.sql"),
    ),
];

/// The library's migrations, recorded in a table of their own so that its
/// index may share a database with anima-server's tables.
fn migrator(steps: &[Step]) -> Migrator {
    let mut migrator = Migrator::with_migrations(
        steps
            .iter()
            .map(|(version, description, sql)| {
                Migration::new(
                    *version,
                    (*description).into(),
                    MigrationType::Simple,
                    sqlx::SqlSafeStr::into_sql_str(*sql),
                    false,
                )
            })
            .collect(),
    );
    migrator.dangerous_set_table_name("_anima_library_migrations");
    migrator
}

/// A database failure, logged here with its details and reported as the
/// index being unavailable.
pub(crate) fn unavailable(error: sqlx::Error) -> DomainError {
    tracing::error!(%error, "the library's index failed");
    DomainError::new(
        ErrorCode::Unavailable,
        reason::STORAGE_UNAVAILABLE,
        "the library's index is unavailable",
    )
}
