//! MailWorkerService: anima-mail's side of mail (the lookups routing needs,
//! and the write that records a fetched mail with the message it becomes).

use std::sync::Arc;

use anima_core::{
    DomainError,
    document::{DocumentType, SearchText},
    error::reason,
    id::parse_id,
    mail::{
        InboundState, MAX_CLASSIFY_CANDIDATES, MailContent, MailFile, Mailbox, NewInbound,
        OutboundOutcome, Suggestion,
    },
    paging::PageRequest,
    planning::{WorkItem, WorkItemKey, WorkItemStatus},
    thread as rules, validate,
};
use anima_db::{MailboxFilter, Store, WorkItemFilter};
use anima_proto::convert;
use anima_proto::v1::{self as pb, mail_worker_service_server::MailWorkerService};

use super::{grpc_service, mailbox::project_ids};
use crate::{
    ai::Ai,
    authz::RequestContext,
    library::{Library, content_of, index_attachments, search_text_of},
};

/// How long reading the text of one mail's attachments may take in all.
const MAIL_TEXT_BUDGET: std::time::Duration = std::time::Duration::from_secs(300);

/// The MailWorkerService implementation.
#[derive(Clone)]
pub struct MailWorkerApi {
    store: Arc<dyn Store>,
    ai: Ai,
    /// Where attachments' bytes go.
    library: Arc<dyn Library>,
}

impl MailWorkerApi {
    /// Builds the service.
    pub fn new(store: Arc<dyn Store>, ai: Ai, library: Arc<dyn Library>) -> Self {
        Self { store, ai, library }
    }

    /// An attachment as the worker sends it, its bytes handed to the
    /// library; a missing name or type gets a neutral one rather than
    /// refusing the mail.
    async fn mail_file(
        &self,
        file: pb::MailFile,
        read_by: tokio::time::Instant,
    ) -> Result<MailFile, DomainError> {
        let file_name = match file.file_name.trim() {
            "" => "attachment".to_owned(),
            name => name.chars().take(255).collect(),
        };
        let media_type = match file.media_type.trim() {
            "" => "application/octet-stream".to_owned(),
            media_type => media_type.to_owned(),
        };
        validate::max_chars("files.media_type", &media_type, 255)?;
        let blob = self.library.put(content_of(file.content)).await?;
        let reading = search_text_of(
            &*self.library,
            &blob.sha256,
            DocumentType::Attachment,
            &media_type,
            &file_name,
        );
        let text = tokio::time::timeout_at(read_by, reading)
            .await
            .unwrap_or_else(|_| {
                SearchText::NotIndexed(format!(
                    "its text was not read: the mail's attachments took longer than {} s",
                    MAIL_TEXT_BUDGET.as_secs()
                ))
            });
        Ok(MailFile {
            file_name,
            media_type,
            blob,
            text,
        })
    }

    /// A work item as routing sees it.
    async fn routed(&self, item: WorkItem) -> Result<pb::RoutedWorkItemResponse, DomainError> {
        let project = self.store.get_project(&item.project_id).await?;
        Ok(pb::RoutedWorkItemResponse {
            item: Some(pb::RoutedWorkItem {
                id: item.id,
                project_id: item.project_id,
                writable: project.status == anima_core::planning::ProjectStatus::Active,
            }),
        })
    }

    async fn list_followed_mailboxes(
        &self,
        _context: &RequestContext,
        request: pb::ListFollowedMailboxesRequest,
    ) -> Result<pb::ListFollowedMailboxesResponse, DomainError> {
        let page = PageRequest::parse(request.page_size, &request.page_token, "followed")?;
        let page = self
            .store
            .list_mailboxes(&MailboxFilter::default(), &page)
            .await?;
        Ok(pb::ListFollowedMailboxesResponse {
            mailboxes: page
                .items
                .into_iter()
                .map(|mailbox| pb::FollowedMailbox {
                    jmap_state: mailbox.jmap_state.clone().unwrap_or_default(),
                    mailbox: Some(pb::Mailbox::from(mailbox)),
                })
                .collect(),
            next_page_token: page.next_page_token,
        })
    }

