//! The embedded local provider: real answers from sentence vectors, no
//! network. Classification is similarity to each candidate; summaries and
//! description drafts are extractive (TextRank over sentence vectors) and
//! cite the sources their sentences came from. It does not reason, so the
//! reasoning tier is never served by it.

use anima_core::text::words;

use crate::embed::{Embedder, cosine};

/// A text to draw sentences from, with the id callers cite it by.
#[derive(Debug, Clone)]
pub struct Source<'a> {
    /// Message or document id.
    pub id: &'a str,
    /// Its text.
    pub text: &'a str,
}

/// A work item a mail may belong to.
#[derive(Debug, Clone)]
pub struct Candidate<'a> {
    /// The work item's id.
    pub id: &'a str,
    /// Title and description, the item's own words.
    pub title: &'a str,
    /// Its current description.
    pub description: &'a str,
    /// Recent messages of its thread.
    pub recent: Vec<&'a str>,
}

/// Where a chosen sentence sits: byte offsets into the source's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Citation {
    /// The source's id.
    pub source_id: String,
    /// First byte of the sentence.
    pub start: usize,
    /// One past its last byte.
    pub end: usize,
}

/// An extractive text and the sentences it is made of.
#[derive(Debug, Clone, PartialEq)]
pub struct Extract {
    /// The chosen sentences, in source order.
    pub sentences: Vec<String>,
    /// Where each sentence came from, in the same order.
    pub citations: Vec<Citation>,
}

/// A classification: the best candidate and how sure, or none.
#[derive(Debug, Clone, PartialEq)]
pub struct Classification {
    /// The chosen work item, `None` when the answer is "unknown".
    pub work_item_id: Option<String>,
    /// Calibrated confidence of the best candidate, 0..=1.
    pub confidence: f64,
    /// The best candidate, chosen or not; `None` without candidates.
    pub best: Option<String>,
}

/// Tuning of the classifier. The defaults were calibrated on the labelled
/// mail set (`tests/data/mails.json`, see [`crate::eval`]): with the model
/// every answered mail of it is right and only mail about none of the
/// items is "unknown"; docs/benchmarks.md has the figures.
#[derive(Debug, Clone, Copy)]
pub struct ClassifierSettings {
    /// Softmax temperature over candidate similarities: lower is sharper.
    pub temperature: f64,
    /// Below this confidence the answer is "unknown".
    pub threshold: f64,
    /// Below this cosine similarity of the best candidate the answer is
    /// "unknown" however far ahead it is: far ahead of nothing is nothing.
    pub min_similarity: f64,
}

impl Default for ClassifierSettings {
    fn default() -> Self {
        Self {
            temperature: 0.05,
            threshold: 0.5,
            min_similarity: 0.15,
        }
    }
}

/// Classifies a mail among candidates by vector similarity.
pub fn classify(
    embedder: &Embedder,
    settings: ClassifierSettings,
    subject: &str,
    body: &str,
    candidates: &[Candidate<'_>],
) -> anyhow::Result<Classification> {
    let scores = similarities(embedder, subject, body, candidates)?;
    Ok(decide(&scores, settings, |index| candidates[index].id))
}

/// Each candidate's similarity to the mail: the best of its own words
/// (title and description) and each of its recent messages, so a reply
/// that echoes the thread scores well even when it shares no words with
/// the title. Quoted history is left out of the mail: a reply is judged by
/// what it adds.
pub fn similarities(
    embedder: &Embedder,
    subject: &str,
    body: &str,
    candidates: &[Candidate<'_>],
) -> anyhow::Result<Vec<f64>> {
    let mut texts: Vec<String> = vec![format!("{subject}\n{}", without_quotes(body))];
    let mut owners = Vec::new();
    for (index, candidate) in candidates.iter().enumerate() {
        texts.push(format!("{}\n{}", candidate.title, candidate.description));
        owners.push(index);
        for message in &candidate.recent {
            texts.push(without_quotes(message));
            owners.push(index);
        }
    }
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let vectors = embedder.embed(&refs)?;
    let (mail_vector, rest) = vectors
        .split_first()
        .ok_or_else(|| anyhow::anyhow!("no vector for the mail"))?;
    let mut scores = vec![f64::MIN; candidates.len()];
    for (vector, &owner) in rest.iter().zip(&owners) {
        scores[owner] = scores[owner].max(f64::from(cosine(mail_vector, vector)));
    }
    Ok(scores)
}

/// The answer for these similarities: the best candidate, with its
/// softmax probability as the confidence, or "unknown" when it is not
/// sure enough or not similar enough.
pub fn decide<'a>(
    scores: &[f64],
    settings: ClassifierSettings,
    id_of: impl Fn(usize) -> &'a str,
) -> Classification {
    let Some((best, &best_score)) = scores.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1))
    else {
        return Classification {
            work_item_id: None,
            confidence: 0.0,
            best: None,
        };
    };
    let denominator: f64 = scores
        .iter()
        .map(|score| ((score - best_score) / settings.temperature).exp())
        .sum();
    let confidence = 1.0 / denominator;
    let sure = confidence >= settings.threshold && best_score >= settings.min_similarity;
    let best = id_of(best).to_owned();
    Classification {
        work_item_id: sure.then(|| best.clone()),
        confidence,
        best: Some(best),
    }
}

