//! The two backends of [`IndexStore`]: one SQL text where the dialects
//! agree, instantiated per backend by `index_sql!`; the full-text query
//! and lists of values differ and are associated constants.

use std::collections::{HashMap, HashSet};

use anima_core::model::now_micros;
use async_trait::async_trait;
use sqlx::{PgPool, Row, SqlitePool};

use super::{
    ChunkPlace, Fingerprint, IndexResult, IndexStats, IndexStore, IndexedDocument, PendingChunk,
    Replaced, SearchScope, StoredChunk, Writer, taken_over, unavailable,
};
use crate::search::{Terms, fts5_of};

/// Chunks a word may be in and still pick a search's candidates by itself
/// (also when that is less than a hundredth of the chunks).
const COMMON_WORD_CHUNKS: i64 = 1_000;

/// The SQLite search by words, in the order given.
macro_rules! sqlite_lexical {
    ($order:literal) => {
        concat!(
            "SELECT c.seq FROM library_chunks_fts \
             JOIN library_chunks c ON c.seq = library_chunks_fts.rowid \
             JOIN library_documents d ON d.id = c.document_id \
             WHERE library_chunks_fts MATCH $1 \
             AND d.project_id IN (SELECT value FROM json_each($2)) \
             AND ($3 IS NULL OR d.work_item_id = $3) \
             AND ($4 = '[]' OR d.doc_type IN (SELECT value FROM json_each($4))) \
             ORDER BY ",
            $order,
            " LIMIT $5"
        )
    };
}

/// The index on SQLite (FTS5, BM25).
pub struct SqliteIndex {
    pool: SqlitePool,
    /// Held while this process writes the index ([`super::open_writer`]).
    writer: Option<Writer>,
}

impl SqliteIndex {
    pub(super) fn new(pool: SqlitePool, writer: Option<Writer>) -> Self {
        Self { pool, writer }
    }

    /// Writers take the database's write lock at once, so two writers never
    /// deadlock upgrading a read lock.
    const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

    /// The writer epoch; `BEGIN IMMEDIATE` already keeps it from changing
    /// until commit.
    const WRITER_EPOCH: &str = "SELECT epoch FROM library_writer WHERE id = 1";

    /// Keys of chunks in scope whose words match `$1` (an FTS5 query), best
    /// first; `$2` and `$4` are JSON arrays, `$3` a work item or NULL.
    const LEXICAL: &str = sqlite_lexical!("bm25(library_chunks_fts, 2.0, 1.0), c.seq");

    /// As [`Self::LEXICAL`], newest first: no ranking by BM25, which would
    /// score every chunk that holds the words.
    const LEXICAL_NEWEST: &str = sqlite_lexical!("library_chunks_fts.rowid DESC");

    /// Chunks whose keys are in the JSON array `$1`.
    const CHUNKS: &str = "SELECT seq, document_id, ordinal, title, text FROM library_chunks \
         WHERE seq IN (SELECT value FROM json_each($1))";

    /// The FTS5 query for `terms` and the SQL that ranks with it. BM25 has
    /// to score every chunk that holds any of the words, so a word common
    /// to more than [`COMMON_WORD_CHUNKS`] chunks (or a hundredth of them
    /// all) does not pick candidates, much as Lucene's common-terms query
    /// treats such words: what they add to a chunk's score is small, and
    /// the search weighs every word of the query in the candidates it
    /// keeps. When every word is that common, the newest chunks holding
    /// the rarest term are the candidates.
    async fn lexical_plan(&self, terms: &Terms) -> IndexResult<(String, &'static str)> {
        let words: HashSet<&str> = terms.words().collect();
        let words: Vec<&str> = words.into_iter().collect();
        let found: Vec<(String, i64)> = sqlx::query_as(
            "SELECT term, doc FROM library_chunks_vocabulary \
             WHERE term IN (SELECT value FROM json_each($1))",
        )
        .bind(json_list(&words))
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        let holding: HashMap<String, i64> = found.into_iter().collect();
        // The highest key is the number of chunks ever stored: near enough.
        let chunks: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM library_chunks")
            .fetch_one(&self.pool)
            .await
            .map_err(unavailable)?;
        let common = (chunks / 100).max(COMMON_WORD_CHUNKS);
        // A phrase is in at most as many chunks as its rarest word.
        let chunks_with = |phrase: &Vec<String>| {
            phrase
                .iter()
                .map(|word| holding.get(word).copied().unwrap_or(0))
                .min()
                .unwrap_or(0)
        };
        let telling: Vec<&Vec<String>> = terms
            .phrases()
            .iter()
            .filter(|phrase| chunks_with(phrase) <= common)
            .collect();
        if !telling.is_empty() {
            return Ok((fts5_of(telling), Self::LEXICAL));
        }
        let rarest = terms
            .phrases()
            .iter()
            .min_by_key(|phrase| chunks_with(phrase));
        Ok((fts5_of(rarest), Self::LEXICAL_NEWEST))
    }
}

