//! LibraryService as a separate process: the `anima-library` binary over a
//! real gRPC connection, with its blobs in a temporary directory or in an
//! S3-compatible store (moto's server, from the Python test clients).

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use anima_proto::v1::{self as pb, library_service_client::LibraryServiceClient};
use sha2::{Digest, Sha256};
use tonic::{Code, Request, Status, transport::Channel};

const TOKEN: &str = "library-test-token-library-test-token";

/// A running `anima-library`; killed when dropped.
struct Library {
    process: Running,
    address: SocketAddr,
}

/// A child process, killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Library {
    /// Starts it on a port the system picks, and reads which from what it
    /// prints (a port picked here could be taken by a parallel test).
    fn start(data_dir: &Path, env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_anima-library"));
        // The S3 client reads `AWS_*`: only what a test sets counts.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("AWS_") {
                command.env_remove(key);
            }
        }
        let mut child = command
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .env("ANIMA_LIBRARY_TOKENS", TOKEN)
            .env_remove("ANIMA_CONFIG")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start anima-library");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let address = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|line| {
                line.strip_prefix("anima-library listening on ")
                    .and_then(|address| address.parse().ok())
            })
            .expect("anima-library printed its address");
        std::thread::spawn(move || lines.for_each(drop));
        Self {
            process: Running(child),
            address,
        }
    }

    async fn client(&self) -> LibraryServiceClient<Channel> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(client) =
                LibraryServiceClient::connect(format!("http://{}", self.address)).await
            {
                return client;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "anima-library did not start listening on {}",
                self.address
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

fn authed<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {TOKEN}").parse().expect("header"),
    );
    request
}

fn reason(status: &Status) -> String {
    use tonic_types::StatusExt;
    status
        .get_details_error_info()
        .map(|info| info.reason)
        .unwrap_or_default()
}

/// `len` bytes that differ from chunk to chunk, so a mix-up shows.
fn content(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 13) as u8)
        .collect()
}

/// `content` as an upload: the limit in the first message, `last` on the
/// final one.
fn chunks_of(content: &[u8], max_bytes: i64) -> Vec<pb::PutBlobRequest> {
    let mut messages: Vec<pb::PutBlobRequest> = content
        .chunks(256 * 1024)
        .map(|chunk| pb::PutBlobRequest {
            chunk: chunk.to_vec(),
            ..Default::default()
        })
        .collect();
    messages.push(pb::PutBlobRequest {
        last: true,
        ..Default::default()
    });
    messages[0].max_bytes = max_bytes;
    messages
}

/// Every blob the library lists.
async fn listed(client: &mut LibraryServiceClient<Channel>) -> Vec<String> {
    let mut blobs = client
        .list_blobs(authed(pb::ListBlobsRequest {}))
        .await
        .expect("list")
        .into_inner();
    let mut listed = Vec::new();
    while let Some(blob) = blobs.message().await.expect("listing") {
        listed.push(blob.sha256);
    }
    listed.sort();
    listed
}

async fn put(
    client: &mut LibraryServiceClient<Channel>,
    content: &[u8],
) -> Result<pb::Blob, Status> {
    client
        .put_blob(authed(tokio_stream::iter(chunks_of(content, 0))))
        .await
        .map(tonic::Response::into_inner)
}

async fn get(client: &mut LibraryServiceClient<Channel>, sha256: &str) -> Result<Vec<u8>, Status> {
    let mut stream = client
        .get_blob(authed(pb::GetBlobRequest {
            sha256: sha256.into(),
        }))
        .await?
        .into_inner();
    let mut content = Vec::new();
    while let Some(chunk) = stream.message().await? {
        content.extend_from_slice(&chunk.chunk);
    }
    Ok(content)
}

async fn stats(client: &mut LibraryServiceClient<Channel>) -> (i64, i64) {
    let stats = client
        .get_library_stats(authed(pb::GetLibraryStatsRequest {}))
        .await
        .expect("stats")
        .into_inner();
    (stats.blobs, stats.blob_bytes)
}

/// Files under `dir`, at any depth.
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .flat_map(|entry| {
            let path = entry.path();
            if path.is_dir() {
                files_under(&path)
            } else {
                vec![path]
            }
        })
        .collect()
}

