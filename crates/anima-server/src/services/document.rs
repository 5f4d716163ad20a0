//! DocumentService: the library's documents, read and written in their
//! project's name; their bytes stream to and from Seshat's Library
//! ([`crate::library`]) and never sit whole in memory. Mail attachments
//! arrive through ReceiveMail.

use std::sync::Arc;

use anima_core::{
    DomainError, ErrorCode, Permission,
    document::{Document, MAX_SEARCH_PROJECTS, NewDocument, SearchText, search_query},
    error::reason,
    id::parse_id,
    paging::PageRequest,
    validate,
};
use anima_db::{DocumentFilter, Store};
use anima_proto::{
    convert,
    upload::{UPLOAD_IDLE, broken_upload, upload_chunks},
    v1::{self as pb, document_service_server::DocumentService},
};
use futures_util::{StreamExt, TryStreamExt};
use tonic::Streaming;

use super::{ResponseStream, actor_of, grpc_service, member_projects, optional_id};
use crate::{
    auth::Caller,
    authz::{RequestContext, authorized_work_item, require_permission, require_project},
    library::{Library, LibraryQuery, find_documents, search_text_of},
    limits::{Metered, OpenPerUser, RateLimiter},
};

/// The largest message of DocumentService: an upload chunk (1 MiB, as
/// the library takes them) with room for the first message's metadata.
pub const MAX_CHUNK_MESSAGE: usize = anima_core::document::MAX_UPLOAD_CHUNK + 64 * 1024;

/// Search hits when the request names no limit, and the most it may ask.
const DEFAULT_HITS: i32 = 20;
const MAX_HITS: i32 = 100;
/// Characters of a document's text one GetDocumentText answers by default,
/// and the most it may ask for.
const DEFAULT_TEXT_CHARS: i32 = 20_000;
const MAX_TEXT_CHARS: i32 = 100_000;

/// The DocumentService implementation.
#[derive(Clone)]
pub struct DocumentApi {
    store: Arc<dyn Store>,
    library: Arc<dyn Library>,
    limits: RateLimiter,
    /// Uploads each user has in progress here.
    uploading: OpenPerUser,
}

impl DocumentApi {
    /// Builds the service over the documents of `store` and the bytes of
    /// `library`; `limits` meters uploads, `uploads_per_user` caps those
    /// in progress at once.
    pub fn new(
        store: Arc<dyn Store>,
        library: Arc<dyn Library>,
        limits: RateLimiter,
        uploads_per_user: usize,
    ) -> Self {
        Self {
            store,
            library,
            limits,
            uploading: OpenPerUser::new(uploads_per_user),
        }
    }

    /// The document, once the caller holds the RPC's permission in its
    /// project.
    async fn authorized_document(
        &self,
        context: &RequestContext,
        raw_id: &str,
    ) -> Result<Document, DomainError> {
        let document = self.store.get_document(&parse_id(raw_id, "id")?).await?;
        require_project(&self.store, context, &document.project_id).await?;
        Ok(document)
    }

    /// The project (and work item) a request names: a work item implies
    /// its project, which must match a project named beside it.
    async fn scope(
        &self,
        context: &RequestContext,
        raw_project_id: &str,
        raw_work_item_id: &str,
    ) -> Result<(String, Option<String>), DomainError> {
        let project_id = optional_id(raw_project_id, "project_id")?;
        if raw_work_item_id.is_empty() {
            let project_id = project_id.ok_or_else(|| {
                DomainError::invalid_argument(
                    reason::FIELD_REQUIRED,
                    "project_id or work_item_id is required",
                )
            })?;
            require_project(&self.store, context, &project_id).await?;
            return Ok((project_id, None));
        }
        let item =
            authorized_work_item(&self.store, context, raw_work_item_id, "work_item_id").await?;
        if project_id.is_some_and(|project_id| project_id != item.project_id) {
            return Err(DomainError::invalid_argument(
                reason::INVALID_FIELD,
                "the work item is not in project_id",
            ));
        }
        Ok((item.project_id, Some(item.id)))
    }

    /// Every project of the caller's in which they may read documents: a
    /// search that names no project looks in all of them.
    async fn searchable_projects(
        &self,
        context: &RequestContext,
    ) -> Result<Vec<String>, DomainError> {
        let projects =
            member_projects(&*self.store, context.caller.as_ref(), "document-search").await?;
        if projects.len() > MAX_SEARCH_PROJECTS {
            return Err(DomainError::invalid_argument(
                reason::INVALID_FIELD,
                format!(
                    "you are in more than {MAX_SEARCH_PROJECTS} projects: name the project to search"
                ),
            ));
        }
        let mut readable = Vec::new();
        for project in projects {
            match require_permission(&self.store, context, &project.id, Permission::DocumentRead)
                .await
            {
                Ok(()) => readable.push(project.id),
                Err(err) if err.code == ErrorCode::PermissionDenied => {}
                Err(err) => return Err(err),
            }
        }
        Ok(readable)
    }

