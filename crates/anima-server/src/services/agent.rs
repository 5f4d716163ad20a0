//! AgentSessionService, the server half: sessions and tasks, started and
//! stopped through an [`AgentProvider`], and their live status stream.

use std::sync::Arc;

use anima_core::{
    DomainError,
    agent::{
        AgentSession, DEFAULT_MCP_PERMISSIONS, LoginReport, MAX_LOGIN_REASON_CHARS,
        MAX_TASK_NOTE_CHARS, NewSession, NewSessionLogin, SessionStatus, Task,
    },
    error::reason,
    event::Subject,
    id::parse_id,
    model::Event,
    paging::PageRequest,
    validate,
    workflow::SkillRef,
};
use anima_db::{SessionChange, SessionFilter, Store};
use anima_proto::convert;
use anima_proto::v1::{
    self as pb, agent_audit_service_server::AgentAuditService,
    agent_session_service_server::AgentSessionService,
};
use tokio_stream::StreamExt;

use super::{ResponseStream, caller_id, grpc_service, optional_id};
use crate::{
    agents::{AgentProvider, ProvisionRequest},
    auth::token_hash,
    authz::{RequestContext, require_project},
    error::to_status,
    events::{EventHub, Reader, Replay, StreamItem},
    secrets::SecretStores,
    zones::NetworkZones,
};

/// The bundles of `skills`, newest versions where unpinned. A pinned
/// version that is not published refuses (`SKILL_NOT_FOUND`); an unpinned
/// skill nobody published yet is left out, so the built-in workflows work
/// on a server with no skills.
pub async fn skill_bundles(
    store: &Arc<dyn Store>,
    skills: &[SkillRef],
) -> Result<Vec<pb::SkillBundle>, DomainError> {
    let mut bundles = Vec::with_capacity(skills.len());
    for wanted in skills {
        let skill = match store.get_skill(&wanted.name, &wanted.version).await {
            Ok(skill) => skill,
            Err(err) if err.reason == reason::SKILL_NOT_FOUND && wanted.version.is_empty() => {
                tracing::warn!(skill = %wanted.name, "no version of this skill is published");
                continue;
            }
            Err(err) if err.reason == reason::SKILL_NOT_FOUND => {
                return Err(DomainError::failed_precondition(
                    reason::SKILL_NOT_FOUND,
                    format!(
                        "the phase needs skill {:?} version {:?}, which is not published",
                        wanted.name, wanted.version
                    ),
                ));
            }
            Err(err) => return Err(err.into()),
        };
        bundles.push(pb::SkillBundle {
            r#ref: Some(pb::SkillRef {
                name: skill.name,
                version: skill.version,
            }),
            files: skill
                .files
                .into_iter()
                .map(|file| (file.path, file.content))
                .collect(),
            manifest_json: skill.manifest,
        });
    }
    Ok(bundles)
}

/// The AgentSessionService implementation.
#[derive(Clone)]
pub struct AgentSessionApi {
    store: Arc<dyn Store>,
    hub: Arc<EventHub>,
    provider: Option<Arc<dyn AgentProvider>>,
    /// Where sessions' secret values are read from.
    secrets: Arc<SecretStores>,
    /// What sessions' network zones allow.
    zones: Arc<NetworkZones>,
}

impl AgentSessionApi {
    /// Builds the service; without a provider, sessions cannot start.
    pub fn new(
        store: Arc<dyn Store>,
        hub: Arc<EventHub>,
        provider: Option<Arc<dyn AgentProvider>>,
        secrets: Arc<SecretStores>,
        zones: Arc<NetworkZones>,
    ) -> Self {
        Self {
            store,
            hub,
            provider,
            secrets,
            zones,
        }
    }

    async fn authorized_session(
        &self,
        context: &RequestContext,
        raw_id: &str,
    ) -> Result<AgentSession, DomainError> {
        let id = parse_id(raw_id, "session id")?;
        let session = self.store.get_agent_session(&id).await?;
        require_project(&self.store, context, &session.project_id).await?;
        Ok(session)
    }

