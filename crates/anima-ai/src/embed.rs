//! Sentence vectors: all-MiniLM-L6-v2 run by candle from local files, or a
//! lexical stand-in when the files are not there.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Mutex, mpsc},
};

use anima_core::text::words;
use anyhow::Context;
use candle_core::{Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config, DTYPE};
use tokenizers::{PaddingParams, Tokenizer, TruncationParams};

/// Dimensions of lexical vectors: wide enough that unrelated words rarely
/// share a bucket. (They are not comparable with model vectors anyway;
/// stored vectors carry the name of the embedder that made them.)
pub const LEXICAL_DIMENSIONS: usize = 4096;

/// Tokens per text; MiniLM was trained on 256, longer input is cut.
const MAX_TOKENS: usize = 256;

/// Texts per forward pass: bounds the memory of one batch.
const BATCH: usize = 32;

/// Vectors kept for texts seen before. ClassifyMail compares every mail
/// with the same candidates' titles and messages, so without a cache each
/// mail would pay for embedding them all again. About 1.6 KiB each.
const CACHE_ENTRIES: usize = 8192;

/// The files of a sentence-transformers model directory.
const MODEL_FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

/// Turns texts into L2-normalised vectors.
pub enum Embedder {
    /// A BERT sentence-embedding model (masked mean pooling).
    Model(Box<SentenceModel>),
    /// Hashed word and bigram counts, for machines without model files.
    Lexical,
}

impl Embedder {
    /// The model in `dir` or, when its files are missing, the lexical
    /// fallback (logged once, here). A model whose files are present but
    /// broken is an error: silently answering worse would hide it.
    pub fn load_or_fallback(dir: Option<&Path>) -> anyhow::Result<Self> {
        let Some(dir) = dir else {
            tracing::warn!("no model directory configured; using lexical vectors");
            return Ok(Embedder::Lexical);
        };
        if let Some(missing) = MODEL_FILES.iter().find(|file| !dir.join(file).is_file()) {
            tracing::warn!(
                dir = %dir.display(),
                missing,
                "sentence model files not found (scripts/setup-debian installs them); using lexical vectors"
            );
            return Ok(Embedder::Lexical);
        }
        Ok(Embedder::Model(Box::new(SentenceModel::load(dir)?)))
    }

    /// The name callers record as "the model that answered".
    pub fn name(&self) -> &str {
        match self {
            Embedder::Model(model) => &model.name,
            Embedder::Lexical => "lexical-hash-4096",
        }
    }

    /// One vector per text, in order.
    pub fn embed(&self, texts: &[&str]) -> anyhow::Result<Vec<Vec<f32>>> {
        match self {
            Embedder::Model(model) => model.embed(texts),
            Embedder::Lexical => Ok(texts.iter().map(|text| lexical_vector(text)).collect()),
        }
    }
}

/// A loaded sentence-transformers BERT model and its tokenizer, run by
/// one thread of its own: texts that callers ask for at the same time go
/// through the model in one forward pass, which costs little more than
/// one text alone (one pass per caller would also contend for the same
/// cores).
pub struct SentenceModel {
    name: String,
    jobs: mpsc::Sender<Job>,
    cache: Mutex<HashMap<String, Vec<f32>>>,
}

/// Texts for the model thread and where their vectors go.
struct Job {
    texts: Vec<String>,
    reply: mpsc::SyncSender<anyhow::Result<Vec<Vec<f32>>>>,
}

