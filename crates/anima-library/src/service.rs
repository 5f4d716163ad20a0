//! LibraryService over gRPC: the wire's side of [`BlobStore`]. Every
//! failure is a domain error with its reason, as from anima-server.

use anima_core::{
    DomainError,
    document::{MAX_SEARCH_PROJECTS, search_query},
    error::reason,
    validate::count_or_default,
};
use anima_proto::{
    convert::{micros, timestamp},
    status::to_status,
    upload::{UPLOAD_IDLE, broken_upload, upload_chunks},
    v1::{self as pb, library_service_server::LibraryService},
};
use futures_util::{StreamExt, TryStreamExt};
use tonic::{Request, Response, Status, Streaming};

use std::sync::Arc;

use crate::{
    blobs::{BlobMeta, BlobStore},
    extract::{self, Extracted, Format, PdfReader},
    index::{IndexedDocument, SearchScope},
    indexer::{Indexer, Ranking},
};

/// The most bytes one message of an upload may carry.
pub const MAX_CHUNK_BYTES: usize = anima_core::document::MAX_UPLOAD_CHUNK;

/// Every blob, as the store lists them.
type Listing = tonic::codegen::BoxStream<pb::Blob>;

/// Bytes per message of a download.
const DOWNLOAD_CHUNK_BYTES: usize = 256 * 1024;

type Reply<T> = Result<Response<T>, Status>;

/// A stream of download chunks.
type BlobChunks = tonic::codegen::BoxStream<pb::BlobChunk>;

/// Search hits when a request names no limit, and the most it may ask.
const DEFAULT_HITS: i32 = 20;
const MAX_HITS: i32 = 100;

/// The most types one search may name.
const MAX_TYPES: usize = 64;

/// The most characters of a document's title the index takes.
const MAX_TITLE_CHARS: usize = 1_000;

/// Every document indexed.
type IndexedDocuments = tonic::codegen::BoxStream<pb::IndexedDocument>;

/// The service over one blob store and one index. Cheap to clone.
#[derive(Clone)]
pub struct Library {
    blobs: BlobStore,
    /// Who reads PDFs; without one, PDFs are kept but not searched.
    pdf: Option<PdfReader>,
    indexer: Arc<Indexer>,
}

impl Library {
    /// The service over `blobs` and `indexer`, reading PDFs with `pdf`.
    pub fn new(blobs: BlobStore, pdf: Option<PdfReader>, indexer: Arc<Indexer>) -> Self {
        Self {
            blobs,
            pdf,
            indexer,
        }
    }
}

/// An id the server sent, checked (ids are UUIDs; anything else is a
/// caller's fault, refused before it reaches the index).
fn checked_id(raw: &str, field: &str) -> Result<String, Status> {
    anima_core::id::parse_id(raw, field).map_err(to_status)
}

impl From<BlobMeta> for pb::Blob {
    fn from(blob: BlobMeta) -> Self {
        pb::Blob {
            sha256: blob.sha256,
            size_bytes: i64::try_from(blob.size_bytes).unwrap_or(i64::MAX),
            stored_time: timestamp(blob.stored_at),
        }
    }
}

#[tonic::async_trait]
impl LibraryService for Library {
    async fn put_blob(&self, request: Request<Streaming<pb::PutBlobRequest>>) -> Reply<pb::Blob> {
        let mut messages = request.into_inner();
        // The first message carries the limit; it is read before anything
        // is stored, so a bad limit costs nothing.
        let first = match messages.message().await {
            Ok(Some(first)) => first,
            Ok(None) => {
                return Err(to_status(DomainError::invalid_argument(
                    reason::EMPTY_CONTENT,
                    "the content is empty",
                )));
            }
            Err(status) => return Err(to_status(broken_upload(&status))),
        };
        let max_bytes = match u64::try_from(first.max_bytes) {
            Ok(0) => None,
            Ok(max) => Some(max),
            Err(_) => {
                return Err(to_status(DomainError::invalid_argument(
                    reason::INVALID_FIELD,
                    "max_bytes must not be negative",
                )));
            }
        };
        let chunks = upload_chunks(first, messages, UPLOAD_IDLE);
        let stored = self.blobs.put(chunks, max_bytes).await.map_err(to_status)?;
        Ok(Response::new(stored.into()))
    }