/// The index on PostgreSQL (`tsvector`, `ts_rank`).
pub struct PostgresIndex {
    pool: PgPool,
    /// Held while this process writes the index ([`super::open_writer`]).
    writer: Option<Writer>,
}

impl PostgresIndex {
    pub(super) fn new(pool: PgPool, writer: Option<Writer>) -> Self {
        Self { pool, writer }
    }

    const BEGIN_WRITE: &str = "BEGIN";

    /// The writer epoch, locked until commit: a successor raising it waits
    /// for this write to end, and sees it when it reads the index.
    const WRITER_EPOCH: &str = "SELECT epoch FROM library_writer WHERE id = 1 FOR SHARE";

    const LEXICAL: &str = "SELECT c.seq FROM library_chunks c \
         JOIN library_documents d ON d.id = c.document_id, to_tsquery('simple', $1) q \
         WHERE c.words @@ q \
         AND d.project_id IN (SELECT jsonb_array_elements_text($2::jsonb)) \
         AND ($3::text IS NULL OR d.work_item_id = $3) \
         AND ($4 = '[]' OR d.doc_type IN (SELECT jsonb_array_elements_text($4::jsonb))) \
         ORDER BY ts_rank(c.words, q, 1) DESC, c.seq LIMIT $5";

    const CHUNKS: &str = "SELECT seq, document_id, ordinal, title, text FROM library_chunks \
         WHERE seq IN (SELECT jsonb_array_elements_text($1::jsonb)::bigint)";

    /// The `tsquery` for `terms`; PostgreSQL's GIN index and `ts_rank`
    /// (which needs no counts across chunks) take every word.
    async fn lexical_plan(&self, terms: &Terms) -> IndexResult<(String, &'static str)> {
        Ok((terms.tsquery(), Self::LEXICAL))
    }
}

/// A vector as stored: its floats, little-endian.
fn vector_bytes(vector: &[f32]) -> Vec<u8> {
    vector
        .iter()
        .flat_map(|value| value.to_le_bytes())
        .collect()
}

fn vector_of(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|four| f32::from_le_bytes([four[0], four[1], four[2], four[3]]))
        .collect()
}

fn json_list<T: serde::Serialize + ?Sized>(values: &T) -> String {
    serde_json::to_string(values).unwrap_or_else(|_| "[]".into())
}