    async fn save_sync_state(
        &self,
        _context: &RequestContext,
        request: pb::SaveSyncStateRequest,
    ) -> Result<pb::SaveSyncStateResponse, DomainError> {
        let id = parse_id(&request.mailbox_id, "mailbox_id")?;
        validate::max_chars("jmap_state", &request.jmap_state, validate::MAX_NAME_CHARS)?;
        self.store.save_jmap_state(&id, &request.jmap_state).await?;
        Ok(pb::SaveSyncStateResponse {})
    }

    async fn remove_mailbox(
        &self,
        _context: &RequestContext,
        request: pb::RemoveMailboxRequest,
    ) -> Result<pb::RemoveMailboxResponse, DomainError> {
        let id = parse_id(&request.mailbox_id, "mailbox_id")?;
        self.store.remove_mailbox(&id).await?;
        Ok(pb::RemoveMailboxResponse {})
    }

    async fn refuse_mailbox(
        &self,
        _context: &RequestContext,
        request: pb::RefuseMailboxRequest,
    ) -> Result<pb::RefuseMailboxResponse, DomainError> {
        let id = parse_id(&request.mailbox_id, "mailbox_id")?;
        validate::max_chars("problem", &request.problem, validate::MAX_NAME_CHARS * 4)?;
        self.store.refuse_mailbox(&id, &request.problem).await?;
        Ok(pb::RefuseMailboxResponse {})
    }

    async fn confirm_mailbox_account(
        &self,
        _context: &RequestContext,
        request: pb::ConfirmMailboxAccountRequest,
    ) -> Result<pb::ConfirmMailboxAccountResponse, DomainError> {
        let id = parse_id(&request.mailbox_id, "mailbox_id")?;
        self.store.confirm_mailbox_account(&id).await?;
        Ok(pb::ConfirmMailboxAccountResponse {})
    }

    async fn resolve_work_item(
        &self,
        _context: &RequestContext,
        request: pb::ResolveWorkItemRequest,
    ) -> Result<pb::RoutedWorkItemResponse, DomainError> {
        let mut found = None;
        for project_id in project_ids(&request.project_ids)? {
            match self
                .store
                .find_work_item(&project_id, WorkItemKey(request.key))
                .await
            {
                // The same key in two of a gather mailbox's projects names
                // neither: the mail waits for a human.
                Ok(_) if found.is_some() => return Ok(pb::RoutedWorkItemResponse { item: None }),
                Ok(item) => found = Some(item),
                Err(err) if err.code == anima_core::ErrorCode::NotFound => {}
                Err(err) => return Err(err.into()),
            }
        }
        match found {
            Some(item) => self.routed(item).await,
            None => Ok(pb::RoutedWorkItemResponse { item: None }),
        }
    }

    async fn find_thread_of_mail(
        &self,
        _context: &RequestContext,
        request: pb::FindThreadOfMailRequest,
    ) -> Result<pb::FindThreadOfMailResponse, DomainError> {
        if request.message_ids.len() > 100 {
            return Err(DomainError::invalid_argument(
                reason::FIELD_TOO_LONG,
                "at most 100 message ids",
            ));
        }
        let mailbox_id = parse_id(&request.mailbox_id, "mailbox_id")?;
        if let Some(id) = self
            .store
            .thread_of_mail(&mailbox_id, &request.message_ids)
            .await?
        {
            let routed = self.routed(self.store.get_work_item(&id).await?).await?;
            return Ok(pb::FindThreadOfMailResponse {
                item: routed.item,
                waiting: pb::InboundMailState::Unspecified as i32,
            });
        }
        let waiting = self
            .store
            .waiting_mail(&mailbox_id, &request.message_ids)
            .await?;
        Ok(pb::FindThreadOfMailResponse {
            item: None,
            waiting: waiting.map_or(
                pb::InboundMailState::Unspecified,
                pb::InboundMailState::from,
            ) as i32,
        })
    }

    async fn knows_sender(
        &self,
        _context: &RequestContext,
        request: pb::KnowsSenderRequest,
    ) -> Result<pb::KnowsSenderResponse, DomainError> {
        let id = parse_id(&request.work_item_id, "work_item_id")?;
        Ok(pb::KnowsSenderResponse {
            known: self.store.knows_address(&id, &request.sender).await?,
        })
    }

