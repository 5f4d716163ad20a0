//! anima-server's side of Seshat's Library (anima-library), which keeps
//! documents' bytes: one client trait ([`Library`]) and its gRPC client
//! ([`GrpcLibrary`]), so pointing at another library service is
//! configuration (`library_url`; `anima up` hosts one in process).
//!
//! anima-server keeps documents' metadata and decides who may read them;
//! the library only holds bytes by SHA-256. Two duties follow:
//! - [`move_legacy_blobs`] hands the bytes documents kept in the database
//!   (before the library) to it, once, at start;
//! - [`sweep_unnamed_blobs`] deletes bytes no document names any more.
//!   Bytes stored again within [`SWEEP_GRACE`] are kept: an upload whose
//!   document is about to be recorded is never taken.

use std::time::Duration;

use std::collections::HashMap;

use anima_core::{
    DomainError, ErrorCode,
    document::{Document, DocumentType, SearchText, StoredBlob},
    error::reason,
    model::now_micros,
    paging::PageRequest,
};
use anima_db::{DocumentFilter, Store};
use anima_proto::v1::{self as pb, library_service_client::LibraryServiceClient};
use futures_util::{StreamExt, TryStreamExt, stream::BoxStream};
use tonic::{
    Code, Status,
    metadata::{Ascii, MetadataValue},
    transport::Channel,
};
use tonic_types::StatusExt;

/// Bytes per message of an upload to the library.
pub const CHUNK_BYTES: usize = 256 * 1024;

/// How long bytes stored again are safe from the sweep: far longer than
/// an upload takes to be recorded as a document.
pub const SWEEP_GRACE: Duration = Duration::from_secs(3600);

/// How often each instance sweeps.
const SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// A document's bytes as they are read.
pub type Content = BoxStream<'static, Result<Vec<u8>, DomainError>>;

/// A search of the library.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LibraryQuery {
    /// What is sought (checked by the caller: 1 to 500 characters).
    pub query: String,
    /// Only documents of these projects: those the caller may read.
    pub project_ids: Vec<String>,
    /// Only documents of this work item.
    pub work_item_id: Option<String>,
    /// Only documents of these types (none: all).
    pub doc_types: Vec<DocumentType>,
    /// The most hits.
    pub limit: i32,
}

/// One document the library found: its best chunk.
#[derive(Debug, Clone, PartialEq)]
pub struct LibraryHit {
    /// The document.
    pub document_id: String,
    /// Which of its chunks, from 0.
    pub chunk: i32,
    /// The chunk's text around the match.
    pub snippet: String,
    /// Higher is better.
    pub score: f64,
}

/// A document as the library's index has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedDocument {
    /// Its id.
    pub id: String,
    /// Its project when indexed.
    pub project_id: String,
    /// Its work item when indexed.
    pub work_item_id: Option<String>,
    /// Its title when indexed.
    pub title: String,
}

/// The library as anima-server uses it.
#[tonic::async_trait]
pub trait Library: Send + Sync + 'static {
    /// Stores the bytes of `chunks`; an error from `chunks` ends the
    /// upload with nothing stored and is returned.
    async fn put(&self, chunks: Content) -> Result<StoredBlob, DomainError>;
    /// The bytes with this SHA-256.
    async fn get(&self, sha256: &str) -> Result<Content, DomainError>;
    /// Every stored blob's SHA-256, as the library lists them.
    async fn list(&self) -> Result<BoxStream<'static, Result<String, DomainError>>, DomainError>;
    /// Deletes the bytes unless they were stored at or after
    /// `stored_before` (microseconds); whether they went.
    async fn delete(&self, sha256: &str, stored_before: i64) -> Result<bool, DomainError>;
    /// The searchable text of the stored bytes of a document of this
    /// type, MIME type and file name, or why it has none.
    async fn extract_text(
        &self,
        sha256: &str,
        doc_type: DocumentType,
        media_type: &str,
        file_name: &str,
    ) -> Result<SearchText, DomainError>;
    /// Makes the document searchable by `text` (`None`: by its title
    /// alone), in place of what it was indexed with before.
    async fn index(&self, document: &Document, text: Option<String>) -> Result<(), DomainError>;
    /// Takes the document out of search for good.
    async fn forget(&self, document_id: &str) -> Result<(), DomainError>;
    /// Every document indexed.
    async fn indexed(&self) -> Result<Vec<IndexedDocument>, DomainError>;
    /// The documents that best match, best first.
    async fn search(&self, query: LibraryQuery) -> Result<Vec<LibraryHit>, DomainError>;
    /// How much the library holds and how far its vectors are.
    async fn stats(&self) -> Result<pb::LibraryStats, DomainError>;
    /// Has vectors computed again (all, or those of another model); how
    /// many chunks wait for one.
    async fn reindex(&self, all: bool) -> Result<i64, DomainError>;
}

