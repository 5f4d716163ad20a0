//! MailboxService (people: mailboxes, their projects, the triage and held
//! lists) and MailWorkerService (anima-mail: the lookups routing needs and
//! the write that records a fetched mail with the message it becomes).

use std::sync::Arc;

use anima_core::{
    DomainError,
    document::MAX_DOCUMENT_SIZE,
    error::reason,
    id::parse_id,
    mail::{
        DEFAULT_MAX_SIZE, InboundState, MAX_CLASSIFY_CANDIDATES, MailContent, MailFile, Mailbox,
        MailboxChanges, NewInbound, NewMailbox, OutboundOutcome, Suggestion, allowed_domain,
        mailbox_address,
    },
    paging::PageRequest,
    planning::{WorkItem, WorkItemKey, WorkItemStatus},
    thread as rules, validate,
};
use anima_db::{InboundFilter, MailboxFilter, Store, WorkItemFilter};
use anima_proto::convert;
use anima_proto::v1::{
    self as pb, mail_worker_service_server::MailWorkerService,
    mailbox_service_server::MailboxService,
};

use super::{actor_of, grpc_service, mask_paths};
use crate::{
    ai::Ai,
    auth::Caller,
    authz::{RequestContext, authorized_work_item, require_project},
};

const MAILBOX_PATHS: &[&str] = &["display_name", "rules", "max_size_bytes"];

/// Largest size limit a mailbox may set: what the library takes, so that
/// every attachment of mail the mailbox accepts can be kept.
const MAX_SIZE_LIMIT: i64 = MAX_DOCUMENT_SIZE as i64;

/// The MailboxService implementation.
#[derive(Clone)]
pub struct MailboxApi {
    store: Arc<dyn Store>,
    /// The domains Anima may make addresses in (server configuration).
    mail_domains: Arc<[String]>,
}

impl MailboxApi {
    /// Builds the service; addresses may be made in `mail_domains` only.
    pub fn new(store: Arc<dyn Store>, mail_domains: &[String]) -> Self {
        Self {
            store,
            mail_domains: mail_domains.into(),
        }
    }

    /// The mailbox, once the caller holds the RPC's permission in every
    /// project it serves: changing a mailbox changes it for all of them.
    async fn managed_mailbox(
        &self,
        context: &RequestContext,
        raw_id: &str,
    ) -> Result<Mailbox, DomainError> {
        let mailbox = self.store.get_mailbox(&parse_id(raw_id, "id")?).await?;
        for project_id in &mailbox.project_ids {
            require_project(&self.store, context, project_id).await?;
        }
        Ok(mailbox)
    }

    /// The mailbox, once the caller holds the RPC's permission in one of
    /// its projects: whoever is served by a gather mailbox sees its mail.
    async fn served_mailbox(
        &self,
        context: &RequestContext,
        id: &str,
    ) -> Result<Mailbox, DomainError> {
        let mailbox = self.store.get_mailbox(id).await?;
        let mut refusal = None;
        for project_id in &mailbox.project_ids {
            match require_project(&self.store, context, project_id).await {
                Ok(()) => return Ok(mailbox),
                Err(err) => refusal = Some(err),
            }
        }
        Err(refusal.unwrap_or_else(|| DomainError::permission_denied("no project of yours")))
    }

    async fn list_mailboxes(
        &self,
        context: &RequestContext,
        request: pb::ListMailboxesRequest,
    ) -> Result<pb::ListMailboxesResponse, DomainError> {
        let project_id = parse_id(&request.project_id, "project_id")?;
        require_project(&self.store, context, &project_id).await?;
        let page = PageRequest::parse(
            request.page_size,
            &request.page_token,
            &format!("mailboxes:{project_id}"),
        )?;
        let filter = MailboxFilter {
            project_id: Some(project_id),
            state: None,
        };
        let page = self.store.list_mailboxes(&filter, &page).await?;
        Ok(pb::ListMailboxesResponse {
            mailboxes: page.items.into_iter().map(pb::Mailbox::from).collect(),
            next_page_token: page.next_page_token,
        })
    }

    async fn get_mailbox(
        &self,
        context: &RequestContext,
        request: pb::GetMailboxRequest,
    ) -> Result<pb::Mailbox, DomainError> {
        let id = parse_id(&request.id, "id")?;
        Ok(pb::Mailbox::from(self.served_mailbox(context, &id).await?))
    }

