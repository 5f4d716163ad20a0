//! anima-library, Seshat's Library: the internal service that keeps the
//! bytes of documents ([`blobs`]), reads their text ([`extract`]) and finds
//! documents by their words and their meaning ([`indexer`]: chunks from
//! [`chunk`], words and vectors in [`index`], the vector graph in
//! [`vectors`], fusion in [`search`]), reached over gRPC (`LibraryService`)
//! by anima-server the way it reaches PostgreSQL. It trusts only service
//! tokens; which user may read which document is decided in anima-server,
//! which keeps documents' metadata.
//!
//! `anima up` hosts it in process; the `anima-library` binary runs it
//! alone. Configuration is the `[library]` section of `anima.toml` and
//! its `ANIMA_LIBRARY_*` variables.

pub mod blobs;
pub mod chunk;
pub mod extract;
pub mod index;
pub mod indexer;
pub mod search;
mod service;
pub mod vectors;

use std::{path::Path, sync::Arc};

use anima_proto::v1::library_service_server::LibraryServiceServer;
use anyhow::Context;
pub use blobs::{BlobMeta, BlobStore, DEFAULT_MAX_BLOB_BYTES};
pub use extract::{PdfReader, serve_pdf_reader_if_asked};
pub use indexer::{Embeddings, Indexer};
use object_store::{aws::AmazonS3Builder, prefix::PrefixStore};
use serde::{Deserialize, Serialize};
pub use service::{Library, MAX_CHUNK_BYTES};

/// `[library]` of `anima.toml`, as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LibrarySettings {
    /// Where blobs are kept: a directory (`/srv/anima/library` or
    /// `file:///srv/anima/library`), or `s3://BUCKET/PREFIX` for any
    /// S3-compatible store, with its endpoint, region and credentials
    /// from the usual `AWS_*` variables. Empty: `library` in the data
    /// directory.
    pub store: String,
    /// The most bytes one document may have.
    pub max_blob_bytes: u64,
    /// The search index's database: `sqlite://PATH` or `postgres://…`
    /// (its tables may share anima-server's database). Empty:
    /// `library-index.db` in the data directory. One library process
    /// writes an index at a time.
    pub index: String,
    /// anima-ai, for the chunks' vectors (the `anima-library` binary;
    /// `anima up` uses the anima-ai it hosts or is configured with).
    /// Empty: documents are found by their words alone.
    pub ai_url: String,
    /// The service token anima-ai takes from the library.
    pub ai_token: String,
    /// The embedding model's `tokenizer.json`, which measures chunks.
    /// Empty: all-MiniLM-L6-v2's where scripts/setup-debian installs it;
    /// without one, chunks are measured in characters.
    pub tokenizer: String,
}

impl Default for LibrarySettings {
    fn default() -> Self {
        Self {
            store: String::new(),
            max_blob_bytes: DEFAULT_MAX_BLOB_BYTES,
            index: String::new(),
            ai_url: String::new(),
            ai_token: String::new(),
            tokenizer: String::new(),
        }
    }
}

/// The one section anima-library reads on its own.
#[derive(Default, Serialize, Deserialize)]
#[serde(default)]
struct LibrarySection {
    library: LibrarySettings,
}