    async fn list_documents(
        &self,
        context: &RequestContext,
        request: pb::ListDocumentsRequest,
    ) -> Result<pb::ListDocumentsResponse, DomainError> {
        let page = PageRequest::parse(request.page_size, &request.page_token, "documents")?;
        let (project_id, work_item_id) = self
            .scope(context, &request.project_id, &request.work_item_id)
            .await?;
        let filter = DocumentFilter {
            project_id: Some(project_id),
            work_item_id,
        };
        let page = self.store.list_documents(&filter, &page).await?;
        Ok(pb::ListDocumentsResponse {
            documents: page.items.into_iter().map(pb::Document::from).collect(),
            next_page_token: page.next_page_token,
        })
    }

    async fn get_document(
        &self,
        context: &RequestContext,
        request: pb::GetDocumentRequest,
    ) -> Result<pb::Document, DomainError> {
        let document = self.authorized_document(context, &request.id).await?;
        Ok(document.into())
    }

    async fn get_document_text(
        &self,
        context: &RequestContext,
        request: pb::GetDocumentTextRequest,
    ) -> Result<pb::DocumentText, DomainError> {
        let max_chars = validate::count_or_default(
            "max_chars",
            request.max_chars,
            DEFAULT_TEXT_CHARS,
            MAX_TEXT_CHARS,
        )?;
        let offset = u64::try_from(request.offset).map_err(|_| {
            DomainError::invalid_argument(reason::INVALID_FIELD, "offset must not be negative")
        })?;
        let document = self.authorized_document(context, &request.id).await?;
        let part = self
            .store
            .document_text_part(&document.id, offset, max_chars as usize)
            .await?;
        let count = |chars: u64| i64::try_from(chars).unwrap_or(i64::MAX);
        Ok(pb::DocumentText {
            document: Some(document.into()),
            text: part.text,
            offset: request.offset,
            total_chars: count(part.total_chars),
            next_offset: part.next_offset.map_or(0, count),
        })
    }

    async fn download_document(
        &self,
        context: &RequestContext,
        request: pb::DownloadDocumentRequest,
    ) -> Result<ResponseStream<pb::DocumentChunk>, DomainError> {
        let document = self.authorized_document(context, &request.id).await?;
        let content = self.library.get(&document.sha256).await?;
        Ok(content
            .map_ok(|content| pb::DocumentChunk { content })
            .map_err(crate::error::to_status)
            .boxed())
    }

