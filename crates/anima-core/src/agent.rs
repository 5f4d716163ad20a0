//! Agent sessions, their tasks, and the scope of the MCP token each session
//! gets. A session works on one work item: it inherits the item's
//! capabilities, speaks as an Akh, carries the skills of the item's current
//! phase, and reaches back over MCP with a token limited to that item.

use crate::{Permission, capability::Capability, error::DomainError, workflow::SkillRef};

named_enum!(
    /// Where an agent session is in its life.
    SessionStatus, "session status" {
        /// The sandbox is being set up.
        Provisioning = "provisioning",
        /// The agent works.
        Running = "running",
        /// Held; the sandbox stays.
        Paused = "paused",
        /// Finished or stopped; its token is revoked.
        Completed = "completed",
        /// Broke; its token is revoked.
        Failed = "failed",
    }
);

impl SessionStatus {
    /// Completed and failed sessions are over: no token, no writes.
    pub fn is_final(self) -> bool {
        matches!(self, SessionStatus::Completed | SessionStatus::Failed)
    }
}

named_enum!(
    /// Where a task of a session stands.
    TaskStatus, "task status" {
        /// Not started.
        Pending = "pending",
        /// Being worked on.
        InProgress = "in_progress",
        /// Finished.
        Done = "done",
        /// Given up.
        Failed = "failed",
    }
);

/// Longest note on a task change, in characters.
pub const MAX_TASK_NOTE_CHARS: usize = 2_000;

/// What an MCP token allows when the session starts without a narrower set.
pub const DEFAULT_MCP_PERMISSIONS: &[Permission] = &[
    Permission::WorkItemRead,
    Permission::ThreadRead,
    Permission::ThreadPost,
    Permission::TaskUpdate,
    Permission::DecisionRequest,
    Permission::DocumentRead,
];

/// Heavy work on a work item, in a sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentSession {
    /// UUIDv7.
    pub id: String,
    /// The work item it works on.
    pub work_item_id: String,
    /// Its project.
    pub project_id: String,
    /// The persona it writes as.
    pub akh_id: String,
    /// Where it is in its life.
    pub status: SessionStatus,
    /// Copied from the work item when the session started.
    pub capabilities: Vec<Capability>,
    /// Skills of the phase the work item was in when it started.
    pub skills: Vec<SkillRef>,
    /// That phase.
    pub phase_id: String,
    /// The provider's id for the sandbox, once provisioned.
    pub vm_id: String,
    /// Why it failed, if it did.
    pub error: String,
    /// Its agent's exit code, once it exited (-1: a signal ended it).
    pub exit_code: Option<i32>,
    /// Keep the sandbox after the session ends (for debugging).
    pub keep_after_stop: bool,
    /// Creation time.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
}

/// What starting a session needs.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// The work item.
    pub work_item_id: String,
    /// The Akh it speaks as.
    pub akh_id: String,
    /// Keep the sandbox after the session ends.
    pub keep_after_stop: bool,
    /// SHA-256 of its MCP token.
    pub token_hash: String,
    /// What the token allows.
    pub permissions: Vec<Permission>,
}

/// A unit of work within a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    /// UUIDv7.
    pub id: String,
    /// The session it belongs to.
    pub session_id: String,
    /// The session's work item.
    pub work_item_id: String,
    /// What it is.
    pub title: String,
    /// Where it stands.
    pub status: TaskStatus,
    /// A short note on the last change.
    pub note: String,
    /// Creation time.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
}

/// Longest reason given for a login, in characters.
pub const MAX_LOGIN_REASON_CHARS: usize = 1_000;