    async fn list_sessions(
        &self,
        context: &RequestContext,
        request: pb::ListSessionsRequest,
    ) -> Result<pb::ListSessionsResponse, DomainError> {
        let work_item_id = optional_id(&request.work_item_id, "work_item_id")?;
        let project_id = match (
            &work_item_id,
            optional_id(&request.project_id, "project_id")?,
        ) {
            (Some(item), _) => self.store.get_work_item(item).await?.project_id,
            (None, Some(project)) => project,
            (None, None) => {
                return Err(DomainError::invalid_argument(
                    reason::FIELD_REQUIRED,
                    "name a work_item_id or a project_id",
                ));
            }
        };
        require_project(&self.store, context, &project_id).await?;
        let filter = SessionFilter {
            work_item_id,
            project_id: Some(project_id),
            active_only: false,
        };
        let query = format!(
            "sessions:{}:{}",
            filter.work_item_id.as_deref().unwrap_or("*"),
            filter.project_id.as_deref().unwrap_or("*")
        );
        let page = PageRequest::parse(request.page_size, &request.page_token, &query)?;
        let page = self.store.list_agent_sessions(&filter, &page).await?;
        Ok(pb::ListSessionsResponse {
            sessions: page.items.into_iter().map(pb::AgentSession::from).collect(),
            next_page_token: page.next_page_token,
        })
    }

    async fn get_session(
        &self,
        context: &RequestContext,
        request: pb::GetSessionRequest,
    ) -> Result<pb::AgentSession, DomainError> {
        Ok(pb::AgentSession::from(
            self.authorized_session(context, &request.id).await?,
        ))
    }

    /// Records the session with a fresh MCP token, hands both to the
    /// provider, and moves the session to running (or failed).
    async fn start_session(
        &self,
        context: &RequestContext,
        request: pb::StartSessionRequest,
    ) -> Result<pb::AgentSession, DomainError> {
        let work_item_id = parse_id(&request.work_item_id, "work_item_id")?;
        let akh_id = parse_id(&request.akh_id, "akh_id")?;
        let item = self.store.get_work_item(&work_item_id).await?;
        require_project(&self.store, context, &item.project_id).await?;
        let akh = self.store.get_akh(&akh_id).await?;
        let Some(provider) = &self.provider else {
            return Err(DomainError::failed_precondition(
                reason::NO_AGENT_PROVIDER,
                "no agent provider is configured on this server (set [agent] provider in anima.toml)",
            ));
        };
        // Refused before anything is recorded when a pinned skill is missing.
        let workflow = self.store.get_workflow(&item.workflow_id).await?;
        let skills = skill_bundles(
            &self.store,
            workflow
                .phase(&item.phase_id)
                .map(|phase| phase.required_skills.as_slice())
                .unwrap_or_default(),
        )
        .await?;
        // Likewise when a secret cannot be read; the values go to the
        // provider and nowhere else.
        let secrets = self.secrets.values(&item.capabilities).await?;
        let zones = self.zones.for_session(&item.capabilities)?;
        let mcp_token = anima_core::secret::new_token();
        let session = self
            .store
            .create_agent_session(NewSession {
                work_item_id,
                akh_id,
                keep_after_stop: request.keep_after_stop,
                token_hash: token_hash(&mcp_token),
                permissions: DEFAULT_MCP_PERMISSIONS.to_vec(),
            })
            .await?;
        let provisioned = provider
            .provision(ProvisionRequest {
                session: session.clone(),
                mcp_token,
                akh_name: akh.name,
                skills,
                secrets,
                zones,
            })
            .await;
        match provisioned {
            Ok(vm_id) => {
                let running = self
                    .store
                    .set_agent_session_status(
                        &session.id,
                        SessionStatus::Running,
                        SessionChange {
                            vm_id: Some(&vm_id),
                            ..SessionChange::default()
                        },
                    )
                    .await?;
                Ok(pb::AgentSession::from(running))
            }
            Err(err) => {
                self.store
                    .set_agent_session_status(
                        &session.id,
                        SessionStatus::Failed,
                        SessionChange {
                            error: Some(&err.message),
                            ..SessionChange::default()
                        },
                    )
                    .await?;
                Err(err)
            }
        }
    }

