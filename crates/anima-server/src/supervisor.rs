//! The agent-session supervisor. It reacts to the outbox, not to the
//! handlers that wrote it, so the services never call one another: a
//! session that turns running is followed until its agent ends (then it is
//! ended and its sandbox destroyed), and when a work item changes phase its
//! running sessions get the new phase's skills.
//!
//! Every instance with an agent provider runs one. Its reactions may
//! overlap with another instance's: ending a session twice is refused the
//! second time, and deploying a phase's skills replaces them whole.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use anima_core::{
    DomainError,
    agent::{AgentSession, SessionStatus},
    error::reason,
    event::EventKind,
    model::EventPosition,
    paging::PageRequest,
    planning::WorkItem,
};
use anima_db::{SessionChange, SessionFilter, Store};
use tokio_stream::StreamExt;

use crate::{
    agents::{AgentProvider, AgentState},
    events::{EventHub, Reader, Replay, StreamItem},
    services::agent::skill_bundles,
};

/// How long the supervisor waits before following the outbox again after
/// its stream ended (it fell behind, or the store failed).
const RESUME_AFTER: Duration = Duration::from_secs(1);

/// Follows the running sessions of one server instance.
#[derive(Clone)]
pub struct Supervisor {
    store: Arc<dyn Store>,
    provider: Arc<dyn AgentProvider>,
    /// Sessions followed now, so a session is watched once however often
    /// it is announced.
    watched: Arc<Mutex<HashSet<String>>>,
}

impl Supervisor {
    /// A supervisor that follows nothing yet.
    pub fn new(store: Arc<dyn Store>, provider: Arc<dyn AgentProvider>) -> Self {
        Self {
            store,
            provider,
            watched: Arc::default(),
        }
    }

    /// Follows the sessions running now (a restart ended the watchers of
    /// the last process), then the outbox from here on.
    pub async fn start(self, hub: &Arc<EventHub>) -> Result<usize, DomainError> {
        let after = self.store.last_event().await?;
        let resumed = self.resume().await?;
        let hub = hub.clone();
        tokio::spawn(async move { self.follow(&hub, after).await });
        Ok(resumed)
    }

    /// Watches every session that is running; returns how many it took up.
    pub async fn resume(&self) -> Result<usize, DomainError> {
        let filter = SessionFilter {
            active_only: true,
            ..SessionFilter::default()
        };
        let mut page = PageRequest::parse(500, "", "sessions")?;
        let mut resumed = 0;
        loop {
            let listed = self.store.list_agent_sessions(&filter, &page).await?;
            for session in listed.items {
                if self.watch(session) {
                    resumed += 1;
                }
            }
            if listed.next_page_token.is_empty() {
                return Ok(resumed);
            }
            page = PageRequest::parse(500, &listed.next_page_token, "sessions")?;
        }
    }

    /// Reacts to every session status and work item change after `after`,
    /// for as long as the process runs.
    async fn follow(&self, hub: &Arc<EventHub>, mut after: EventPosition) {
        loop {
            let followed = hub.follow(after, Replay::All, Reader::internal(), |event| async move {
                Ok(matches!(
                    event.kind,
                    EventKind::AgentSessionStatus | EventKind::WorkItemUpdated
                ))
            });
            let mut stream = match followed {
                Ok(stream) => Box::pin(stream),
                Err(err) => {
                    tracing::warn!(%err, "the supervisor cannot follow the outbox");
                    tokio::time::sleep(RESUME_AFTER).await;
                    continue;
                }
            };
            while let Some(item) = stream.next().await {
                match item {
                    Ok(StreamItem::Event(event)) => {
                        if let Err(err) = self.react(event.kind, &event.entity_id).await {
                            // Read again from this event once the store
                            // answers: a session's watcher must not be lost.
                            tracing::warn!(%err, event = event.id, "the supervisor could not react; retrying");
                            break;
                        }
                        after = event.position();
                    }
                    Ok(StreamItem::Heartbeat { last }) => after = last,
                    Err(err) => {
                        tracing::warn!(%err, after = after.id, "the supervisor's stream ended; resuming");
                        break;
                    }
                }
            }
            tokio::time::sleep(RESUME_AFTER).await;
        }
    }

    /// Reacts to one event. What reaches the provider runs in a task of
    /// its own, so a slow provider holds up no other reaction; only a
    /// failed read of the store is an error (and the event is read again).
    async fn react(&self, kind: EventKind, entity_id: &str) -> Result<(), DomainError> {
        let read = match kind {
            EventKind::AgentSessionStatus => self
                .store
                .get_agent_session(entity_id)
                .await
                .map(|session| self.take_up(session)),
            EventKind::WorkItemUpdated => self.store.get_work_item(entity_id).await.map(|item| {
                let (store, provider) = (self.store.clone(), self.provider.clone());
                tokio::spawn(async move {
                    if let Err(err) = follow_phase_change(&store, &provider, &item).await {
                        tracing::warn!(%err, item = %item.id, "sessions did not follow the phase change");
                    }
                });
            }),
            _ => Ok(()),
        };
        match read {
            // Deleted meanwhile: nothing to follow.
            Err(err) if err.code == anima_core::ErrorCode::NotFound => Ok(()),
            other => other.map_err(DomainError::from),
        }
    }