/// What search gets of a document just stored: its text, or why it has
/// none; a library that fails to read it leaves the document stored and
/// unsearchable (with the reason) rather than failing the upload.
pub async fn search_text_of(
    library: &dyn Library,
    sha256: &str,
    doc_type: DocumentType,
    media_type: &str,
    file_name: &str,
) -> SearchText {
    library
        .extract_text(sha256, doc_type, media_type, file_name)
        .await
        .unwrap_or_else(|error| {
            // The details are for the log: they may name this server's
            // configuration.
            tracing::warn!(%error, sha256, "the library could not read a document's text");
            SearchText::NotIndexed("the library could not read its text when it arrived".into())
        })
}

/// What stands in for the library when none is configured: every call
/// is refused with `FAILED_PRECONDITION`/`NO_LIBRARY_SERVICE`, so the
/// rest of the server works without documents.
pub struct NoLibrary;

fn no_library() -> DomainError {
    DomainError::failed_precondition(
        reason::NO_LIBRARY_SERVICE,
        "this server has no library configured (library_url / ANIMA_LIBRARY_URL), \
         so it keeps no documents",
    )
}

#[tonic::async_trait]
impl Library for NoLibrary {
    async fn put(&self, _chunks: Content) -> Result<StoredBlob, DomainError> {
        Err(no_library())
    }
    async fn get(&self, _sha256: &str) -> Result<Content, DomainError> {
        Err(no_library())
    }
    async fn list(&self) -> Result<BoxStream<'static, Result<String, DomainError>>, DomainError> {
        Err(no_library())
    }
    async fn delete(&self, _sha256: &str, _stored_before: i64) -> Result<bool, DomainError> {
        Err(no_library())
    }
    async fn extract_text(
        &self,
        _sha256: &str,
        _doc_type: DocumentType,
        _media_type: &str,
        _file_name: &str,
    ) -> Result<SearchText, DomainError> {
        Err(no_library())
    }
    async fn index(&self, _document: &Document, _text: Option<String>) -> Result<(), DomainError> {
        Err(no_library())
    }
    async fn forget(&self, _document_id: &str) -> Result<(), DomainError> {
        Err(no_library())
    }
    async fn indexed(&self) -> Result<Vec<IndexedDocument>, DomainError> {
        Err(no_library())
    }
    async fn search(&self, _query: LibraryQuery) -> Result<Vec<LibraryHit>, DomainError> {
        Err(no_library())
    }
    async fn stats(&self) -> Result<pb::LibraryStats, DomainError> {
        Err(no_library())
    }
    async fn reindex(&self, _all: bool) -> Result<i64, DomainError> {
        Err(no_library())
    }
}

/// Reasons the library answers with that mean the same here.
const PASSED_THROUGH: &[&str] = &[
    reason::DOCUMENT_TOO_LARGE,
    reason::EMPTY_CONTENT,
    reason::BLOB_NOT_FOUND,
    reason::UPLOAD_INTERRUPTED,
    reason::STORAGE_UNAVAILABLE,
    reason::INDEX_TAKEN_OVER,
];

