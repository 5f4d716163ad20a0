//! Anima storage.
//!
//! One trait, [`Store`], with two backends that share their SQL: PostgreSQL
//! for production (several servers on one database) and an embedded SQLite
//! for `anima up`. Both are exercised by one conformance suite
//! (`conformance`, with the `testing` feature). Every state change writes an [`Event`] row in the same
//! transaction as the change: the outbox that live streams read.
//!
//! [`Event`]: anima_core::model::Event

mod backend;
#[cfg(feature = "testing")]
pub mod conformance;
mod error;
mod migrations;

use std::sync::Arc;

use anima_core::{
    DomainError, Permission,
    agent::{
        AgentSession, LoginReport, McpScope, NewSession, NewSessionLogin, SessionLogin,
        SessionStatus, Task, TaskStatus, TerminalEvent,
    },
    capability::Capability,
    document::{Document, NewDocument, TextPart},
    mail::{
        InboundRecord, InboundState, Mailbox, MailboxChanges, MailboxState, NewInbound, NewMailbox,
        OutboundClaim, OutboundOutcome,
    },
    model::{
        AttemptCounter, AuthSession, Event, EventPosition, NewUser, Role, RoleChanges, User,
        UserChanges,
    },
    paging::PageRequest,
    planning::{
        Actor, Akh, AkhChanges, DescriptionRevision, Member, NewPlan, NewWorkItem, Plan,
        PlanChanges, Project, ProjectChanges, ProjectStatus, WorkItem, WorkItemChanges,
        WorkItemKey, WorkItemStatus,
    },
    repository::{NewRepository, Repository},
    skill::{NewSkill, Skill},
    thread::{Decision, DecisionState, Message, NewDecision, NewMessage},
    workflow::{Phase, SkillRef, Workflow, WorkflowChanges},
};
use async_trait::async_trait;
use tokio::sync::watch;

pub use backend::{PostgresStore, SqliteStore};
pub use error::{StoreError, StoreResult};

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

/// Everything anima-server persists: the root of the storage traits. Each
/// part is its own trait so its methods read as one domain; every backend
/// implements them all, and `dyn Store` reaches all of them.
///
/// Implementations must make each method atomic and write the outbox event
/// of a change in the same transaction. The one exception is
/// [`AccountStore::touch_session`]: recording that a session was used is
/// bookkeeping, not a change anyone subscribes to.
#[async_trait]
pub trait Store:
    AccountStore
    + ProjectStore
    + PlanStore
    + WorkItemStore
    + WorkflowStore
    + AkhStore
    + ThreadStore
    + AgentStore
    + MailStore
    + DocumentStore
    + RepositoryStore
    + SkillStore
    + Send
    + Sync
    + 'static
{
    /// Which backend this is, for logs and diagnostics.
    fn backend(&self) -> &'static str;

    /// Outbox events after `after`, in delivery order: on PostgreSQL only
    /// those of transactions older than every transaction still running,
    /// so none can later commit behind them.
    async fn events_after(&self, after: EventPosition, limit: i64) -> StoreResult<Vec<Event>>;

    /// Outbox events of one work item after `after`, as [`Self::events_after`].
    async fn work_item_events_after(
        &self,
        work_item_id: &str,
        after: EventPosition,
        limit: i64,
    ) -> StoreResult<Vec<Event>>;

    /// The position of the newest event [`Self::events_after`] would
    /// deliver now (the start before the first event).
    async fn last_event(&self) -> StoreResult<EventPosition>;

    /// Whether committed events wait behind an older transaction that
    /// still runs (PostgreSQL): [`Self::events_after`] delivers them once
    /// it ends, so a reader that was told of a commit looks again soon.
    async fn events_held_back(&self) -> StoreResult<bool>;

    /// The committed events after `after` that wait behind an older writer
    /// ([`Self::events_held_back`]), for a cache that must forget what
    /// they changed at once and needs no order; a stream must never take
    /// them from here.
    async fn held_back_events(&self, after: EventPosition, limit: i64) -> StoreResult<Vec<Event>>;

    /// Where the event `id` stands; `None` when there is no such event.
    /// Id 0 is the start. Clients resume by event id; the server maps it.
    async fn event_position(&self, id: i64) -> StoreResult<Option<EventPosition>>;

    /// A signal that changes after every commit that may have written
    /// events — this process's, and on PostgreSQL other instances' too
    /// (LISTEN/NOTIFY). Readers re-read the outbox when it changes.
    fn commits(&self) -> watch::Receiver<u64>;

    /// Whether [`Self::commits`] hears every instance's commits: the number
    /// of the connection that brings other instances' (PostgreSQL LISTEN),
    /// counting up with each reconnection, and 0 while it is down, when
    /// other instances' changes arrive only by polling. A cache that other
    /// instances' events keep fresh is trusted only while it is not 0, and
    /// flushed when it changes. Always 1 on SQLite: one process owns it.
    fn feed(&self) -> watch::Receiver<u64>;
}

