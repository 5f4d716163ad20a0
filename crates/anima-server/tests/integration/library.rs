//! Documents through the library: uploads stream into anima-library
//! (hosted in process, its blobs in a temporary directory) and never sit
//! whole in memory, downloads stream back, bad uploads store nothing, the
//! sweep takes bytes no document names, and bytes kept in the database
//! before the library move to it.

use std::time::Duration;

use anima_client::Services;
use anima_proto::v1::{
    self as pb, document_service_client::DocumentServiceClient,
    library_service_client::LibraryServiceClient,
};
use anima_server::library::{GrpcLibrary, Library, move_legacy_blobs, sweep_unnamed_blobs};
use tonic::{Code, transport::Channel};

use crate::common::{Backend, TestServer, authed, code_and_reason, endless_upload};

on_both_backends!(
    without_a_library_documents_are_refused,
    documents_stream_into_the_library_and_back,
    the_library_reads_the_text_of_what_it_keeps,
    bad_uploads_store_nothing,
    uploads_in_progress_are_limited_per_user,
    the_sweep_takes_bytes_no_document_names,
    bytes_kept_in_the_database_move_to_the_library,
    documents_are_found_by_identifier_and_by_meaning,
    searches_are_metered_per_user_and_filters_are_bounded,
);

/// `len` bytes that differ from chunk to chunk, so a mix-up shows.
fn content(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ (i >> 11) as u8)
        .collect()
}

async fn owner_and_project(server: &TestServer) -> (String, pb::Project) {
    server.user("ada", false).await;
    let token = server.login("ada").await;
    let project = server
        .projects()
        .create_project(authed(
            &token,
            pb::CreateProjectRequest {
                name: "Library".into(),
                description: String::new(),
            },
        ))
        .await
        .expect("project")
        .into_inner();
    (token, project)
}

fn upload_of(project: &pb::Project, title: &str, content: &[u8]) -> Vec<pb::UploadDocumentRequest> {
    let mut messages = vec![pb::UploadDocumentRequest {
        project_id: project.id.clone(),
        title: title.into(),
        r#type: pb::DocumentType::Markdown as i32,
        ..Default::default()
    }];
    messages.extend(
        content
            .chunks(300 * 1024)
            .map(|chunk| pb::UploadDocumentRequest {
                content: chunk.to_vec(),
                ..Default::default()
            }),
    );
    messages.push(pb::UploadDocumentRequest {
        last: true,
        ..Default::default()
    });
    messages
}

async fn upload(
    documents: &mut DocumentServiceClient<Channel>,
    token: &str,
    messages: Vec<pb::UploadDocumentRequest>,
) -> Result<pb::Document, tonic::Status> {
    documents
        .upload_document(authed(token, tokio_stream::iter(messages)))
        .await
        .map(tonic::Response::into_inner)
}

async fn download(
    documents: &mut DocumentServiceClient<Channel>,
    token: &str,
    id: &str,
) -> Result<Vec<u8>, tonic::Status> {
    let mut chunks = documents
        .download_document(authed(token, pb::DownloadDocumentRequest { id: id.into() }))
        .await?
        .into_inner();
    let mut content = Vec::new();
    while let Some(chunk) = chunks.message().await? {
        content.extend(chunk.content);
    }
    Ok(content)
}

/// The library's client, as the test server has it.
fn library_of(server: &TestServer) -> GrpcLibrary {
    GrpcLibrary::hosted(server.library.clone())
}

/// A standalone server without `library_url` works, and refuses what
/// needs the library with a reason that names the setting.
async fn without_a_library_documents_are_refused(backend: Backend) {
    let server = TestServer::start_without_library(backend).await;
    let (token, project) = owner_and_project(&server).await;
    let status = upload(
        &mut server.documents(),
        &token,
        upload_of(&project, "notes.md", b"notes"),
    )
    .await
    .expect_err("no library");
    assert_eq!(
        code_and_reason(&status),
        (Code::FailedPrecondition, "NO_LIBRARY_SERVICE".into())
    );
    assert!(status.message().contains("library_url"), "{status:?}");
}

