//! Live events for streaming RPCs.
//!
//! One tailer task per process reads the outbox whenever the store signals
//! a commit (its own, or another instance's through PostgreSQL NOTIFY; a
//! one-second poll backs both up) and broadcasts each event once. A
//! subscriber joins the broadcast first, then replays the outbox from its
//! cursor, then follows the broadcast, skipping what the replay already
//! gave: the outbox only hands out events in position order, never one
//! that could later be passed by an earlier position (see
//! [`Store::events_after`]), so nothing falls between the two and nothing
//! comes twice. Clients name positions by event id; [`EventHub::check_cursor`]
//! maps the id back to its position.
//!
//! A stream ends as soon as its reader may no longer read it: their session
//! is checked again (and the permission the stream needs) whenever an event
//! may have changed it (a logout, a password change, a disabled account, a
//! role edited, their membership) and at least once per heartbeat interval
//! (an idle session expires), ending the stream with `UNAUTHENTICATED` or
//! `PERMISSION_DENIED`.
//!
//! Streams are pulled by the client. A client that stops reading lets its
//! broadcast receiver fall behind by more than the channel holds; it is then
//! cut off with `RESOURCE_EXHAUSTED`/`SLOW_CONSUMER` and the id to resume
//! after, instead of the server buffering for it without bound.

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use anima_core::{
    DomainError, ErrorCode, Permission,
    error::reason,
    event::EventKind,
    model::{Event, EventPosition},
};
use anima_db::Store;
use tokio::{sync::broadcast, task::JoinHandle};
use tokio_stream::Stream;

use crate::{
    auth::{Authenticator, Caller},
    authz::RequestContext,
    limits::{OpenPerUser, OpenSlot},
};

/// Events replayed from the outbox per read.
const REPLAY_BATCH: i64 = 500;
/// How often the tailer looks at the outbox without a commit signal.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// How soon the tailer looks again while events wait behind an older
/// writer, doubling up to [`HELD_BACK_MAX_WAIT`].
const HELD_BACK_FIRST_WAIT: Duration = Duration::from_millis(1);
const HELD_BACK_MAX_WAIT: Duration = Duration::from_millis(50);
/// How many held-back events the tailer shows the auth cache early, per
/// commit signal; beyond them, a change reaches the cache on delivery.
const HELD_BACK_PEEK: i64 = 10 * REPLAY_BATCH;

/// What a live stream yields.
#[derive(Debug, Clone)]
pub enum StreamItem {
    /// An event, in position order.
    Event(Arc<Event>),
    /// Nothing happened for a while; the stream is alive.
    Heartbeat {
        /// The last event passed, delivered or not (or the cursor): its
        /// id is where a client resumes.
        last: EventPosition,
    },
}

/// Which outbox rows a stream replays before it follows live.
#[derive(Debug, Clone)]
pub enum Replay {
    /// Every event (dashboards, anything filtering by project).
    All,
    /// Only the events of one work item, read by index: a thread stream
    /// resuming after a long absence does not scan everyone's events.
    WorkItem(String),
}

/// Who follows a stream and what it needs, checked again while it runs.
#[derive(Debug, Clone, Default)]
pub struct Reader {
    /// The user and the hash of the session token they opened it with;
    /// `None` for callers nobody checks (benchmarks).
    session: Option<(String, String)>,
    /// The permission the stream needs in one project.
    needs: Option<(String, Permission)>,
}

impl Reader {
    /// A reader inside this process (the agent-session supervisor), whose
    /// events never leave it: nothing to recheck, no user's stream place.
    pub fn internal() -> Self {
        Self::default()
    }

    /// The caller of a streaming request, needing `needs` (a project and a
    /// permission) if the stream is about one project.
    pub fn of(context: &RequestContext, needs: Option<(String, Permission)>) -> Self {
        let session = match &context.caller {
            Some(Caller::User {
                user, token_hash, ..
            }) => Some((user.id.clone(), token_hash.clone())),
            _ => None,
        };
        Self { session, needs }
    }