#[tokio::test]
async fn blobs_round_trip_by_content_and_are_stored_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let library = Library::start(dir.path(), &[]);
    let mut client = library.client().await;
    // Only this user may enter the store: documents are private.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("library"))
        .expect("the store")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
    let spec = content(3 * 1024 * 1024 + 17, 1);
    let stored = put(&mut client, &spec).await.expect("put");
    assert_eq!(stored.sha256, hex::encode(Sha256::digest(&spec)));
    assert_eq!(stored.size_bytes, spec.len() as i64);
    assert!(stored.stored_time.is_some());
    assert_eq!(get(&mut client, &stored.sha256).await.expect("get"), spec);

    let again = put(&mut client, &spec).await.expect("put the same bytes");
    assert_eq!(again.sha256, stored.sha256);
    let other = put(&mut client, b"a note").await.expect("put a note");
    assert_eq!(stats(&mut client).await, (2, spec.len() as i64 + 6));

    let mut expected = vec![stored.sha256.clone(), other.sha256];
    expected.sort();
    assert_eq!(listed(&mut client).await, expected, "every blob once");

    // A stream that ends without its last message broke off: nothing is
    // stored of it.
    let mut broken = chunks_of(&content(700_000, 9), 0);
    broken.pop();
    let status = client
        .put_blob(authed(tokio_stream::iter(broken)))
        .await
        .expect_err("no last message");
    assert_eq!(status.code(), Code::Aborted);
    assert_eq!(reason(&status), "UPLOAD_INTERRUPTED");
    assert_eq!(listed(&mut client).await, expected);
}

/// An S3-compatible server with one empty bucket; stopped when dropped.
struct S3 {
    _process: Running,
    endpoint: String,
}

impl S3 {
    const BUCKET: &str = "anima-library-test";

    fn start() -> Self {
        let python = std::env::var("ANIMA_TEST_PYTHON").unwrap_or_else(|_| {
            format!(
                "{}/.cache/anima-venv/bin/python",
                std::env::var("HOME").unwrap_or_default()
            )
        });
        let mut child = Command::new(&python)
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/s3_server.py"))
            .arg(Self::BUCKET)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "no Python test clients at {python} ({error}); \
                     run scripts/setup-debian --with-test-clients"
                )
            });
        let endpoint = child
            .stdout
            .take()
            .and_then(|stdout| BufReader::new(stdout).lines().next())
            .and_then(Result::ok)
            .filter(|line| line.starts_with("http://"))
            .unwrap_or_else(|| {
                panic!(
                    "moto's S3 server did not start; run scripts/setup-debian --with-test-clients"
                )
            });
        Self {
            _process: Running(child),
            endpoint,
        }
    }

    /// A library's settings for a store in the bucket, under `prefix`.
    fn library_env(&self, prefix: &str) -> Vec<(&'static str, String)> {
        vec![
            (
                "ANIMA_LIBRARY_STORE",
                format!("s3://{}/{prefix}", Self::BUCKET),
            ),
            (
                "ANIMA_LIBRARY_MAX_BLOB_BYTES",
                (16 * 1024 * 1024).to_string(),
            ),
            ("AWS_ENDPOINT", self.endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ]
    }
}

/// `env` as [`Library::start`] takes it.
fn borrowed<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter()
        .map(|(key, value)| (*key, value.as_str()))
        .collect()
}