async fn documents_stream_into_the_library_and_back(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (token, project) = owner_and_project(&server).await;
    let mut documents = server.documents();
    // Text past a chunk's size, with an identifier near its end.
    let mut spec = "# Export\n".repeat(200_000).into_bytes();
    spec.extend_from_slice(b"Retry on ERR_CONN_RESET.\n");
    let stored = upload(
        &mut documents,
        &token,
        upload_of(&project, "spec.md", &spec),
    )
    .await
    .expect("upload");
    assert_eq!(stored.size_bytes, spec.len() as i64);
    assert_eq!(stored.sha256, anima_core::document::content_sha256(&spec));
    assert_eq!(
        download(&mut documents, &token, &stored.id)
            .await
            .expect("download"),
        spec
    );
    let found = documents
        .get_document(authed(
            &token,
            pb::GetDocumentRequest {
                id: stored.id.clone(),
            },
        ))
        .await
        .expect("get")
        .into_inner();
    assert_eq!(found, stored);

    let hits = documents
        .search_documents(authed(
            &token,
            pb::SearchDocumentsRequest {
                project_id: project.id.clone(),
                query: "ERR_CONN_RESET".into(),
                limit: 5,
                ..Default::default()
            },
        ))
        .await
        .expect("search")
        .into_inner()
        .hits;
    assert!(
        hits.is_empty(),
        "text past the searchable start is not kept"
    );
    let hits = documents
        .search_documents(authed(
            &token,
            pb::SearchDocumentsRequest {
                project_id: project.id.clone(),
                query: "# export".into(),
                limit: 5,
                ..Default::default()
            },
        ))
        .await
        .expect("search")
        .into_inner()
        .hits;
    assert_eq!(hits.len(), 1, "the start of the text is searchable");

    let binary = content(2 * 1024 * 1024 + 5);
    let mut messages = upload_of(&project, "dump.bin", &binary);
    messages[0].r#type = pb::DocumentType::Attachment as i32;
    let first = upload(&mut documents, &token, messages.clone())
        .await
        .expect("binary");
    let copy = upload(&mut documents, &token, messages)
        .await
        .expect("the same bytes again");
    assert_eq!(copy.sha256, first.sha256);
    assert_ne!(copy.id, first.id, "two documents");
    assert_eq!(
        server.blobs.stats().await.expect("stats"),
        (2, (spec.len() + binary.len()) as u64),
        "the same bytes are kept once"
    );
    assert_eq!(
        download(&mut documents, &token, &copy.id)
            .await
            .expect("download"),
        binary
    );

    // Someone outside the project reads nothing of it.
    server.user("eve", false).await;
    let eve = server.login("eve").await;
    let (code, _) = code_and_reason(
        &download(&mut documents, &eve, &stored.id)
            .await
            .expect_err("not a member"),
    );
    assert_eq!(code, Code::PermissionDenied);
}

async fn search(
    documents: &mut DocumentServiceClient<Channel>,
    token: &str,
    project: &pb::Project,
    query: &str,
) -> Vec<String> {
    documents
        .search_documents(authed(
            token,
            pb::SearchDocumentsRequest {
                project_id: project.id.clone(),
                query: query.into(),
                limit: 10,
                ..Default::default()
            },
        ))
        .await
        .expect("search")
        .into_inner()
        .hits
        .into_iter()
        .filter_map(|hit| hit.document.map(|document| document.title))
        .collect()
}

