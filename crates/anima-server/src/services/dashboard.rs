//! DashboardService: the caller's morning view across every project whose
//! dashboard they may read, and a live stream of what changes in them.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use anima_core::{
    DomainError, Permission, event::Subject, model::Event, paging::PageRequest,
    planning::WorkItemStatus, thread::DecisionState,
};
use anima_db::{DecisionFilter, SessionFilter, Store};
use anima_proto::convert;
use anima_proto::v1::{self as pb, dashboard_service_server::DashboardService};
use tokio::sync::Mutex;
use tokio_stream::StreamExt;

use super::{ResponseStream, every_page, grpc_service, member_projects};
use crate::{
    auth::Caller,
    authz::RequestContext,
    error::to_status,
    events::{EventHub, Reader, Replay, StreamItem},
};

/// Events shown as recent activity.
const RECENT_EVENTS: i64 = 20;
/// Plans shown per project.
const PLANS_PER_PROJECT: i32 = 50;

/// The DashboardService implementation.
#[derive(Clone)]
pub struct DashboardApi {
    store: Arc<dyn Store>,
    hub: Arc<EventHub>,
}

impl DashboardApi {
    /// Builds the service on the process's event hub.
    pub fn new(store: Arc<dyn Store>, hub: Arc<EventHub>) -> Self {
        Self { store, hub }
    }

    /// Projects whose dashboard the caller may read (all, for services),
    /// each with whether the caller may read its threads too.
    async fn readable_projects(
        &self,
        caller: Option<&Caller>,
    ) -> Result<Vec<(anima_core::planning::Project, bool)>, DomainError> {
        let projects = member_projects(&*self.store, caller, "dashboard").await?;
        let Some(Caller::User { user, .. }) = caller else {
            return Ok(projects
                .into_iter()
                .map(|project| (project, true))
                .collect());
        };
        let mut readable = Vec::with_capacity(projects.len());
        for project in projects {
            let permissions = self
                .store
                .project_permissions(&user.id, &project.id)
                .await?;
            if permissions.contains(&Permission::DashboardRead) {
                readable.push((project, permissions.contains(&Permission::ThreadRead)));
            }
        }
        Ok(readable)
    }

    async fn get_dashboard(
        &self,
        context: &RequestContext,
        _request: pb::GetDashboardRequest,
    ) -> Result<pb::Dashboard, DomainError> {
        // Read the position first: everything the snapshot shows is at or
        // after it, so a stream from here misses nothing.
        let as_of_event_id = self.store.last_event().await?.id;
        let mut open_decisions = Vec::new();
        let mut active_sessions = Vec::new();
        let mut projects = Vec::new();
        let readable = self.readable_projects(context.caller.as_ref()).await?;
        let thread_readers: HashSet<String> = readable
            .iter()
            .filter(|(_, reads_threads)| *reads_threads)
            .map(|(project, _)| project.id.clone())
            .collect();
        for (project, _) in readable {
            let counts = self.store.work_item_counts(&project.id).await?;
            let total = |status: WorkItemStatus| {
                counts
                    .iter()
                    .filter(|count| count.status == status)
                    .map(|count| count.count)
                    .sum::<i64>()
            };
            let decisions = every_page("dashboard", |page| {
                let filter = DecisionFilter {
                    project_id: Some(project.id.clone()),
                    state: Some(DecisionState::Open),
                    ..Default::default()
                };
                async move { self.store.list_decisions(&filter, &page).await }
            })
            .await?;
            let sessions = every_page("dashboard", |page| {
                let filter = SessionFilter {
                    project_id: Some(project.id.clone()),
                    active_only: true,
                    ..Default::default()
                };
                async move { self.store.list_agent_sessions(&filter, &page).await }
            })
            .await?;
            let plans = self
                .store
                .list_plans(
                    &project.id,
                    &PageRequest::parse(PLANS_PER_PROJECT, "", "dashboard-plans")?,
                )
                .await?
                .items;
            projects.push(pb::ProjectSummary {
                project_id: project.id.clone(),
                name: project.name.clone(),
                open_work_items: total(WorkItemStatus::Open),
                in_progress_work_items: total(WorkItemStatus::InProgress),
                blocked_work_items: total(WorkItemStatus::Blocked),
                done_work_items: total(WorkItemStatus::Done),
                active_sessions: sessions.len() as i64,
                open_decisions: decisions.len() as i64,
                counts: counts
                    .iter()
                    .map(|count| pb::WorkItemCount {
                        status: pb::WorkItemStatus::from(count.status) as i32,
                        phase_id: count.phase_id.clone(),
                        count: count.count,
                    })
                    .collect(),
                plans: plans.into_iter().map(pb::Plan::from).collect(),
            });
            open_decisions.extend(decisions);
            active_sessions.extend(sessions);
        }
        // Oldest first: the longest-waiting human input leads.
        open_decisions.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        let recent_activity = match &context.caller {
            Some(Caller::User { user, .. }) => {
                self.store.recent_events(&user.id, RECENT_EVENTS).await?
            }
            _ => Vec::new(),
        };
        Ok(pb::Dashboard {
            open_decisions: open_decisions.into_iter().map(pb::Decision::from).collect(),
            active_sessions: active_sessions
                .into_iter()
                .map(pb::AgentSession::from)
                .collect(),
            projects,
            as_of_event_id,
            recent_activity: recent_activity
                .iter()
                .map(|event| {
                    let reads_threads = event
                        .project_id
                        .as_ref()
                        .is_some_and(|project| thread_readers.contains(project));
                    dashboard_event(event, reads_threads)
                })
                .collect(),
        })
    }

