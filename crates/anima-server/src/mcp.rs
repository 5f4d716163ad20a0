//! The MCP endpoint for agents in sandboxes: Streamable HTTP at `/mcp` on
//! the server's listener, served by `rmcp`.
//!
//! Every HTTP request carries the session's bearer token; [`authenticate`]
//! looks it up in the store each time (so revocation and the end of the
//! session take effect on the very next request) and attaches the token's
//! [`McpScope`]. Each tool then acts only on that scope's work item and
//! session, and writes as the session's Akh.

use std::sync::Arc;

use anima_core::{
    DomainError, ErrorCode, Permission,
    agent::{MAX_TASK_NOTE_CHARS, McpScope, TaskStatus},
    error::reason,
    planning::Actor,
    thread::{self as rules, MessageKind, NewDecision, NewMessage},
    validate,
};
use anima_db::{Store, ThreadPage, TokenState};
use axum::{
    Router,
    extract::{Request, State},
    http::{StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use rmcp::{
    ErrorData, RoleServer, ServerHandler,
    handler::server::{router::tool::ToolRouter, tool::Extension, wrapper::Parameters},
    model::{
        CallToolResult, ContentBlock, ListResourcesResult, PaginatedRequestParams,
        ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, Resource,
        ResourceContents, ServerCapabilities, ServerConfig,
    },
    service::RequestContext,
    tool, tool_handler, tool_router,
    transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
    },
};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    auth::token_hash,
    limits::{Metered, RateLimiter},
};

/// Most messages one `get_thread` call returns.
const MAX_THREAD_PAGE: u32 = 200;

/// The `/mcp` route: token check, then the MCP service.
/// `limits` meters each session's writes (`mcp_writes_per_minute`).
pub fn router(store: Arc<dyn Store>, limits: RateLimiter) -> Router {
    let tools_store = store.clone();
    // Bearer tokens, not the Host header, protect this endpoint, and agents
    // reach it through whatever name their sandbox resolves.
    // Stateless: any server instance can answer any request.
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .disable_allowed_hosts();
    let service: StreamableHttpService<AgentTools, LocalSessionManager> =
        StreamableHttpService::new(
            move || Ok(AgentTools::new(tools_store.clone(), limits.clone())),
            Default::default(),
            config,
        );
    Router::new()
        .nest_service("/mcp", service)
        .layer(axum::middleware::from_fn_with_state(store, authenticate))
}

/// Why a request to `/mcp` was refused, as JSON with a stable reason.
fn refuse(status: StatusCode, reason: &str, message: &str) -> Response {
    (
        status,
        [(header::WWW_AUTHENTICATE, "Bearer error=\"invalid_token\"")],
        axum::Json(json!({ "error": { "reason": reason, "message": message } })),
    )
        .into_response()
}

/// Looks the bearer token up on every request and attaches its scope.
/// Tokens are never logged.
pub async fn authenticate(
    State(store): State<Arc<dyn Store>>,
    mut request: Request,
    next: Next,
) -> Response {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|token| !token.is_empty());
    let Some(token) = token else {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "MCP_TOKEN_MISSING",
            "send the agent session's token as Authorization: Bearer <token>",
        );
    };
    match store.mcp_token(&token_hash(token)).await {
        Ok(TokenState::Valid(scope)) => {
            request.extensions_mut().insert(scope);
            next.run(request).await
        }
        Ok(TokenState::Unknown) => refuse(
            StatusCode::UNAUTHORIZED,
            "MCP_TOKEN_UNKNOWN",
            "this token was never issued",
        ),
        Ok(TokenState::Revoked) => refuse(
            StatusCode::UNAUTHORIZED,
            "MCP_TOKEN_REVOKED",
            "this token has been revoked",
        ),
        Ok(TokenState::SessionEnded) => refuse(
            StatusCode::UNAUTHORIZED,
            reason::SESSION_ENDED,
            "the agent session of this token has ended",
        ),
        Err(err) => refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            err.reason,
            "cannot check the token right now",
        ),
    }
}