    /// Ends a session: its token stops working at once; its agent is
    /// stopped and its sandbox destroyed, all but the workspace when it was
    /// started with `keep_after_stop`.
    async fn stop_session(
        &self,
        context: &RequestContext,
        request: pb::StopSessionRequest,
    ) -> Result<pb::AgentSession, DomainError> {
        let session = self.authorized_session(context, &request.id).await?;
        if session.status.is_final() {
            return Err(DomainError::failed_precondition(
                reason::SESSION_ENDED,
                format!("the agent session has {}", session.status.as_str()),
            ));
        }
        let stopped = self
            .store
            .set_agent_session_status(
                &session.id,
                SessionStatus::Completed,
                SessionChange::default(),
            )
            .await?;
        forget_agent_session(context, &session.id);
        // Kept or not, the agent stops; keeping spares only the workspace.
        if let Some(provider) = &self.provider
            && let Err(err) = provider.destroy(&stopped).await
        {
            // The session is over either way; the sandbox is the
            // provider's to clean up.
            tracing::warn!(session = %stopped.id, %err, "destroying the sandbox failed");
        }
        Ok(pb::AgentSession::from(stopped))
    }

    /// Revokes the session's MCP token; the next MCP request fails.
    async fn revoke_session_token(
        &self,
        context: &RequestContext,
        request: pb::RevokeSessionTokenRequest,
    ) -> Result<pb::RevokeSessionTokenResponse, DomainError> {
        let session = self.authorized_session(context, &request.id).await?;
        let revoked = self.store.revoke_agent_tokens(&session.id).await?;
        forget_agent_session(context, &session.id);
        Ok(pb::RevokeSessionTokenResponse {
            revoked: i64::try_from(revoked).unwrap_or(i64::MAX),
        })
    }

    /// One-time SSH credentials into the session's sandbox for the caller,
    /// recorded (who, why, until when) before they are handed out.
    async fn login_session(
        &self,
        context: &RequestContext,
        request: pb::LoginSessionRequest,
    ) -> Result<pb::LoginSessionResponse, DomainError> {
        let session = self.authorized_session(context, &request.id).await?;
        validate::max_chars("reason", &request.reason, MAX_LOGIN_REASON_CHARS)?;
        let user_id = caller_id(context.caller.as_ref())?;
        let Some(provider) = &self.provider else {
            return Err(DomainError::failed_precondition(
                reason::NO_AGENT_PROVIDER,
                "no agent provider is configured on this server (set [agent] provider in anima.toml)",
            ));
        };
        if session.vm_id.is_empty() {
            return Err(DomainError::not_found(
                reason::VM_NOT_FOUND,
                "the session has no sandbox to log into",
            ));
        }
        let credentials = provider.login_credentials(&session.vm_id, &user_id).await?;
        let expire_time = credentials.expire_time.ok_or_else(|| {
            DomainError::internal("the agent provider gave credentials without an expiry")
        })?;
        self.store
            .create_session_login(NewSessionLogin {
                id: credentials.username.clone(),
                session_id: session.id,
                user_id,
                reason: request.reason,
                expires_at: convert::micros(&expire_time),
            })
            .await?;
        Ok(pb::LoginSessionResponse {
            host: credentials.host,
            port: credentials.port,
            username: credentials.username,
            private_key_pem: credentials.private_key_pem,
            command: credentials.command,
            expire_time: Some(expire_time),
            host_public_key: credentials.host_public_key,
        })
    }

    async fn list_session_logins(
        &self,
        context: &RequestContext,
        request: pb::ListSessionLoginsRequest,
    ) -> Result<pb::ListSessionLoginsResponse, DomainError> {
        let session = self
            .authorized_session(context, &request.session_id)
            .await?;
        let page = PageRequest::parse(
            request.page_size,
            &request.page_token,
            &format!("logins:{}", session.id),
        )?;
        let page = self.store.list_session_logins(&session.id, &page).await?;
        Ok(pb::ListSessionLoginsResponse {
            logins: page.items.into_iter().map(pb::SessionLogin::from).collect(),
            next_page_token: page.next_page_token,
        })
    }

