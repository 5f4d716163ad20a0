//! Mailboxes, their projects and JMAP states; the inbound mail record that
//! makes routing exactly-once (one row per mailbox and Message-ID, written
//! in the same transaction as the thread message it becomes); the thread
//! lookups routing asks for; the outbound mail queue its sender leases from.

use anima_core::{
    DomainError,
    document::{DocumentType, NewDocument},
    error::reason,
    event::EventKind,
    id::new_id,
    mail::{
        InboundRecord, InboundState, MailContent, Mailbox, MailboxChanges, MailboxState,
        NewInbound, NewMailbox, OutboundClaim, OutboundOutcome,
    },
    model::now_micros,
    paging::PageRequest,
    planning::{Actor, ProjectStatus},
    thread::{AttachmentRef, DeliveryState, Message, MessageKind, NewMessage},
};
use async_trait::async_trait;
use serde_json::json;
use sqlx::Row;

use super::{
    Ordered, PostgresStore, SqliteStore, page_of,
    planning::{stored, stored_json, to_json},
};
use crate::{InboundFilter, MailStore, MailboxFilter, Page, StoreError, StoreResult};

fn mailbox_not_found(id: &str) -> DomainError {
    DomainError::not_found(
        reason::MAILBOX_NOT_FOUND,
        format!("no mailbox with id {id}"),
    )
}

fn inbound_not_found(id: &str) -> DomainError {
    DomainError::not_found(
        reason::INBOUND_MAIL_NOT_FOUND,
        format!("no fetched mail with id {id}"),
    )
}

fn require_active(mailbox: &Mailbox) -> StoreResult<()> {
    match mailbox.state {
        MailboxState::Active => Ok(()),
        MailboxState::Dropping => Err(DomainError::failed_precondition(
            reason::MAILBOX_DROPPING,
            format!("mailbox {} is being dropped", mailbox.address),
        )
        .into()),
        MailboxState::Refused => Err(DomainError::failed_precondition(
            reason::MAILBOX_REFUSED,
            format!(
                "mailbox {} is refused: {}",
                mailbox.address, mailbox.problem
            ),
        )
        .into()),
    }
}

/// The idempotency key of the thread message a fetched mail becomes.
fn posting_key(mailbox_id: &str, message_id: &str) -> String {
    format!("mail:{mailbox_id}:{message_id}")
}

/// The inbound-email message a fetched mail becomes.
fn inbound_message(
    work_item_id: &str,
    mailbox_id: &str,
    message_id: &str,
    content: MailContent,
) -> NewMessage {
    NewMessage {
        work_item_id: work_item_id.to_owned(),
        kind: MessageKind::InboundEmail,
        author: Actor::Email {
            address: content.email.from.clone(),
        },
        body: content.body,
        email: Some(content.email),
        attachments: content.attachments,
        idempotency_key: Some(posting_key(mailbox_id, message_id)),
    }
}

macro_rules! inbound_select {
    () => {
        "SELECT id, mailbox_id, message_id, state, reason, work_item_id, sender, subject, content, \
         suggestion, posted_message_id, settled_by, created_at FROM inbound_mail"
    };
}