/// Users, login sessions and roles.
#[async_trait]
pub trait AccountStore: Send + Sync {
    /// Creates a user; a taken username is `ALREADY_EXISTS`/`USERNAME_TAKEN`.
    async fn create_user(&self, user: NewUser) -> StoreResult<User>;
    /// A user by id.
    async fn get_user(&self, id: &str) -> StoreResult<User>;
    /// A user and password hash by username, if the user exists.
    async fn find_credentials(&self, username: &str) -> StoreResult<Option<Credentials>>;
    /// Users in creation order; with `visible_to`, only that user and those
    /// sharing a project with them.
    async fn list_users(
        &self,
        visible_to: Option<&str>,
        page: &PageRequest,
    ) -> StoreResult<Page<User>>;
    /// Whether two users are members of one project.
    async fn share_a_project(&self, a: &str, b: &str) -> StoreResult<bool>;
    /// Applies a partial change; a password change revokes every session.
    /// Demoting or disabling the last active admin is
    /// `FAILED_PRECONDITION`/`LAST_ADMIN`, checked in the same transaction
    /// (admin changes are serialised, so two cannot race past it).
    async fn update_user(&self, id: &str, changes: UserChanges) -> StoreResult<User>;
    /// Deletes a user with their sessions and bindings; the last Owner of
    /// a project is `FAILED_PRECONDITION`/`LAST_OWNER`, the last active
    /// admin `LAST_ADMIN`.
    async fn delete_user(&self, id: &str) -> StoreResult<()>;
    /// How many users exist (to know whether to bootstrap an admin).
    async fn count_users(&self) -> StoreResult<i64>;

    /// Counts one attempt (a login, an outbound mail, …) under each
    /// counter, in order, in one transaction shared by every instance. The
    /// first counter whose window already holds its limit refuses the
    /// attempt (`RESOURCE_EXHAUSTED`/`RATE_LIMITED`, naming what and when
    /// to retry) and nothing is counted, so refused attempts never lock
    /// out a later counter. Ended windows, of any counter, are pruned.
    async fn count_attempt(&self, counters: &[AttemptCounter], now: i64) -> StoreResult<()>;
    /// Forgets the attempts counted under these keys (after a login
    /// succeeded).
    async fn forget_attempts(&self, keys: &[String]) -> StoreResult<()>;

    /// Stores a new session under the hash of its token.
    async fn create_session(&self, session: AuthSession) -> StoreResult<()>;
    /// A session by token hash.
    async fn get_session(&self, token_hash: &str) -> StoreResult<Option<AuthSession>>;
    /// A session by token hash with its user, in one read (every
    /// authenticated request needs both).
    async fn session_with_user(&self, token_hash: &str)
    -> StoreResult<Option<(AuthSession, User)>>;
    /// Records use of a session.
    async fn touch_session(&self, token_hash: &str, now: i64) -> StoreResult<()>;
    /// Revokes one session; true when it existed.
    async fn delete_session(&self, token_hash: &str) -> StoreResult<bool>;
    /// Revokes every session of a user but `keep` (a token hash), if given.
    async fn delete_user_sessions(&self, user_id: &str, keep: Option<&str>) -> StoreResult<u64>;

