//! Threads, the outbound mail queue, human decisions, and the read models
//! of the dashboard. Writes lock the work item's project like every planning
//! write, so message sequences have no gaps and a decision is answered once.

use anima_core::{
    DomainError,
    error::reason,
    event::EventKind,
    id::new_id,
    model::{Event, now_micros},
    paging::PageRequest,
    planning::{Actor, WorkItemStatus},
    thread::{
        Decision, DecisionState, DeliveryState, EmailHeaders, Message, MessageKind, NewDecision,
        NewMessage,
    },
};
use async_trait::async_trait;
use sqlx::Row;

use super::{
    Ordered, PostgresStore, SqliteStore, page_of,
    planning::{stored, to_json},
};
use crate::{DecisionFilter, Page, StoreResult, ThreadPage, ThreadStore, WorkItemCount};

fn message_not_found(id: &str) -> DomainError {
    DomainError::not_found(
        reason::MESSAGE_NOT_FOUND,
        format!("no message with id {id}"),
    )
}

fn decision_not_found(id: &str) -> DomainError {
    DomainError::not_found(
        reason::DECISION_NOT_FOUND,
        format!("no decision with id {id}"),
    )
}

macro_rules! message_select {
    () => {
        "SELECT id, work_item_id, project_id, sequence, kind, author, body, email, attachments, \
         delivery_state, delivery_error, created_at FROM messages"
    };
}

macro_rules! decision_select {
    () => {
        "SELECT id, work_item_id, project_id, question, input_label, choices, asked_by, \
         assignee_user_id, state, answer, answered_by, created_at, resolved_at FROM decisions"
    };
}

