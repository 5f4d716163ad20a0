//! ThreadService: work item threads, promotion of AI messages into
//! descriptions, live thread streams, and human decisions.

use std::sync::Arc;

use anima_core::{
    DomainError, ErrorCode, Permission,
    error::reason,
    event::EventKind,
    id::parse_id,
    paging::PageRequest,
    planning::{DescriptionEdit, RevisionCause, WorkItemChanges},
    thread::{
        self as rules, Decision, DecisionState, Message, MessageKind, NewDecision, NewMessage,
    },
    validate,
};
use anima_db::{DecisionFilter, Store, ThreadPage};
use anima_proto::convert;
use anima_proto::v1::{self as pb, thread_service_server::ThreadService};
use tokio_stream::StreamExt;

use super::{ResponseStream, actor_of, grpc_service, optional_id};
use crate::{
    ai::Ai,
    auth::Caller,
    authz::{RequestContext, authorized_work_item, require_permission, require_project},
    error::to_status,
    events::{EventHub, Reader, Replay, StreamItem},
    limits::{Metered, RateLimiter},
};

/// Messages a thread summary reads by default, and at most.
const SUMMARY_MESSAGES: (i32, i32) = (50, 200);

/// The ThreadService implementation.
#[derive(Clone)]
pub struct ThreadApi {
    store: Arc<dyn Store>,
    hub: Arc<EventHub>,
    ai: Ai,
    limits: RateLimiter,
}

impl ThreadApi {
    /// Builds the service on the process's event hub; `limits` meters
    /// outbound mail.
    pub fn new(store: Arc<dyn Store>, hub: Arc<EventHub>, ai: Ai, limits: RateLimiter) -> Self {
        Self {
            store,
            hub,
            ai,
            limits,
        }
    }

    /// Summarises the thread's latest messages with anima-ai and posts the
    /// summary as a message of the chosen Akh, which names the model and
    /// tier that wrote it and the messages it cites. It can be promoted
    /// into the description like any Akh message.
    async fn summarize_thread(
        &self,
        context: &RequestContext,
        request: pb::SummarizeThreadRequest,
    ) -> Result<pb::SummarizeThreadResponse, DomainError> {
        let (default, max) = SUMMARY_MESSAGES;
        let count = match request.max_messages {
            0 => default,
            n if (1..=max).contains(&n) => n,
            n => {
                return Err(DomainError::invalid_argument(
                    reason::INVALID_FIELD,
                    format!("max_messages must be 1..={max} (0 for {default}), not {n}"),
                ));
            }
        };
        let akh_id = parse_id(&request.akh_id, "akh_id")?;
        let item =
            authorized_work_item(&self.store, context, &request.work_item_id, "work_item_id")
                .await?;
        let akh = self.store.get_akh(&akh_id).await?;
        let mut messages = self
            .store
            .list_messages(&item.id, ThreadPage::Before(i64::MAX), i64::from(count))
            .await?;
        messages.reverse();
        if messages.is_empty() {
            return Err(DomainError::failed_precondition(
                reason::FIELD_REQUIRED,
                "the thread has no messages to summarise",
            ));
        }
        let sources = messages
            .iter()
            .map(|message| pb::TextSource {
                id: message.id.clone(),
                text: message.body.clone(),
            })
            .collect();
        let tier = super::work_item::default_tier(request.tier);
        let admitted = self.ai.admit(context.caller.as_ref()).await?;
        let summary = self
            .ai
            .summarize(
                admitted,
                pb::SummarizeRequest {
                    tier,
                    sources,
                    max_sentences: 0,
                },
            )
            .await?;
        let cited: Vec<String> = summary
            .citations
            .iter()
            .filter_map(|citation| messages.iter().find(|m| m.id == citation.source_id))
            .map(|message| format!("#{}", message.sequence))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let tier_name = convert::tier_name(tier);
        let body = format!(
            "{}\n\n— Summary of the last {} messages by {} ({tier_name} tier){}.",
            summary.summary,
            messages.len(),
            summary.model,
            if cited.is_empty() {
                String::new()
            } else {
                format!(", citing {}", cited.join(", "))
            }
        );
        let message = self
            .store
            .post_message(NewMessage {
                work_item_id: item.id,
                kind: MessageKind::Akh,
                author: anima_core::planning::Actor::Akh {
                    akh_id: akh.id,
                    session_id: String::new(),
                    service: "anima-ai".into(),
                },
                body,
                email: None,
                attachments: Vec::new(),
                idempotency_key: None,
            })
            .await?;
        Ok(pb::SummarizeThreadResponse {
            message: Some(pb::Message::from(message)),
            tier,
            model: summary.model,
        })
    }

