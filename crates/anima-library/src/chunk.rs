//! Documents' text in chunks the embedding model can read whole: split by
//! `text-splitter` along markdown structure (headings, blocks, items),
//! along the syntax tree of source code in a language it has a tree-sitter
//! grammar for (items, then the statements in them) or, for other text,
//! along paragraphs, lines and sentences; sized in the
//! model's own tokens, with some overlap so that a sentence cut at a
//! border is whole in one of the two chunks.

use std::{
    cell::Cell,
    ops::{ControlFlow, RangeInclusive},
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use text_splitter::{ChunkConfig, ChunkSizer, CodeSplitter, MarkdownSplitter, TextSplitter};
use tokenizers::Tokenizer;

use crate::extract::{Format, Language};

/// Tokens per chunk: all-MiniLM-L6-v2 reads 256, and the title goes in
/// front of every chunk it embeds. A chunk stops at a structural border
/// once it has the lower bound.
const CHUNK_TOKENS: RangeInclusive<usize> = 120..=200;
/// Tokens two neighbouring chunks share.
const OVERLAP_TOKENS: usize = 32;
/// Characters per token where no tokenizer is at hand (English prose
/// averages about four).
const CHARS_PER_TOKEN: usize = 4;

/// A text's tokens, counted once: text-splitter measures many candidate
/// chunks of it (a binary search per chunk), and tokenizing each again
/// made splitting a long document take many seconds.
struct Tokens {
    /// Where the text starts in memory: the splitter hands out slices of
    /// it, and a slice's address says where in the text it is.
    base: usize,
    len: usize,
    /// Each token's first byte in the text, in order.
    starts: Vec<usize>,
    tokenizer: Arc<Tokenizer>,
}

impl Tokens {
    fn of(tokenizer: &Arc<Tokenizer>, text: &str) -> Self {
        // `encode`, not `encode_fast`: only it computes the (byte) offsets.
        let starts = tokenizer
            .encode(text, false)
            .map(|encoding| {
                encoding
                    .get_offsets()
                    .iter()
                    .map(|(start, _)| *start)
                    .collect()
            })
            .unwrap_or_default();
        Self {
            base: text.as_ptr() as usize,
            len: text.len(),
            starts,
            tokenizer: tokenizer.clone(),
        }
    }
}

/// Characters per token no chunk may exceed: a word the tokenizer does
/// not know is one token however long, so a text of such words would
/// otherwise make one chunk of a whole document.
const MAX_CHARS_PER_TOKEN: usize = 8;

/// Bytes of text one run of a splitter is given. text-splitter's work
/// grows with the square of its text (per chunk it sorts the structure
/// left in the text): a megabyte of one-character lines took 33 s as
/// markdown or code and 4 s as plain text, time anyone able to attach a
/// file could make the library spend. Longer text is split in windows of
/// this size, cut at a blank line or a line's end where one is near (then
/// the same megabyte takes 2 s as markdown, 5 s as C).
const WINDOW_BYTES: usize = 32 * 1024;

/// The deepest syntax tree code is split along; deeper code is split as
/// plain text. Within a window the code splitter's time grows with the
/// tree's depth too (a few KB of parentheses nested 1,000 deep took
/// 0.4 s, 2,000 deep 3.6 s); real code stays far shallower.
const MAX_CODE_DEPTH: usize = 256;

/// The longest the code of one document may take to parse, in all of its
/// windows; what is left once it is spent is split as plain text. A
/// window parses in milliseconds; this bounds input that finds a grammar's
/// worst case (tree-sitter's error recovery is not linear in every
/// grammar). The code splitter parses each window that passed once more.
const PARSE_BUDGET: Duration = Duration::from_secs(4);

impl ChunkSizer for Tokens {
    fn size(&self, chunk: &str) -> usize {
        self.tokens(chunk)
            .max(chunk.len().div_ceil(MAX_CHARS_PER_TOKEN))
    }
}

impl Tokens {
    /// The tokens of `chunk`.
    fn tokens(&self, chunk: &str) -> usize {
        let start = (chunk.as_ptr() as usize).wrapping_sub(self.base);
        if start <= self.len && chunk.len() <= self.len - start && !self.starts.is_empty() {
            let before = |at: usize| self.starts.partition_point(|token| *token < at);
            return before(start + chunk.len()) - before(start);
        }
        // Not a slice of the text (or a tokenizer that failed on it):
        // measured on its own.
        self.tokenizer
            .encode_fast(chunk, false)
            .map(|encoding| encoding.len())
            .unwrap_or_else(|_| chunk.chars().count().div_ceil(CHARS_PER_TOKEN))
    }
}

/// all-MiniLM-L6-v2's `tokenizer.json` where scripts/setup-debian installs
/// the model (anima-ai's default model directory), if it is there.
pub fn default_tokenizer() -> Option<PathBuf> {
    dirs::data_dir()
        .map(|dir| dir.join("anima/models/all-MiniLM-L6-v2/tokenizer.json"))
        .filter(|path| path.is_file())
}

/// Splits text into chunks. Cheap to clone.
#[derive(Clone)]
pub struct Chunker {
    /// The model's tokenizer; without one, chunks are measured in
    /// characters.
    tokenizer: Option<Arc<Tokenizer>>,
}

impl Chunker {
    /// Chunks measured by the tokenizer in `tokenizer_json` (the model's
    /// `tokenizer.json`), or by characters when it cannot be read (logged).
    pub fn new(tokenizer_json: Option<&Path>) -> Self {
        let tokenizer = tokenizer_json.and_then(|path| match Tokenizer::from_file(path) {
            Ok(mut tokenizer) => {
                // Measured whole: truncation would under-count long text.
                tokenizer.with_padding(None);
                tokenizer.with_truncation(None).ok()?;
                Some(Arc::new(tokenizer))
            }
            Err(error) => {
                tracing::warn!(
                    path = %path.display(), %error,
                    "no tokenizer for sizing chunks; measuring them in characters"
                );
                None
            }
        });
        Self { tokenizer }
    }

    /// What chunks are measured in: `tokens` or `characters`.
    pub fn measure(&self) -> &'static str {
        match self.tokenizer {
            Some(_) => "tokens",
            None => "characters",
        }
    }

    /// The chunks of `text` read as `format`, in order. CPU work: call it
    /// on a blocking thread.
    pub fn split(&self, text: &str, format: Option<Format>) -> Vec<String> {
        let tokens = self
            .tokenizer
            .as_ref()
            .map(|tokenizer| Tokens::of(tokenizer, text));
        let parse_budget = Cell::new(PARSE_BUDGET);
        windows(text)
            .flat_map(|window| match &tokens {
                Some(tokens) => split_with(
                    || ChunkConfig::new(CHUNK_TOKENS).with_sizer(tokens),
                    OVERLAP_TOKENS,
                    window,
                    format,
                    &parse_budget,
                ),
                None => split_with(
                    || {
                        ChunkConfig::new(
                            CHUNK_TOKENS.start() * CHARS_PER_TOKEN
                                ..=CHUNK_TOKENS.end() * CHARS_PER_TOKEN,
                        )
                    },
                    OVERLAP_TOKENS * CHARS_PER_TOKEN,
                    window,
                    format,
                    &parse_budget,
                ),
            })
            .filter(|chunk| !chunk.trim().is_empty())
            .map(str::to_owned)
            .collect()
    }
}

