//! `anima doc …`: the library's documents (mail attachments among them).

use std::path::PathBuf;

use anima_core::document::DocumentType;
use anima_proto::v1::{self as pb};
use anyhow::Context;
use clap::Subcommand;
use serde_json::{Value, json};

use crate::{
    client::{GlobalArgs, session_for},
    output,
};

use super::{project_id, scope, time};

/// `anima doc …`
#[derive(Subcommand)]
pub enum DocumentCommand {
    /// List a project's documents, or one work item's.
    List {
        #[command(flatten)]
        global: GlobalArgs,
        /// Project id or name.
        #[arg(long, short, env = "ANIMA_PROJECT")]
        project: Option<String>,
        /// Only this work item's (id, or key such as WI-12 with --project).
        #[arg(long)]
        work_item: Option<String>,
    },
    /// Show a document; with --output, save its content there (`-` for
    /// standard output).
    Get {
        #[command(flatten)]
        global: GlobalArgs,
        /// Document id.
        id: String,
        /// Where to write the content.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Add a file to the library.
    Upload {
        #[command(flatten)]
        global: GlobalArgs,
        /// The file.
        file: PathBuf,
        /// Project id or name.
        #[arg(long, short, env = "ANIMA_PROJECT")]
        project: Option<String>,
        /// Put it on this work item (id, or key with --project).
        #[arg(long)]
        work_item: Option<String>,
        /// Title [default: the file name].
        #[arg(long)]
        title: Option<String>,
        /// markdown, text, patch or attachment [default: by extension].
        #[arg(long = "type")]
        doc_type: Option<String>,
        /// MIME type [default: by type].
        #[arg(long, default_value = "")]
        media_type: String,
    },
    /// Delete a document.
    Delete {
        #[command(flatten)]
        global: GlobalArgs,
        /// Document id.
        id: String,
    },
    /// Find documents by words, identifiers (WI-12, ERR_CONN_RESET) or
    /// what they are about, best first.
    Search {
        #[command(flatten)]
        global: GlobalArgs,
        /// Project id or name [default: every project you may read].
        #[arg(long, short, env = "ANIMA_PROJECT")]
        project: Option<String>,
        /// Words, identifiers or a question (at most 500 characters).
        query: String,
        /// Most hits to show (1–100).
        #[arg(long, default_value_t = 20)]
        limit: i32,
    },
    /// Server admins: compute the library's vectors again, and follow it
    /// until every chunk has one. Without --all, only vectors another
    /// embedding model made (the library does that by itself after a model
    /// change; this shows how far it is).
    Reindex {
        #[command(flatten)]
        global: GlobalArgs,
        /// Every vector, also those the current model made.
        #[arg(long)]
        all: bool,
        /// Start it and return at once.
        #[arg(long)]
        no_wait: bool,
    },
}

/// Shows the library's vectors being computed until every chunk has one.
async fn follow_reindex(session: &anima_client::Session) -> anyhow::Result<()> {
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {msg} [{bar:40}] {pos}/{len} chunks ({per_sec}, {eta} left)",
        )?
        .progress_chars("=> "),
    );
    loop {
        let status = session.call(pb::GetLibraryStatusRequest {}).await?;
        bar.set_length(u64::try_from(status.chunks).unwrap_or(0));
        bar.set_position(u64::try_from(status.chunks_embedded).unwrap_or(0));
        bar.set_message(match status.model.as_str() {
            "" => "waiting for anima-ai".to_owned(),
            model => model.to_owned(),
        });
        if !status.model.is_empty() && status.chunks_embedded >= status.chunks {
            bar.finish();
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

fn type_name(raw: i32) -> &'static str {
    match pb::DocumentType::try_from(raw) {
        Ok(pb::DocumentType::Markdown) => "markdown",
        Ok(pb::DocumentType::Text) => "text",
        Ok(pb::DocumentType::Patch) => "patch",
        Ok(pb::DocumentType::Attachment) => "attachment",
        _ => "unknown",
    }
}

fn wire_type(doc_type: DocumentType) -> pb::DocumentType {
    match doc_type {
        DocumentType::Markdown => pb::DocumentType::Markdown,
        DocumentType::Text => pb::DocumentType::Text,
        DocumentType::Patch => pb::DocumentType::Patch,
        DocumentType::Attachment => pb::DocumentType::Attachment,
    }
}

/// The type a file's extension suggests.
fn type_of(file: &std::path::Path) -> DocumentType {
    match file.extension().and_then(|ext| ext.to_str()) {
        Some("md" | "markdown") => DocumentType::Markdown,
        Some("txt" | "log") => DocumentType::Text,
        Some("patch" | "diff") => DocumentType::Patch,
        _ => DocumentType::Attachment,
    }
}

fn document_json(document: &pb::Document) -> Value {
    json!({
        "id": document.id,
        "project_id": document.project_id,
        "work_item_id": document.work_item_id,
        "title": document.title,
        "type": type_name(document.r#type),
        "media_type": document.media_type,
        "size_bytes": document.size_bytes,
        "sha256": document.sha256,
        "create_time": time(&document.create_time),
        "searchable": document.not_indexed_reason.is_empty(),
        "not_indexed_reason": document.not_indexed_reason,
    })
}

fn document_row(document: &pb::Document) -> Vec<String> {
    vec![
        document.id.clone(),
        document.title.clone(),
        type_name(document.r#type).into(),
        document.media_type.clone(),
        document.size_bytes.to_string(),
        time(&document.create_time),
        match document.not_indexed_reason.as_str() {
            "" => "yes".into(),
            why => format!("no: {why}"),
        },
    ]
}

const DOCUMENT_HEADER: &[&str] = &[
    "ID",
    "TITLE",
    "TYPE",
    "MEDIA TYPE",
    "BYTES",
    "CREATED",
    "SEARCHABLE",
];

output::impl_row!(pb::Document, DOCUMENT_HEADER, document_json, document_row);

/// `anima doc …`
pub async fn document(command: DocumentCommand) -> anyhow::Result<()> {
    match command {
        DocumentCommand::List {
            global,
            project,
            work_item,
        } => {
            let session = session_for(&global).await?;
            let (project_id, work_item_id) =
                scope(&session, project.as_deref(), work_item.as_deref()).await?;
            let documents = session
                .list(pb::ListDocumentsRequest {
                    project_id: project_id.clone(),
                    work_item_id: work_item_id.clone(),
                    ..Default::default()
                })
                .await?;
            output::list(global.json, &documents);
        }
        DocumentCommand::Get { global, id, output } => {
            let session = session_for(&global).await?;
            let document = session.call(pb::GetDocumentRequest { id }).await?;
            match output {
                Some(path) => {
                    let written = download(&session, &document.id, &path).await?;
                    if path.as_os_str() != "-" {
                        eprintln!("{written} bytes written to {}", path.display());
                    }
                }
                None if global.json => output::json(&document_json(&document)),
                None => output::table(DOCUMENT_HEADER, &[document_row(&document)]),
            }
        }
        DocumentCommand::Upload {
            global,
            file,
            project,
            work_item,
            title,
            doc_type,
            media_type,
        } => {
            let doc_type = match doc_type {
                Some(name) => name.parse()?,
                None => type_of(&file),
            };
            let opened = tokio::fs::File::open(&file)
                .await
                .with_context(|| format!("cannot read {}", file.display()))?;
            let title = match title {
                Some(title) => title,
                None => file
                    .file_name()
                    .and_then(|name| name.to_str())
                    .context("the file has no name; give --title")?
                    .to_owned(),
            };
            let session = session_for(&global).await?;
            let (project_id, work_item_id) =
                scope(&session, project.as_deref(), work_item.as_deref()).await?;
            let metadata = pb::UploadDocumentRequest {
                project_id,
                work_item_id,
                title,
                r#type: wire_type(doc_type) as i32,
                media_type,
                ..Default::default()
            };
            let document = session
                .upload_document(metadata, file_chunks(opened))
                .await
                .with_context(|| format!("uploading {}", file.display()))?;
            output::one(global.json, &document);
        }
        DocumentCommand::Delete { global, id } => {
            let session = session_for(&global).await?;
            session
                .call(pb::DeleteDocumentRequest { id: id.clone() })
                .await?;
            if global.json {
                output::json(&json!({"deleted": id}));
            } else {
                println!("deleted {id}");
            }
        }
        DocumentCommand::Reindex {
            global,
            all,
            no_wait,
        } => {
            let session = session_for(&global).await?;
            let pending = session
                .call(pb::ReindexLibraryRequest { all })
                .await?
                .pending;
            if no_wait || global.json {
                if global.json {
                    output::json(&json!({"pending": pending}));
                } else {
                    println!("{pending} chunks wait for a vector");
                }
                return Ok(());
            }
            follow_reindex(&session).await?;
        }
        DocumentCommand::Search {
            global,
            project,
            query,
            limit,
        } => {
            let session = session_for(&global).await?;
            let project_id = match project {
                Some(project) => project_id(&session, &project).await?,
                None => String::new(),
            };
            let hits = session
                .call(pb::SearchDocumentsRequest {
                    project_id,
                    query,
                    limit,
                    ..Default::default()
                })
                .await?
                .hits;
            if global.json {
                output::json(&Value::Array(
                    hits.iter()
                        .map(|hit| {
                            json!({
                                "document": hit.document.as_ref().map(document_json),
                                "snippet": hit.snippet,
                                "score": hit.score,
                                "chunk": hit.chunk,
                            })
                        })
                        .collect(),
                ));
            } else {
                output::table(
                    &["ID", "TITLE", "MATCH"],
                    &hits
                        .iter()
                        .map(|hit| {
                            let document = hit.document.clone().unwrap_or_default();
                            vec![document.id, document.title, hit.snippet.clone()]
                        })
                        .collect::<Vec<_>>(),
                );
            }
        }
    }
    Ok(())
}

/// A file's bytes as upload chunks, read as they are sent.
fn file_chunks(
    file: tokio::fs::File,
) -> impl futures_util::Stream<Item = std::io::Result<Vec<u8>>> + Send + 'static {
    use tokio::io::AsyncReadExt;
    futures_util::stream::try_unfold(file, |mut file| async move {
        let mut chunk = vec![0; UPLOAD_CHUNK];
        let read = file.read(&mut chunk).await?;
        if read == 0 {
            return Ok(None);
        }
        chunk.truncate(read);
        Ok(Some((chunk, file)))
    })
}

/// Bytes per upload message (well under the server's limit of one MiB).
const UPLOAD_CHUNK: usize = 256 * 1024;

/// Writes a document's bytes to `path` (`-`: standard output) as they
/// arrive; a file is written beside its name and renamed when complete,
/// so a download that breaks off leaves no partial file. Returns the bytes
/// written.
async fn download(
    session: &anima_client::Session,
    id: &str,
    path: &std::path::Path,
) -> anyhow::Result<u64> {
    use tokio::io::AsyncWriteExt;
    let mut chunks = session.download_document(id).await?;
    let mut written = 0u64;
    if path.as_os_str() == "-" {
        let mut stdout = tokio::io::stdout();
        while let Some(chunk) = chunks.message().await? {
            stdout.write_all(&chunk.content).await?;
            written += chunk.content.len() as u64;
        }
        stdout.flush().await?;
        return Ok(written);
    }
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = std::path::PathBuf::from(partial);
    let mut file = tokio::fs::File::create(&partial)
        .await
        .with_context(|| format!("cannot write {}", partial.display()))?;
    let received: anyhow::Result<()> = async {
        while let Some(chunk) = chunks.message().await? {
            file.write_all(&chunk.content).await?;
            written += chunk.content.len() as u64;
        }
        file.flush().await?;
        Ok(())
    }
    .await;
    if let Err(error) = received {
        let _ = tokio::fs::remove_file(&partial).await;
        return Err(error);
    }
    tokio::fs::rename(&partial, path)
        .await
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(written)
}