    /// Watches a session that turned running, if this instance's provider
    /// runs its sandbox: on a database shared by several instances, each
    /// follows the sessions of its own provider and leaves the others'.
    fn take_up(&self, session: AgentSession) {
        if session.status != SessionStatus::Running || session.vm_id.is_empty() {
            return;
        }
        let supervisor = self.clone();
        tokio::spawn(async move {
            match supervisor.provider.state(&session.vm_id).await {
                Ok(AgentState::Running | AgentState::Ended { .. }) => {
                    supervisor.watch(session);
                }
                Ok(AgentState::Unknown) | Err(_) => {}
            }
        });
    }

    /// Starts following `session` if it runs in a sandbox and nobody here
    /// follows it yet; says whether it did.
    fn watch(&self, session: AgentSession) -> bool {
        if session.status != SessionStatus::Running || session.vm_id.is_empty() {
            return false;
        }
        let Ok(mut watched) = self.watched.lock() else {
            return false;
        };
        if !watched.insert(session.id.clone()) {
            return false;
        }
        let (store, provider, all) = (
            self.store.clone(),
            self.provider.clone(),
            self.watched.clone(),
        );
        let followed = Followed {
            id: session.id.clone(),
            all,
        };
        tokio::spawn(async move {
            // Dropped when the watch ends, or if it panics.
            let _followed = followed;
            watch(store, provider, session).await;
        });
        true
    }
}

/// A session followed by this process; forgotten when dropped.
struct Followed {
    id: String,
    all: Arc<Mutex<HashSet<String>>>,
}

impl Drop for Followed {
    fn drop(&mut self) {
        if let Ok(mut watched) = self.all.lock() {
            watched.remove(&self.id);
        }
    }
}

/// After a work item changed phase: each of its running sessions gets the
/// new phase's skills in its sandbox, and records the phase. A session
/// whose skills cannot be deployed keeps the old ones (logged): the
/// phase change itself has happened.
async fn follow_phase_change(
    store: &Arc<dyn Store>,
    provider: &Arc<dyn AgentProvider>,
    item: &WorkItem,
) -> Result<(), DomainError> {
    let filter = SessionFilter {
        work_item_id: Some(item.id.clone()),
        active_only: true,
        ..SessionFilter::default()
    };
    let page = PageRequest::parse(500, "", "sessions")?;
    let sessions = store.list_agent_sessions(&filter, &page).await?.items;
    let stale: Vec<AgentSession> = sessions
        .into_iter()
        .filter(|session| !session.vm_id.is_empty() && session.phase_id != item.phase_id)
        .collect();
    if stale.is_empty() {
        return Ok(());
    }
    let workflow = store.get_workflow(&item.workflow_id).await?;
    let skills = workflow
        .phase(&item.phase_id)
        .map(|phase| phase.required_skills.clone())
        .unwrap_or_default();
    let bundles = skill_bundles(store, &skills).await?;
    for session in stale {
        match provider
            .deploy_skills(&session.vm_id, bundles.clone())
            .await
        {
            Ok(()) => {
                store
                    .set_agent_session_phase(&session.id, &item.phase_id, &skills)
                    .await?;
            }
            Err(err) => {
                tracing::warn!(session = %session.id, %err, "deploying the new phase's skills failed")
            }
        }
    }
    Ok(())
}

/// How often a running session's sandbox is asked whether its agent ended.
const WATCH_INTERVAL: std::time::Duration = std::time::Duration::from_millis(500);

/// Follows a running session until its agent ends, then ends the session:
/// completed on exit 0, failed (with the exit code and last output)
/// otherwise. Ending it revokes its MCP token; its sandbox is destroyed
/// unless it is to be kept. A session someone stopped first is left as is.
async fn watch(store: Arc<dyn Store>, provider: Arc<dyn AgentProvider>, session: AgentSession) {
    let (status, error, exit_code) = loop {
        tokio::time::sleep(WATCH_INTERVAL).await;
        match provider.state(&session.vm_id).await {
            Ok(AgentState::Unknown) => return,
            Ok(AgentState::Running) => {}
            Ok(AgentState::Ended {
                success: true,
                exit_code,
                ..
            }) => break (SessionStatus::Completed, None, Some(exit_code)),
            Ok(AgentState::Ended {
                exit_code,
                last_output,
                ..
            }) => {
                let tail = last_output.join("\n");
                break (
                    SessionStatus::Failed,
                    Some(format!("the agent exited with {exit_code}:\n{tail}")),
                    Some(exit_code),
                );
            }
            // The provider restarted or lost it: its processes died with it.
            Err(err) if err.reason == reason::VM_NOT_FOUND => {
                break (
                    SessionStatus::Failed,
                    Some("the sandbox is gone: the agent provider lost it (restarted?)".to_owned()),
                    None,
                );
            }
            Err(err) => {
                tracing::warn!(session = %session.id, %err, "cannot read the sandbox's state")
            }
        }
        match store.get_agent_session(&session.id).await {
            Ok(current) if !current.status.is_final() => {}
            // Stopped meanwhile, or gone: nothing left to follow.
            _ => return,
        }
    };
    match store
        .set_agent_session_status(
            &session.id,
            status,
            SessionChange {
                error: error.as_deref(),
                exit_code,
                ..SessionChange::default()
            },
        )
        .await
    {
        Ok(ended) => {
            if let Err(err) = provider.destroy(&ended).await {
                tracing::warn!(session = %ended.id, %err, "destroying the sandbox failed");
            }
        }
        // Someone stopped it first; stopping destroyed the sandbox.
        Err(err) if err.reason == reason::SESSION_ENDED => {}
        Err(err) => tracing::warn!(session = %session.id, %err, "cannot end the session"),
    }
}
