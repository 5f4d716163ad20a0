//! Domain errors on the wire: a gRPC status with a `google.rpc.ErrorInfo`
//! detail whose `reason` is the stable domain code.

use std::collections::HashMap;

use anima_core::{DomainError, ErrorCode};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// The `ErrorInfo.domain` of every Anima error.
pub const ERROR_DOMAIN: &str = "anima.dev";

/// Converts a domain error into a gRPC status. Internal details are logged
/// here and replaced by a generic message, so they never reach clients.
pub fn to_status(err: DomainError) -> Status {
    let code = match err.code {
        ErrorCode::InvalidArgument => Code::InvalidArgument,
        ErrorCode::Unauthenticated => Code::Unauthenticated,
        ErrorCode::PermissionDenied => Code::PermissionDenied,
        ErrorCode::NotFound => Code::NotFound,
        ErrorCode::AlreadyExists => Code::AlreadyExists,
        ErrorCode::FailedPrecondition => Code::FailedPrecondition,
        ErrorCode::Aborted => Code::Aborted,
        ErrorCode::ResourceExhausted => Code::ResourceExhausted,
        ErrorCode::Unimplemented => Code::Unimplemented,
        ErrorCode::Internal => Code::Internal,
        ErrorCode::Unavailable => Code::Unavailable,
    };
    let message = match err.code {
        ErrorCode::Internal => {
            tracing::error!(error = %err.message, "internal error");
            "internal error; see the server log".to_string()
        }
        _ => err.message,
    };
    Status::with_error_details(
        code,
        message,
        ErrorDetails::with_error_info(err.reason, ERROR_DOMAIN, HashMap::new()),
    )
}

/// `Result` with a domain error, as services produce it.
pub type DomainResult<T> = Result<T, DomainError>;

/// Adapts a domain result to a tonic one.
pub trait IntoStatus<T> {
    /// Converts the error side.
    fn into_status(self) -> Result<T, Status>;
}

/// For domain errors and whatever converts into one (a store's errors).
impl<T, E: Into<DomainError>> IntoStatus<T> for Result<T, E> {
    fn into_status(self) -> Result<T, Status> {
        self.map_err(|err| to_status(err.into()))
    }
}