/// HTML is searched as the text it shows, a patch by the files it
/// changes; a file with no text is kept and listed with the reason.
async fn the_library_reads_the_text_of_what_it_keeps(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (token, project) = owner_and_project(&server).await;
    let mut documents = server.documents();
    let typed = |title: &str, doc_type: pb::DocumentType, media_type: &str, content: &[u8]| {
        let mut messages = upload_of(&project, title, content);
        messages[0].r#type = doc_type as i32;
        messages[0].media_type = media_type.into();
        messages
    };
    let html =
        b"<html><body><p>Checkout fails with <b>ERR_CONN_RESET</b> on Safari.</p></body></html>";
    let mail = upload(
        &mut documents,
        &token,
        typed("body.html", pb::DocumentType::Attachment, "text/html", html),
    )
    .await
    .expect("html");
    assert_eq!(mail.not_indexed_reason, "");
    let diff = b"--- a/src/export.rs\n+++ b/src/export.rs\n@@ -1 +1 @@\n-buffer\n+stream\n";
    upload(
        &mut documents,
        &token,
        typed("fix", pb::DocumentType::Patch, "", diff),
    )
    .await
    .expect("patch");
    let dump = upload(
        &mut documents,
        &token,
        typed(
            "dump.bin",
            pb::DocumentType::Attachment,
            "application/octet-stream",
            &[0, 159, 146, 150, 255],
        ),
    )
    .await
    .expect("binary");
    assert_eq!(
        dump.not_indexed_reason,
        "no text is read from application/octet-stream files"
    );
    let lying = upload(
        &mut documents,
        &token,
        typed(
            "notes.txt",
            pb::DocumentType::Text,
            "text/plain",
            &[0x50, 0x4b, 0, 0xff],
        ),
    )
    .await
    .expect("binary declared as text is kept");
    assert!(
        lying.not_indexed_reason.contains("not UTF-8 text"),
        "{}",
        lying.not_indexed_reason
    );

    assert_eq!(
        search(
            &mut documents,
            &token,
            &project,
            "fails with ERR_CONN_RESET on"
        )
        .await,
        ["body.html"],
        "the words across the markup"
    );
    assert!(
        search(&mut documents, &token, &project, "<blink>")
            .await
            .is_empty(),
        "the markup is not in the text"
    );
    assert_eq!(
        search(&mut documents, &token, &project, "Patch of 1 file").await,
        ["fix"]
    );
}

