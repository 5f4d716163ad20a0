//! What the tools answer, as typed records: one serialisation of each
//! thing an agent reads, so a field is added in one place.

use anima_core::{
    agent::Task,
    capability::Capability,
    document::{Document, TextPart},
    planning::{Actor, Plan, WorkItem},
    thread::{Decision, Message, MessageKind},
    workflow::Phase,
};
use serde::Serialize;

use crate::library::LibraryHit;

/// `get_work_item`: the work item and its plan.
#[derive(Serialize)]
pub struct WorkItemView {
    id: String,
    key: String,
    title: String,
    description: String,
    description_revision_id: String,
    status: &'static str,
    priority: &'static str,
    workflow_id: String,
    phase: String,
    capabilities: Vec<Capability>,
    plan: Option<PlanView>,
}

impl WorkItemView {
    /// The item, with its plan when it has one.
    pub fn new(item: WorkItem, plan: Option<Plan>) -> Self {
        Self {
            key: item.key.to_string(),
            id: item.id,
            title: item.title,
            description: item.description,
            description_revision_id: item.description_revision_id,
            status: item.status.as_str(),
            priority: item.priority.as_str(),
            workflow_id: item.workflow_id,
            phase: item.phase_id,
            capabilities: item.capabilities,
            plan: plan.map(|plan| PlanView {
                share_done: plan.progress.share_done(),
                id: plan.id,
                title: plan.title,
            }),
        }
    }
}

/// A work item's plan and how far along it is.
#[derive(Serialize)]
struct PlanView {
    id: String,
    title: String,
    share_done: f64,
}

/// `get_thread`: one page of messages.
#[derive(Serialize)]
pub struct ThreadPageView {
    /// The messages, oldest first.
    pub messages: Vec<MessageView>,
    /// The `after_sequence` of the next page; none on the last.
    pub next_after_sequence: Option<i64>,
}

/// One message of a thread.
#[derive(Serialize)]
pub struct MessageView {
    sequence: i64,
    kind: MessageKind,
    author: Actor,
    body: String,
    time_micros: i64,
}

impl From<Message> for MessageView {
    fn from(message: Message) -> Self {
        Self {
            sequence: message.sequence,
            kind: message.kind,
            author: message.author,
            body: message.body,
            time_micros: message.created_at,
        }
    }
}

/// `get_workflow_phase`.
#[derive(Serialize)]
pub struct PhaseView {
    /// The workflow's name.
    pub workflow: String,
    /// The current phase (none if the workflow lost it).
    pub phase: Option<Phase>,
    /// The phase after it; none at the end.
    pub next_phase: Option<Phase>,
}

/// `post_message`: where the message landed.
#[derive(Serialize)]
pub struct PostedView {
    id: String,
    sequence: i64,
}

impl From<Message> for PostedView {
    fn from(message: Message) -> Self {
        Self {
            id: message.id,
            sequence: message.sequence,
        }
    }
}

/// `list_tasks`.
#[derive(Serialize)]
pub struct TasksView {
    /// The session's tasks.
    pub tasks: Vec<TaskView>,
}

/// A task of the session.
#[derive(Serialize)]
pub struct TaskView {
    id: String,
    title: String,
    status: &'static str,
    note: String,
}

impl From<Task> for TaskView {
    fn from(task: Task) -> Self {
        Self {
            id: task.id,
            title: task.title,
            status: task.status.as_str(),
            note: task.note,
        }
    }
}

/// `request_human_decision`: the open decision.
#[derive(Serialize)]
pub struct DecisionView {
    id: String,
    state: &'static str,
}

impl From<Decision> for DecisionView {
    fn from(decision: Decision) -> Self {
        Self {
            id: decision.id,
            state: decision.state.as_str(),
        }
    }
}

/// `search_library`: the hits, best first.
#[derive(Serialize)]
pub struct LibraryHitsView {
    /// The hits.
    pub hits: Vec<LibraryHitView>,
}

/// One document that matched, and the text around the match.
#[derive(Serialize)]
pub struct LibraryHitView {
    document_id: String,
    title: String,
    r#type: &'static str,
    media_type: String,
    work_item_id: Option<String>,
    snippet: String,
}

impl From<(Document, LibraryHit)> for LibraryHitView {
    fn from((document, hit): (Document, LibraryHit)) -> Self {
        Self {
            document_id: document.id,
            title: document.title,
            r#type: document.doc_type.as_str(),
            media_type: document.media_type,
            work_item_id: document.work_item_id,
            snippet: hit.snippet,
        }
    }
}

/// `read_document`: a part of a document's text.
#[derive(Serialize)]
pub struct DocumentTextView {
    document_id: String,
    title: String,
    media_type: String,
    size_bytes: i64,
    /// Why it has no text, when it has none.
    not_indexed_reason: Option<String>,
    total_chars: u64,
    offset: u64,
    text: String,
    /// Where the next part starts; absent after the last.
    next_offset: Option<u64>,
}

impl DocumentTextView {
    /// `part` of `document`'s text, read from `offset` on.
    pub fn new(document: Document, part: TextPart, offset: u64) -> Self {
        Self {
            document_id: document.id,
            title: document.title,
            media_type: document.media_type,
            size_bytes: document.size_bytes,
            not_indexed_reason: document.not_indexed_reason,
            total_chars: part.total_chars,
            offset,
            text: part.text,
            next_offset: part.next_offset,
        }
    }
}