    async fn upload_document(
        &self,
        context: &RequestContext,
        mut request: Streaming<pb::UploadDocumentRequest>,
    ) -> Result<pb::Document, DomainError> {
        let mut first = request
            .message()
            .await
            .map_err(|status| broken_upload(&status))?
            .ok_or_else(|| {
                DomainError::invalid_argument(reason::EMPTY_CONTENT, "the upload is empty")
            })?;
        validate::name("title", &first.title)?;
        let doc_type = convert::parse_document_type(first.r#type)?.ok_or_else(|| {
            DomainError::invalid_argument(reason::FIELD_REQUIRED, "type is required")
        })?;
        let media_type = match first.media_type.trim() {
            "" => doc_type.default_media_type().to_owned(),
            media_type => media_type.to_owned(),
        };
        validate::max_chars("media_type", &media_type, 255)?;
        let (project_id, work_item_id) = self
            .scope(context, &first.project_id, &first.work_item_id)
            .await?;
        let _uploading = match context.caller.as_ref() {
            Some(Caller::User { user, .. }) => {
                Some(self.uploading.take(&user.id).ok_or_else(|| {
                    DomainError::new(
                        ErrorCode::ResourceExhausted,
                        reason::TOO_MANY_UPLOADS,
                        format!(
                            "you already have {} uploads in progress, the most allowed; \
                             wait for one to end",
                            self.uploading.most()
                        ),
                    )
                })?)
            }
            _ => None,
        };
        self.limits
            .take_for(Metered::Upload, context.caller.as_ref())
            .await?;
        let title = std::mem::take(&mut first.title);
        let blob = self
            .library
            .put(upload_chunks(first, request, UPLOAD_IDLE))
            .await?;
        let text =
            search_text_of(&*self.library, &blob.sha256, doc_type, &media_type, &title).await;
        let indexed_text = match &text {
            SearchText::Text(text) => Some(text.clone()),
            SearchText::NotIndexed(_) => None,
        };
        let document = self
            .store
            .create_document(NewDocument {
                project_id,
                work_item_id,
                title,
                doc_type,
                media_type,
                blob,
                text,
                author: actor_of(context.caller.as_ref())?,
            })
            .await?;
        // The document is stored either way; an index the library could not
        // update now is mended by the next reconciliation.
        if let Err(error) = self.library.index(&document, indexed_text).await {
            tracing::warn!(%error, document = %document.id, "indexing a new document failed");
        }
        Ok(document.into())
    }

    async fn delete_document(
        &self,
        context: &RequestContext,
        request: pb::DeleteDocumentRequest,
    ) -> Result<pb::DeleteDocumentResponse, DomainError> {
        let document = self.authorized_document(context, &request.id).await?;
        self.store
            .delete_document(&document.id, &actor_of(context.caller.as_ref())?)
            .await?;
        if let Err(error) = self.library.forget(&document.id).await {
            tracing::warn!(%error, document = %document.id, "unindexing a deleted document failed");
        }
        Ok(pb::DeleteDocumentResponse {})
    }

    async fn search_documents(
        &self,
        context: &RequestContext,
        request: pb::SearchDocumentsRequest,
    ) -> Result<pb::SearchDocumentsResponse, DomainError> {
        let query = search_query(&request.query)?;
        let limit = validate::count_or_default("limit", request.limit, DEFAULT_HITS, MAX_HITS)?;
        let mut doc_types = Vec::new();
        for raw in &request.types {
            let doc_type = convert::parse_document_type(*raw)?.ok_or_else(|| {
                DomainError::invalid_argument(
                    reason::INVALID_FIELD,
                    "types must not hold DOCUMENT_TYPE_UNSPECIFIED",
                )
            })?;
            // Each type once: the library matches every chunk against them.
            if doc_types.contains(&doc_type) {
                return Err(DomainError::invalid_argument(
                    reason::INVALID_FIELD,
                    "types names a type twice",
                ));
            }
            doc_types.push(doc_type);
        }
        // Metered first: finding the caller's projects costs too.
        self.limits
            .take_for(Metered::Search, context.caller.as_ref())
            .await?;
        let (project_ids, work_item_id) =
            if request.project_id.is_empty() && request.work_item_id.is_empty() {
                (self.searchable_projects(context).await?, None)
            } else {
                let (project_id, work_item_id) = self
                    .scope(context, &request.project_id, &request.work_item_id)
                    .await?;
                (vec![project_id], work_item_id)
            };
        let found = find_documents(
            &*self.store,
            &*self.library,
            LibraryQuery {
                query: query.to_owned(),
                project_ids,
                work_item_id,
                doc_types,
                limit,
            },
        )
        .await?;
        Ok(pb::SearchDocumentsResponse {
            hits: found
                .into_iter()
                .map(|(document, hit)| pb::SearchHit {
                    document: Some(document.into()),
                    snippet: hit.snippet,
                    score: hit.score,
                    chunk: hit.chunk,
                })
                .collect(),
        })
    }
}

impl DocumentApi {
    async fn get_library_status(
        &self,
        _context: &RequestContext,
        _request: pb::GetLibraryStatusRequest,
    ) -> Result<pb::LibraryStatus, DomainError> {
        let stats = self.library.stats().await?;
        Ok(pb::LibraryStatus {
            documents: stats.documents,
            chunks: stats.chunks,
            chunks_embedded: stats.chunks_embedded,
            model: stats.model,
            blobs: stats.blobs,
            blob_bytes: stats.blob_bytes,
        })
    }

    async fn reindex_library(
        &self,
        _context: &RequestContext,
        request: pb::ReindexLibraryRequest,
    ) -> Result<pb::ReindexLibraryResponse, DomainError> {
        let pending = self.library.reindex(request.all).await?;
        Ok(pb::ReindexLibraryResponse { pending })
    }
}

grpc_service!(DocumentApi: DocumentService {
    list_documents(pb::ListDocumentsRequest) -> pb::ListDocumentsResponse;
    get_document(pb::GetDocumentRequest) -> pb::Document;
    get_document_text(pb::GetDocumentTextRequest) -> pb::DocumentText;
    download_document(pb::DownloadDocumentRequest) -> ResponseStream<pb::DocumentChunk>;
    upload_document(Streaming<pb::UploadDocumentRequest>) -> pb::Document;
    delete_document(pb::DeleteDocumentRequest) -> pb::DeleteDocumentResponse;
    search_documents(pb::SearchDocumentsRequest) -> pb::SearchDocumentsResponse;
    get_library_status(pb::GetLibraryStatusRequest) -> pb::LibraryStatus;
    reindex_library(pb::ReindexLibraryRequest) -> pb::ReindexLibraryResponse;
});