async fn bad_uploads_store_nothing(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (token, project) = owner_and_project(&server).await;
    let mut documents = server.documents();

    let status = upload(&mut documents, &token, upload_of(&project, "empty.md", b""))
        .await
        .expect_err("empty");
    assert_eq!(
        code_and_reason(&status),
        (Code::InvalidArgument, "EMPTY_CONTENT".into())
    );

    // 101 MiB, sent as an endless stream: refused while it streams.
    let metadata = upload_of(&project, "huge.bin", b"").swap_remove(0);
    let status = documents
        .upload_document(authed(&token, endless_upload(metadata)))
        .await
        .expect_err("past 100 MiB");
    assert_eq!(
        code_and_reason(&status),
        (Code::InvalidArgument, "DOCUMENT_TOO_LARGE".into())
    );

    let oversized = vec![pb::UploadDocumentRequest {
        content: vec![2; 2 * 1024 * 1024],
        ..upload_of(&project, "one-message.bin", b"")[0].clone()
    }];
    let status = upload(&mut documents, &token, oversized)
        .await
        .expect_err("a message over the chunk limit");
    assert_eq!(
        code_and_reason(&status),
        (Code::InvalidArgument, "INVALID_FIELD".into())
    );

    // A client that closes its stream without the last message (as one
    // that fails mid-way may): nothing is kept.
    let mut unfinished = upload_of(&project, "unfinished.md", b"half of it");
    unfinished.pop();
    let status = upload(&mut documents, &token, unfinished)
        .await
        .expect_err("no last message");
    assert_eq!(
        code_and_reason(&status),
        (Code::Aborted, "UPLOAD_INTERRUPTED".into())
    );

    let mut untitled = upload_of(&project, "", b"notes");
    untitled[0].title.clear();
    let status = upload(&mut documents, &token, untitled)
        .await
        .expect_err("no title");
    assert_eq!(status.code(), Code::InvalidArgument);

    // A client whose file fails to read half-way: the upload is
    // cancelled, and the library drops what it had.
    let session = anima_client::Session::new(server.channel.clone(), &token).expect("session");
    let half_read = futures_util::stream::iter(
        (0..8)
            .map(|_| Ok(vec![3; 256 * 1024]))
            .chain(std::iter::once(Err(std::io::Error::other("disk gone")))),
    );
    let error = session
        .upload_document(upload_of(&project, "broken.bin", b"")[0].clone(), half_read)
        .await
        .expect_err("the read failed");
    assert!(format!("{error:#}").contains("disk gone"), "{error:#}");
    let uploads = server.library_dir.path().join("uploads");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while std::fs::read_dir(&uploads).is_ok_and(|mut entries| entries.next().is_some()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the cancelled upload is still in {}",
            uploads.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let listed = documents
        .list_documents(authed(
            &token,
            pb::ListDocumentsRequest {
                project_id: project.id.clone(),
                ..Default::default()
            },
        ))
        .await
        .expect("list")
        .into_inner()
        .documents;
    assert!(listed.is_empty(), "{listed:?}");
    assert_eq!(server.blobs.stats().await.expect("stats"), (0, 0));
}

/// Each upload in progress holds buffers: one user keeps at most
/// `open_uploads_per_user` of them open; a place is free again once an
/// upload ends.
async fn uploads_in_progress_are_limited_per_user(backend: Backend) {
    let mut config = anima_server::ServerConfig::default();
    config.rate_limits.open_uploads_per_user = 1;
    let server = TestServer::start_with(backend, config).await;
    let (token, project) = owner_and_project(&server).await;
    let (sender, receiver) = tokio::sync::mpsc::channel(4);
    let mut held = server.documents();
    let first_token = token.clone();
    let first = tokio::spawn(async move {
        held.upload_document(authed(
            &first_token,
            tokio_stream::wrappers::ReceiverStream::new(receiver),
        ))
        .await
    });
    let mut messages = upload_of(&project, "slow.md", b"the first half");
    let last = messages.pop().expect("the last message");
    for message in messages {
        sender.send(message).await.expect("send");
    }
    // Once its bytes reach the library, the held upload has its place.
    let uploads = server.library_dir.path().join("uploads");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !std::fs::read_dir(&uploads).is_ok_and(|mut entries| entries.next().is_some()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the held upload never reached the library"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut documents = server.documents();
    let refused = upload(
        &mut documents,
        &token,
        upload_of(&project, "second.md", b"2"),
    )
    .await
    .expect_err("one upload in progress is the most");
    assert_eq!(
        code_and_reason(&refused),
        (Code::ResourceExhausted, "TOO_MANY_UPLOADS".into())
    );
    sender.send(last).await.expect("send the last message");
    let stored = first.await.expect("join").expect("the held upload ends");
    assert_eq!(stored.into_inner().title, "slow.md");
    upload(
        &mut documents,
        &token,
        upload_of(&project, "next.md", b"next"),
    )
    .await
    .expect("a place is free again");

    // Another user is not held up by this one's uploads.
    server.user("bo", false).await;
    let bo = server.login("bo").await;
    let bo_project = owner_project(&server, &bo).await;
    upload(&mut documents, &bo, upload_of(&bo_project, "bo.md", b"bo"))
        .await
        .expect("bo's upload");
}

async fn owner_project(server: &TestServer, token: &str) -> pb::Project {
    server
        .projects()
        .create_project(authed(
            token,
            pb::CreateProjectRequest {
                name: "Bo's".into(),
                description: String::new(),
            },
        ))
        .await
        .expect("project")
        .into_inner()
}

async fn the_sweep_takes_bytes_no_document_names(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (token, project) = owner_and_project(&server).await;
    let mut documents = server.documents();
    let kept = upload(
        &mut documents,
        &token,
        upload_of(&project, "kept.md", b"kept"),
    )
    .await
    .expect("upload");
    let deleted = upload(
        &mut documents,
        &token,
        upload_of(&project, "gone.md", b"gone"),
    )
    .await
    .expect("upload");
    documents
        .delete_document(authed(
            &token,
            pb::DeleteDocumentRequest {
                id: deleted.id.clone(),
            },
        ))
        .await
        .expect("delete");
    let library = library_of(&server);
    // An upload whose document was never recorded.
    library
        .put(anima_server::library::content_of(b"orphan".to_vec()))
        .await
        .expect("put");
    assert_eq!(server.blobs.stats().await.expect("stats").0, 3);

    let within_grace = sweep_unnamed_blobs(&*server.store, &library, Duration::from_secs(3600))
        .await
        .expect("sweep");
    assert_eq!(within_grace, 0, "bytes stored within the grace are kept");
    tokio::time::sleep(Duration::from_millis(10)).await;
    let swept = sweep_unnamed_blobs(&*server.store, &library, Duration::ZERO)
        .await
        .expect("sweep");
    assert_eq!(swept, 2, "the deleted document's bytes and the orphan");
    assert_eq!(
        server.blobs.stats().await.expect("stats"),
        (1, 4),
        "only what a document names"
    );
    assert_eq!(
        download(&mut documents, &token, &kept.id)
            .await
            .expect("download"),
        b"kept"
    );
}

async fn bytes_kept_in_the_database_move_to_the_library(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (token, project) = owner_and_project(&server).await;
    let old = b"written before the library".to_vec();
    let sha256 = anima_db::testing::keep_bytes_in_database(&server.db.url, &old).await;
    let document = server
        .store
        .create_document(anima_core::document::NewDocument {
            project_id: project.id.clone(),
            work_item_id: None,
            title: "old.txt".into(),
            doc_type: anima_core::document::DocumentType::Text,
            media_type: "text/plain".into(),
            blob: anima_core::document::StoredBlob {
                sha256,
                size_bytes: old.len() as i64,
            },
            text: anima_core::document::SearchText::Text("written before the library".into()),
            author: anima_core::planning::Actor::Service {
                name: "test".into(),
            },
        })
        .await
        .expect("document");
    let mut documents = server.documents();
    let (code, reason) = code_and_reason(
        &download(&mut documents, &token, &document.id)
            .await
            .expect_err("not in the library yet"),
    );
    assert_eq!((code, reason.as_str()), (Code::NotFound, "BLOB_NOT_FOUND"));

    let moved = move_legacy_blobs(&*server.store, &library_of(&server))
        .await
        .expect("move");
    assert_eq!(moved, 1);
    assert_eq!(
        download(&mut documents, &token, &document.id)
            .await
            .expect("download"),
        old
    );
    assert_eq!(
        server.store.next_legacy_blob("").await.expect("legacy"),
        None,
        "the database keeps it no more"
    );
    assert_eq!(
        move_legacy_blobs(&*server.store, &library_of(&server))
            .await
            .expect("again"),
        0
    );
}

/// Waits until the library has computed a vector for every chunk.
async fn vectors_settle(server: &TestServer) -> pb::LibraryStats {
    let mut library = LibraryServiceClient::new(server.library.clone());
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let stats = library
            .get_library_stats(pb::GetLibraryStatsRequest {})
            .await
            .expect("stats")
            .into_inner();
        if !stats.model.is_empty() && stats.chunks_embedded == stats.chunks {
            return stats;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "vectors were not computed: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Each document is found first by an identifier in it and by a question
/// that shares no telling word with it; filters and deletions hold.
async fn documents_are_found_by_identifier_and_by_meaning(backend: Backend) {
    let server = TestServer::start_searching_by_meaning(backend).await;
    let (token, project) = owner_and_project(&server).await;
    let mut documents = server.documents();
    let corpus: [(&str, pb::DocumentType, &str); 4] = [
        (
            "retry-policy.md",
            pb::DocumentType::Markdown,
            "# Retry policy\n\nWhen the upstream connection drops with ERR_CONN_RESET, \
             the exporter waits with exponential backoff before it tries again, at most \
             five times.",
        ),
        (
            "onboarding.md",
            pb::DocumentType::Markdown,
            "# Onboarding\n\nNew team members get a laptop, an account on the build \
             server and a mentor for their first two weeks.",
        ),
        (
            "cache.patch",
            pb::DocumentType::Patch,
            "--- a/src/cache.rs\n+++ b/src/cache.rs\n@@ -1,3 +1,3 @@\n\
             -fn evict_oldest(entries: &mut Vec<Entry>) {\n\
             +fn evict_oldest(entries: &mut VecDeque<Entry>) {\n",
        ),
        (
            "kuchen.txt",
            pb::DocumentType::Text,
            "Rezept für Apfelkuchen: Äpfel schälen, den Teig kneten und eine Stunde backen.",
        ),
    ];
    let mut ids = Vec::new();
    for (title, kind, text) in &corpus {
        let mut messages = upload_of(&project, title, text.as_bytes());
        messages[0].r#type = *kind as i32;
        ids.push(
            upload(&mut documents, &token, messages)
                .await
                .expect("upload")
                .id,
        );
    }
    let stats = vectors_settle(&server).await;
    assert_eq!(stats.documents, 4);
    let top = |query: &'static str| {
        let mut documents = server.documents();
        let token = token.clone();
        let project_id = project.id.clone();
        async move {
            let hits = documents
                .search_documents(authed(
                    &token,
                    pb::SearchDocumentsRequest {
                        project_id,
                        query: query.into(),
                        ..Default::default()
                    },
                ))
                .await
                .expect("search")
                .into_inner()
                .hits;
            hits.first()
                .and_then(|hit| hit.document.as_ref())
                .map(|document| document.title.clone())
                .unwrap_or_default()
        }
    };
    assert_eq!(top("ERR_CONN_RESET").await, "retry-policy.md");
    assert_eq!(top("evict_oldest").await, "cache.patch");
    assert_eq!(top("Apfelkuchen backen").await, "kuchen.txt");
    assert_eq!(
        top("How do we welcome people who just joined the company?").await,
        "onboarding.md"
    );
    assert_eq!(
        top("what happens if the network link fails").await,
        "retry-policy.md"
    );

    // Filters: a type, and a work item that holds none of them.
    let patches = documents
        .search_documents(authed(
            &token,
            pb::SearchDocumentsRequest {
                project_id: project.id.clone(),
                query: "code change".into(),
                types: vec![pb::DocumentType::Patch as i32],
                ..Default::default()
            },
        ))
        .await
        .expect("search")
        .into_inner()
        .hits;
    assert!(patches.iter().all(|hit| {
        hit.document
            .as_ref()
            .is_some_and(|document| document.title == "cache.patch")
    }));
    let status = documents
        .search_documents(authed(
            &token,
            pb::SearchDocumentsRequest {
                project_id: project.id.clone(),
                query: "x".repeat(10_000),
                ..Default::default()
            },
        ))
        .await
        .expect_err("too long");
    assert_eq!(code_and_reason(&status).0, Code::InvalidArgument);

    // Someone outside the project is refused, and finds nothing of it.
    server.user("eve", false).await;
    let eve = server.login("eve").await;
    let status = documents
        .search_documents(authed(
            &eve,
            pb::SearchDocumentsRequest {
                project_id: project.id.clone(),
                query: "ERR_CONN_RESET".into(),
                ..Default::default()
            },
        ))
        .await
        .expect_err("not a member");
    assert_eq!(code_and_reason(&status).0, Code::PermissionDenied);
    // A search that names no project looks in the caller's own projects:
    // the owner's finds the document, the outsider's finds nothing.
    let everywhere = |token: String| {
        let mut documents = server.documents();
        async move {
            documents
                .search_documents(authed(
                    &token,
                    pb::SearchDocumentsRequest {
                        query: "ERR_CONN_RESET".into(),
                        ..Default::default()
                    },
                ))
                .await
                .expect("search everywhere")
                .into_inner()
                .hits
        }
    };
    let mine = everywhere(token.clone()).await;
    assert_eq!(
        mine.first()
            .and_then(|hit| hit.document.as_ref())
            .map(|d| d.id.clone()),
        Some(ids[0].clone())
    );
    assert!(everywhere(eve.clone()).await.is_empty());

    // Its text, a part at a time; eve cannot read it.
    let part = documents
        .get_document_text(authed(
            &token,
            pb::GetDocumentTextRequest {
                id: ids[0].clone(),
                offset: 2,
                max_chars: 12,
            },
        ))
        .await
        .expect("text")
        .into_inner();
    assert_eq!(part.text, "Retry policy");
    assert_eq!(part.next_offset, 14);
    assert_eq!(part.total_chars as usize, corpus[0].2.chars().count());
    for (reader, offset, max_chars, code) in [
        (&token, -1, 0, Code::InvalidArgument),
        (&token, 0, 100_001, Code::InvalidArgument),
        (&eve, 0, 0, Code::PermissionDenied),
    ] {
        let status = documents
            .get_document_text(authed(
                reader,
                pb::GetDocumentTextRequest {
                    id: ids[0].clone(),
                    offset,
                    max_chars,
                },
            ))
            .await
            .expect_err("refused");
        assert_eq!(code_and_reason(&status).0, code);
    }

    // A deleted document leaves the index with its vectors.
    documents
        .delete_document(authed(
            &token,
            pb::DeleteDocumentRequest { id: ids[0].clone() },
        ))
        .await
        .expect("delete");
    assert_ne!(top("ERR_CONN_RESET").await, "retry-policy.md");
    let stats = vectors_settle(&server).await;
    assert_eq!(stats.documents, 3);
    let indexed = library_of(&server).indexed().await.expect("indexed");
    assert!(indexed.iter().all(|document| document.id != ids[0]));

    // A server admin has every vector computed again; searches keep
    // answering meanwhile, and the status shows it through.
    server.user("root", true).await;
    let root = server.login("root").await;
    let pending = documents
        .reindex_library(authed(&root, pb::ReindexLibraryRequest { all: true }))
        .await
        .expect("reindex")
        .into_inner()
        .pending;
    assert_eq!(pending, stats.chunks, "every chunk waits for a new vector");
    assert_eq!(top("evict_oldest").await, "cache.patch");
    vectors_settle(&server).await;
    let status = documents
        .get_library_status(authed(&root, pb::GetLibraryStatusRequest {}))
        .await
        .expect("status")
        .into_inner();
    assert_eq!(
        (status.documents, status.chunks_embedded),
        (3, status.chunks)
    );
    assert_eq!(
        top("How do we welcome people who just joined the company?").await,
        "onboarding.md"
    );
}

/// Each search embeds its query and ranks chunks: a user's searches are
/// metered, and a filter that names a type twice is refused.
async fn searches_are_metered_per_user_and_filters_are_bounded(backend: Backend) {
    let mut config = anima_server::ServerConfig::default();
    config.rate_limits.searches_per_minute = 2;
    let server = TestServer::start_with(backend, config).await;
    let (token, project) = owner_and_project(&server).await;
    let mut documents = server.documents();
    let search = |types: Vec<i32>| pb::SearchDocumentsRequest {
        project_id: project.id.clone(),
        query: "anything".into(),
        types,
        ..Default::default()
    };
    let patch = pb::DocumentType::Patch as i32;
    let status = documents
        .search_documents(authed(&token, search(vec![patch, patch])))
        .await
        .expect_err("a type twice");
    assert_eq!(
        code_and_reason(&status),
        (Code::InvalidArgument, "INVALID_FIELD".into())
    );
    for _ in 0..2 {
        documents
            .search_documents(authed(&token, search(vec![patch])))
            .await
            .expect("within the limit");
    }
    let status = documents
        .search_documents(authed(&token, search(Vec::new())))
        .await
        .expect_err("past the limit");
    assert_eq!(
        code_and_reason(&status),
        (Code::ResourceExhausted, "RATE_LIMITED".into())
    );
}
