//! Text out of documents, for search: markdown, plain text and source
//! code as they are, a patch with the files it changes named first, HTML
//! (mail) as readable text, PDF through `pdf-extract`. A document with no
//! text to read (a binary file, a PDF that fails to parse or has no text
//! layer, bytes declared as text that are not) gets the reason instead,
//! shown beside it: it is kept and listed, only not searchable.
//!
//! A PDF is read in a child process ([`PdfReader`]) under memory and CPU
//! limits and a deadline: anyone who can mail an attachment can hand the
//! library a PDF that overflows pdf-extract's stack, inflates a stream to
//! gigabytes or draws itself without end, and none of that may take the
//! service (under `anima up`, the whole server) down.

use anima_core::document::{MAX_SEARCH_TEXT, SEARCH_TEXT_BYTES};

/// The most bytes of a PDF read for its text: parsing holds the whole
/// file, and more than this is rarely text anyone searches.
pub const MAX_PDF_BYTES: usize = 32 * 1024 * 1024;

/// The most bytes of HTML read for its text (markup is most of it).
pub const MAX_HTML_BYTES: usize = 8 * 1024 * 1024;

/// Columns of HTML's text lines: wide enough that paragraphs stay whole.
const HTML_LINE_WIDTH: usize = 4096;

/// What a document's text is read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Markdown.
    Markdown,
    /// Plain text.
    Text,
    /// A unified diff.
    Patch,
    /// HTML, such as a mail's body.
    Html,
    /// Source code or a configuration file, and its language where the
    /// library knows its syntax.
    Code(Option<Language>),
    /// PDF.
    Pdf,
}

impl Format {
    /// How the format is named on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Markdown => "markdown",
            Format::Text => "text",
            Format::Patch => "patch",
            Format::Html => "html",
            Format::Code(_) => "code",
            Format::Pdf => "pdf",
        }
    }

    /// The most bytes of the document this format reads.
    pub fn bytes_read(self) -> usize {
        match self {
            Format::Pdf => MAX_PDF_BYTES,
            Format::Html => MAX_HTML_BYTES,
            _ => SEARCH_TEXT_BYTES,
        }
    }
}

/// File extensions of source code and configuration read as text, beside
/// those of a [`Language`].
const CODE_EXTENSIONS: &[&str] = &[
    "kt",
    "cc",
    "cpp",
    "hpp",
    "cs",
    "rb",
    "php",
    "swift",
    "scala",
    "sh",
    "bash",
    "zsh",
    "sql",
    "toml",
    "yaml",
    "yml",
    "json",
    "xml",
    "proto",
    "slint",
    "css",
    "scss",
    "lua",
    "pl",
    "r",
    "ex",
    "exs",
    "erl",
    "hs",
    "ml",
    "ini",
    "cfg",
    "conf",
    "dockerfile",
    "makefile",
    "gradle",
];

/// A programming language whose syntax the library splits code along.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    /// Rust.
    Rust,
    /// Python.
    Python,
    /// JavaScript, JSX included.
    JavaScript,
    /// TypeScript.
    TypeScript,
    /// TypeScript with JSX.
    Tsx,
    /// Go.
    Go,
    /// Java.
    Java,
    /// C.
    C,
}

impl Language {
    /// The language of a file with this (lowercase) extension or MIME
    /// type, if it is one of those above.
    fn of(extension: &str, media_type: &str) -> Option<Self> {
        let language = match (extension, media_type) {
            ("rs", _) | (_, "text/x-rust" | "text/rust") => Language::Rust,
            ("py" | "pyi", _) | (_, "text/x-python" | "application/x-python") => Language::Python,
            ("js" | "mjs" | "cjs" | "jsx", _)
            | (_, "text/javascript" | "application/javascript") => Language::JavaScript,
            ("ts" | "mts" | "cts", _) | (_, "text/x-typescript" | "application/typescript") => {
                Language::TypeScript
            }
            ("tsx", _) => Language::Tsx,
            ("go", _) | (_, "text/x-go") => Language::Go,
            ("java", _) | (_, "text/x-java" | "text/x-java-source") => Language::Java,
            ("c" | "h", _) | (_, "text/x-c" | "text/x-csrc" | "text/x-chdr") => Language::C,
            _ => return None,
        };
        Some(language)
    }
}

