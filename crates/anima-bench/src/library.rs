//! The `library` scenario: anima-library's search, in this process over a
//! throw-away SQLite index, with vectors from anima-ai's local model over a
//! real gRPC connection.
//!
//! - **Relevance** on the labelled set (`data/library-relevance-*.json`:
//!   target documents with their queries by identifier, by paraphrase and
//!   in German, among distractors on the same topics): recall@5 and
//!   nDCG@10 of each ranking alone and of the two fused.
//! - **Scale**: documents made of the set's texts until the index holds
//!   the chunks asked for (100,000; 20,000 with `--quick`): splitting and
//!   storing throughput, the model's embedding throughput on a sample, then
//!   the other chunks' vectors made from the sample's (each between two
//!   real vectors, plus noise, normalised: embedding 100,000 chunks on two
//!   cores would take hours), the graph's build, save and load times and
//!   memory, query latency by words, by meaning and fused (each query new
//!   to the model, its embedding included) beside the model's own latency
//!   for one query, and the graph's recall@10 against exact search.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anima_ai::AiConfig;
use anima_bench::load::measure;
use anima_core::document::DocumentType;
use anima_library::{
    Embeddings, Indexer,
    chunk::Chunker,
    index::{self, IndexStore, IndexedDocument, PendingChunk, SearchScope},
    indexer::Ranking,
};
use anima_proto::v1::{self as pb, anima_ai_service_client::AnimaAiServiceClient};
use anyhow::Context;
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde::Deserialize;
use tonic::transport::Channel;

use crate::{Options, Outcome};

/// The one project every document of the scenario is in.
const PROJECT: &str = "0190a000-0000-7000-8000-00000000be0c";
/// Chunks whose vectors the model computes, at scale.
const EMBEDDED_SAMPLE: usize = 512;
/// Texts per Embed call, as the library's embedder sends them.
const EMBED_BATCH: usize = 32;
/// Queries whose graph results are compared with exact search.
const RECALL_QUERIES: usize = 100;

#[derive(Deserialize)]
struct LabelledSet {
    documents: Vec<Document>,
    #[serde(default)]
    queries: Vec<Query>,
}

#[derive(Deserialize, Clone)]
struct Document {
    id: String,
    title: String,
    r#type: String,
    text: String,
}

#[derive(Deserialize)]
struct Query {
    query: String,
    kind: String,
    relevant: Vec<String>,
}

/// The labelled set: targets with their queries, and distractors.
fn labelled_set() -> anyhow::Result<(Vec<Document>, Vec<Query>)> {
    let mut documents = Vec::new();
    let mut queries = Vec::new();
    for json in [
        include_str!("../data/library-relevance-targets.json"),
        include_str!("../data/library-relevance-distractors-a.json"),
        include_str!("../data/library-relevance-distractors-b.json"),
    ] {
        let set: LabelledSet = serde_json::from_str(json).context("reading the labelled set")?;
        documents.extend(set.documents);
        queries.extend(set.queries);
    }
    Ok((documents, queries))
}

