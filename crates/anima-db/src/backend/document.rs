//! The library's documents: their metadata and searchable text, naming
//! their bytes in Seshat's Library by SHA-256. Search is the library's
//! (anima-library's index), which anima-server keeps in step.
//!
//! Documents' bytes were once rows of `blobs` (which skill files still
//! use); [`DocumentStore::next_legacy_blob`] hands those to the library.

use anima_core::{
    DomainError,
    document::{Document, NewDocument, SearchText, TextPart, content_sha256},
    error::reason,
    event::EventKind,
    id::new_id,
    model::now_micros,
    paging::PageRequest,
    planning::Actor,
};
use async_trait::async_trait;
use serde_json::json;
use sqlx::Row;

use super::{Ordered, PostgresStore, SqliteStore, page_of, planning::to_json};
use crate::{DocumentFilter, DocumentStore, Page, StoreResult};

fn document_not_found(id: &str) -> DomainError {
    DomainError::not_found(
        reason::DOCUMENT_NOT_FOUND,
        format!("no document with id {id}"),
    )
}

macro_rules! document_select {
    () => {
        "SELECT id, project_id, work_item_id, title, doc_type, media_type, size_bytes, sha256, \
         not_indexed_reason, created_by, created_at, awaits_review FROM documents"
    };
}