    /// Roles by name order of creation (built-ins first).
    async fn list_roles(&self, page: &PageRequest) -> StoreResult<Page<Role>>;
    /// A role by id.
    async fn get_role(&self, id: &str) -> StoreResult<Role>;
    /// Creates a custom role.
    async fn create_role(
        &self,
        name: &str,
        description: &str,
        permissions: &[Permission],
    ) -> StoreResult<Role>;
    /// Changes a custom role; built-ins are `FAILED_PRECONDITION`/`ROLE_BUILTIN`.
    async fn update_role(&self, id: &str, changes: RoleChanges) -> StoreResult<Role>;
    /// Deletes a custom role that nobody holds.
    async fn delete_role(&self, id: &str) -> StoreResult<()>;
}

/// Which projects [`ProjectStore::list_projects`] returns.
#[derive(Debug, Clone, Default)]
pub struct ProjectFilter {
    /// Only projects this user is a member of; `None` for all (services).
    pub member: Option<String>,
    /// Only projects in this status.
    pub status: Option<ProjectStatus>,
}

/// Which work items [`WorkItemStore::list_work_items`] returns.
#[derive(Debug, Clone, Default)]
pub struct WorkItemFilter {
    /// Only items of this plan.
    pub plan_id: Option<String>,
    /// Only items in this status.
    pub status: Option<WorkItemStatus>,
}