macro_rules! thread_sql {
    ($store:ident, $db:ty, $visible:literal) => {
        #[async_trait]
        impl ThreadStore for $store {
            async fn post_message(&self, message: NewMessage) -> StoreResult<Message> {
                let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                let project_id = Self::work_item_project(&mut tx, &message.work_item_id).await?;
                let ordered = Self::writable_project(&mut tx, &project_id).await?;
                if let Some(key) = &message.idempotency_key {
                    let earlier = sqlx::query(concat!(message_select!(), " WHERE work_item_id = $1 AND idempotency_key = $2"))
                        .bind(&message.work_item_id)
                        .bind(key)
                        .fetch_optional(&mut *tx)
                        .await?;
                    if let Some(row) = earlier {
                        // A retry of a post that landed: same answer, no second message.
                        return crate::backend::rows::message(&row);
                    }
                }
                let posted = Self::insert_message(&mut tx, ordered, &project_id, message).await?;
                self.commit(tx).await?;
                Ok(posted)
            }

            async fn get_message(&self, id: &str) -> StoreResult<Message> {
                Self::message_in(&mut *self.pool.acquire().await?, id).await
            }

            async fn list_messages(&self, work_item_id: &str, page: ThreadPage, limit: i64) -> StoreResult<Vec<Message>> {
                let mut conn = self.pool.acquire().await?;
                Self::work_item_project(&mut conn, work_item_id).await?;
                let (query, sequence) = match page {
                    ThreadPage::After(sequence) => (
                        concat!(message_select!(), " WHERE work_item_id = $1 AND sequence > $2 ORDER BY sequence LIMIT $3"),
                        sequence,
                    ),
                    ThreadPage::Before(sequence) => (
                        concat!(message_select!(), " WHERE work_item_id = $1 AND sequence < $2 ORDER BY sequence DESC LIMIT $3"),
                        sequence,
                    ),
                };
                let rows = sqlx::query(query)
                .bind(work_item_id)
                .bind(sequence)
                .bind(limit)
                .fetch_all(&mut *conn)
                .await?;
                rows.iter().map(crate::backend::rows::message).collect()
            }

            async fn queued_outbound_mail(&self, limit: i64) -> StoreResult<Vec<Message>> {
                let rows = sqlx::query(concat!(
                    message_select!(),
                    " WHERE id IN (SELECT message_id FROM outbound_mail WHERE state = 'queued' \
                       ORDER BY next_attempt_at LIMIT $1) ORDER BY created_at"
                ))
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(crate::backend::rows::message).collect()
            }

            async fn request_decision(&self, decision: NewDecision) -> StoreResult<Decision> {
                let id = new_id();
                let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                let project_id = Self::work_item_project(&mut tx, &decision.work_item_id).await?;
                let ordered = Self::writable_project(&mut tx, &project_id).await?;
                if let Some(assignee) = &decision.assignee_user_id {
                    Self::user_in(&mut tx, assignee).await?;
                }
                sqlx::query(
                    "INSERT INTO decisions (id, work_item_id, project_id, question, input_label, choices, \
                     asked_by, assignee_user_id, state, answer, answered_by, created_at, resolved_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'open', '', NULL, $9, NULL)",
                )
                .bind(&id)
                .bind(&decision.work_item_id)
                .bind(&project_id)
                .bind(&decision.question)
                .bind(&decision.input_label)
                .bind(to_json(&decision.choices))
                .bind(decision.asked_by.to_json())
                .bind(decision.assignee_user_id.as_deref())
                .bind(now_micros())
                .execute(&mut *tx)
                .await?;
                let created = Self::decision_in(&mut tx, &id).await?;
                Self::record_for(
                    &mut tx,
                    ordered,
                    EventKind::DecisionRequested,
                    Some(&project_id),
                    Some(&decision.work_item_id),
                    &id,
                    serde_json::to_value(&created).unwrap_or_default(),
                )
                .await?;
                self.commit(tx).await?;
                Ok(created)
            }

            async fn get_decision(&self, id: &str) -> StoreResult<Decision> {
                let mut conn = self.pool.acquire().await?;
                Self::decision_in(&mut conn, id).await
            }

            async fn list_decisions(&self, filter: &DecisionFilter, page: &PageRequest) -> StoreResult<Page<Decision>> {
                let rows = sqlx::query(concat!(
                    decision_select!(),
                    " d WHERE ($1 = '' OR d.project_id = $1) \
                     AND ($2 = '' OR d.assignee_user_id = $2) \
                     AND ($3 = '' OR EXISTS (SELECT 1 FROM role_bindings b \
                         JOIN role_permissions rp ON rp.role_id = b.role_id \
                         WHERE b.project_id = d.project_id AND b.user_id = $3 \
                         AND rp.permission = 'thread.read')) \
                     AND ($4 = '' OR d.state = $4) AND d.id > $5 ORDER BY d.id LIMIT $6"
                ))
                .bind(filter.project_id.as_deref().unwrap_or(""))
                .bind(filter.assignee.as_deref().unwrap_or(""))
                .bind(filter.reader.as_deref().unwrap_or(""))
                .bind(filter.state.map_or("", DecisionState::as_str))
                .bind(page.after.as_deref().unwrap_or(""))
                .bind(page.fetch_limit())
                .fetch_all(&self.pool)
                .await?;
                page_of(&rows, crate::backend::rows::decision, page, |decision| decision.id.clone())
            }

            async fn resolve_decision(&self, id: &str, answer: &str, user_id: &str) -> StoreResult<Decision> {
                let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                let (ordered, current) = Self::open_decision(&mut tx, id).await?;
                if !current.choices.is_empty() && !current.choices.iter().any(|choice| choice == answer) {
                    return Err(DomainError::invalid_argument(
                        reason::ANSWER_NOT_A_CHOICE,
                        format!("the answer must be one of: {}", current.choices.join(", ")),
                    ).into());
                }
                let closed = Self::close_decision(&mut tx, &current, DecisionState::Resolved, answer, Some(user_id)).await?;
                Self::insert_message(&mut tx, ordered, &current.project_id, NewMessage {
                    work_item_id: current.work_item_id.clone(),
                    kind: MessageKind::System,
                    author: Actor::User { id: user_id.to_owned() },
                    body: format!("Decision answered — {}\n{}: {answer}", current.question, current.input_label),
                    email: None,
                    attachments: Vec::new(),
                    idempotency_key: None,
                })
                .await?;
                Self::record_for(
                    &mut tx,
                    ordered,
                    EventKind::DecisionResolved,
                    Some(&current.project_id),
                    Some(&current.work_item_id),
                    id,
                    serde_json::to_value(&closed).unwrap_or_default(),
                )
                .await?;
                self.commit(tx).await?;
                Ok(closed)
            }

            async fn cancel_decision(&self, id: &str, why: &str, actor: &Actor) -> StoreResult<Decision> {
                let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                let (ordered, current) = Self::open_decision(&mut tx, id).await?;
                let user_id = match actor {
                    Actor::User { id } => Some(id.as_str()),
                    _ => None,
                };
                let closed = Self::close_decision(&mut tx, &current, DecisionState::Cancelled, why, user_id).await?;
                Self::insert_message(&mut tx, ordered, &current.project_id, NewMessage {
                    work_item_id: current.work_item_id.clone(),
                    kind: MessageKind::System,
                    author: actor.clone(),
                    body: if why.is_empty() {
                        format!("Decision withdrawn — {}", current.question)
                    } else {
                        format!("Decision withdrawn — {}\n{why}", current.question)
                    },
                    email: None,
                    attachments: Vec::new(),
                    idempotency_key: None,
                })
                .await?;
                Self::record_for(
                    &mut tx,
                    ordered,
                    EventKind::DecisionCancelled,
                    Some(&current.project_id),
                    Some(&current.work_item_id),
                    id,
                    serde_json::to_value(&closed).unwrap_or_default(),
                )
                .await?;
                self.commit(tx).await?;
                Ok(closed)
            }

            async fn work_item_counts(&self, project_id: &str) -> StoreResult<Vec<WorkItemCount>> {
                let rows = sqlx::query(
                    "SELECT status, phase_id, COUNT(*) AS n FROM work_items WHERE project_id = $1 \
                     GROUP BY status, phase_id ORDER BY status, phase_id",
                )
                .bind(project_id)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|row| {
                        let status: String = row.try_get("status")?;
                        Ok(WorkItemCount {
                            status: stored::<WorkItemStatus>(&status)?,
                            phase_id: row.try_get("phase_id")?,
                            count: row.try_get("n")?,
                        })
                    })
                    .collect()
            }

            async fn recent_events(&self, reader: &str, limit: i64) -> StoreResult<Vec<Event>> {
                // Only events streams may deliver yet: their ids are cursors.
                let rows = sqlx::query(concat!(
                    event_select!(),
                    " WHERE project_id IN (SELECT b.project_id FROM role_bindings b \
                       JOIN role_permissions rp ON rp.role_id = b.role_id \
                       WHERE b.user_id = $1 AND rp.permission = 'dashboard.read') AND ",
                    $visible,
                    " ORDER BY txid DESC, id DESC LIMIT $2"
                ))
                .bind(reader)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(crate::backend::rows::event).collect()
            }
        }

        impl $store {
            /// Appends a message to its thread (the project is locked
            /// already) and records its event, whose payload is the message.
            pub(super) async fn insert_message(
                conn: &mut <$db as sqlx::Database>::Connection,
                ordered: Ordered,
                project_id: &str,
                message: NewMessage,
            ) -> StoreResult<Message> {
                let sequence: i64 = sqlx::query(
                    "UPDATE work_items SET message_seq = message_seq + 1 WHERE id = $1 RETURNING message_seq",
                )
                .bind(&message.work_item_id)
                .fetch_one(&mut *conn)
                .await
                .and_then(|row| row.try_get("message_seq"))
                ?;
                let delivery_state = (message.kind == MessageKind::OutboundEmail).then_some(DeliveryState::Queued);
                let id = new_id();
                let mut email = message.email;
                if let Some(headers) = email.as_mut().filter(|headers| headers.message_id.is_empty()) {
                    // Outbound mail gets its Message-ID now, so a reply that
                    // names it in References finds this thread.
                    headers.message_id = format!("{id}@anima");
                }
                let posted = Message {
                    id,
                    work_item_id: message.work_item_id,
                    project_id: project_id.to_owned(),
                    sequence,
                    kind: message.kind,
                    author: message.author,
                    body: message.body,
                    email,
                    attachments: message.attachments,
                    delivery_state,
                    delivery_error: String::new(),
                    created_at: now_micros(),
                };
                sqlx::query(
                    "INSERT INTO messages (id, work_item_id, project_id, sequence, kind, author, body, email, \
                     attachments, delivery_state, delivery_error, idempotency_key, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, '', $11, $12)",
                )
                .bind(&posted.id)
                .bind(&posted.work_item_id)
                .bind(project_id)
                .bind(sequence)
                .bind(posted.kind.as_str())
                .bind(posted.author.to_json())
                .bind(&posted.body)
                .bind(posted.email.as_ref().map(to_json))
                .bind(to_json(&posted.attachments))
                .bind(delivery_state.map(DeliveryState::as_str))
                .bind(message.idempotency_key.as_deref())
                .bind(posted.created_at)
                .execute(&mut *conn)
                .await?;
                if delivery_state.is_some() {
                    sqlx::query(
                        "INSERT INTO outbound_mail (message_id, state, attempts, next_attempt_at, last_error, created_at) \
                         VALUES ($1, 'queued', 0, $2, '', $2)",
                    )
                    .bind(&posted.id)
                    .bind(posted.created_at)
                    .execute(&mut *conn)
                    .await?;
                }
                if let Some(headers) = &posted.email {
                    Self::remember_mail(conn, &posted.work_item_id, posted.kind, headers).await?;
                }
                Self::record_for(
                    conn,
                    ordered,
                    EventKind::MessagePosted,
                    Some(project_id),
                    Some(&posted.work_item_id),
                    &posted.id,
                    serde_json::to_value(&posted).unwrap_or_default(),
                )
                .await?;
                Ok(posted)
            }

            /// A message by id, inside a transaction.
            pub(super) async fn message_in(
                conn: &mut <$db as sqlx::Database>::Connection,
                id: &str,
            ) -> StoreResult<Message> {
                let sql = concat!(message_select!(), " WHERE id = $1");
                Self::one_by_id(conn, sql, id, crate::backend::rows::message, || message_not_found(id)).await
            }

            /// Notes an email message's Message-ID (replies find the thread
            /// by it) and the addresses taking part (screening knows them).
            async fn remember_mail(
                conn: &mut <$db as sqlx::Database>::Connection,
                work_item_id: &str,
                kind: MessageKind,
                headers: &EmailHeaders,
            ) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO thread_mail_ids (message_id, work_item_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                )
                .bind(&headers.message_id)
                .bind(work_item_id)
                .execute(&mut *conn)
                .await?;
                let contacts = match kind {
                    MessageKind::InboundEmail => vec![&headers.from],
                    _ => headers.to.iter().chain(&headers.cc).collect(),
                };
                for address in contacts {
                    sqlx::query(
                        "INSERT INTO thread_contacts (work_item_id, address) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                    )
                    .bind(work_item_id)
                    .bind(address.trim().to_lowercase())
                    .execute(&mut *conn)
                    .await?;
                }
                Ok(())
            }

            async fn decision_in(
                conn: &mut <$db as sqlx::Database>::Connection,
                id: &str,
            ) -> StoreResult<Decision> {
                let sql = concat!(decision_select!(), " WHERE id = $1");
                Self::one_by_id(conn, sql, id, crate::backend::rows::decision, || decision_not_found(id)).await
            }

            /// The decision, with its project locked, if it is still open.
            async fn open_decision(
                conn: &mut <$db as sqlx::Database>::Connection,
                id: &str,
            ) -> StoreResult<(Ordered, Decision)> {
                let project_id = Self::decision_in(&mut *conn, id).await?.project_id;
                let ordered = Self::writable_project(&mut *conn, &project_id).await?;
                // Read again under the lock: a concurrent answer has committed.
                let current = Self::decision_in(&mut *conn, id).await?;
                if current.state != DecisionState::Open {
                    return Err(DomainError::failed_precondition(
                        reason::DECISION_NOT_OPEN,
                        format!("the decision is already {}", current.state.as_str()),
                    ).into());
                }
                Ok((ordered, current))
            }

            async fn close_decision(
                conn: &mut <$db as sqlx::Database>::Connection,
                current: &Decision,
                state: DecisionState,
                answer: &str,
                user_id: Option<&str>,
            ) -> StoreResult<Decision> {
                sqlx::query(
                    "UPDATE decisions SET state = $2, answer = $3, answered_by = $4, resolved_at = $5 WHERE id = $1",
                )
                .bind(&current.id)
                .bind(state.as_str())
                .bind(answer)
                .bind(user_id)
                .bind(now_micros())
                .execute(&mut *conn)
                .await?;
                Self::decision_in(conn, &current.id).await
            }
        }
    };
}

// Events as `Store::events_after` hands them out (see `common_sql!`).
thread_sql!(
    PostgresStore,
    sqlx::Postgres,
    "txid < pg_snapshot_xmin(pg_current_snapshot())::text::bigint"
);
thread_sql!(SqliteStore, sqlx::Sqlite, "TRUE");
