//! The index's conformance suite: the same tests on SQLite and on
//! PostgreSQL (a throw-away database on the test server).

use std::sync::Arc;

use anima_db::testing::TempDatabase;
use anima_library::{
    index::{self, IndexStore, IndexedDocument, Replaced, SearchScope},
    search::Terms,
};

const PROJECT: &str = "0190a000-0000-7000-8000-000000000001";
const OTHER: &str = "0190a000-0000-7000-8000-000000000002";
const ITEM: &str = "0190a000-0000-7000-8000-0000000000aa";

/// An index on a fresh database of each backend.
async fn indexes() -> Vec<(TempDatabase, Arc<dyn IndexStore>)> {
    let mut indexes = Vec::new();
    for db in [TempDatabase::sqlite(), TempDatabase::postgres().await] {
        let store = index::open(&db.url).await.expect("open index");
        indexes.push((db, store));
    }
    indexes
}

fn document(id: &str, project: &str, doc_type: &str, title: &str) -> IndexedDocument {
    IndexedDocument {
        id: id.into(),
        project_id: project.into(),
        work_item_id: None,
        doc_type: doc_type.into(),
        title: title.into(),
    }
}

fn scope(projects: &[&str]) -> SearchScope {
    SearchScope {
        project_ids: projects.iter().map(|id| (*id).to_owned()).collect(),
        ..SearchScope::default()
    }
}

async fn documents_found(store: &dyn IndexStore, query: &str, scope: &SearchScope) -> Vec<String> {
    let seqs = store
        .lexical(&Terms::of(query), scope, 10)
        .await
        .expect("lexical");
    let chunks = store.chunks(&seqs).await.expect("chunks");
    seqs.iter()
        .filter_map(|seq| chunks.iter().find(|chunk| chunk.seq == *seq))
        .map(|chunk| chunk.document_id.clone())
        .collect()
}

#[tokio::test]
async fn words_identifiers_and_scopes_are_found_on_both_backends() {
    for (_db, store) in indexes().await {
        let store = &*store;
        let spec = document("d1", PROJECT, "markdown", "Retry policy");
        let patch = IndexedDocument {
            work_item_id: Some(ITEM.into()),
            ..document("d2", PROJECT, "patch", "cache fix")
        };
        let elsewhere = document("d3", OTHER, "text", "Elsewhere");
        store
            .replace_document(
                &spec,
                &["Reconnect after ERR_CONN_RESET as WI-12 says.".into()],
            )
            .await
            .expect("spec");
        store
            .replace_document(
                &patch,
                &["-fn evict_oldest() {}\n+fn evict_newest() {}".into()],
            )
            .await
            .expect("patch");
        store
            .replace_document(&elsewhere, &["ERR_CONN_RESET, Größe und Äpfel".into()])
            .await
            .expect("other");
        let mine = scope(&[PROJECT]);
        assert_eq!(
            documents_found(store, "ERR_CONN_RESET", &mine).await,
            ["d1"]
        );
        assert_eq!(documents_found(store, "wi-12", &mine).await, ["d1"]);
        assert_eq!(documents_found(store, "evict_oldest", &mine).await, ["d2"]);
        assert_eq!(
            documents_found(store, "retry", &mine).await,
            ["d1"],
            "titles count"
        );
        assert!(documents_found(store, "\"*) OR (", &mine).await.is_empty());
        assert_eq!(
            documents_found(store, "Äpfel", &scope(&[OTHER])).await,
            ["d3"]
        );
        assert!(
            documents_found(store, "ERR_CONN_RESET", &scope(&[]))
                .await
                .is_empty()
        );
        let patches = SearchScope {
            doc_types: vec!["patch".into()],
            ..scope(&[PROJECT, OTHER])
        };
        assert_eq!(
            documents_found(store, "evict_oldest ERR_CONN_RESET", &patches).await,
            ["d2"]
        );
        let item = SearchScope {
            work_item_id: Some(ITEM.into()),
            ..scope(&[PROJECT])
        };
        assert_eq!(
            documents_found(store, "evict_oldest ERR_CONN_RESET", &item).await,
            ["d2"]
        );

        // Indexing again replaces the chunks.
        store
            .replace_document(&spec, &["Nothing about resets any more.".into()])
            .await
            .expect("again");
        assert!(
            documents_found(store, "ERR_CONN_RESET", &mine)
                .await
                .is_empty()
        );
        let stats = store.stats(None).await.expect("stats");
        assert_eq!((stats.documents, stats.chunks), (3, 3));
    }
}

