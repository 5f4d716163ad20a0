//! Records of accounts and events as storage returns them (the planning
//! domain is in [`crate::planning`]). Times are
//! microseconds since the Unix epoch (UTC), identical on every backend.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::{Permission, event::EventKind};

/// Microseconds since the Unix epoch, now.
pub fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_micros()).unwrap_or(i64::MAX)
        })
}

/// A human account, without its password hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// UUIDv7.
    pub id: String,
    /// Unique login name.
    pub username: String,
    /// Name shown to others.
    pub display_name: String,
    /// Contact address; may be empty.
    pub email: String,
    /// Server-wide admin: manages users and roles.
    pub is_admin: bool,
    /// Disabled users cannot log in.
    pub disabled: bool,
    /// Free-form preferences (notification settings and the like).
    pub preferences: std::collections::BTreeMap<String, String>,
    /// Creation time.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
}

/// What creating a user needs; the password arrives already hashed.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Unique login name.
    pub username: String,
    /// Name shown to others.
    pub display_name: String,
    /// Contact address.
    pub email: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Server-wide admin flag.
    pub is_admin: bool,
}

/// A partial change of a user; `None` leaves a field alone.
#[derive(Debug, Clone, Default)]
pub struct UserChanges {
    /// New display name.
    pub display_name: Option<String>,
    /// New email.
    pub email: Option<String>,
    /// New admin flag.
    pub is_admin: Option<bool>,
    /// New disabled flag.
    pub disabled: Option<bool>,
    /// New argon2id hash; also revokes the user's sessions but `keep_session`.
    pub password_hash: Option<String>,
    /// Token hash of a session that survives a password change (the one
    /// that made it).
    pub keep_session: Option<String>,
    /// New preferences (replacing the old ones).
    pub preferences: Option<std::collections::BTreeMap<String, String>>,
}

/// A named set of permissions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    /// UUID; built-in roles have fixed ids.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// What the role is for.
    pub description: String,
    /// Granted permissions, sorted.
    pub permissions: Vec<Permission>,
    /// Built-in roles are read-only.
    pub builtin: bool,
}

/// A partial change of a role.
#[derive(Debug, Clone, Default)]
pub struct RoleChanges {
    /// New name.
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New permission set.
    pub permissions: Option<Vec<Permission>>,
}

/// A login session; the token itself is never stored, only its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSession {
    /// SHA-256 of the bearer token, hex.
    pub token_hash: String,
    /// The user it authenticates.
    pub user_id: String,
    /// When it was created.
    pub created_at: i64,
    /// Last request that used it.
    pub last_used_at: i64,
}

/// One row of the outbox: a state change. Events are delivered in
/// [`EventPosition`] order: events of one project (or of one entity outside
/// projects) in commit order, every event once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Unique; what a client names to resume after this event.
    pub id: i64,
    /// The writing transaction on PostgreSQL (its `pg_current_xact_id()`);
    /// 0 on SQLite, whose single writer commits in id order, and for
    /// events written before transactions were recorded.
    pub txid: i64,
    /// What happened, e.g. `user.created`.
    pub kind: EventKind,
    /// The project the change belongs to, if any (for RBAC filtering).
    pub project_id: Option<String>,
    /// The entity changed.
    pub entity_id: String,
    /// The work item the change concerns, if any (its thread's stream
    /// picks these out).
    pub work_item_id: Option<String>,
    /// JSON describing the change.
    pub payload: String,
    /// When it was written.
    pub created_at: i64,
}

impl Event {
    /// Where the event stands in delivery order.
    pub fn position(&self) -> EventPosition {
        EventPosition {
            txid: self.txid,
            id: self.id,
        }
    }
}

/// A place in the order events are delivered in: by writing transaction,
/// then by id. A reader on PostgreSQL takes only the events of
/// transactions older than every one still running, so an event never
/// becomes visible behind a position already passed. The start of the
/// outbox is the default, `(0, 0)`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct EventPosition {
    /// The writing transaction (compared first).
    pub txid: i64,
    /// The event's id (compared within one transaction).
    pub id: i64,
}

/// One counter an attempt is counted under, e.g. a login's username and
/// peer address together, or a user's outbound mail: at most `limit`
/// attempts per `window_micros`, counted from the window's first attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptCounter {
    /// Which counter, e.g. `user+peer:ada|10.0.0.1` or `mail:USER_ID`.
    pub key: String,
    /// Attempts allowed in one window.
    pub limit: u32,
    /// The window's length.
    pub window_micros: i64,
    /// What is counted, as a refusal names it: "too many {what}".
    pub what: String,
}