    async fn create_mailbox(
        &self,
        context: &RequestContext,
        request: pb::CreateMailboxRequest,
    ) -> Result<pb::Mailbox, DomainError> {
        let address = mailbox_address(&request.address)?;
        allowed_domain(&address, &self.mail_domains)?;
        let adopted = request.adopt_existing;
        if adopted && !matches!(&context.caller, Some(Caller::User { user, .. }) if user.is_admin) {
            return Err(DomainError::permission_denied(
                "only a server administrator takes over an existing mail account (adopt_existing)",
            ));
        }
        let display_name = match request.display_name.trim() {
            "" => address.split('@').next().unwrap_or_default().to_owned(),
            name => name.to_owned(),
        };
        validate::name("display_name", &display_name)?;
        let project_ids = project_ids(&request.project_ids)?;
        if project_ids.is_empty() {
            return Err(DomainError::invalid_argument(
                reason::FIELD_REQUIRED,
                "a mailbox serves at least one project (project_ids)",
            ));
        }
        for project_id in &project_ids {
            require_project(&self.store, context, project_id).await?;
        }
        let mailbox = self
            .store
            .create_mailbox(NewMailbox {
                address,
                display_name,
                project_ids,
                rules: convert::parse_rules(request.rules),
                max_size: max_size(request.max_size_bytes)?,
                adopted,
                import_history: request.import_history,
            })
            .await?;
        Ok(pb::Mailbox::from(mailbox))
    }

    /// Server admins only (the access table says so).
    async fn adopt_mailbox(
        &self,
        _context: &RequestContext,
        request: pb::AdoptMailboxRequest,
    ) -> Result<pb::Mailbox, DomainError> {
        let id = parse_id(&request.id, "id")?;
        Ok(pb::Mailbox::from(self.store.adopt_mailbox(&id).await?))
    }

    async fn update_mailbox(
        &self,
        context: &RequestContext,
        request: pb::UpdateMailboxRequest,
    ) -> Result<pb::Mailbox, DomainError> {
        let paths = mask_paths(request.update_mask, MAILBOX_PATHS)?;
        let changed = request.mailbox.unwrap_or_default();
        let mailbox = self.managed_mailbox(context, &request.id).await?;
        let mut changes = MailboxChanges::default();
        for path in &paths {
            match path.as_str() {
                "display_name" => {
                    validate::name("display_name", &changed.display_name)?;
                    changes.display_name = Some(changed.display_name.trim().to_owned());
                }
                "rules" => changes.rules = Some(convert::parse_rules(changed.rules.clone())),
                _ => changes.max_size = Some(max_size(changed.max_size_bytes)?),
            }
        }
        let updated = self.store.update_mailbox(&mailbox.id, changes).await?;
        Ok(pb::Mailbox::from(updated))
    }

    async fn delete_mailbox(
        &self,
        context: &RequestContext,
        request: pb::DeleteMailboxRequest,
    ) -> Result<pb::Mailbox, DomainError> {
        let mailbox = self.managed_mailbox(context, &request.id).await?;
        Ok(pb::Mailbox::from(
            self.store.drop_mailbox(&mailbox.id).await?,
        ))
    }

    async fn rotate_mailbox(
        &self,
        context: &RequestContext,
        request: pb::RotateMailboxRequest,
    ) -> Result<pb::Mailbox, DomainError> {
        let new_address = mailbox_address(&request.new_address)?;
        allowed_domain(&new_address, &self.mail_domains)?;
        let mailbox = self.managed_mailbox(context, &request.id).await?;
        let rotated = self.store.rotate_mailbox(&mailbox.id, &new_address).await?;
        Ok(pb::Mailbox::from(rotated))
    }

    async fn link_projects(
        &self,
        context: &RequestContext,
        request: pb::LinkProjectsRequest,
    ) -> Result<pb::Mailbox, DomainError> {
        let added = project_ids(&request.project_ids)?;
        let mailbox = self.managed_mailbox(context, &request.mailbox_id).await?;
        for project_id in &added {
            require_project(&self.store, context, project_id).await?;
        }
        Ok(pb::Mailbox::from(
            self.store.link_projects(&mailbox.id, &added).await?,
        ))
    }

    async fn unlink_projects(
        &self,
        context: &RequestContext,
        request: pb::UnlinkProjectsRequest,
    ) -> Result<pb::Mailbox, DomainError> {
        let removed = project_ids(&request.project_ids)?;
        let mailbox = self.managed_mailbox(context, &request.mailbox_id).await?;
        Ok(pb::Mailbox::from(
            self.store.unlink_projects(&mailbox.id, &removed).await?,
        ))
    }

    async fn list_inbound_mail(
        &self,
        context: &RequestContext,
        request: pb::ListInboundMailRequest,
    ) -> Result<pb::ListInboundMailResponse, DomainError> {
        let mailbox_id = parse_id(&request.mailbox_id, "mailbox_id")?;
        let state = convert::parse_inbound_state(request.state)?;
        self.served_mailbox(context, &mailbox_id).await?;
        let page = PageRequest::parse(
            request.page_size,
            &request.page_token,
            &format!("inbound:{mailbox_id}:{}", request.state),
        )?;
        let filter = InboundFilter {
            mailbox_id: Some(mailbox_id),
            state,
        };
        let page = self.store.list_inbound(&filter, &page).await?;
        Ok(pb::ListInboundMailResponse {
            mails: page.items.into_iter().map(pb::InboundMail::from).collect(),
            next_page_token: page.next_page_token,
        })
    }

