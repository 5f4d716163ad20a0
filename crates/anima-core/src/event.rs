//! What outbox events record: a typed kind for each change, spelled as
//! it is stored and sent (`work_item.updated`), and what it is about.

named_enum!(
    /// What an outbox event records.
    EventKind, "event kind" {
        /// A user account was created.
        UserCreated = "user.created",
        /// A user account changed (profile, admin, disabled, password).
        UserUpdated = "user.updated",
        /// A user account was deleted.
        UserDeleted = "user.deleted",
        /// Someone logged in (entity: the user).
        LoginOpened = "session.opened",
        /// A login session ended: logout, password change, disabling (entity: the user).
        LoginClosed = "session.closed",
        /// A custom role was created.
        RoleCreated = "role.created",
        /// A role's permissions changed.
        RoleUpdated = "role.updated",
        /// A custom role was deleted.
        RoleDeleted = "role.deleted",
        /// Someone joined a project or changed role there (entity: the user).
        MemberAdded = "member.added",
        /// Someone left a project (entity: the user).
        MemberRemoved = "member.removed",
        /// A project was created.
        ProjectCreated = "project.created",
        /// A project changed.
        ProjectUpdated = "project.updated",
        /// A project was archived.
        ProjectArchived = "project.archived",
        /// A plan was created.
        PlanCreated = "plan.created",
        /// A plan changed.
        PlanUpdated = "plan.updated",
        /// A plan was deleted.
        PlanDeleted = "plan.deleted",
        /// A work item was created.
        WorkItemCreated = "work_item.created",
        /// A work item changed (fields, phase, description).
        WorkItemUpdated = "work_item.updated",
        /// A work item's description was reverted to an earlier revision.
        WorkItemReverted = "work_item.reverted",
        /// A work item's capabilities changed.
        WorkItemCapabilitiesChanged = "work_item.capabilities_changed",
        /// A work item was deleted.
        WorkItemDeleted = "work_item.deleted",
        /// A custom workflow was created.
        WorkflowCreated = "workflow.created",
        /// A workflow changed.
        WorkflowUpdated = "workflow.updated",
        /// A custom workflow was deleted.
        WorkflowDeleted = "workflow.deleted",
        /// An Akh was created.
        AkhCreated = "akh.created",
        /// An Akh changed.
        AkhUpdated = "akh.updated",
        /// An Akh was deleted.
        AkhDeleted = "akh.deleted",
        /// A message was posted to a thread.
        MessagePosted = "message.posted",
        /// An outbound mail's delivery state changed.
        MessageDelivery = "message.delivery",
        /// A human decision was asked for.
        DecisionRequested = "decision.requested",
        /// A decision was answered.
        DecisionResolved = "decision.resolved",
        /// A decision was withdrawn.
        DecisionCancelled = "decision.cancelled",
        /// A mailbox was created.
        MailboxCreated = "mailbox.created",
        /// A mailbox changed (rules, projects, address).
        MailboxUpdated = "mailbox.updated",
        /// A server admin let Anima take over an existing mail account.
        MailboxAdopted = "mailbox.adopted",
        /// The mail worker refused a mailbox (an account Anima did not make).
        MailboxRefused = "mailbox.refused",
        /// A mailbox is being removed; the worker drops its account.
        MailboxDropping = "mailbox.dropping",
        /// A mailbox is gone.
        MailboxRemoved = "mailbox.removed",
        /// Inbound mail was recorded.
        MailReceived = "mail.received",
        /// Held or triaged mail was dismissed.
        MailDismissed = "mail.dismissed",
        /// A library document was added.
        DocumentCreated = "document.created",
        /// A library document was deleted.
        DocumentDeleted = "document.deleted",
        /// A repository was added to a project.
        RepositoryAdded = "repository.added",
        /// A repository was removed from a project.
        RepositoryRemoved = "repository.removed",
        /// An agent session started.
        AgentSessionStarted = "session.started",
        /// An agent session's status changed.
        AgentSessionStatus = "session.status",
        /// An agent session moved to another workflow phase.
        AgentSessionPhase = "session.phase",
        /// An agent session's MCP token was revoked.
        AgentSessionTokenRevoked = "session.token_revoked",
        /// Login credentials into a sandbox were issued.
        AgentSessionLoginIssued = "session.login_issued",
        /// A login shell into a sandbox started.
        AgentSessionLoginStarted = "session.login_started",
        /// A login shell into a sandbox ended.
        AgentSessionLoginEnded = "session.login_ended",
        /// An agent session added a task.
        TaskCreated = "task.created",
        /// A task's status changed.
        TaskUpdated = "task.updated",
        /// A skill version was published.
        SkillPublished = "skill.published",
    }
);

