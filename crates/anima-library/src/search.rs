//! What a search needs beside the index: the query's words in each
//! database's full-text syntax, the fusion of the two rankings, and the
//! snippet a hit shows.

use std::collections::HashMap;

use anima_core::text::words;

/// The most terms of a query used: more add little and cost every row.
const MAX_TERMS: usize = 32;

/// Words left out of a query that has others (English and German).
const STOPWORDS: &[&str] = &[
    "a", "about", "an", "and", "are", "as", "at", "be", "but", "by", "can", "do", "does", "for",
    "from", "had", "has", "have", "how", "i", "if", "in", "into", "is", "it", "its", "me", "my",
    "of", "on", "or", "our", "so", "that", "the", "their", "them", "then", "there", "these",
    "they", "this", "to", "us", "was", "we", "were", "what", "when", "where", "which", "who",
    "why", "will", "with", "would", "you", "your", "aus", "auf", "bei", "das", "dem", "den", "der",
    "des", "die", "ein", "eine", "einem", "einen", "einer", "es", "für", "ich", "im", "ist", "mit",
    "nach", "nicht", "oder", "sie", "um", "und", "von", "wie", "wir", "zu",
];

/// The constant of reciprocal rank fusion (Cormack et al.): a hit's score
/// is the sum of `1 / (K + rank)` over the rankings that found it, so one
/// ranking's outliers weigh little.
pub const RRF_K: f64 = 60.0;

/// A query's terms: each a phrase of one or more lower-case words, as a
/// term like `WI-12` or `ERR_CONN_RESET` is split by both databases'
/// tokenizers (letters and digits; anything else separates).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Terms {
    phrases: Vec<Vec<String>>,
}

impl Terms {
    /// The terms of `query` (whitespace separates them), duplicates once,
    /// without the English and German words too common to tell documents
    /// apart (unless there is nothing else): a question's "how do we"
    /// would otherwise rank every document that has them.
    pub fn of(query: &str) -> Self {
        let mut phrases: Vec<Vec<String>> = Vec::new();
        for term in query.split_whitespace() {
            let words: Vec<String> = words(term).collect();
            if !words.is_empty() && !phrases.contains(&words) {
                phrases.push(words);
            }
        }
        let telling: Vec<Vec<String>> = phrases
            .iter()
            .filter(
                |phrase| !matches!(phrase.as_slice(), [word] if STOPWORDS.contains(&word.as_str())),
            )
            .cloned()
            .collect();
        if !telling.is_empty() {
            phrases = telling;
        }
        phrases.truncate(MAX_TERMS);
        Self { phrases }
    }

    /// Whether there is nothing to look for.
    pub fn is_empty(&self) -> bool {
        self.phrases.is_empty()
    }

    /// Every word of every term.
    pub fn words(&self) -> impl Iterator<Item = &str> {
        self.phrases.iter().flatten().map(String::as_str)
    }

    /// The terms, each as its words.
    pub fn phrases(&self) -> &[Vec<String>] {
        &self.phrases
    }

    /// A `tsquery` that matches any of the terms (`(wi <-> 12) | crash`).
    pub fn tsquery(&self) -> String {
        self.phrases
            .iter()
            .map(|phrase| format!("({})", phrase.join(" <-> ")))
            .collect::<Vec<_>>()
            .join(" | ")
    }
}

/// An FTS5 query that matches any of `phrases` (`"wi 12" OR "crash"`);
/// words are letters and digits only, so quoting them is safe.
pub fn fts5_of<'a>(phrases: impl IntoIterator<Item = &'a Vec<String>>) -> String {
    phrases
        .into_iter()
        .map(|phrase| format!("\"{}\"", phrase.join(" ")))
        .collect::<Vec<_>>()
        .join(" OR ")
}

impl Terms {
    /// The share of the terms that `text` holds (as whole words, phrases
    /// in order): a chunk found by one common word of a long question
    /// holds little of it, one found by the identifier asked for holds it
    /// all.
    pub fn coverage(&self, text: &str) -> f64 {
        if self.phrases.is_empty() {
            return 0.0;
        }
        let words: Vec<String> = words(text).collect();
        let held = self
            .phrases
            .iter()
            .filter(|phrase| {
                words
                    .windows(phrase.len())
                    .any(|window| window == phrase.as_slice())
            })
            .count();
        held as f64 / self.phrases.len() as f64
    }
}

/// One chunk's place in the fused ranking.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fused {
    /// The chunk's key.
    pub seq: i64,
    /// Its reciprocal-rank-fusion score.
    pub score: f64,
    /// Its rank (from 1) by words, if found so.
    pub lexical_rank: Option<usize>,
    /// Its rank (from 1) by meaning, if found so.
    pub vector_rank: Option<usize>,
}

