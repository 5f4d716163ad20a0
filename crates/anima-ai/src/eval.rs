//! The labelled mail set (`tests/data/mails.json`: 10 work items, 66
//! mails in English and German: reports, replies with quotes, forwards,
//! one-liners, and mail about none of the items) and how the classifier
//! scores on it. The test suite holds the classifier to it, and
//! `anima-bench ai` reports it.

use serde::Deserialize;

use crate::{
    embed::Embedder,
    local::{self, Candidate, ClassifierSettings},
};

/// The set, compiled in so that every tool scores the same mails.
pub const MAIL_SET_JSON: &str = include_str!("../tests/data/mails.json");

/// A work item of the set.
#[derive(Debug, Deserialize)]
pub struct LabelledItem {
    /// Its id, which labels name.
    pub id: String,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Recent thread messages.
    pub recent: Vec<String>,
}

/// A mail of the set.
#[derive(Debug, Deserialize)]
pub struct LabelledMail {
    /// The work item it belongs to; `None` for mail about none of them.
    pub label: Option<String>,
    /// Sender.
    pub from: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
}

/// The whole set.
#[derive(Debug, Deserialize)]
pub struct MailSet {
    /// The candidates every mail is classified among.
    pub work_items: Vec<LabelledItem>,
    /// The mails.
    pub mails: Vec<LabelledMail>,
}

impl MailSet {
    /// The compiled-in set.
    pub fn load() -> anyhow::Result<Self> {
        Ok(serde_json::from_str(MAIL_SET_JSON)?)
    }

    /// The items as classifier candidates.
    pub fn candidates(&self) -> Vec<Candidate<'_>> {
        self.work_items
            .iter()
            .map(|item| Candidate {
                id: &item.id,
                title: &item.title,
                description: &item.description,
                recent: item.recent.iter().map(String::as_str).collect(),
            })
            .collect()
    }
}

/// How the classifier did on the set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    /// Mails classified.
    pub mails: usize,
    /// Mails given a work item.
    pub answered: usize,
    /// Of those, given the right one.
    pub correct: usize,
    /// Mails about none of the items answered "unknown" (correctly).
    pub unrelated_unknown: usize,
    /// Mails about none of the items.
    pub unrelated: usize,
}

impl Score {
    /// Share of answered mails given the right item.
    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.answered.max(1) as f64
    }

    /// Share of all mails answered "unknown".
    pub fn unknown_share(&self) -> f64 {
        (self.mails - self.answered) as f64 / self.mails.max(1) as f64
    }
}

/// Each mail's similarity to each candidate: the expensive part, done
/// once so that settings can be tried cheaply ([`score_with`]).
pub fn similarities(embedder: &Embedder, set: &MailSet) -> anyhow::Result<Vec<Vec<f64>>> {
    let candidates = set.candidates();
    set.mails
        .iter()
        .map(|mail| local::similarities(embedder, &mail.subject, &mail.body, &candidates))
        .collect()
}

/// Counts how the classifier with `settings` does, given the similarities.
pub fn score_with(set: &MailSet, similarities: &[Vec<f64>], settings: ClassifierSettings) -> Score {
    let mut score = Score {
        mails: set.mails.len(),
        answered: 0,
        correct: 0,
        unrelated_unknown: 0,
        unrelated: 0,
    };
    for (mail, scores) in set.mails.iter().zip(similarities) {
        let answer = local::decide(scores, settings, |index| &set.work_items[index].id);
        if mail.label.is_none() {
            score.unrelated += 1;
        }
        match (&answer.work_item_id, &mail.label) {
            (Some(given), label) => {
                score.answered += 1;
                if Some(given) == label.as_ref() {
                    score.correct += 1;
                }
            }
            (None, None) => score.unrelated_unknown += 1,
            (None, Some(_)) => {}
        }
    }
    score
}
