//! The library's documents: a file (markdown, text, a patch, a mail's
//! attachment) with its title, type and size, kept in one project and
//! optionally on one of its work items. The bytes are kept by Seshat's
//! Library (anima-library), once per SHA-256; a document names them.

use serde::{Deserialize, Serialize};

use crate::planning::Actor;

/// The largest document the library takes: 100 MiB. A mailbox's size
/// limit cannot exceed it, so every attachment of mail it takes fits.
pub const MAX_DOCUMENT_SIZE: usize = 100 * 1024 * 1024;

/// The most bytes one message of a streamed upload carries (to
/// DocumentService and to the library).
pub const MAX_UPLOAD_CHUNK: usize = 1024 * 1024;

/// Characters of text kept per document for search.
pub const MAX_SEARCH_TEXT: usize = 1024 * 1024;

/// The most characters of a library search's query.
pub const MAX_QUERY_CHARS: usize = 500;

/// A library search's query without its surrounding blanks: required, and
/// at most [`MAX_QUERY_CHARS`] characters.
pub fn search_query(raw: &str) -> Result<&str, crate::DomainError> {
    let query = raw.trim();
    if query.is_empty() {
        return Err(crate::DomainError::invalid_argument(
            crate::error::reason::FIELD_REQUIRED,
            "query is required",
        ));
    }
    crate::validate::max_chars("query", query, MAX_QUERY_CHARS)?;
    Ok(query)
}

/// The most projects one search of the library looks in (a search without
/// a project looks in every project of the caller's).
pub const MAX_SEARCH_PROJECTS: usize = 1_000;

named_enum!(
    /// What a document is.
    DocumentType, "document type" {
        /// Markdown text.
        Markdown = "markdown",
        /// Plain text.
        Text = "text",
        /// A patch (diff).
        Patch = "patch",
        /// A file that came with a message or mail.
        Attachment = "attachment",
    }
);

impl DocumentType {
    /// The MIME type of a document of this type that names none.
    pub fn default_media_type(self) -> &'static str {
        match self {
            DocumentType::Markdown => "text/markdown",
            DocumentType::Text => "text/plain",
            DocumentType::Patch => "text/x-diff",
            DocumentType::Attachment => "application/octet-stream",
        }
    }
}

/// A stored document, without its content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Document {
    /// UUIDv7.
    pub id: String,
    /// Its project.
    pub project_id: String,
    /// The work item it belongs to, if any.
    pub work_item_id: Option<String>,
    /// Title (a file name for attachments).
    pub title: String,
    /// Kind.
    pub doc_type: DocumentType,
    /// MIME type.
    pub media_type: String,
    /// Content size in bytes.
    pub size_bytes: i64,
    /// SHA-256 of the content, lower-case hex.
    pub sha256: String,
    /// Why search has no text of it, when it has none.
    pub not_indexed_reason: Option<String>,
    /// Who added it.
    pub created_by: Actor,
    /// Microseconds since the epoch.
    pub created_at: i64,
    /// An attachment of mail that waits for review (held, or in triage):
    /// kept for the review and listed in its project, but neither searched
    /// nor shown to agents until someone posts the mail to a work item, so
    /// what an unchecked sender sent never reaches an agent by itself.
    pub awaits_review: bool,
}

/// How the library names bytes: their SHA-256, lower-case hex.
pub fn content_sha256(content: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(content))
}

/// What search has of a document: the text the library read from it, or
/// why there is none (it is kept and listed all the same).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchText {
    /// Its text, at most [`MAX_SEARCH_TEXT`] characters.
    Text(String),
    /// Why it has no text (a binary file, a PDF that cannot be read).
    NotIndexed(String),
}

/// Bytes the library holds, as a document names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBlob {
    /// SHA-256 of the content, lower-case hex.
    pub sha256: String,
    /// Content size in bytes.
    pub size_bytes: i64,
}

/// A document to store, once the library holds its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDocument {
    /// Its project.
    pub project_id: String,
    /// The work item it belongs to, if any (must be in the project).
    pub work_item_id: Option<String>,
    /// Title.
    pub title: String,
    /// Kind.
    pub doc_type: DocumentType,
    /// MIME type.
    pub media_type: String,
    /// Its bytes in the library.
    pub blob: StoredBlob,
    /// What search has of it.
    pub text: SearchText,
    /// Who adds it.
    pub author: Actor,
}

/// Bytes of a textual document's start that hold all of its searchable
/// text (a character has at most four).
pub const SEARCH_TEXT_BYTES: usize = 4 * MAX_SEARCH_TEXT;

/// A part of a document's text, as readers page through it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextPart {
    /// At most the asked-for characters, from `offset` on.
    pub text: String,
    /// Characters of the whole text.
    pub total_chars: u64,
    /// Where the next part starts; `None` after the last.
    pub next_offset: Option<u64>,
}

impl TextPart {
    /// `text`, read from character `offset` on of a text `total_chars`
    /// long.
    pub fn at(offset: u64, text: String, total_chars: u64) -> Self {
        let end = offset.saturating_add(text.chars().count() as u64);
        Self {
            text,
            total_chars,
            next_offset: (end < total_chars).then_some(end),
        }
    }
}