/// Projects and their members. Writes into an archived project fail with
/// `FAILED_PRECONDITION`/`PROJECT_ARCHIVED`.
#[async_trait]
pub trait ProjectStore: Send + Sync {
    /// Creates a project and makes `owner_id` its Owner.
    async fn create_project(
        &self,
        name: &str,
        description: &str,
        owner_id: &str,
    ) -> StoreResult<Project>;
    /// A project by id, with its stats.
    async fn get_project(&self, id: &str) -> StoreResult<Project>;
    /// Projects in creation order.
    async fn list_projects(
        &self,
        filter: &ProjectFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<Project>>;
    /// Renames or re-describes a project.
    async fn update_project(&self, id: &str, changes: ProjectChanges) -> StoreResult<Project>;
    /// Makes a project read-only; archiving an archived project is a no-op.
    async fn archive_project(&self, id: &str) -> StoreResult<Project>;
    /// Members of a project by user id.
    async fn list_members(&self, project_id: &str, page: &PageRequest)
    -> StoreResult<Page<Member>>;
    /// Binds a user to a project with a role, replacing an earlier role;
    /// demoting the last Owner is `FAILED_PRECONDITION`/`LAST_OWNER`.
    /// With `by` (the acting user), both the new role and the member's
    /// current one must hold nothing `by` does not hold in the project
    /// (`PERMISSION_DENIED`/`ROLE_ESCALATION`), checked in the same
    /// transaction.
    async fn add_member(
        &self,
        project_id: &str,
        user_id: &str,
        role_id: &str,
        by: Option<&str>,
    ) -> StoreResult<Member>;
    /// Removes a member; the last Owner stays (`LAST_OWNER`). With `by`, the
    /// member's role must hold nothing `by` does not (`ROLE_ESCALATION`).
    async fn remove_member(
        &self,
        project_id: &str,
        user_id: &str,
        by: Option<&str>,
    ) -> StoreResult<()>;
    /// The permissions a user holds in a project (empty for non-members).
    async fn project_permissions(
        &self,
        user_id: &str,
        project_id: &str,
    ) -> StoreResult<Vec<Permission>>;
}

/// Plans; their progress is computed from their work items on every read.
#[async_trait]
pub trait PlanStore: Send + Sync {
    /// Creates a plan.
    async fn create_plan(&self, plan: NewPlan) -> StoreResult<Plan>;
    /// A plan with its derived progress.
    async fn get_plan(&self, id: &str) -> StoreResult<Plan>;
    /// Plans of a project in creation order.
    async fn list_plans(&self, project_id: &str, page: &PageRequest) -> StoreResult<Page<Plan>>;
    /// Changes a plan.
    async fn update_plan(&self, id: &str, changes: PlanChanges) -> StoreResult<Plan>;
    /// Deletes a plan; its work items stay, detached from it.
    async fn delete_plan(&self, id: &str) -> StoreResult<()>;
}

/// Work items with their description history and capabilities.
#[async_trait]
pub trait WorkItemStore: Send + Sync {
    /// Creates a work item with the next free key of its project and its
    /// first description revision.
    async fn create_work_item(&self, item: NewWorkItem) -> StoreResult<WorkItem>;
    /// A work item by id.
    async fn get_work_item(&self, id: &str) -> StoreResult<WorkItem>;
    /// A work item by its key within a project.
    async fn find_work_item(&self, project_id: &str, key: WorkItemKey) -> StoreResult<WorkItem>;
    /// Work items of a project in key order.
    async fn list_work_items(
        &self,
        project_id: &str,
        filter: &WorkItemFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<WorkItem>>;
    /// Applies a partial change. A description change writes a revision and
    /// is refused with `ABORTED`/`STALE_REVISION` unless based on the
    /// current one; a phase change is checked against the workflow and
    /// records `actor` and the time.
    async fn update_work_item(
        &self,
        id: &str,
        changes: WorkItemChanges,
        actor: &Actor,
    ) -> StoreResult<WorkItem>;
    /// Deletes a work item with its history.
    async fn delete_work_item(&self, id: &str) -> StoreResult<()>;
    /// Description revisions of a work item, oldest first.
    async fn list_revisions(
        &self,
        work_item_id: &str,
        page: &PageRequest,
    ) -> StoreResult<Page<DescriptionRevision>>;
    /// Writes a new revision equal to `revision_id` (of the same item). With
    /// `base_revision_id`, refuses a stale base like an edit does.
    async fn revert_description(
        &self,
        work_item_id: &str,
        revision_id: &str,
        base_revision_id: Option<&str>,
        actor: &Actor,
    ) -> StoreResult<WorkItem>;
    /// Replaces the capabilities of a work item (already validated).
    async fn set_capabilities(
        &self,
        work_item_id: &str,
        capabilities: Vec<Capability>,
    ) -> StoreResult<Vec<Capability>>;
}

/// Workflows: the built-in ones are read-only.
#[async_trait]
pub trait WorkflowStore: Send + Sync {
    /// Workflows, built-ins first, then custom ones in creation order.
    async fn list_workflows(&self, page: &PageRequest) -> StoreResult<Page<Workflow>>;
    /// A workflow by id.
    async fn get_workflow(&self, id: &str) -> StoreResult<Workflow>;
    /// Creates a custom workflow (phases already validated).
    async fn create_workflow(
        &self,
        name: &str,
        description: &str,
        phases: Vec<Phase>,
    ) -> StoreResult<Workflow>;
    /// Changes a custom workflow; built-ins are `WORKFLOW_BUILTIN`, and
    /// dropping a phase that work items are in is `WORKFLOW_IN_USE`.
    async fn update_workflow(&self, id: &str, changes: WorkflowChanges) -> StoreResult<Workflow>;
    /// Deletes a custom workflow no plan or work item uses.
    async fn delete_workflow(&self, id: &str) -> StoreResult<()>;
}

/// Akhs, the personas AI contributions speak as.
#[async_trait]
pub trait AkhStore: Send + Sync {
    /// Akhs in creation order.
    async fn list_akhs(&self, page: &PageRequest) -> StoreResult<Page<Akh>>;
    /// An Akh by id.
    async fn get_akh(&self, id: &str) -> StoreResult<Akh>;
    /// Creates an Akh (colour already validated).
    async fn create_akh(
        &self,
        name: &str,
        description: &str,
        avatar_color: &str,
    ) -> StoreResult<Akh>;
    /// Changes an Akh.
    async fn update_akh(&self, id: &str, changes: AkhChanges) -> StoreResult<Akh>;
    /// Deletes an Akh.
    async fn delete_akh(&self, id: &str) -> StoreResult<()>;
}

/// Which way a page of a thread reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadPage {
    /// Messages with a greater sequence, oldest first.
    After(i64),
    /// Messages with a smaller sequence, newest first.
    Before(i64),
}

/// Which decisions [`ThreadStore::list_decisions`] returns; every set
/// field must match.
#[derive(Debug, Clone, Default)]
pub struct DecisionFilter {
    /// Only this project's.
    pub project_id: Option<String>,
    /// Only those assigned to this user.
    pub assignee: Option<String>,
    /// Only those in projects where this user may read threads.
    pub reader: Option<String>,
    /// Only those in this state.
    pub state: Option<DecisionState>,
}

/// How many work items of a project are in one status and phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkItemCount {
    /// The status.
    pub status: WorkItemStatus,
    /// The phase id.
    pub phase_id: String,
    /// How many.
    pub count: i64,
}