/// What an event is about: the kind of record its entity id names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subject {
    /// A user account.
    User,
    /// A user's login session (entity: the user).
    LoginSession,
    /// A role.
    Role,
    /// A project membership (entity: the user).
    Member,
    /// A project.
    Project,
    /// A plan.
    Plan,
    /// A work item.
    WorkItem,
    /// A workflow.
    Workflow,
    /// An Akh.
    Akh,
    /// A thread message.
    Message,
    /// A decision.
    Decision,
    /// A mailbox.
    Mailbox,
    /// An inbound mail record.
    InboundMail,
    /// A library document.
    Document,
    /// A project's repository.
    Repository,
    /// An agent session.
    AgentSession,
    /// An agent session's task.
    Task,
    /// A skill version.
    Skill,
}

impl EventKind {
    /// What the event is about.
    pub fn subject(self) -> Subject {
        match self {
            EventKind::UserCreated | EventKind::UserUpdated | EventKind::UserDeleted => {
                Subject::User
            }
            EventKind::LoginOpened | EventKind::LoginClosed => Subject::LoginSession,
            EventKind::RoleCreated | EventKind::RoleUpdated | EventKind::RoleDeleted => {
                Subject::Role
            }
            EventKind::MemberAdded | EventKind::MemberRemoved => Subject::Member,
            EventKind::ProjectCreated | EventKind::ProjectUpdated | EventKind::ProjectArchived => {
                Subject::Project
            }
            EventKind::PlanCreated | EventKind::PlanUpdated | EventKind::PlanDeleted => {
                Subject::Plan
            }
            EventKind::WorkItemCreated
            | EventKind::WorkItemUpdated
            | EventKind::WorkItemReverted
            | EventKind::WorkItemCapabilitiesChanged
            | EventKind::WorkItemDeleted => Subject::WorkItem,
            EventKind::WorkflowCreated
            | EventKind::WorkflowUpdated
            | EventKind::WorkflowDeleted => Subject::Workflow,
            EventKind::AkhCreated | EventKind::AkhUpdated | EventKind::AkhDeleted => Subject::Akh,
            EventKind::MessagePosted | EventKind::MessageDelivery => Subject::Message,
            EventKind::DecisionRequested
            | EventKind::DecisionResolved
            | EventKind::DecisionCancelled => Subject::Decision,
            EventKind::MailboxCreated
            | EventKind::MailboxUpdated
            | EventKind::MailboxAdopted
            | EventKind::MailboxRefused
            | EventKind::MailboxDropping
            | EventKind::MailboxRemoved => Subject::Mailbox,
            EventKind::MailReceived | EventKind::MailDismissed => Subject::InboundMail,
            EventKind::DocumentCreated | EventKind::DocumentDeleted => Subject::Document,
            EventKind::RepositoryAdded | EventKind::RepositoryRemoved => Subject::Repository,
            EventKind::AgentSessionStarted
            | EventKind::AgentSessionStatus
            | EventKind::AgentSessionPhase
            | EventKind::AgentSessionTokenRevoked
            | EventKind::AgentSessionLoginIssued
            | EventKind::AgentSessionLoginStarted
            | EventKind::AgentSessionLoginEnded => Subject::AgentSession,
            EventKind::TaskCreated | EventKind::TaskUpdated => Subject::Task,
            EventKind::SkillPublished => Subject::Skill,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_read_back_as_stored_and_name_their_subject() {
        for kind in EventKind::ALL {
            assert_eq!(kind.as_str().parse::<EventKind>(), Ok(*kind));
            let family = kind.as_str().split('.').next().unwrap_or_default();
            let expected = match family {
                "session" if matches!(kind, EventKind::LoginOpened | EventKind::LoginClosed) => {
                    Subject::LoginSession
                }
                "session" => Subject::AgentSession,
                "mail" => Subject::InboundMail,
                _ => *[
                    ("user", Subject::User),
                    ("role", Subject::Role),
                    ("member", Subject::Member),
                    ("project", Subject::Project),
                    ("plan", Subject::Plan),
                    ("work_item", Subject::WorkItem),
                    ("workflow", Subject::Workflow),
                    ("akh", Subject::Akh),
                    ("message", Subject::Message),
                    ("decision", Subject::Decision),
                    ("mailbox", Subject::Mailbox),
                    ("document", Subject::Document),
                    ("repository", Subject::Repository),
                    ("task", Subject::Task),
                    ("skill", Subject::Skill),
                ]
                .iter()
                .find(|(name, _)| *name == family)
                .map(|(_, subject)| subject)
                .expect("a known family"),
            };
            assert_eq!(kind.subject(), expected, "{kind}");
        }
    }
}
