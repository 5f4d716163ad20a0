//! Who a caller is and what they may do, in memory, so checking a request
//! costs no query: login sessions (with their user) by token hash, a
//! user's permissions in a project, and agent sessions' MCP tokens.
//!
//! An entry is what the database last said. It goes when an event says it
//! changed: on the instance that made the change before its RPC returns
//! (the handlers call the `forget_*` methods), on every other instance as
//! soon as the event reaches its [`crate::events::EventHub`], whose tailer
//! shows each event to the cache before any stream sees it. While the
//! store cannot hear other instances' commits ([`Store::feed`] is 0) the
//! cache is bypassed, and it is emptied when the feed comes back: a stale
//! entry is never trusted.
//!
//! Entries never expire by age, only by events; `quick_cache` bounds the
//! memory (and evicts the least useful first).

use std::{
    hash::Hash,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use anima_core::{
    Permission,
    agent::McpScope,
    event::EventKind,
    model::{AuthSession, Event, User},
};
use anima_db::{Store, StoreResult, TokenState};
use quick_cache::sync::Cache;
use tokio::sync::watch;

/// Sessions kept at most.
pub const SESSION_ENTRIES: usize = 10_000;
/// Bytes the sessions (with their users, preferences included) may take.
pub const SESSION_BYTES: u64 = 16 * 1024 * 1024;
/// (user, project) permission sets kept at most.
pub const PERMISSION_ENTRIES: usize = 50_000;
/// Live MCP tokens kept at most.
pub const MCP_TOKEN_ENTRIES: usize = 10_000;

/// A session and its user.
type SessionEntry = Arc<(AuthSession, User)>;

/// A session entry's weight: roughly the bytes it holds, since a user's
/// preferences (which they edit themselves) make some far larger than
/// others.
#[derive(Clone)]
struct SessionWeight;

impl quick_cache::Weighter<String, SessionEntry> for SessionWeight {
    fn weight(&self, key: &String, entry: &SessionEntry) -> u64 {
        let (session, user) = &**entry;
        let preferences: usize = user
            .preferences
            .iter()
            .map(|(key, value)| key.len() + value.len())
            .sum();
        (256 + key.len()
            + session.user_id.len()
            + user.username.len()
            + user.display_name.len()
            + user.email.len()
            + preferences) as u64
    }
}

/// See the module documentation.
pub struct AuthCache {
    sessions: Cache<String, SessionEntry, SessionWeight>,
    permissions: Cache<(String, String), Arc<Vec<Permission>>>,
    /// Only live tokens: a refusal is read again each time.
    mcp_tokens: Cache<String, Arc<McpScope>>,
    /// Bumped before every forgetting: a database read that began before
    /// one may predate the change, so what it found is not kept.
    epoch: AtomicU64,
    /// The store's feed of other instances' commits.
    feed: watch::Receiver<u64>,
    /// The feed connection the entries were read under.
    filled_under: AtomicU64,
    /// Whether this instance's event tailer reads the outbox now: the
    /// cache hears of other instances' changes only through it.
    following: AtomicBool,
}

/// Sizes only: entries hold sessions, never shown.
impl std::fmt::Debug for AuthCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthCache")
            .field("sessions", &self.sessions.len())
            .field("permissions", &self.permissions.len())
            .field("mcp_tokens", &self.mcp_tokens.len())
            .finish()
    }
}

impl AuthCache {
    /// An empty cache over `store`'s feed.
    pub fn new(store: &dyn Store) -> Self {
        Self {
            sessions: Cache::with_weighter(SESSION_ENTRIES, SESSION_BYTES, SessionWeight),
            permissions: Cache::new(PERMISSION_ENTRIES),
            mcp_tokens: Cache::new(MCP_TOKEN_ENTRIES),
            epoch: AtomicU64::new(0),
            feed: store.feed(),
            filled_under: AtomicU64::new(0),
            following: AtomicBool::new(false),
        }
    }

    /// Told by the event tailer whether its last read of the outbox
    /// succeeded. Until it does (at start, or while the store fails) the
    /// cache is bypassed, and emptied when it is back: changes made
    /// meanwhile may not have been observed.
    pub fn set_following(&self, following: bool) {
        if following != self.following.swap(following, Ordering::SeqCst) {
            self.clear();
        }
    }

    /// The feed number if the cache may be used now (emptying it first
    /// when the feed reconnected since it was filled); `None` to bypass.
    fn usable(&self) -> Option<u64> {
        let feed = *self.feed.borrow();
        if feed == 0 || !self.following.load(Ordering::SeqCst) {
            return None;
        }
        if self.filled_under.load(Ordering::SeqCst) != feed {
            // Events may have been missed while the feed was down. Emptied
            // before the new number is stored, so nobody takes an entry
            // from before the outage meanwhile.
            self.clear();
            self.filled_under.store(feed, Ordering::SeqCst);
        }
        Some(feed)
    }

    /// `read` from the database, kept in `cache` under `key` unless a
    /// change may have raced the read.
    async fn read_through<K, V, W>(
        &self,
        cache: &Cache<K, V, W>,
        key: K,
        feed: u64,
        read: impl Future<Output = StoreResult<Option<V>>>,
    ) -> StoreResult<Option<V>>
    where
        K: Eq + Hash + Clone,
        V: Clone,
        W: quick_cache::Weighter<K, V> + Clone,
    {
        let epoch = self.epoch.load(Ordering::SeqCst);
        let found = read.await?;
        if let Some(found) = &found {
            cache.insert(key.clone(), found.clone());
            // Checked after the insert: a forgetting that began meanwhile
            // either removed the entry or is seen here.
            if self.epoch.load(Ordering::SeqCst) != epoch || *self.feed.borrow() != feed {
                cache.remove(&key);
            }
        }
        Ok(found)
    }