/// `text` in consecutive pieces of at most [`WINDOW_BYTES`], each cut
/// after a blank line in its second half if it has one, else after a
/// line's end there, else at a character's border.
fn windows(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = if rest.len() <= WINDOW_BYTES {
            rest.len()
        } else {
            let mut limit = WINDOW_BYTES;
            while !rest.is_char_boundary(limit) {
                limit -= 1;
            }
            let head = &rest[..limit];
            let half = limit / 2;
            head.rfind("\n\n")
                .filter(|at| *at >= half)
                .map(|at| at + 2)
                .or_else(|| head.rfind('\n').filter(|at| *at >= half).map(|at| at + 1))
                .unwrap_or(limit)
        };
        let (window, after) = rest.split_at(end);
        rest = after;
        Some(window)
    })
}

/// The chunks of `text` by `config` with `overlap`: along markdown's
/// structure for markdown, along the syntax tree for code in a known
/// language (while `parse_budget` lasts, which parsing it takes from),
/// along paragraphs, lines and sentences else.
fn split_with<'t, S: ChunkSizer>(
    config: impl Fn() -> ChunkConfig<S>,
    overlap: usize,
    text: &'t str,
    format: Option<Format>,
    parse_budget: &Cell<Duration>,
) -> Vec<&'t str> {
    let config = || {
        config()
            .with_overlap(overlap)
            .expect("the overlap is smaller than a chunk")
    };
    let as_text = || TextSplitter::new(config()).chunks(text).collect();
    match format {
        Some(Format::Markdown) => MarkdownSplitter::new(config()).chunks(text).collect(),
        Some(Format::Code(Some(language))) => {
            let grammar = grammar(language);
            let started = Instant::now();
            let affordable = code_splitting_affordable(&grammar, text, parse_budget.get());
            parse_budget.set(parse_budget.get().saturating_sub(started.elapsed()));
            if !affordable {
                return as_text();
            }
            match CodeSplitter::new(grammar, config()) {
                Ok(splitter) => splitter.chunks(text).collect(),
                // The grammar loaded for measuring the tree.
                Err(_) => as_text(),
            }
        }
        _ => as_text(),
    }
}