    async fn classify_inbound(
        &self,
        _context: &RequestContext,
        request: pb::ClassifyInboundRequest,
    ) -> Result<pb::ClassifyInboundResponse, DomainError> {
        let project_id = parse_id(&request.project_id, "project_id")?;
        let mut candidates = Vec::new();
        let mut page = PageRequest::parse(MAX_CLASSIFY_CANDIDATES as i32, "", "candidates")?;
        // Every open item, newest kept when there are more than anima-ai takes.
        loop {
            let listed = self
                .store
                .list_work_items(&project_id, &WorkItemFilter::default(), &page)
                .await?;
            candidates.extend(
                listed
                    .items
                    .into_iter()
                    .filter(|item| {
                        !matches!(
                            item.status,
                            WorkItemStatus::Done | WorkItemStatus::Cancelled
                        )
                    })
                    .map(|item| pb::CandidateWorkItem {
                        work_item_id: item.id,
                        title: item.title,
                        description: item.description,
                        recent_messages: Vec::new(),
                    }),
            );
            if listed.next_page_token.is_empty() {
                break;
            }
            page = PageRequest::parse(
                MAX_CLASSIFY_CANDIDATES as i32,
                &listed.next_page_token,
                "candidates",
            )?;
        }
        if candidates.len() > MAX_CLASSIFY_CANDIDATES {
            candidates.drain(..candidates.len() - MAX_CLASSIFY_CANDIDATES);
        }
        if candidates.is_empty() {
            return Ok(pb::ClassifyInboundResponse::default());
        }
        // Past the project's limit the mail waits in triage for a human.
        let admitted = self.ai.admit_mail_of(&project_id).await?;
        let answer = self
            .ai
            .classify_mail(
                admitted,
                pb::ClassifyMailRequest {
                    from: request.from,
                    subject: request.subject,
                    body: request.body,
                    candidates,
                },
            )
            .await?;
        let item = match answer.work_item_id.as_str() {
            "" => None,
            id => self.routed(self.store.get_work_item(id).await?).await?.item,
        };
        Ok(pb::ClassifyInboundResponse {
            item,
            best_work_item_id: answer.best_work_item_id,
            confidence: answer.confidence,
            model: answer.model,
        })
    }

    async fn receive_mail(
        &self,
        _context: &RequestContext,
        request: pb::ReceiveMailRequest,
    ) -> Result<pb::ReceiveMailResponse, DomainError> {
        let mailbox_id = parse_id(&request.mailbox_id, "mailbox_id")?;
        let state = convert::parse_inbound_state(request.state)?
            .filter(|state| *state != InboundState::Dismissed)
            .ok_or_else(|| {
                DomainError::invalid_argument(
                    reason::INVALID_FIELD,
                    "state must be posted, held or triage",
                )
            })?;
        let email = convert::parse_email(request.email.unwrap_or_default());
        if email.message_id.trim().is_empty() {
            return Err(DomainError::invalid_argument(
                reason::FIELD_REQUIRED,
                "email.message_id is required",
            ));
        }
        validate::max_chars("email.message_id", &email.message_id, 998)?;
        rules::body(&request.body)?;
        // Stored before the mail is recorded: bytes of a mail that then
        // fails (or was received already) are the sweep's to take. Reading
        // their text has a budget per mail, so the mail is recorded well
        // within the sweep's grace however many attachments it has.
        let read_by = tokio::time::Instant::now() + MAIL_TEXT_BUDGET;
        let mut files = Vec::with_capacity(request.files.len());
        for file in request.files {
            files.push(self.mail_file(file, read_by).await?);
        }
        let work_item_id = super::optional_id(&request.work_item_id, "work_item_id")?;
        let suggestion =
            super::optional_id(&request.suggested_work_item_id, "suggested_work_item_id")?.map(
                |work_item_id| Suggestion {
                    work_item_id,
                    confidence: request.confidence.clamp(0.0, 1.0),
                },
            );
        let (record, new) = self
            .store
            .receive_mail(NewInbound {
                mailbox_id,
                message_id: email.message_id.clone(),
                state,
                reason: request.reason.chars().take(1000).collect(),
                work_item_id,
                content: MailContent {
                    email,
                    body: request.body,
                    attachments: Vec::new(),
                },
                suggestion,
                files,
            })
            .await?;
        if new {
            index_attachments(&*self.store, &*self.library, &record).await;
        }
        Ok(pb::ReceiveMailResponse {
            mail: Some(pb::InboundMail::from(record)),
            new,
        })
    }
}