pub async fn scenario(options: &Options) -> anyhow::Result<Outcome> {
    let config = AiConfig::load(None)?;
    let tokenizer = config
        .model_dir()
        .map(|dir| dir.join("tokenizer.json"))
        .filter(|path| path.is_file());
    let address = crate::ai::serve(config).await?;
    let url = format!("http://{address}");
    let ai = Embeddings::remote(&url, "bench")?;
    let mut ai_client = AnimaAiServiceClient::new(Channel::from_shared(url)?.connect().await?);
    let (documents, queries) = labelled_set()?;
    let mut notes = vec![format!(
        "labelled set: {} documents, {} queries ({} by identifier, {} by paraphrase, {} in German)",
        documents.len(),
        queries.len(),
        queries.iter().filter(|q| q.kind == "identifier").count(),
        queries.iter().filter(|q| q.kind == "paraphrase").count(),
        queries.iter().filter(|q| q.kind == "german").count(),
    )];

    // Relevance.
    let dir = tempfile::tempdir()?;
    let store = index::open(&format!(
        "sqlite://{}",
        dir.path().join("relevance.db").display()
    ))
    .await?;
    let indexer = Indexer::new(
        store.clone(),
        Chunker::new(tokenizer.as_deref()),
        Some(ai.clone()),
        None,
    );
    for document in &documents {
        indexer
            .index(
                indexed(document),
                document_type(document)?.default_media_type(),
                document.text.clone(),
            )
            .await?;
    }
    tokio::spawn(indexer.clone().embed_forever());
    let model = embedded(&indexer).await?;
    let mut scores = HashMap::new();
    for ranking in [Ranking::Words, Ranking::Meaning, Ranking::Fused] {
        let score = relevance(&indexer, &queries, ranking).await?;
        notes.push(format!("{ranking:?}: {score}"));
        scores.insert(format!("{ranking:?}"), score);
    }
    let fused = &scores["Fused"];
    let best_alone = scores["Words"].ndcg10.max(scores["Meaning"].ndcg10);

    // Scale.
    let chunks_wanted = if options.quick { 20_000 } else { 100_000 };
    let scale = Scale::run(
        &dir,
        &documents,
        tokenizer.as_deref(),
        &ai,
        &mut ai_client,
        chunks_wanted,
    )
    .await?;
    notes.extend(scale.notes);
    let texts: Arc<Vec<String>> = Arc::new(queries.iter().map(|q| q.query.clone()).collect());
    let mut latencies = Vec::new();
    // Each ranking's queries carry numbers of their own (from 0, 2 and 3
    // million; the model's own latency takes them from 1 million), so none
    // is answered from anima-ai's cache of a run before.
    for (ranking, first) in [
        (Ranking::Words, 0),
        (Ranking::Meaning, 2_000_000),
        (Ranking::Fused, 3_000_000),
    ] {
        latencies.push(
            search_latency(
                &scale.indexer,
                &texts,
                ranking,
                first,
                chunks_wanted,
                options,
            )
            .await?,
        );
    }
    let search = latencies.last().cloned().context("no latency measured")?;
    latencies.push(embed_latency(&mut ai_client, &texts, options).await?);
    let recall = graph_recall(&scale.indexer, &scale.base, &model)?;
    notes.push(format!(
        "graph recall@10 against exact search: {recall:.3} over {RECALL_QUERIES} vectors drawn like the index's (target ≥ 0.95)"
    ));
    notes.push(format!(
        "query p99 {:.1} ms at {chunks_wanted} chunks (target < 50 ms)",
        search.p99_us as f64 / 1e3
    ));
    Ok(Outcome {
        scenario: "library",
        ratio: Some((
            format!("nDCG@10 fused / best ranking alone ({model})"),
            fused.ndcg10 / best_alone.max(f64::MIN_POSITIVE),
            "> 1",
        )),
        notes,
        stats: latencies,
    })
}

/// The model's own latency for one query (what a search by meaning waits
/// for first), over the same gRPC connection.
async fn embed_latency(
    ai_client: &mut AnimaAiServiceClient<Channel>,
    texts: &Arc<Vec<String>>,
    options: &Options,
) -> anyhow::Result<anima_bench::load::Stats> {
    let seen = Arc::new(AtomicU64::new(1_000_000));
    let texts = texts.clone();
    measure(
        "Embed, one query",
        vec![ai_client.clone()],
        options.duration(),
        move |client: &mut AnimaAiServiceClient<Channel>| {
            let n = seen.fetch_add(1, Ordering::Relaxed) as usize;
            let query = format!("{} {n}", texts[n % texts.len()]);
            let mut client = client.clone();
            async move {
                client
                    .embed(pb::EmbedRequest { texts: vec![query] })
                    .await
                    .map(drop)
                    .map_err(anyhow::Error::from)
            }
        },
    )
    .await
}