/// The library's status as a domain error; its refusing our token is our
/// misconfiguration, reported as internal.
fn from_status(status: Status) -> DomainError {
    let wire_reason = status.get_details_error_info().map(|info| info.reason);
    let passed = wire_reason
        .as_deref()
        .and_then(|wire| PASSED_THROUGH.iter().find(|known| **known == wire))
        .copied();
    let code = match status.code() {
        Code::InvalidArgument => ErrorCode::InvalidArgument,
        Code::NotFound => ErrorCode::NotFound,
        Code::Aborted => ErrorCode::Aborted,
        Code::Unavailable | Code::DeadlineExceeded => ErrorCode::Unavailable,
        Code::Unauthenticated | Code::PermissionDenied => {
            return DomainError::internal(format!(
                "the library refused this server's token (check library_token): {}",
                status.message()
            ));
        }
        _ => ErrorCode::Internal,
    };
    match (passed, code) {
        (Some(reason), _) => DomainError::new(code, reason, status.message()),
        (None, ErrorCode::Unavailable) => DomainError::new(
            code,
            reason::STORAGE_UNAVAILABLE,
            format!("the library is unreachable: {}", status.message()),
        ),
        (None, _) => DomainError::internal(format!("the library failed: {}", status.message())),
    }
}

/// [`Library`] over gRPC: a library service elsewhere, or hosted in this
/// process ([`crate::in_process`]).
#[derive(Clone)]
pub struct GrpcLibrary {
    client: LibraryServiceClient<Channel>,
    /// The `authorization` it presents (none in process).
    authorization: Option<MetadataValue<Ascii>>,
}

impl GrpcLibrary {
    /// The library at `url`, presenting `token`; connects on first use.
    pub fn remote(url: &str, token: &str) -> anyhow::Result<Self> {
        let channel = Channel::from_shared(url.to_owned())?.connect_lazy();
        let authorization = format!("Bearer {token}").parse().map_err(|_| {
            anyhow::anyhow!("the configured library_token is not a valid header value")
        })?;
        Ok(Self {
            client: LibraryServiceClient::new(channel),
            authorization: Some(authorization),
        })
    }

    /// The library hosted in this process.
    pub fn hosted(channel: Channel) -> Self {
        Self {
            client: LibraryServiceClient::new(channel),
            authorization: None,
        }
    }

    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(authorization) = &self.authorization {
            request
                .metadata_mut()
                .insert("authorization", authorization.clone());
        }
        request
    }
}

#[tonic::async_trait]
impl Library for GrpcLibrary {
    async fn put(&self, mut chunks: Content) -> Result<StoredBlob, DomainError> {
        let (sender, receiver) = tokio::sync::mpsc::channel::<pb::PutBlobRequest>(2);
        let mut client = self.client.clone();
        let call =
            client.put_blob(self.request(tokio_stream::wrappers::ReceiverStream::new(receiver)));
        // A stream that ends without its `last` message is refused, so an
        // error here (which drops the sender) can never pass for the end.
        let feed = async move {
            while let Some(chunk) = chunks.next().await {
                let message = pb::PutBlobRequest {
                    chunk: chunk?,
                    ..Default::default()
                };
                if sender.send(message).await.is_err() {
                    // The library answered already (a refusal): its
                    // answer says why.
                    return Ok(());
                }
            }
            let last = pb::PutBlobRequest {
                last: true,
                ..Default::default()
            };
            let _ = sender.send(last).await;
            Ok::<(), DomainError>(())
        };
        tokio::pin!(call, feed);
        let mut fed = false;
        loop {
            tokio::select! {
                reply = &mut call => {
                    let blob = reply.map_err(from_status)?.into_inner();
                    return Ok(StoredBlob {
                        sha256: blob.sha256,
                        size_bytes: blob.size_bytes,
                    });
                }
                // Returning drops the call, which cancels the upload: the
                // library stores nothing of a stream that broke off.
                outcome = &mut feed, if !fed => {
                    outcome?;
                    fed = true;
                }
            }
        }
    }