/// MIME types of source code and configuration outside `text/*`.
const CODE_MEDIA_TYPES: &[&str] = &[
    "application/javascript",
    "application/json",
    "application/xml",
    "application/toml",
    "application/yaml",
    "application/x-yaml",
    "application/x-sh",
    "application/sql",
    "application/x-httpd-php",
];

/// How to read a document's text from what it says it is: its type
/// (`markdown`, `text`, `patch`, `attachment`), MIME type and file name;
/// `None` when it is not text.
pub fn format_of(doc_type: &str, media_type: &str, file_name: &str) -> Option<Format> {
    let media_type = media_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let extension = file_name
        .rsplit_once('.')
        .map(|(_, extension)| extension.to_ascii_lowercase())
        .unwrap_or_else(|| file_name.to_ascii_lowercase());
    let format = if media_type == "application/pdf" || extension == "pdf" {
        Format::Pdf
    } else if media_type == "text/html" || extension == "html" || extension == "htm" {
        Format::Html
    } else if doc_type == "patch"
        || matches!(media_type.as_str(), "text/x-diff" | "text/x-patch")
        || extension == "diff"
        || extension == "patch"
    {
        Format::Patch
    } else if doc_type == "markdown" || media_type == "text/markdown" || extension == "md" {
        Format::Markdown
    } else if let Some(language) = Language::of(&extension, &media_type) {
        Format::Code(Some(language))
    } else if CODE_MEDIA_TYPES.contains(&media_type.as_str())
        || media_type.starts_with("text/x-")
        || CODE_EXTENSIONS.contains(&extension.as_str())
    {
        Format::Code(None)
    } else if doc_type == "text" || media_type.starts_with("text/") || extension == "txt" {
        Format::Text
    } else {
        return None;
    };
    Some(format)
}

/// A document's searchable text, or why it has none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Extracted {
    /// The text (at most [`MAX_SEARCH_TEXT`] characters).
    Text(String),
    /// Why there is no text.
    NotIndexed(String),
}

/// The text of `content` read as `format`; `complete` says whether
/// `content` is the whole document or only its first
/// [`Format::bytes_read`] bytes. CPU work (PDF parsing above all): call
/// it on a blocking thread.
pub fn extract(format: Format, content: &[u8], complete: bool) -> Extracted {
    let text = match format {
        Format::Markdown | Format::Text | Format::Code(_) => match decode(content, complete) {
            Ok(text) => text.to_owned(),
            Err(why) => return Extracted::NotIndexed(why),
        },
        Format::Patch => match decode(content, complete) {
            Ok(text) => patch_text(text),
            Err(why) => return Extracted::NotIndexed(why),
        },
        // No decoration (`**bold**`) and no wrapping: search matches the
        // words as they are shown, and a phrase must not break at a line.
        Format::Html => match html2text::config::plain_no_decorate()
            .string_from_read(content, HTML_LINE_WIDTH)
        {
            Ok(text) => text,
            Err(error) => {
                return Extracted::NotIndexed(format!("the HTML could not be read: {error}"));
            }
        },
        Format::Pdf if !complete => {
            return Extracted::NotIndexed(format!(
                "the PDF is larger than the {} MiB whose text is read",
                MAX_PDF_BYTES / (1024 * 1024)
            ));
        }
        Format::Pdf => match pdf_text(content) {
            Ok(text) => text,
            Err(why) => return Extracted::NotIndexed(why),
        },
    };
    // No NUL: SQLite's length and substr stop at one, and PostgreSQL
    // refuses text holding one (a PDF's font map can produce it).
    let text: String = text
        .chars()
        .filter(|c| *c != '\0')
        .take(MAX_SEARCH_TEXT)
        .collect();
    if text.trim().is_empty() {
        return Extracted::NotIndexed(match format {
            Format::Pdf => "the PDF has no text layer (a scan?)".into(),
            _ => "there is no text in it".into(),
        });
    }
    Extracted::Text(text)
}