/// One client searching for `options.duration()`, each query new to the
/// model (a number follows it), so its embedding is part of the latency.
async fn search_latency(
    indexer: &Arc<Indexer>,
    texts: &Arc<Vec<String>>,
    ranking: Ranking,
    first: u64,
    chunks: usize,
    options: &Options,
) -> anyhow::Result<anima_bench::load::Stats> {
    let seen = Arc::new(AtomicU64::new(first));
    let indexer = indexer.clone();
    let texts = texts.clone();
    measure(
        &format!("search by {ranking:?}, {chunks} chunks"),
        vec![(); 1],
        options.duration(),
        move |_: &mut ()| {
            let indexer = indexer.clone();
            let texts = texts.clone();
            let n = seen.fetch_add(1, Ordering::Relaxed) as usize;
            async move {
                let query = format!("{} {n}", texts[n % texts.len()]);
                indexer
                    .search(&query, &scope(), 10, ranking)
                    .await
                    .map(drop)
                    .map_err(anyhow::Error::from)
            }
        },
    )
    .await
}

fn document_type(document: &Document) -> anyhow::Result<DocumentType> {
    document
        .r#type
        .parse()
        .with_context(|| format!("document {}", document.id))
}

fn indexed(document: &Document) -> IndexedDocument {
    IndexedDocument {
        id: document.id.clone(),
        project_id: PROJECT.into(),
        work_item_id: None,
        doc_type: document.r#type.clone(),
        title: document.title.clone(),
    }
}

fn scope() -> SearchScope {
    SearchScope {
        project_ids: [PROJECT.into()].into(),
        ..SearchScope::default()
    }
}

/// Waits until every chunk has a vector; the model's name.
async fn embedded(indexer: &Indexer) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        let (stats, model) = indexer.stats().await?;
        if let Some(model) = model.filter(|_| stats.embedded == stats.chunks) {
            return Ok(model);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "vectors were not computed in time"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Mean recall@5 and nDCG@10 over a set of queries, overall and per kind.
#[derive(Default, Clone, Copy)]
struct Relevance {
    recall5: f64,
    ndcg10: f64,
    identifier: (f64, f64),
    paraphrase: (f64, f64),
    german: (f64, f64),
}

impl std::fmt::Display for Relevance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "recall@5 {:.3}, nDCG@10 {:.3} (identifier {:.3}/{:.3}, paraphrase {:.3}/{:.3}, German {:.3}/{:.3})",
            self.recall5,
            self.ndcg10,
            self.identifier.0,
            self.identifier.1,
            self.paraphrase.0,
            self.paraphrase.1,
            self.german.0,
            self.german.1
        )
    }
}

async fn relevance(
    indexer: &Indexer,
    queries: &[Query],
    ranking: Ranking,
) -> anyhow::Result<Relevance> {
    let mut per_kind: HashMap<&str, Vec<(f64, f64)>> = HashMap::new();
    for query in queries {
        let found = indexer.search(&query.query, &scope(), 10, ranking).await?;
        let ranked: Vec<&str> = found
            .hits
            .iter()
            .map(|hit| hit.document_id.as_str())
            .collect();
        let relevant = |id: &str| query.relevant.iter().any(|wanted| wanted == id);
        let recall5 = ranked.iter().take(5).filter(|id| relevant(id)).count() as f64
            / query.relevant.len() as f64;
        let dcg: f64 = ranked
            .iter()
            .enumerate()
            .filter(|(_, id)| relevant(id))
            .map(|(rank, _)| 1.0 / (rank as f64 + 2.0).log2())
            .sum();
        let ideal: f64 = (0..query.relevant.len().min(10))
            .map(|rank| 1.0 / (rank as f64 + 2.0).log2())
            .sum();
        per_kind
            .entry(query.kind.as_str())
            .or_default()
            .push((recall5, dcg / ideal));
    }
    // `+ 0.0`: a sum of floats starts at -0.0, shown as "-0.000".
    let mean = |scores: &[(f64, f64)]| {
        let n = scores.len().max(1) as f64;
        (
            scores.iter().map(|s| s.0).sum::<f64>() / n + 0.0,
            scores.iter().map(|s| s.1).sum::<f64>() / n + 0.0,
        )
    };
    let all: Vec<(f64, f64)> = per_kind.values().flatten().copied().collect();
    let (recall5, ndcg10) = mean(&all);
    let kind = |name: &str| per_kind.get(name).map_or((0.0, 0.0), |scores| mean(scores));
    Ok(Relevance {
        recall5,
        ndcg10,
        identifier: kind("identifier"),
        paraphrase: kind("paraphrase"),
        german: kind("german"),
    })
}