    /// Messages in sequence order, either way: tokens name a direction and
    /// a sequence (`a:<n>` after n ascending, `b:<n>` before n descending).
    async fn get_thread(
        &self,
        context: &RequestContext,
        request: pb::GetThreadRequest,
    ) -> Result<pb::GetThreadResponse, DomainError> {
        let item =
            authorized_work_item(&self.store, context, &request.work_item_id, "work_item_id")
                .await?;
        let page = PageRequest::parse(
            request.page_size,
            &request.page_token,
            &format!("thread:{}", item.id),
        )?;
        let position = match page.after.as_deref() {
            None if request.reverse => ThreadPage::Before(i64::MAX),
            None => ThreadPage::After(0),
            Some(key) => parse_position(key)?,
        };
        let mut messages = self
            .store
            .list_messages(&item.id, position, page.fetch_limit())
            .await?;
        let more = messages.len() > page.size as usize;
        messages.truncate(page.size as usize);
        let ascending = matches!(position, ThreadPage::After(_));
        // Onward continues the reading direction; back reverses it.
        let token = |sequence: i64, ascending: bool| {
            page.token_for(format!("{}:{sequence}", if ascending { "a" } else { "b" }))
        };
        let next_page_token = match messages.last() {
            Some(last) if more => token(last.sequence, ascending),
            _ => String::new(),
        };
        let previous_page_token = match messages.first() {
            Some(first) if page.after.is_some() => token(first.sequence, !ascending),
            _ => String::new(),
        };
        Ok(pb::GetThreadResponse {
            thread_id: item.id,
            messages: messages.into_iter().map(pb::Message::from).collect(),
            next_page_token,
            previous_page_token,
        })
    }

    async fn post_message(
        &self,
        context: &RequestContext,
        request: pb::PostMessageRequest,
    ) -> Result<pb::Message, DomainError> {
        let kind = convert::parse_message_kind(request.kind)?;
        rules::body(&request.body)?;
        let attachments = convert::parse_attachments(request.attachments);
        rules::attachments(&attachments)?;
        validate::max_chars(
            "idempotency_key",
            &request.idempotency_key,
            validate::MAX_NAME_CHARS,
        )?;
        let email = request.email.map(convert::parse_email);
        let is_email = matches!(kind, MessageKind::InboundEmail | MessageKind::OutboundEmail);
        let email = match (email, is_email) {
            (Some(headers), true) => {
                rules::email_headers(&headers, kind)?;
                Some(headers)
            }
            (None, true) => {
                return Err(DomainError::invalid_argument(
                    reason::FIELD_REQUIRED,
                    "email messages need their headers in `email`",
                ));
            }
            (Some(_), false) => {
                return Err(DomainError::invalid_argument(
                    reason::INVALID_FIELD,
                    "only email messages carry email headers",
                ));
            }
            (None, false) => None,
        };
        // People post as themselves; Akhs write through their session's
        // MCP token, inbound mail arrives through the mail worker's
        // ReceiveMail, system messages come from the server itself.
        let author = match kind {
            MessageKind::Human | MessageKind::OutboundEmail => actor_of(context.caller.as_ref())?,
            kind => {
                return Err(DomainError::new(
                    ErrorCode::PermissionDenied,
                    reason::MESSAGE_KIND_NOT_ALLOWED,
                    match kind {
                        MessageKind::Akh => "Akh messages come from agent sessions, over MCP",
                        MessageKind::InboundEmail => "inbound email comes from the mail worker",
                        _ => "system messages are written by the server itself",
                    },
                ));
            }
        };
        let item =
            authorized_work_item(&self.store, context, &request.work_item_id, "work_item_id")
                .await?;
        if kind == MessageKind::OutboundEmail {
            self.limits
                .take_for(Metered::OutboundMail, context.caller.as_ref())
                .await?;
        }
        let message = self
            .store
            .post_message(NewMessage {
                work_item_id: item.id,
                kind,
                author,
                body: request.body,
                email,
                attachments,
                idempotency_key: (!request.idempotency_key.is_empty())
                    .then_some(request.idempotency_key),
            })
            .await?;
        Ok(pb::Message::from(message))
    }

