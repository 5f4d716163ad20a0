//! Anima storage.
//!
//! One trait, [`Store`], with two backends that share their SQL: PostgreSQL
//! for production (several servers on one database) and an embedded SQLite
//! for `anima up`. Both are exercised by one conformance suite
//! ([`conformance`]). Every state change writes an [`Event`] row in the same
//! transaction as the change: the outbox that live streams read.
//!
//! [`Event`]: anima_core::model::Event

mod backend;
pub mod conformance;
mod migrations;

use std::sync::Arc;

use anima_core::{
    DomainError, Permission,
    model::{AuthSession, Event, NewUser, Project, Role, RoleChanges, User, UserChanges},
    paging::PageRequest,
};
use async_trait::async_trait;

pub use backend::{PostgresStore, SqliteStore};

/// One page of a list, and the token for the next (empty on the last page).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The rows of this page.
    pub items: Vec<T>,
    /// Token for the next page; empty when none follows.
    pub next_page_token: String,
}

/// A user and the stored hash of their password, for login only.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// The account.
    pub user: User,
    /// argon2id PHC string.
    pub password_hash: String,
}

/// Everything anima-server persists. Implementations must make each method
/// atomic and write the outbox event of a change in the same transaction.
/// The one exception is [`Store::touch_session`]: recording that a session
/// was used is bookkeeping, not a change anyone subscribes to.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Which backend this is, for logs and diagnostics.
    fn backend(&self) -> &'static str;

    /// Creates a user; a taken username is `ALREADY_EXISTS`/`USERNAME_TAKEN`.
    async fn create_user(&self, user: NewUser) -> Result<User, DomainError>;
    /// A user by id.
    async fn get_user(&self, id: &str) -> Result<User, DomainError>;
    /// A user and password hash by username, if the user exists.
    async fn find_credentials(&self, username: &str) -> Result<Option<Credentials>, DomainError>;
    /// Users in creation order.
    async fn list_users(&self, page: &PageRequest) -> Result<Page<User>, DomainError>;
    /// Applies a partial change; a password change revokes every session.
    async fn update_user(&self, id: &str, changes: UserChanges) -> Result<User, DomainError>;
    /// Deletes a user with their sessions and bindings.
    async fn delete_user(&self, id: &str) -> Result<(), DomainError>;
    /// How many users exist (to know whether to bootstrap an admin).
    async fn count_users(&self) -> Result<i64, DomainError>;
    /// How many enabled admins exist (the last one must stay).
    async fn count_active_admins(&self) -> Result<i64, DomainError>;

    /// Stores a new session under the hash of its token.
    async fn create_session(&self, session: AuthSession) -> Result<(), DomainError>;
    /// A session by token hash.
    async fn get_session(&self, token_hash: &str) -> Result<Option<AuthSession>, DomainError>;
    /// Records use of a session.
    async fn touch_session(&self, token_hash: &str, now: i64) -> Result<(), DomainError>;
    /// Revokes one session; true when it existed.
    async fn delete_session(&self, token_hash: &str) -> Result<bool, DomainError>;
    /// Revokes every session of a user but `keep` (a token hash), if given.
    async fn delete_user_sessions(
        &self,
        user_id: &str,
        keep: Option<&str>,
    ) -> Result<u64, DomainError>;

    /// Roles by name order of creation (built-ins first).
    async fn list_roles(&self, page: &PageRequest) -> Result<Page<Role>, DomainError>;
    /// A role by id.
    async fn get_role(&self, id: &str) -> Result<Role, DomainError>;
    /// Creates a custom role.
    async fn create_role(
        &self,
        name: &str,
        description: &str,
        permissions: &[Permission],
    ) -> Result<Role, DomainError>;
    /// Changes a custom role; built-ins are `FAILED_PRECONDITION`/`ROLE_BUILTIN`.
    async fn update_role(&self, id: &str, changes: RoleChanges) -> Result<Role, DomainError>;
    /// Deletes a custom role that nobody holds.
    async fn delete_role(&self, id: &str) -> Result<(), DomainError>;

    /// Creates a project and makes `owner_id` its Owner.
    async fn create_project(
        &self,
        name: &str,
        description: &str,
        owner_id: &str,
    ) -> Result<Project, DomainError>;
    /// Binds a user to a project with a role (replacing an earlier binding).
    async fn bind_role(
        &self,
        user_id: &str,
        project_id: &str,
        role_id: &str,
    ) -> Result<(), DomainError>;
    /// The permissions a user holds in a project (empty for non-members).
    async fn project_permissions(
        &self,
        user_id: &str,
        project_id: &str,
    ) -> Result<Vec<Permission>, DomainError>;

    /// Outbox events with id greater than `after`, oldest first.
    async fn events_after(&self, after: i64, limit: i64) -> Result<Vec<Event>, DomainError>;
}

/// Opens the store a URL names (`postgres://…` or `sqlite://…`), creating the
/// database file if needed, and brings its schema up to date.
pub async fn open(url: &str) -> Result<Arc<dyn Store>, DomainError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PostgresStore::connect(url).await?))
    } else if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::connect(url).await?))
    } else {
        Err(DomainError::invalid_argument(
            anima_core::error::reason::INVALID_FIELD,
            format!("database URL must start with postgres:// or sqlite:, got {url:?}"),
        ))
    }
}

#[cfg(feature = "testing")]
pub mod testing;