    /// The session of `token_hash` and its user.
    pub async fn session(
        &self,
        store: &dyn Store,
        token_hash: &str,
    ) -> StoreResult<Option<(AuthSession, User)>> {
        let Some(feed) = self.usable() else {
            return store.session_with_user(token_hash).await;
        };
        if let Some(hit) = self.sessions.get(token_hash) {
            return Ok(Some((*hit).clone()));
        }
        let read = async { Ok(store.session_with_user(token_hash).await?.map(Arc::new)) };
        let found = self
            .read_through(&self.sessions, token_hash.to_owned(), feed, read)
            .await?;
        Ok(found.map(|entry| (*entry).clone()))
    }

    /// The session as the database has it now, cached afresh (before
    /// deciding that a session expired: another instance may have used it
    /// since this one cached it).
    pub async fn reread_session(
        &self,
        store: &dyn Store,
        token_hash: &str,
    ) -> StoreResult<Option<(AuthSession, User)>> {
        self.forget_session(token_hash);
        self.session(store, token_hash).await
    }

    /// Records that the session was used (the store was told, at most once
    /// a minute): the entry is read afresh next time, rather than patched,
    /// so a change that raced the touch is never written back over.
    pub fn touched(&self, token_hash: &str) {
        self.forget_session(token_hash);
    }

    /// What `user_id` may do in `project_id`.
    pub async fn permissions(
        &self,
        store: &dyn Store,
        user_id: &str,
        project_id: &str,
    ) -> StoreResult<Arc<Vec<Permission>>> {
        // Only memberships are kept: a refusal is read again each time, so
        // someone just added is let in at once on every instance.
        let read = async {
            let held = store.project_permissions(user_id, project_id).await?;
            Ok((!held.is_empty()).then(|| Arc::new(held)))
        };
        let Some(feed) = self.usable() else {
            return Ok(read.await?.unwrap_or_default());
        };
        let key = (user_id.to_owned(), project_id.to_owned());
        if let Some(hit) = self.permissions.get(&key) {
            return Ok(hit);
        }
        let found = self
            .read_through(&self.permissions, key, feed, read)
            .await?;
        Ok(found.unwrap_or_default())
    }

    /// What the MCP token of `token_hash` may do.
    pub async fn mcp_token(&self, store: &dyn Store, token_hash: &str) -> StoreResult<TokenState> {
        let Some(feed) = self.usable() else {
            return store.mcp_token(token_hash).await;
        };
        if let Some(hit) = self.mcp_tokens.get(token_hash) {
            return Ok(TokenState::Valid((*hit).clone()));
        }
        let mut refused = None;
        let read = async {
            Ok(match store.mcp_token(token_hash).await? {
                TokenState::Valid(scope) => Some(Arc::new(scope)),
                other => {
                    refused = Some(other);
                    None
                }
            })
        };
        let found = self
            .read_through(&self.mcp_tokens, token_hash.to_owned(), feed, read)
            .await?;
        Ok(match found {
            Some(scope) => TokenState::Valid((*scope).clone()),
            None => refused.unwrap_or(TokenState::Unknown),
        })
    }

    /// Drops the MCP tokens of an agent session (revoked, or the session
    /// changed state).
    pub fn forget_agent_session(&self, session_id: &str) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.mcp_tokens
            .retain(|_, scope| scope.session_id != session_id);
    }

    /// Drops one session (logged out, expired).
    pub fn forget_session(&self, token_hash: &str) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.sessions.remove(token_hash);
    }

    /// Drops every session and permission of `user_id` (their account or
    /// sessions changed).
    pub fn forget_user(&self, user_id: &str) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.sessions.retain(|_, entry| entry.1.id != user_id);
        self.permissions.retain(|(user, _), _| user != user_id);
    }

    /// Drops what `user_id` may do in `project_id` (their membership
    /// changed).
    pub fn forget_member(&self, user_id: &str, project_id: &str) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.permissions
            .remove(&(user_id.to_owned(), project_id.to_owned()));
    }

    /// Drops every permission (a role changed).
    pub fn forget_permissions(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.permissions.clear();
    }

    /// Drops everything.
    pub fn clear(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.sessions.clear();
        self.permissions.clear();
        self.mcp_tokens.clear();
    }

    /// Forgets what `event` changed.
    pub fn observe(&self, event: &Event) {
        match event.kind {
            EventKind::LoginClosed | EventKind::UserUpdated | EventKind::UserDeleted => {
                self.forget_user(&event.entity_id);
            }
            EventKind::MemberAdded | EventKind::MemberRemoved => {
                if let Some(project_id) = &event.project_id {
                    self.forget_member(&event.entity_id, project_id);
                }
            }
            EventKind::RoleUpdated | EventKind::RoleDeleted => self.forget_permissions(),
            EventKind::AgentSessionStatus | EventKind::AgentSessionTokenRevoked => {
                self.forget_agent_session(&event.entity_id);
            }
            // Its sessions and their tokens went with it.
            EventKind::WorkItemDeleted => {
                self.epoch.fetch_add(1, Ordering::SeqCst);
                self.mcp_tokens
                    .retain(|_, scope| scope.work_item_id != event.entity_id);
            }
            _ => {}
        }
    }
}
