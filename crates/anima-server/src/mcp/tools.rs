//! The tools an agent session calls, and the one resource it reads.

use std::{future::Future, sync::Arc};

use anima_core::{
    DomainError, Permission,
    agent::{MAX_TASK_NOTE_CHARS, McpScope, TaskStatus},
    error::reason,
    paging::PageRequest,
    planning::Actor,
    thread::{self as rules, MessageKind, NewDecision, NewMessage},
    validate,
};
use anima_db::{Store, ThreadPage};
use axum::http::request::Parts;
use rmcp::{
    ErrorData, RoleServer, ServerHandler,
    handler::server::{router::tool::ToolRouter, tool::Extension, wrapper::Parameters},
    model::{
        CallToolResult, ListResourcesResult, PaginatedRequestParams, ReadResourceRequestParams,
        ReadResourceResponse, ReadResourceResult, Resource, ResourceContents, ServerCapabilities,
        ServerConfig,
    },
    service::RequestContext,
    tool, tool_handler, tool_router,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{
    access::{self, ToolScope},
    description_uri, out_of_scope, protocol_error, scope_in, scope_of, tool_result,
    views::{
        DecisionView, DocumentTextView, LibraryHitView, LibraryHitsView, MessageView, PhaseView,
        PostedView, TaskView, TasksView, ThreadPageView, WorkItemView,
    },
};
use crate::{
    library::{Library, LibraryQuery, find_documents},
    limits::{Metered, RateLimiter},
};

/// Most messages one `get_thread` call returns.
const MAX_THREAD_PAGE: u32 = 200;

/// Hits `search_library` answers unless asked, and the most it may.
const DEFAULT_LIBRARY_HITS: u32 = 10;
const MAX_LIBRARY_HITS: u32 = 50;

/// Characters `read_document` answers unless asked, and the most it may.
const DEFAULT_READ_CHARS: u32 = 20_000;
const MAX_READ_CHARS: u32 = 50_000;

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

/// Arguments of `search_library`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchLibraryArgs {
    /// Words to find, at most 500 characters.
    pub query: String,
    /// How many hits (1 to 50, default 10).
    pub limit: Option<u32>,
}

/// Arguments of `read_document`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadDocumentArgs {
    /// The document's id, as search_library answers it.
    pub document_id: String,
    /// Characters to skip (default 0): where the previous part's
    /// next_offset said.
    pub offset: Option<u64>,
    /// How many characters (1 to 50,000, default 20,000).
    pub max_chars: Option<u32>,
}

/// The tools an agent session may call.
#[derive(Clone)]
pub struct AgentTools {
    store: Arc<dyn Store>,
    library: Arc<dyn Library>,
    limits: RateLimiter,
    tool_router: ToolRouter<Self>,
}

impl AgentTools {
    pub(super) fn new(
        store: Arc<dyn Store>,
        library: Arc<dyn Library>,
        limits: RateLimiter,
    ) -> Self {
        Self {
            store,
            library,
            limits,
            tool_router: Self::tool_router(),
        }
    }

    /// The names of the tools served, for the access table's test.
    #[cfg(test)]
    pub(super) fn served_tools() -> Vec<String> {
        Self::tool_router()
            .list_all()
            .into_iter()
            .map(|tool| tool.name.into_owned())
            .collect()
    }

    /// The frame of every tool: the token's scope, then the tool's rule in
    /// [`access::TOOLS`] (its permission; the work item `named`, which
    /// must be the token's own), then `valid` (the arguments' checks, so
    /// an invalid write costs no quota), one write of the session's quota,
    /// then `body`; its answer or refusal becomes the tool's result.
    async fn run<T, Body, Answer>(
        &self,
        tool: &str,
        parts: &Parts,
        named: Option<&str>,
        valid: Result<(), DomainError>,
        body: Body,
    ) -> Result<CallToolResult, ErrorData>
    where
        T: Serialize,
        Body: FnOnce(McpScope) -> Answer,
        Answer: Future<Output = Result<T, DomainError>>,
    {
        let scope = scope_of(parts)?;
        let rule = access::of(tool).ok_or_else(|| {
            ErrorData::internal_error(format!("the tool {tool} has no access rule"), None)
        })?;
        let answer = async {
            scope.require(rule.permission)?;
            if rule.scope == ToolScope::WorkItem {
                self.confine(&scope, named).await?;
            }
            valid?;
            if rule.writes {
                self.limits
                    .take(Metered::McpWrite, &scope.session_id)
                    .await?;
            }
            body(scope).await
        }
        .await;
        Ok(tool_result(answer))
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
        Extension(parts): Extension<Parts>,
        Parameters(args): Parameters<WorkItemArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        self.run(
            "get_work_item",
            &parts,
            args.work_item.as_deref(),
            Ok(()),
            |scope| async move {
                let item = self.store.get_work_item(&scope.work_item_id).await?;
                let plan = match &item.plan_id {
                    Some(plan_id) => Some(self.store.get_plan(plan_id).await?),
                    None => None,
                };
                Ok(WorkItemView::new(item, plan))
            },
        )
        .await
    }