/// Blobs in an S3-compatible store, through `object_store`'s S3 client:
/// uploads in several parts, reads, the limit, deletes, and a restarted
/// library that finds what its predecessor stored.
#[tokio::test]
async fn blobs_live_in_an_s3_compatible_store() {
    let s3 = S3::start();
    let env = s3.library_env("team/blobs");
    let env = borrowed(&env);
    let dir = tempfile::tempdir().expect("tempdir");
    let library = Library::start(dir.path(), &env);
    let mut client = library.client().await;

    // Three parts of an S3 multipart upload (5 MiB each but the last).
    let spec = content(12 * 1024 * 1024 + 17, 3);
    let stored = put(&mut client, &spec).await.expect("put");
    assert_eq!(stored.sha256, hex::encode(Sha256::digest(&spec)));
    assert_eq!(stored.size_bytes, spec.len() as i64);
    assert_eq!(get(&mut client, &stored.sha256).await.expect("get"), spec);
    let again = put(&mut client, &spec).await.expect("put the same bytes");
    assert_eq!(again.sha256, stored.sha256);
    let note = put(&mut client, b"a note").await.expect("put a note");

    let endless = tokio_stream::iter(std::iter::repeat_with(|| pb::PutBlobRequest {
        chunk: vec![7; 512 * 1024],
        ..Default::default()
    }));
    let status = client
        .put_blob(authed(endless))
        .await
        .expect_err("past the limit");
    assert_eq!(reason(&status), "DOCUMENT_TOO_LARGE");
    let mut expected = vec![stored.sha256.clone(), note.sha256.clone()];
    expected.sort();
    assert_eq!(listed(&mut client).await, expected);
    assert_eq!(stats(&mut client).await, (2, spec.len() as i64 + 6));

    let deleted = client
        .delete_blob(authed(pb::DeleteBlobRequest {
            sha256: note.sha256.clone(),
            stored_before: Some(prost_types::Timestamp {
                seconds: i64::from(i32::MAX),
                nanos: 0,
            }),
        }))
        .await
        .expect("delete")
        .into_inner();
    assert!(deleted.deleted);
    let status = get(&mut client, &note.sha256).await.expect_err("gone");
    assert_eq!(status.code(), Code::NotFound);

    // Nothing went to the data directory instead.
    assert_eq!(
        files_under(&dir.path().join("library")),
        Vec::<std::path::PathBuf>::new()
    );
    drop(client);
    drop(library);
    let library = Library::start(dir.path(), &env);
    let mut client = library.client().await;
    assert_eq!(listed(&mut client).await, vec![stored.sha256.clone()]);
    assert_eq!(get(&mut client, &stored.sha256).await.expect("get"), spec);

    // Another prefix of the same bucket is another library.
    let other_env = s3.library_env("other");
    let other_env = borrowed(&other_env);
    let other_dir = tempfile::tempdir().expect("tempdir");
    let other = Library::start(other_dir.path(), &other_env);
    let mut other_client = other.client().await;
    assert_eq!(listed(&mut other_client).await, Vec::<String>::new());
}

#[tokio::test]
async fn uploads_past_the_limit_are_refused_while_streaming_and_leave_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let library = Library::start(dir.path(), &[("ANIMA_LIBRARY_MAX_BLOB_BYTES", "4194304")]);
    let mut client = library.client().await;

    // A stream that never ends: only a refusal while it streams ends the
    // call.
    let endless = tokio_stream::iter(std::iter::repeat_with(|| pb::PutBlobRequest {
        chunk: vec![7; 512 * 1024],
        ..Default::default()
    }));
    let status = client
        .put_blob(authed(endless))
        .await
        .expect_err("past the library's limit");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(reason(&status), "DOCUMENT_TOO_LARGE");

    // The caller's own, lower limit holds too.
    let status = client
        .put_blob(authed(tokio_stream::iter(chunks_of(
            &content(2_000_000, 2),
            1_000_000,
        ))))
        .await
        .expect_err("past the caller's limit");
    assert_eq!(reason(&status), "DOCUMENT_TOO_LARGE");

    let status = client
        .put_blob(authed(tokio_stream::iter(chunks_of(b"", 0))))
        .await
        .expect_err("empty");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(reason(&status), "EMPTY_CONTENT");

    assert_eq!(stats(&mut client).await, (0, 0));
    assert_eq!(
        files_under(&dir.path().join("library")),
        Vec::<std::path::PathBuf>::new()
    );
}

