//! The gate in front of every gRPC service: finds the RPC's access rule,
//! authenticates the bearer token, applies the rule, and hands the result to
//! the handler. A path without a rule is refused, never served.

use anima_core::{DomainError, ErrorCode, error::reason};
use axum::{
    extract::{Request, State},
    middleware::Next,
    response::{IntoResponse, Response},
};

use crate::{
    auth::Authenticator,
    authz::RequestContext,
    error::to_status,
    rbac::{self, Access},
};

/// Axum middleware; see the module documentation.
pub async fn authorize(
    State(authenticator): State<Authenticator>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    let Some(access) = rbac::access_for(&path) else {
        tracing::warn!(%path, "refused an RPC that has no access rule");
        return refuse(DomainError::new(
            ErrorCode::Unimplemented,
            reason::RPC_NOT_MAPPED,
            format!("{path} is not served"),
        ));
    };
    let header = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let caller = match (access, header) {
        (Access::Public, None) => None,
        (_, header) => match authenticator.authenticate(header.as_deref()).await {
            Ok(caller) => Some(caller),
            // A public RPC called with a stale token still works (Login).
            Err(_) if access == Access::Public => None,
            Err(err) => return refuse(err),
        },
    };
    if let Err(err) = rbac::check_caller(access, caller.as_ref()) {
        return refuse(err);
    }
    request.extensions_mut().insert(RequestContext {
        caller,
        access,
        cache: Some(authenticator.cache().clone()),
    });
    next.run(request).await
}

/// Benchmark-only stand-in for [`authorize`]: every request comes from
/// [`crate::auth::Caller::Unchecked`], so no session is looked up and no
/// project permission is checked. It exists to measure what [`authorize`] costs;
/// a router using it must never face a network.
#[cfg(feature = "trust-every-caller")]
pub async fn trust_every_caller(mut request: Request, next: Next) -> Response {
    let Some(access) = rbac::access_for(request.uri().path()) else {
        return refuse(DomainError::new(
            ErrorCode::Unimplemented,
            reason::RPC_NOT_MAPPED,
            "not served",
        ));
    };
    request.extensions_mut().insert(RequestContext {
        caller: Some(crate::auth::Caller::Unchecked),
        access,
        cache: None,
    });
    next.run(request).await
}

fn refuse(err: DomainError) -> Response {
    to_status(err)
        .into_http::<axum::body::Body>()
        .into_response()
}