/// The `max_sentences` most central sentences of the sources (TextRank
/// over sentence vectors), in source order.
pub fn summarize(
    embedder: &Embedder,
    sources: &[Source<'_>],
    max_sentences: usize,
) -> anyhow::Result<Extract> {
    extract(embedder, sources, max_sentences, None)
}

/// A description draft: the sentences of the context most central and most
/// about the title, under headings a human can edit.
pub fn describe(
    embedder: &Embedder,
    title: &str,
    context: &[Source<'_>],
    max_sentences: usize,
) -> anyhow::Result<(String, Extract)> {
    let extract = extract(embedder, context, max_sentences, Some(title))?;
    let mut description = format!("## Goal\n\n{title}\n\n## What the discussion says\n\n");
    for (sentence, citation) in extract.sentences.iter().zip(&extract.citations) {
        description.push_str(&format!("- {sentence} [{}]\n", citation.source_id));
    }
    Ok((description, extract))
}

fn extract(
    embedder: &Embedder,
    sources: &[Source<'_>],
    max_sentences: usize,
    focus: Option<&str>,
) -> anyhow::Result<Extract> {
    let sentences: Vec<(usize, usize, usize)> = sources
        .iter()
        .enumerate()
        .flat_map(|(index, source)| {
            sentence_spans(source.text)
                .into_iter()
                .map(move |(start, end)| (index, start, end))
        })
        .collect();
    let texts: Vec<&str> = sentences
        .iter()
        .map(|&(index, start, end)| &sources[index].text[start..end])
        .chain(focus)
        .collect();
    let vectors = embedder.embed(&texts)?;
    let (sentence_vectors, focus_vector) = match focus {
        Some(_) => vectors.split_at(sentences.len()),
        None => (&vectors[..], &[][..]),
    };
    let centrality = text_rank(sentence_vectors);
    let score = |i: usize| match focus_vector.first() {
        Some(focus) => {
            0.5 * centrality[i] * sentences.len() as f64
                + 0.5 * f64::from(cosine(&sentence_vectors[i], focus))
        }
        None => centrality[i],
    };
    let mut ranked: Vec<usize> = (0..sentences.len()).collect();
    ranked.sort_by(|&a, &b| score(b).total_cmp(&score(a)));
    ranked.truncate(max_sentences);
    ranked.sort_unstable();
    Ok(Extract {
        sentences: ranked
            .iter()
            .map(|&i| texts[i].split_whitespace().collect::<Vec<_>>().join(" "))
            .collect(),
        citations: ranked
            .iter()
            .map(|&i| Citation {
                source_id: sources[sentences[i].0].id.to_owned(),
                start: sentences[i].1,
                end: sentences[i].2,
            })
            .collect(),
    })
}

/// PageRank over the graph whose edge weights are positive similarities;
/// scores sum to 1.
fn text_rank(vectors: &[Vec<f32>]) -> Vec<f64> {
    const DAMPING: f64 = 0.85;
    const ITERATIONS: usize = 40;
    let n = vectors.len();
    if n == 0 {
        return Vec::new();
    }
    let weights: Vec<Vec<f64>> = (0..n)
        .map(|i| {
            (0..n)
                .map(|j| {
                    if i == j {
                        0.0
                    } else {
                        f64::from(cosine(&vectors[i], &vectors[j])).max(0.0)
                    }
                })
                .collect()
        })
        .collect();
    let out_weight: Vec<f64> = weights.iter().map(|row| row.iter().sum()).collect();
    let mut rank = vec![1.0 / n as f64; n];
    for _ in 0..ITERATIONS {
        rank = (0..n)
            .map(|i| {
                let incoming: f64 = (0..n)
                    .filter(|&j| out_weight[j] > 0.0)
                    .map(|j| weights[j][i] / out_weight[j] * rank[j])
                    .sum();
                (1.0 - DAMPING) / n as f64 + DAMPING * incoming
            })
            .collect();
    }
    let total: f64 = rank.iter().sum();
    rank.iter().map(|r| r / total).collect()
}

/// Byte spans of the sentences of a text: split after `.`, `!` or `?`
/// followed by whitespace, and at line breaks; spans hold at least one
/// word, trimmed of surrounding whitespace.
pub fn sentence_spans(text: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((index, c)) = chars.next() {
        let next_is_space = chars.peek().is_none_or(|&(_, next)| next.is_whitespace());
        let boundary = c == '\n' || (matches!(c, '.' | '!' | '?') && next_is_space);
        if boundary {
            push_span(text, start, index + c.len_utf8(), &mut spans);
            start = index + c.len_utf8();
        }
    }
    push_span(text, start, text.len(), &mut spans);
    spans
}

fn push_span(text: &str, start: usize, end: usize, spans: &mut Vec<(usize, usize)>) {
    let piece = &text[start..end];
    let leading = piece.len() - piece.trim_start().len();
    let trimmed = piece.trim();
    if words(trimmed).next().is_some() {
        spans.push((start + leading, start + leading + trimmed.len()));
    }
}

/// The text without quoted lines (`> …`) and without the quoted history
/// below an "On … wrote:" line, so a reply is judged by what it adds.
fn without_quotes(text: &str) -> String {
    let mut kept = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('>') {
            continue;
        }
        let lower = trimmed.to_lowercase();
        let attribution = (lower.starts_with("on ") && lower.ends_with("wrote:"))
            || (lower.starts_with("am ") && lower.ends_with("schrieb:"))
            || lower.starts_with("-----original message-----");
        if attribution {
            break;
        }
        kept.push(line);
    }
    kept.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_split_with_byte_offsets() {
        let text = "First one. Second, with a.b inside!\nThird line\n\n  ";
        let spans = sentence_spans(text);
        let pieces: Vec<&str> = spans.iter().map(|&(s, e)| &text[s..e]).collect();
        assert_eq!(
            pieces,
            ["First one.", "Second, with a.b inside!", "Third line"]
        );
        let umlaut = "Grüße aus Köln. Zweiter Satz.";
        let pieces: Vec<&str> = sentence_spans(umlaut)
            .iter()
            .map(|&(s, e)| &umlaut[s..e])
            .collect();
        assert_eq!(pieces, ["Grüße aus Köln.", "Zweiter Satz."]);
    }

    #[test]
    fn quotes_and_history_are_dropped() {
        let reply = "Works now, thanks.\n> old text\nOn Tue, Ann wrote:\nolder history";
        assert_eq!(without_quotes(reply), "Works now, thanks.");
    }

    #[test]
    fn summaries_cite_their_sources_in_order() {
        let sources = [
            Source {
                id: "m1",
                text: "The export job fails on large projects. It runs out of memory after ten minutes.",
            },
            Source {
                id: "m2",
                text: "Lunch is at noon. The export job should stream rows instead of loading all of them.",
            },
        ];
        let extract = summarize(&Embedder::Lexical, &sources, 2).expect("summary");
        assert_eq!(extract.sentences.len(), 2);
        for (sentence, citation) in extract.sentences.iter().zip(&extract.citations) {
            let source = sources
                .iter()
                .find(|source| source.id == citation.source_id)
                .expect("cited source");
            assert_eq!(&source.text[citation.start..citation.end], sentence);
        }
        assert!(
            !extract.sentences.iter().any(|s| s.contains("Lunch")),
            "the off-topic sentence is the least central: {:?}",
            extract.sentences
        );
    }

    #[test]
    fn classification_picks_the_matching_item_or_says_unknown() {
        let candidates = [
            Candidate {
                id: "wi-export",
                title: "Export job runs out of memory",
                description: "CSV export of large projects crashes.",
                recent: vec!["Stream the rows instead of buffering them."],
            },
            Candidate {
                id: "wi-login",
                title: "Login page broken on Safari",
                description: "Users cannot sign in with Safari 17.",
                recent: vec![],
            },
        ];
        let settings = ClassifierSettings::default();
        let answer = classify(
            &Embedder::Lexical,
            settings,
            "Re: export crashes",
            "The CSV export of our large project crashed again with out of memory.",
            &candidates,
        )
        .expect("classify");
        assert_eq!(answer.work_item_id.as_deref(), Some("wi-export"));
        let unknown = classify(
            &Embedder::Lexical,
            settings,
            "Team dinner",
            "Who is coming to dinner on Friday?",
            &candidates,
        )
        .expect("classify");
        assert_eq!(unknown.work_item_id, None, "{unknown:?}");
    }
}