    /// Makes an Akh message the work item's description (a new revision
    /// that records the message it came from).
    async fn promote_message(
        &self,
        context: &RequestContext,
        request: pb::PromoteMessageRequest,
    ) -> Result<pb::PromoteMessageResponse, DomainError> {
        let message_id = parse_id(&request.message_id, "message_id")?;
        let base = optional_id(&request.base_revision_id, "base_revision_id")?;
        let message = self.store.get_message(&message_id).await?;
        let item = self.store.get_work_item(&message.work_item_id).await?;
        require_project(&self.store, context, &item.project_id).await?;
        if !message.kind.is_promotable() {
            return Err(DomainError::failed_precondition(
                reason::NOT_PROMOTABLE,
                "only Akh (AI) messages can become a description; this one is not",
            ));
        }
        let actor = actor_of(context.caller.as_ref())?;
        let updated = self
            .store
            .update_work_item(
                &item.id,
                WorkItemChanges {
                    description: Some(DescriptionEdit {
                        base_revision_id: base.unwrap_or(item.description_revision_id),
                        text: message.body,
                        cause: RevisionCause::AiPromotion,
                        source_message_id: Some(message.id),
                    }),
                    ..Default::default()
                },
                &actor,
            )
            .await?;
        Ok(pb::PromoteMessageResponse {
            work_item_id: updated.id,
            revision_id: updated.description_revision_id,
        })
    }

    /// Replays the thread's events after the cursor, then follows live.
    async fn stream_thread(
        &self,
        context: &RequestContext,
        request: pb::StreamThreadRequest,
    ) -> Result<ResponseStream<pb::ThreadEvent>, DomainError> {
        let item =
            authorized_work_item(&self.store, context, &request.work_item_id, "work_item_id")
                .await?;
        let after = self.hub.check_cursor(request.after_event_id).await?;
        let reader = Reader::of(context, Some((item.project_id, Permission::ThreadRead)));
        let work_item_id = item.id;
        let work_item_id_for_replay = work_item_id.clone();
        let keep = move |event: Arc<anima_core::model::Event>| {
            let concerns_item = event.work_item_id.as_deref() == Some(work_item_id.as_str());
            async move { Ok(concerns_item) }
        };
        let stream = self
            .hub
            .follow(
                after,
                Replay::WorkItem(work_item_id_for_replay),
                reader,
                keep,
            )?
            .map(|item| item.map(thread_event).map_err(to_status));
        Ok(Box::pin(stream))
    }

    async fn request_decision(
        &self,
        context: &RequestContext,
        request: pb::RequestDecisionRequest,
    ) -> Result<pb::Decision, DomainError> {
        rules::decision_request(&request.question, &request.input_label, &request.choices)?;
        let assignee_user_id = optional_id(&request.assignee_user_id, "assignee_user_id")?;
        let item =
            authorized_work_item(&self.store, context, &request.work_item_id, "work_item_id")
                .await?;
        let decision = self
            .store
            .request_decision(NewDecision {
                work_item_id: item.id,
                question: request.question,
                input_label: request.input_label,
                choices: request.choices,
                asked_by: actor_of(context.caller.as_ref())?,
                assignee_user_id,
            })
            .await?;
        Ok(pb::Decision::from(decision))
    }

    /// Decisions of a project, of an assignee, or (neither given) of every
    /// project whose threads the caller may read; oldest first.
    async fn list_decisions(
        &self,
        context: &RequestContext,
        request: pb::ListDecisionsRequest,
    ) -> Result<pb::ListDecisionsResponse, DomainError> {
        let project_id = optional_id(&request.project_id, "project_id")?;
        let assignee = optional_id(&request.user_id, "user_id")?;
        let state = convert::parse_decision_state(request.state)?;
        let reader = match &context.caller {
            Some(Caller::User { user, .. }) => {
                if assignee.as_deref().is_some_and(|id| id != user.id) && !user.is_admin {
                    return Err(DomainError::permission_denied(
                        "only administrators list another user's decisions",
                    ));
                }
                Some(user.id.clone())
            }
            _ => None,
        };
        if let Some(project_id) = &project_id {
            require_permission(&self.store, context, project_id, Permission::ThreadRead).await?;
        }
        let filter = DecisionFilter {
            project_id,
            assignee,
            reader,
            state,
        };
        let query = format!(
            "decisions:{}:{}:{}:{}",
            filter.project_id.as_deref().unwrap_or("*"),
            filter.assignee.as_deref().unwrap_or("*"),
            filter.reader.as_deref().unwrap_or("*"),
            filter.state.map_or("*", DecisionState::as_str)
        );
        let page = PageRequest::parse(request.page_size, &request.page_token, &query)?;
        let page = self.store.list_decisions(&filter, &page).await?;
        Ok(pb::ListDecisionsResponse {
            decisions: page.items.into_iter().map(pb::Decision::from).collect(),
            next_page_token: page.next_page_token,
        })
    }