#[tokio::test]
async fn bad_names_and_missing_tokens_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let library = Library::start(dir.path(), &[]);
    let mut client = library.client().await;
    for name in ["../../etc/passwd", "ABC", &"A".repeat(64), ""] {
        let status = get(&mut client, name).await.expect_err("bad name");
        assert_eq!(status.code(), Code::InvalidArgument, "{name}");
        assert_eq!(reason(&status), "INVALID_FIELD");
    }
    let status = get(&mut client, &"0".repeat(64))
        .await
        .expect_err("no such blob");
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(reason(&status), "BLOB_NOT_FOUND");

    let status = client
        .get_library_stats(pb::GetLibraryStatsRequest {})
        .await
        .expect_err("no token");
    assert_eq!(status.code(), Code::Unauthenticated);
    let mut wrong = Request::new(pb::GetLibraryStatsRequest {});
    wrong.metadata_mut().insert(
        "authorization",
        "Bearer not-the-token-not-the-token-not-the"
            .parse()
            .expect("header"),
    );
    let status = client
        .get_library_stats(wrong)
        .await
        .expect_err("wrong token");
    assert_eq!(status.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn a_blob_stored_again_survives_a_delete_meant_for_the_old_copy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let library = Library::start(dir.path(), &[]);
    let mut client = library.client().await;
    let first = put(&mut client, b"patch v1").await.expect("put");
    let found_unreferenced_at = first.stored_time.expect("stored time");

    // A new upload of the same bytes, after the sweep looked: kept.
    tokio::time::sleep(Duration::from_millis(20)).await;
    put(&mut client, b"patch v1").await.expect("put again");
    let delete = |stored_before| pb::DeleteBlobRequest {
        sha256: first.sha256.clone(),
        stored_before: Some(stored_before),
    };
    let kept = client
        .delete_blob(authed(delete(found_unreferenced_at)))
        .await
        .expect("delete")
        .into_inner();
    assert!(!kept.deleted);
    assert_eq!(
        get(&mut client, &first.sha256).await.expect("get"),
        b"patch v1"
    );

    let later = prost_types::Timestamp {
        seconds: found_unreferenced_at.seconds + 3600,
        nanos: 0,
    };
    let deleted = client
        .delete_blob(authed(delete(later)))
        .await
        .expect("delete")
        .into_inner();
    assert!(deleted.deleted);
    let status = get(&mut client, &first.sha256).await.expect_err("gone");
    assert_eq!(status.code(), Code::NotFound);
    let status = client
        .delete_blob(authed(pb::DeleteBlobRequest {
            sha256: first.sha256.clone(),
            stored_before: None,
        }))
        .await
        .expect_err("no stored_before");
    assert_eq!(reason(&status), "FIELD_REQUIRED");
}

#[tokio::test]
async fn a_library_killed_mid_upload_lists_nothing_half_stored_and_takes_the_retry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = content(6 * 1024 * 1024, 3);
    let (sender, receiver) = tokio::sync::mpsc::channel::<pb::PutBlobRequest>(4);
    // `library` in the data directory, as nothing else is configured.
    let store = dir.path().join("library");
    {
        let mut library = Library::start(dir.path(), &[]);
        let mut client = library.client().await;
        let upload = tokio::spawn(async move {
            client
                .put_blob(authed(tokio_stream::wrappers::ReceiverStream::new(
                    receiver,
                )))
                .await
        });
        // All but the last bit (and no `last` message): far enough to
        // have written a part to disk.
        let mut messages = chunks_of(&spec[..spec.len() - 512 * 1024], 0);
        messages.pop();
        for message in messages {
            sender.send(message).await.expect("send");
        }
        let written = |dir: &Path| {
            files_under(&dir.join("uploads"))
                .iter()
                .any(|file| file.metadata().is_ok_and(|meta| meta.len() > 0))
        };
        // A deadline, not a measure: a loaded machine may take its time.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while !written(&store) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the upload never reached the disk"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        library.process.0.kill().expect("kill");
        library.process.0.wait().expect("wait");
        let status = upload
            .await
            .expect("join")
            .expect_err("the library died mid-upload");
        assert_ne!(status.code(), Code::Ok);
    }
    assert!(
        !files_under(&store.join("uploads")).is_empty(),
        "the crash left its upload behind"
    );
    assert!(
        files_under(&store.join("blobs")).is_empty(),
        "nothing under blobs/"
    );

    let library = Library::start(dir.path(), &[]);
    let mut client = library.client().await;
    assert_eq!(stats(&mut client).await, (0, 0));
    assert!(listed(&mut client).await.is_empty());
    let stored = put(&mut client, &spec).await.expect("the retry");
    assert_eq!(get(&mut client, &stored.sha256).await.expect("get"), spec);
}

/// The library holds every project's documents: it does not start without
/// a service token, not even on loopback.
#[test]
fn the_library_will_not_start_without_a_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = Command::new(env!("CARGO_BIN_EXE_anima-library"))
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env_remove("ANIMA_LIBRARY_TOKENS")
        .env_remove("ANIMA_CONFIG")
        .output()
        .expect("run anima-library");
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("ANIMA_LIBRARY_TOKENS"), "{said}");
}