    /// Whether `event` may change what this reader may read.
    fn affected_by(&self, event: &Event) -> bool {
        let Some((user_id, _)) = &self.session else {
            return false;
        };
        match event.kind {
            EventKind::LoginClosed | EventKind::UserUpdated | EventKind::UserDeleted => {
                event.entity_id == *user_id
            }
            EventKind::RoleUpdated | EventKind::RoleDeleted => self.needs.is_some(),
            EventKind::MemberAdded | EventKind::MemberRemoved => {
                event.entity_id == *user_id
                    && self
                        .needs
                        .as_ref()
                        .is_some_and(|(project, _)| event.project_id.as_deref() == Some(project))
            }
            _ => false,
        }
    }
}

/// The process's source of live events.
pub struct EventHub {
    store: Arc<dyn Store>,
    authenticator: Authenticator,
    live: broadcast::Sender<Arc<Event>>,
    heartbeat: Duration,
    tailer: JoinHandle<()>,
    /// Live streams each user holds open on this instance; a place is
    /// given back when its stream ends (the client went away, or access
    /// ended).
    open: OpenPerUser,
}

impl Drop for EventHub {
    fn drop(&mut self) {
        self.tailer.abort();
    }
}

impl EventHub {
    /// Starts the tailer. `capacity` is how many events a subscriber may
    /// fall behind before it is cut off; `heartbeat` how long a stream may
    /// stay silent.
    /// `authenticator` checks readers' sessions while they follow; one
    /// user holds at most `streams_per_user` streams at once (0: no limit).
    pub fn start(
        store: Arc<dyn Store>,
        authenticator: Authenticator,
        capacity: usize,
        heartbeat: Duration,
        streams_per_user: usize,
    ) -> Arc<Self> {
        let (live, _) = broadcast::channel(capacity.max(1));
        let tailer = tokio::spawn(tail(store.clone(), live.clone(), authenticator.clone()));
        Arc::new(Self {
            store,
            authenticator,
            live,
            heartbeat,
            tailer,
            open: OpenPerUser::new(streams_per_user),
        })
    }

    /// Takes one of the reader's stream places, or refuses
    /// (`RESOURCE_EXHAUSTED`/`TOO_MANY_STREAMS`): each open stream holds a
    /// task, a broadcast subscription and periodic checks.
    fn reserve(&self, reader: &Reader) -> Result<Option<OpenSlot>, DomainError> {
        let Some((user_id, _)) = &reader.session else {
            return Ok(None);
        };
        self.open.take(user_id).map(Some).ok_or_else(|| {
            DomainError::new(
                ErrorCode::ResourceExhausted,
                reason::TOO_MANY_STREAMS,
                format!(
                    "you already follow {} live streams on this server, the most allowed; \
                     close one first",
                    self.open.most()
                ),
            )
        })
    }

    /// Where a stream resumes after the event `after` (0: the start).
    /// Refuses a cursor that is negative or names no event: such a client
    /// would silently miss what comes before its imagined position.
    pub async fn check_cursor(&self, after: i64) -> Result<EventPosition, DomainError> {
        if after < 0 {
            return Err(DomainError::invalid_argument(
                reason::INVALID_CURSOR,
                format!("after_event_id must not be negative (got {after})"),
            ));
        }
        if let Some(position) = self.store.event_position(after).await? {
            return Ok(position);
        }
        let newest = self.store.last_event().await?.id;
        let why = if after > newest {
            format!("after_event_id {after} is from the future; the newest event is {newest}")
        } else {
            format!("after_event_id {after} names no event")
        };
        Err(DomainError::invalid_argument(reason::INVALID_CURSOR, why))
    }

    /// Checks `reader` again ([`Self::check`]) when `event` may change their
    /// access, on a heartbeat (`None`), or when the last check is a
    /// heartbeat interval old.
    async fn recheck(
        &self,
        reader: &Reader,
        event: Option<&Event>,
        last_checked: &mut Instant,
    ) -> Result<(), DomainError> {
        let due = event.is_none_or(|event| reader.affected_by(event))
            || last_checked.elapsed() >= self.heartbeat;
        if due {
            self.check(reader).await?;
            *last_checked = Instant::now();
        }
        Ok(())
    }