impl LibrarySettings {
    /// The `[library]` section of `anima.toml` (if given) with its
    /// `ANIMA_LIBRARY_*` variables.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        let section: LibrarySection = anima_core::config::read(file)?;
        Ok(section.library)
    }

    /// Where the blobs go, checked without touching it.
    fn location(&self) -> anyhow::Result<Location<'_>> {
        anyhow::ensure!(self.max_blob_bytes > 0, "max_blob_bytes must be above 0");
        let store = self.store.trim();
        if let Some(location) = store.strip_prefix("s3://") {
            let (bucket, prefix) = location.split_once('/').unwrap_or((location, ""));
            anyhow::ensure!(!bucket.is_empty(), "store {store:?} names no bucket");
            return Ok(Location::S3 {
                bucket,
                prefix: prefix.trim_matches('/'),
            });
        }
        match store.strip_prefix("file://").unwrap_or(store) {
            "" => Ok(Location::DataDir),
            directory => {
                let directory = Path::new(directory);
                anyhow::ensure!(
                    directory.is_absolute(),
                    "store {store:?}: write an absolute directory, file:///DIR or s3://BUCKET/PREFIX"
                );
                Ok(Location::Directory(directory))
            }
        }
    }

    /// Refuses what [`LibrarySettings::open`] would, without opening.
    pub fn check(&self) -> anyhow::Result<()> {
        self.location()?;
        self.embeddings()?;
        Ok(())
    }

    /// anima-ai as `ai_url` and `ai_token` name it, if they do.
    pub fn embeddings(&self) -> anyhow::Result<Option<Embeddings>> {
        match (self.ai_url.trim(), self.ai_token.trim()) {
            ("", _) => Ok(None),
            (_, "") => anyhow::bail!("ai_url is set without ai_token"),
            (url, token) => Embeddings::remote(url, token).map(Some),
        }
    }

    /// Opens the search index (created on first use) with `ai` for its
    /// vectors; `data_dir` holds the default one and the saved vector graph
    /// (`library-vectors/`). The caller runs [`Indexer::embed_forever`].
    pub async fn open_index(
        &self,
        data_dir: Option<&Path>,
        ai: Option<Embeddings>,
    ) -> anyhow::Result<Arc<Indexer>> {
        let dir = data_dir.context("no data directory for the library's index")?;
        let url = match self.index.trim() {
            "" => format!("sqlite://{}", dir.join("library-index.db").display()),
            url => url.to_owned(),
        };
        if let Some(path) = url.strip_prefix("sqlite://") {
            create_private(Path::new(path))?;
        }
        let store = index::open_writer(&url).await?;
        let tokenizer = match self.tokenizer.trim() {
            "" => chunk::default_tokenizer(),
            path => Some(std::path::PathBuf::from(path)),
        };
        let chunker = chunk::Chunker::new(tokenizer.as_deref());
        tracing::info!(
            measure = chunker.measure(),
            vectors = ai.is_some(),
            "library index open"
        );
        Ok(Indexer::new(
            store,
            chunker,
            ai,
            Some(dir.join("library-vectors")),
        ))
    }

    /// Opens the configured store; `data_dir` holds the default one.
    pub fn open(&self, data_dir: Option<&Path>) -> anyhow::Result<BlobStore> {
        let directory = match self.location()? {
            Location::S3 { bucket, prefix } => {
                // The endpoint, region and credentials come from the usual
                // `AWS_*` variables, so an operator's set-up for other
                // tools works here too.
                let s3 = AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .build()
                    .with_context(|| format!("store {:?}", self.store))?;
                let store: Arc<dyn object_store::ObjectStore> = match prefix {
                    "" => Arc::new(s3),
                    prefix => Arc::new(PrefixStore::new(s3, prefix)),
                };
                return Ok(BlobStore::new(store, self.max_blob_bytes));
            }
            Location::DataDir => data_dir
                .context("no data directory for the library; set [library] store")?
                .join("library"),
            Location::Directory(directory) => directory.to_owned(),
        };
        BlobStore::in_directory(&directory, self.max_blob_bytes)
            .with_context(|| format!("library store {}", directory.display()))
    }
}

/// Where [`LibrarySettings::store`] points.
enum Location<'a> {
    /// `library` in the data directory.
    DataDir,
    /// A directory of the host.
    Directory(&'a Path),
    /// An S3-compatible bucket, under a prefix.
    S3 { bucket: &'a str, prefix: &'a str },
}

/// Makes the index's file readable by this user alone (it holds every
/// project's text), also one that exists already; SQLite gives its journal
/// files the same mode. Returns it open (the index's writer lock is such a
/// file).
pub(crate) fn create_private(path: &Path) -> anyhow::Result<std::fs::File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        // Never through a link someone else placed.
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("making {} private", path.display()))?;
    Ok(file)
}

/// The tonic service to mount on a server, with its messages allowed up to
/// one upload chunk or one document's text in size; `pdf` reads PDFs' text
/// (without one, PDFs are kept but not searched).
pub fn service(
    blobs: BlobStore,
    pdf: Option<PdfReader>,
    indexer: Arc<Indexer>,
) -> LibraryServiceServer<Library> {
    LibraryServiceServer::new(Library::new(blobs, pdf, indexer)).max_decoding_message_size(
        MAX_CHUNK_BYTES.max(anima_core::document::SEARCH_TEXT_BYTES) + 64 * 1024,
    )
}
