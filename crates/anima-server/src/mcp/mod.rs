//! The MCP endpoint for agents in sandboxes: Streamable HTTP at `/mcp` on
//! the server's listener, served by `rmcp`.
//!
//! Every HTTP request carries the session's bearer token; [`authenticate`]
//! looks it up in the store each time (so revocation and the end of the
//! session take effect on the very next request) and attaches the token's
//! [`McpScope`]. Each tool names its permission and scope in
//! [`access::TOOLS`] and runs inside one frame (`AgentTools::run`): the
//! permission, the work item it may name, the session's write quota, then
//! the tool, whose refusal comes back as a tool result with `isError` so
//! the model reads it; protocol errors are left to protocol faults.

mod access;
mod tools;
mod views;

use std::sync::Arc;

use anima_core::{DomainError, ErrorCode, agent::McpScope, error::reason};
use anima_db::{Store, TokenState};
use axum::{
    Router,
    extract::{Request, State},
    http::{StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use rmcp::{
    ErrorData, RoleServer,
    model::{CallToolResult, ContentBlock},
    service::RequestContext,
    transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
    },
};
use serde::Serialize;
use serde_json::json;

pub use access::{TOOLS, ToolAccess, ToolScope};
pub use tools::AgentTools;

use crate::{auth::token_hash, auth_cache::AuthCache, library::Library, limits::RateLimiter};

/// The `/mcp` route: token check, then the MCP service.
/// `library` answers `search_library`; `limits` meters each session's writes (`mcp_writes_per_minute`); tokens
/// are looked up in `cache` first.
pub fn router(
    store: Arc<dyn Store>,
    library: Arc<dyn Library>,
    limits: RateLimiter,
    cache: Arc<AuthCache>,
) -> Router {
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
            move || {
                Ok(AgentTools::new(
                    tools_store.clone(),
                    library.clone(),
                    limits.clone(),
                ))
            },
            Default::default(),
            config,
        );
    Router::new()
        .nest_service("/mcp", service)
        .layer(axum::middleware::from_fn_with_state(
            (store, cache),
            authenticate,
        ))
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
    State((store, cache)): State<(Arc<dyn Store>, Arc<AuthCache>)>,
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
    match cache.mcp_token(&*store, &token_hash(token)).await {
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

/// A domain error as a protocol error, for what is not a tool call (a
/// resource read): invalid input as `invalid_params`, an internal fault
/// masked, the rest `invalid_request`; each with its reason.
fn protocol_error(err: impl Into<DomainError>) -> ErrorData {
    let err = err.into();
    let data = Some(json!({ "reason": err.reason }));
    match err.code {
        ErrorCode::InvalidArgument => ErrorData::invalid_params(described(&err), data),
        ErrorCode::Internal => {
            tracing::error!(error = %err.message, "internal error in an MCP request");
            ErrorData::internal_error("internal error; see the server log", data)
        }
        _ => ErrorData::invalid_request(described(&err), data),
    }
}

/// "message (REASON)", what an agent reads of a refusal.
fn described(err: &DomainError) -> String {
    format!("{} ({})", err.message, err.reason)
}

/// Refuses a work item other than the token's own.
fn out_of_scope() -> DomainError {
    DomainError::new(
        ErrorCode::PermissionDenied,
        reason::OUT_OF_SCOPE,
        "this session's token is limited to its own work item",
    )
}

/// A tool's outcome as the model sees it: its JSON as text, or the
/// refusal as text ("message (REASON)") with `isError`, so an agent can
/// act on it. An internal fault is logged, not described.
fn tool_result<T: Serialize>(result: Result<T, DomainError>) -> CallToolResult {
    match result {
        Ok(value) => CallToolResult::success(vec![ContentBlock::text(
            serde_json::to_string_pretty(&value).unwrap_or_default(),
        )]),
        Err(err) => {
            let text = if err.code == ErrorCode::Internal {
                tracing::error!(error = %err.message, "internal error in an MCP tool");
                format!("internal error; see the server log ({})", err.reason)
            } else {
                described(&err)
            };
            CallToolResult::error(vec![ContentBlock::text(text)])
        }
    }
}

/// The URI of a work item's description as an MCP resource.
fn description_uri(work_item_id: &str) -> String {
    format!("anima://work-items/{work_item_id}/description")
}

/// The scope the middleware attached.
fn scope_of(parts: &axum::http::request::Parts) -> Result<McpScope, ErrorData> {
    parts.extensions.get::<McpScope>().cloned().ok_or_else(|| {
        ErrorData::internal_error("request reached a tool without its token check", None)
    })
}

/// The scope attached to the HTTP request a handler serves.
fn scope_in(context: &RequestContext<RoleServer>) -> Result<McpScope, ErrorData> {
    context
        .extensions
        .get::<axum::http::request::Parts>()
        .ok_or_else(|| ErrorData::internal_error("request without HTTP parts", None))
        .and_then(scope_of)
}
