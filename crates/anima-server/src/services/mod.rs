//! gRPC service implementations, one module per service of the API.
//!
//! Handlers of the planning services are inherent methods taking the
//! [`RequestContext`](crate::authz::RequestContext) and the request message
//! and returning a domain result; [`grpc_service!`] wires them to the
//! generated tonic trait, so the conversion of errors into statuses and the
//! extraction of the context happen in one place.

pub mod agent;
pub mod akh;
pub mod auth;
pub mod dashboard;
pub mod document;
pub mod mail_worker;
pub mod mailbox;
pub mod plan;
pub mod project;
pub mod repository;
pub mod skill;
pub mod team;
pub mod thread;
pub mod work_item;
pub mod workflow;

use anima_core::{
    DomainError,
    paging::PageRequest,
    planning::{Actor, Project},
    update_mask,
};
use anima_db::{Page, ProjectFilter, Store, StoreResult};
use prost_types::FieldMask;

use crate::auth::Caller;

/// Implements a generated service trait by calling the inherent handler
/// of the same name with the request's context and message.
macro_rules! grpc_service {
    ($api:ty: $service:path { $($method:ident($request:ty) -> $response:ty;)* }) => {
        #[tonic::async_trait]
        impl $service for $api {
            $(
                async fn $method(
                    &self,
                    request: tonic::Request<$request>,
                ) -> Result<tonic::Response<$response>, tonic::Status> {
                    let context = crate::authz::context(&request)
                        .map_err(crate::error::to_status)?
                        .clone();
                    <$api>::$method(self, &context, request.into_inner())
                        .await
                        .map(tonic::Response::new)
                        .map_err(crate::error::to_status)
                }
            )*
        }
    };
}
pub(crate) use grpc_service;

/// A server-streaming response: what the streaming handlers return.
pub type ResponseStream<T> = tonic::codegen::BoxStream<T>;

/// Who a caller acts as when they author something.
pub(crate) fn actor_of(caller: Option<&Caller>) -> Result<Actor, DomainError> {
    match caller {
        Some(Caller::User { user, .. }) => Ok(Actor::User {
            id: user.id.clone(),
        }),
        Some(Caller::Service { service }) => Ok(Actor::Service {
            name: service.as_str().into(),
        }),
        #[cfg(feature = "trust-every-caller")]
        Some(Caller::Unchecked) => Ok(Actor::Service {
            name: "unchecked".into(),
        }),
        None => Err(DomainError::unauthenticated(
            anima_core::error::reason::UNAUTHENTICATED,
            "this call needs authorization",
        )),
    }
}

/// Who a caller is, for records that name them: a user's id, or
/// `service:NAME`.
pub(crate) fn caller_id(caller: Option<&Caller>) -> Result<String, DomainError> {
    match caller {
        Some(Caller::User { user, .. }) => Ok(user.id.clone()),
        Some(Caller::Service { service }) => Ok(format!("service:{}", service.as_str())),
        #[cfg(feature = "trust-every-caller")]
        Some(Caller::Unchecked) => Ok("service:unchecked".into()),
        None => Err(DomainError::unauthenticated(
            anima_core::error::reason::UNAUTHENTICATED,
            "this call needs authorization",
        )),
    }
}

/// The paths of an update mask, checked against what a resource allows.
pub(crate) fn mask_paths(
    mask: Option<FieldMask>,
    allowed: &[&str],
) -> Result<Vec<String>, DomainError> {
    let paths = mask.map(|mask| mask.paths).unwrap_or_default();
    Ok(update_mask::validate(&paths, allowed)?
        .into_iter()
        .map(str::to_owned)
        .collect())
}

/// Reads every page of a list; `what` names the list in its page tokens.
pub(crate) async fn every_page<T, F, Fut>(what: &str, mut fetch: F) -> Result<Vec<T>, DomainError>
where
    F: FnMut(PageRequest) -> Fut,
    Fut: Future<Output = StoreResult<Page<T>>>,
{
    let mut rows = Vec::new();
    let mut token = String::new();
    loop {
        let page = fetch(PageRequest::parse(500, &token, what)?).await?;
        rows.extend(page.items);
        if page.next_page_token.is_empty() {
            return Ok(rows);
        }
        token = page.next_page_token;
    }
}

/// The projects `caller` is a member of (every project, for a caller that
/// is not a user); `what` names the list in its page tokens.
pub(crate) async fn member_projects(
    store: &dyn Store,
    caller: Option<&Caller>,
    what: &str,
) -> Result<Vec<Project>, DomainError> {
    let filter = ProjectFilter {
        member: match caller {
            Some(Caller::User { user, .. }) => Some(user.id.clone()),
            _ => None,
        },
        status: None,
    };
    every_page(what, |page| {
        let filter = filter.clone();
        async move { store.list_projects(&filter, &page).await }
    })
    .await
}

/// An optional id: empty is `None`, anything else must parse.
pub(crate) fn optional_id(raw: &str, what: &str) -> Result<Option<String>, DomainError> {
    if raw.is_empty() {
        Ok(None)
    } else {
        anima_core::id::parse_id(raw, what).map(Some)
    }
}
