//! Domain errors: a status class plus a stable reason code that clients can
//! match on, and a human message that they should only display.

use std::fmt;

/// The class of a failure; maps one-to-one onto gRPC status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The request is malformed; retrying it unchanged cannot succeed.
    InvalidArgument,
    /// No valid credentials were presented.
    Unauthenticated,
    /// The caller is known but lacks the permission.
    PermissionDenied,
    /// The named entity does not exist (or the caller may not know it does).
    NotFound,
    /// An entity with the same unique key exists.
    AlreadyExists,
    /// The system is not in a state that allows the operation.
    FailedPrecondition,
    /// A concurrent change won; re-read and retry.
    Aborted,
    /// Too many attempts; wait before retrying.
    ResourceExhausted,
    /// The operation exists in the API but is not served yet.
    Unimplemented,
    /// A server-side failure, not the caller's fault.
    Internal,
    /// A dependency (database, peer service) is unreachable.
    Unavailable,
}

/// Stable reason codes carried in `google.rpc.ErrorInfo.reason`.
pub mod reason {
    /// A string field exceeds its maximum length.
    pub const FIELD_TOO_LONG: &str = "FIELD_TOO_LONG";
    /// A required field is empty.
    pub const FIELD_REQUIRED: &str = "FIELD_REQUIRED";
    /// A field holds a value outside its allowed set or shape.
    pub const INVALID_FIELD: &str = "INVALID_FIELD";
    /// An identifier is not a UUID.
    pub const INVALID_ID: &str = "INVALID_ID";
    /// A page token was not issued by this server for this query.
    pub const INVALID_PAGE_TOKEN: &str = "INVALID_PAGE_TOKEN";
    /// `page_size` is negative or above the maximum.
    pub const INVALID_PAGE_SIZE: &str = "INVALID_PAGE_SIZE";
    /// An `update_mask` names a path the resource does not have.
    pub const INVALID_UPDATE_MASK: &str = "INVALID_UPDATE_MASK";
    /// No or unusable credentials.
    pub const UNAUTHENTICATED: &str = "UNAUTHENTICATED";
    /// The session token expired after idle time.
    pub const SESSION_EXPIRED: &str = "SESSION_EXPIRED";
    /// Username or password wrong (deliberately not saying which).
    pub const INVALID_CREDENTIALS: &str = "INVALID_CREDENTIALS";
    /// Too many login attempts (or other requests) in a short time.
    pub const RATE_LIMITED: &str = "RATE_LIMITED";
    /// The caller already holds as many live streams as one user may.
    pub const TOO_MANY_STREAMS: &str = "TOO_MANY_STREAMS";
    /// The user already has the most uploads in progress this server
    /// allows.
    pub const TOO_MANY_UPLOADS: &str = "TOO_MANY_UPLOADS";
    /// Too much work is queued (e.g. password checks); retry shortly.
    pub const SERVER_BUSY: &str = "SERVER_BUSY";
    /// The caller lacks the permission for the RPC.
    pub const PERMISSION_DENIED: &str = "PERMISSION_DENIED";
    /// The RPC is not mapped to a permission, so it is never served.
    pub const RPC_NOT_MAPPED: &str = "RPC_NOT_MAPPED";
    /// The user does not exist.
    pub const USER_NOT_FOUND: &str = "USER_NOT_FOUND";
    /// The username is taken.
    pub const USERNAME_TAKEN: &str = "USERNAME_TAKEN";
    /// The role does not exist.
    pub const ROLE_NOT_FOUND: &str = "ROLE_NOT_FOUND";
    /// The role name is taken.
    pub const ROLE_NAME_TAKEN: &str = "ROLE_NAME_TAKEN";
    /// Built-in roles cannot be changed or deleted.
    pub const ROLE_BUILTIN: &str = "ROLE_BUILTIN";
    /// The role is still bound to members.
    pub const ROLE_IN_USE: &str = "ROLE_IN_USE";
    /// A permission name is not one the server knows.
    pub const UNKNOWN_PERMISSION: &str = "UNKNOWN_PERMISSION";
    /// The project does not exist.
    pub const PROJECT_NOT_FOUND: &str = "PROJECT_NOT_FOUND";
    /// An admin may not remove their own admin flag or account.
    pub const LAST_ADMIN: &str = "LAST_ADMIN";
    /// The password is too weak.
    pub const WEAK_PASSWORD: &str = "WEAK_PASSWORD";
    /// The project is archived: it can be read but not changed.
    pub const PROJECT_ARCHIVED: &str = "PROJECT_ARCHIVED";
    /// The last Owner of a project cannot leave or be demoted.
    pub const LAST_OWNER: &str = "LAST_OWNER";
    /// The role (or the member's current role) holds a permission the
    /// caller does not hold in the project.
    pub const ROLE_ESCALATION: &str = "ROLE_ESCALATION";
    /// The user is not a member of the project.
    pub const MEMBER_NOT_FOUND: &str = "MEMBER_NOT_FOUND";
    /// The plan does not exist (in this project).
    pub const PLAN_NOT_FOUND: &str = "PLAN_NOT_FOUND";
    /// The work item does not exist (in this project).
    pub const WORK_ITEM_NOT_FOUND: &str = "WORK_ITEM_NOT_FOUND";
    /// A work item key is not of the form `WI-<n>`.
    pub const INVALID_KEY: &str = "INVALID_KEY";
    /// The description revision does not exist for this work item.
    pub const REVISION_NOT_FOUND: &str = "REVISION_NOT_FOUND";
    /// The edit was based on a description revision that is no longer current.
    pub const STALE_REVISION: &str = "STALE_REVISION";
    /// The phase is not one of the work item's workflow.
    pub const PHASE_NOT_IN_WORKFLOW: &str = "PHASE_NOT_IN_WORKFLOW";
    /// The workflow does not exist.
    pub const WORKFLOW_NOT_FOUND: &str = "WORKFLOW_NOT_FOUND";
    /// Built-in workflows are read-only.
    pub const WORKFLOW_BUILTIN: &str = "WORKFLOW_BUILTIN";
    /// The workflow (or one of its phases) is still used by plans or work items.
    pub const WORKFLOW_IN_USE: &str = "WORKFLOW_IN_USE";
    /// The workflow name is taken.
    pub const WORKFLOW_NAME_TAKEN: &str = "WORKFLOW_NAME_TAKEN";
    /// The Akh does not exist.
    pub const AKH_NOT_FOUND: &str = "AKH_NOT_FOUND";
    /// The Akh name is taken.
    pub const AKH_NAME_TAKEN: &str = "AKH_NAME_TAKEN";
    /// A capability is malformed.
    pub const INVALID_CAPABILITY: &str = "INVALID_CAPABILITY";
    /// The message does not exist.
    pub const MESSAGE_NOT_FOUND: &str = "MESSAGE_NOT_FOUND";
    /// Only Akh (AI) messages can become description revisions.
    pub const NOT_PROMOTABLE: &str = "NOT_PROMOTABLE";
    /// This caller may not post this kind of message.
    pub const MESSAGE_KIND_NOT_ALLOWED: &str = "MESSAGE_KIND_NOT_ALLOWED";
    /// The decision does not exist.
    pub const DECISION_NOT_FOUND: &str = "DECISION_NOT_FOUND";
    /// The decision was already resolved or cancelled.
    pub const DECISION_NOT_OPEN: &str = "DECISION_NOT_OPEN";
    /// The answer is not one of the decision's choices.
    pub const ANSWER_NOT_A_CHOICE: &str = "ANSWER_NOT_A_CHOICE";
    /// A stream cursor is negative or beyond the newest event.
    pub const INVALID_CURSOR: &str = "INVALID_CURSOR";
    /// A stream consumer fell too far behind; resume from its last event id.
    pub const SLOW_CONSUMER: &str = "SLOW_CONSUMER";
    /// The agent session does not exist.
    pub const SESSION_NOT_FOUND: &str = "SESSION_NOT_FOUND";
    /// The agent session has completed or failed.
    pub const SESSION_ENDED: &str = "SESSION_ENDED";
    /// The task does not exist.
    pub const TASK_NOT_FOUND: &str = "TASK_NOT_FOUND";
    /// No agent provider is configured, so sessions cannot start.
    pub const NO_AGENT_PROVIDER: &str = "NO_AGENT_PROVIDER";
    /// The agent provider failed to set up or tear down a sandbox.
    pub const AGENT_PROVIDER_FAILED: &str = "AGENT_PROVIDER_FAILED";
    /// A secret capability's key is not in its store (or is not a small
    /// regular value there) when a session starts.
    pub const SECRET_NOT_FOUND: &str = "SECRET_NOT_FOUND";
    /// A secret capability names a store this server's administrators did
    /// not configure.
    pub const SECRET_STORE_UNKNOWN: &str = "SECRET_STORE_UNKNOWN";
    /// A network zone capability names a zone this server's
    /// administrators did not define.
    pub const NETWORK_ZONE_UNKNOWN: &str = "NETWORK_ZONE_UNKNOWN";
    /// No sandbox has this id (never made, or destroyed).
    pub const VM_NOT_FOUND: &str = "VM_NOT_FOUND";
    /// No published skill has this name (and version).
    pub const SKILL_NOT_FOUND: &str = "SKILL_NOT_FOUND";
    /// This version of the skill is published already; versions never change.
    pub const SKILL_VERSION_EXISTS: &str = "SKILL_VERSION_EXISTS";
    /// A skill bundle is over the size or file count limit.
    pub const SKILL_TOO_LARGE: &str = "SKILL_TOO_LARGE";
    /// No login into a session has this id.
    pub const LOGIN_NOT_FOUND: &str = "LOGIN_NOT_FOUND";
    /// The login has ended; its record no longer changes.
    pub const LOGIN_ENDED: &str = "LOGIN_ENDED";
    /// A login report's terminal events do not follow the recorded ones.
    pub const LOGIN_RECORD_GAP: &str = "LOGIN_RECORD_GAP";
    /// The agent provider cannot open shells (no SSH server, or no audit).
    pub const LOGIN_UNAVAILABLE: &str = "LOGIN_UNAVAILABLE";
    /// Another mailbox has this address.
    pub const MAILBOX_EXISTS: &str = "MAILBOX_EXISTS";
    /// The mailbox's address has an account on the mail server that Anima
    /// did not create; only a server admin's adoption makes it usable.
    pub const MAILBOX_REFUSED: &str = "MAILBOX_REFUSED";
    /// The address is outside the mail domains Anima may create addresses
    /// in.
    pub const MAIL_DOMAIN_NOT_ALLOWED: &str = "MAIL_DOMAIN_NOT_ALLOWED";
    /// No mailbox has this id.
    pub const MAILBOX_NOT_FOUND: &str = "MAILBOX_NOT_FOUND";
    /// A mailbox must keep serving at least one project.
    pub const MAILBOX_NEEDS_PROJECT: &str = "MAILBOX_NEEDS_PROJECT";
    /// The mailbox was deleted or rotated away and is being dropped.
    pub const MAILBOX_DROPPING: &str = "MAILBOX_DROPPING";
    /// Only a dropping mailbox can be removed.
    pub const MAILBOX_NOT_DROPPING: &str = "MAILBOX_NOT_DROPPING";
    /// No fetched mail has this id.
    pub const INBOUND_MAIL_NOT_FOUND: &str = "INBOUND_MAIL_NOT_FOUND";
    /// The mail was posted or dismissed already.
    pub const INBOUND_MAIL_SETTLED: &str = "INBOUND_MAIL_SETTLED";
    /// A delivery was reported for a mail that is not being sent.
    pub const OUTBOUND_NOT_SENDING: &str = "OUTBOUND_NOT_SENDING";
    /// No document has this id.
    pub const DOCUMENT_NOT_FOUND: &str = "DOCUMENT_NOT_FOUND";
    /// The document is bigger than the library takes.
    pub const DOCUMENT_TOO_LARGE: &str = "DOCUMENT_TOO_LARGE";
    /// Content that must not be empty is.
    pub const EMPTY_CONTENT: &str = "EMPTY_CONTENT";
    /// The library holds no blob with this SHA-256.
    pub const BLOB_NOT_FOUND: &str = "BLOB_NOT_FOUND";
    /// The client's stream broke off before the upload was complete;
    /// nothing was stored.
    pub const UPLOAD_INTERRUPTED: &str = "UPLOAD_INTERRUPTED";
    /// No mailbox serves the project, so its mail cannot be sent.
    pub const NO_MAILBOX: &str = "NO_MAILBOX";
    /// The work item is not in one of the mailbox's projects.
    pub const WORK_ITEM_NOT_IN_MAILBOX: &str = "WORK_ITEM_NOT_IN_MAILBOX";
    /// This server has no library to keep documents in (`library_url` is
    /// not set).
    pub const NO_LIBRARY_SERVICE: &str = "NO_LIBRARY_SERVICE";
    /// Another library service took over the index this one wrote (this
    /// one lost its writer lock); it writes no more.
    pub const INDEX_TAKEN_OVER: &str = "INDEX_TAKEN_OVER";
    /// No repository with that id (or not one the caller may see).
    pub const REPOSITORY_NOT_FOUND: &str = "REPOSITORY_NOT_FOUND";
    /// The project has a repository by that name already.
    pub const REPOSITORY_NAME_TAKEN: &str = "REPOSITORY_NAME_TAKEN";
    /// The repository's forge is on a host the server is not configured to
    /// read (`forge_hosts`).
    pub const FORGE_HOST_NOT_ALLOWED: &str = "FORGE_HOST_NOT_ALLOWED";
    /// The forge refused the repository's credential (401), or does not
    /// let it read what was asked (403).
    pub const FORGE_UNAUTHORIZED: &str = "FORGE_UNAUTHORIZED";
    /// The forge limits requests with this credential for now; the message
    /// says until when.
    pub const FORGE_RATE_LIMITED: &str = "FORGE_RATE_LIMITED";
    /// The forge has no such repository, pull request or issue (or hides
    /// it from the credential).
    pub const FORGE_NOT_FOUND: &str = "FORGE_NOT_FOUND";
    /// The forge did not answer, or failed, and nothing it said before is
    /// kept.
    pub const FORGE_UNAVAILABLE: &str = "FORGE_UNAVAILABLE";
    /// The forge answered something Anima cannot use (malformed, too
    /// large, unexpected).
    pub const FORGE_BAD_RESPONSE: &str = "FORGE_BAD_RESPONSE";
    /// The forge redirected the request; Anima follows no redirect from a
    /// forge, since the credential would go with it.
    pub const FORGE_REDIRECTED: &str = "FORGE_REDIRECTED";
    /// This server has no anima-ai to ask (`ai_url` is not set).
    pub const NO_AI_SERVICE: &str = "NO_AI_SERVICE";
    /// anima-ai failed in a way it did not name.
    pub const AI_SERVICE_FAILED: &str = "AI_SERVICE_FAILED";
    /// The request names a model tier that does not exist.
    pub const UNKNOWN_TIER: &str = "UNKNOWN_TIER";
    /// No configured model can answer this tier's request.
    pub const NO_MODEL_FOR_TIER: &str = "NO_MODEL_FOR_TIER";
    /// Every model configured for the tier failed or timed out.
    pub const MODEL_UNAVAILABLE: &str = "MODEL_UNAVAILABLE";
    /// The model answered, twice, with something other than what was asked.
    pub const MALFORMED_MODEL_REPLY: &str = "MALFORMED_MODEL_REPLY";
    /// An MCP token asked for a work item other than its own.
    pub const OUT_OF_SCOPE: &str = "OUT_OF_SCOPE";
    /// The service behind this RPC has not been built yet.
    pub const NOT_IMPLEMENTED: &str = "NOT_IMPLEMENTED";
    /// An unexpected server failure.
    pub const INTERNAL: &str = "INTERNAL";
    /// The storage backend is unreachable.
    pub const STORAGE_UNAVAILABLE: &str = "STORAGE_UNAVAILABLE";
}