macro_rules! document_sql {
    ($store:ident, $db:ty) => {
        #[async_trait]
        impl DocumentStore for $store {
            async fn create_document(&self, document: NewDocument) -> StoreResult<Document> {
                let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                let ordered = Self::writable_project(&mut tx, &document.project_id).await?;
                let created = Self::insert_document(&mut tx, ordered, document, false).await?;
                self.commit(tx).await?;
                Ok(created)
            }

            async fn get_document(&self, id: &str) -> StoreResult<Document> {
                let mut conn = self.pool.acquire().await?;
                Self::document_in(&mut conn, id).await
            }

            async fn list_documents(
                &self,
                filter: &DocumentFilter,
                page: &PageRequest,
            ) -> StoreResult<Page<Document>> {
                let rows = sqlx::query(concat!(
                    document_select!(),
                    " WHERE ($1 IS NULL OR project_id = $1) AND ($2 IS NULL OR work_item_id = $2) \
                     AND id > $3 ORDER BY id LIMIT $4"
                ))
                .bind(filter.project_id.as_deref())
                .bind(filter.work_item_id.as_deref())
                .bind(page.after.as_deref().unwrap_or(""))
                .bind(page.fetch_limit())
                .fetch_all(&self.pool)
                .await?;
                page_of(&rows, crate::backend::rows::document, page, |document| document.id.clone())
            }

            async fn delete_document(&self, id: &str, by: &Actor) -> StoreResult<()> {
                let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                let document = Self::document_in(&mut tx, id).await?;
                let ordered = Self::writable_project(&mut tx, &document.project_id).await?;
                Self::remove_document(&mut tx, ordered, &document, by).await?;
                self.commit(tx).await
            }

            async fn document_text(&self, id: &str) -> StoreResult<Option<String>> {
                let text: Option<Option<String>> =
                    sqlx::query_scalar("SELECT text FROM documents WHERE id = $1")
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await?;
                text.ok_or_else(|| document_not_found(id).into())
            }

            async fn document_text_part(
                &self,
                id: &str,
                offset: u64,
                max_chars: usize,
            ) -> StoreResult<TextPart> {
                // Both databases count characters from 1, PostgreSQL's
                // substr in 32-bit integers (a text holds at most
                // MAX_SEARCH_TEXT characters, far fewer).
                let bound = |n: u64| n.min(i32::MAX as u64 - 1) as i32;
                let row: Option<(Option<String>, Option<i64>)> = sqlx::query_as(
                    "SELECT substr(text, $2, $3), CAST(length(text) AS BIGINT) \
                     FROM documents WHERE id = $1",
                )
                .bind(id)
                .bind(bound(offset) + 1)
                .bind(bound(max_chars as u64))
                .fetch_optional(&self.pool)
                .await?;
                let (text, total_chars) = row.ok_or_else(|| document_not_found(id))?;
                Ok(TextPart::at(
                    offset,
                    text.unwrap_or_default(),
                    total_chars.map_or(0, |chars| u64::try_from(chars).unwrap_or(0)),
                ))
            }

            async fn names_blob(&self, sha256: &str) -> StoreResult<bool> {
                let named: Option<i32> = sqlx::query_scalar("SELECT 1 FROM documents WHERE sha256 = $1 LIMIT 1")
                    .bind(sha256)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(named.is_some())
            }

            async fn next_legacy_blob(&self, after: &str) -> StoreResult<Option<(String, Vec<u8>)>> {
                let row = sqlx::query(
                    "SELECT b.sha256, b.content FROM blobs b WHERE b.sha256 > $1 \
                     AND EXISTS (SELECT 1 FROM documents d WHERE d.sha256 = b.sha256) \
                     ORDER BY b.sha256 LIMIT 1",
                )
                .bind(after)
                .fetch_optional(&self.pool)
                .await?;
                row.map(|row| Ok((row.try_get("sha256")?, row.try_get("content")?)))
                    .transpose()
            }

            async fn forget_legacy_blob(&self, sha256: &str) -> StoreResult<()> {
                sqlx::query(
                    "DELETE FROM blobs WHERE sha256 = $1 \
                     AND NOT EXISTS (SELECT 1 FROM skill_files WHERE sha256 = $1)",
                )
                .bind(sha256)
                .execute(&self.pool)
                .await?;
                Ok(())
            }
        }

        impl $store {
            /// Stores a skill file's content unless the same bytes are
            /// stored already; their SHA-256 and size.
            pub(super) async fn put_blob(
                conn: &mut <$db as sqlx::Database>::Connection,
                content: Vec<u8>,
            ) -> StoreResult<(String, i64)> {
                let sha256 = content_sha256(&content);
                let size_bytes = content.len() as i64;
                sqlx::query(
                    "INSERT INTO blobs (sha256, size_bytes, content) VALUES ($1, $2, $3) \
                     ON CONFLICT (sha256) DO NOTHING",
                )
                .bind(&sha256)
                .bind(size_bytes)
                .bind(content)
                .execute(&mut *conn)
                .await?;
                Ok((sha256, size_bytes))
            }

            /// Records a document whose bytes the library holds, inside a
            /// write.
            pub(super) async fn insert_document(
                conn: &mut <$db as sqlx::Database>::Connection,
                ordered: Ordered,
                document: NewDocument,
                awaits_review: bool,
            ) -> StoreResult<Document> {
                if let Some(work_item_id) = &document.work_item_id {
                    if Self::work_item_project(conn, work_item_id).await? != document.project_id {
                        return Err(DomainError::invalid_argument(
                            reason::INVALID_FIELD,
                            "the work item is not in the document's project",
                        ).into());
                    }
                }
                let created = Document {
                    id: new_id(),
                    project_id: document.project_id,
                    work_item_id: document.work_item_id,
                    title: document.title,
                    doc_type: document.doc_type,
                    media_type: document.media_type,
                    size_bytes: document.blob.size_bytes,
                    sha256: document.blob.sha256,
                    not_indexed_reason: match &document.text {
                        SearchText::Text(_) => None,
                        SearchText::NotIndexed(why) => Some(why.clone()),
                    },
                    created_by: document.author,
                    created_at: now_micros(),
                    awaits_review,
                };
                sqlx::query(
                    "INSERT INTO documents (id, project_id, work_item_id, title, doc_type, media_type, \
                     size_bytes, sha256, text, not_indexed_reason, created_by, created_at, \
                     awaits_review) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                )
                .bind(&created.id)
                .bind(&created.project_id)
                .bind(created.work_item_id.as_deref())
                .bind(&created.title)
                .bind(created.doc_type.as_str())
                .bind(&created.media_type)
                .bind(created.size_bytes)
                .bind(&created.sha256)
                .bind(match document.text {
                    SearchText::Text(text) => Some(text),
                    SearchText::NotIndexed(_) => None,
                })
                .bind(created.not_indexed_reason.as_deref())
                .bind(to_json(&created.created_by))
                .bind(created.created_at)
                .bind(created.awaits_review)
                .execute(&mut *conn)
                .await?;
                Self::record_for(
                    conn,
                    ordered,
                    EventKind::DocumentCreated,
                    Some(&created.project_id),
                    created.work_item_id.as_deref(),
                    &created.id,
                    json!(created),
                )
                .await?;
                Ok(created)
            }

            /// Deletes a document inside a write. Its bytes stay in the
            /// library until its sweep finds no document naming them.
            pub(super) async fn remove_document(
                conn: &mut <$db as sqlx::Database>::Connection,
                ordered: Ordered,
                document: &Document,
                by: &Actor,
            ) -> StoreResult<()> {
                sqlx::query("DELETE FROM documents WHERE id = $1")
                    .bind(&document.id)
                    .execute(&mut *conn)
                    .await?;
                Self::record_for(
                    conn,
                    ordered,
                    EventKind::DocumentDeleted,
                    Some(&document.project_id),
                    document.work_item_id.as_deref(),
                    &document.id,
                    json!({"id": document.id, "by": by.to_json()}),
                )
                .await
            }

            pub(super) async fn document_in(
                conn: &mut <$db as sqlx::Database>::Connection,
                id: &str,
            ) -> StoreResult<Document> {
                let sql = concat!(document_select!(), " WHERE id = $1");
                Self::one_by_id(conn, sql, id, crate::backend::rows::document, || document_not_found(id)).await
            }

        }
    };
}

document_sql!(PostgresStore, sqlx::Postgres);
document_sql!(SqliteStore, sqlx::Sqlite);
