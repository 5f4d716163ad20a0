//! The vector graph across restarts, with vectors from anima-ai's local
//! model over a real gRPC connection: a start loads the graph saved before
//! when it still holds the database's vectors, and builds it again when it
//! does not.

use std::{path::Path, sync::Arc, time::Duration};

use anima_library::{
    Embeddings, Indexer,
    chunk::Chunker,
    index::{self, IndexStore, IndexedDocument, SearchScope},
    indexer::Ranking,
};

const PROJECT: &str = "0190a000-0000-7000-8000-000000000001";

/// anima-ai on a loopback port of this process.
async fn anima_ai() -> Embeddings {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let service = anima_ai::service(anima_ai::AiConfig::default()).expect("anima-ai");
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            ),
    );
    Embeddings::remote(&format!("http://{address}"), "test").expect("client")
}

/// An indexer over the index in `dir`, its embedder running.
async fn start(dir: &Path, ai: &Embeddings) -> (Arc<Indexer>, tokio::task::JoinHandle<()>) {
    let store: Arc<dyn IndexStore> =
        index::open(&format!("sqlite://{}", dir.join("index.db").display()))
            .await
            .expect("index");
    let indexer = Indexer::new(
        store,
        Chunker::new(None),
        Some(ai.clone()),
        Some(dir.join("vectors")),
    );
    let embedder = tokio::spawn(indexer.clone().embed_forever());
    (indexer, embedder)
}

/// Waits until every chunk's vector is in the graph.
async fn settled(indexer: &Indexer) {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let (stats, model) = indexer.stats().await.expect("stats");
        if model.is_some()
            && stats.embedded == stats.chunks
            && indexer.vectors().len() as i64 == stats.chunks
        {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not settled: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn index(indexer: &Indexer, id: &str, title: &str, text: &str) {
    indexer
        .index(
            IndexedDocument {
                id: id.into(),
                project_id: PROJECT.into(),
                work_item_id: None,
                doc_type: "text".into(),
                title: title.into(),
            },
            "text/plain",
            text.into(),
        )
        .await
        .expect("index");
}

async fn best_by_meaning(indexer: &Indexer, query: &str) -> Option<String> {
    let scope = SearchScope {
        project_ids: [PROJECT.into()].into(),
        ..SearchScope::default()
    };
    indexer
        .search(query, &scope, 1, Ranking::Meaning)
        .await
        .expect("search")
        .hits
        .first()
        .map(|hit| hit.document_id.clone())
}

fn saved_at(dir: &Path) -> std::time::SystemTime {
    std::fs::metadata(dir.join("vectors/graph.json"))
        .and_then(|meta| meta.modified())
        .expect("the graph was saved")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_graph_is_loaded_when_current_and_built_again_when_not() {
    let dir = tempfile::tempdir().expect("dir");
    let ai = anima_ai().await;
    let (first, embedder) = start(dir.path(), &ai).await;
    index(
        &first,
        "cake",
        "Apple cake",
        "Peel the apples, knead the dough and bake it for an hour.",
    )
    .await;
    index(
        &first,
        "vpn",
        "VPN setup",
        "Install the client, import the profile and connect to the office network.",
    )
    .await;
    settled(&first).await;
    // The graph is saved once built (before the first vectors were set, or
    // with them): wait for a save that holds both.
    embedder.abort();
    first
        .vectors()
        .save(
            &*index::open(&format!(
                "sqlite://{}",
                dir.path().join("index.db").display()
            ))
            .await
            .expect("index"),
            &dir.path().join("vectors"),
        )
        .await
        .expect("save");
    let saved = saved_at(dir.path());

    // A start with nothing changed loads it: it is not saved again.
    let (second, embedder) = start(dir.path(), &ai).await;
    settled(&second).await;
    assert_eq!(saved_at(dir.path()), saved, "loaded, not built and saved");
    assert_eq!(
        best_by_meaning(&second, "baking a dessert with fruit")
            .await
            .as_deref(),
        Some("cake")
    );
    // A document added while the graph goes unsaved...
    index(
        &second,
        "leave",
        "Holidays",
        "Employees take up to thirty days of paid leave a year.",
    )
    .await;
    settled(&second).await;
    embedder.abort();

    // ...makes the saved graph stale: the next start builds it again.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (third, embedder) = start(dir.path(), &ai).await;
    settled(&third).await;
    assert_ne!(saved_at(dir.path()), saved, "built and saved again");
    assert_eq!(third.vectors().len(), 3);
    assert_eq!(
        best_by_meaning(&third, "how much vacation do staff get")
            .await
            .as_deref(),
        Some("leave")
    );
    embedder.abort();
}