/// A domain error as an MCP error that says what is wrong.
fn mcp_error(err: impl Into<DomainError>) -> ErrorData {
    let err = err.into();
    let data = Some(json!({ "reason": err.reason }));
    let message = format!("{} ({})", err.message, err.reason);
    match err.code {
        ErrorCode::InvalidArgument => ErrorData::invalid_params(message, data),
        ErrorCode::Internal => {
            tracing::error!(error = %err.message, "internal error in an MCP tool");
            ErrorData::internal_error("internal error; see the server log", data)
        }
        _ => ErrorData::invalid_request(message, data),
    }
}

fn out_of_scope() -> DomainError {
    DomainError::new(
        ErrorCode::PermissionDenied,
        reason::OUT_OF_SCOPE,
        "this session's token is limited to its own work item",
    )
}

/// A tool's outcome on the wire: its JSON as text, or an MCP error.
fn reply(result: Result<Value, DomainError>) -> Result<CallToolResult, ErrorData> {
    result
        .map(|value| {
            CallToolResult::success(vec![ContentBlock::text(
                serde_json::to_string_pretty(&value).unwrap_or_default(),
            )])
        })
        .map_err(mcp_error)
}

/// Arguments naming the work item; optional, since a token has exactly one.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkItemArgs {
    /// The work item's id or key (e.g. WI-12); must be the session's own.
    pub work_item: Option<String>,
}

/// Arguments of `get_thread`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ThreadArgs {
    /// The work item's id or key; must be the session's own.
    pub work_item: Option<String>,
    /// Messages after this sequence number (0 or absent: from the start).
    pub after_sequence: Option<i64>,
    /// How many messages (1 to 200, default 50).
    pub page_size: Option<u32>,
}

/// Arguments of `post_message`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PostMessageArgs {
    /// The message, at most 256 KiB.
    pub body: String,
    /// The work item's id or key; must be the session's own.
    pub work_item: Option<String>,
}

/// Arguments of `create_task`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTaskArgs {
    /// What the task is, at most 200 characters.
    pub title: String,
}

/// A task status an agent may set.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatusArg {
    /// Not started.
    Pending,
    /// Being worked on.
    InProgress,
    /// Finished.
    Done,
    /// Given up.
    Failed,
}

/// Arguments of `update_task_status`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTaskArgs {
    /// The task's id.
    pub task_id: String,
    /// Its new status.
    pub status: TaskStatusArg,
    /// A short note, at most 2,000 characters.
    pub note: Option<String>,
}

/// Arguments of `request_human_decision`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionArgs {
    /// What a human must decide.
    pub question: String,
    /// The single input needed, e.g. "Target database".
    pub input_label: String,
    /// Allowed answers; absent means free text.
    pub choices: Option<Vec<String>>,
}

/// The tools an agent session may call.
#[derive(Clone)]
pub struct AgentTools {
    store: Arc<dyn Store>,
    limits: RateLimiter,
    tool_router: ToolRouter<Self>,
}

/// The scope the middleware attached.
fn scope_of(parts: &axum::http::request::Parts) -> Result<McpScope, ErrorData> {
    parts.extensions.get::<McpScope>().cloned().ok_or_else(|| {
        ErrorData::internal_error("request reached a tool without its token check", None)
    })
}

impl AgentTools {
    fn new(store: Arc<dyn Store>, limits: RateLimiter) -> Self {
        Self {
            store,
            limits,
            tool_router: Self::tool_router(),
        }
    }

    /// Counts one write of the session, or refuses it.
    async fn meter_write(&self, scope: &McpScope) -> Result<(), DomainError> {
        self.limits.take(Metered::McpWrite, &scope.session_id).await
    }