/// `content` as UTF-8 text; the start of a longer content may end inside
/// a character. Bytes that are not text (invalid UTF-8, NUL) are refused.
fn decode(content: &[u8], complete: bool) -> Result<&str, String> {
    let not_text = || "it is declared as text, but its bytes are not UTF-8 text".to_owned();
    let text = match std::str::from_utf8(content) {
        Ok(text) => text,
        Err(error) if !complete && error.error_len().is_none() => {
            std::str::from_utf8(&content[..error.valid_up_to()]).map_err(|_| not_text())?
        }
        Err(_) => return Err(not_text()),
    };
    if text.contains('\0') {
        return Err(not_text());
    }
    Ok(text)
}

/// A unified diff with the files it changes named first, so a search for
/// a file finds the patch. Written here: the diff crates parse into
/// structures to apply, and only the file names are wanted.
fn patch_text(diff: &str) -> String {
    let mut files: Vec<&str> = Vec::new();
    let mut hunks = 0;
    for line in diff.lines() {
        if let Some(path) = line
            .strip_prefix("+++ ")
            .or_else(|| line.strip_prefix("--- "))
        {
            let path = path.split('\t').next().unwrap_or_default().trim();
            let path = path
                .strip_prefix("a/")
                .or_else(|| path.strip_prefix("b/"))
                .unwrap_or(path);
            if path != "/dev/null" && !files.contains(&path) {
                files.push(path);
            }
        } else if line.starts_with("@@") {
            hunks += 1;
        }
    }
    if files.is_empty() {
        return diff.to_owned();
    }
    format!(
        "Patch of {} file{} in {hunks} hunk{}: {}\n\n{diff}",
        files.len(),
        if files.len() == 1 { "" } else { "s" },
        if hunks == 1 { "" } else { "s" },
        files.join(", ")
    )
}

/// A PDF's text, read in this process: only a [`PdfReader`] child calls
/// it on untrusted input. `pdf-extract` panics on some malformed files, so
/// a panic is caught and reported like any other failure to parse.
fn pdf_text(content: &[u8]) -> Result<String, String> {
    let parsed = std::panic::catch_unwind(|| pdf_extract::extract_text_from_mem(content));
    match parsed {
        Ok(Ok(text)) => Ok(text),
        Ok(Err(error)) => Err(format!("the PDF could not be read: {error}")),
        Err(_) => Err("the PDF could not be read: its structure is broken".into()),
    }
}

/// The first argument that makes a binary a PDF reader instead of itself
/// ([`serve_pdf_reader_if_asked`]).
pub const PDF_READER_ARG: &str = "__anima-read-pdf";

/// The memory a PDF reader may map, and the CPU seconds it may use.
const PDF_READER_MEMORY: u64 = 1024 * 1024 * 1024;
const PDF_READER_CPU_SECONDS: u64 = 30;

/// How long a PDF reader may take before it is killed.
const PDF_READER_DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);

/// PDF readers running at once.
const PDF_READERS: usize = 2;

/// The exit code of a reader that found no text (the reason on stdout).
const NO_TEXT: i32 = 3;

/// Reads PDFs in child processes of a binary that calls
/// [`serve_pdf_reader_if_asked`] first thing in `main` (`anima` and
/// `anima-library` do): one at a time per permit, each under limits.
#[derive(Debug, Clone)]
pub struct PdfReader {
    program: std::path::PathBuf,
    permits: std::sync::Arc<tokio::sync::Semaphore>,
}