    /// Events of every project whose dashboard the caller may read. Access
    /// is decided per project when its first event passes and again when
    /// the caller's membership changes.
    async fn stream_dashboard_updates(
        &self,
        context: &RequestContext,
        request: pb::StreamDashboardUpdatesRequest,
    ) -> Result<ResponseStream<pb::DashboardUpdate>, DomainError> {
        let after = self.hub.check_cursor(request.after_event_id).await?;
        let reader = match &context.caller {
            Some(Caller::User { user, .. }) => Some(user.id.clone()),
            _ => None,
        };
        let store = self.store.clone();
        // Per project: may the reader see its dashboard, and its threads?
        let access: Arc<Mutex<HashMap<String, (bool, bool)>>> = Arc::default();
        let bodies = access.clone();
        let keep = move |event: Arc<Event>| {
            let store = store.clone();
            let reader = reader.clone();
            let access = access.clone();
            async move {
                // A role edit may change what any project grants.
                if event.kind.subject() == Subject::Role {
                    access.lock().await.clear();
                }
                let Some(project_id) = event.project_id.clone() else {
                    return Ok(false);
                };
                let Some(reader) = reader else {
                    return Ok(true);
                };
                let mut access = access.lock().await;
                if event.kind.subject() == Subject::Member && event.entity_id == reader {
                    access.remove(&project_id);
                }
                if let Some((allowed, _)) = access.get(&project_id) {
                    return Ok(*allowed);
                }
                let held = store.project_permissions(&reader, &project_id).await?;
                let allowed = held.contains(&Permission::DashboardRead);
                access.insert(
                    project_id,
                    (allowed, held.contains(&Permission::ThreadRead)),
                );
                Ok(allowed)
            }
        };
        let stream = self
            .hub
            .follow(after, Replay::All, Reader::of(context, None), keep)?
            .then(move |item| {
                let bodies = bodies.clone();
                async move {
                    let item = item.map_err(to_status)?;
                    let reads_threads = match &item {
                        StreamItem::Event(event) => match &event.project_id {
                            Some(project) => bodies
                                .lock()
                                .await
                                .get(project)
                                .is_none_or(|(_, threads)| *threads),
                            None => true,
                        },
                        StreamItem::Heartbeat { .. } => true,
                    };
                    Ok(dashboard_update(item, reads_threads))
                }
            });
        Ok(Box::pin(stream))
    }
}

/// An event as a dashboard shows it: what a message says only to those who
/// may read the thread (a dashboard.read without thread.read sees that
/// something was posted, not what).
fn dashboard_event(event: &Event, reads_threads: bool) -> pb::Event {
    let mut shown = pb::Event::from(event);
    if !reads_threads && event.kind.subject() == Subject::Message {
        shown.payload_json = "{}".into();
    }
    shown
}

fn dashboard_update(item: StreamItem, reads_threads: bool) -> pb::DashboardUpdate {
    use pb::dashboard_update::Kind;
    match item {
        StreamItem::Event(event) => pb::DashboardUpdate {
            event_id: event.id,
            kind: Some(Kind::Event(dashboard_event(&event, reads_threads))),
        },
        StreamItem::Heartbeat { last } => pb::DashboardUpdate {
            event_id: last.id,
            kind: Some(Kind::Heartbeat(convert::heartbeat(last.id))),
        },
    }
}

grpc_service!(DashboardApi: DashboardService {
    get_dashboard(pb::GetDashboardRequest) -> pb::Dashboard;
    stream_dashboard_updates(pb::StreamDashboardUpdatesRequest) -> ResponseStream<pb::DashboardUpdate>;
});
