//! anima-mail's side of anima-server: the MailWorkerService client, with
//! the service token, behind the traits routing and synchronisation use
//! ([`RoutingContext`], [`Sink`], [`StateStore`]).

use std::sync::Mutex;

use anima_core::{document::MAX_DOCUMENT_SIZE, planning::WorkItemKey, thread::MAX_BODY_BYTES};
use anima_proto::v1::{self as pb, mail_worker_service_client::MailWorkerServiceClient};
use tonic::{
    Request,
    metadata::MetadataValue,
    transport::{Channel, Endpoint},
};

use crate::{
    parse::{Attachment, InboundMail},
    route::{Classified, HoldReason, ItemInfo, Referenced, Route, RoutingContext, TriageReason},
    sync::{Sink, StateStore},
};

/// A connection to anima-server's MailWorkerService. Cheap to clone.
#[derive(Clone)]
pub struct ServerLink {
    client: MailWorkerServiceClient<Channel>,
    token: MetadataValue<tonic::metadata::Ascii>,
}

impl ServerLink {
    /// Connects lazily to `url` (`http://host:port`), presenting `token`.
    pub fn new(url: &str, token: &str) -> anyhow::Result<Self> {
        let channel = Endpoint::from_shared(url.to_owned())?
            .timeout(std::time::Duration::from_secs(120))
            .connect_lazy();
        Ok(Self {
            client: MailWorkerServiceClient::new(channel),
            token: format!("Bearer {token}").parse()?,
        })
    }

    fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request
            .metadata_mut()
            .insert("authorization", self.token.clone());
        request
    }

    /// Every mailbox the server has, active and dropping.
    pub async fn mailboxes(&self) -> anyhow::Result<Vec<pb::FollowedMailbox>> {
        let mut all = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = self
                .client
                .clone()
                .list_followed_mailboxes(self.request(pb::ListFollowedMailboxesRequest {
                    page_size: 500,
                    page_token,
                }))
                .await?
                .into_inner();
            all.extend(page.mailboxes);
            if page.next_page_token.is_empty() {
                return Ok(all);
            }
            page_token = page.next_page_token;
        }
    }

    /// Deletes a dropping mailbox whose account is gone.
    pub async fn remove_mailbox(&self, id: &str) -> anyhow::Result<()> {
        self.client
            .clone()
            .remove_mailbox(self.request(pb::RemoveMailboxRequest {
                mailbox_id: id.to_owned(),
            }))
            .await?;
        Ok(())
    }

    /// Leases up to `limit` due outbound mails for `lease_seconds`.
    pub async fn claim_outbound(
        &self,
        limit: i32,
        lease_seconds: i32,
    ) -> anyhow::Result<Vec<pb::OutboundMail>> {
        Ok(self
            .client
            .clone()
            .claim_outbound_mail(self.request(pb::ClaimOutboundMailRequest {
                limit,
                lease_seconds,
            }))
            .await?
            .into_inner()
            .mails)
    }

    /// Reports how a leased send ended.
    pub async fn report_delivery(&self, report: pb::ReportDeliveryRequest) -> anyhow::Result<()> {
        self.client
            .clone()
            .report_delivery(self.request(report))
            .await?;
        Ok(())
    }

    /// Marks a mailbox refused, with the problem its owner is shown.
    pub async fn refuse_mailbox(&self, id: &str, problem: &str) -> anyhow::Result<()> {
        self.client
            .clone()
            .refuse_mailbox(self.request(pb::RefuseMailboxRequest {
                mailbox_id: id.to_owned(),
                problem: problem.to_owned(),
            }))
            .await?;
        Ok(())
    }

    /// Records that the worker made the mailbox's account itself.
    pub async fn confirm_mailbox_account(&self, id: &str) -> anyhow::Result<()> {
        self.client
            .clone()
            .confirm_mailbox_account(self.request(pb::ConfirmMailboxAccountRequest {
                mailbox_id: id.to_owned(),
            }))
            .await?;
        Ok(())
    }

    /// Saves where a mailbox's synchronisation stands.
    pub async fn save_state(&self, id: &str, state: &str) -> anyhow::Result<()> {
        self.client
            .clone()
            .save_sync_state(self.request(pb::SaveSyncStateRequest {
                mailbox_id: id.to_owned(),
                jmap_state: state.to_owned(),
            }))
            .await?;
        Ok(())
    }
}

