//! Agent sessions, tasks and MCP tokens. A session's final status revokes
//! its tokens in the same transaction, so the very next MCP request fails.

use std::str::FromStr;

use anima_core::{
    DomainError, Permission,
    agent::{
        AgentSession, LoginReport, McpScope, NewSession, NewSessionLogin, SessionLogin,
        SessionStatus, Task, TaskStatus, TerminalEvent,
    },
    error::reason,
    event::EventKind,
    id::new_id,
    model::now_micros,
    paging::PageRequest,
    workflow::SkillRef,
};
use async_trait::async_trait;
use sqlx::Row;

use super::{
    PostgresStore, SqliteStore, page_of,
    planning::{stored, stored_json, to_json},
};
use crate::{AgentStore, Page, SessionChange, SessionFilter, StoreResult, TokenState};

fn session_not_found(id: &str) -> DomainError {
    DomainError::not_found(
        reason::SESSION_NOT_FOUND,
        format!("no agent session with id {id}"),
    )
}

fn task_not_found(id: &str) -> DomainError {
    DomainError::not_found(reason::TASK_NOT_FOUND, format!("no task with id {id}"))
}

fn login_not_found(id: &str) -> DomainError {
    DomainError::not_found(reason::LOGIN_NOT_FOUND, format!("no login with id {id}"))
}

fn session_ended(session: &AgentSession) -> DomainError {
    DomainError::failed_precondition(
        reason::SESSION_ENDED,
        format!("the agent session has {}", session.status.as_str()),
    )
}

macro_rules! session_select {
    () => {
        "SELECT id, work_item_id, project_id, akh_id, status, capabilities, skills, phase_id, vm_id, \
         error, exit_code, keep_after_stop, created_at, updated_at FROM agent_sessions"
    };
}

macro_rules! task_select {
    () => {
        "SELECT id, session_id, work_item_id, title, status, note, created_at, updated_at FROM tasks"
    };
}

macro_rules! login_select {
    () => {
        "SELECT id, session_id, user_id, reason, created_at, expires_at, started_at, ended_at, \
         commands, bytes_in, bytes_out, exit_status, peer FROM session_logins"
    };
}

