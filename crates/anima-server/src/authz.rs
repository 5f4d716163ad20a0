//! Authorization inside handlers. The middleware has authenticated the
//! caller and checked everything that needs no project; handlers of
//! project-scoped RPCs finish the check once they know the project.

use std::{net::SocketAddr, sync::Arc};

use anima_core::{DomainError, Permission, error::reason, id::parse_id, planning::WorkItem};
use anima_db::Store;
use axum::extract::ConnectInfo;
use tonic::Request;

use crate::{auth::Caller, auth_cache::AuthCache, rbac::Access};

/// What the middleware learnt about a request, attached to its extensions.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The authenticated caller; `None` only on public RPCs.
    pub caller: Option<Caller>,
    /// The access rule of the RPC.
    pub access: Access,
    /// Where project permissions are looked up first; `None` reads the
    /// store every time.
    pub cache: Option<Arc<AuthCache>>,
}

/// The context the middleware attached. Its absence means the service was
/// reached without the middleware, which must never serve a request.
pub fn context<T>(request: &Request<T>) -> Result<&RequestContext, DomainError> {
    request.extensions().get::<RequestContext>().ok_or_else(|| {
        DomainError::internal("request reached a service without the auth middleware")
    })
}

/// The authenticated caller of a non-public RPC.
pub fn caller<T>(request: &Request<T>) -> Result<&Caller, DomainError> {
    context(request)?.caller.as_ref().ok_or_else(|| {
        DomainError::unauthenticated(reason::UNAUTHENTICATED, "this call needs authorization")
    })
}

/// The peer address of the connection, when known.
pub fn peer<T>(request: &Request<T>) -> Option<std::net::IpAddr> {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip())
}

/// Requires the RPC's project permission of the caller in `project_id`:
/// a binding whose role grants it.
pub async fn require_project(
    store: &Arc<dyn Store>,
    context: &RequestContext,
    project_id: &str,
) -> Result<(), DomainError> {
    let Access::Project(permission) = context.access else {
        return Ok(());
    };
    require_permission(store, context, project_id, permission).await
}

/// The work item `raw_id` (named `what` in errors), once the caller holds
/// the RPC's permission in its project. This is the hot path of reads: the
/// item's own query, then the caller's permissions from the auth cache.
pub async fn authorized_work_item(
    store: &Arc<dyn Store>,
    context: &RequestContext,
    raw_id: &str,
    what: &str,
) -> Result<WorkItem, DomainError> {
    let id = parse_id(raw_id, what)?;
    let item = store.get_work_item(&id).await?;
    require_project(store, context, &item.project_id).await?;
    Ok(item)
}

/// Requires a given permission of the caller in `project_id`, for RPCs
/// whose rule is not one project permission (e.g. lists across projects).
pub async fn require_permission(
    store: &Arc<dyn Store>,
    context: &RequestContext,
    project_id: &str,
    permission: Permission,
) -> Result<(), DomainError> {
    match context.caller.as_ref() {
        #[cfg(feature = "trust-every-caller")]
        Some(Caller::Unchecked) => Ok(()),
        Some(Caller::Service { .. }) => Err(denied(permission)),
        Some(Caller::User { user, .. }) => {
            let granted = match &context.cache {
                Some(cache) => cache.permissions(&**store, &user.id, project_id).await?,
                None => Arc::new(store.project_permissions(&user.id, project_id).await?),
            };
            if granted.contains(&permission) {
                Ok(())
            } else {
                Err(denied(permission))
            }
        }
        None => Err(DomainError::unauthenticated(
            reason::UNAUTHENTICATED,
            "this call needs authorization",
        )),
    }
}

fn denied(permission: Permission) -> DomainError {
    DomainError::permission_denied(format!("you need {permission} in this project"))
}