    async fn get_blob(&self, request: Request<pb::GetBlobRequest>) -> Reply<BlobChunks> {
        let content = self
            .blobs
            .get(&request.into_inner().sha256)
            .await
            .map_err(to_status)?;
        // Stores read in their own sizes (a whole file part, a network
        // buffer): cut to messages well below gRPC's 4 MiB default.
        let chunks = content
            .map_ok(|bytes| {
                futures_util::stream::iter(
                    bytes
                        .chunks(DOWNLOAD_CHUNK_BYTES)
                        .map(|chunk| Ok(chunk.to_vec()))
                        .collect::<Vec<_>>(),
                )
            })
            .try_flatten()
            .map(|chunk| {
                chunk
                    .map(|chunk| pb::BlobChunk { chunk })
                    .map_err(to_status)
            });
        Ok(Response::new(Box::pin(chunks)))
    }

    async fn delete_blob(
        &self,
        request: Request<pb::DeleteBlobRequest>,
    ) -> Reply<pb::DeleteBlobResponse> {
        let request = request.into_inner();
        let stored_before = request.stored_before.as_ref().map(micros).ok_or_else(|| {
            to_status(DomainError::invalid_argument(
                reason::FIELD_REQUIRED,
                "stored_before is required",
            ))
        })?;
        let deleted = self
            .blobs
            .delete(&request.sha256, stored_before)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::DeleteBlobResponse { deleted }))
    }

    async fn list_blobs(&self, _request: Request<pb::ListBlobsRequest>) -> Reply<Listing> {
        let blobs = self.blobs.list();
        Ok(Response::new(
            blobs.map_ok(pb::Blob::from).map_err(to_status).boxed(),
        ))
    }

    async fn extract_text(
        &self,
        request: Request<pb::ExtractTextRequest>,
    ) -> Reply<pb::ExtractTextResponse> {
        let request = request.into_inner();
        let Some(format) =
            extract::format_of(&request.doc_type, &request.media_type, &request.file_name)
        else {
            let media_type = match request.media_type.trim() {
                "" => "application/octet-stream",
                media_type => media_type,
            };
            return Ok(Response::new(pb::ExtractTextResponse {
                not_indexed_reason: format!("no text is read from {media_type} files"),
                ..Default::default()
            }));
        };
        let (start, complete) = self
            .blobs
            .read_start(&request.sha256, format.bytes_read())
            .await
            .map_err(to_status)?;
        let extracted = match (format, &self.pdf) {
            (Format::Pdf, _) if !complete => extract::extract(format, &start, complete),
            (Format::Pdf, Some(reader)) => reader.read(start).await,
            (Format::Pdf, None) => {
                Extracted::NotIndexed("this library does not read the text of PDFs".into())
            }
            _ => tokio::task::spawn_blocking(move || extract::extract(format, &start, complete))
                .await
                .map_err(|error| {
                    to_status(DomainError::internal(format!("reading text: {error}")))
                })?,
        };
        let (text, not_indexed_reason) = match extracted {
            Extracted::Text(text) => (text, String::new()),
            Extracted::NotIndexed(why) => (String::new(), why),
        };
        Ok(Response::new(pb::ExtractTextResponse {
            text,
            not_indexed_reason,
            format: format.as_str().into(),
        }))
    }

    async fn get_library_stats(
        &self,
        _request: Request<pb::GetLibraryStatsRequest>,
    ) -> Reply<pb::LibraryStats> {
        let (blobs, blob_bytes) = self.blobs.stats().await.map_err(to_status)?;
        let (index, model) = self.indexer.stats().await.map_err(to_status)?;
        Ok(Response::new(pb::LibraryStats {
            blobs: i64::try_from(blobs).unwrap_or(i64::MAX),
            blob_bytes: i64::try_from(blob_bytes).unwrap_or(i64::MAX),
            documents: index.documents,
            chunks: index.chunks,
            chunks_embedded: index.embedded,
            model: model.unwrap_or_default(),
        }))
    }

    async fn reindex(&self, request: Request<pb::ReindexRequest>) -> Reply<pb::ReindexResponse> {
        let pending = self
            .indexer
            .reindex(request.into_inner().all)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::ReindexResponse { pending }))
    }

    async fn index_document(
        &self,
        request: Request<pb::IndexDocumentRequest>,
    ) -> Reply<pb::IndexDocumentResponse> {
        let request = request.into_inner();
        let document = IndexedDocument {
            id: checked_id(&request.document_id, "document_id")?,
            project_id: checked_id(&request.project_id, "project_id")?,
            work_item_id: match request.work_item_id.as_str() {
                "" => None,
                raw => Some(checked_id(raw, "work_item_id")?),
            },
            doc_type: request.doc_type,
            title: request.title,
        };
        // Titles are anima-server's (mail attachments' names run to 255
        // characters); the bound only keeps a chunk's row small.
        anima_core::validate::max_chars("title", &document.title, MAX_TITLE_CHARS)
            .map_err(to_status)?;
        if request.text.len() > anima_core::document::SEARCH_TEXT_BYTES {
            return Err(to_status(DomainError::invalid_argument(
                reason::FIELD_TOO_LONG,
                format!(
                    "the text has {} bytes; the most indexed is {}",
                    request.text.len(),
                    anima_core::document::SEARCH_TEXT_BYTES
                ),
            )));
        }
        let indexed = self
            .indexer
            .index(document, &request.media_type, request.text)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::IndexDocumentResponse {
            chunks: i32::try_from(indexed.chunks).unwrap_or(i32::MAX),
            forgotten: indexed.forgotten,
        }))
    }

    async fn forget_document(
        &self,
        request: Request<pb::ForgetDocumentRequest>,
    ) -> Reply<pb::ForgetDocumentResponse> {
        let id = checked_id(&request.into_inner().document_id, "document_id")?;
        self.indexer.forget(&id).await.map_err(to_status)?;
        Ok(Response::new(pb::ForgetDocumentResponse {}))
    }

    async fn list_indexed_documents(
        &self,
        _request: Request<pb::ListIndexedDocumentsRequest>,
    ) -> Reply<IndexedDocuments> {
        let documents = self.indexer.documents().await.map_err(to_status)?;
        Ok(Response::new(
            futures_util::stream::iter(documents.into_iter().map(|document| {
                Ok(pb::IndexedDocument {
                    document_id: document.id,
                    project_id: document.project_id,
                    work_item_id: document.work_item_id.unwrap_or_default(),
                    title: document.title,
                })
            }))
            .boxed(),
        ))
    }

    async fn search_chunks(
        &self,
        request: Request<pb::SearchChunksRequest>,
    ) -> Reply<pb::SearchChunksResponse> {
        let request = request.into_inner();
        let query = search_query(&request.query).map_err(to_status)?;
        let limit =
            count_or_default("limit", request.limit, DEFAULT_HITS, MAX_HITS).map_err(to_status)?;
        // Each chunk is matched against these lists: anima-server sends the
        // caller's projects and a few types, and longer lists are not its.
        if request.project_ids.len() > MAX_SEARCH_PROJECTS || request.doc_types.len() > MAX_TYPES {
            return Err(to_status(DomainError::invalid_argument(
                reason::FIELD_TOO_LONG,
                format!(
                    "a search names at most {MAX_SEARCH_PROJECTS} projects and {MAX_TYPES} types"
                ),
            )));
        }
        if request.project_ids.is_empty() {
            return Err(to_status(DomainError::invalid_argument(
                reason::FIELD_REQUIRED,
                "project_ids is required: the projects the caller may read",
            )));
        }
        let scope = SearchScope {
            project_ids: request.project_ids.into_iter().collect(),
            work_item_id: match request.work_item_id.as_str() {
                "" => None,
                raw => Some(checked_id(raw, "work_item_id")?),
            },
            doc_types: request.doc_types,
        };
        let found = self
            .indexer
            .search(query, &scope, limit as usize, Ranking::Fused)
            .await
            .map_err(to_status)?;
        let rank = |rank: Option<usize>| rank.map_or(0, |rank| i32::try_from(rank).unwrap_or(0));
        Ok(Response::new(pb::SearchChunksResponse {
            hits: found
                .hits
                .into_iter()
                .map(|hit| pb::ChunkHit {
                    document_id: hit.document_id,
                    chunk: hit.chunk,
                    snippet: hit.snippet,
                    score: hit.score,
                    lexical_rank: rank(hit.lexical_rank),
                    vector_rank: rank(hit.vector_rank),
                })
                .collect(),
            model: found.model.unwrap_or_default(),
        }))
    }
}