    /// Refuses a named work item other than the token's own, saying the
    /// same whether or not that other item exists.
    async fn confine(&self, scope: &McpScope, named: Option<&str>) -> Result<(), DomainError> {
        let Some(named) = named else { return Ok(()) };
        if named == scope.work_item_id {
            return Ok(());
        }
        let own = self.store.get_work_item(&scope.work_item_id).await?;
        if named.eq_ignore_ascii_case(&own.key.to_string()) {
            Ok(())
        } else {
            Err(out_of_scope())
        }
    }

    fn akh(scope: &McpScope) -> Actor {
        Actor::Akh {
            akh_id: scope.akh_id.clone(),
            session_id: scope.session_id.clone(),
            service: String::new(),
        }
    }
}

#[tool_router]
impl AgentTools {
    /// The work item: title, description, status, phase, capabilities, plan.
    #[tool(
        description = "Read the session's work item: title, description, status, workflow phase, capabilities and plan."
    )]
    async fn get_work_item(
        &self,
        Extension(parts): Extension<axum::http::request::Parts>,
        Parameters(args): Parameters<WorkItemArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let scope = scope_of(&parts)?;
        let result: Result<Value, DomainError> = async {
            scope.require(Permission::WorkItemRead)?;
            self.confine(&scope, args.work_item.as_deref()).await?;
            let item = self.store.get_work_item(&scope.work_item_id).await?;
            let plan = match &item.plan_id {
                Some(plan_id) => {
                    let plan = self.store.get_plan(plan_id).await?;
                    json!({ "id": plan.id, "title": plan.title, "share_done": plan.progress.share_done() })
                }
                None => Value::Null,
            };
            Ok(json!({
                "id": item.id,
                "key": item.key.to_string(),
                "title": item.title,
                "description": item.description,
                "description_revision_id": item.description_revision_id,
                "status": item.status.as_str(),
                "priority": item.priority.as_str(),
                "workflow_id": item.workflow_id,
                "phase": item.phase_id,
                "capabilities": serde_json::to_value(&item.capabilities).unwrap_or_default(),
                "plan": plan,
            }))
        }
        .await;
        reply(result)
    }

    /// Messages of the work item's thread, oldest first.
    #[tool(description = "Read the work item's discussion thread, oldest first, a page at a time.")]
    async fn get_thread(
        &self,
        Extension(parts): Extension<axum::http::request::Parts>,
        Parameters(args): Parameters<ThreadArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let scope = scope_of(&parts)?;
        let result: Result<Value, DomainError> = async {
            scope.require(Permission::ThreadRead)?;
            self.confine(&scope, args.work_item.as_deref()).await?;
            let size = args.page_size.unwrap_or(50);
            if size == 0 || size > MAX_THREAD_PAGE {
                return Err(DomainError::invalid_argument(
                    reason::INVALID_PAGE_SIZE,
                    format!("page_size must be 1 to {MAX_THREAD_PAGE}"),
                ));
            }
            let after = args.after_sequence.unwrap_or(0).max(0);
            let mut messages = self
                .store
                .list_messages(
                    &scope.work_item_id,
                    ThreadPage::After(after),
                    i64::from(size) + 1,
                )
                .await?;
            let more = messages.len() > size as usize;
            messages.truncate(size as usize);
            let next = if more {
                messages
                    .last()
                    .map(|m| json!(m.sequence))
                    .unwrap_or(Value::Null)
            } else {
                Value::Null
            };
            Ok(json!({
                "messages": messages.iter().map(|m| json!({
                    "sequence": m.sequence,
                    "kind": serde_json::to_value(m.kind).unwrap_or_default(),
                    "author": serde_json::to_value(&m.author).unwrap_or_default(),
                    "body": m.body,
                    "time_micros": m.created_at,
                })).collect::<Vec<_>>(),
                "next_after_sequence": next,
            }))
        }
        .await;
        reply(result)
    }

    /// The current phase, its skills, and the next phase.
    #[tool(
        description = "Read the work item's current workflow phase, the skills it requires, and the next phase."
    )]
    async fn get_workflow_phase(
        &self,
        Extension(parts): Extension<axum::http::request::Parts>,
        Parameters(args): Parameters<WorkItemArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let scope = scope_of(&parts)?;
        let result: Result<Value, DomainError> = async {
            scope.require(Permission::WorkItemRead)?;
            self.confine(&scope, args.work_item.as_deref()).await?;
            let item = self.store.get_work_item(&scope.work_item_id).await?;
            let workflow = self.store.get_workflow(&item.workflow_id).await?;
            let index = workflow.phases.iter().position(|p| p.id == item.phase_id);
            let phase = |index: Option<usize>| {
                index
                    .and_then(|i| workflow.phases.get(i))
                    .map_or(Value::Null, |phase| {
                        json!({
                            "id": phase.id,
                            "name": phase.name,
                            "required_skills": phase.required_skills.iter().map(|s| json!({
                                "name": s.name, "version": s.version,
                            })).collect::<Vec<_>>(),
                        })
                    })
            };
            Ok(json!({
                "workflow": workflow.name,
                "phase": phase(index),
                "next_phase": phase(index.map(|i| i + 1)),
            }))
        }
        .await;
        reply(result)
    }

    /// Posts to the thread as the session's Akh.
    #[tool(
        description = "Post a message to the work item's thread, as this session's Akh persona."
    )]
    async fn post_message(
        &self,
        Extension(parts): Extension<axum::http::request::Parts>,
        Parameters(args): Parameters<PostMessageArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let scope = scope_of(&parts)?;
        let result: Result<Value, DomainError> = async {
            scope.require(Permission::ThreadPost)?;
            self.confine(&scope, args.work_item.as_deref()).await?;
            rules::body(&args.body)?;
            self.meter_write(&scope).await?;
            let message = self
                .store
                .post_message(NewMessage {
                    work_item_id: scope.work_item_id.clone(),
                    kind: MessageKind::Akh,
                    author: Self::akh(&scope),
                    body: args.body,
                    email: None,
                    attachments: Vec::new(),
                    idempotency_key: None,
                })
                .await?;
            Ok(json!({ "id": message.id, "sequence": message.sequence }))
        }
        .await;
        reply(result)
    }

    /// The session's tasks.
    #[tool(description = "List this session's tasks.")]
    async fn list_tasks(
        &self,
        Extension(parts): Extension<axum::http::request::Parts>,
    ) -> Result<CallToolResult, ErrorData> {
        let scope = scope_of(&parts)?;
        let result: Result<Value, DomainError> = async {
            scope.require(Permission::TaskUpdate)?;
            let page = anima_core::paging::PageRequest::parse(500, "", "mcp-tasks")?;
            let tasks = self.store.list_tasks(&scope.session_id, &page).await?.items;
            Ok(json!({
                "tasks": tasks.iter().map(|t| json!({
                    "id": t.id, "title": t.title, "status": t.status.as_str(), "note": t.note,
                })).collect::<Vec<_>>(),
            }))
        }
        .await;
        reply(result)
    }

    /// Adds a task to the session.
    #[tool(description = "Add a task to this session.")]
    async fn create_task(
        &self,
        Extension(parts): Extension<axum::http::request::Parts>,
        Parameters(args): Parameters<CreateTaskArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let scope = scope_of(&parts)?;
        let result: Result<Value, DomainError> = async {
            scope.require(Permission::TaskUpdate)?;
            validate::name("title", &args.title)?;
            self.meter_write(&scope).await?;
            let task = self
                .store
                .create_task(&scope.session_id, &args.title)
                .await?;
            Ok(json!({ "id": task.id, "title": task.title, "status": task.status.as_str() }))
        }
        .await;
        reply(result)
    }

    /// Changes a task of the session.
    #[tool(description = "Change the status of one of this session's tasks.")]
    async fn update_task_status(
        &self,
        Extension(parts): Extension<axum::http::request::Parts>,
        Parameters(args): Parameters<UpdateTaskArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let scope = scope_of(&parts)?;
        let result: Result<Value, DomainError> = async {
            scope.require(Permission::TaskUpdate)?;
            let note = args.note.unwrap_or_default();
            validate::max_chars("note", &note, MAX_TASK_NOTE_CHARS)?;
            let task_id = anima_core::id::parse_id(&args.task_id, "task_id")?;
            let task = self.store.get_task(&task_id).await?;
            if task.session_id != scope.session_id {
                // Another session's task: as unknown as any other.
                return Err(DomainError::not_found(
                    reason::TASK_NOT_FOUND,
                    format!("this session has no task {task_id}"),
                ));
            }
            self.meter_write(&scope).await?;
            let status = match args.status {
                TaskStatusArg::Pending => TaskStatus::Pending,
                TaskStatusArg::InProgress => TaskStatus::InProgress,
                TaskStatusArg::Done => TaskStatus::Done,
                TaskStatusArg::Failed => TaskStatus::Failed,
            };
            let task = self
                .store
                .update_task_status(&task.id, status, &note)
                .await?;
            Ok(json!({ "id": task.id, "status": task.status.as_str(), "note": task.note }))
        }
        .await;
        reply(result)
    }

    /// Asks a human to decide.
    #[tool(
        description = "Flag that a human must decide something: the question, the single input needed, and optional choices."
    )]
    async fn request_human_decision(
        &self,
        Extension(parts): Extension<axum::http::request::Parts>,
        Parameters(args): Parameters<DecisionArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let scope = scope_of(&parts)?;
        let result: Result<Value, DomainError> = async {
            scope.require(Permission::DecisionRequest)?;
            let choices = args.choices.unwrap_or_default();
            rules::decision_request(&args.question, &args.input_label, &choices)?;
            self.meter_write(&scope).await?;
            let decision = self
                .store
                .request_decision(NewDecision {
                    work_item_id: scope.work_item_id.clone(),
                    question: args.question,
                    input_label: args.input_label,
                    choices,
                    asked_by: Self::akh(&scope),
                    assignee_user_id: None,
                })
                .await?;
            Ok(json!({ "id": decision.id, "state": decision.state.as_str() }))
        }
        .await;
        reply(result)
    }
}