    /// Ends with an error unless `reader` still has their session and the
    /// permission the stream needs.
    async fn check(&self, reader: &Reader) -> Result<(), DomainError> {
        let Some((user_id, token_hash)) = &reader.session else {
            return Ok(());
        };
        self.authenticator.check_session(token_hash).await?;
        if let Some((project_id, permission)) = &reader.needs {
            // From the database, not the cache: a replayed event may be
            // ahead of what this instance's cache has heard of.
            let held = self.store.project_permissions(user_id, project_id).await?;
            if !held.contains(permission) {
                return Err(DomainError::permission_denied(format!(
                    "you no longer hold {permission} in this project"
                )));
            }
        }
        Ok(())
    }

    /// Every event after `after` that `keep` accepts, then live ones as
    /// they commit, with a heartbeat whenever the stream has been silent
    /// for the heartbeat interval (skipped events move the heartbeat's
    /// cursor on, so a client resumes past them). Ends with an error if
    /// `reader` may no longer read it (see the module documentation), if
    /// `keep` or the store fails, or if the consumer falls behind; the
    /// error says where to resume. Refused when the reader already holds
    /// as many streams as one user may.
    pub fn follow<F, Fut>(
        self: &Arc<Self>,
        after: EventPosition,
        replay: Replay,
        reader: Reader,
        mut keep: F,
    ) -> Result<impl Stream<Item = Result<StreamItem, DomainError>> + Send + 'static, DomainError>
    where
        F: FnMut(Arc<Event>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<bool, DomainError>> + Send,
    {
        let hub = self.clone();
        let slot = self.reserve(&reader)?;
        Ok(async_stream::try_stream! {
            // Held for as long as the stream lives.
            let _slot = slot;
            // Join the broadcast before reading the outbox, so an event
            // committed during the replay is caught by one or the other.
            let mut live = hub.live.subscribe();
            let mut cursor = after;
            let mut last_sent = Instant::now();
            let mut last_checked = Instant::now();
            loop {
                let batch = match &replay {
                    Replay::All => hub.store.events_after(cursor, REPLAY_BATCH).await?,
                    Replay::WorkItem(id) => {
                        hub.store.work_item_events_after(id, cursor, REPLAY_BATCH).await?
                    }
                };
                let complete = (batch.len() as i64) < REPLAY_BATCH;
                for event in batch {
                    cursor = event.position();
                    let event = Arc::new(event);
                    hub.recheck(&reader, Some(&event), &mut last_checked).await?;
                    if keep(event.clone()).await? {
                        last_sent = Instant::now();
                        yield StreamItem::Event(event);
                    } else if last_sent.elapsed() >= hub.heartbeat {
                        last_sent = Instant::now();
                        yield StreamItem::Heartbeat { last: cursor };
                    }
                }
                if complete {
                    break;
                }
            }
            loop {
                let wait = hub.heartbeat.saturating_sub(last_sent.elapsed());
                match tokio::time::timeout(wait, live.recv()).await {
                    Ok(Ok(event)) if event.position() > cursor => {
                        cursor = event.position();
                        hub.recheck(&reader, Some(&event), &mut last_checked).await?;
                        if keep(event.clone()).await? {
                            last_sent = Instant::now();
                            yield StreamItem::Event(event);
                        }
                    }
                    Ok(Ok(_replayed_already)) => {}
                    Ok(Err(broadcast::error::RecvError::Lagged(_))) => {
                        Err(slow_consumer(cursor.id))?;
                    }
                    Ok(Err(broadcast::error::RecvError::Closed)) => {
                        Err(DomainError::new(
                            ErrorCode::Unavailable,
                            reason::STORAGE_UNAVAILABLE,
                            format!("the server is shutting down; resume after event {}", cursor.id),
                        ))?;
                    }
                    Err(_silent) => {
                        // An idle session expires while nothing happens.
                        hub.recheck(&reader, None, &mut last_checked).await?;
                        last_sent = Instant::now();
                        yield StreamItem::Heartbeat { last: cursor };
                    }
                }
            }
        })
    }
}

fn slow_consumer(cursor: i64) -> DomainError {
    DomainError::new(
        ErrorCode::ResourceExhausted,
        reason::SLOW_CONSUMER,
        format!("the stream fell too far behind; reconnect with after_event_id = {cursor}"),
    )
}

/// Reads the outbox after every commit signal (or poll) and broadcasts what
/// is new, in position order, after showing it to the authenticator's
/// session cache (so a stream's recheck never meets a stale session).
async fn tail(
    store: Arc<dyn Store>,
    live: broadcast::Sender<Arc<Event>>,
    authenticator: Authenticator,
) {
    let mut commits = store.commits();
    let mut head = loop {
        match store.last_event().await {
            Ok(position) => break position,
            Err(err) => {
                tracing::warn!(%err, "event tailer cannot read the outbox; retrying");
                tokio::time::sleep(POLL_INTERVAL).await;
            }
        }
    };
    // Held-back events already shown to the cache (see below), and
    // whether a commit was signalled since the last look at them.
    let mut forgotten_early = std::collections::HashSet::new();
    let mut signalled = true;
    let mut held_back_wait = HELD_BACK_FIRST_WAIT / 2;
    loop {
        commits.borrow_and_update();
        // Asked before the read: a writer that ends between the two is then
        // caught by the read or by the quick look again below, never left
        // to the slow poll.
        let held_back = store.events_held_back().await;
        loop {
            match store.events_after(head, REPLAY_BATCH).await {
                Ok(batch) => {
                    authenticator.cache().set_following(true);
                    let complete = (batch.len() as i64) < REPLAY_BATCH;
                    for event in batch {
                        head = event.position();
                        authenticator.cache().observe(&event);
                        // No subscriber is not an error: nobody is watching.
                        let _ = live.send(Arc::new(event));
                    }
                    if complete {
                        break;
                    }
                }
                Err(err) => {
                    // Changes may pass unobserved: the cache stands aside.
                    authenticator.cache().set_following(false);
                    tracing::warn!(%err, "event tailer cannot read the outbox; retrying");
                    break;
                }
            }
        }
        // What waits behind an older writer reaches streams only when that
        // writer ends, but the cache forgets what it changed now: a
        // revocation must not wait on somebody else's transaction.
        // Looked at only after a commit signal (a held-back event is
        // new only then), at most HELD_BACK_PEEK events deep.
        if matches!(held_back, Ok(true)) {
            if signalled {
                let mut after = head;
                for _ in 0..HELD_BACK_PEEK / REPLAY_BATCH {
                    match store.held_back_events(after, REPLAY_BATCH).await {
                        Ok(waiting) => {
                            let complete = (waiting.len() as i64) < REPLAY_BATCH;
                            for event in waiting {
                                after = event.position();
                                if forgotten_early.insert(event.id) {
                                    authenticator.cache().observe(&event);
                                }
                            }
                            if complete {
                                break;
                            }
                        }
                        Err(err) => {
                            authenticator.cache().set_following(false);
                            tracing::warn!(%err, "event tailer cannot read the outbox; retrying");
                            break;
                        }
                    }
                }
            }
        } else {
            forgotten_early.clear();
        }
        // Events that committed behind an older writer still running are
        // delivered when it ends, which may bring no commit signal (it
        // wrote no event, or runs in another database of the cluster):
        // look again soon, backing off, while any wait.
        let wait = match held_back {
            Ok(true) => {
                held_back_wait = (held_back_wait * 2).min(HELD_BACK_MAX_WAIT);
                held_back_wait
            }
            Ok(false) | Err(_) => {
                held_back_wait = HELD_BACK_FIRST_WAIT / 2;
                POLL_INTERVAL
            }
        };
        tokio::select! {
            changed = commits.changed() => {
                if changed.is_err() {
                    return;
                }
                signalled = true;
            }
            () = tokio::time::sleep(wait) => signalled = false,
        }
    }
}