macro_rules! mail_sql {
    ($store:ident, $db:ty) => {
        #[async_trait]
        impl MailStore for $store {
            async fn create_mailbox(&self, mailbox: NewMailbox) -> StoreResult<Mailbox> {
                if mailbox.project_ids.is_empty() {
                    return Err(DomainError::invalid_argument(
                        reason::FIELD_REQUIRED,
                        "a mailbox serves at least one project",
                    ).into());
                }
                let (mut tx, ordered) = self.begin_ordered(&mailbox.address).await?;
                let created = Self::insert_mailbox(&mut tx, ordered, &mailbox).await?;
                self.commit(tx).await?;
                Ok(created)
            }

            async fn get_mailbox(&self, id: &str) -> StoreResult<Mailbox> {
                let mut conn = self.pool.acquire().await?;
                Self::mailbox_in(&mut conn, id).await
            }

            async fn list_mailboxes(
                &self,
                filter: &MailboxFilter,
                page: &PageRequest,
            ) -> StoreResult<Page<Mailbox>> {
                let mut conn = self.pool.acquire().await?;
                let rows = sqlx::query(
                    "SELECT id FROM mailboxes m WHERE id > $1 AND ($2 IS NULL OR state = $2) \
                     AND ($3 IS NULL OR EXISTS (SELECT 1 FROM mailbox_projects p \
                       WHERE p.mailbox_id = m.id AND p.project_id = $3)) \
                     ORDER BY id LIMIT $4",
                )
                .bind(page.after.as_deref().unwrap_or(""))
                .bind(filter.state.map(|state| state.as_str()))
                .bind(filter.project_id.as_deref())
                .bind(page.fetch_limit())
                .fetch_all(&mut *conn)
                .await?;
                crate::backend::page_by_ids(
                    &mut *conn,
                    rows,
                    page,
                    async |conn, id| Self::mailbox_in(conn, id).await,
                    |mailbox| mailbox.id.clone(),
                )
                .await
            }

            async fn update_mailbox(&self, id: &str, changes: MailboxChanges) -> StoreResult<Mailbox> {
                let (mut tx, ordered) = self.begin_ordered(id).await?;
                let current = Self::mailbox_in(&mut tx, id).await?;
                require_active(&current)?;
                sqlx::query("UPDATE mailboxes SET display_name = $2, rules = $3, max_size = $4 WHERE id = $1")
                    .bind(id)
                    .bind(changes.display_name.as_ref().unwrap_or(&current.display_name))
                    .bind(to_json(changes.rules.as_ref().unwrap_or(&current.rules)))
                    .bind(changes.max_size.unwrap_or(current.max_size))
                    .execute(&mut *tx)
                    .await?;
                let updated = Self::mailbox_in(&mut tx, id).await?;
                Self::record_mailbox(&mut tx, ordered, EventKind::MailboxUpdated, &updated).await?;
                self.commit(tx).await?;
                Ok(updated)
            }

            async fn link_projects(&self, id: &str, project_ids: &[String]) -> StoreResult<Mailbox> {
                let (mut tx, ordered) = self.begin_ordered(id).await?;
                require_active(&Self::mailbox_in(&mut tx, id).await?)?;
                Self::add_projects(&mut tx, id, project_ids).await?;
                let linked = Self::mailbox_in(&mut tx, id).await?;
                Self::record_mailbox(&mut tx, ordered, EventKind::MailboxUpdated, &linked).await?;
                self.commit(tx).await?;
                Ok(linked)
            }

            async fn unlink_projects(&self, id: &str, project_ids: &[String]) -> StoreResult<Mailbox> {
                let (mut tx, ordered) = self.begin_ordered(id).await?;
                let current = Self::mailbox_in(&mut tx, id).await?;
                require_active(&current)?;
                if current.project_ids.iter().all(|project| project_ids.contains(project)) {
                    return Err(DomainError::failed_precondition(
                        reason::MAILBOX_NEEDS_PROJECT,
                        "a mailbox must keep serving at least one project; delete it instead",
                    ).into());
                }
                for project_id in project_ids {
                    sqlx::query("DELETE FROM mailbox_projects WHERE mailbox_id = $1 AND project_id = $2")
                        .bind(id)
                        .bind(project_id)
                        .execute(&mut *tx)
                        .await?;
                }
                let unlinked = Self::mailbox_in(&mut tx, id).await?;
                Self::record_mailbox(&mut tx, ordered, EventKind::MailboxUpdated, &unlinked).await?;
                self.commit(tx).await?;
                Ok(unlinked)
            }

            async fn drop_mailbox(&self, id: &str) -> StoreResult<Mailbox> {
                let (mut tx, ordered) = self.begin_ordered(id).await?;
                let mailbox = Self::mailbox_in(&mut tx, id).await?;
                // A refused mailbox can still be deleted.
                if mailbox.state != MailboxState::Refused {
                    require_active(&mailbox)?;
                }
                Self::set_dropping(&mut tx, id).await?;
                let dropping = Self::mailbox_in(&mut tx, id).await?;
                Self::record_mailbox(&mut tx, ordered, EventKind::MailboxDropping, &dropping).await?;
                self.commit(tx).await?;
                Ok(dropping)
            }

            async fn rotate_mailbox(&self, id: &str, new_address: &str) -> StoreResult<Mailbox> {
                let (mut tx, ordered) = self.begin_ordered(id).await?;
                let old = Self::mailbox_in(&mut tx, id).await?;
                require_active(&old)?;
                let new = Self::insert_mailbox(
                    &mut tx,
                    ordered,
                    &NewMailbox {
                        address: new_address.to_owned(),
                        display_name: old.display_name.clone(),
                        project_ids: old.project_ids.clone(),
                        rules: old.rules.clone(),
                        max_size: old.max_size,
                        adopted: false,
                        import_history: false,
                    },
                )
                .await?;
                Self::set_dropping(&mut tx, id).await?;
                // Mail waiting for a human stays reachable through the new
                // mailbox; posted records go with the old account.
                sqlx::query(
                    "UPDATE inbound_mail SET mailbox_id = $2 WHERE mailbox_id = $1 AND state IN ('held', 'triage')",
                )
                .bind(id)
                .bind(&new.id)
                .execute(&mut *tx)
                .await?;
                let dropping = Self::mailbox_in(&mut tx, id).await?;
                Self::record_mailbox(&mut tx, ordered, EventKind::MailboxDropping, &dropping).await?;
                self.commit(tx).await?;
                Ok(new)
            }

            async fn refuse_mailbox(&self, id: &str, problem: &str) -> StoreResult<Mailbox> {
                let (mut tx, ordered) = self.begin_ordered(id).await?;
                let mailbox = Self::mailbox_in(&mut tx, id).await?;
                if mailbox.state == MailboxState::Refused {
                    return Ok(mailbox);
                }
                require_active(&mailbox)?;
                if mailbox.adopted {
                    return Err(DomainError::failed_precondition(
                        reason::MAILBOX_EXISTS,
                        format!("mailbox {} was adopted; its account is Anima's to use", mailbox.address),
                    ).into());
                }
                sqlx::query("UPDATE mailboxes SET state = 'refused', problem = $2 WHERE id = $1")
                    .bind(id)
                    .bind(problem)
                    .execute(&mut *tx)
                    .await?;
                let refused = Self::mailbox_in(&mut tx, id).await?;
                Self::record_mailbox(&mut tx, ordered, EventKind::MailboxRefused, &refused).await?;
                self.commit(tx).await?;
                Ok(refused)
            }

            async fn confirm_mailbox_account(&self, id: &str) -> StoreResult<Mailbox> {
                let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                let mailbox = Self::mailbox_in(&mut tx, id).await?;
                require_active(&mailbox)?;
                sqlx::query("UPDATE mailboxes SET provisioned = $2 WHERE id = $1")
                    .bind(id)
                    .bind(true)
                    .execute(&mut *tx)
                    .await?;
                let confirmed = Self::mailbox_in(&mut tx, id).await?;
                self.commit(tx).await?;
                Ok(confirmed)
            }

            async fn adopt_mailbox(&self, id: &str) -> StoreResult<Mailbox> {
                let (mut tx, ordered) = self.begin_ordered(id).await?;
                let mailbox = Self::mailbox_in(&mut tx, id).await?;
                if mailbox.state == MailboxState::Dropping {
                    return Err(DomainError::failed_precondition(
                        reason::MAILBOX_DROPPING,
                        format!("mailbox {} is being dropped", mailbox.address),
                    ).into());
                }
                // The admin takes the account over from now on: its history
                // was never the owner's choice to import.
                sqlx::query(
                    "UPDATE mailboxes SET state = 'active', adopted = $2, import_history = FALSE, problem = '' \
                     WHERE id = $1",
                )
                    .bind(id)
                    .bind(true)
                    .execute(&mut *tx)
                    .await?;
                let adopted = Self::mailbox_in(&mut tx, id).await?;
                Self::record_mailbox(&mut tx, ordered, EventKind::MailboxAdopted, &adopted).await?;
                self.commit(tx).await?;
                Ok(adopted)
            }

            async fn remove_mailbox(&self, id: &str) -> StoreResult<()> {
                let (mut tx, ordered) = self.begin_ordered(id).await?;
                let mailbox = Self::mailbox_in(&mut tx, id).await?;
                if mailbox.state != MailboxState::Dropping {
                    return Err(DomainError::failed_precondition(
                        reason::MAILBOX_NOT_DROPPING,
                        format!("mailbox {} is active; delete it first", mailbox.address),
                    ).into());
                }
                sqlx::query("DELETE FROM mailboxes WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                Self::record_mailbox(&mut tx, ordered, EventKind::MailboxRemoved, &mailbox).await?;
                self.commit(tx).await
            }

            async fn save_jmap_state(&self, mailbox_id: &str, state: &str) -> StoreResult<()> {
                let updated = sqlx::query("UPDATE mailboxes SET jmap_state = $2 WHERE id = $1")
                    .bind(mailbox_id)
                    .bind(state)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                if updated == 0 {
                    return Err(mailbox_not_found(mailbox_id).into());
                }
                Ok(())
            }

            async fn receive_mail(&self, mail: NewInbound) -> StoreResult<(InboundRecord, bool)> {
                let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                let mailbox = Self::mailbox_in(&mut tx, &mail.mailbox_id).await?;
                let (mut state, mut why) = (mail.state, mail.reason.clone());
                let mut project_id = None;
                // Mail for a work item is ordered with its project's writes;
                // mail waiting for a human, with its mailbox's.
                let ordered = if let Some(work_item_id) = &mail.work_item_id {
                    let project = Self::work_item_project(&mut tx, work_item_id).await?;
                    let (ordered, status) = Self::lock_project(&mut tx, &project).await?;
                    if state == InboundState::Posted && status == ProjectStatus::Archived {
                        // Archived between routing and now: a human decides.
                        state = InboundState::Triage;
                        why = "its work item's project is archived".into();
                    }
                    project_id = Some(project);
                    ordered
                } else if state == InboundState::Posted {
                    return Err(DomainError::invalid_argument(
                        reason::FIELD_REQUIRED,
                        "posted mail needs its work item",
                    ).into());
                } else {
                    Self::order_writes(&mut tx, &mail.mailbox_id).await?
                };
                let id = new_id();
                let inserted = sqlx::query(
                    "INSERT INTO inbound_mail (id, mailbox_id, message_id, state, reason, work_item_id, \
                     sender, subject, content, suggestion, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                     ON CONFLICT (mailbox_id, message_id) DO NOTHING RETURNING id",
                )
                .bind(&id)
                .bind(&mail.mailbox_id)
                .bind(&mail.message_id)
                .bind(state.as_str())
                .bind(&why)
                .bind(mail.work_item_id.as_deref())
                .bind(&mail.content.email.from)
                .bind(&mail.content.email.subject)
                .bind(to_json(&mail.content))
                .bind(mail.suggestion.as_ref().map(to_json))
                .bind(now_micros())
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
                if !inserted {
                    let first = Self::inbound_by_key(&mut tx, &mail.mailbox_id, &mail.message_id).await?;
                    return Ok((first, false));
                }
                let mut mail = mail;
                if !mail.files.is_empty() {
                    // Kept for review too, but on the work item only once posted.
                    let library = project_id
                        .clone()
                        .or_else(|| mailbox.project_ids.first().cloned())
                        .ok_or_else(|| DomainError::internal("a mailbox without projects"))?;
                    let on_item = (state == InboundState::Posted).then(|| mail.work_item_id.clone()).flatten();
                    for file in std::mem::take(&mut mail.files) {
                        let document = Self::insert_document(&mut tx, ordered, NewDocument {
                            project_id: library.clone(),
                            work_item_id: on_item.clone(),
                            title: file.file_name.clone(),
                            doc_type: DocumentType::Attachment,
                            media_type: file.media_type.clone(),
                            blob: file.blob,
                            text: file.text,
                            author: Actor::Email { address: mail.content.email.from.clone() },
                        }, state != InboundState::Posted)
                        .await?;
                        mail.content.attachments.push(AttachmentRef {
                            document_id: document.id,
                            file_name: file.file_name,
                            media_type: file.media_type,
                            size_bytes: document.size_bytes,
                        });
                    }
                    sqlx::query("UPDATE inbound_mail SET content = $2 WHERE id = $1")
                        .bind(&id)
                        .bind(to_json(&mail.content))
                        .execute(&mut *tx)
                        .await?;
                }
                match (state, &mail.work_item_id, &project_id) {
                    (InboundState::Posted, Some(work_item_id), Some(project_id)) => {
                        let message = inbound_message(work_item_id, &mail.mailbox_id, &mail.message_id, mail.content);
                        let posted = Self::insert_message(&mut tx, ordered, project_id, message).await?;
                        sqlx::query("UPDATE inbound_mail SET posted_message_id = $2 WHERE id = $1")
                            .bind(&id)
                            .bind(&posted.id)
                            .execute(&mut *tx)
                            .await?;
                    }
                    _ => {
                        let project = project_id.as_deref().or(mailbox.project_ids.first().map(String::as_str));
                        Self::record_for(
                            &mut tx,
                            ordered,
                            EventKind::MailReceived,
                            project,
                            mail.work_item_id.as_deref(),
                            &id,
                            json!({"mailbox_id": mail.mailbox_id, "state": state.as_str(), "reason": why}),
                        )
                        .await?;
                    }
                }
                let record = Self::inbound_in(&mut tx, &id).await?;
                self.commit(tx).await?;
                Ok((record, true))
            }

            async fn post_inbound(
                &self,
                id: &str,
                work_item_id: &str,
                by: &Actor,
            ) -> StoreResult<InboundRecord> {
                let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                let project_id = Self::work_item_project(&mut tx, work_item_id).await?;
                let ordered = Self::writable_project(&mut tx, &project_id).await?;
                let record = Self::settle(&mut tx, id, InboundState::Posted, Some(work_item_id), by).await?;
                let mailbox = Self::mailbox_in(&mut tx, &record.mailbox_id).await?;
                if !mailbox.project_ids.contains(&project_id) {
                    return Err(DomainError::failed_precondition(
                        reason::WORK_ITEM_NOT_IN_MAILBOX,
                        format!("the work item is not in a project that {} serves", mailbox.address),
                    ).into());
                }
                for attachment in &record.content.attachments {
                    sqlx::query(
                        "UPDATE documents SET work_item_id = $2, project_id = $3, awaits_review = FALSE \
                         WHERE id = $1",
                    )
                        .bind(&attachment.document_id)
                        .bind(work_item_id)
                        .bind(&project_id)
                        .execute(&mut *tx)
                        .await?;
                }
                let message = inbound_message(work_item_id, &record.mailbox_id, &record.message_id, record.content);
                let posted = Self::insert_message(&mut tx, ordered, &project_id, message).await?;
                sqlx::query("UPDATE inbound_mail SET posted_message_id = $2 WHERE id = $1")
                    .bind(id)
                    .bind(&posted.id)
                    .execute(&mut *tx)
                    .await?;
                let settled = Self::inbound_in(&mut tx, id).await?;
                self.commit(tx).await?;
                Ok(settled)
            }

            async fn dismiss_inbound(&self, id: &str, by: &Actor) -> StoreResult<InboundRecord> {
                let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                let mailbox_id = Self::inbound_in(&mut tx, id).await?.mailbox_id;
                let ordered = Self::order_writes(&mut tx, &mailbox_id).await?;
                let record = Self::settle(&mut tx, id, InboundState::Dismissed, None, by).await?;
                let mailbox = Self::mailbox_in(&mut tx, &record.mailbox_id).await?;
                // What a dismissed mail brought leaves the library with it.
                for attachment in &record.content.attachments {
                    match Self::document_in(&mut tx, &attachment.document_id).await {
                        Ok(document) => Self::remove_document(&mut tx, ordered, &document, by).await?,
                        Err(err) if err.reason == reason::DOCUMENT_NOT_FOUND => {}
                        Err(err) => return Err(err.into()),
                    }
                }
                Self::record_for(
                    &mut tx,
                    ordered,
                    EventKind::MailDismissed,
                    mailbox.project_ids.first().map(String::as_str),
                    record.work_item_id.as_deref(),
                    id,
                    json!({"mailbox_id": record.mailbox_id, "by": by.to_json()}),
                )
                .await?;
                let settled = Self::inbound_in(&mut tx, id).await?;
                self.commit(tx).await?;
                Ok(settled)
            }

            async fn get_inbound(&self, id: &str) -> StoreResult<InboundRecord> {
                let mut conn = self.pool.acquire().await?;
                Self::inbound_in(&mut conn, id).await
            }

            async fn list_inbound(
                &self,
                filter: &InboundFilter,
                page: &PageRequest,
            ) -> StoreResult<Page<InboundRecord>> {
                let rows = sqlx::query(concat!(
                    inbound_select!(),
                    " WHERE ($1 IS NULL OR mailbox_id = $1) AND ($2 IS NULL OR state = $2) AND id > $3 \
                     ORDER BY id LIMIT $4"
                ))
                .bind(filter.mailbox_id.as_deref())
                .bind(filter.state.map(|state| state.as_str()))
                .bind(page.after.as_deref().unwrap_or(""))
                .bind(page.fetch_limit())
                .fetch_all(&self.pool)
                .await?;
                page_of(&rows, crate::backend::rows::inbound, page, |record| record.id.clone())
            }

            async fn thread_of_mail(&self, mailbox_id: &str, message_ids: &[String]) -> StoreResult<Option<String>> {
                let mut conn = self.pool.acquire().await?;
                // Newest reference first: References lists oldest first, and
                // the latest message is the most specific thread.
                for message_id in message_ids.iter().rev() {
                    let found = sqlx::query(
                        "SELECT t.work_item_id FROM thread_mail_ids t \
                         JOIN work_items w ON w.id = t.work_item_id \
                         JOIN mailbox_projects mp ON mp.project_id = w.project_id AND mp.mailbox_id = $2 \
                         WHERE t.message_id = $1 ORDER BY t.work_item_id LIMIT 1",
                    )
                    .bind(message_id)
                    .bind(mailbox_id)
                    .fetch_optional(&mut *conn)
                    .await?;
                    if let Some(row) = found {
                        return row.try_get("work_item_id").map(Some).map_err(StoreError::from);
                    }
                }
                Ok(None)
            }

            async fn waiting_mail(
                &self,
                mailbox_id: &str,
                message_ids: &[String],
            ) -> StoreResult<Option<InboundState>> {
                let mut conn = self.pool.acquire().await?;
                for message_id in message_ids.iter().rev() {
                    let found = sqlx::query(
                        "SELECT state FROM inbound_mail WHERE mailbox_id = $1 AND message_id = $2 \
                         AND state IN ('held', 'triage')",
                    )
                    .bind(mailbox_id)
                    .bind(message_id)
                    .fetch_optional(&mut *conn)
                    .await?;
                    if let Some(row) = found {
                        let state: String = row.try_get("state")?;
                        return stored(&state).map(Some);
                    }
                }
                Ok(None)
            }

            async fn claim_outbound(
                &self,
                now: i64,
                lease_until: i64,
                limit: i64,
            ) -> StoreResult<Vec<OutboundClaim>> {
                // One key for every claim: a claim takes several messages.
                let (mut tx, ordered) = self.begin_ordered("outbound mail").await?;
                let due: Vec<String> = sqlx::query(
                    "SELECT message_id FROM outbound_mail WHERE state IN ('queued', 'sending') \
                     AND next_attempt_at <= $1 ORDER BY next_attempt_at LIMIT $2",
                )
                .bind(now)
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|row| row.try_get("message_id"))
                .collect::<Result<_, _>>()
                ?;
                let mut claims = Vec::with_capacity(due.len());
                for message_id in due {
                    // Conditional, so two senders never take the same mail.
                    let claimed = sqlx::query(
                        "UPDATE outbound_mail SET state = 'sending', attempts = attempts + 1, next_attempt_at = $3 \
                         WHERE message_id = $1 AND state IN ('queued', 'sending') AND next_attempt_at <= $2 \
                         RETURNING attempts",
                    )
                    .bind(&message_id)
                    .bind(now)
                    .bind(lease_until)
                    .fetch_optional(&mut *tx)
                    .await?;
                    let Some(row) = claimed else { continue };
                    let attempt: i64 = row.try_get("attempts")?;
                    let message = Self::record_delivery(&mut tx, ordered, &message_id, DeliveryState::Sending, "").await?;
                    claims.push(OutboundClaim { message, attempt });
                }
                self.commit(tx).await?;
                Ok(claims)
            }

            async fn finish_outbound(
                &self,
                message_id: &str,
                outcome: OutboundOutcome,
            ) -> StoreResult<Message> {
                let (state, delivery, error, next) = match &outcome {
                    OutboundOutcome::Sent => ("sent", DeliveryState::Sent, "", None),
                    OutboundOutcome::Retry { error, at } => ("queued", DeliveryState::Queued, error.as_str(), Some(*at)),
                    OutboundOutcome::Failed { error } => ("failed", DeliveryState::Failed, error.as_str(), None),
                };
                let (mut tx, ordered) = self.begin_ordered(message_id).await?;
                let updated = sqlx::query(
                    "UPDATE outbound_mail SET state = $2, last_error = $3, \
                     next_attempt_at = COALESCE($4, next_attempt_at) WHERE message_id = $1 AND state = 'sending'",
                )
                .bind(message_id)
                .bind(state)
                .bind(error)
                .bind(next)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if updated == 0 {
                    return Err(DomainError::failed_precondition(
                        reason::OUTBOUND_NOT_SENDING,
                        format!("message {message_id} is not being sent"),
                    ).into());
                }
                let message = Self::record_delivery(&mut tx, ordered, message_id, delivery, error).await?;
                self.commit(tx).await?;
                Ok(message)
            }

            async fn knows_address(&self, work_item_id: &str, address: &str) -> StoreResult<bool> {
                let address = address.trim().to_lowercase();
                let known = sqlx::query(
                    "SELECT 1 FROM thread_contacts WHERE work_item_id = $1 AND address = $2 \
                     UNION ALL SELECT 1 FROM role_bindings b JOIN users u ON u.id = b.user_id \
                       JOIN work_items w ON w.project_id = b.project_id \
                       WHERE w.id = $1 AND lower(u.email) = $2",
                )
                .bind(work_item_id)
                .bind(&address)
                .fetch_optional(&self.pool)
                .await?;
                Ok(known.is_some())
            }
        }

        impl $store {
            /// Writes a delivery state onto the message and its event.
            async fn record_delivery(
                conn: &mut <$db as sqlx::Database>::Connection,
                ordered: Ordered,
                message_id: &str,
                state: DeliveryState,
                error: &str,
            ) -> StoreResult<Message> {
                sqlx::query("UPDATE messages SET delivery_state = $2, delivery_error = $3 WHERE id = $1")
                    .bind(message_id)
                    .bind(state.as_str())
                    .bind(error)
                    .execute(&mut *conn)
                    .await?;
                let message = Self::message_in(conn, message_id).await?;
                Self::record_for(
                    conn,
                    ordered,
                    EventKind::MessageDelivery,
                    Some(&message.project_id),
                    Some(&message.work_item_id),
                    &message.id,
                    serde_json::to_value(&message).unwrap_or_default(),
                )
                .await?;
                Ok(message)
            }

            async fn insert_mailbox(
                conn: &mut <$db as sqlx::Database>::Connection,
                ordered: Ordered,
                mailbox: &NewMailbox,
            ) -> StoreResult<Mailbox> {
                let id = new_id();
                sqlx::query(
                    "INSERT INTO mailboxes (id, address, display_name, rules, max_size, jmap_state, state, \
                       adopted, import_history, problem, created_at) \
                     VALUES ($1, $2, $3, $4, $5, NULL, 'active', $6, $7, '', $8)",
                )
                .bind(&id)
                .bind(mailbox.address.trim().to_lowercase())
                .bind(&mailbox.display_name)
                .bind(to_json(&mailbox.rules))
                .bind(mailbox.max_size)
                .bind(mailbox.adopted)
                .bind(mailbox.import_history)
                .bind(now_micros())
                .execute(&mut *conn)
                .await
                .map_err(|err| StoreError::conflict(err, reason::MAILBOX_EXISTS))?;
                Self::add_projects(conn, &id, &mailbox.project_ids).await?;
                let created = Self::mailbox_in(conn, &id).await?;
                Self::record_mailbox(conn, ordered, EventKind::MailboxCreated, &created).await?;
                Ok(created)
            }

            async fn add_projects(
                conn: &mut <$db as sqlx::Database>::Connection,
                id: &str,
                project_ids: &[String],
            ) -> StoreResult<()> {
                for project_id in project_ids {
                    Self::project_exists(conn, project_id).await?;
                    sqlx::query(
                        "INSERT INTO mailbox_projects (mailbox_id, project_id) VALUES ($1, $2) \
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(id)
                    .bind(project_id)
                    .execute(&mut *conn)
                    .await?;
                }
                Ok(())
            }

            async fn set_dropping(
                conn: &mut <$db as sqlx::Database>::Connection,
                id: &str,
            ) -> StoreResult<()> {
                sqlx::query("UPDATE mailboxes SET state = 'dropping' WHERE id = $1")
                    .bind(id)
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            }

            /// One event per project the mailbox serves, so every project's
            /// dashboard sees it.
            async fn record_mailbox(
                conn: &mut <$db as sqlx::Database>::Connection,
                ordered: Ordered,
                kind: EventKind,
                mailbox: &Mailbox,
            ) -> StoreResult<()> {
                let payload = json!({
                    "id": mailbox.id,
                    "address": mailbox.address,
                    "state": mailbox.state.as_str(),
                    "project_ids": mailbox.project_ids,
                });
                for project_id in &mailbox.project_ids {
                    Self::record(conn, ordered, kind, Some(project_id), &mailbox.id, payload.clone()).await?;
                }
                Ok(())
            }

            /// Moves a held or triaged mail to `state`; anything else was
            /// settled already (`INBOUND_MAIL_SETTLED`). The conditional
            /// update is the lock: a second settler finds no row.
            async fn settle(
                conn: &mut <$db as sqlx::Database>::Connection,
                id: &str,
                state: InboundState,
                work_item_id: Option<&str>,
                by: &Actor,
            ) -> StoreResult<InboundRecord> {
                let updated = sqlx::query(
                    "UPDATE inbound_mail SET state = $2, work_item_id = COALESCE($3, work_item_id), settled_by = $4 \
                     WHERE id = $1 AND state IN ('held', 'triage')",
                )
                .bind(id)
                .bind(state.as_str())
                .bind(work_item_id)
                .bind(by.to_json())
                .execute(&mut *conn)
                .await?
                .rows_affected();
                let record = Self::inbound_in(conn, id).await?;
                if updated == 0 {
                    return Err(DomainError::failed_precondition(
                        reason::INBOUND_MAIL_SETTLED,
                        format!("this mail is {} already", record.state),
                    ).into());
                }
                Ok(record)
            }

            async fn mailbox_in(
                conn: &mut <$db as sqlx::Database>::Connection,
                id: &str,
            ) -> StoreResult<Mailbox> {
                let row = sqlx::query(
                    "SELECT id, address, display_name, rules, max_size, state, jmap_state, adopted, \
                       provisioned, import_history, problem, created_at FROM mailboxes WHERE id = $1",
                )
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?
                .ok_or_else(|| mailbox_not_found(id))?;
                let project_ids: Vec<String> = sqlx::query(
                    "SELECT project_id FROM mailbox_projects WHERE mailbox_id = $1 ORDER BY project_id",
                )
                .bind(id)
                .fetch_all(&mut *conn)
                .await?
                .iter()
                .map(|row| row.try_get("project_id"))
                .collect::<Result<_, _>>()
                ?;
                let rules: String = row.try_get("rules")?;
                let state: String = row.try_get("state")?;
                Ok(Mailbox {
                    id: row.try_get("id")?,
                    address: row.try_get("address")?,
                    display_name: row.try_get("display_name")?,
                    project_ids,
                    rules: stored_json(&rules)?,
                    max_size: row.try_get("max_size")?,
                    state: stored(&state)?,
                    jmap_state: row.try_get("jmap_state")?,
                    adopted: row.try_get("adopted")?,
                    provisioned: row.try_get("provisioned")?,
                    import_history: row.try_get("import_history")?,
                    problem: row.try_get("problem")?,
                    created_at: row.try_get("created_at")?,
                })
            }

            async fn inbound_in(
                conn: &mut <$db as sqlx::Database>::Connection,
                id: &str,
            ) -> StoreResult<InboundRecord> {
                let sql = concat!(inbound_select!(), " WHERE id = $1");
                Self::one_by_id(conn, sql, id, crate::backend::rows::inbound, || inbound_not_found(id)).await
            }

            async fn inbound_by_key(
                conn: &mut <$db as sqlx::Database>::Connection,
                mailbox_id: &str,
                message_id: &str,
            ) -> StoreResult<InboundRecord> {
                let row = sqlx::query(concat!(inbound_select!(), " WHERE mailbox_id = $1 AND message_id = $2"))
                    .bind(mailbox_id)
                    .bind(message_id)
                    .fetch_one(&mut *conn)
                    .await?;
                crate::backend::rows::inbound(&row)
            }

        }
    };
}

mail_sql!(PostgresStore, sqlx::Postgres);
mail_sql!(SqliteStore, sqlx::Sqlite);