/// A one-page PDF, made with lopdf (what pdf-extract reads with), whose
/// page shows `text` and, when `self_drawing`, also draws a form that
/// draws itself: pdf-extract follows it until its stack overflows.
fn pdf(text: &str, self_drawing: bool) -> Vec<u8> {
    use lopdf::{
        Document, Object, Stream,
        content::{Content, Operation},
        dictionary,
    };
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let font_id = doc.add_object(dictionary! {
        "Type" => "Font",
        "Subtype" => "Type1",
        "BaseFont" => "Courier",
    });
    let form_id = doc.new_object_id();
    let mut operations = vec![
        Operation::new("BT", vec![]),
        Operation::new("Tf", vec!["F1".into(), 12.into()]),
        Operation::new("Td", vec![72.into(), 700.into()]),
        Operation::new("Tj", vec![Object::string_literal(text)]),
        Operation::new("ET", vec![]),
    ];
    if self_drawing {
        operations.push(Operation::new("Do", vec!["X0".into()]));
    }
    let resources = dictionary! {
        "Font" => dictionary! { "F1" => font_id },
        "XObject" => dictionary! { "X0" => form_id },
    };
    let form = Content {
        operations: vec![Operation::new("Do", vec!["X0".into()])],
    };
    doc.objects.insert(
        form_id,
        Object::Stream(Stream::new(
            dictionary! {
                "Type" => "XObject",
                "Subtype" => "Form",
                "BBox" => vec![0.into(), 0.into(), 10.into(), 10.into()],
                "Resources" => resources.clone(),
            },
            form.encode().expect("form"),
        )),
    );
    let resources_id = doc.add_object(resources);
    let content = Content { operations };
    let content_id = doc.add_object(Stream::new(
        dictionary! {},
        content.encode().expect("content"),
    ));
    let page_id = doc.add_object(dictionary! {
        "Type" => "Page",
        "Parent" => pages_id,
        "Contents" => content_id,
    });
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages",
            "Kids" => vec![page_id.into()],
            "Count" => 1,
            "Resources" => resources_id,
            "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
        }),
    );
    let catalog_id = doc.add_object(dictionary! {
        "Type" => "Catalog",
        "Pages" => pages_id,
    });
    doc.trailer.set("Root", catalog_id);
    let mut bytes = Vec::new();
    doc.save_to(&mut bytes).expect("save");
    bytes
}

async fn text_of(
    client: &mut LibraryServiceClient<Channel>,
    content: &[u8],
) -> pb::ExtractTextResponse {
    let stored = put(client, content).await.expect("put");
    client
        .extract_text(authed(pb::ExtractTextRequest {
            sha256: stored.sha256,
            doc_type: "attachment".into(),
            media_type: "application/pdf".into(),
            file_name: "report.pdf".into(),
        }))
        .await
        .expect("extract")
        .into_inner()
}

/// PDFs are read in a child process under limits: a PDF that breaks the
/// reader (here, one that draws itself without end) costs that child, not
/// the library, which says why the PDF has no text and goes on serving.
#[tokio::test]
async fn pdfs_are_read_apart_so_a_hostile_one_cannot_take_the_library_down() {
    let dir = tempfile::tempdir().expect("tempdir");
    let library = Library::start(dir.path(), &[]);
    let mut client = library.client().await;

    let report = text_of(
        &mut client,
        &pdf("Quarterly VAT report for the web shop", false),
    )
    .await;
    assert_eq!(report.format, "pdf");
    assert_eq!(report.not_indexed_reason, "");
    assert!(report.text.contains("Quarterly VAT report"), "{report:?}");

    let hostile = text_of(&mut client, &pdf("Innocent looking", true)).await;
    assert_eq!(hostile.text, "");
    assert_eq!(
        hostile.not_indexed_reason,
        "the PDF could not be read within the memory and time it may take",
        "the reader died (its stack overflowed)"
    );
    let broken = text_of(&mut client, b"%PDF-1.5\nnot really a PDF").await;
    assert!(
        broken
            .not_indexed_reason
            .starts_with("the PDF could not be read"),
        "{broken:?}"
    );

    // Still serving.
    let again = text_of(&mut client, &pdf("Second report", false)).await;
    assert!(again.text.contains("Second report"), "{again:?}");
}