/// Whether `text` parses within `time` into a syntax tree at most
/// [`MAX_CODE_DEPTH`] deep. The walk is linear in the tree, and stops at
/// the first node too deep.
fn code_splitting_affordable(grammar: &tree_sitter::Language, text: &str, time: Duration) -> bool {
    let mut parser = tree_sitter::Parser::new();
    if let Err(error) = parser.set_language(grammar) {
        // Only a grammar built for another tree-sitter version fails, and
        // the tests below load each one.
        tracing::warn!(%error, "splitting code as plain text");
        return false;
    }
    let started = Instant::now();
    let mut give_up_late = |_: &tree_sitter::ParseState| match started.elapsed() > time {
        true => ControlFlow::Break(()),
        false => ControlFlow::Continue(()),
    };
    let bytes = text.as_bytes();
    let Some(tree) = parser.parse_with_options(
        &mut |offset, _| bytes.get(offset..).unwrap_or_default(),
        None,
        Some(tree_sitter::ParseOptions::new().progress_callback(&mut give_up_late)),
    ) else {
        tracing::warn!(
            bytes = text.len(),
            "code took too long to parse: split as plain text"
        );
        return false;
    };
    let mut cursor = tree.walk();
    loop {
        if cursor.depth() as usize > MAX_CODE_DEPTH {
            return false;
        }
        if cursor.goto_first_child() {
            continue;
        }
        while !cursor.goto_next_sibling() {
            if !cursor.goto_parent() {
                return true;
            }
        }
    }
}