    async fn assign_inbound_mail(
        &self,
        context: &RequestContext,
        request: pb::AssignInboundMailRequest,
    ) -> Result<pb::InboundMail, DomainError> {
        let id = parse_id(&request.id, "id")?;
        let record = self.store.get_inbound(&id).await?;
        self.served_mailbox(context, &record.mailbox_id).await?;
        let target = match (request.work_item_id.as_str(), &record.work_item_id) {
            ("", Some(intended)) => intended.clone(),
            ("", None) => {
                return Err(DomainError::invalid_argument(
                    reason::FIELD_REQUIRED,
                    "this mail names no work item; give work_item_id",
                ));
            }
            (raw, _) => raw.to_owned(),
        };
        let item = authorized_work_item(&self.store, context, &target, "work_item_id").await?;
        let by = actor_of(context.caller.as_ref())?;
        let posted = self.store.post_inbound(&id, &item.id, &by).await?;
        Ok(pb::InboundMail::from(posted))
    }

    async fn dismiss_inbound_mail(
        &self,
        context: &RequestContext,
        request: pb::DismissInboundMailRequest,
    ) -> Result<pb::InboundMail, DomainError> {
        let id = parse_id(&request.id, "id")?;
        let record = self.store.get_inbound(&id).await?;
        self.served_mailbox(context, &record.mailbox_id).await?;
        let by = actor_of(context.caller.as_ref())?;
        Ok(pb::InboundMail::from(
            self.store.dismiss_inbound(&id, &by).await?,
        ))
    }
}

grpc_service!(MailboxApi: MailboxService {
    list_mailboxes(pb::ListMailboxesRequest) -> pb::ListMailboxesResponse;
    get_mailbox(pb::GetMailboxRequest) -> pb::Mailbox;
    create_mailbox(pb::CreateMailboxRequest) -> pb::Mailbox;
    update_mailbox(pb::UpdateMailboxRequest) -> pb::Mailbox;
    delete_mailbox(pb::DeleteMailboxRequest) -> pb::Mailbox;
    adopt_mailbox(pb::AdoptMailboxRequest) -> pb::Mailbox;
    rotate_mailbox(pb::RotateMailboxRequest) -> pb::Mailbox;
    link_projects(pb::LinkProjectsRequest) -> pb::Mailbox;
    unlink_projects(pb::UnlinkProjectsRequest) -> pb::Mailbox;
    list_inbound_mail(pb::ListInboundMailRequest) -> pb::ListInboundMailResponse;
    assign_inbound_mail(pb::AssignInboundMailRequest) -> pb::InboundMail;
    dismiss_inbound_mail(pb::DismissInboundMailRequest) -> pb::InboundMail;
});

/// Project ids from the wire, parsed, without repeats.
fn project_ids(raw: &[String]) -> Result<Vec<String>, DomainError> {
    let mut ids = Vec::with_capacity(raw.len());
    for id in raw {
        let id = parse_id(id, "project_ids")?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// A size limit from the wire: 0 is the default.
fn max_size(raw: i64) -> Result<i64, DomainError> {
    match raw {
        0 => Ok(DEFAULT_MAX_SIZE),
        1..=MAX_SIZE_LIMIT => Ok(raw),
        _ => Err(DomainError::invalid_argument(
            reason::INVALID_FIELD,
            format!("max_size_bytes must be between 1 and {MAX_SIZE_LIMIT}"),
        )),
    }
}

/// The MailWorkerService implementation.
#[derive(Clone)]
pub struct MailWorkerApi {
    store: Arc<dyn Store>,
    ai: Ai,
}

impl MailWorkerApi {
    /// Builds the service.
    pub fn new(store: Arc<dyn Store>, ai: Ai) -> Self {
        Self { store, ai }
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
        let files = request
            .files
            .into_iter()
            .map(mail_file)
            .collect::<Result<Vec<_>, _>>()?;
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
        Ok(pb::ReceiveMailResponse {
            mail: Some(pb::InboundMail::from(record)),
            new,
        })
    }
}

/// An attachment as the worker sends it; a missing name or type gets a
/// neutral one rather than refusing the mail.
fn mail_file(file: pb::MailFile) -> Result<MailFile, DomainError> {
    let file_name = match file.file_name.trim() {
        "" => "attachment".to_owned(),
        name => name.chars().take(255).collect(),
    };
    let media_type = match file.media_type.trim() {
        "" => "application/octet-stream".to_owned(),
        media_type => media_type.to_owned(),
    };
    validate::max_chars("files.media_type", &media_type, 255)?;
    Ok(MailFile {
        file_name,
        media_type,
        content: file.content,
    })
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
