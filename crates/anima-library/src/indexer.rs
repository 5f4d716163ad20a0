//! The library's search side. A document's text is split into chunks when
//! it is indexed, so its words are found at once; a background embedder
//! then asks anima-ai for the chunks' vectors, a batch at a time, and
//! keeps the model's id with each; a search fuses the chunks found by
//! words with those found by meaning.
//!
//! Every write that changes which vectors exist (indexing, forgetting,
//! setting vectors, rebuilding the graph) happens under one lock, database
//! first, graph second: a document forgotten while its vectors are being
//! computed loses them in the database and the graph alike.

use std::{
    collections::{HashMap, HashSet},
    path::PathBuf,
    sync::Arc,
    time::Duration,
};

use anima_core::{DomainError, ErrorCode, error::reason, model::now_micros};
use anima_proto::v1::{self as pb, anima_ai_service_client::AnimaAiServiceClient};
use tokio::sync::{Mutex, Notify, Semaphore};
use tonic::{
    metadata::{Ascii, MetadataValue},
    transport::Channel,
};

use crate::{
    chunk::Chunker,
    extract::format_of,
    index::{IndexStats, IndexStore, IndexedDocument, PendingChunk, Replaced, SearchScope},
    search::{Terms, fuse, snippet},
    vectors::Vectors,
};

/// Chunks embedded per request to anima-ai (one forward pass).
const EMBED_BATCH: i64 = 32;
/// Characters of a chunk sent to be embedded.
const EMBED_CHARS: usize = 4_000;
/// Candidates each half of a search ranks before fusion.
const CANDIDATES: usize = 50;
/// Documents split at once (each on a blocking thread of its own).
const SPLITTING_AT_ONCE: usize = 2;
/// Vectors less similar to the query than this are not matches, however
/// near they are compared with the rest.
const MIN_SIMILARITY: f32 = 0.2;
/// How long a search waits for the query's vector before it ranks by
/// words alone.
const QUERY_VECTOR_WAIT: Duration = Duration::from_secs(5);
/// How often the embedder looks for work nobody announced (another
/// process's writes, a failure before).
const EMBED_POLL: Duration = Duration::from_secs(30);
/// How often, at most, the vector graph is saved while it changes.
const SNAPSHOT_EVERY: Duration = Duration::from_secs(300);
/// How long a forgotten document's id is kept to turn away late index
/// requests (anima-server's hourly reconciliation mends anything later).
const FORGOTTEN_KEPT: Duration = Duration::from_secs(24 * 3600);
/// Characters of a chunk a hit shows.
const SNIPPET_CHARS: usize = 200;

/// anima-ai as the library reaches it: for vectors only.
#[derive(Clone)]
pub struct Embeddings {
    client: AnimaAiServiceClient<Channel>,
    token: Option<MetadataValue<Ascii>>,
}

impl Embeddings {
    /// anima-ai over `channel`, in the same process (no token).
    pub fn hosted(channel: Channel) -> Self {
        Self {
            client: AnimaAiServiceClient::new(channel),
            token: None,
        }
    }

    /// anima-ai at `url`, with its service token.
    pub fn remote(url: &str, token: &str) -> anyhow::Result<Self> {
        let channel = Channel::from_shared(url.to_owned())?
            .connect_timeout(Duration::from_secs(5))
            .connect_lazy();
        let token = format!("Bearer {token}")
            .parse()
            .map_err(|_| anyhow::anyhow!("the anima-ai token is not a valid header value"))?;
        Ok(Self {
            client: AnimaAiServiceClient::new(channel),
            token: Some(token),
        })
    }

    /// One vector per text, and the model that made them.
    async fn embed(&self, texts: Vec<String>) -> Result<(Vec<Vec<f32>>, String), DomainError> {
        let mut request = tonic::Request::new(pb::EmbedRequest { texts });
        if let Some(token) = &self.token {
            request
                .metadata_mut()
                .insert("authorization", token.clone());
        }
        let answer = self
            .client
            .clone()
            .embed(request)
            .await
            .map_err(|status| {
                DomainError::new(
                    ErrorCode::Unavailable,
                    reason::MODEL_UNAVAILABLE,
                    format!("anima-ai gave no vectors: {}", status.message()),
                )
            })?
            .into_inner();
        Ok((
            answer
                .vectors
                .into_iter()
                .map(|vector| vector.values)
                .collect(),
            answer.model,
        ))
    }
}