    async fn get(&self, sha256: &str) -> Result<Content, DomainError> {
        let chunks = self
            .client
            .clone()
            .get_blob(self.request(pb::GetBlobRequest {
                sha256: sha256.to_owned(),
            }))
            .await
            .map_err(from_status)?
            .into_inner();
        Ok(chunks
            .map_ok(|chunk| chunk.chunk)
            .map_err(from_status)
            .boxed())
    }

    async fn list(&self) -> Result<BoxStream<'static, Result<String, DomainError>>, DomainError> {
        let blobs = self
            .client
            .clone()
            .list_blobs(self.request(pb::ListBlobsRequest {}))
            .await
            .map_err(from_status)?
            .into_inner();
        Ok(blobs
            .map_ok(|blob| blob.sha256)
            .map_err(from_status)
            .boxed())
    }

    async fn delete(&self, sha256: &str, stored_before: i64) -> Result<bool, DomainError> {
        let answer = self
            .client
            .clone()
            .delete_blob(self.request(pb::DeleteBlobRequest {
                sha256: sha256.to_owned(),
                stored_before: anima_proto::convert::timestamp(stored_before),
            }))
            .await
            .map_err(from_status)?
            .into_inner();
        Ok(answer.deleted)
    }

    async fn extract_text(
        &self,
        sha256: &str,
        doc_type: DocumentType,
        media_type: &str,
        file_name: &str,
    ) -> Result<SearchText, DomainError> {
        let answer = self
            .client
            .clone()
            .extract_text(self.request(pb::ExtractTextRequest {
                sha256: sha256.to_owned(),
                doc_type: doc_type.as_str().to_owned(),
                media_type: media_type.to_owned(),
                file_name: file_name.to_owned(),
            }))
            .await
            .map_err(from_status)?
            .into_inner();
        Ok(match answer.not_indexed_reason.as_str() {
            "" => SearchText::Text(answer.text),
            _ => SearchText::NotIndexed(answer.not_indexed_reason),
        })
    }

    async fn index(&self, document: &Document, text: Option<String>) -> Result<(), DomainError> {
        self.client
            .clone()
            .index_document(self.request(pb::IndexDocumentRequest {
                document_id: document.id.clone(),
                project_id: document.project_id.clone(),
                work_item_id: document.work_item_id.clone().unwrap_or_default(),
                doc_type: document.doc_type.as_str().to_owned(),
                media_type: document.media_type.clone(),
                title: document.title.clone(),
                text: text.unwrap_or_default(),
            }))
            .await
            .map_err(from_status)?;
        Ok(())
    }

    async fn forget(&self, document_id: &str) -> Result<(), DomainError> {
        self.client
            .clone()
            .forget_document(self.request(pb::ForgetDocumentRequest {
                document_id: document_id.to_owned(),
            }))
            .await
            .map_err(from_status)?;
        Ok(())
    }

    async fn indexed(&self) -> Result<Vec<IndexedDocument>, DomainError> {
        self.client
            .clone()
            .list_indexed_documents(self.request(pb::ListIndexedDocumentsRequest {}))
            .await
            .map_err(from_status)?
            .into_inner()
            .map_ok(|document| IndexedDocument {
                id: document.document_id,
                project_id: document.project_id,
                work_item_id: Some(document.work_item_id).filter(|id| !id.is_empty()),
                title: document.title,
            })
            .map_err(from_status)
            .try_collect()
            .await
    }

    async fn search(&self, query: LibraryQuery) -> Result<Vec<LibraryHit>, DomainError> {
        let answer = self
            .client
            .clone()
            .search_chunks(
                self.request(pb::SearchChunksRequest {
                    query: query.query,
                    project_ids: query.project_ids,
                    work_item_id: query.work_item_id.unwrap_or_default(),
                    doc_types: query
                        .doc_types
                        .iter()
                        .map(|kind| kind.as_str().to_owned())
                        .collect(),
                    limit: query.limit,
                }),
            )
            .await
            .map_err(from_status)?
            .into_inner();
        Ok(answer
            .hits
            .into_iter()
            .map(|hit| LibraryHit {
                document_id: hit.document_id,
                chunk: hit.chunk,
                snippet: hit.snippet,
                score: hit.score,
            })
            .collect())
    }

    async fn stats(&self) -> Result<pb::LibraryStats, DomainError> {
        Ok(self
            .client
            .clone()
            .get_library_stats(self.request(pb::GetLibraryStatsRequest {}))
            .await
            .map_err(from_status)?
            .into_inner())
    }

    async fn reindex(&self, all: bool) -> Result<i64, DomainError> {
        Ok(self
            .client
            .clone()
            .reindex(self.request(pb::ReindexRequest { all }))
            .await
            .map_err(from_status)?
            .into_inner()
            .pending)
    }
}