impl SentenceModel {
    fn load(dir: &Path) -> anyhow::Result<Self> {
        let file = |name: &str| -> PathBuf { dir.join(name) };
        let config: Config = serde_json::from_str(
            &std::fs::read_to_string(file("config.json")).context("reading config.json")?,
        )
        .context("parsing config.json")?;
        let mut tokenizer = Tokenizer::from_file(file("tokenizer.json"))
            .map_err(|err| anyhow::anyhow!("loading tokenizer.json: {err}"))?;
        tokenizer.with_padding(Some(PaddingParams::default()));
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..Default::default()
            }))
            .map_err(|err| anyhow::anyhow!("tokenizer truncation: {err}"))?;
        let device = Device::Cpu;
        // The safe loader reads the file into memory; the mmap loader is
        // `unsafe`, which this workspace forbids.
        let tensors = candle_core::safetensors::load(file("model.safetensors"), &device)
            .context("loading model.safetensors")?;
        let model = BertModel::load(VarBuilder::from_tensors(tensors, DTYPE, &device), &config)
            .context("building the BERT model")?;
        let name = dir
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_else(|| "sentence-model".into());
        tracing::info!(model = %name, dir = %dir.display(), "sentence model loaded");
        let (jobs, queue) = mpsc::channel();
        std::thread::Builder::new()
            .name("anima-embed".into())
            .spawn(move || run_model(&model, &tokenizer, &queue))
            .context("starting the embedding thread")?;
        Ok(Self {
            name,
            jobs,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// Vectors from the cache where it has them; the rest computed by the
    /// model thread and remembered.
    fn embed(&self, texts: &[&str]) -> anyhow::Result<Vec<Vec<f32>>> {
        let cached: Vec<Option<Vec<f32>>> = {
            let cache = self
                .cache
                .lock()
                .map_err(|_| anyhow::anyhow!("embedding cache poisoned"))?;
            texts.iter().map(|text| cache.get(*text).cloned()).collect()
        };
        let missing: Vec<&str> = texts
            .iter()
            .zip(&cached)
            .filter(|(_, vector)| vector.is_none())
            .map(|(text, _)| *text)
            .collect();
        let computed = if missing.is_empty() {
            Vec::new()
        } else {
            let (reply, answer) = mpsc::sync_channel(1);
            let stopped = || anyhow::anyhow!("the embedding thread stopped");
            self.jobs
                .send(Job {
                    texts: missing.iter().map(|text| (*text).to_owned()).collect(),
                    reply,
                })
                .map_err(|_| stopped())?;
            answer.recv().map_err(|_| stopped())??
        };
        {
            let mut cache = self
                .cache
                .lock()
                .map_err(|_| anyhow::anyhow!("embedding cache poisoned"))?;
            if cache.len() + computed.len() > CACHE_ENTRIES {
                cache.clear();
            }
            for (text, vector) in missing.iter().zip(&computed) {
                cache.insert((*text).to_owned(), vector.clone());
            }
        }
        let mut computed = computed.into_iter();
        cached
            .into_iter()
            .map(|vector| match vector {
                Some(vector) => Ok(vector),
                None => computed
                    .next()
                    .ok_or_else(|| anyhow::anyhow!("fewer vectors than texts")),
            })
            .collect()
    }
}

/// The model thread: takes every job waiting (up to a batch of texts),
/// runs their texts through the model together and answers each job with
/// its own vectors. Ends when the model is dropped.
fn run_model(model: &BertModel, tokenizer: &Tokenizer, queue: &mpsc::Receiver<Job>) {
    while let Ok(first) = queue.recv() {
        let mut texts = first.texts.len();
        let mut jobs = vec![first];
        while texts < BATCH {
            match queue.try_recv() {
                Ok(job) => {
                    texts += job.texts.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        let all: Vec<&str> = jobs
            .iter()
            .flat_map(|job| job.texts.iter().map(String::as_str))
            .collect();
        let vectors = all
            .chunks(BATCH)
            .map(|batch| embed_batch(model, tokenizer, batch))
            .collect::<anyhow::Result<Vec<_>>>()
            .map(|batches| batches.concat());
        match vectors {
            Ok(vectors) => {
                let mut vectors = vectors.into_iter();
                for job in jobs {
                    let mine = vectors.by_ref().take(job.texts.len()).collect();
                    // A caller that gave up has nothing to receive.
                    let _ = job.reply.send(Ok(mine));
                }
            }
            Err(err) => {
                for job in jobs {
                    let _ = job.reply.send(Err(anyhow::anyhow!("embedding: {err:#}")));
                }
            }
        }
    }
}

fn embed_batch(
    model: &BertModel,
    tokenizer: &Tokenizer,
    texts: &[&str],
) -> anyhow::Result<Vec<Vec<f32>>> {
    let encodings = tokenizer
        .encode_batch(texts.to_vec(), true)
        .map_err(|err| anyhow::anyhow!("tokenizing: {err}"))?;
    let device = &model.device;
    let rows = |pick: fn(&tokenizers::Encoding) -> &[u32]| -> anyhow::Result<Tensor> {
        let rows = encodings
            .iter()
            .map(|encoding| Tensor::new(pick(encoding), device))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Tensor::stack(&rows, 0)?)
    };
    let ids = rows(|encoding| encoding.get_ids())?;
    let type_ids = rows(|encoding| encoding.get_type_ids())?;
    let mask = rows(|encoding| encoding.get_attention_mask())?;
    let hidden = model.forward(&ids, &type_ids, Some(&mask))?;
    // Mean over the real tokens only, as sentence-transformers pools.
    let mask = mask.to_dtype(DTYPE)?.unsqueeze(2)?;
    let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
    let counts = mask.sum(1)?.clamp(1e-9, f64::MAX)?;
    let pooled = summed.broadcast_div(&counts)?;
    let norms = pooled
        .sqr()?
        .sum_keepdim(1)?
        .sqrt()?
        .clamp(1e-12, f64::MAX)?;
    Ok(pooled.broadcast_div(&norms)?.to_vec2::<f32>()?)
}

/// Words that say nothing about which work item a text is about, in the
/// two languages the labelled mail set uses.
fn is_stopword(word: &str) -> bool {
    const STOPWORDS: &[&str] = &[
        "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "from", "has", "have", "i",
        "in", "is", "it", "of", "on", "or", "re", "fw", "fwd", "that", "the", "this", "to", "was",
        "we", "with", "you", "our", "your", "will", "can", "please", "thanks", "hi", "hello",
        "der", "die", "das", "und", "ist", "ein", "eine", "zu", "mit", "von", "den", "im", "auf",
        "für", "nicht", "wir", "ich", "sie", "es", "aw", "wg", "bitte", "danke", "hallo",
    ];
    STOPWORDS.contains(&word)
}

/// Words and adjacent-word pairs hashed into [`LEXICAL_DIMENSIONS`] buckets with
/// sublinear counts, L2-normalised: cosine similarity of two such vectors
/// behaves like TF-weighted term overlap.
fn lexical_vector(text: &str) -> Vec<f32> {
    let mut vector = vec![0f32; LEXICAL_DIMENSIONS];
    let terms: Vec<String> = words(text).filter(|word| !is_stopword(word)).collect();
    let mut add = |term: &str, weight: f32| {
        vector[(fnv1a(term) % LEXICAL_DIMENSIONS as u64) as usize] += weight;
    };
    for term in &terms {
        add(term, 1.0);
    }
    for pair in terms.windows(2) {
        add(&format!("{} {}", pair[0], pair[1]), 0.5);
    }
    for value in &mut vector {
        *value = value.signum() * (1.0 + value.abs()).ln();
    }
    normalize(&mut vector);
    vector
}

/// FNV-1a: a stable hash, so lexical vectors are the same across runs and
/// machines (std's hasher is randomly seeded).
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn normalize(vector: &mut [f32]) {
    let norm = vector.iter().map(|v| v * v).sum::<f32>().sqrt();
    if norm > 0.0 {
        vector.iter_mut().for_each(|v| *v /= norm);
    }
}

/// Cosine similarity of two normalised vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexical_vectors_are_normalised_and_favour_shared_terms() {
        let embedder = Embedder::Lexical;
        let vectors = embedder
            .embed(&[
                "The login page crashes on Safari",
                "Safari crashes when opening the login page",
                "Quarterly invoice for the hosting contract",
                "",
            ])
            .expect("lexical vectors");
        assert!((cosine(&vectors[0], &vectors[0]) - 1.0).abs() < 1e-5);
        assert!(cosine(&vectors[0], &vectors[1]) > cosine(&vectors[0], &vectors[2]));
        assert!(
            vectors[3].iter().all(|v| *v == 0.0),
            "empty text, zero vector"
        );
        assert_eq!(vectors[0].len(), LEXICAL_DIMENSIONS);
    }

    #[test]
    fn missing_model_files_fall_back_to_lexical() {
        let dir = tempfile::tempdir().expect("tempdir");
        let embedder = Embedder::load_or_fallback(Some(dir.path())).expect("fallback");
        assert_eq!(embedder.name(), "lexical-hash-4096");
    }
}