impl PendingChunk {
    /// What the model reads of the chunk: its document's title, then its
    /// text (the title alone when it has none).
    pub fn embedding_text(&self) -> String {
        // The model reads 256 tokens at most; more characters than this
        // only fill the request.
        let text: String = self.text.chars().take(EMBED_CHARS).collect();
        match text.is_empty() {
            true => self.title.clone(),
            false => format!("{}\n\n{text}", self.title),
        }
    }
}

/// One chunk a search found.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// Its document.
    pub document_id: String,
    /// Its place in the document.
    pub chunk: i32,
    /// Its text around the query's first word in it.
    pub snippet: String,
    /// Its fused score.
    pub score: f64,
    /// Its rank by words, if found so.
    pub lexical_rank: Option<usize>,
    /// Its rank by meaning, if found so.
    pub vector_rank: Option<usize>,
}

/// What a search found, and the model its query's vector came from
/// (`None`: it ranked by words alone).
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    /// Best first, one per document.
    pub hits: Vec<Hit>,
    /// The model, when meaning took part.
    pub model: Option<String>,
}

/// Which rankings a search uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ranking {
    /// Words and meaning, fused: what searches use.
    Fused,
    /// Words alone (BM25 / `ts_rank`).
    Words,
    /// Meaning alone (vector similarity).
    Meaning,
}

/// What indexing a document did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Indexed {
    /// Chunks stored.
    pub chunks: usize,
    /// Whether it had been forgotten (nothing stored).
    pub forgotten: bool,
}

/// The index, its vectors and the way to anima-ai. Shared by the service
/// and the background embedder.
pub struct Indexer {
    store: Arc<dyn IndexStore>,
    vectors: Arc<Vectors>,
    chunker: Chunker,
    ai: Option<Embeddings>,
    /// Where the vector graph is saved, so a start need not build it.
    snapshot: Option<PathBuf>,
    writing: Mutex<()>,
    pending: Notify,
    /// Documents being split at once: a hostile megabyte costs a core
    /// seconds (see `chunk.rs`), and uploads must not take every one.
    splitting: Semaphore,
}