impl PdfReader {
    /// Readers that run `program` (a binary that serves them).
    pub fn new(program: std::path::PathBuf) -> Self {
        Self {
            program,
            permits: std::sync::Arc::new(tokio::sync::Semaphore::new(PDF_READERS)),
        }
    }

    /// Readers that run this very binary.
    pub fn this_binary() -> std::io::Result<Self> {
        Ok(Self::new(std::env::current_exe()?))
    }

    /// The text of `content`, a whole PDF, read by a child process.
    pub async fn read(&self, content: Vec<u8>) -> Extracted {
        let gone = || Extracted::NotIndexed("the PDF could not be read".into());
        let Ok(_permit) = self.permits.acquire().await else {
            return gone();
        };
        let child = tokio::process::Command::new(&self.program)
            .arg(PDF_READER_ARG)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn();
        let mut child = match child {
            Ok(child) => child,
            Err(error) => {
                tracing::warn!(%error, program = %self.program.display(), "starting a PDF reader");
                return gone();
            }
        };
        if let Some(mut stdin) = child.stdin.take() {
            tokio::spawn(async move {
                use tokio::io::AsyncWriteExt;
                // A reader that dies early closes the pipe; its exit says why.
                let _ = stdin.write_all(&content).await;
            });
        }
        match tokio::time::timeout(PDF_READER_DEADLINE, child.wait_with_output()).await {
            Err(_) => Extracted::NotIndexed(format!(
                "reading the PDF took longer than {} s",
                PDF_READER_DEADLINE.as_secs()
            )),
            Ok(Err(error)) => {
                tracing::warn!(%error, "waiting for a PDF reader");
                gone()
            }
            Ok(Ok(output)) => {
                let said = String::from_utf8_lossy(&output.stdout).into_owned();
                match output.status.code() {
                    Some(0) => Extracted::Text(said),
                    Some(NO_TEXT) => Extracted::NotIndexed(said),
                    // Killed by its limits (memory, CPU, stack).
                    _ => Extracted::NotIndexed(
                        "the PDF could not be read within the memory and time it may take".into(),
                    ),
                }
            }
        }
    }
}