/// Indexes the documents with these ids as the store has them now, and
/// forgets those it no longer has; one that awaits review
/// ([`Document::awaits_review`]) waits for its mail to be posted.
/// Failures are logged: the next [`reconcile_index`] mends what they left.
pub async fn index_documents(store: &dyn Store, library: &dyn Library, ids: &[String]) {
    for id in ids {
        let outcome = match store.get_document(id).await {
            // Not forgotten: a forgotten id is never indexed again.
            Ok(document) if document.awaits_review => Ok(()),
            Ok(document) => match store.document_text(id).await {
                Ok(text) => library.index(&document, text).await,
                Err(error) => Err(error.into()),
            },
            Err(error) if error.reason == reason::DOCUMENT_NOT_FOUND => library.forget(id).await,
            Err(error) => Err(error.into()),
        };
        if let Err(error) = outcome {
            tracing::warn!(%error, document = %id, "the library's index is behind on a document");
        }
    }
}

/// Indexes a mail's attachments as the store has them now (recorded,
/// moved to a work item's project by triage, or gone with a dismissed
/// mail).
pub async fn index_attachments(
    store: &dyn Store,
    library: &dyn Library,
    mail: &anima_core::mail::InboundRecord,
) {
    let attachments: Vec<String> = mail
        .content
        .attachments
        .iter()
        .map(|attachment| attachment.document_id.clone())
        .collect();
    index_documents(store, library, &attachments).await;
}

/// Brings the library's index in line with the store: documents it lacks
/// or has in another place (project, work item, title) are indexed again,
/// documents the store no longer has are forgotten; returns how many of
/// each. Run at start and with every sweep, so an index call that failed
/// (the library was down) or a document moved by mail triage is mended.
pub async fn reconcile_index(
    store: &dyn Store,
    library: &dyn Library,
) -> Result<(usize, usize), DomainError> {
    // The index first: a document recorded after this listing is at worst
    // indexed twice; one deleted after it is forgotten below.
    let mut indexed: HashMap<String, IndexedDocument> = library
        .indexed()
        .await?
        .into_iter()
        .map(|document| (document.id.clone(), document))
        .collect();
    let mut stale = Vec::new();
    let mut page = PageRequest::parse(100, "", "documents")?;
    loop {
        let documents = store
            .list_documents(&DocumentFilter::default(), &page)
            .await?;
        for document in &documents.items {
            // What awaits review is left as it is: not indexed, or indexed
            // before its mail was held back from search (never found:
            // `find_documents` drops it).
            let current = indexed.remove(&document.id).is_some_and(|indexed| {
                indexed.project_id == document.project_id
                    && indexed.work_item_id == document.work_item_id
                    && indexed.title == document.title
            }) || document.awaits_review;
            if !current {
                stale.push(document.id.clone());
            }
        }
        if documents.next_page_token.is_empty() {
            break;
        }
        page = PageRequest::parse(100, &documents.next_page_token, "documents")?;
    }
    let gone: Vec<String> = indexed.into_keys().collect();
    index_documents(store, library, &stale).await;
    index_documents(store, library, &gone).await;
    Ok((stale.len(), gone.len()))
}