macro_rules! index_sql {
    ($store:ident, $db:ty) => {
        impl $store {
            /// Every row read by `read`, failures as the index's.
            fn read_all<T>(
                rows: &[<$db as sqlx::Database>::Row],
                read: impl Fn(&<$db as sqlx::Database>::Row) -> Result<T, sqlx::Error>,
            ) -> IndexResult<Vec<T>> {
                rows.iter()
                    .map(read)
                    .collect::<Result<_, sqlx::Error>>()
                    .map_err(unavailable)
            }

            fn place(row: &<$db as sqlx::Database>::Row) -> Result<ChunkPlace, sqlx::Error> {
                Ok(ChunkPlace {
                    seq: row.try_get("seq")?,
                    project_id: row.try_get("project_id")?,
                    work_item_id: row.try_get("work_item_id")?,
                    doc_type: row.try_get("doc_type")?,
                })
            }

            /// A write transaction, once this process is still the index's
            /// writer, if it is one ([`Writer`]).
            async fn begin_write(&self) -> IndexResult<sqlx::Transaction<'static, $db>> {
                let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await.map_err(unavailable)?;
                if let Some(writer) = &self.writer {
                    let epoch: i64 = sqlx::query_scalar(Self::WRITER_EPOCH)
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(unavailable)?;
                    if epoch != writer.epoch {
                        return Err(taken_over());
                    }
                }
                Ok(tx)
            }

            /// The keys of the document's chunks that have vectors, then
            /// its chunks deleted.
            async fn remove_chunks(
                tx: &mut sqlx::Transaction<'static, $db>,
                document_id: &str,
            ) -> Result<Vec<i64>, sqlx::Error> {
                let removed: Vec<i64> = sqlx::query_scalar(
                    "SELECT seq FROM library_chunks WHERE document_id = $1 AND vector IS NOT NULL",
                )
                .bind(document_id)
                .fetch_all(&mut **tx)
                .await?;
                sqlx::query("DELETE FROM library_chunks WHERE document_id = $1")
                    .bind(document_id)
                    .execute(&mut **tx)
                    .await?;
                Ok(removed)
            }
        }

        #[async_trait]
        impl IndexStore for $store {
            async fn replace_document(
                &self,
                document: &IndexedDocument,
                chunks: &[String],
            ) -> IndexResult<Replaced> {
                let mut tx = self.begin_write().await?;
                // The row's lock is held until commit: a forget that comes
                // meanwhile waits, then removes what this stored; one that
                // came before leaves `forgotten` set, and nothing is stored.
                let kept: Option<String> = sqlx::query_scalar(
                    "INSERT INTO library_documents \
                     (id, project_id, work_item_id, doc_type, title, indexed_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT (id) DO UPDATE SET project_id = excluded.project_id, \
                     work_item_id = excluded.work_item_id, doc_type = excluded.doc_type, \
                     title = excluded.title, indexed_at = excluded.indexed_at \
                     WHERE library_documents.forgotten = FALSE RETURNING id",
                )
                .bind(&document.id)
                .bind(&document.project_id)
                .bind(document.work_item_id.as_deref())
                .bind(&document.doc_type)
                .bind(&document.title)
                .bind(now_micros())
                .fetch_optional(&mut *tx)
                .await
                .map_err(unavailable)?;
                if kept.is_none() {
                    return Ok(Replaced::Forgotten);
                }
                let removed = Self::remove_chunks(&mut tx, &document.id)
                    .await
                    .map_err(unavailable)?;
                for (ordinal, text) in chunks.iter().enumerate() {
                    sqlx::query(
                        "INSERT INTO library_chunks (document_id, ordinal, title, text) \
                         VALUES ($1, $2, $3, $4)",
                    )
                    .bind(&document.id)
                    .bind(i32::try_from(ordinal).unwrap_or(i32::MAX))
                    .bind(&document.title)
                    .bind(text)
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable)?;
                }
                tx.commit().await.map_err(unavailable)?;
                Ok(Replaced::Stored { removed })
            }

            async fn forget_document(&self, id: &str) -> IndexResult<Vec<i64>> {
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "INSERT INTO library_documents \
                     (id, project_id, doc_type, title, forgotten, indexed_at) \
                     VALUES ($1, '', '', '', TRUE, $2) \
                     ON CONFLICT (id) DO UPDATE SET forgotten = TRUE, project_id = '', \
                     work_item_id = NULL, doc_type = '', title = '', indexed_at = $2",
                )
                .bind(id)
                .bind(now_micros())
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
                let removed = Self::remove_chunks(&mut tx, id).await.map_err(unavailable)?;
                tx.commit().await.map_err(unavailable)?;
                Ok(removed)
            }

            async fn prune_forgotten(&self, before: i64) -> IndexResult<u64> {
                let mut tx = self.begin_write().await?;
                let pruned = sqlx::query(
                    "DELETE FROM library_documents WHERE forgotten = TRUE AND indexed_at < $1",
                )
                .bind(before)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
                tx.commit().await.map_err(unavailable)?;
                Ok(pruned.rows_affected())
            }

            async fn documents(&self) -> IndexResult<Vec<IndexedDocument>> {
                let rows = sqlx::query(
                    "SELECT id, project_id, work_item_id, doc_type, title FROM library_documents \
                     WHERE forgotten = FALSE",
                )
                .fetch_all(&self.pool)
                .await
                .map_err(unavailable)?;
                Self::read_all(&rows, |row| {
                        Ok(IndexedDocument {
                            id: row.try_get("id")?,
                            project_id: row.try_get("project_id")?,
                            work_item_id: row.try_get("work_item_id")?,
                            doc_type: row.try_get("doc_type")?,
                            title: row.try_get("title")?,
                        })
                })
            }

            async fn pending_chunks(
                &self,
                model: Option<&str>,
                limit: i64,
            ) -> IndexResult<Vec<PendingChunk>> {
                let rows = sqlx::query(
                    "SELECT c.seq, c.title, c.text, d.project_id, d.work_item_id, d.doc_type \
                     FROM library_chunks c JOIN library_documents d ON d.id = c.document_id \
                     WHERE c.vector IS NULL OR c.model <> $1 ORDER BY c.seq LIMIT $2",
                )
                .bind(model)
                .bind(limit)
                .fetch_all(&self.pool)
                .await
                .map_err(unavailable)?;
                Self::read_all(&rows, |row| {
                        Ok(PendingChunk {
                            place: Self::place(row)?,
                            title: row.try_get("title")?,
                            text: row.try_get("text")?,
                        })
                })
            }

            async fn set_vectors(
                &self,
                model: &str,
                vectors: &[(i64, Vec<f32>)],
            ) -> IndexResult<Vec<i64>> {
                let mut tx = self.begin_write().await?;
                let mut updated = Vec::with_capacity(vectors.len());
                for (seq, vector) in vectors {
                    let done = sqlx::query(
                        "UPDATE library_chunks SET model = $1, vector = $2 WHERE seq = $3",
                    )
                    .bind(model)
                    .bind(vector_bytes(vector))
                    .bind(seq)
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable)?;
                    if done.rows_affected() > 0 {
                        updated.push(*seq);
                    }
                }
                tx.commit().await.map_err(unavailable)?;
                Ok(updated)
            }

            async fn vectors(
                &self,
                model: &str,
                after: i64,
                limit: i64,
            ) -> IndexResult<Vec<(ChunkPlace, Vec<f32>)>> {
                let rows = sqlx::query(
                    "SELECT c.seq, c.vector, d.project_id, d.work_item_id, d.doc_type \
                     FROM library_chunks c JOIN library_documents d ON d.id = c.document_id \
                     WHERE c.model = $1 AND c.seq > $2 ORDER BY c.seq LIMIT $3",
                )
                .bind(model)
                .bind(after)
                .bind(limit)
                .fetch_all(&self.pool)
                .await
                .map_err(unavailable)?;
                Self::read_all(&rows, |row| {
                        let bytes: Vec<u8> = row.try_get("vector")?;
                        Ok((Self::place(row)?, vector_of(&bytes)))
                })
            }

            async fn places(
                &self,
                model: &str,
                after: i64,
                limit: i64,
            ) -> IndexResult<Vec<ChunkPlace>> {
                let rows = sqlx::query(
                    "SELECT c.seq, d.project_id, d.work_item_id, d.doc_type \
                     FROM library_chunks c JOIN library_documents d ON d.id = c.document_id \
                     WHERE c.model = $1 AND c.seq > $2 ORDER BY c.seq LIMIT $3",
                )
                .bind(model)
                .bind(after)
                .bind(limit)
                .fetch_all(&self.pool)
                .await
                .map_err(unavailable)?;
                Self::read_all(&rows, Self::place)
            }

            async fn fingerprint(&self, model: &str) -> IndexResult<Fingerprint> {
                // Sums as text: PostgreSQL's SUM of BIGINT is NUMERIC.
                let row = sqlx::query(
                    "SELECT COUNT(*) AS count, COALESCE(MAX(seq), 0) AS max_seq, \
                     CAST(COALESCE(SUM(seq), 0) AS TEXT) AS sum_seq \
                     FROM library_chunks WHERE model = $1",
                )
                .bind(model)
                .fetch_one(&self.pool)
                .await
                .map_err(unavailable)?;
                let sum: String = row.try_get("sum_seq").map_err(unavailable)?;
                Ok(Fingerprint {
                    count: row.try_get("count").map_err(unavailable)?,
                    max_seq: row.try_get("max_seq").map_err(unavailable)?,
                    sum_seq: sum.parse().unwrap_or(-1),
                })
            }

            async fn lexical(
                &self,
                query: &Terms,
                scope: &SearchScope,
                limit: i64,
            ) -> IndexResult<Vec<i64>> {
                if query.is_empty() || scope.project_ids.is_empty() {
                    return Ok(Vec::new());
                }
                let (expression, sql) = self.lexical_plan(query).await?;
                sqlx::query_scalar(sql)
                    .bind(expression)
                    .bind(json_list(&scope.project_ids))
                    .bind(scope.work_item_id.as_deref())
                    .bind(json_list(&scope.doc_types))
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(unavailable)
            }

            async fn chunks(&self, seqs: &[i64]) -> IndexResult<Vec<StoredChunk>> {
                if seqs.is_empty() {
                    return Ok(Vec::new());
                }
                let rows = sqlx::query(Self::CHUNKS)
                    .bind(json_list(seqs))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(unavailable)?;
                Self::read_all(&rows, |row| {
                        Ok(StoredChunk {
                            seq: row.try_get("seq")?,
                            document_id: row.try_get("document_id")?,
                            ordinal: row.try_get("ordinal")?,
                            title: row.try_get("title")?,
                            text: row.try_get("text")?,
                        })
                })
            }

            async fn mark_all_for_embedding(&self) -> IndexResult<i64> {
                // An empty model matches no model's name: the embedder takes
                // these again, and the old vector answers until then.
                let mut tx = self.begin_write().await?;
                let marked = sqlx::query(
                    "UPDATE library_chunks SET model = '' WHERE vector IS NOT NULL",
                )
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
                tx.commit().await.map_err(unavailable)?;
                Ok(i64::try_from(marked.rows_affected()).unwrap_or(i64::MAX))
            }

            async fn check_writer(&self) -> IndexResult<()> {
                // Rolled back when dropped.
                self.begin_write().await.map(drop)
            }

            async fn stats(&self, model: Option<&str>) -> IndexResult<IndexStats> {
                let row = sqlx::query(
                    "SELECT \
                     (SELECT COUNT(*) FROM library_documents WHERE forgotten = FALSE) AS documents, \
                     (SELECT COUNT(*) FROM library_chunks) AS chunks, \
                     (SELECT COUNT(*) FROM library_chunks WHERE model = $1) AS embedded",
                )
                .bind(model)
                .fetch_one(&self.pool)
                .await
                .map_err(unavailable)?;
                let count = |name: &str| row.try_get::<i64, _>(name);
                Ok(IndexStats {
                    documents: count("documents").map_err(unavailable)?,
                    chunks: count("chunks").map_err(unavailable)?,
                    embedded: count("embedded").map_err(unavailable)?,
                })
            }
        }
    };
}

index_sql!(SqliteIndex, sqlx::Sqlite);
index_sql!(PostgresIndex, sqlx::Postgres);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_survive_their_bytes() {
        let vector = vec![0.25, -1.5, f32::MIN_POSITIVE, 3.0e7];
        assert_eq!(vector_of(&vector_bytes(&vector)), vector);
    }
}
