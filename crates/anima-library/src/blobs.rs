//! Blobs by content: the bytes of documents, in any `object_store`
//! (a local directory by default, an S3-compatible bucket for scale-out).
//!
//! Layout under the store's root:
//! - `blobs/<first two hex digits>/<sha256>`: a stored blob. Only complete
//!   blobs are ever here: an upload is written to `uploads/<id>` and
//!   renamed once its hash is known, so a crash mid-upload leaves nothing
//!   under `blobs/`.
//! - `uploads/<id>`: uploads in progress, or left by a crash
//!   ([`BlobStore::sweep_uploads`] removes old ones).
//!
//! Storing bytes that are stored already renames the new copy over the
//! old one: the content is the same, and its modification time becomes
//! "stored again now", which [`BlobStore::delete`] respects.

use std::sync::Arc;

use anima_core::{DomainError, error::reason, id::new_id};
use futures_util::{Stream, StreamExt, TryStreamExt, stream::BoxStream};
use object_store::{
    ObjectStore, ObjectStoreExt, WriteMultipart, local::LocalFileSystem, path::Path as StorePath,
};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

/// The most bytes a blob may have unless configured otherwise.
pub const DEFAULT_MAX_BLOB_BYTES: u64 = anima_core::document::MAX_DOCUMENT_SIZE as u64;

/// Bytes an upload buffers before writing them as one part: the memory
/// one upload holds, whatever its size.
const PART_BYTES: usize = 5 * 1024 * 1024;

/// Parts of one upload written at once.
const PARTS_IN_FLIGHT: usize = 2;

/// Uploads untouched this long are a crashed upload's leftovers.
const ABANDONED_UPLOAD: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// A stored blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobMeta {
    /// The SHA-256 of the content, lowercase hex.
    pub sha256: String,
    /// The content's length.
    pub size_bytes: u64,
    /// When these bytes were last stored, in microseconds since the epoch.
    pub stored_at: i64,
}

/// See the module documentation.
#[derive(Clone)]
pub struct BlobStore {
    store: Arc<dyn ObjectStore>,
    /// The directory of a local store, whose crashed uploads only a
    /// directory walk finds.
    local_root: Option<std::path::PathBuf>,
    max_blob_bytes: u64,
    /// Held while a blob is published or deleted, so a delete that
    /// checked a blob's age cannot remove a copy stored after the check.
    /// One library process per store keeps this whole; several processes
    /// on one bucket narrow the race to the moment between the two calls.
    publishing: Arc<Mutex<()>>,
}

impl std::fmt::Debug for BlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobStore")
            .field("store", &self.store.to_string())
            .field("max_blob_bytes", &self.max_blob_bytes)
            .finish()
    }
}

fn storage_failed(what: &str, error: object_store::Error) -> DomainError {
    tracing::warn!(%error, "library storage: {what}");
    DomainError::new(
        anima_core::ErrorCode::Unavailable,
        reason::STORAGE_UNAVAILABLE,
        format!("the library's storage failed to {what}"),
    )
}

fn blob_not_found(sha256: &str) -> DomainError {
    DomainError::not_found(reason::BLOB_NOT_FOUND, format!("no blob {sha256}"))
}

fn too_large(max_bytes: u64) -> DomainError {
    DomainError::invalid_argument(
        reason::DOCUMENT_TOO_LARGE,
        format!("the content is larger than {max_bytes} bytes, the most the library takes"),
    )
}

/// Checks that `raw` is a SHA-256 in lowercase hex, so it can name a path.
pub fn parse_sha256(raw: &str) -> Result<&str, DomainError> {
    if raw.len() == 64 && raw.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(raw)
    } else {
        Err(DomainError::invalid_argument(
            reason::INVALID_FIELD,
            "sha256 must be 64 lowercase hex digits",
        ))
    }
}

fn blob_path(sha256: &str) -> StorePath {
    StorePath::from_iter(["blobs", &sha256[..2], sha256])
}

fn meta_of(meta: &object_store::ObjectMeta) -> Option<BlobMeta> {
    let sha256 = meta.location.filename()?;
    parse_sha256(sha256).ok()?;
    Some(BlobMeta {
        sha256: sha256.to_owned(),
        size_bytes: meta.size,
        stored_at: meta.last_modified.timestamp_micros(),
    })
}