#[tokio::test]
async fn forgotten_documents_keep_no_chunks_and_never_come_back() {
    for (_db, store) in indexes().await {
        let store = &*store;
        let doc = document("d1", PROJECT, "text", "Notes");
        store
            .replace_document(&doc, &["alpha".into(), "beta".into()])
            .await
            .expect("index");
        let pending = store.pending_chunks(None, 10).await.expect("pending");
        assert_eq!(pending.len(), 2);
        let vectors: Vec<(i64, Vec<f32>)> = pending
            .iter()
            .map(|chunk| (chunk.place.seq, vec![1.0, 0.0]))
            .collect();
        assert_eq!(
            store.set_vectors("m", &vectors).await.expect("set").len(),
            2
        );
        assert!(
            store
                .pending_chunks(Some("m"), 10)
                .await
                .expect("none")
                .is_empty()
        );
        assert_eq!(
            store
                .pending_chunks(Some("newer"), 10)
                .await
                .expect("stale")
                .len(),
            2,
            "another model's vectors are embedded again"
        );
        assert_eq!(store.vectors("m", 0, 10).await.expect("vectors").len(), 2);

        let removed = store.forget_document("d1").await.expect("forget");
        assert_eq!(removed.len(), 2, "both vectors go");
        assert_eq!(store.stats(Some("m")).await.expect("stats").chunks, 0);
        assert!(store.documents().await.expect("documents").is_empty());
        // A late index request stores nothing; late vectors set nothing.
        assert_eq!(
            store
                .replace_document(&doc, &["gamma".into()])
                .await
                .expect("late"),
            Replaced::Forgotten
        );
        assert!(
            store
                .set_vectors("m", &vectors)
                .await
                .expect("late")
                .is_empty()
        );
        assert_eq!(store.stats(Some("m")).await.expect("stats").chunks, 0);
        // Only what was forgotten before the cut-off is pruned; then the id
        // is free again.
        let forgotten_at = anima_core::model::now_micros();
        assert_eq!(
            store
                .prune_forgotten(forgotten_at - 60_000_000)
                .await
                .expect("prune"),
            0
        );
        assert_eq!(
            store
                .prune_forgotten(forgotten_at + 1)
                .await
                .expect("prune"),
            1
        );
        assert!(matches!(
            store
                .replace_document(&doc, &["delta".into()])
                .await
                .expect("index"),
            Replaced::Stored { .. }
        ));
        assert_eq!(store.documents().await.expect("documents").len(), 1);
    }
}

/// Forgetting while indexing, many times over: whichever comes first,
/// nothing of a forgotten document stays.
#[tokio::test]
async fn forgetting_while_indexing_leaves_no_orphans() {
    for (_db, store) in indexes().await {
        for round in 0..20 {
            let id = format!("race-{round}");
            let doc = document(&id, PROJECT, "text", "Race");
            let chunks: Vec<String> = (0..50).map(|n| format!("chunk {n}")).collect();
            let indexing = {
                let store = store.clone();
                let doc = doc.clone();
                tokio::spawn(async move { store.replace_document(&doc, &chunks).await })
            };
            let forgetting = {
                let store = store.clone();
                let id = id.clone();
                tokio::spawn(async move { store.forget_document(&id).await })
            };
            indexing.await.expect("joined").expect("indexed");
            forgetting.await.expect("joined").expect("forgotten");
            let left = store
                .lexical(&Terms::of("chunk"), &scope(&[PROJECT]), 100)
                .await
                .expect("lexical");
            assert!(left.is_empty(), "round {round}: {} chunks left", left.len());
        }
    }
}

/// The index holds every project's text: its file is this user's alone,
/// also where the configuration names it and a file was there before.
#[tokio::test]
async fn the_index_file_is_private_wherever_it_is() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("dir");
    let named = dir.path().join("named.db");
    std::fs::write(&named, b"").expect("an empty file left by someone");
    std::fs::set_permissions(&named, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    for (index, path) in [
        (String::new(), dir.path().join("library-index.db")),
        (format!("sqlite://{}", named.display()), named.clone()),
    ] {
        let settings = anima_library::LibrarySettings {
            index,
            ..Default::default()
        };
        settings
            .open_index(Some(dir.path()), None)
            .await
            .expect("open");
        let mode = std::fs::metadata(&path)
            .expect("index file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{}", path.display());
    }
    // A link in its place is not followed.
    let link = dir.path().join("link.db");
    std::os::unix::fs::symlink(dir.path().join("elsewhere.db"), &link).expect("symlink");
    let settings = anima_library::LibrarySettings {
        index: format!("sqlite://{}", link.display()),
        ..Default::default()
    };
    assert!(settings.open_index(Some(dir.path()), None).await.is_err());
    assert!(!dir.path().join("elsewhere.db").exists());
}