/// A failure with a stable reason code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct DomainError {
    /// The status class.
    pub code: ErrorCode,
    /// The stable reason, one of [`reason`].
    pub reason: &'static str,
    /// Human-readable detail; never parse it.
    pub message: String,
}

impl fmt::Display for DomainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.reason)
    }
}

impl DomainError {
    /// Builds an error of any class.
    pub fn new(code: ErrorCode, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
        }
    }

    /// `INVALID_ARGUMENT` with the given reason.
    pub fn invalid_argument(reason: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidArgument, reason, message)
    }

    /// `NOT_FOUND` with the given reason.
    pub fn not_found(reason: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, reason, message)
    }

    /// `PERMISSION_DENIED`.
    pub fn permission_denied(message: impl Into<String>) -> Self {
        Self::new(
            ErrorCode::PermissionDenied,
            reason::PERMISSION_DENIED,
            message,
        )
    }

    /// `UNAUTHENTICATED` with the given reason.
    pub fn unauthenticated(reason: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthenticated, reason, message)
    }

    /// `FAILED_PRECONDITION` with the given reason.
    pub fn failed_precondition(reason: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorCode::FailedPrecondition, reason, message)
    }

    /// `ABORTED` with the given reason: a concurrent change won.
    pub fn aborted(reason: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Aborted, reason, message)
    }

    /// `INTERNAL`; the message is for logs, clients see a generic text.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, reason::INTERNAL, message)
    }
}