/// The documents of `query` that the library found and the store still
/// has in one of the query's projects, with what the library said of each.
pub async fn find_documents(
    store: &dyn Store,
    library: &dyn Library,
    query: LibraryQuery,
) -> Result<Vec<(Document, LibraryHit)>, DomainError> {
    // Someone in no project finds nothing (the library wants a scope).
    if query.project_ids.is_empty() {
        return Ok(Vec::new());
    }
    let projects = query.project_ids.clone();
    let hits = library.search(query).await?;
    let mut found = Vec::with_capacity(hits.len());
    for hit in hits {
        // The index may lag a deletion or a move by a moment: the store
        // has the last word on what exists and where.
        match store.get_document(&hit.document_id).await {
            Ok(document) if projects.contains(&document.project_id) && !document.awaits_review => {
                found.push((document, hit))
            }
            Ok(_) => {}
            Err(error) if error.reason == reason::DOCUMENT_NOT_FOUND => {}
            Err(error) => return Err(error.into()),
        }
    }
    Ok(found)
}

/// `content` as an upload stream of [`CHUNK_BYTES`] pieces.
pub fn content_of(content: Vec<u8>) -> Content {
    let chunks: Vec<Result<Vec<u8>, DomainError>> = content
        .chunks(CHUNK_BYTES)
        .map(|chunk| Ok(chunk.to_vec()))
        .collect();
    futures_util::stream::iter(chunks).boxed()
}

/// Hands the documents' bytes still kept in the database to the library
/// and drops them there; returns how many moved. Run at start, before the
/// API answers, so every document's bytes are in the library. Bytes the
/// library refuses (or whose SHA-256 is not their name) stay in the
/// database, said in the log, rather than stopping the server.
pub async fn move_legacy_blobs(store: &dyn Store, library: &dyn Library) -> anyhow::Result<u64> {
    let mut after = String::new();
    let mut moved = 0;
    while let Some((sha256, content)) = store.next_legacy_blob(&after).await? {
        match library.put(content_of(content)).await {
            Ok(stored) if stored.sha256 == sha256 => {
                store.forget_legacy_blob(&sha256).await?;
                moved += 1;
            }
            Ok(stored) => tracing::warn!(
                sha256,
                actual = stored.sha256,
                "a document's bytes in the database do not match their SHA-256; left there"
            ),
            Err(error) if error.code == ErrorCode::Unavailable => return Err(error.into()),
            Err(error) => tracing::warn!(
                sha256,
                %error,
                "the library refused a document's bytes from the database; left there"
            ),
        }
        after = sha256;
    }
    Ok(moved)
}

/// Deletes the library's bytes that no document names and that were not
/// stored again within `grace`; returns how many went.
pub async fn sweep_unnamed_blobs(
    store: &dyn Store,
    library: &dyn Library,
    grace: Duration,
) -> Result<u64, DomainError> {
    let stored_before = now_micros() - i64::try_from(grace.as_micros()).unwrap_or(i64::MAX);
    let mut blobs = library.list().await?;
    let mut deleted = 0;
    while let Some(sha256) = blobs.try_next().await? {
        if !store.names_blob(&sha256).await? && library.delete(&sha256, stored_before).await? {
            deleted += 1;
        }
    }
    Ok(deleted)
}

/// Reconciles the index and sweeps every [`SWEEP_EVERY`] (the first time
/// at once), for as long as the server runs.
pub async fn sweep_forever(store: std::sync::Arc<dyn Store>, library: std::sync::Arc<dyn Library>) {
    let mut every = tokio::time::interval(SWEEP_EVERY);
    loop {
        every.tick().await;
        match reconcile_index(&*store, &*library).await {
            Ok((0, 0)) => {}
            Ok((indexed, forgotten)) => {
                tracing::info!(indexed, forgotten, "the library's index caught up")
            }
            Err(error) => tracing::warn!(%error, "reconciling the library's index failed"),
        }
        match sweep_unnamed_blobs(&*store, &*library, SWEEP_GRACE).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "the library's sweep deleted unnamed blobs"),
            Err(error) => tracing::warn!(%error, "the library's sweep failed"),
        }
    }
}