/// The URI of a work item's description as an MCP resource.
fn description_uri(work_item_id: &str) -> String {
    format!("anima://work-items/{work_item_id}/description")
}

/// The scope attached to the HTTP request a handler serves.
fn scope_in(context: &RequestContext<RoleServer>) -> Result<McpScope, ErrorData> {
    context
        .extensions
        .get::<axum::http::request::Parts>()
        .ok_or_else(|| ErrorData::internal_error("request without HTTP parts", None))
        .and_then(scope_of)
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for AgentTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .build(),
        )
        .with_instructions(
            "Anima: read your work item, its thread and workflow phase; post as your Akh; \
             track tasks; ask a human when you need a decision.",
        )
    }

    /// The one resource a session sees: its work item's description.
    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let scope = scope_in(&context)?;
        scope.require(Permission::WorkItemRead).map_err(mcp_error)?;
        let item = self
            .store
            .get_work_item(&scope.work_item_id)
            .await
            .map_err(mcp_error)?;
        Ok(ListResourcesResult::with_all_items(vec![
            Resource::new(
                description_uri(&item.id),
                format!("{} description", item.key),
            )
            .with_description(item.title)
            .with_mime_type("text/markdown"),
        ]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let scope = scope_in(&context)?;
        scope.require(Permission::WorkItemRead).map_err(mcp_error)?;
        if request.uri != description_uri(&scope.work_item_id) {
            return Err(mcp_error(out_of_scope()));
        }
        let item = self
            .store
            .get_work_item(&scope.work_item_id)
            .await
            .map_err(mcp_error)?;
        Ok(
            ReadResourceResult::new(vec![ResourceContents::text(item.description, request.uri)])
                .into(),
        )
    }
}
