//! What a store method fails with.

use std::{fmt, ops::Deref};

use anima_core::{DomainError, ErrorCode, error::reason};

/// A store method's result.
pub type StoreResult<T> = Result<T, StoreError>;

/// A store method's failure: the [`DomainError`] its caller sees (and
/// converts into with `?`). Driver errors convert with `?` too, so SQL
/// reads as plain Rust: an unreachable database becomes
/// `UNAVAILABLE`/`STORAGE_UNAVAILABLE`, anything else `INTERNAL`; a
/// statement whose conflict means something names its reason with
/// [`StoreError::conflict`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(DomainError);

impl StoreError {
    /// A driver error where a unique violation means `conflict_reason`
    /// (`ALREADY_EXISTS`) and a foreign-key violation means the referenced
    /// row changed meanwhile (`FAILED_PRECONDITION`, same reason).
    pub fn conflict(err: sqlx::Error, conflict_reason: &'static str) -> Self {
        Self(match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                let what = match conflict_reason {
                    reason::USERNAME_TAKEN => "a user with this username already exists",
                    reason::ROLE_NAME_TAKEN => "a role with this name already exists",
                    reason::WORKFLOW_NAME_TAKEN => "a workflow with this name already exists",
                    reason::AKH_NAME_TAKEN => "an Akh with this name already exists",
                    reason::MAILBOX_EXISTS => "a mailbox with this address already exists",
                    reason::REPOSITORY_NAME_TAKEN => {
                        "the project has a repository with this name already"
                    }
                    reason::SKILL_VERSION_EXISTS => {
                        "this skill version is published already (versions never change)"
                    }
                    _ => "an entry with this key already exists",
                };
                DomainError::new(ErrorCode::AlreadyExists, conflict_reason, what)
            }
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
                DomainError::failed_precondition(
                    conflict_reason,
                    "the entry is referenced by, or refers to, something that changed meanwhile; \
                     retry",
                )
            }
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                DomainError::new(
                    ErrorCode::Unavailable,
                    reason::STORAGE_UNAVAILABLE,
                    format!("database unavailable: {err}"),
                )
            }
            _ => DomainError::internal(format!("database error: {err}")),
        })
    }

    /// The domain error inside.
    pub fn into_domain(self) -> DomainError {
        self.0
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        Self::conflict(err, reason::INTERNAL)
    }
}

impl From<DomainError> for StoreError {
    fn from(err: DomainError) -> Self {
        Self(err)
    }
}

impl From<StoreError> for DomainError {
    fn from(err: StoreError) -> Self {
        err.0
    }
}

/// Callers read the code, reason and message as they would on the
/// domain error.
impl Deref for StoreError {
    type Target = DomainError;

    fn deref(&self) -> &DomainError {
        &self.0
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for StoreError {}