/// Both rankings (best first) fused by reciprocal rank, best first; each
/// lexical hit weighs as much as its weight (its [`Terms::coverage`]), so
/// words that match only a little of a question do not outrank what its
/// meaning found. Ties keep the lexical order, then the key.
pub fn fuse(lexical: &[(i64, f64)], vector: &[i64]) -> Vec<Fused> {
    let mut fused: HashMap<i64, Fused> = HashMap::new();
    let weighted = lexical.iter().map(|(seq, weight)| (*seq, *weight, true));
    let vector = vector.iter().map(|seq| (*seq, 1.0, false));
    let mut ranks = [0_usize; 2];
    for (seq, weight, is_lexical) in weighted.chain(vector) {
        let rank = &mut ranks[usize::from(!is_lexical)];
        *rank += 1;
        let hit = fused.entry(seq).or_insert(Fused {
            seq,
            score: 0.0,
            lexical_rank: None,
            vector_rank: None,
        });
        hit.score += weight / (RRF_K + *rank as f64);
        match is_lexical {
            true => hit.lexical_rank = Some(*rank),
            false => hit.vector_rank = Some(*rank),
        }
    }
    let mut ranked: Vec<Fused> = fused.into_values().collect();
    ranked.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(
                a.lexical_rank
                    .unwrap_or(usize::MAX)
                    .cmp(&b.lexical_rank.unwrap_or(usize::MAX)),
            )
            .then(a.seq.cmp(&b.seq))
    });
    ranked
}

/// About `width` characters of `text` around the first of `words` in it
/// (its start when none is), on one line.
pub fn snippet<'a>(text: &str, words: impl Iterator<Item = &'a str>, width: usize) -> String {
    let lower = text.to_lowercase();
    let first = words.filter_map(|word| lower.find(word)).min();
    // Lower-casing can change byte lengths; count characters instead.
    let start = first.map_or(0, |at| {
        lower[..at].chars().count().saturating_sub(width / 3)
    });
    let mut snippet: String = text
        .chars()
        .skip(start)
        .take(width)
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if start > 0 {
        snippet.insert_str(0, "… ");
    }
    snippet
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_become_phrases_of_their_words() {
        let terms = Terms::of("why ERR_CONN_RESET in WI-12? crash");
        assert_eq!(
            fts5_of(terms.phrases()),
            "\"err conn reset\" OR \"wi 12\" OR \"crash\""
        );
        assert_eq!(
            terms.tsquery(),
            "(err <-> conn <-> reset) | (wi <-> 12) | (crash)"
        );
        // A query of common words alone keeps them.
        assert_eq!(Terms::of("Who is it").tsquery(), "(who) | (is) | (it)");
        // Only punctuation: nothing to look for, and nothing the
        // databases' parsers could choke on.
        assert!(Terms::of("\"*) ( -- ;").is_empty());
        assert_eq!(Terms::of(&"word ".repeat(100)).phrases.len(), 1);
        let many: String = (0..100).map(|n| format!("w{n} ")).collect();
        assert_eq!(Terms::of(&many).phrases.len(), MAX_TERMS);
    }

    #[test]
    fn fusion_rewards_agreement() {
        let fused = fuse(&[(1, 1.0), (2, 1.0), (3, 1.0)], &[3, 4]);
        let order: Vec<i64> = fused.iter().map(|hit| hit.seq).collect();
        // 3 is found by both, so it beats 1, the best of one ranking alone.
        // 2 and 4 tie (both second in one ranking): words come first.
        assert_eq!(order, vec![3, 1, 2, 4]);
        assert_eq!(fused[0].lexical_rank, Some(3));
        assert_eq!(fused[0].vector_rank, Some(1));
        assert_eq!(fused[3].lexical_rank, None);
        // A lexical hit that holds half the query weighs half.
        let fused = fuse(&[(1, 0.5)], &[2]);
        assert_eq!(fused[0].seq, 2);
    }

    #[test]
    fn coverage_counts_whole_words_and_phrases() {
        let terms = Terms::of("how do I reset ERR_CONN_RESET quickly");
        assert_eq!(terms.coverage("Reset after err-conn-reset."), 2.0 / 3.0);
        assert_eq!(terms.coverage("resetting connections"), 0.0);
        assert_eq!(Terms::default().coverage("anything"), 0.0);
    }

    #[test]
    fn snippets_start_near_the_first_word() {
        let text = format!("{} the Größe of ERR_CONN_RESET", "filler ".repeat(40));
        let terms = Terms::of("err_conn_reset größe");
        let shown = snippet(&text, terms.words(), 40);
        assert!(shown.starts_with("… "), "{shown}");
        assert!(shown.contains("Größe"), "{shown}");
        assert_eq!(
            snippet("short text", ["absent"].into_iter(), 40),
            "short text"
        );
    }
}