fn item_info(item: Option<pb::RoutedWorkItem>) -> Option<ItemInfo> {
    item.map(|item| ItemInfo {
        id: item.id,
        project_id: item.project_id,
        writable: item.writable,
    })
}

#[async_trait::async_trait]
impl RoutingContext for ServerLink {
    async fn work_item(
        &self,
        projects: &[String],
        key: WorkItemKey,
    ) -> anyhow::Result<Option<ItemInfo>> {
        let found = self
            .client
            .clone()
            .resolve_work_item(self.request(pb::ResolveWorkItemRequest {
                project_ids: projects.to_vec(),
                key: key.0,
            }))
            .await?
            .into_inner();
        Ok(item_info(found.item))
    }

    async fn referenced(
        &self,
        mailbox_id: &str,
        message_ids: &[&str],
    ) -> anyhow::Result<Referenced> {
        // References can be long; the newest hundred are the ones that matter.
        let start = message_ids.len().saturating_sub(100);
        let found = self
            .client
            .clone()
            .find_thread_of_mail(
                self.request(pb::FindThreadOfMailRequest {
                    message_ids: message_ids[start..]
                        .iter()
                        .map(|id| (*id).to_owned())
                        .collect(),
                    mailbox_id: mailbox_id.to_owned(),
                }),
            )
            .await?
            .into_inner();
        let waiting = found.waiting();
        Ok(match (item_info(found.item), waiting) {
            (Some(item), _) => Referenced::Thread(item),
            (None, pb::InboundMailState::Held) => Referenced::Held,
            (None, pb::InboundMailState::Triage) => Referenced::Triage,
            (None, _) => Referenced::Nothing,
        })
    }

    async fn knows_sender(&self, item: &ItemInfo, sender: &str) -> anyhow::Result<bool> {
        let answer = self
            .client
            .clone()
            .knows_sender(self.request(pb::KnowsSenderRequest {
                work_item_id: item.id.clone(),
                sender: sender.to_owned(),
            }))
            .await?
            .into_inner();
        Ok(answer.known)
    }

    async fn classify(&self, project_id: &str, mail: &InboundMail) -> anyhow::Result<Classified> {
        let answer = self
            .client
            .clone()
            .classify_inbound(self.request(pb::ClassifyInboundRequest {
                project_id: project_id.to_owned(),
                from: mail.from.clone(),
                subject: mail.subject.clone(),
                body: truncate(&mail.body, 64 * 1024).to_owned(),
            }))
            .await;
        // Without a classifier the mail waits for a human; holding up the
        // whole mailbox until anima-ai is back would delay every mail.
        let answer = match answer {
            Ok(answer) => answer.into_inner(),
            Err(status) => {
                tracing::warn!(%status, "classification failed; the mail goes to triage");
                return Ok(Classified::Unsure(None));
            }
        };
        Ok(match item_info(answer.item) {
            Some(item) => Classified::Item(item),
            None => Classified::Unsure(
                (!answer.best_work_item_id.is_empty())
                    .then_some((answer.best_work_item_id, answer.confidence)),
            ),
        })
    }
}