impl MailWorkerApi {
    /// The mailbox a project's mail is sent from: its first active mailbox,
    /// one serving only this project before a gather mailbox.
    async fn sending_mailbox(&self, project_id: &str) -> Result<Option<Mailbox>, DomainError> {
        let page = PageRequest::parse(500, "", "sending")?;
        let filter = MailboxFilter {
            project_id: Some(project_id.to_owned()),
            state: Some(anima_core::mail::MailboxState::Active),
        };
        let mut mailboxes = self.store.list_mailboxes(&filter, &page).await?.items;
        mailboxes.sort_by_key(Mailbox::is_gather);
        Ok(mailboxes.into_iter().next())
    }

    async fn claim_outbound_mail(
        &self,
        _context: &RequestContext,
        request: pb::ClaimOutboundMailRequest,
    ) -> Result<pb::ClaimOutboundMailResponse, DomainError> {
        let limit = i64::from(request.limit.clamp(1, 100));
        let lease = match request.lease_seconds {
            0 => 300,
            seconds => i64::from(seconds.clamp(1, 3600)),
        };
        let now = anima_core::model::now_micros();
        let claims = self
            .store
            .claim_outbound(now, now + lease * 1_000_000, limit)
            .await?;
        let mut mails = Vec::with_capacity(claims.len());
        for claim in claims {
            let item = self
                .store
                .get_work_item(&claim.message.work_item_id)
                .await?;
            let Some(mailbox) = self.sending_mailbox(&item.project_id).await? else {
                self.store
                    .finish_outbound(
                        &claim.message.id,
                        OutboundOutcome::Failed {
                            error: format!(
                                "{}: no mailbox serves this project; create one with `anima mailbox create`",
                                reason::NO_MAILBOX
                            ),
                        },
                    )
                    .await?;
                continue;
            };
            mails.push(pb::OutboundMail {
                message: Some(pb::Message::from(claim.message)),
                attempt: claim.attempt,
                work_item_key: item.key.to_string(),
                from_address: mailbox.address,
                from_name: mailbox.display_name,
                project_id: item.project_id,
            });
        }
        Ok(pb::ClaimOutboundMailResponse { mails })
    }

    async fn report_delivery(
        &self,
        _context: &RequestContext,
        request: pb::ReportDeliveryRequest,
    ) -> Result<pb::ReportDeliveryResponse, DomainError> {
        let id = parse_id(&request.message_id, "message_id")?;
        let error: String = request.error.chars().take(1000).collect();
        let outcome = match (request.sent, request.retry_after_ms) {
            (true, _) => OutboundOutcome::Sent,
            (false, 0) => OutboundOutcome::Failed { error },
            (false, after) => OutboundOutcome::Retry {
                error,
                at: anima_core::model::now_micros() + after.clamp(0, 86_400_000) * 1_000,
            },
        };
        let message = self.store.finish_outbound(&id, outcome).await?;
        Ok(pb::ReportDeliveryResponse {
            message: Some(pb::Message::from(message)),
        })
    }
}

grpc_service!(MailWorkerApi: MailWorkerService {
    claim_outbound_mail(pb::ClaimOutboundMailRequest) -> pb::ClaimOutboundMailResponse;
    report_delivery(pb::ReportDeliveryRequest) -> pb::ReportDeliveryResponse;
    list_followed_mailboxes(pb::ListFollowedMailboxesRequest) -> pb::ListFollowedMailboxesResponse;
    save_sync_state(pb::SaveSyncStateRequest) -> pb::SaveSyncStateResponse;
    remove_mailbox(pb::RemoveMailboxRequest) -> pb::RemoveMailboxResponse;
    refuse_mailbox(pb::RefuseMailboxRequest) -> pb::RefuseMailboxResponse;
    confirm_mailbox_account(pb::ConfirmMailboxAccountRequest) -> pb::ConfirmMailboxAccountResponse;
    resolve_work_item(pb::ResolveWorkItemRequest) -> pb::RoutedWorkItemResponse;
    find_thread_of_mail(pb::FindThreadOfMailRequest) -> pb::FindThreadOfMailResponse;
    knows_sender(pb::KnowsSenderRequest) -> pb::KnowsSenderResponse;
    classify_inbound(pb::ClassifyInboundRequest) -> pb::ClassifyInboundResponse;
    receive_mail(pb::ReceiveMailRequest) -> pb::ReceiveMailResponse;
});