/// When this process was started as a PDF reader (its first argument is
/// [`PDF_READER_ARG`]): limits itself, reads a PDF from standard input,
/// writes its text (or, with exit code 3, why it has none) to standard
/// output and exits. Otherwise returns at once. Call it first in `main`.
pub fn serve_pdf_reader_if_asked() {
    if std::env::args().nth(1).as_deref() != Some(PDF_READER_ARG) {
        return;
    }
    use std::io::{Read, Write};
    let limited = rlimit::setrlimit(rlimit::Resource::AS, PDF_READER_MEMORY, PDF_READER_MEMORY)
        .and_then(|()| {
            rlimit::setrlimit(
                rlimit::Resource::CPU,
                PDF_READER_CPU_SECONDS,
                PDF_READER_CPU_SECONDS,
            )
        });
    if limited.is_err() {
        std::process::exit(1);
    }
    let mut content = Vec::new();
    let read = std::io::stdin()
        .take(MAX_PDF_BYTES as u64)
        .read_to_end(&mut content);
    let (code, said) = match read.map(|_| extract(Format::Pdf, &content, true)) {
        Ok(Extracted::Text(text)) => (0, text),
        Ok(Extracted::NotIndexed(why)) => (NO_TEXT, why),
        Err(_) => (1, String::new()),
    };
    let written = std::io::stdout().write_all(said.as_bytes());
    std::process::exit(if written.is_ok() { code } else { 1 });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_of(doc_type: &str, media_type: &str, name: &str, content: &[u8]) -> Extracted {
        let format = format_of(doc_type, media_type, name).expect("a text format");
        extract(format, content, true)
    }

    #[test]
    fn formats_follow_type_media_type_and_name() {
        let rust = Some(Format::Code(Some(Language::Rust)));
        for (doc_type, media_type, name, format) in [
            ("attachment", "application/pdf", "x", Some(Format::Pdf)),
            ("attachment", "", "Report.PDF", Some(Format::Pdf)),
            (
                "attachment",
                "text/html; charset=utf-8",
                "",
                Some(Format::Html),
            ),
            ("patch", "text/plain", "fix", Some(Format::Patch)),
            ("attachment", "", "fix.diff", Some(Format::Patch)),
            ("markdown", "text/markdown", "spec", Some(Format::Markdown)),
            ("attachment", "text/x-rust", "lib", rust),
            ("attachment", "application/octet-stream", "main.rs", rust),
            (
                "attachment",
                "text/javascript",
                "app",
                Some(Format::Code(Some(Language::JavaScript))),
            ),
            (
                "attachment",
                "",
                "View.TSX",
                Some(Format::Code(Some(Language::Tsx))),
            ),
            ("attachment", "", "deploy.yaml", Some(Format::Code(None))),
            ("text", "", "notes", Some(Format::Text)),
            ("attachment", "application/octet-stream", "dump.bin", None),
            ("attachment", "image/png", "shot.png", None),
        ] {
            assert_eq!(
                format_of(doc_type, media_type, name),
                format,
                "{doc_type} {media_type:?} {name:?}"
            );
        }
    }

    #[test]
    fn text_markdown_and_code_are_read_as_they_are() {
        assert_eq!(
            text_of(
                "markdown",
                "text/markdown",
                "spec.md",
                "# Export\nUse `--full`.".as_bytes()
            ),
            Extracted::Text("# Export\nUse `--full`.".into())
        );
        assert_eq!(
            text_of("attachment", "", "retry.rs", b"fn on_err_conn_reset() {}"),
            Extracted::Text("fn on_err_conn_reset() {}".into())
        );
        let Extracted::NotIndexed(why) =
            text_of("text", "text/plain", "x.txt", &[0x50, 0x4b, 0, 0xff])
        else {
            panic!("binary declared as text");
        };
        assert!(why.contains("not UTF-8 text"), "{why}");
        assert!(matches!(
            text_of("text", "text/plain", "blank.txt", b"  \n\t"),
            Extracted::NotIndexed(_)
        ));
        // The start of a longer text may end inside a character.
        assert_eq!(
            extract(Format::Text, &"Grüße".as_bytes()[..3], false),
            Extracted::Text("Gr".into())
        );
    }

    #[test]
    fn a_patch_names_its_files_first() {
        let diff = "diff --git a/src/export.rs b/src/export.rs\n\
                    --- a/src/export.rs\n+++ b/src/export.rs\n\
                    @@ -1,2 +1,2 @@\n-buffer rows\n+stream rows\n\
                    --- /dev/null\n+++ b/docs/export.md\n@@ -0,0 +1 @@\n+# Export\n";
        let Extracted::Text(text) = text_of("patch", "text/x-diff", "fix.patch", diff.as_bytes())
        else {
            panic!("a patch has text");
        };
        assert!(
            text.starts_with("Patch of 2 files in 2 hunks: src/export.rs, docs/export.md\n"),
            "{text}"
        );
        assert!(text.ends_with(diff), "the diff itself follows");
    }

    #[test]
    fn html_mail_becomes_readable_text() {
        let html = b"<html><body><p>Checkout fails with <b>ERR_CONN_RESET</b> on Safari.</p>\
                     <script>tracking()</script></body></html>";
        let Extracted::Text(text) = text_of("attachment", "text/html", "", html) else {
            panic!("HTML has text");
        };
        assert!(text.contains("Checkout fails with"), "{text}");
        assert!(text.contains("ERR_CONN_RESET"), "{text}");
        assert!(text.contains("fails with ERR_CONN_RESET on"), "{text}");
        assert!(!text.contains("<b>") && !text.contains("**"), "{text}");
    }
}