/// The tree-sitter grammar of `language`.
fn grammar(language: Language) -> tree_sitter::Language {
    tree_sitter::Language::new(match language {
        Language::Rust => tree_sitter_rust::LANGUAGE,
        Language::Python => tree_sitter_python::LANGUAGE,
        Language::JavaScript => tree_sitter_javascript::LANGUAGE,
        Language::TypeScript => tree_sitter_typescript::LANGUAGE_TYPESCRIPT,
        Language::Tsx => tree_sitter_typescript::LANGUAGE_TSX,
        Language::Go => tree_sitter_go::LANGUAGE,
        Language::Java => tree_sitter_java::LANGUAGE,
        Language::C => tree_sitter_c::LANGUAGE,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_splits_at_headings_and_chunks_overlap() {
        let chunker = Chunker::new(None);
        assert_eq!(chunker.measure(), "characters");
        let section = |title: &str| {
            format!(
                "# {title}\n\n{}\n\n",
                "This sentence is about the section and nothing else. ".repeat(12)
            )
        };
        let text = format!("{}{}", section("Alpha"), section("Beta"));
        let chunks = chunker.split(&text, Some(Format::Markdown));
        assert!(chunks.len() >= 2, "{chunks:?}");
        assert!(chunks.iter().all(|chunk| chunk.chars().count() <= 800));
        // A heading starts a chunk rather than ending one.
        assert!(
            chunks.iter().any(|chunk| chunk.starts_with("# Beta")),
            "{chunks:?}"
        );
        assert!(
            chunks
                .iter()
                .all(|chunk| !chunk.trim_end().ends_with("# Beta"))
        );
        let long = "word ".repeat(1000);
        let pieces = chunker.split(&long, Some(Format::Text));
        assert!(pieces.len() > 1);
        assert!(chunker.split(" \n\n ", Some(Format::Text)).is_empty());
    }

    #[test]
    fn code_splits_between_functions_where_prose_splits_inside_them() {
        // Functions of different lengths, each with a blank line where a
        // split by paragraphs may cut it; a chunk holds two or three.
        let functions: Vec<String> = (0..12)
            .map(|n| {
                let sums = "    total += input.len() * 3;\n".repeat(n % 4 + 1);
                format!(
                    "fn step_{n}(input: &[u8]) -> usize {{\n    let mut total = {n};\n{sums}\n    // The checksum of step {n} wraps at a million.\n    total % 1_000_000\n}}\n\n"
                )
            })
            .collect();
        let source = functions.concat();
        let whole = |chunks: &[String]| {
            functions
                .iter()
                .all(|function| chunks.iter().any(|chunk| chunk.contains(function.trim())))
        };
        let chunker = Chunker::new(None);
        let code = chunker.split(&source, Some(Format::Code(Some(Language::Rust))));
        assert!(code.len() > 2, "{code:#?}");
        assert!(whole(&code), "{code:#?}");
        assert!(!whole(&chunker.split(&source, Some(Format::Text))));

        // Once a document's parse budget is spent, its code is split as text.
        let split = |format, budget| -> Vec<String> {
            let chars =
                CHUNK_TOKENS.start() * CHARS_PER_TOKEN..=CHUNK_TOKENS.end() * CHARS_PER_TOKEN;
            let overlap = OVERLAP_TOKENS * CHARS_PER_TOKEN;
            split_with(
                || ChunkConfig::new(chars.clone()),
                overlap,
                &source,
                Some(format),
                &Cell::new(budget),
            )
            .into_iter()
            .map(str::to_owned)
            .collect()
        };
        let rust = Format::Code(Some(Language::Rust));
        assert!(whole(&split(rust, PARSE_BUDGET)));
        assert_eq!(
            split(rust, Duration::ZERO),
            split(Format::Text, PARSE_BUDGET)
        );
    }

    #[test]
    fn code_too_deep_is_split_as_text() {
        let rust = grammar(Language::Rust);
        let ordinary = "fn f(x: u8) -> u8 {\n    if x > 3 { x } else { x + 1 }\n}\n".repeat(1000);
        assert!(code_splitting_affordable(&rust, &ordinary, PARSE_BUDGET));
        // A sum is a tree as deep as it has terms.
        let sum = |terms: usize| format!("fn f() {{ {}1 }}", "x + ".repeat(terms));
        assert!(code_splitting_affordable(&rust, &sum(100), PARSE_BUDGET));
        assert!(!code_splitting_affordable(
            &rust,
            &sum(MAX_CODE_DEPTH),
            PARSE_BUDGET
        ));
        // Code that takes longer to parse than it may is split as text.
        assert!(!code_splitting_affordable(&rust, &ordinary, Duration::ZERO));
        let chunks =
            Chunker::new(None).split(&sum(50_000), Some(Format::Code(Some(Language::Rust))));
        assert!(chunks.len() > 100);
    }

    #[test]
    fn long_text_is_split_in_windows_cut_at_lines() {
        let lines = "Zeile für Zeile, ein Satz.\n".repeat(5_000);
        let pieces: Vec<&str> = windows(&lines).collect();
        assert!(pieces.len() > 3);
        assert_eq!(pieces.concat(), lines);
        assert!(pieces.iter().all(|piece| piece.len() <= WINDOW_BYTES));
        assert!(pieces.iter().all(|piece| piece.ends_with('\n')));
        // No line to cut at: at a character's border.
        let wide = "ж".repeat(WINDOW_BYTES);
        let pieces: Vec<&str> = windows(&wide).collect();
        assert_eq!(pieces.concat(), wide);
        assert!(pieces.iter().all(|piece| piece.len() <= WINDOW_BYTES));
        assert_eq!(windows("").count(), 0);
        // A megabyte of one-character lines (quadratic work for one
        // splitter run: half a minute as markdown) splits whole.
        let flat = "a;\n".repeat(350_000);
        for format in [
            Format::Markdown,
            Format::Code(Some(Language::C)),
            Format::Text,
        ] {
            let chunks = Chunker::new(None).split(&flat, Some(format));
            assert!(chunks.len() > 1_000, "{format:?}");
        }
    }

    #[test]
    fn code_nested_without_end_splits_on_a_small_stack() {
        // Hostile source: anyone may attach a file. Tokio's blocking
        // threads, where splitting runs, have 2 MiB of stack.
        let depth = 100_000;
        let source = format!("fn f() {{ {}1{} }}", "(".repeat(depth), ")".repeat(depth));
        let chunks = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || {
                Chunker::new(None).split(&source, Some(Format::Code(Some(Language::Rust))))
            })
            .expect("a thread")
            .join()
            .expect("splitting deeply nested code did not overflow the stack");
        assert!(chunks.concat().matches('(').count() >= depth);
    }

    #[test]
    fn every_grammar_fits_the_splitters_tree_sitter() {
        for language in [
            Language::Rust,
            Language::Python,
            Language::JavaScript,
            Language::TypeScript,
            Language::Tsx,
            Language::Go,
            Language::Java,
            Language::C,
        ] {
            assert!(
                CodeSplitter::new(grammar(language), 100).is_ok(),
                "{language:?}"
            );
        }
    }

    #[test]
    fn words_the_tokenizer_does_not_know_still_make_small_chunks() {
        let Some(path) = default_tokenizer() else {
            assert!(
                std::env::var_os("CI").is_none(),
                "the model is not installed"
            );
            return;
        };
        // Each "word" is one unknown token of 150 characters.
        let text = format!("{} ", "ж".repeat(150)).repeat(2_000);
        let chunks = Chunker::new(Some(&path)).split(&text, Some(Format::Text));
        assert!(chunks.len() > 100, "{} chunks", chunks.len());
        assert!(
            chunks
                .iter()
                .all(|chunk| chunk.len() <= CHUNK_TOKENS.end() * MAX_CHARS_PER_TOKEN + 400)
        );
    }

    #[test]
    fn the_models_tokenizer_measures_chunks_when_it_is_installed() {
        let Some(path) = default_tokenizer() else {
            // scripts/setup-debian installs it; CI always has it.
            assert!(
                std::env::var_os("CI").is_none(),
                "the model is not installed"
            );
            return;
        };
        let chunker = Chunker::new(Some(&path));
        assert_eq!(chunker.measure(), "tokens");
        let text = "Tokenizers split words into word pieces. ".repeat(200);
        let chunks = chunker.split(&text, Some(Format::Text));
        assert!(chunks.len() > 1);
        let mut tokenizer = Tokenizer::from_file(&path).expect("tokenizer");
        tokenizer.with_padding(None);
        tokenizer.with_truncation(None).expect("no truncation");
        for chunk in &chunks {
            let tokens = tokenizer
                .encode_fast(chunk.as_str(), false)
                .map(|e| e.len());
            assert!(tokens.is_ok_and(|tokens| tokens <= *CHUNK_TOKENS.end()));
        }
    }
}