    async fn get_login_recording(
        &self,
        context: &RequestContext,
        request: pb::GetLoginRecordingRequest,
    ) -> Result<pb::LoginRecording, DomainError> {
        let session = self
            .authorized_session(context, &request.session_id)
            .await?;
        let page = PageRequest::parse(
            request.page_size,
            &request.page_token,
            &format!("recording:{}:{}", session.id, request.login_id),
        )?;
        let page = self
            .store
            .login_recording(&session.id, &request.login_id, &page)
            .await?;
        Ok(pb::LoginRecording {
            events: page
                .items
                .into_iter()
                .map(pb::TerminalEvent::from)
                .collect(),
            next_page_token: page.next_page_token,
        })
    }

    async fn list_tasks(
        &self,
        context: &RequestContext,
        request: pb::ListTasksRequest,
    ) -> Result<pb::ListTasksResponse, DomainError> {
        let session = self
            .authorized_session(context, &request.session_id)
            .await?;
        let page = PageRequest::parse(
            request.page_size,
            &request.page_token,
            &format!("tasks:{}", session.id),
        )?;
        let page = self.store.list_tasks(&session.id, &page).await?;
        Ok(pb::ListTasksResponse {
            tasks: page.items.into_iter().map(pb::Task::from).collect(),
            next_page_token: page.next_page_token,
        })
    }

    async fn authorized_task(
        &self,
        context: &RequestContext,
        raw_id: &str,
    ) -> Result<Task, DomainError> {
        let id = parse_id(raw_id, "task id")?;
        let task = self.store.get_task(&id).await?;
        self.authorized_session(context, &task.session_id).await?;
        Ok(task)
    }

    async fn get_task(
        &self,
        context: &RequestContext,
        request: pb::GetTaskRequest,
    ) -> Result<pb::Task, DomainError> {
        Ok(pb::Task::from(
            self.authorized_task(context, &request.id).await?,
        ))
    }

    async fn update_task_status(
        &self,
        context: &RequestContext,
        request: pb::UpdateTaskStatusRequest,
    ) -> Result<pb::Task, DomainError> {
        let status = convert::parse_task_status(request.status)?.ok_or_else(|| {
            DomainError::invalid_argument(reason::FIELD_REQUIRED, "status must be set")
        })?;
        validate::max_chars("note", &request.note, MAX_TASK_NOTE_CHARS)?;
        let task = self.authorized_task(context, &request.id).await?;
        Ok(pb::Task::from(
            self.store
                .update_task_status(&task.id, status, &request.note)
                .await?,
        ))
    }

    /// The session's status changes and task changes, replayed from the
    /// cursor and then live.
    async fn stream_session_status(
        &self,
        context: &RequestContext,
        request: pb::StreamSessionStatusRequest,
    ) -> Result<ResponseStream<pb::SessionStatusEvent>, DomainError> {
        let session = self
            .authorized_session(context, &request.session_id)
            .await?;
        let after = self.hub.check_cursor(request.after_event_id).await?;
        let reader = Reader::of(
            context,
            Some((session.project_id, anima_core::Permission::AgentRead)),
        );
        let session_id = session.id;
        // Session and task events all name the session's work item.
        let replay = Replay::WorkItem(session.work_item_id);
        let keep = {
            let session_id = session_id.clone();
            move |event: Arc<Event>| {
                let concerns = concerns_session(&event, &session_id);
                async move { Ok(concerns) }
            }
        };
        let store = self.store.clone();
        let stream = self
            .hub
            .follow(after, replay, reader, keep)?
            .then(move |item| {
                let store = store.clone();
                async move { session_event(&store, item?).await }
            })
            .map(|item| item.map_err(to_status));
        Ok(Box::pin(stream))
    }
}