/// The index at scale, ready for queries.
struct Scale {
    indexer: Arc<Indexer>,
    /// The sample's real vectors, which the others were made from.
    base: Vec<Vec<f32>>,
    notes: Vec<String>,
}

impl Scale {
    async fn run(
        dir: &tempfile::TempDir,
        documents: &[Document],
        tokenizer: Option<&std::path::Path>,
        ai: &Embeddings,
        ai_client: &mut AnimaAiServiceClient<Channel>,
        chunks_wanted: usize,
    ) -> anyhow::Result<Self> {
        let mut notes = Vec::new();
        let store: Arc<dyn IndexStore> = index::open(&format!(
            "sqlite://{}",
            dir.path().join("scale.db").display()
        ))
        .await?;
        // No embedder runs yet: vectors are set below.
        let indexer = Indexer::new(
            store.clone(),
            Chunker::new(tokenizer),
            Some(ai.clone()),
            None,
        );
        let mut rng = StdRng::seed_from_u64(7);
        let started = Instant::now();
        let mut chunks = 0;
        let mut made = 0;
        while chunks < chunks_wanted {
            // A long document of twelve of the set's texts, as a team's
            // specs and logs run.
            let text: Vec<&str> = (0..12)
                .map(|_| {
                    documents[rng.random_range(0..documents.len())]
                        .text
                        .as_str()
                })
                .collect();
            let document = IndexedDocument {
                id: format!("scale-{made}"),
                ..indexed(&documents[made % documents.len()])
            };
            chunks += indexer
                .index(document, "text/markdown", text.join("\n\n"))
                .await?
                .chunks;
            made += 1;
        }
        let seconds = started.elapsed().as_secs_f64();
        notes.push(format!(
            "splitting and storing: {chunks} chunks of {made} documents in {seconds:.1} s, {:.0} chunks/s",
            chunks as f64 / seconds
        ));

        // The model's own throughput, on a sample.
        let sample = store.pending_chunks(None, EMBEDDED_SAMPLE as i64).await?;
        let started = Instant::now();
        let mut base = Vec::new();
        let mut model = String::new();
        for batch in sample.chunks(EMBED_BATCH) {
            let answer = ai_client
                .embed(pb::EmbedRequest {
                    texts: batch.iter().map(PendingChunk::embedding_text).collect(),
                })
                .await?
                .into_inner();
            model = answer.model;
            let vectors: Vec<(i64, Vec<f32>)> = batch
                .iter()
                .zip(answer.vectors)
                .map(|(chunk, vector)| (chunk.place.seq, vector.values))
                .collect();
            store.set_vectors(&model, &vectors).await?;
            base.extend(vectors.into_iter().map(|(_, vector)| vector));
        }
        let seconds = started.elapsed().as_secs_f64();
        notes.push(format!(
            "embedding ({model}, batches of {EMBED_BATCH}): {} chunks in {seconds:.1} s, {:.1} chunks/s",
            base.len(),
            base.len() as f64 / seconds
        ));

        // The rest: between two real vectors each, with noise.
        loop {
            let pending = store.pending_chunks(Some(&model), 2_000).await?;
            if pending.is_empty() {
                break;
            }
            let vectors: Vec<(i64, Vec<f32>)> = pending
                .iter()
                .map(|chunk| {
                    let a = &base[rng.random_range(0..base.len())];
                    let b = &base[rng.random_range(0..base.len())];
                    (chunk.place.seq, between(a, b, &mut rng))
                })
                .collect();
            store.set_vectors(&model, &vectors).await?;
        }

        let before = anima_bench::memory_kib("self")?.0;
        let started = Instant::now();
        tokio::spawn(indexer.clone().embed_forever());
        while indexer.vectors().len() < chunks
            || indexer.vectors().model().as_deref() != Some(&model)
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        notes.push(format!(
            "vector graph of {chunks} vectors built in {:.1} s; resident memory {:.0} MiB before, {:.0} MiB after (the process holds the model too)",
            started.elapsed().as_secs_f64(),
            before as f64 / 1024.0,
            anima_bench::memory_kib("self")?.0 as f64 / 1024.0
        ));
        // What a restart costs with the graph saved.
        let snapshot = dir.path().join("vectors");
        let started = Instant::now();
        indexer.vectors().save(&*store, &snapshot).await?;
        let saved = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let reloaded = anima_library::vectors::Vectors::new();
        let opened = reloaded
            .open(&*store, &model, base[0].len(), Some(&snapshot))
            .await?;
        anyhow::ensure!(
            opened == anima_library::vectors::Opened::Loaded && reloaded.len() == chunks,
            "the saved graph did not load whole"
        );
        notes.push(format!(
            "vector graph saved in {saved:.1} s, loaded at start in {:.1} s (instead of being built)",
            started.elapsed().as_secs_f64()
        ));
        Ok(Self {
            indexer,
            base,
            notes,
        })
    }
}