macro_rules! agent_sql {
    ($store:ident, $db:ty) => {
        #[async_trait]
        impl AgentStore for $store {
            async fn create_agent_session(&self, session: NewSession) -> StoreResult<AgentSession> {
                let id = new_id();
                let now = now_micros();
                let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                let project_id = Self::work_item_project(&mut tx, &session.work_item_id).await?;
                let ordered = Self::writable_project(&mut tx, &project_id).await?;
                let item = Self::work_item_in(&mut tx, &session.work_item_id).await?;
                let workflow = Self::workflow_in(&mut tx, &item.workflow_id).await?;
                let skills: Vec<SkillRef> = workflow
                    .phase(&item.phase_id)
                    .map(|phase| phase.required_skills.clone())
                    .unwrap_or_default();
                Self::akh_in(&mut tx, &session.akh_id).await?;
                sqlx::query(
                    "INSERT INTO agent_sessions (id, work_item_id, project_id, akh_id, status, capabilities, \
                     skills, phase_id, vm_id, error, keep_after_stop, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, 'provisioning', $5, $6, $7, '', '', $8, $9, $9)",
                )
                .bind(&id)
                .bind(&session.work_item_id)
                .bind(&project_id)
                .bind(&session.akh_id)
                .bind(to_json(&item.capabilities))
                .bind(to_json(&skills))
                .bind(&item.phase_id)
                .bind(session.keep_after_stop)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                let permissions: Vec<&str> = session.permissions.iter().map(|p| p.as_str()).collect();
                sqlx::query(
                    "INSERT INTO mcp_tokens (token_hash, session_id, permissions, created_at) VALUES ($1, $2, $3, $4)",
                )
                .bind(&session.token_hash)
                .bind(&id)
                .bind(to_json(&permissions))
                .bind(now)
                .execute(&mut *tx)
                .await?;
                Self::record_for(
                    &mut tx,
                    ordered,
                    EventKind::AgentSessionStarted,
                    Some(&project_id),
                    Some(&session.work_item_id),
                    &id,
                    serde_json::json!({ "status": "provisioning", "akh_id": session.akh_id }),
                )
                .await?;
                let created = Self::session_in(&mut tx, &id).await?;
                self.commit(tx).await?;
                Ok(created)
            }

            async fn get_agent_session(&self, id: &str) -> StoreResult<AgentSession> {
                let mut conn = self.pool.acquire().await?;
                Self::session_in(&mut conn, id).await
            }

            async fn list_agent_sessions(&self, filter: &SessionFilter, page: &PageRequest) -> StoreResult<Page<AgentSession>> {
                let rows = sqlx::query(concat!(
                    session_select!(),
                    " WHERE ($1 = '' OR work_item_id = $1) AND ($2 = '' OR project_id = $2) \
                     AND ($3 = FALSE OR status IN ('provisioning', 'running', 'paused')) \
                     AND id > $4 ORDER BY id LIMIT $5"
                ))
                .bind(filter.work_item_id.as_deref().unwrap_or(""))
                .bind(filter.project_id.as_deref().unwrap_or(""))
                .bind(filter.active_only)
                .bind(page.after.as_deref().unwrap_or(""))
                .bind(page.fetch_limit())
                .fetch_all(&self.pool)
                .await?;
                page_of(&rows, crate::backend::rows::session, page, |session| session.id.clone())
            }

            async fn set_agent_session_status(
                &self,
                id: &str,
                status: SessionStatus,
                change: SessionChange<'_>,
            ) -> StoreResult<AgentSession> {
                let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                let current = Self::session_in(&mut tx, id).await?;
                // Ending a session is allowed in an archived project too.
                let (ordered, _) = Self::lock_project(&mut tx, &current.project_id).await?;
                let current = Self::session_in(&mut tx, id).await?;
                if current.status.is_final() {
                    return Err(session_ended(&current).into());
                }
                sqlx::query(
                    "UPDATE agent_sessions SET status = $2, vm_id = COALESCE($3, vm_id), \
                     error = COALESCE($4, error), exit_code = COALESCE($5, exit_code), updated_at = $6 \
                     WHERE id = $1",
                )
                .bind(id)
                .bind(status.as_str())
                .bind(change.vm_id)
                .bind(change.error)
                .bind(change.exit_code)
                .bind(now_micros())
                .execute(&mut *tx)
                .await?;
                if status.is_final() {
                    Self::revoke_tokens(&mut tx, id).await?;
                }
                Self::record_for(
                    &mut tx,
                    ordered,
                    EventKind::AgentSessionStatus,
                    Some(&current.project_id),
                    Some(&current.work_item_id),
                    id,
                    serde_json::json!({ "status": status.as_str() }),
                )
                .await?;
                let updated = Self::session_in(&mut tx, id).await?;
                self.commit(tx).await?;
                Ok(updated)
            }

            async fn revoke_agent_tokens(&self, session_id: &str) -> StoreResult<u64> {
                let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                let session = Self::session_in(&mut tx, session_id).await?;
                let ordered = Self::order_writes(&mut tx, &session.project_id).await?;
                let revoked = Self::revoke_tokens(&mut tx, session_id).await?;
                Self::record_for(
                    &mut tx,
                    ordered,
                    EventKind::AgentSessionTokenRevoked,
                    Some(&session.project_id),
                    Some(&session.work_item_id),
                    session_id,
                    serde_json::json!({ "tokens": revoked }),
                )
                .await?;
                self.commit(tx).await?;
                Ok(revoked)
            }

            async fn mcp_token(&self, token_hash: &str) -> StoreResult<TokenState> {
                let row = sqlx::query(
                    "SELECT t.permissions, t.revoked_at, s.id, s.work_item_id, s.project_id, s.akh_id, s.status \
                     FROM mcp_tokens t JOIN agent_sessions s ON s.id = t.session_id WHERE t.token_hash = $1",
                )
                .bind(token_hash)
                .fetch_optional(&self.pool)
                .await?;
                let Some(row) = row else { return Ok(TokenState::Unknown) };
                let status: String = row.try_get("status")?;
                if stored::<SessionStatus>(&status)?.is_final() {
                    return Ok(TokenState::SessionEnded);
                }
                let revoked_at: Option<i64> = row.try_get("revoked_at")?;
                if revoked_at.is_some() {
                    return Ok(TokenState::Revoked);
                }
                let permissions: String = row.try_get("permissions")?;
                let names: Vec<String> = stored_json(&permissions)?;
                Ok(TokenState::Valid(McpScope {
                    session_id: row.try_get("id")?,
                    work_item_id: row.try_get("work_item_id")?,
                    project_id: row.try_get("project_id")?,
                    akh_id: row.try_get("akh_id")?,
                    permissions: names
                        .iter()
                        .filter_map(|name| Permission::from_str(name).ok())
                        .collect(),
                }))
            }

            async fn create_task(&self, session_id: &str, title: &str) -> StoreResult<Task> {
                let id = new_id();
                let now = now_micros();
                let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                let session = Self::live_session(&mut tx, session_id).await?;
                let ordered = Self::order_writes(&mut tx, &session.project_id).await?;
                sqlx::query(
                    "INSERT INTO tasks (id, session_id, work_item_id, title, status, note, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, 'pending', '', $5, $5)",
                )
                .bind(&id)
                .bind(session_id)
                .bind(&session.work_item_id)
                .bind(title)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                Self::record_for(
                    &mut tx,
                    ordered,
                    EventKind::TaskCreated,
                    Some(&session.project_id),
                    Some(&session.work_item_id),
                    &id,
                    serde_json::json!({ "session_id": session_id, "title": title }),
                )
                .await?;
                let task = Self::task_in(&mut tx, &id).await?;
                self.commit(tx).await?;
                Ok(task)
            }

            async fn get_task(&self, id: &str) -> StoreResult<Task> {
                let mut conn = self.pool.acquire().await?;
                Self::task_in(&mut conn, id).await
            }

            async fn list_tasks(&self, session_id: &str, page: &PageRequest) -> StoreResult<Page<Task>> {
                let mut conn = self.pool.acquire().await?;
                Self::session_in(&mut conn, session_id).await?;
                let rows = sqlx::query(concat!(task_select!(), " WHERE session_id = $1 AND id > $2 ORDER BY id LIMIT $3"))
                    .bind(session_id)
                    .bind(page.after.as_deref().unwrap_or(""))
                    .bind(page.fetch_limit())
                    .fetch_all(&mut *conn)
                    .await?;
                page_of(&rows, crate::backend::rows::task, page, |task| task.id.clone())
            }

            async fn update_task_status(&self, id: &str, status: TaskStatus, note: &str) -> StoreResult<Task> {
                let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                let task = Self::task_in(&mut tx, id).await?;
                let session = Self::live_session(&mut tx, &task.session_id).await?;
                let ordered = Self::order_writes(&mut tx, &session.project_id).await?;
                sqlx::query("UPDATE tasks SET status = $2, note = $3, updated_at = $4 WHERE id = $1")
                    .bind(id)
                    .bind(status.as_str())
                    .bind(note)
                    .bind(now_micros())
                    .execute(&mut *tx)
                    .await?;
                Self::record_for(
                    &mut tx,
                    ordered,
                    EventKind::TaskUpdated,
                    Some(&session.project_id),
                    Some(&session.work_item_id),
                    id,
                    serde_json::json!({ "session_id": task.session_id, "status": status.as_str() }),
                )
                .await?;
                let updated = Self::task_in(&mut tx, id).await?;
                self.commit(tx).await?;
                Ok(updated)
            }

            async fn set_agent_session_phase(
                &self,
                id: &str,
                phase_id: &str,
                skills: &[SkillRef],
            ) -> StoreResult<AgentSession> {
                let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                let session = Self::live_session(&mut tx, id).await?;
                let ordered = Self::order_writes(&mut tx, &session.project_id).await?;
                sqlx::query("UPDATE agent_sessions SET phase_id = $2, skills = $3, updated_at = $4 WHERE id = $1")
                    .bind(id)
                    .bind(phase_id)
                    .bind(to_json(&skills))
                    .bind(now_micros())
                    .execute(&mut *tx)
                    .await?;
                Self::record_for(
                    &mut tx,
                    ordered,
                    EventKind::AgentSessionPhase,
                    Some(&session.project_id),
                    Some(&session.work_item_id),
                    id,
                    serde_json::json!({ "phase_id": phase_id }),
                )
                .await?;
                let updated = Self::session_in(&mut tx, id).await?;
                self.commit(tx).await?;
                Ok(updated)
            }

            async fn create_session_login(&self, login: NewSessionLogin) -> StoreResult<SessionLogin> {
                let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                let session = Self::session_in(&mut tx, &login.session_id).await?;
                let ordered = Self::order_writes(&mut tx, &session.project_id).await?;
                sqlx::query(
                    "INSERT INTO session_logins (id, session_id, user_id, reason, created_at, expires_at, \
                     commands, bytes_in, bytes_out, peer) VALUES ($1, $2, $3, $4, $5, $6, '[]', 0, 0, '')",
                )
                .bind(&login.id)
                .bind(&login.session_id)
                .bind(&login.user_id)
                .bind(&login.reason)
                .bind(now_micros())
                .bind(login.expires_at)
                .execute(&mut *tx)
                .await?;
                Self::record_for(
                    &mut tx,
                    ordered,
                    EventKind::AgentSessionLoginIssued,
                    Some(&session.project_id),
                    Some(&session.work_item_id),
                    &session.id,
                    serde_json::json!({ "login_id": login.id, "user_id": login.user_id }),
                )
                .await?;
                let created = Self::login_in(&mut tx, &login.id).await?;
                self.commit(tx).await?;
                Ok(created)
            }

            async fn report_session_login(&self, report: LoginReport) -> StoreResult<SessionLogin> {
                let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                let current = Self::login_in(&mut tx, &report.id).await?;
                if current.ended_at.is_some() {
                    return Err(DomainError::failed_precondition(
                        reason::LOGIN_ENDED,
                        format!("login {} has ended", report.id),
                    ).into());
                }
                let session = Self::session_in(&mut tx, &current.session_id).await?;
                let ordered = Self::order_writes(&mut tx, &session.project_id).await?;
                let recorded: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM session_login_events WHERE login_id = $1",
                )
                .bind(&report.id)
                .fetch_one(&mut *tx)
                .await?;
                if report.first_event_seq > recorded || report.first_event_seq < 0 {
                    return Err(DomainError::failed_precondition(
                        reason::LOGIN_RECORD_GAP,
                        format!(
                            "login {} has {recorded} terminal events; a report from event {} \
                             would leave a gap",
                            report.id, report.first_event_seq
                        ),
                    ).into());
                }
                for (seq, event) in (report.first_event_seq..).zip(&report.events) {
                    if seq < recorded {
                        continue;
                    }
                    sqlx::query(
                        "INSERT INTO session_login_events (login_id, seq, offset_micros, input, data) \
                         VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(&report.id)
                    .bind(seq)
                    .bind(event.offset_micros)
                    .bind(i32::from(event.input))
                    .bind(&event.data)
                    .execute(&mut *tx)
                    .await?;
                }
                sqlx::query(
                    "UPDATE session_logins SET started_at = $2, ended_at = $3, commands = $4, bytes_in = $5, \
                     bytes_out = $6, exit_status = $7, peer = $8 WHERE id = $1",
                )
                .bind(&report.id)
                .bind(report.started_at)
                .bind(report.ended_at)
                .bind(to_json(&report.commands))
                .bind(report.bytes_in)
                .bind(report.bytes_out)
                .bind(report.exit_status)
                .bind(&report.peer)
                .execute(&mut *tx)
                .await?;
                // The audit trail marks when a shell opens and closes; the
                // lines in between are in the record.
                let kind = match (current.started_at, report.ended_at) {
                    (_, Some(_)) => Some(EventKind::AgentSessionLoginEnded),
                    (None, None) => Some(EventKind::AgentSessionLoginStarted),
                    (Some(_), None) => None,
                };
                if let Some(kind) = kind {
                    Self::record_for(
                        &mut tx,
                        ordered,
                        kind,
                        Some(&session.project_id),
                        Some(&session.work_item_id),
                        &session.id,
                        serde_json::json!({ "login_id": report.id, "user_id": current.user_id }),
                    )
                    .await?;
                }
                let updated = Self::login_in(&mut tx, &report.id).await?;
                self.commit(tx).await?;
                Ok(updated)
            }

            async fn login_recording(&self, session_id: &str, login_id: &str, page: &PageRequest) -> StoreResult<Page<TerminalEvent>> {
                self.recording_page(session_id, login_id, page).await
            }

            async fn list_session_logins(&self, session_id: &str, page: &PageRequest) -> StoreResult<Page<SessionLogin>> {
                let mut conn = self.pool.acquire().await?;
                Self::session_in(&mut conn, session_id).await?;
                // Login ids are random, so pages follow the issue time.
                let after = match page.after.as_deref() {
                    Some(id) => Self::login_in(&mut conn, id).await?.created_at,
                    None => i64::MIN,
                };
                let rows = sqlx::query(concat!(
                    login_select!(),
                    " WHERE session_id = $1 AND (created_at > $2 OR (created_at = $2 AND id > $3)) \
                     ORDER BY created_at, id LIMIT $4"
                ))
                .bind(session_id)
                .bind(after)
                .bind(page.after.as_deref().unwrap_or(""))
                .bind(page.fetch_limit())
                .fetch_all(&mut *conn)
                .await?;
                page_of(&rows, crate::backend::rows::login, page, |login| login.id.clone())
            }
        }

        impl $store {
            async fn recording_page(
                &self,
                session_id: &str,
                login_id: &str,
                page: &PageRequest,
            ) -> StoreResult<Page<TerminalEvent>> {
                let mut conn = self.pool.acquire().await?;
                if Self::login_in(&mut conn, login_id).await?.session_id != session_id {
                    return Err(login_not_found(login_id).into());
                }
                let after = match page.after {
                    Some(_) => page.after_number()?,
                    None => -1,
                };
                let rows = sqlx::query(
                    "SELECT seq, offset_micros, input, data FROM session_login_events \
                     WHERE login_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                )
                .bind(login_id)
                .bind(after)
                .bind(page.fetch_limit())
                .fetch_all(&mut *conn)
                .await?;
                let mut items = Vec::with_capacity(rows.len());
                let mut seqs = Vec::with_capacity(rows.len());
                for row in &rows {
                    let input: i32 = row.try_get("input")?;
                    seqs.push(row.try_get::<i64, _>("seq")?);
                    items.push(TerminalEvent {
                        offset_micros: row.try_get("offset_micros")?,
                        input: input != 0,
                        data: row.try_get("data")?,
                    });
                }
                let mut keyed: Vec<(i64, TerminalEvent)> = seqs.into_iter().zip(items).collect();
                let next_page_token = page.finish(&mut keyed, |(seq, _)| seq.to_string());
                Ok(Page {
                    items: keyed.into_iter().map(|(_, event)| event).collect(),
                    next_page_token,
                })
            }

            async fn login_in(
                conn: &mut <$db as sqlx::Database>::Connection,
                id: &str,
            ) -> StoreResult<SessionLogin> {
                let sql = concat!(login_select!(), " WHERE id = $1");
                Self::one_by_id(conn, sql, id, crate::backend::rows::login, || login_not_found(id)).await
            }

            /// Marks a session's live tokens revoked; returns how many.
            async fn revoke_tokens(
                conn: &mut <$db as sqlx::Database>::Connection,
                session_id: &str,
            ) -> StoreResult<u64> {
                Ok(sqlx::query(
                    "UPDATE mcp_tokens SET revoked_at = $2 WHERE session_id = $1 AND revoked_at IS NULL",
                )
                .bind(session_id)
                .bind(now_micros())
                .execute(&mut *conn)
                .await?
                .rows_affected())
            }

            async fn session_in(
                conn: &mut <$db as sqlx::Database>::Connection,
                id: &str,
            ) -> StoreResult<AgentSession> {
                let sql = concat!(session_select!(), " WHERE id = $1");
                Self::one_by_id(conn, sql, id, crate::backend::rows::session, || session_not_found(id)).await
            }

            /// The session, with its project locked for writing, if it has
            /// not ended.
            async fn live_session(
                conn: &mut <$db as sqlx::Database>::Connection,
                id: &str,
            ) -> StoreResult<AgentSession> {
                let project_id = Self::session_in(&mut *conn, id).await?.project_id;
                Self::writable_project(&mut *conn, &project_id).await?;
                let session = Self::session_in(&mut *conn, id).await?;
                if session.status.is_final() {
                    return Err(session_ended(&session).into());
                }
                Ok(session)
            }

            async fn task_in(
                conn: &mut <$db as sqlx::Database>::Connection,
                id: &str,
            ) -> StoreResult<Task> {
                let sql = concat!(task_select!(), " WHERE id = $1");
                Self::one_by_id(conn, sql, id, crate::backend::rows::task, || task_not_found(id)).await
            }
        }
    };
}

agent_sql!(PostgresStore, sqlx::Postgres);
agent_sql!(SqliteStore, sqlx::Sqlite);
