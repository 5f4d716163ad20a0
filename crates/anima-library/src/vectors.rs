//! The vector index: the vectors of one embedding model in an HNSW graph
//! (usearch), built from the index database when the library starts or the
//! model changes, then kept in step as vectors are set and chunks go. The
//! database stays the truth; this is its searchable copy in memory.
//!
//! A search whose scope holds few vectors compares the query with each of
//! them (exact); beyond [`EXACT_UP_TO`] it walks the graph, skipping
//! vectors out of scope.

use std::{
    collections::{HashMap, HashSet},
    path::Path,
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, Ordering},
    },
};

use anima_core::DomainError;
use serde::{Deserialize, Serialize};
use usearch::{Index, IndexOptions, MetricKind, ScalarKind};

use crate::index::{ChunkPlace, Fingerprint, IndexStore, SearchScope};

/// The graph's file in the snapshot directory, and what it holds.
const GRAPH_FILE: &str = "graph.usearch";
const SNAPSHOT_FILE: &str = "graph.json";

/// What a saved graph holds: it is used only while the database's vectors
/// of its model still have its fingerprint.
#[derive(Serialize, Deserialize, PartialEq)]
struct Snapshot {
    model: String,
    dimensions: usize,
    fingerprint: Fingerprint,
}

/// Vectors in scope up to which a search compares them all.
pub const EXACT_UP_TO: usize = 10_000;

/// Vectors read from the database per query while building.
const BUILD_PAGE: i64 = 2_000;

/// The graph's shape: links per node, and candidates kept while adding
/// (HNSW's `M` and `efConstruction`) and while searching (`ef`). Above
/// usearch's defaults (16, 128, 64): the library's graph is built rarely
/// and saved, searches wait for the query's embedding far longer than for
/// the graph, and recall against exact search at 100,000 vectors (in
/// docs/benchmarks.md) is what counts.
const CONNECTIVITY: usize = 32;
const EXPANSION_ADD: usize = 200;
const EXPANSION_SEARCH: usize = 400;

/// Where a vector's chunk belongs (shared strings: a project's thousands
/// of chunks hold its id once).
struct Place {
    project_id: Arc<str>,
    work_item_id: Option<Arc<str>>,
    doc_type: Arc<str>,
}

impl Place {
    fn admitted_by(&self, scope: &SearchScope) -> bool {
        scope.admits(
            &self.project_id,
            self.work_item_id.as_deref(),
            &self.doc_type,
        )
    }
}

/// The graph of one model's vectors and their places.
struct Graph {
    model: String,
    index: Index,
    places: HashMap<u64, Place>,
    names: HashSet<Arc<str>>,
}

impl Graph {
    fn new(model: &str, dimensions: usize) -> Result<Self, DomainError> {
        let index = Index::new(&IndexOptions {
            dimensions,
            metric: MetricKind::Cos,
            quantization: ScalarKind::F32,
            connectivity: CONNECTIVITY,
            expansion_add: EXPANSION_ADD,
            expansion_search: EXPANSION_SEARCH,
            multi: false,
        })
        .map_err(failed)?;
        Ok(Self {
            model: model.to_owned(),
            index,
            places: HashMap::new(),
            names: HashSet::new(),
        })
    }

    fn name(&mut self, name: &str) -> Arc<str> {
        if let Some(name) = self.names.get(name) {
            return name.clone();
        }
        let name: Arc<str> = name.into();
        self.names.insert(name.clone());
        name
    }

    /// Records where a vector's chunk belongs.
    fn place(&mut self, place: &ChunkPlace) {
        let key = place.seq as u64;
        let place = Place {
            project_id: self.name(&place.project_id),
            work_item_id: place.work_item_id.as_deref().map(|id| self.name(id)),
            doc_type: self.name(&place.doc_type),
        };
        self.places.insert(key, place);
    }

    fn add(&mut self, place: &ChunkPlace, vector: &[f32]) -> Result<(), DomainError> {
        if vector.len() != self.index.dimensions() {
            return Err(DomainError::internal(format!(
                "a vector of {} dimensions for an index of {}",
                vector.len(),
                self.index.dimensions()
            )));
        }
        let key = place.seq as u64;
        if self.index.contains(key) {
            self.index.remove(key).map_err(failed)?;
        }
        if self.index.size() + 1 > self.index.capacity() {
            let capacity = (self.index.capacity() * 2).max(1024);
            self.index.reserve(capacity).map_err(failed)?;
        }
        self.index.add(key, vector).map_err(failed)?;
        self.place(place);
        Ok(())
    }
}