/// One login into a session's sandbox, for the audit log: who asked and
/// why (recorded when the credentials are issued), then what happened in
/// the shell (reported by the provider).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionLogin {
    /// The username of its one-time credentials.
    pub id: String,
    /// The session logged into.
    pub session_id: String,
    /// The user the credentials were issued to.
    pub user_id: String,
    /// Why, as they said.
    pub reason: String,
    /// When the credentials were issued.
    pub created_at: i64,
    /// Until when they could be used.
    pub expires_at: i64,
    /// When they were used, if they were.
    pub started_at: Option<i64>,
    /// When the shell ended, if it has.
    pub ended_at: Option<i64>,
    /// The command asked for (`ssh host COMMAND`), if any; what was typed
    /// and shown is its recording of [`TerminalEvent`]s.
    pub commands: Vec<String>,
    /// Bytes the user sent.
    pub bytes_in: i64,
    /// Bytes the shell sent back.
    pub bytes_out: i64,
    /// The shell's exit status (-1: a signal), once it ended.
    pub exit_status: Option<i32>,
    /// The client's address.
    pub peer: String,
}

/// The issue of login credentials, as recorded.
#[derive(Debug, Clone)]
pub struct NewSessionLogin {
    /// The credentials' username.
    pub id: String,
    /// The session.
    pub session_id: String,
    /// Who they are for.
    pub user_id: String,
    /// Why.
    pub reason: String,
    /// Until when they are valid.
    pub expires_at: i64,
}

/// Bytes that crossed a login's terminal, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TerminalEvent {
    /// Since the shell opened, in microseconds.
    pub offset_micros: i64,
    /// Typed by the user (else shown by the shell).
    pub input: bool,
    /// The raw bytes.
    pub data: Vec<u8>,
}

/// Most bytes one terminal event may carry.
pub const MAX_TERMINAL_EVENT_BYTES: usize = 64 * 1024;

/// What a provider reports of a login's shell: its state so far and the
/// terminal events it has not had acknowledged.
#[derive(Debug, Clone, Default)]
pub struct LoginReport {
    /// The login.
    pub id: String,
    /// When the credentials were used.
    pub started_at: i64,
    /// When the shell ended, once it has.
    pub ended_at: Option<i64>,
    /// The command asked for (`ssh host COMMAND`), if any.
    pub commands: Vec<String>,
    /// Terminal traffic from `first_event_seq` on.
    pub events: Vec<TerminalEvent>,
    /// The sequence number of `events[0]`.
    pub first_event_seq: i64,
    /// Bytes in so far.
    pub bytes_in: i64,
    /// Bytes out so far.
    pub bytes_out: i64,
    /// The exit status, once it ended.
    pub exit_status: Option<i32>,
    /// The client's address.
    pub peer: String,
}

/// What a valid MCP token stands for, looked up on every request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpScope {
    /// The session the token was issued to.
    pub session_id: String,
    /// The only work item it may touch.
    pub work_item_id: String,
    /// That item's project.
    pub project_id: String,
    /// The Akh its writes are attributed to.
    pub akh_id: String,
    /// What it may do there.
    pub permissions: Vec<Permission>,
}

impl McpScope {
    /// Refuses an action the token does not allow.
    pub fn require(&self, permission: Permission) -> Result<(), DomainError> {
        if self.permissions.contains(&permission) {
            Ok(())
        } else {
            Err(DomainError::permission_denied(format!(
                "this session's token does not allow {permission}"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_and_end() {
        for status in [
            SessionStatus::Provisioning,
            SessionStatus::Running,
            SessionStatus::Paused,
            SessionStatus::Completed,
            SessionStatus::Failed,
        ] {
            assert_eq!(status.as_str().parse::<SessionStatus>(), Ok(status));
        }
        assert!(SessionStatus::Completed.is_final());
        assert!(!SessionStatus::Paused.is_final());
        assert!("finished".parse::<TaskStatus>().is_err());
    }

    #[test]
    fn scopes_refuse_what_they_do_not_grant() {
        let scope = McpScope {
            session_id: String::new(),
            work_item_id: String::new(),
            project_id: String::new(),
            akh_id: String::new(),
            permissions: DEFAULT_MCP_PERMISSIONS.to_vec(),
        };
        assert!(scope.require(Permission::ThreadPost).is_ok());
        assert!(scope.require(Permission::WorkItemDelete).is_err());
    }
}