impl BlobStore {
    /// Blobs in `store`, each at most `max_blob_bytes`.
    pub fn new(store: Arc<dyn ObjectStore>, max_blob_bytes: u64) -> Self {
        Self {
            store,
            local_root: None,
            max_blob_bytes,
            publishing: Arc::new(Mutex::new(())),
        }
    }

    /// Blobs in the directory `root` (created if missing), which only
    /// this user may enter: documents are as private as the database.
    pub fn in_directory(root: &std::path::Path, max_blob_bytes: u64) -> anyhow::Result<Self> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(root)?;
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o700))?;
        let store = LocalFileSystem::new_with_prefix(root)?;
        Ok(Self {
            local_root: Some(root.to_owned()),
            ..Self::new(Arc::new(store), max_blob_bytes)
        })
    }

    /// The most bytes a blob may have.
    pub fn max_blob_bytes(&self) -> u64 {
        self.max_blob_bytes
    }

    /// Stores the bytes of `chunks` and returns what was stored. The
    /// content never sits whole in memory: it is hashed and written part by
    /// part. Past `max_bytes` (or the store's own limit, whichever is lower)
    /// the upload stops with `DOCUMENT_TOO_LARGE` and nothing is stored;
    /// likewise when `chunks` fails (its error is returned) or is empty.
    pub async fn put(
        &self,
        chunks: impl Stream<Item = Result<Vec<u8>, DomainError>>,
        max_bytes: Option<u64>,
    ) -> Result<BlobMeta, DomainError> {
        let limit = max_bytes.map_or(self.max_blob_bytes, |max| max.min(self.max_blob_bytes));
        let upload_path = StorePath::from_iter(["uploads", &new_id()]);
        let upload = self
            .store
            .put_multipart(&upload_path)
            .await
            .map_err(|error| storage_failed("start an upload", error))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
        let mut hasher = Sha256::new();
        let mut size_bytes: u64 = 0;
        let mut chunks = std::pin::pin!(chunks);
        let outcome: Result<(), DomainError> = async {
            while let Some(chunk) = chunks.next().await {
                let chunk = chunk?;
                size_bytes += chunk.len() as u64;
                if size_bytes > limit {
                    return Err(too_large(limit));
                }
                hasher.update(&chunk);
                writer
                    .wait_for_capacity(PARTS_IN_FLIGHT)
                    .await
                    .map_err(|error| storage_failed("write an upload", error))?;
                writer.write(&chunk);
            }
            if size_bytes == 0 {
                return Err(DomainError::invalid_argument(
                    reason::EMPTY_CONTENT,
                    "the content is empty",
                ));
            }
            Ok(())
        }
        .await;
        if let Err(error) = outcome {
            if let Err(abort) = writer.abort().await {
                tracing::warn!(error = %abort, "library storage: abort an upload");
            }
            return Err(error);
        }
        writer
            .finish()
            .await
            .map_err(|error| storage_failed("finish an upload", error))?;
        let sha256 = hex::encode(hasher.finalize());
        let path = blob_path(&sha256);
        let _publishing = self.publishing.lock().await;
        self.stamp_now(&upload_path).await?;
        self.store
            .rename(&upload_path, &path)
            .await
            .map_err(|error| storage_failed("store a blob", error))?;
        let stored = self
            .store
            .head(&path)
            .await
            .map_err(|error| storage_failed("read a blob's size", error))?;
        meta_of(&stored).ok_or_else(|| DomainError::internal(format!("blob {path} has no name")))
    }

    /// Marks an upload as stored now: a rename keeps a file's time, which
    /// is that of its last write, and [`BlobStore::delete`] must not take
    /// bytes just stored for an old copy. (An object store's rename is a
    /// copy, which is new anyway.)
    async fn stamp_now(&self, upload: &StorePath) -> Result<(), DomainError> {
        let Some(root) = &self.local_root else {
            return Ok(());
        };
        let file = root.join(upload.as_ref());
        tokio::task::spawn_blocking(move || {
            std::fs::File::options()
                .write(true)
                .open(&file)?
                .set_modified(std::time::SystemTime::now())
        })
        .await
        .map_err(|error| DomainError::internal(format!("stamping an upload: {error}")))?
        .map_err(|error| {
            tracing::warn!(%error, "library storage: stamp an upload");
            DomainError::new(
                anima_core::ErrorCode::Unavailable,
                reason::STORAGE_UNAVAILABLE,
                "the library's storage failed to store a blob",
            )
        })
    }

    /// The blob's size and when it was stored.
    pub async fn head(&self, sha256: &str) -> Result<BlobMeta, DomainError> {
        let sha256 = parse_sha256(sha256)?;
        match self.store.head(&blob_path(sha256)).await {
            Ok(meta) => meta_of(&meta).ok_or_else(|| blob_not_found(sha256)),
            Err(object_store::Error::NotFound { .. }) => Err(blob_not_found(sha256)),
            Err(error) => Err(storage_failed("read a blob", error)),
        }
    }

    /// The blob's bytes as they are read.
    pub async fn get(
        &self,
        sha256: &str,
    ) -> Result<BoxStream<'static, Result<Vec<u8>, DomainError>>, DomainError> {
        let sha256 = parse_sha256(sha256)?;
        match self.store.get(&blob_path(sha256)).await {
            Ok(found) => Ok(found
                .into_stream()
                .map_ok(|bytes| bytes.to_vec())
                .map_err(|error| storage_failed("read a blob", error))
                .boxed()),
            Err(object_store::Error::NotFound { .. }) => Err(blob_not_found(sha256)),
            Err(error) => Err(storage_failed("read a blob", error)),
        }
    }

    /// The first `limit` bytes of the blob, and whether that is all of it.
    pub async fn read_start(
        &self,
        sha256: &str,
        limit: usize,
    ) -> Result<(Vec<u8>, bool), DomainError> {
        let mut chunks = self.get(sha256).await?;
        let mut start = Vec::new();
        while let Some(chunk) = chunks.try_next().await? {
            let room = limit - start.len();
            if chunk.len() > room {
                start.extend_from_slice(&chunk[..room]);
                return Ok((start, false));
            }
            start.extend_from_slice(&chunk);
        }
        Ok((start, true))
    }

    /// Deletes the blob unless it was stored at or after `stored_before`
    /// (microseconds); whether it was deleted.
    pub async fn delete(&self, sha256: &str, stored_before: i64) -> Result<bool, DomainError> {
        let sha256 = parse_sha256(sha256)?;
        let _publishing = self.publishing.lock().await;
        let stored = match self.head(sha256).await {
            Ok(stored) => stored,
            Err(error) if error.reason == reason::BLOB_NOT_FOUND => return Ok(false),
            Err(error) => return Err(error),
        };
        if stored.stored_at >= stored_before {
            return Ok(false);
        }
        match self.store.delete(&blob_path(sha256)).await {
            Ok(()) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(error) => Err(storage_failed("delete a blob", error)),
        }
    }

    /// Every blob, in the order the store lists them: one walk of the
    /// store, never more than one entry in memory.
    pub fn list(&self) -> BoxStream<'static, Result<BlobMeta, DomainError>> {
        self.store
            .list(Some(&StorePath::from("blobs")))
            .map_err(|error| storage_failed("list blobs", error))
            .try_filter_map(|meta| async move { Ok(meta_of(&meta)) })
            .boxed()
    }

    /// How many blobs there are and their bytes in all.
    pub async fn stats(&self) -> Result<(u64, u64), DomainError> {
        self.list()
            .try_fold((0u64, 0u64), |(count, bytes), blob| async move {
                Ok((count + 1, bytes + blob.size_bytes))
            })
            .await
    }

    /// Removes uploads untouched for a day: what a crash or a cancelled
    /// upload left. In a directory these include the store's staging
    /// files, which `object_store` does not list, so they are found on
    /// disk; in an object store, complete uploads never renamed are listed
    /// (incomplete multipart parts are for the bucket's lifecycle rules to
    /// expire). Returns how many went.
    pub async fn sweep_uploads(&self) -> anyhow::Result<usize> {
        let Some(root) = self.local_root.clone() else {
            let cutoff = anima_core::model::now_micros()
                - i64::try_from(ABANDONED_UPLOAD.as_micros()).unwrap_or(i64::MAX);
            let old: Vec<StorePath> = self
                .store
                .list(Some(&StorePath::from("uploads")))
                .try_filter_map(|meta| async move {
                    Ok((meta.last_modified.timestamp_micros() < cutoff).then_some(meta.location))
                })
                .try_collect()
                .await?;
            for path in &old {
                self.store.delete(path).await?;
            }
            return Ok(old.len());
        };
        tokio::task::spawn_blocking(move || {
            let uploads = root.join("uploads");
            let entries = match std::fs::read_dir(&uploads) {
                Ok(entries) => entries,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(0),
                Err(error) => return Err(error.into()),
            };
            let mut removed = 0;
            for entry in entries {
                let entry = entry?;
                let age = entry.metadata()?.modified()?.elapsed().unwrap_or_default();
                if age > ABANDONED_UPLOAD && entry.file_type()?.is_file() {
                    std::fs::remove_file(entry.path())?;
                    removed += 1;
                }
            }
            Ok(removed)
        })
        .await?
    }

    /// Sweeps old uploads every hour, for as long as the library runs.
    pub async fn sweep_uploads_forever(self) {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(3600));
        loop {
            every.tick().await;
            match self.sweep_uploads().await {
                Ok(0) => {}
                Ok(removed) => tracing::info!(removed, "removed uploads left by a crash"),
                Err(error) => tracing::warn!(%error, "sweeping old uploads failed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(parts: &[&[u8]]) -> BoxStream<'static, Result<Vec<u8>, DomainError>> {
        let parts: Vec<Result<Vec<u8>, DomainError>> =
            parts.iter().map(|part| Ok(part.to_vec())).collect();
        futures_util::stream::iter(parts).boxed()
    }

    /// The paths an object store (not a directory) takes: a rename that is
    /// a copy, no file times to stamp, old uploads found by listing.
    /// `object_store`'s in-memory store stands in for a bucket, as no
    /// S3-compatible server runs here.
    #[tokio::test]
    async fn an_object_store_keeps_blobs_the_same_way() {
        let memory = Arc::new(object_store::memory::InMemory::new());
        let blobs = BlobStore::new(memory.clone(), 16);
        let stored = blobs
            .put(chunks(&[b"spec ", b"v1"]), None)
            .await
            .expect("put");
        assert_eq!(stored.sha256, hex::encode(Sha256::digest(b"spec v1")));
        assert_eq!(stored.size_bytes, 7);
        assert_eq!(
            blobs.read_start(&stored.sha256, 100).await.expect("read"),
            (b"spec v1".to_vec(), true)
        );
        assert_eq!(
            blobs.read_start(&stored.sha256, 4).await.expect("read"),
            (b"spec".to_vec(), false)
        );
        let listed: Vec<BlobMeta> = blobs.list().try_collect().await.expect("list");
        assert_eq!(listed, std::slice::from_ref(&stored));

        let too_large = blobs
            .put(chunks(&[b"0123456789", b"0123456789"]), None)
            .await
            .expect_err("past 16 bytes");
        assert_eq!(too_large.reason, reason::DOCUMENT_TOO_LARGE);
        assert_eq!(blobs.stats().await.expect("stats"), (1, 7));

        assert!(
            !blobs
                .delete(&stored.sha256, stored.stored_at)
                .await
                .expect("delete"),
            "stored at that time: kept"
        );
        assert!(
            blobs
                .delete(&stored.sha256, i64::MAX)
                .await
                .expect("delete")
        );
        assert_eq!(blobs.stats().await.expect("stats"), (0, 0));

        // A complete upload never renamed (its library stopped in between)
        // is swept once it is a day old, and not before.
        memory
            .put(&StorePath::from("uploads/left"), b"half".to_vec().into())
            .await
            .expect("leftover");
        assert_eq!(blobs.sweep_uploads().await.expect("sweep"), 0);
    }
}