    /// The decision, once the caller may resolve decisions in its project.
    async fn authorized_decision(
        &self,
        context: &RequestContext,
        raw_id: &str,
    ) -> Result<Decision, DomainError> {
        let id = parse_id(raw_id, "id")?;
        let decision = self.store.get_decision(&id).await?;
        require_project(&self.store, context, &decision.project_id).await?;
        Ok(decision)
    }

    async fn resolve_decision(
        &self,
        context: &RequestContext,
        request: pb::ResolveDecisionRequest,
    ) -> Result<pb::Decision, DomainError> {
        if request.answer.trim().is_empty() {
            return Err(DomainError::invalid_argument(
                reason::FIELD_REQUIRED,
                "answer must not be empty",
            ));
        }
        validate::max_chars("answer", &request.answer, rules::MAX_ANSWER_CHARS)?;
        let Some(Caller::User { user, .. }) = &context.caller else {
            return Err(DomainError::permission_denied(
                "a human decision is answered by a human",
            ));
        };
        let decision = self.authorized_decision(context, &request.id).await?;
        let resolved = self
            .store
            .resolve_decision(&decision.id, &request.answer, &user.id)
            .await?;
        Ok(pb::Decision::from(resolved))
    }

    async fn cancel_decision(
        &self,
        context: &RequestContext,
        request: pb::CancelDecisionRequest,
    ) -> Result<pb::Decision, DomainError> {
        validate::max_chars("reason", &request.reason, rules::MAX_QUESTION_CHARS)?;
        let decision = self.authorized_decision(context, &request.id).await?;
        let actor = actor_of(context.caller.as_ref())?;
        let cancelled = self
            .store
            .cancel_decision(&decision.id, &request.reason, &actor)
            .await?;
        Ok(pb::Decision::from(cancelled))
    }
}

fn parse_position(key: &str) -> Result<ThreadPage, DomainError> {
    let invalid = || {
        DomainError::invalid_argument(
            reason::INVALID_PAGE_TOKEN,
            "page_token is not one this thread issued; start again without it",
        )
    };
    let (direction, sequence) = key.split_once(':').ok_or_else(invalid)?;
    let sequence: i64 = sequence.parse().map_err(|_| invalid())?;
    match direction {
        "a" => Ok(ThreadPage::After(sequence)),
        "b" => Ok(ThreadPage::Before(sequence)),
        _ => Err(invalid()),
    }
}

/// A stream item on the wire: a posted message as itself, other events as
/// events.
fn thread_event(item: StreamItem) -> pb::ThreadEvent {
    use pb::thread_event::Kind;
    match item {
        StreamItem::Event(event) => {
            let message = (event.kind == EventKind::MessagePosted)
                .then(|| serde_json::from_str::<Message>(&event.payload).ok())
                .flatten();
            pb::ThreadEvent {
                event_id: event.id,
                kind: Some(match message {
                    Some(message) => Kind::Message(pb::Message::from(message)),
                    None => Kind::Event(pb::Event::from(event.as_ref())),
                }),
            }
        }
        StreamItem::Heartbeat { last } => pb::ThreadEvent {
            event_id: last.id,
            kind: Some(Kind::Heartbeat(convert::heartbeat(last.id))),
        },
    }
}

grpc_service!(ThreadApi: ThreadService {
    get_thread(pb::GetThreadRequest) -> pb::GetThreadResponse;
    post_message(pb::PostMessageRequest) -> pb::Message;
    promote_message(pb::PromoteMessageRequest) -> pb::PromoteMessageResponse;
    stream_thread(pb::StreamThreadRequest) -> ResponseStream<pb::ThreadEvent>;
    request_decision(pb::RequestDecisionRequest) -> pb::Decision;
    list_decisions(pb::ListDecisionsRequest) -> pb::ListDecisionsResponse;
    resolve_decision(pb::ResolveDecisionRequest) -> pb::Decision;
    cancel_decision(pb::CancelDecisionRequest) -> pb::Decision;
    summarize_thread(pb::SummarizeThreadRequest) -> pb::SummarizeThreadResponse;
});
