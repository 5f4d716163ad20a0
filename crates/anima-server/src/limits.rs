//! Per-user rate limits on what costs others or money: outbound mail,
//! uploads, AI calls, and agents' writes over MCP. Counted in the database, so
//! every instance shares them, in fixed windows (see
//! [`anima_db::Store::count_attempt`]); a refusal is
//! `RESOURCE_EXHAUSTED`/`RATE_LIMITED` and says when to retry.

use std::sync::Arc;

use anima_core::{DomainError, model::AttemptCounter};
use anima_db::Store;

use crate::{auth::Caller, config::RateLimits};

/// A counting window: its length and its name in refusals.
struct Window {
    micros: i64,
    name: &'static str,
}

const HOUR: Window = Window {
    micros: 60 * 60 * 1_000_000,
    name: "hour",
};
const MINUTE: Window = Window {
    micros: 60 * 1_000_000,
    name: "minute",
};

/// What is metered.
#[derive(Debug, Clone, Copy)]
pub enum Metered {
    /// An email sent from a thread, per user.
    OutboundMail,
    /// A call to anima-ai that a user's request makes, per user.
    AiCall,
    /// A classification of inbound mail, per project.
    MailClassification,
    /// A document a user uploads (each at most
    /// [`anima_core::document::MAX_DOCUMENT_SIZE`]).
    Upload,
    /// A write an agent session makes over MCP (a post, a task, a
    /// decision request), per session.
    McpWrite,
    /// A search of the library an agent session makes over MCP, per
    /// session: each scans the project's documents' text.
    McpSearch,
    /// A search of the library a user makes, per user.
    Search,
}

/// The configured limits over the shared counters. Cheap to clone.
#[derive(Clone)]
pub struct RateLimiter {
    store: Arc<dyn Store>,
    limits: RateLimits,
}

impl RateLimiter {
    /// Limits as configured, counted in `store`.
    pub fn new(store: Arc<dyn Store>, limits: RateLimits) -> Self {
        Self { store, limits }
    }

    /// Counts one `what` by `who` (a user id; a session id for MCP writes,
    /// a project id for mail classifications), or refuses it once the
    /// window holds the limit. A limit of 0 turns the metering off.
    pub async fn take(&self, what: Metered, who: &str) -> Result<(), DomainError> {
        let (limit, window, key, described) = match what {
            Metered::OutboundMail => (
                self.limits.outbound_mails_per_hour,
                HOUR,
                "mail",
                "outbound mails",
            ),
            Metered::AiCall => (self.limits.ai_calls_per_hour, HOUR, "ai", "AI requests"),
            Metered::MailClassification => (
                self.limits.mail_classifications_per_hour,
                HOUR,
                "ai-mail",
                "AI classifications of this project's mail",
            ),
            Metered::Upload => (self.limits.uploads_per_hour, HOUR, "upload", "uploads"),
            Metered::McpWrite => (
                self.limits.mcp_writes_per_minute,
                MINUTE,
                "mcp",
                "writes by this agent session",
            ),
            Metered::McpSearch => (
                self.limits.mcp_searches_per_minute,
                MINUTE,
                "mcp-search",
                "library searches by this agent session",
            ),
            Metered::Search => (
                self.limits.searches_per_minute,
                MINUTE,
                "search",
                "library searches",
            ),
        };
        if limit == 0 {
            return Ok(());
        }
        Ok(self
            .store
            .count_attempt(
                &[AttemptCounter {
                    key: format!("{key}:{who}"),
                    limit,
                    window_micros: window.micros,
                    what: format!("{described} (at most {limit} per {})", window.name),
                }],
                anima_core::model::now_micros(),
            )
            .await?)
    }

    /// [`RateLimiter::take`] for the user behind a request; services are
    /// not metered.
    pub async fn take_for(
        &self,
        what: Metered,
        caller: Option<&Caller>,
    ) -> Result<(), DomainError> {
        match caller {
            Some(Caller::User { user, .. }) => self.take(what, &user.id).await,
            _ => Ok(()),
        }
    }
}

/// How many of something held open (live streams, uploads) each user has
/// on this instance, up to a most. Counted in memory, per instance: what
/// it bounds (tasks, buffers) is this process's.
#[derive(Debug, Clone, Default)]
pub struct OpenPerUser {
    open: Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>,
    /// The most one user may hold; 0 for no limit.
    most: usize,
}

/// A user's place, given back when dropped.
#[derive(Debug)]
pub struct OpenSlot {
    open: Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>,
    user_id: String,
}

impl Drop for OpenSlot {
    fn drop(&mut self) {
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.user_id) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.user_id);
            }
        }
    }
}

impl OpenPerUser {
    /// At most `most` per user (0: no limit).
    pub fn new(most: usize) -> Self {
        Self {
            open: Arc::default(),
            most,
        }
    }

    /// The most one user may hold.
    pub fn most(&self) -> usize {
        self.most
    }

    /// One of `user_id`'s places, or `None` when they hold the most.
    pub fn take(&self, user_id: &str) -> Option<OpenSlot> {
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = open.entry(user_id.to_owned()).or_default();
        if self.most > 0 && *count >= self.most {
            return None;
        }
        *count += 1;
        Some(OpenSlot {
            open: self.open.clone(),
            user_id: user_id.to_owned(),
        })
    }
}