/// Threads of work items, the outbound mail queue, human decisions, and the
/// read models of the dashboard.
#[async_trait]
pub trait ThreadStore: Send + Sync {
    /// Appends a message to its work item's thread with the next sequence
    /// and records `message.posted` (whose payload is the message).
    /// Outbound email is queued for the mail worker in the same
    /// transaction. A repeated idempotency key returns the first message.
    async fn post_message(&self, message: NewMessage) -> StoreResult<Message>;
    /// A message by id.
    async fn get_message(&self, id: &str) -> StoreResult<Message>;
    /// Up to `limit` messages of a thread from a position.
    async fn list_messages(
        &self,
        work_item_id: &str,
        page: ThreadPage,
        limit: i64,
    ) -> StoreResult<Vec<Message>>;
    /// Outbound email waiting to be sent, oldest first.
    async fn queued_outbound_mail(&self, limit: i64) -> StoreResult<Vec<Message>>;

    /// Records that a work item needs a human.
    async fn request_decision(&self, decision: NewDecision) -> StoreResult<Decision>;
    /// A decision by id.
    async fn get_decision(&self, id: &str) -> StoreResult<Decision>;
    /// Decisions oldest first.
    async fn list_decisions(
        &self,
        filter: &DecisionFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<Decision>>;
    /// Answers an open decision and posts the answer into the thread;
    /// answering twice is `FAILED_PRECONDITION`/`DECISION_NOT_OPEN`.
    async fn resolve_decision(
        &self,
        id: &str,
        answer: &str,
        user_id: &str,
    ) -> StoreResult<Decision>;
    /// Withdraws an open decision and says so in the thread.
    async fn cancel_decision(&self, id: &str, reason: &str, actor: &Actor)
    -> StoreResult<Decision>;

    /// Work items of a project counted by status and phase.
    async fn work_item_counts(&self, project_id: &str) -> StoreResult<Vec<WorkItemCount>>;
    /// The newest events of the projects whose dashboard `reader` may see,
    /// newest first.
    async fn recent_events(&self, reader: &str, limit: i64) -> StoreResult<Vec<Event>>;
}

/// Which sessions [`AgentStore::list_agent_sessions`] returns.
#[derive(Debug, Clone, Default)]
pub struct SessionFilter {
    /// Only this work item's.
    pub work_item_id: Option<String>,
    /// Only this project's.
    pub project_id: Option<String>,
    /// Only those not yet completed or failed.
    pub active_only: bool,
}

/// What [`AgentStore::set_agent_session_status`] records beside the status.
#[derive(Debug, Clone, Copy, Default)]
pub struct SessionChange<'a> {
    /// The provider's id for its sandbox.
    pub vm_id: Option<&'a str>,
    /// Why it failed.
    pub error: Option<&'a str>,
    /// Its agent's exit code.
    pub exit_code: Option<i32>,
}

/// What an MCP token is worth, looked up on every request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenState {
    /// Issued and live: what it may do.
    Valid(McpScope),
    /// Never issued (or mistyped).
    Unknown,
    /// Revoked by an administrator.
    Revoked,
    /// Its session completed or failed.
    SessionEnded,
}

/// Which mailboxes [`MailStore::list_mailboxes`] returns; every set field
/// must match.
#[derive(Debug, Clone, Default)]
pub struct MailboxFilter {
    /// Only mailboxes serving this project.
    pub project_id: Option<String>,
    /// Only mailboxes in this state.
    pub state: Option<MailboxState>,
}

/// Which inbound mail [`MailStore::list_inbound`] returns; every set field
/// must match.
#[derive(Debug, Clone, Default)]
pub struct InboundFilter {
    /// Only mail of this mailbox.
    pub mailbox_id: Option<String>,
    /// Only mail in this state.
    pub state: Option<InboundState>,
}