    /// Messages of the work item's thread, oldest first.
    #[tool(description = "Read the work item's discussion thread, oldest first, a page at a time.")]
    async fn get_thread(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(args): Parameters<ThreadArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        self.run(
            "get_thread",
            &parts,
            args.work_item.as_deref(),
            Ok(()),
            |scope| async move {
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
                let next_after_sequence = messages.last().filter(|_| more).map(|m| m.sequence);
                Ok(ThreadPageView {
                    messages: messages.into_iter().map(MessageView::from).collect(),
                    next_after_sequence,
                })
            },
        )
        .await
    }

    /// The current phase, its skills, and the next phase.
    #[tool(
        description = "Read the work item's current workflow phase, the skills it requires, and the next phase."
    )]
    async fn get_workflow_phase(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(args): Parameters<WorkItemArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        self.run(
            "get_workflow_phase",
            &parts,
            args.work_item.as_deref(),
            Ok(()),
            |scope| async move {
                let item = self.store.get_work_item(&scope.work_item_id).await?;
                let workflow = self.store.get_workflow(&item.workflow_id).await?;
                let index = workflow.phases.iter().position(|p| p.id == item.phase_id);
                let phase =
                    |index: Option<usize>| index.and_then(|i| workflow.phases.get(i)).cloned();
                Ok(PhaseView {
                    phase: phase(index),
                    next_phase: phase(index.map(|i| i + 1)),
                    workflow: workflow.name.clone(),
                })
            },
        )
        .await
    }

    /// Posts to the thread as the session's Akh.
    #[tool(
        description = "Post a message to the work item's thread, as this session's Akh persona."
    )]
    async fn post_message(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(args): Parameters<PostMessageArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let valid = rules::body(&args.body);
        self.run(
            "post_message",
            &parts,
            args.work_item.as_deref(),
            valid,
            |scope| async move {
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
                Ok(PostedView::from(message))
            },
        )
        .await
    }

    /// The session's tasks.
    #[tool(description = "List this session's tasks.")]
    async fn list_tasks(
        &self,
        Extension(parts): Extension<Parts>,
    ) -> Result<CallToolResult, ErrorData> {
        self.run("list_tasks", &parts, None, Ok(()), |scope| async move {
            let page = PageRequest::parse(500, "", "mcp-tasks")?;
            let tasks = self.store.list_tasks(&scope.session_id, &page).await?.items;
            Ok(TasksView {
                tasks: tasks.into_iter().map(TaskView::from).collect(),
            })
        })
        .await
    }

    /// Adds a task to the session.
    #[tool(description = "Add a task to this session.")]
    async fn create_task(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(args): Parameters<CreateTaskArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let valid = validate::name("title", &args.title);
        self.run("create_task", &parts, None, valid, |scope| async move {
            let task = self
                .store
                .create_task(&scope.session_id, &args.title)
                .await?;
            Ok(TaskView::from(task))
        })
        .await
    }

    /// Changes a task of the session.
    #[tool(description = "Change the status of one of this session's tasks.")]
    async fn update_task_status(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(args): Parameters<UpdateTaskArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let valid = validate::max_chars(
            "note",
            args.note.as_deref().unwrap_or_default(),
            MAX_TASK_NOTE_CHARS,
        )
        .and(anima_core::id::parse_id(&args.task_id, "task_id").map(drop));
        self.run(
            "update_task_status",
            &parts,
            None,
            valid,
            |scope| async move {
                let note = args.note.unwrap_or_default();
                let task_id = anima_core::id::parse_id(&args.task_id, "task_id")?;
                let task = self.store.get_task(&task_id).await?;
                if task.session_id != scope.session_id {
                    // Another session's task: as unknown as any other.
                    return Err(DomainError::not_found(
                        reason::TASK_NOT_FOUND,
                        format!("this session has no task {task_id}"),
                    ));
                }
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
                Ok(TaskView::from(task))
            },
        )
        .await
    }

    /// Asks a human to decide.
    #[tool(
        description = "Flag that a human must decide something: the question, the single input needed, and optional choices."
    )]
    async fn request_human_decision(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(args): Parameters<DecisionArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let valid = rules::decision_request(
            &args.question,
            &args.input_label,
            args.choices.as_deref().unwrap_or_default(),
        );
        self.run(
            "request_human_decision",
            &parts,
            None,
            valid,
            |scope| async move {
                let choices = args.choices.unwrap_or_default();
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
                Ok(DecisionView::from(decision))
            },
        )
        .await
    }

    /// Documents of the session's project that match by words or meaning.
    #[tool(
        description = "Search the documents of the session's project (specs, mail attachments, patches, notes) by what they are about or by exact words and identifiers (WI-12, ERR_CONN_RESET, a function name); answers the best matches first, each with its id, title, type and a snippet of the matching part."
    )]
    async fn search_library(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(args): Parameters<SearchLibraryArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let query = args.query.trim().to_owned();
        let limit = args.limit.unwrap_or(DEFAULT_LIBRARY_HITS);
        let valid = anima_core::document::search_query(&query).and_then(|_| {
            if limit == 0 || limit > MAX_LIBRARY_HITS {
                Err(DomainError::invalid_argument(
                    reason::INVALID_FIELD,
                    format!("limit must be 1 to {MAX_LIBRARY_HITS}"),
                ))
            } else {
                Ok(())
            }
        });
        self.run("search_library", &parts, None, valid, |scope| async move {
            self.limits
                .take(Metered::McpSearch, &scope.session_id)
                .await?;
            let found = find_documents(
                &*self.store,
                &*self.library,
                LibraryQuery {
                    query,
                    project_ids: vec![scope.project_id.clone()],
                    limit: i32::try_from(limit).unwrap_or(i32::MAX),
                    ..Default::default()
                },
            )
            .await?;
            Ok(LibraryHitsView {
                hits: found.into_iter().map(LibraryHitView::from).collect(),
            })
        })
        .await
    }

    /// A document's text, a part at a time.
    #[tool(
        description = "Read the text of a document of the session's project (as search_library finds them), a part at a time: offset and max_chars count characters; next_offset, when present, continues."
    )]
    async fn read_document(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(args): Parameters<ReadDocumentArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let max_chars = args.max_chars.unwrap_or(DEFAULT_READ_CHARS);
        let valid = if max_chars == 0 || max_chars > MAX_READ_CHARS {
            Err(DomainError::invalid_argument(
                reason::INVALID_FIELD,
                format!("max_chars must be 1 to {MAX_READ_CHARS}"),
            ))
        } else {
            Ok(())
        };
        self.run("read_document", &parts, None, valid, |scope| async move {
            // Another project's document, and none at all, answer alike.
            let document = match anima_core::id::parse_id(&args.document_id, "document_id") {
                Ok(id) => self.store.get_document(&id).await.ok(),
                Err(_) => None,
            }
            .filter(|document| document.project_id == scope.project_id && !document.awaits_review)
            .ok_or_else(out_of_scope)?;
            // What the library read on arrival: reading a document again
            // costs nothing but the query.
            let offset = args.offset.unwrap_or(0);
            let part = self
                .store
                .document_text_part(&document.id, offset, max_chars as usize)
                .await?;
            Ok(DocumentTextView::new(document, part, offset))
        })
        .await
    }
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
        scope
            .require(Permission::WorkItemRead)
            .map_err(protocol_error)?;
        let item = self
            .store
            .get_work_item(&scope.work_item_id)
            .await
            .map_err(protocol_error)?;
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
        scope
            .require(Permission::WorkItemRead)
            .map_err(protocol_error)?;
        if request.uri != description_uri(&scope.work_item_id) {
            return Err(protocol_error(out_of_scope()));
        }
        let item = self
            .store
            .get_work_item(&scope.work_item_id)
            .await
            .map_err(protocol_error)?;
        Ok(
            ReadResourceResult::new(vec![ResourceContents::text(item.description, request.uri)])
                .into(),
        )
    }
}