impl Indexer {
    /// The indexer over `store`, splitting with `chunker`, embedding through
    /// `ai` (without it, search is by words alone), saving the vector graph
    /// in `snapshot` (without it, every start builds the graph).
    pub fn new(
        store: Arc<dyn IndexStore>,
        chunker: Chunker,
        ai: Option<Embeddings>,
        snapshot: Option<PathBuf>,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            vectors: Arc::new(Vectors::new()),
            chunker,
            ai,
            snapshot,
            writing: Mutex::new(()),
            pending: Notify::new(),
            splitting: Semaphore::new(SPLITTING_AT_ONCE),
        })
    }

    /// The vector index (for measuring it).
    pub fn vectors(&self) -> &Vectors {
        &self.vectors
    }

    /// Splits `text` (empty: the document is found by its title alone) and
    /// stores its chunks in place of the document's old ones; their vectors
    /// follow in the background.
    pub async fn index(
        &self,
        document: IndexedDocument,
        media_type: &str,
        text: String,
    ) -> Result<Indexed, DomainError> {
        let format = format_of(&document.doc_type, media_type, &document.title);
        let chunker = self.chunker.clone();
        let splitting = self
            .splitting
            .acquire()
            .await
            .map_err(|_| DomainError::internal("the indexer is closing"))?;
        let mut chunks = tokio::task::spawn_blocking(move || chunker.split(&text, format))
            .await
            .map_err(|error| DomainError::internal(format!("splitting failed: {error}")))?;
        drop(splitting);
        if chunks.is_empty() {
            chunks.push(String::new());
        }
        let _writing = self.writing.lock().await;
        match self.store.replace_document(&document, &chunks).await? {
            Replaced::Stored { removed } => {
                self.vectors.remove(&removed)?;
                self.pending.notify_one();
                Ok(Indexed {
                    chunks: chunks.len(),
                    forgotten: false,
                })
            }
            Replaced::Forgotten => Ok(Indexed {
                chunks: 0,
                forgotten: true,
            }),
        }
    }

    /// Removes the document's chunks and vectors for good.
    pub async fn forget(&self, document_id: &str) -> Result<(), DomainError> {
        let _writing = self.writing.lock().await;
        let removed = self.store.forget_document(document_id).await?;
        self.vectors.remove(&removed)?;
        let before = now_micros().saturating_sub(FORGOTTEN_KEPT.as_micros() as i64);
        self.store.prune_forgotten(before).await?;
        Ok(())
    }

    /// Every document indexed.
    pub async fn documents(&self) -> Result<Vec<IndexedDocument>, DomainError> {
        self.store.documents().await
    }

    /// Has vectors computed again (all of them with `all`, else those of
    /// another model, which the embedder takes anyway); how many chunks
    /// wait for one.
    pub async fn reindex(&self, all: bool) -> Result<i64, DomainError> {
        if all {
            let _writing = self.writing.lock().await;
            self.store.mark_all_for_embedding().await?;
        }
        self.pending.notify_one();
        let (stats, _) = self.stats().await?;
        Ok(stats.chunks - stats.embedded)
    }

    /// Counts, and the model vectors come from (once known).
    pub async fn stats(&self) -> Result<(IndexStats, Option<String>), DomainError> {
        let model = self.vectors.model();
        Ok((self.store.stats(model.as_deref()).await?, model))
    }

    /// Up to `limit` chunks in `scope` that match `query` by words or by
    /// meaning (as `ranking` says), best first, one per document.
    pub async fn search(
        &self,
        query: &str,
        scope: &SearchScope,
        limit: usize,
        ranking: Ranking,
    ) -> Result<Found, DomainError> {
        let terms = Terms::of(query);
        // The two halves run at once, each reading its own chunks: the
        // query's embedding, the slower part, overlaps the search by words
        // and the reading of what it found.
        let by_words = async {
            if ranking == Ranking::Meaning {
                return Ok((Vec::new(), Vec::new()));
            }
            let lexical = self.store.lexical(&terms, scope, CANDIDATES as i64).await?;
            let chunks = self.store.chunks(&lexical).await?;
            Ok((lexical, chunks))
        };
        let by_meaning = async {
            if ranking == Ranking::Words {
                return Ok((Vec::new(), None, Vec::new()));
            }
            let Some((semantic, model)) = self.nearest(query, scope).await? else {
                return Ok((Vec::new(), None, Vec::new()));
            };
            let chunks = self.store.chunks(&semantic).await?;
            Ok((semantic, Some(model), chunks))
        };
        let ((lexical, lexical_chunks), (semantic, model, semantic_chunks)) =
            tokio::try_join!(by_words, by_meaning)?;
        let chunks: HashMap<i64, _> = lexical_chunks
            .into_iter()
            .chain(semantic_chunks)
            .map(|chunk| (chunk.seq, chunk))
            .collect();
        let weighed: Vec<(i64, f64)> = lexical
            .iter()
            .map(|seq| {
                let coverage = chunks.get(seq).map_or(0.0, |chunk| {
                    terms.coverage(&format!("{}\n{}", chunk.title, chunk.text))
                });
                (*seq, coverage * coverage)
            })
            .collect();
        let fused = fuse(&weighed, &semantic);
        let mut documents = HashSet::new();
        let mut hits = Vec::new();
        for fused in fused {
            // A chunk replaced or forgotten since it was ranked is skipped.
            let Some(chunk) = chunks.get(&fused.seq) else {
                continue;
            };
            if !documents.insert(chunk.document_id.clone()) {
                continue;
            }
            hits.push(Hit {
                document_id: chunk.document_id.clone(),
                chunk: chunk.ordinal,
                snippet: snippet(&chunk.text, terms.words(), SNIPPET_CHARS),
                score: fused.score,
                lexical_rank: fused.lexical_rank,
                vector_rank: fused.vector_rank,
            });
            if hits.len() == limit {
                break;
            }
        }
        Ok(Found { hits, model })
    }

    /// The chunks in `scope` similar enough to `query`, nearest first, and
    /// the model that compared them; `None` when the search is by words
    /// alone (no query vector, or no vectors of its model yet).
    async fn nearest(
        &self,
        query: &str,
        scope: &SearchScope,
    ) -> Result<Option<(Vec<i64>, String)>, DomainError> {
        let Some((vector, model)) = self.query_vector(query).await else {
            return Ok(None);
        };
        // A search of the graph is CPU work of a few milliseconds: off the
        // runtime's workers, which serve every other request meanwhile.
        let vectors = self.vectors.clone();
        let scope = scope.clone();
        tokio::task::spawn_blocking(move || {
            let nearest = vectors.search(&model, &vector, &scope, CANDIDATES)?;
            Ok(nearest.map(|nearest| {
                let similar = nearest
                    .into_iter()
                    .filter(|(_, similarity)| *similarity >= MIN_SIMILARITY)
                    .map(|(seq, _)| seq)
                    .collect();
                (similar, model)
            }))
        })
        .await
        .map_err(|err| DomainError::internal(format!("the vector search failed: {err}")))?
    }

    /// The query's vector and its model; `None` (logged) when anima-ai is
    /// not configured, fails or is slow: the search ranks by words then.
    async fn query_vector(&self, query: &str) -> Option<(Vec<f32>, String)> {
        let ai = self.ai.as_ref()?;
        match tokio::time::timeout(QUERY_VECTOR_WAIT, ai.embed(vec![query.to_owned()])).await {
            Ok(Ok((mut vectors, model))) if vectors.len() == 1 => Some((vectors.remove(0), model)),
            Ok(Ok(_)) => {
                tracing::warn!("anima-ai answered a query with the wrong number of vectors");
                None
            }
            Ok(Err(error)) => {
                tracing::warn!(%error, "searching by words alone");
                None
            }
            Err(_) => {
                tracing::warn!("anima-ai was slow to embed a query; searching by words alone");
                None
            }
        }
    }

    /// Computes vectors for chunks that lack them, for as long as the
    /// process runs; without anima-ai it returns at once.
    pub async fn embed_forever(self: Arc<Self>) {
        let Some(ai) = self.ai.clone() else {
            return;
        };
        let mut backoff = Duration::from_secs(1);
        let mut saved = tokio::time::Instant::now();
        loop {
            match self.embed_some(&ai).await {
                Ok(true) => backoff = Duration::from_secs(1),
                Ok(false) => {
                    backoff = Duration::from_secs(1);
                    if saved.elapsed() >= SNAPSHOT_EVERY {
                        self.save_vectors().await;
                        saved = tokio::time::Instant::now();
                    }
                    let _ = tokio::time::timeout(EMBED_POLL, self.pending.notified()).await;
                }
                // Its successor embeds from now on: asking anima-ai for
                // vectors this one may not store would waste it.
                Err(error) if error.reason == reason::INDEX_TAKEN_OVER => return,
                Err(error) => {
                    tracing::warn!(%error, retry_in = ?backoff, "computing vectors failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(60));
                }
            }
        }
    }

    /// Saves the vector graph if it changed since it was last saved.
    async fn save_vectors(&self) {
        let Some(dir) = &self.snapshot else { return };
        if !self.vectors.changed() {
            return;
        }
        let _writing = self.writing.lock().await;
        if let Err(error) = self.vectors.save(&*self.store, dir).await {
            tracing::warn!(%error, "saving the vector graph failed");
        }
    }

    /// One batch of chunks embedded; whether there was one. Before the
    /// first batch (and when anima-ai's model changes) the graph of the
    /// model's vectors is built from the database.
    async fn embed_some(&self, ai: &Embeddings) -> Result<bool, DomainError> {
        let model = self.vectors.model();
        let batch = self
            .store
            .pending_chunks(model.as_deref(), EMBED_BATCH)
            .await?;
        let texts: Vec<String> = match batch.is_empty() {
            // Nothing to embed: learn the model, so searches can use the
            // vectors already stored; an empty library has none, and its
            // start need not load the model.
            true if model.is_none() && self.store.stats(None).await?.chunks > 0 => {
                vec!["Seshat's Library".to_owned()]
            }
            true => return Ok(false),
            false => batch.iter().map(PendingChunk::embedding_text).collect(),
        };
        let (vectors, answered) = ai.embed(texts).await?;
        let dimensions = vectors.first().map_or(0, Vec::len);
        if dimensions == 0 || vectors.iter().any(|vector| vector.len() != dimensions) {
            return Err(DomainError::internal("anima-ai answered without vectors"));
        }
        let _writing = self.writing.lock().await;
        if model.as_deref() != Some(answered.as_str()) {
            self.vectors
                .open(
                    &*self.store,
                    &answered,
                    dimensions,
                    self.snapshot.as_deref(),
                )
                .await
                .map(drop)?;
        }
        if batch.is_empty() {
            return Ok(false);
        }
        if vectors.len() != batch.len() {
            return Err(DomainError::internal(
                "anima-ai answered with the wrong number of vectors",
            ));
        }
        let pairs: Vec<(i64, Vec<f32>)> = batch
            .iter()
            .zip(vectors)
            .map(|(chunk, vector)| (chunk.place.seq, vector))
            .collect();
        let updated: HashSet<i64> = self
            .store
            .set_vectors(&answered, &pairs)
            .await?
            .into_iter()
            .collect();
        let added: Vec<_> = batch
            .into_iter()
            .zip(pairs)
            .filter(|(chunk, _)| updated.contains(&chunk.place.seq))
            .map(|(chunk, (_, vector))| (chunk.place, vector))
            .collect();
        self.vectors.add(&answered, &added)?;
        Ok(true)
    }
}