/// A point on the way from `a` to `b` (uniformly placed), plus noise
/// (each dimension a sum of four uniform draws, near enough to Gaussian),
/// normalised: copies of a few hundred real vectors with noise alone would
/// make clusters of near-equal neighbours that no exact top 10 separates.
fn between(a: &[f32], b: &[f32], rng: &mut StdRng) -> Vec<f32> {
    let share: f32 = rng.random();
    let mut mixed: Vec<f32> = a
        .iter()
        .zip(b)
        .map(|(a, b)| {
            let noise: f32 = (0..4).map(|_| rng.random::<f32>() - 0.5).sum();
            share * a + (1.0 - share) * b + 0.03 * noise
        })
        .collect();
    let norm = mixed
        .iter()
        .map(|v| v * v)
        .sum::<f32>()
        .sqrt()
        .max(f32::MIN_POSITIVE);
    mixed.iter_mut().for_each(|v| *v /= norm);
    mixed
}

/// How many of exact search's 10 nearest the graph finds, on average,
/// for vectors drawn like the index's own (each between two of the
/// sample's real vectors) but not in it: real queries against vectors
/// made this way would be farther from all of them than from real
/// chunks, where many neighbours tie.
fn graph_recall(indexer: &Indexer, base: &[Vec<f32>], model: &str) -> anyhow::Result<f64> {
    let mut rng = StdRng::seed_from_u64(11);
    let mut total = 0.0;
    for _ in 0..RECALL_QUERIES {
        let a = &base[rng.random_range(0..base.len())];
        let b = &base[rng.random_range(0..base.len())];
        let vector = between(a, b, &mut rng);
        let graph = indexer
            .vectors()
            .search(model, &vector, &scope(), 10)?
            .context("no graph for the model")?;
        let exact = indexer
            .vectors()
            .exact_search(model, &vector, 10)?
            .context("no graph for the model")?;
        let found = graph
            .iter()
            .filter(|(key, _)| exact.iter().any(|(wanted, _)| wanted == key))
            .count();
        total += found as f64 / exact.len().max(1) as f64;
    }
    Ok(total / RECALL_QUERIES as f64)
}