/// Mailboxes anima-mail follows, the mail it fetched from them, and the
/// thread lookups routing needs.
#[async_trait]
pub trait MailStore: Send + Sync {
    /// Creates a mailbox serving the given projects (at least one, each
    /// existing); its address is unique (`ALREADY_EXISTS`/`MAILBOX_EXISTS`).
    async fn create_mailbox(&self, mailbox: NewMailbox) -> StoreResult<Mailbox>;
    /// A mailbox by id.
    async fn get_mailbox(&self, id: &str) -> StoreResult<Mailbox>;
    /// Mailboxes in creation order.
    async fn list_mailboxes(
        &self,
        filter: &MailboxFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<Mailbox>>;
    /// Changes an active mailbox's settings.
    async fn update_mailbox(&self, id: &str, changes: MailboxChanges) -> StoreResult<Mailbox>;
    /// Adds projects (each existing) to an active mailbox.
    async fn link_projects(&self, id: &str, project_ids: &[String]) -> StoreResult<Mailbox>;
    /// Removes projects from an active mailbox; it must keep one
    /// (`MAILBOX_NEEDS_PROJECT`).
    async fn unlink_projects(&self, id: &str, project_ids: &[String]) -> StoreResult<Mailbox>;
    /// Marks a mailbox `dropping`: it is no longer followed, and anima-mail
    /// removes its account, then calls [`MailStore::remove_mailbox`].
    async fn drop_mailbox(&self, id: &str) -> StoreResult<Mailbox>;
    /// Replaces a mailbox by one at `new_address` with the same projects and
    /// settings; the old one is dropping, and its held and triaged mail
    /// moves to the new one. Returns the new mailbox.
    async fn rotate_mailbox(&self, id: &str, new_address: &str) -> StoreResult<Mailbox>;
    /// Marks an active mailbox that was not adopted `refused` with the
    /// problem (its address has an account on the mail server that Anima
    /// did not create): it is no longer followed.
    async fn refuse_mailbox(&self, id: &str, problem: &str) -> StoreResult<Mailbox>;
    /// Records that anima-mail made an active mailbox's account itself.
    async fn confirm_mailbox_account(&self, id: &str) -> StoreResult<Mailbox>;
    /// A server admin takes over the existing account of a mailbox's
    /// address: the mailbox is active and adopted (following mail from its
    /// creation on), its problem cleared.
    async fn adopt_mailbox(&self, id: &str) -> StoreResult<Mailbox>;
    /// Deletes a dropping mailbox and its mail records (the posted
    /// messages stay in their threads).
    async fn remove_mailbox(&self, id: &str) -> StoreResult<()>;
    /// Saves the JMAP state the mailbox's synchronisation resumes from.
    async fn save_jmap_state(&self, mailbox_id: &str, state: &str) -> StoreResult<()>;
    /// Records a fetched mail and, when its state is `posted`, posts it as
    /// an inbound-email message into its work item's thread, in one
    /// transaction. Returns it and `true`; or, when the mailbox already has
    /// a mail with that Message-ID, the first record and `false`, changing
    /// nothing.
    async fn receive_mail(&self, mail: NewInbound) -> StoreResult<(InboundRecord, bool)>;
    /// Posts a held or triaged mail into `work_item_id`'s thread (which must
    /// belong to one of the mailbox's projects) on behalf of `by`.
    async fn post_inbound(
        &self,
        id: &str,
        work_item_id: &str,
        by: &Actor,
    ) -> StoreResult<InboundRecord>;
    /// Sets a held or triaged mail aside without posting it.
    async fn dismiss_inbound(&self, id: &str, by: &Actor) -> StoreResult<InboundRecord>;
    /// A fetched mail by id.
    async fn get_inbound(&self, id: &str) -> StoreResult<InboundRecord>;
    /// Fetched mail, oldest first.
    async fn list_inbound(
        &self,
        filter: &InboundFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<InboundRecord>>;
    /// The work item whose thread holds a mail with one of these
    /// Message-IDs (inbound or outbound), the newest match first, among the
    /// projects `mailbox_id` serves: mail that comes through one mailbox
    /// never lands in another's threads by naming their ids.
    async fn thread_of_mail(
        &self,
        mailbox_id: &str,
        message_ids: &[String],
    ) -> StoreResult<Option<String>>;
    /// Whether a mail of this mailbox with one of these Message-IDs waits
    /// for a human (held or in triage), and which, the newest reference
    /// first.
    async fn waiting_mail(
        &self,
        mailbox_id: &str,
        message_ids: &[String],
    ) -> StoreResult<Option<InboundState>>;
    /// Whether `address` is a member of the work item's project (by account
    /// email) or already wrote or was written to in its thread.
    async fn knows_address(&self, work_item_id: &str, address: &str) -> StoreResult<bool>;
    /// Takes up to `limit` outbound mails that are due at `now` (queued, or
    /// sending with an expired lease: a sender that died) and leases them
    /// until `lease_until`; their messages become `sending`.
    async fn claim_outbound(
        &self,
        now: i64,
        lease_until: i64,
        limit: i64,
    ) -> StoreResult<Vec<OutboundClaim>>;
    /// Records how a claimed send ended; the message shows it.
    async fn finish_outbound(
        &self,
        message_id: &str,
        outcome: OutboundOutcome,
    ) -> StoreResult<Message>;
}

/// Agent sessions, their tasks, and the MCP tokens they reach back with.
#[async_trait]
pub trait AgentStore: Send + Sync {
    /// Records a session on a work item in `provisioning`, with the item's
    /// capabilities and its current phase's skills copied in, and the hash
    /// of its MCP token.
    async fn create_agent_session(&self, session: NewSession) -> StoreResult<AgentSession>;
    /// A session by id.
    async fn get_agent_session(&self, id: &str) -> StoreResult<AgentSession>;
    /// Sessions in start order.
    async fn list_agent_sessions(
        &self,
        filter: &SessionFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<AgentSession>>;
    /// Moves a session on, recording its sandbox, why it failed and its
    /// agent's exit code where given. A final status (completed, failed)
    /// revokes its MCP tokens in the same transaction; an ended session
    /// does not move.
    async fn set_agent_session_status(
        &self,
        id: &str,
        status: SessionStatus,
        change: SessionChange<'_>,
    ) -> StoreResult<AgentSession>;
    /// Revokes a session's MCP tokens at once; returns how many there were.
    async fn revoke_agent_tokens(&self, session_id: &str) -> StoreResult<u64>;
    /// What an MCP token (by hash) may do, or why it may do nothing.
    async fn mcp_token(&self, token_hash: &str) -> StoreResult<TokenState>;

    /// Adds a task to a live session.
    async fn create_task(&self, session_id: &str, title: &str) -> StoreResult<Task>;
    /// A task by id.
    async fn get_task(&self, id: &str) -> StoreResult<Task>;
    /// A session's tasks in creation order.
    async fn list_tasks(&self, session_id: &str, page: &PageRequest) -> StoreResult<Page<Task>>;
    /// Changes a task of a live session.
    async fn update_task_status(
        &self,
        id: &str,
        status: TaskStatus,
        note: &str,
    ) -> StoreResult<Task>;

    /// Records that a live session's work item moved to `phase_id`, whose
    /// skills it now has.
    async fn set_agent_session_phase(
        &self,
        id: &str,
        phase_id: &str,
        skills: &[SkillRef],
    ) -> StoreResult<AgentSession>;

    /// Records that login credentials into a session were issued.
    async fn create_session_login(&self, login: NewSessionLogin) -> StoreResult<SessionLogin>;
    /// Stores a provider's report of a login's shell and its terminal
    /// events (those already stored are skipped; a gap before them is
    /// `FAILED_PRECONDITION`/`LOGIN_RECORD_GAP`). An unknown login is
    /// `NOT_FOUND`/`LOGIN_NOT_FOUND`; one that has ended no longer changes
    /// (`FAILED_PRECONDITION`/`LOGIN_ENDED`).
    async fn report_session_login(&self, report: LoginReport) -> StoreResult<SessionLogin>;
    /// A session's logins, oldest first.
    async fn list_session_logins(
        &self,
        session_id: &str,
        page: &PageRequest,
    ) -> StoreResult<Page<SessionLogin>>;
    /// The terminal events of a login into `session_id`'s sandbox, oldest
    /// first (page keys are sequence numbers); a login of another session
    /// is `NOT_FOUND`/`LOGIN_NOT_FOUND`.
    async fn login_recording(
        &self,
        session_id: &str,
        login_id: &str,
        page: &PageRequest,
    ) -> StoreResult<Page<TerminalEvent>>;
}

/// A project's repositories.
#[async_trait]
pub trait RepositoryStore: Send + Sync {
    /// A project's repositories, oldest first.
    async fn list_repositories(
        &self,
        project_id: &str,
        page: &PageRequest,
    ) -> StoreResult<Page<Repository>>;
    /// A repository by id (`REPOSITORY_NOT_FOUND`).
    async fn get_repository(&self, id: &str) -> StoreResult<Repository>;
    /// Adds a checked repository to its project (not an archived one);
    /// `REPOSITORY_NAME_TAKEN` when the project has one by that name.
    async fn add_repository(&self, repository: NewRepository) -> StoreResult<Repository>;
    /// Removes a repository.
    async fn remove_repository(&self, id: &str, by: &Actor) -> StoreResult<()>;
}

/// Versioned skill bundles.
#[async_trait]
pub trait SkillStore: Send + Sync {
    /// Publishes a version (validated); a version that exists is
    /// `ALREADY_EXISTS`/`SKILL_VERSION_EXISTS` and changes nothing.
    async fn publish_skill(&self, skill: NewSkill) -> StoreResult<Skill>;
    /// A version with its files; `version` empty means the newest.
    async fn get_skill(&self, name: &str, version: &str) -> StoreResult<Skill>;
    /// Versions without their files, by name then publication; only
    /// `name`'s when given.
    async fn list_skills(&self, name: Option<&str>, page: &PageRequest)
    -> StoreResult<Page<Skill>>;
}

/// Which documents a listing returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DocumentFilter {
    /// Only this project's.
    pub project_id: Option<String>,
    /// Only this work item's.
    pub work_item_id: Option<String>,
}

/// The library's documents: their metadata and text; their bytes are in
/// Seshat's Library.
#[async_trait]
pub trait DocumentStore: Send + Sync {
    /// Records a document in an active project (on one of its work items,
    /// if named) whose bytes the library holds.
    async fn create_document(&self, document: NewDocument) -> StoreResult<Document>;
    /// A document by id.
    async fn get_document(&self, id: &str) -> StoreResult<Document>;
    /// Documents in creation order.
    async fn list_documents(
        &self,
        filter: &DocumentFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<Document>>;
    /// Deletes a document of an active project.
    async fn delete_document(&self, id: &str, by: &Actor) -> StoreResult<()>;
    /// The searchable text of a document (what its library read on
    /// arrival), if it has any.
    async fn document_text(&self, id: &str) -> StoreResult<Option<String>>;
    /// At most `max_chars` characters of a document's searchable text from
    /// character `offset` on, cut in the database: the text may hold a
    /// million characters, and a reader pages through it.
    async fn document_text_part(
        &self,
        id: &str,
        offset: u64,
        max_chars: usize,
    ) -> StoreResult<TextPart>;
    /// Whether a document names the bytes with this SHA-256 (the library's
    /// sweep keeps those).
    async fn names_blob(&self, sha256: &str) -> StoreResult<bool>;
    /// The next document content still kept in the database (as before
    /// the library), after SHA-256 `after`: its SHA-256 and bytes.
    async fn next_legacy_blob(&self, after: &str) -> StoreResult<Option<(String, Vec<u8>)>>;
    /// Drops a content the library now holds from the database, unless a
    /// skill file still has it.
    async fn forget_legacy_blob(&self, sha256: &str) -> StoreResult<()>;
}

/// Opens the store a URL names (`postgres://…` or `sqlite://…`), creating the
/// database file if needed, and brings its schema up to date.
pub async fn open(url: &str) -> StoreResult<Arc<dyn Store>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PostgresStore::connect(url).await?))
    } else if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::connect(url).await?))
    } else {
        Err(DomainError::invalid_argument(
            anima_core::error::reason::INVALID_FIELD,
            format!("database URL must start with postgres:// or sqlite:, got {url:?}"),
        )
        .into())
    }
}

#[cfg(feature = "testing")]
pub mod testing;
