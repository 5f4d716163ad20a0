//! Live events for streaming RPCs.
//!
//! One tailer task per process reads the outbox whenever the store signals
//! a commit (its own, or another instance's through PostgreSQL NOTIFY; a
//! one-second poll backs both up) and broadcasts each event once. A
//! subscriber joins the broadcast first, then replays the outbox from its
//! cursor, then follows the broadcast, skipping what the replay already
//! gave: the outbox makes ids visible in order, so nothing falls between
//! the two and nothing comes twice.
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

use anima_core::{DomainError, ErrorCode, error::reason, model::Event};
use anima_db::Store;
use tokio::{sync::broadcast, task::JoinHandle};
use tokio_stream::Stream;

/// Events replayed from the outbox per read.
const REPLAY_BATCH: i64 = 500;
/// How often the tailer looks at the outbox without a commit signal.
const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// What a live stream yields.
#[derive(Debug, Clone)]
pub enum StreamItem {
    /// An event, in id order.
    Event(Arc<Event>),
    /// Nothing happened for a while; the stream is alive.
    Heartbeat {
        /// The last event id delivered (or the cursor).
        last_event_id: i64,
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

/// The process's source of live events.
pub struct EventHub {
    store: Arc<dyn Store>,
    live: broadcast::Sender<Arc<Event>>,
    heartbeat: Duration,
    tailer: JoinHandle<()>,
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
    pub fn start(store: Arc<dyn Store>, capacity: usize, heartbeat: Duration) -> Arc<Self> {
        let (live, _) = broadcast::channel(capacity.max(1));
        let tailer = tokio::spawn(tail(store.clone(), live.clone()));
        Arc::new(Self {
            store,
            live,
            heartbeat,
            tailer,
        })
    }

    /// Refuses a cursor that is negative or beyond the newest event: such a
    /// client would silently miss what comes before its imagined position.
    pub async fn check_cursor(&self, after: i64) -> Result<(), DomainError> {
        if after < 0 {
            return Err(DomainError::invalid_argument(
                reason::INVALID_CURSOR,
                format!("after_event_id must not be negative (got {after})"),
            ));
        }
        let newest = self.store.last_event_id().await?;
        if after > newest {
            return Err(DomainError::invalid_argument(
                reason::INVALID_CURSOR,
                format!("after_event_id {after} is from the future; the newest event is {newest}"),
            ));
        }
        Ok(())
    }

    /// Every event after `after` that `keep` accepts, then live ones as
    /// they commit, with a heartbeat whenever the stream has been silent
    /// for the heartbeat interval (skipped events move the heartbeat's
    /// cursor on, so a client resumes past them). Ends with an error if
    /// `keep` or the store fails, or if the consumer falls behind; the
    /// error says where to resume.
    pub fn follow<F, Fut>(
        self: &Arc<Self>,
        after: i64,
        replay: Replay,
        mut keep: F,
    ) -> impl Stream<Item = Result<StreamItem, DomainError>> + Send + 'static
    where
        F: FnMut(Arc<Event>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<bool, DomainError>> + Send,
    {
        let hub = self.clone();
        async_stream::try_stream! {
            // Join the broadcast before reading the outbox, so an event
            // committed during the replay is caught by one or the other.
            let mut live = hub.live.subscribe();
            let mut cursor = after;
            let mut last_sent = Instant::now();
            loop {
                let batch = match &replay {
                    Replay::All => hub.store.events_after(cursor, REPLAY_BATCH).await?,
                    Replay::WorkItem(id) => {
                        hub.store.work_item_events_after(id, cursor, REPLAY_BATCH).await?
                    }
                };
                let complete = (batch.len() as i64) < REPLAY_BATCH;
                for event in batch {
                    cursor = event.id;
                    let event = Arc::new(event);
                    if keep(event.clone()).await? {
                        last_sent = Instant::now();
                        yield StreamItem::Event(event);
                    } else if last_sent.elapsed() >= hub.heartbeat {
                        last_sent = Instant::now();
                        yield StreamItem::Heartbeat { last_event_id: cursor };
                    }
                }
                if complete {
                    break;
                }
            }
            loop {
                let wait = hub.heartbeat.saturating_sub(last_sent.elapsed());
                match tokio::time::timeout(wait, live.recv()).await {
                    Ok(Ok(event)) if event.id > cursor => {
                        cursor = event.id;
                        if keep(event.clone()).await? {
                            last_sent = Instant::now();
                            yield StreamItem::Event(event);
                        }
                    }
                    Ok(Ok(_replayed_already)) => {}
                    Ok(Err(broadcast::error::RecvError::Lagged(_))) => {
                        Err(slow_consumer(cursor))?;
                    }
                    Ok(Err(broadcast::error::RecvError::Closed)) => {
                        Err(DomainError::new(
                            ErrorCode::Unavailable,
                            reason::STORAGE_UNAVAILABLE,
                            format!("the server is shutting down; resume after event {cursor}"),
                        ))?;
                    }
                    Err(_silent) => {
                        last_sent = Instant::now();
                        yield StreamItem::Heartbeat { last_event_id: cursor };
                    }
                }
            }
        }
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
/// is new, in id order.
async fn tail(store: Arc<dyn Store>, live: broadcast::Sender<Arc<Event>>) {
    let mut commits = store.commits();
    let mut head = loop {
        match store.last_event_id().await {
            Ok(id) => break id,
            Err(err) => {
                tracing::warn!(%err, "event tailer cannot read the outbox; retrying");
                tokio::time::sleep(POLL_INTERVAL).await;
            }
        }
    };
    loop {
        commits.borrow_and_update();
        loop {
            match store.events_after(head, REPLAY_BATCH).await {
                Ok(batch) => {
                    let complete = (batch.len() as i64) < REPLAY_BATCH;
                    for event in batch {
                        head = event.id;
                        // No subscriber is not an error: nobody is watching.
                        let _ = live.send(Arc::new(event));
                    }
                    if complete {
                        break;
                    }
                }
                Err(err) => {
                    tracing::warn!(%err, "event tailer cannot read the outbox; retrying");
                    break;
                }
            }
        }
        tokio::select! {
            changed = commits.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            () = tokio::time::sleep(POLL_INTERVAL) => {}
        }
    }
}