#[async_trait::async_trait]
impl Sink for ServerLink {
    async fn deliver(
        &self,
        mailbox_id: &str,
        mail: &InboundMail,
        route: &Route,
    ) -> anyhow::Result<bool> {
        let (state, item, suggestion) = match route {
            Route::Post(item) => (pb::InboundMailState::Posted, Some(item), None),
            Route::Held { item, .. } => (pb::InboundMailState::Held, item.as_ref(), None),
            Route::Triage(TriageReason::Unsure { suggestion }) => {
                (pb::InboundMailState::Triage, None, suggestion.clone())
            }
            Route::Triage(_) => (pb::InboundMailState::Triage, None, None),
        };
        let (suggested_work_item_id, confidence) = suggestion.unwrap_or_default();
        // Mail over the mailbox's limit stays on the mail server whole, and
        // so does a file the library would not take.
        let too_large = matches!(
            route,
            Route::Held {
                reason: HoldReason::TooLarge { .. },
                ..
            }
        );
        let (kept, left): (Vec<&Attachment>, Vec<&Attachment>) = mail
            .attachments
            .iter()
            .partition(|attachment| !too_large && attachment.bytes.len() <= MAX_DOCUMENT_SIZE);
        let received = self
            .client
            .clone()
            .receive_mail(
                self.request(pb::ReceiveMailRequest {
                    mailbox_id: mailbox_id.to_owned(),
                    state: state as i32,
                    reason: route.reason(),
                    work_item_id: item.map(|item| item.id.clone()).unwrap_or_default(),
                    email: Some(pb::EmailHeaders {
                        from: mail.from.clone(),
                        to: mail.to.clone(),
                        cc: mail.cc.clone(),
                        subject: mail.subject.clone(),
                        message_id: mail.message_id.clone(),
                        in_reply_to: mail.in_reply_to.first().cloned().unwrap_or_default(),
                        references: mail.references.clone(),
                    }),
                    body: message_body(mail, &left),
                    files: kept
                        .into_iter()
                        .map(|attachment| pb::MailFile {
                            file_name: attachment.name.clone(),
                            media_type: attachment.content_type.clone(),
                            content: attachment.bytes.clone(),
                        })
                        .collect(),
                    suggested_work_item_id,
                    confidence,
                }),
            )
            .await?
            .into_inner();
        Ok(received.new)
    }
}

/// The thread message text of a mail: its text, cut to what a message
/// holds. Attachments travel as library documents; those `left` on the
/// mail server are named in the text.
fn message_body(mail: &InboundMail, left: &[&Attachment]) -> String {
    let mut notes = String::new();
    for attachment in left {
        notes.push_str(&format!(
            "\n[attachment left on the mail server: {} ({}, {} bytes)]",
            attachment.name,
            attachment.content_type,
            attachment.bytes.len()
        ));
    }
    let text = match mail.body.trim() {
        "" => "(no text)",
        text => text,
    };
    let room = MAX_BODY_BYTES.saturating_sub(notes.len() + 64);
    let mut body = truncate(text, room).to_owned();
    if body.len() < text.len() {
        body.push_str("\n[… cut: the mail's text is longer than a message holds]");
    }
    body.push_str(&notes);
    truncate(&body, MAX_BODY_BYTES).to_owned()
}

/// At most `limit` bytes of `text`, cut at a character boundary.
fn truncate(text: &str, limit: usize) -> &str {
    if text.len() <= limit {
        return text;
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// One mailbox's saved JMAP state: read from the server when following
/// starts, then kept here and written through.
pub struct SavedState {
    link: ServerLink,
    state: Mutex<Option<String>>,
}

impl SavedState {
    /// Starts from the state the server had.
    pub fn new(link: ServerLink, state: Option<String>) -> Self {
        Self {
            link,
            state: Mutex::new(state),
        }
    }
}

#[async_trait::async_trait]
impl StateStore for SavedState {
    async fn load(&self, _mailbox_id: &str) -> anyhow::Result<Option<String>> {
        Ok(self
            .state
            .lock()
            .map_err(|_| anyhow::anyhow!("state lock poisoned"))?
            .clone())
    }

    async fn save(&self, mailbox_id: &str, state: &str) -> anyhow::Result<()> {
        self.link.save_state(mailbox_id, state).await?;
        *self
            .state
            .lock()
            .map_err(|_| anyhow::anyhow!("state lock poisoned"))? = Some(state.to_owned());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_fit_a_message_and_name_what_was_left_out() {
        let mut mail = crate::parse::parse(b"From: a@b.example\r\nSubject: s\r\n\r\n");
        assert_eq!(message_body(&mail, &[]), "(no text)");
        mail.body = "é".repeat(MAX_BODY_BYTES);
        let body = message_body(&mail, &[]);
        assert!(body.len() <= MAX_BODY_BYTES);
        assert!(body.contains("cut"));
        mail.body = "hello".into();
        mail.attachments.push(crate::parse::Attachment {
            name: "log.txt".into(),
            content_type: "text/plain".into(),
            bytes: vec![0; 10],
        });
        assert_eq!(
            message_body(&mail, &[]),
            "hello",
            "kept files travel as documents"
        );
        assert_eq!(
            message_body(&mail, &[&mail.attachments[0]]),
            "hello\n[attachment left on the mail server: log.txt (text/plain, 10 bytes)]"
        );
    }
}