/// On SQLite, a word in more than a thousand chunks does not pick
/// candidates while a rarer word of the query does (BM25 would score every
/// chunk holding it); a query of such words alone takes the newest chunks
/// holding the rarest, in scope.
#[tokio::test]
async fn common_words_do_not_pick_candidates_on_sqlite() {
    let db = TempDatabase::sqlite();
    let store = index::open(&db.url).await.expect("open index");
    let many: Vec<String> = (0..1_100).map(|n| format!("widget number {n}")).collect();
    store
        .replace_document(&document("common", PROJECT, "text", "Parts"), &many)
        .await
        .expect("common");
    store
        .replace_document(
            &document("rare", PROJECT, "text", "Gears"),
            &["a widget with a zephyr gear".into()],
        )
        .await
        .expect("rare");
    store
        .replace_document(
            &document("other", OTHER, "text", "Elsewhere"),
            &["widget zephyr widget zephyr".into()],
        )
        .await
        .expect("other");
    let in_scope = scope(&[PROJECT]);
    let found = store
        .lexical(&Terms::of("widget zephyr"), &in_scope, 10)
        .await
        .expect("lexical");
    assert_eq!(found.len(), 1, "only the chunk with the telling word");
    assert_eq!(
        documents_found(&*store, "widget zephyr", &in_scope).await,
        ["rare"]
    );
    // "widget" alone: the newest ten chunks that hold it, in scope.
    let newest = store
        .lexical(&Terms::of("widget"), &in_scope, 10)
        .await
        .expect("lexical");
    let chunks = store.chunks(&newest).await.expect("chunks");
    assert_eq!(newest.len(), 10);
    assert!(
        newest.windows(2).all(|pair| pair[0] > pair[1]),
        "newest first"
    );
    assert!(chunks.iter().all(|chunk| chunk.document_id != "other"));
    assert_eq!(
        chunks
            .iter()
            .find(|chunk| chunk.seq == newest[0])
            .map(|chunk| chunk.document_id.as_str()),
        Some("rare")
    );
}

/// Each library service keeps a vector graph of what it writes: a second
/// process writing the same index is refused while the first lives.
#[tokio::test]
async fn one_process_writes_an_index_at_a_time() {
    for db in [TempDatabase::sqlite(), TempDatabase::postgres().await] {
        let writer = index::open_writer(&db.url).await.expect("the first writer");
        let refused = index::open_writer(&db.url)
            .await
            .err()
            .expect("a second writer is refused");
        assert!(
            refused
                .to_string()
                .contains("another anima-library process"),
            "{refused:#}"
        );
        index::open(&db.url).await.expect("a reader still opens it");
        drop(writer);
        // PostgreSQL ends the lock once it sees the connection close.
        let mut tries = 0;
        while let Err(error) = index::open_writer(&db.url).await {
            tries += 1;
            assert!(
                tries < 100,
                "still refused after the writer ended: {error:#}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

/// Ends `db`'s writer lock behind its holder's back, as a restart of
/// PostgreSQL or an operator cleaning up files would.
async fn lose_writer_lock(db: &TempDatabase) {
    match db.url.strip_prefix("sqlite://") {
        Some(path) => std::fs::remove_file(format!("{path}.writer")).expect("delete the lock file"),
        None => {
            use sqlx::Connection;
            let mut connection = sqlx::PgConnection::connect(&db.url).await.expect("connect");
            let ended: Vec<bool> = sqlx::query_scalar(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' \
                 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            )
            .fetch_all(&mut connection)
            .await
            .expect("end the lock's connection");
            assert_eq!(ended, [true], "one connection held the lock");
        }
    }
}

/// A writer whose lock ended unnoticed writes no more once another took
/// the index over: its writes would be missing from the successor's
/// vector graph, and the successor's from its own.
#[tokio::test]
async fn a_writer_that_lost_its_lock_writes_no_more() {
    for db in [TempDatabase::sqlite(), TempDatabase::postgres().await] {
        let first = index::open_writer(&db.url).await.expect("the first writer");
        let before = document("d1", PROJECT, "markdown", "Before");
        first
            .replace_document(&before, &["written by the first".into()])
            .await
            .expect("the writer writes");
        lose_writer_lock(&db).await;
        let mut tries = 0;
        let second = loop {
            match index::open_writer(&db.url).await {
                Ok(second) => break second,
                Err(error) => {
                    tries += 1;
                    assert!(tries < 100, "no successor: {error:#}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        };
        let late = document("d2", PROJECT, "markdown", "Late");
        let refusals = [
            first
                .replace_document(&late, &["too late".into()])
                .await
                .err(),
            first.forget_document("d1").await.err(),
            first.set_vectors("model", &[(1, vec![1.0])]).await.err(),
            first.mark_all_for_embedding().await.err(),
            first.prune_forgotten(i64::MAX).await.err(),
            first.check_writer().await.err(),
        ];
        for refusal in refusals {
            let refusal = refusal.expect("the first writer is refused");
            assert_eq!(refusal.reason, "INDEX_TAKEN_OVER", "{refusal}");
        }
        second
            .replace_document(
                &document("d3", PROJECT, "markdown", "After"),
                &["written by the second".into()],
            )
            .await
            .expect("the successor writes");
        second
            .check_writer()
            .await
            .expect("the successor is the writer");
        let mut kept: Vec<String> = second
            .documents()
            .await
            .expect("documents")
            .into_iter()
            .map(|document| document.id)
            .collect();
        kept.sort();
        assert_eq!(kept, ["d1", "d3"], "{}", db.url);
    }
}
