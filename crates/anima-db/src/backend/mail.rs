//! Mailboxes, their projects and JMAP states, and the inbound mail record
//! that makes routing exactly-once: one row per mailbox and Message-ID.

use anima_core::{
    DomainError,
    error::reason,
    id::new_id,
    mail::{InboundRecord, Mailbox, NewInbound, NewMailbox},
    model::now_micros,
    paging::PageRequest,
};
use async_trait::async_trait;
use sqlx::Row;

use super::{
    PostgresStore, SqliteStore, db_error, internal,
    planning::{stored, stored_json, to_json},
};
use crate::{InboundFilter, MailStore, Page};

fn mailbox_not_found(id: &str) -> DomainError {
    DomainError::not_found(
        reason::MAILBOX_NOT_FOUND,
        format!("no mailbox with id {id}"),
    )
}

macro_rules! inbound_select {
    () => {
        "SELECT id, mailbox_id, message_id, state, reason, work_item_id, sender, subject, created_at \
         FROM inbound_mail"
    };
}

macro_rules! mail_sql {
    ($store:ident, $db:ty) => {
        #[async_trait]
        impl MailStore for $store {
            async fn create_mailbox(&self, mailbox: NewMailbox) -> Result<Mailbox, DomainError> {
                if mailbox.project_ids.is_empty() {
                    return Err(DomainError::invalid_argument(
                        reason::FIELD_REQUIRED,
                        "a mailbox serves at least one project",
                    ));
                }
                let id = new_id();
                let address = mailbox.address.trim().to_lowercase();
                let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await.map_err(internal)?;
                for project_id in &mailbox.project_ids {
                    Self::project_exists(&mut tx, project_id).await?;
                }
                sqlx::query(
                    "INSERT INTO mailboxes (id, address, display_name, rules, max_size, jmap_state, created_at) \
                     VALUES ($1, $2, $3, $4, $5, NULL, $6)",
                )
                .bind(&id)
                .bind(&address)
                .bind(&mailbox.display_name)
                .bind(to_json(&mailbox.rules))
                .bind(mailbox.max_size)
                .bind(now_micros())
                .execute(&mut *tx)
                .await
                .map_err(|err| db_error(err, reason::MAILBOX_EXISTS))?;
                for project_id in &mailbox.project_ids {
                    sqlx::query(
                        "INSERT INTO mailbox_projects (mailbox_id, project_id) VALUES ($1, $2) \
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(&id)
                    .bind(project_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(internal)?;
                }
                let created = Self::mailbox_in(&mut tx, &id).await?;
                self.commit(tx).await?;
                Ok(created)
            }

            async fn get_mailbox(&self, id: &str) -> Result<Mailbox, DomainError> {
                let mut conn = self.pool.acquire().await.map_err(internal)?;
                Self::mailbox_in(&mut conn, id).await
            }

            async fn list_mailboxes(&self, page: &PageRequest) -> Result<Page<Mailbox>, DomainError> {
                let mut conn = self.pool.acquire().await.map_err(internal)?;
                let ids: Vec<String> = sqlx::query("SELECT id FROM mailboxes WHERE id > $1 ORDER BY id LIMIT $2")
                    .bind(page.after.as_deref().unwrap_or(""))
                    .bind(page.fetch_limit())
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(internal)?
                    .iter()
                    .map(|row| row.try_get("id"))
                    .collect::<Result<_, _>>()
                    .map_err(internal)?;
                let mut items = Vec::with_capacity(ids.len());
                for id in &ids {
                    items.push(Self::mailbox_in(&mut conn, id).await?);
                }
                let next_page_token = page.finish(&mut items, |mailbox| mailbox.id.clone());
                Ok(Page { items, next_page_token })
            }

            async fn save_jmap_state(&self, mailbox_id: &str, state: &str) -> Result<(), DomainError> {
                let updated = sqlx::query("UPDATE mailboxes SET jmap_state = $2 WHERE id = $1")
                    .bind(mailbox_id)
                    .bind(state)
                    .execute(&self.pool)
                    .await
                    .map_err(internal)?
                    .rows_affected();
                if updated == 0 {
                    return Err(mailbox_not_found(mailbox_id));
                }
                Ok(())
            }

            async fn record_inbound(&self, mail: NewInbound) -> Result<(InboundRecord, bool), DomainError> {
                let mut conn = self.pool.acquire().await.map_err(internal)?;
                Self::mailbox_in(&mut conn, &mail.mailbox_id).await?;
                let inserted = sqlx::query(
                    "INSERT INTO inbound_mail (id, mailbox_id, message_id, state, reason, work_item_id, \
                     sender, subject, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                     ON CONFLICT (mailbox_id, message_id) DO NOTHING RETURNING id",
                )
                .bind(new_id())
                .bind(&mail.mailbox_id)
                .bind(&mail.message_id)
                .bind(mail.state.as_str())
                .bind(&mail.reason)
                .bind(mail.work_item_id.as_deref())
                .bind(&mail.sender)
                .bind(&mail.subject)
                .bind(now_micros())
                .fetch_optional(&mut *conn)
                .await
                .map_err(internal)?
                .is_some();
                let row = sqlx::query(concat!(inbound_select!(), " WHERE mailbox_id = $1 AND message_id = $2"))
                    .bind(&mail.mailbox_id)
                    .bind(&mail.message_id)
                    .fetch_one(&mut *conn)
                    .await
                    .map_err(internal)?;
                Ok((Self::inbound_row(&row)?, inserted))
            }

            async fn list_inbound(
                &self,
                filter: &InboundFilter,
                page: &PageRequest,
            ) -> Result<Page<InboundRecord>, DomainError> {
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
                .await
                .map_err(internal)?;
                let mut items = rows.iter().map(Self::inbound_row).collect::<Result<Vec<_>, _>>()?;
                let next_page_token = page.finish(&mut items, |record| record.id.clone());
                Ok(Page { items, next_page_token })
            }
        }

        impl $store {
            async fn mailbox_in(
                conn: &mut <$db as sqlx::Database>::Connection,
                id: &str,
            ) -> Result<Mailbox, DomainError> {
                let row = sqlx::query(
                    "SELECT id, address, display_name, rules, max_size, jmap_state, created_at \
                     FROM mailboxes WHERE id = $1",
                )
                .bind(id)
                .fetch_optional(&mut *conn)
                .await
                .map_err(internal)?
                .ok_or_else(|| mailbox_not_found(id))?;
                let project_ids: Vec<String> = sqlx::query(
                    "SELECT project_id FROM mailbox_projects WHERE mailbox_id = $1 ORDER BY project_id",
                )
                .bind(id)
                .fetch_all(&mut *conn)
                .await
                .map_err(internal)?
                .iter()
                .map(|row| row.try_get("project_id"))
                .collect::<Result<_, _>>()
                .map_err(internal)?;
                let rules: String = row.try_get("rules").map_err(internal)?;
                Ok(Mailbox {
                    id: row.try_get("id").map_err(internal)?,
                    address: row.try_get("address").map_err(internal)?,
                    display_name: row.try_get("display_name").map_err(internal)?,
                    project_ids,
                    rules: stored_json(&rules)?,
                    max_size: row.try_get("max_size").map_err(internal)?,
                    jmap_state: row.try_get("jmap_state").map_err(internal)?,
                    created_at: row.try_get("created_at").map_err(internal)?,
                })
            }

            fn inbound_row(row: &<$db as sqlx::Database>::Row) -> Result<InboundRecord, DomainError> {
                let state: String = row.try_get("state").map_err(internal)?;
                Ok(InboundRecord {
                    id: row.try_get("id").map_err(internal)?,
                    mailbox_id: row.try_get("mailbox_id").map_err(internal)?,
                    message_id: row.try_get("message_id").map_err(internal)?,
                    state: stored(&state)?,
                    reason: row.try_get("reason").map_err(internal)?,
                    work_item_id: row.try_get("work_item_id").map_err(internal)?,
                    sender: row.try_get("sender").map_err(internal)?,
                    subject: row.try_get("subject").map_err(internal)?,
                    created_at: row.try_get("created_at").map_err(internal)?,
                })
            }
        }
    };
}

mail_sql!(PostgresStore, sqlx::Postgres);
mail_sql!(SqliteStore, sqlx::Sqlite);
