//! A work item: its description and history, and its thread, live.

use super::*;

impl Controller {
    pub(super) async fn open_work_item(self: Arc<Self>, id: String) {
        if let Ok(mut state) = self.state.lock() {
            state.work_item = Some(id.clone());
        }
        self.ui(|window| window.set_screen(Screen::WorkItem));
        self.show_item(&id).await;
        self.show_thread(&id).await;
        self.clone().load_item(id.clone()).await;
        self.load_thread(id).await;
    }

    pub(super) fn is_open(&self, work_item_id: &str) -> bool {
        self.state
            .lock()
            .is_ok_and(|state| state.work_item.as_deref() == Some(work_item_id))
    }

    /// Shows the cached work item: its fields, phase strip, capabilities,
    /// sessions and description history.
    pub(super) async fn show_item(&self, id: &str) {
        if !self.is_open(id) {
            return;
        }
        let item: pb::WorkItem = self
            .cache
            .get(Kind::WorkItem, id)
            .await
            .ok()
            .flatten()
            .unwrap_or_default();
        let workflow: Option<pb::Workflow> = self
            .cache
            .get(Kind::Workflow, &item.workflow_id)
            .await
            .ok()
            .flatten();
        let revisions: Vec<pb::DescriptionRevision> = self
            .cache
            .list(Kind::Revision, id)
            .await
            .unwrap_or_default();
        let sessions: Vec<pb::AgentSession> =
            self.cache.list(Kind::Session, id).await.unwrap_or_default();
        let names = self.names();
        self.ui(move |window| {
            let phases = viewmodel::phase_chips(workflow.as_ref(), &item.phase_id);
            window.set_item_phases(viewmodel::rows(phases));
            window.set_item_capabilities(viewmodel::rows(viewmodel::capability_rows(
                &item.capabilities,
            )));
            window.set_item_sessions(viewmodel::rows(viewmodel::session_rows(
                sessions.iter().rev(),
                &names,
            )));
            window.set_item_revisions(viewmodel::rows(viewmodel::revision_rows(
                &revisions,
                &item.description_revision_id,
                &names,
            )));
            window.set_item_key(item.key.into());
            window.set_item_title(item.title.into());
            window.set_item_description(item.description.into());
            window.set_item_status(viewmodel::work_item_status(item.status).into());
            window.set_item_phase(item.phase_id.into());
        });
    }

    /// Fetches the work item with its history, sessions and workflow.
    pub(super) async fn load_item(self: Arc<Self>, id: String) {
        let Some(client) = self.client() else { return };
        let fetched = tokio::try_join!(
            client.work_item(&id),
            client.revisions(&id),
            client.sessions(&id),
            client.workflows(),
        );
        let (item, revisions, sessions, workflows) = match fetched {
            Ok(fetched) => fetched,
            Err(status) => return self.failed(&status),
        };
        let cached = async {
            self.cache
                .upsert_record(Kind::WorkItem, &item.project_id, &item, |item| {
                    (item.id.clone(), format!("{:020}", key_number(&item.key)))
                })
                .await?;
            self.cache
                .replace_records(Kind::Revision, &id, &revisions, |revision| {
                    (revision.id.clone(), format!("{:020}", revision.number))
                })
                .await?;
            self.cache
                .replace_records(Kind::Session, &id, &sessions, |session| {
                    (session.id.clone(), session.id.clone())
                })
                .await?;
            self.cache
                .replace_records(Kind::Workflow, "", &workflows, workflow_key)
                .await
        };
        if let Err(err) = cached.await {
            tracing::warn!("cannot cache the work item: {err:#}");
        }
        self.show_item(&id).await;
    }

    /// Restores an earlier description of the open work item.
    pub(super) async fn revert(self: Arc<Self>, revision_id: String) {
        let work_item = self.open_item_id();
        let (Some(client), Some(work_item)) = (self.client(), work_item) else {
            return;
        };
        let base = self
            .cache
            .get::<pb::WorkItem>(Kind::WorkItem, &work_item)
            .await
            .ok()
            .flatten()
            .map(|item| item.description_revision_id)
            .unwrap_or_default();
        match client.revert(&work_item, &revision_id, &base).await {
            Ok(_) => self.load_item(work_item).await,
            Err(status) => self.failed(&status),
        }
    }

    /// Shows the cached thread of `work_item_id` if it is still open.
    pub(super) async fn show_thread(&self, work_item_id: &str) {
        if !self.is_open(work_item_id) {
            return;
        }
        let messages: Vec<pb::Message> = self
            .cache
            .list(Kind::Message, work_item_id)
            .await
            .unwrap_or_default();
        let names = self.names();
        self.ui(move |window| {
            window.set_messages(viewmodel::rows(viewmodel::message_rows(&messages, &names)));
            window.set_emails(viewmodel::rows(viewmodel::email_rows(&messages, &names)));
        });
    }

    pub(super) async fn cache_message(&self, message: &pb::Message) {
        if let Err(err) = self
            .cache
            .upsert_record(Kind::Message, &message.work_item_id, message, message_key)
            .await
        {
            tracing::warn!("cannot cache a message: {err:#}");
        }
    }

    /// Fetches the thread, caches and shows it, and follows it live.
    pub(super) async fn load_thread(self: Arc<Self>, work_item_id: String) {
        let Some(client) = self.client() else { return };
        let messages = match client.thread(&work_item_id).await {
            Ok(messages) => messages,
            Err(status) => return self.failed(&status),
        };
        if let Err(err) = self
            .cache
            .replace_records(Kind::Message, &work_item_id, &messages, message_key)
            .await
        {
            tracing::warn!("cannot cache the thread: {err:#}");
        }
        self.show_thread(&work_item_id).await;

        let controller = self.clone();
        let following = work_item_id.clone();
        let task = self.runtime.spawn(async move {
            let Ok(mut events) = client.stream_thread(&following, 0).await else {
                return;
            };
            while let Ok(Some(event)) = events.message().await {
                if let Some(pb::thread_event::Kind::Message(message)) = event.kind {
                    controller.cache_message(&message).await;
                    controller.show_thread(&following).await;
                }
            }
        });
        if let Ok(mut state) = self.state.lock()
            && let Some(previous) = state.following.replace(task)
        {
            previous.abort();
        }
    }

    pub(super) async fn post(self: Arc<Self>, text: String) {
        let text = text.trim().to_owned();
        let work_item = self.open_item_id();
        let (Some(client), Some(work_item), false) = (self.client(), work_item, text.is_empty())
        else {
            return;
        };
        match client.post(&work_item, &text).await {
            Ok(message) => {
                self.cache_message(&message).await;
                self.show_thread(&work_item).await;
            }
            Err(status) => self.failed(&status),
        }
    }

    pub(super) async fn answer(self: Arc<Self>, id: String, answer: String) {
        let Some(client) = self.client() else { return };
        match client.resolve_decision(&id, answer.trim()).await {
            Ok(_) => self.refresh().await,
            Err(status) => self.failed(&status),
        }
    }
}

/// A thread message's cache key: its id, and its place by sequence.
fn message_key(message: &pb::Message) -> Key {
    (message.id.clone(), format!("{:020}", message.sequence))
}
