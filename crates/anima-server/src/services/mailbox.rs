//! MailboxService: people's side of mail (mailboxes, their projects, the
//! triage and held lists). The mail worker's side is in `mail_worker`.

use std::sync::Arc;

use anima_core::{
    DomainError,
    document::MAX_DOCUMENT_SIZE,
    error::reason,
    id::parse_id,
    mail::{
        DEFAULT_MAX_SIZE, Mailbox, MailboxChanges, NewMailbox, allowed_domain, mailbox_address,
    },
    paging::PageRequest,
    validate,
};
use anima_db::{InboundFilter, MailboxFilter, Store};
use anima_proto::convert;
use anima_proto::v1::{self as pb, mailbox_service_server::MailboxService};

use super::{actor_of, grpc_service, mask_paths};
use crate::{
    auth::Caller,
    authz::{RequestContext, authorized_work_item, require_project},
    library::{Library, index_attachments},
};

const MAILBOX_PATHS: &[&str] = &["display_name", "rules", "max_size_bytes"];

/// Largest size limit a mailbox may set: what the library takes, so that
/// every attachment of mail the mailbox accepts can be kept.
const MAX_SIZE_LIMIT: i64 = MAX_DOCUMENT_SIZE as i64;

/// The MailboxService implementation.
#[derive(Clone)]
pub struct MailboxApi {
    store: Arc<dyn Store>,
    /// Whose index follows attachments that triage moves or dismisses.
    library: Arc<dyn Library>,
    /// The domains Anima may make addresses in (server configuration).
    mail_domains: Arc<[String]>,
}

impl MailboxApi {
    /// Builds the service; addresses may be made in `mail_domains` only.
    pub fn new(store: Arc<dyn Store>, library: Arc<dyn Library>, mail_domains: &[String]) -> Self {
        Self {
            store,
            library,
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
        index_attachments(&*self.store, &*self.library, &posted).await;
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
        let dismissed = self.store.dismiss_inbound(&id, &by).await?;
        index_attachments(&*self.store, &*self.library, &dismissed).await;
        Ok(pb::InboundMail::from(dismissed))
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
pub(super) fn project_ids(raw: &[String]) -> Result<Vec<String>, DomainError> {
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