/// Whether an event is about a session or one of its tasks.
fn concerns_session(event: &Event, session_id: &str) -> bool {
    match event.kind.subject() {
        Subject::AgentSession => event.entity_id == session_id,
        Subject::Task => serde_json::from_str::<serde_json::Value>(&event.payload)
            .is_ok_and(|payload| payload["session_id"] == session_id),
        _ => false,
    }
}

/// A stream item on the wire, with the session or task as it is now.
async fn session_event(
    store: &Arc<dyn Store>,
    item: StreamItem,
) -> Result<pb::SessionStatusEvent, DomainError> {
    use pb::session_status_event::Kind;
    Ok(match item {
        StreamItem::Event(event) => pb::SessionStatusEvent {
            event_id: event.id,
            kind: Some(if event.kind.subject() == Subject::Task {
                Kind::Task(pb::Task::from(store.get_task(&event.entity_id).await?))
            } else {
                Kind::Session(pb::AgentSession::from(
                    store.get_agent_session(&event.entity_id).await?,
                ))
            }),
        },
        StreamItem::Heartbeat { last } => pb::SessionStatusEvent {
            event_id: last.id,
            kind: Some(Kind::Heartbeat(convert::heartbeat(last.id))),
        },
    })
}

grpc_service!(AgentSessionApi: AgentSessionService {
    list_sessions(pb::ListSessionsRequest) -> pb::ListSessionsResponse;
    get_session(pb::GetSessionRequest) -> pb::AgentSession;
    start_session(pb::StartSessionRequest) -> pb::AgentSession;
    stop_session(pb::StopSessionRequest) -> pb::AgentSession;
    revoke_session_token(pb::RevokeSessionTokenRequest) -> pb::RevokeSessionTokenResponse;
    login_session(pb::LoginSessionRequest) -> pb::LoginSessionResponse;
    list_session_logins(pb::ListSessionLoginsRequest) -> pb::ListSessionLoginsResponse;
    get_login_recording(pb::GetLoginRecordingRequest) -> pb::LoginRecording;
    list_tasks(pb::ListTasksRequest) -> pb::ListTasksResponse;
    get_task(pb::GetTaskRequest) -> pb::Task;
    update_task_status(pb::UpdateTaskStatusRequest) -> pb::Task;
    stream_session_status(pb::StreamSessionStatusRequest) -> ResponseStream<pb::SessionStatusEvent>;
});

/// AgentAuditService: the provider's reports of login shells, stored as
/// the server's audit log.
#[derive(Clone)]
pub struct AgentAuditApi {
    store: Arc<dyn Store>,
}

impl AgentAuditApi {
    /// Builds the service.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    async fn report_login(
        &self,
        _context: &RequestContext,
        report: pb::LoginReport,
    ) -> Result<pb::ReportLoginResponse, DomainError> {
        let started_at = report.start_time.as_ref().ok_or_else(|| {
            DomainError::invalid_argument(reason::FIELD_REQUIRED, "start_time must be set")
        })?;
        let events = report
            .events
            .into_iter()
            .map(convert::parse_terminal_event)
            .collect::<Result<Vec<_>, _>>()?;
        self.store
            .report_session_login(LoginReport {
                id: report.login_id,
                started_at: convert::micros(started_at),
                ended_at: report.end_time.as_ref().map(convert::micros),
                commands: report.commands,
                events,
                first_event_seq: report.first_event_seq,
                bytes_in: report.bytes_in,
                bytes_out: report.bytes_out,
                exit_status: report.exit_status,
                peer: report.peer,
            })
            .await?;
        Ok(pb::ReportLoginResponse {})
    }
}

grpc_service!(AgentAuditApi: AgentAuditService {
    report_login(pb::LoginReport) -> pb::ReportLoginResponse;
});

/// Tells this instance's MCP token cache that a session's tokens stopped
/// working, before the RPC returns (other instances hear of it through the
/// event).
fn forget_agent_session(context: &RequestContext, session_id: &str) {
    if let Some(cache) = &context.cache {
        cache.forget_agent_session(session_id);
    }
}