/// How [`Vectors::open`] came by the graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opened {
    /// From the saved graph.
    Loaded,
    /// From the database's vectors.
    Built,
}

/// The vector index. Shared by the embedder (which writes) and searches.
#[derive(Default)]
pub struct Vectors {
    graph: Arc<RwLock<Option<Graph>>>,
    /// Whether it changed since it was last saved.
    changed: AtomicBool,
}

impl Vectors {
    /// An index without a model yet: searches by meaning find nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// The model whose vectors it holds, once built.
    pub fn model(&self) -> Option<String> {
        self.read().as_ref().map(|graph| graph.model.clone())
    }

    /// How many vectors it holds.
    pub fn len(&self) -> usize {
        self.read().as_ref().map_or(0, |graph| graph.places.len())
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Option<Graph>> {
        self.graph
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Option<Graph>> {
        self.graph
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Builds the graph of `model`'s vectors (of `dimensions` each) from
    /// `store` and puts it in place of the one before. The caller keeps
    /// writes out meanwhile.
    async fn build(
        &self,
        store: &dyn IndexStore,
        model: &str,
        dimensions: usize,
    ) -> Result<(), DomainError> {
        let mut graph = Graph::new(model, dimensions)?;
        let mut after = 0;
        loop {
            let page = store.vectors(model, after, BUILD_PAGE).await?;
            let Some((last, _)) = page.last() else { break };
            after = last.seq;
            let wanted = graph.index.size() + page.len();
            if wanted > graph.index.capacity() {
                graph
                    .index
                    .reserve(wanted.next_power_of_two())
                    .map_err(failed)?;
            }
            // Adding is CPU work (a graph search per vector).
            for (place, vector) in &page {
                graph.add(place, vector)?;
            }
            tokio::task::yield_now().await;
        }
        tracing::info!(model, vectors = graph.places.len(), "vector index built");
        *self.write() = Some(graph);
        self.changed.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// The graph of `model`'s vectors: the one saved in `snapshot` when it
    /// holds exactly the database's vectors of the model, else built from
    /// `store` (and saved there); which of the two. The caller keeps
    /// writes out meanwhile.
    pub async fn open(
        &self,
        store: &dyn IndexStore,
        model: &str,
        dimensions: usize,
        snapshot: Option<&Path>,
    ) -> Result<Opened, DomainError> {
        if let Some(dir) = snapshot {
            match self.load(store, model, dimensions, dir).await {
                Ok(true) => return Ok(Opened::Loaded),
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(%error, dir = %dir.display(), "the saved vector graph could not be read; building it again");
                }
            }
        }
        self.build(store, model, dimensions).await?;
        if let Some(dir) = snapshot {
            self.save(store, dir).await?;
        }
        Ok(Opened::Built)
    }

    /// Loads the graph saved in `dir` if it is the current one of `model`.
    async fn load(
        &self,
        store: &dyn IndexStore,
        model: &str,
        dimensions: usize,
        dir: &Path,
    ) -> Result<bool, DomainError> {
        let Ok(saved) = std::fs::read(dir.join(SNAPSHOT_FILE)) else {
            return Ok(false);
        };
        let Ok(saved) = serde_json::from_slice::<Snapshot>(&saved) else {
            return Ok(false);
        };
        let current = Snapshot {
            model: model.to_owned(),
            dimensions,
            fingerprint: store.fingerprint(model).await?,
        };
        if saved != current {
            return Ok(false);
        }
        let file = dir.join(GRAPH_FILE);
        let mut graph = tokio::task::spawn_blocking({
            let model = model.to_owned();
            move || -> Result<Graph, DomainError> {
                let graph = Graph::new(&model, dimensions)?;
                graph.index.load(&file.to_string_lossy()).map_err(failed)?;
                Ok(graph)
            }
        })
        .await
        .map_err(failed)??;
        let mut after = 0;
        loop {
            let page = store.places(model, after, BUILD_PAGE).await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            for place in &page {
                graph.place(place);
            }
        }
        if graph.places.len() != graph.index.size() {
            return Ok(false);
        }
        graph.index.change_expansion_search(EXPANSION_SEARCH);
        tracing::info!(model, vectors = graph.places.len(), "vector index loaded");
        *self.write() = Some(graph);
        self.changed.store(false, Ordering::Relaxed);
        Ok(true)
    }

    /// Saves the graph in `dir` (created, this user's alone) with the
    /// fingerprint of what it holds. The caller keeps writes out meanwhile.
    pub async fn save(&self, store: &dyn IndexStore, dir: &Path) -> Result<(), DomainError> {
        let Some((model, dimensions)) = self
            .read()
            .as_ref()
            .map(|graph| (graph.model.clone(), graph.index.dimensions()))
        else {
            return Ok(());
        };
        // A graph saved by a process that lost the index to another would
        // describe itself with the other's fingerprint.
        store.check_writer().await?;
        let snapshot = Snapshot {
            fingerprint: store.fingerprint(&model).await?,
            model,
            dimensions,
        };
        let json = serde_json::to_vec(&snapshot).map_err(failed)?;
        let graph = self.graph.clone();
        let dir = dir.to_owned();
        tokio::task::spawn_blocking(move || -> Result<(), DomainError> {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(failed)?;
            // Without its description a graph is never used: a crash
            // between the two files leaves it to be built again.
            match std::fs::remove_file(dir.join(SNAPSHOT_FILE)) {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                    return Err(failed(error));
                }
                _ => {}
            }
            let partial = dir.join(format!("{GRAPH_FILE}.partial"));
            {
                let guard = graph
                    .read()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                let Some(graph) = guard.as_ref() else {
                    return Ok(());
                };
                graph
                    .index
                    .save(&partial.to_string_lossy())
                    .map_err(failed)?;
            }
            std::fs::rename(&partial, dir.join(GRAPH_FILE)).map_err(failed)?;
            let partial = dir.join(format!("{SNAPSHOT_FILE}.partial"));
            std::fs::write(&partial, json).map_err(failed)?;
            std::fs::rename(&partial, dir.join(SNAPSHOT_FILE)).map_err(failed)
        })
        .await
        .map_err(failed)??;
        self.changed.store(false, Ordering::Relaxed);
        Ok(())
    }

    /// Whether the graph changed since it was built, loaded or saved.
    pub fn changed(&self) -> bool {
        self.changed.load(Ordering::Relaxed)
    }

    /// Adds vectors of `model` (ignored when the index holds another).
    pub fn add(&self, model: &str, vectors: &[(ChunkPlace, Vec<f32>)]) -> Result<(), DomainError> {
        let mut guard = self.write();
        let Some(graph) = guard.as_mut().filter(|graph| graph.model == model) else {
            return Ok(());
        };
        for (place, vector) in vectors {
            graph.add(place, vector)?;
        }
        self.changed.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Removes the vectors of these chunks.
    pub fn remove(&self, seqs: &[i64]) -> Result<(), DomainError> {
        let mut guard = self.write();
        let Some(graph) = guard.as_mut() else {
            return Ok(());
        };
        for seq in seqs {
            let key = *seq as u64;
            if graph.places.remove(&key).is_some() {
                graph.index.remove(key).map_err(failed)?;
                self.changed.store(true, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// The keys of up to `limit` chunks in `scope` nearest to `query`,
    /// nearest first, with their cosine similarity; `None` when the index
    /// holds no vectors of `model` (the query's vector is not comparable
    /// with them).
    pub fn search(
        &self,
        model: &str,
        query: &[f32],
        scope: &SearchScope,
        limit: usize,
    ) -> Result<Option<Vec<(i64, f32)>>, DomainError> {
        let guard = self.read();
        let Some(graph) = guard.as_ref().filter(|graph| graph.model == model) else {
            return Ok(None);
        };
        if graph.places.is_empty() {
            return Ok(Some(Vec::new()));
        }
        if query.len() != graph.index.dimensions() {
            return Ok(None);
        }
        let in_scope: Vec<u64> = graph
            .places
            .iter()
            .filter(|(_, place)| place.admitted_by(scope))
            .map(|(key, _)| *key)
            .take(EXACT_UP_TO + 1)
            .collect();
        if in_scope.len() <= EXACT_UP_TO {
            return exact(graph, query, &in_scope, limit).map(Some);
        }
        let matches = graph
            .index
            .filtered_search(query, limit, |key| {
                graph
                    .places
                    .get(&key)
                    .is_some_and(|place| place.admitted_by(scope))
            })
            .map_err(failed)?;
        Ok(Some(
            matches
                .keys
                .iter()
                .zip(&matches.distances)
                .map(|(key, distance)| (*key as i64, 1.0 - distance))
                .collect(),
        ))
    }

    /// The nearest `limit` of every vector in the index by exact search,
    /// for measuring the graph's recall against it.
    pub fn exact_search(
        &self,
        model: &str,
        query: &[f32],
        limit: usize,
    ) -> Result<Option<Vec<(i64, f32)>>, DomainError> {
        let guard = self.read();
        let Some(graph) = guard.as_ref().filter(|graph| graph.model == model) else {
            return Ok(None);
        };
        let keys: Vec<u64> = graph.places.keys().copied().collect();
        exact(graph, query, &keys, limit).map(Some)
    }
}

/// The `limit` keys among `keys` whose vectors are nearest to `query`,
/// nearest first, with their cosine similarity.
fn exact(
    graph: &Graph,
    query: &[f32],
    keys: &[u64],
    limit: usize,
) -> Result<Vec<(i64, f32)>, DomainError> {
    let query_norm = norm(query);
    let mut vector = vec![0.0_f32; graph.index.dimensions()];
    let mut scored: Vec<(f32, u64)> = Vec::with_capacity(keys.len());
    for key in keys {
        if graph.index.get(*key, &mut vector).map_err(failed)? == 0 {
            continue;
        }
        let dot: f32 = vector.iter().zip(query).map(|(a, b)| a * b).sum();
        let cosine = dot / (norm(&vector) * query_norm).max(f32::MIN_POSITIVE);
        scored.push((cosine, *key));
    }
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    Ok(scored
        .into_iter()
        .take(limit)
        .map(|(cosine, key)| (key as i64, cosine))
        .collect())
}

fn norm(vector: &[f32]) -> f32 {
    vector.iter().map(|value| value * value).sum::<f32>().sqrt()
}

/// usearch's failures are the library's own faults.
fn failed(error: impl std::fmt::Display) -> DomainError {
    DomainError::internal(format!("the vector index failed: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place(seq: i64, project: &str) -> ChunkPlace {
        ChunkPlace {
            seq,
            project_id: project.into(),
            work_item_id: None,
            doc_type: "text".into(),
        }
    }

    fn scope(projects: &[&str]) -> SearchScope {
        SearchScope {
            project_ids: projects.iter().map(|id| (*id).to_owned()).collect(),
            ..SearchScope::default()
        }
    }

    #[test]
    fn searches_stay_in_scope_and_follow_removals() {
        let vectors = Vectors::new();
        *vectors.write() = Some(Graph::new("m", 2).expect("graph"));
        vectors
            .add(
                "m",
                &[
                    (place(1, "a"), vec![1.0, 0.0]),
                    (place(2, "a"), vec![0.6, 0.8]),
                    (place(3, "b"), vec![1.0, 0.01]),
                ],
            )
            .expect("added");
        let nearest = |projects: &[&str]| {
            vectors
                .search("m", &[1.0, 0.0], &scope(projects), 10)
                .expect("searched")
                .map(|found| found.into_iter().map(|(key, _)| key).collect::<Vec<_>>())
        };
        assert_eq!(nearest(&["a"]), Some(vec![1, 2]));
        assert_eq!(nearest(&["a", "b"]), Some(vec![1, 3, 2]));
        assert_eq!(nearest(&[]), Some(vec![]));
        vectors.remove(&[1]).expect("removed");
        assert_eq!(nearest(&["a"]), Some(vec![2]));
        // Another model's query vector is not comparable.
        assert_eq!(
            vectors
                .search("other", &[1.0, 0.0], &scope(&["a"]), 10)
                .expect("searched"),
            None
        );
    }
}
