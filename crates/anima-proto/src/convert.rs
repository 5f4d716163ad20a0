//! Domain records to wire messages, and wire enums and oneofs back to the
//! domain (refusing values the domain does not know).

use crate::v1 as pb;
use anima_core::{
    DomainError,
    agent::{
        AgentSession, MAX_TERMINAL_EVENT_BYTES, SessionLogin, SessionStatus, Task, TaskStatus,
        TerminalEvent,
    },
    document::{Document, DocumentType},
    error::reason,
    mail::{InboundRecord, InboundState, Mailbox, MailboxState, ScreeningRules},
    model::{Event, Role, User},
    planning::{
        Actor, Akh, DescriptionRevision, Member, Plan, Priority, Project, ProjectStatus,
        RevisionCause, WorkItem, WorkItemStatus,
    },
    repository::{ForgeKind, Repository},
    skill::Skill,
    thread::{
        AttachmentRef, Decision, DecisionState, DeliveryState, EmailHeaders, Message, MessageKind,
    },
    workflow::{Phase, SkillRef, Workflow},
};
use prost_types::Timestamp;

/// Microseconds since the epoch as a protobuf timestamp.
pub fn timestamp(micros: i64) -> Option<Timestamp> {
    Some(Timestamp {
        seconds: micros.div_euclid(1_000_000),
        nanos: i32::try_from(micros.rem_euclid(1_000_000) * 1_000).unwrap_or(0),
    })
}

/// A user on the wire (never with a password hash: the record has none).
impl From<User> for pb::User {
    fn from(user: User) -> Self {
        pb::User {
            id: user.id,
            username: user.username,
            display_name: user.display_name,
            email: user.email,
            is_admin: user.is_admin,
            disabled: user.disabled,
            create_time: timestamp(user.created_at),
            update_time: timestamp(user.updated_at),
            preferences: user.preferences.into_iter().collect(),
        }
    }
}

/// A role on the wire.
impl From<Role> for pb::Role {
    fn from(role: Role) -> Self {
        pb::Role {
            id: role.id,
            name: role.name,
            description: role.description,
            permissions: role
                .permissions
                .iter()
                .map(|p| p.as_str().to_owned())
                .collect(),
            builtin: role.builtin,
        }
    }
}

/// A project on the wire.
impl From<Project> for pb::Project {
    fn from(project: Project) -> Self {
        pb::Project {
            id: project.id,
            name: project.name,
            description: project.description,
            status: pb::ProjectStatus::from(project.status) as i32,
            create_time: timestamp(project.created_at),
            update_time: timestamp(project.updated_at),
            stats: Some(pb::ProjectStats {
                plans: project.stats.plans,
                work_items: project.stats.work_items,
                open_work_items: project.stats.open_work_items,
                active_sessions: project.stats.active_sessions,
                open_decisions: project.stats.open_decisions,
            }),
        }
    }
}

/// A project status on the wire.
impl From<ProjectStatus> for pb::ProjectStatus {
    fn from(status: ProjectStatus) -> Self {
        match status {
            ProjectStatus::Active => pb::ProjectStatus::Active,
            ProjectStatus::Archived => pb::ProjectStatus::Archived,
        }
    }
}

/// A status filter from the wire: unspecified means no filter.
pub fn project_status_filter(raw: i32) -> Result<Option<ProjectStatus>, DomainError> {
    match pb::ProjectStatus::try_from(raw) {
        Ok(pb::ProjectStatus::Unspecified) => Ok(None),
        Ok(pb::ProjectStatus::Active) => Ok(Some(ProjectStatus::Active)),
        Ok(pb::ProjectStatus::Archived) => Ok(Some(ProjectStatus::Archived)),
        Err(_) => Err(unknown_enum("status", raw)),
    }
}

/// A membership on the wire.
impl From<Member> for pb::ProjectMember {
    fn from(member: Member) -> Self {
        pb::ProjectMember {
            project_id: member.project_id,
            user_id: member.user_id,
            role_id: member.role_id,
            role_name: member.role_name,
            username: member.username,
        }
    }
}

/// A plan with its progress on the wire.
impl From<Plan> for pb::Plan {
    fn from(plan: Plan) -> Self {
        let share_done = plan.progress.share_done();
        pb::Plan {
            id: plan.id,
            project_id: plan.project_id,
            title: plan.title,
            description: plan.description,
            workflow_id: plan.workflow_id,
            progress: Some(pb::PlanProgress {
                total: plan.progress.total,
                done: plan.progress.done,
                share_done,
                phases: plan
                    .progress
                    .phases
                    .into_iter()
                    .map(|phase| pb::PhaseProgress {
                        phase_id: phase.phase_id,
                        phase_name: phase.phase_name,
                        total: phase.total,
                        done: phase.done,
                    })
                    .collect(),
            }),
            create_time: timestamp(plan.created_at),
            update_time: timestamp(plan.updated_at),
        }
    }
}

/// A work item on the wire.
impl From<WorkItem> for pb::WorkItem {
    fn from(item: WorkItem) -> Self {
        pb::WorkItem {
            id: item.id,
            project_id: item.project_id,
            plan_id: item.plan_id.unwrap_or_default(),
            key: item.key.to_string(),
            title: item.title,
            description: item.description,
            description_revision_id: item.description_revision_id,
            status: pb::WorkItemStatus::from(item.status) as i32,
            priority: pb::Priority::from(item.priority) as i32,
            workflow_id: item.workflow_id,
            phase_id: item.phase_id,
            phase_changed_by: Some(pb::Actor::from(item.phase_changed_by)),
            phase_change_time: timestamp(item.phase_changed_at),
            capabilities: item.capabilities.into_iter().map(capability).collect(),
            create_time: timestamp(item.created_at),
            update_time: timestamp(item.updated_at),
        }
    }
}

/// A work item status on the wire.
impl From<WorkItemStatus> for pb::WorkItemStatus {
    fn from(status: WorkItemStatus) -> Self {
        match status {
            WorkItemStatus::Open => pb::WorkItemStatus::Open,
            WorkItemStatus::InProgress => pb::WorkItemStatus::InProgress,
            WorkItemStatus::Blocked => pb::WorkItemStatus::Blocked,
            WorkItemStatus::Done => pb::WorkItemStatus::Done,
            WorkItemStatus::Cancelled => pb::WorkItemStatus::Cancelled,
        }
    }
}

/// A work item status from the wire; unspecified is `None`.
pub fn parse_work_item_status(raw: i32) -> Result<Option<WorkItemStatus>, DomainError> {
    Ok(Some(match pb::WorkItemStatus::try_from(raw) {
        Ok(pb::WorkItemStatus::Unspecified) => return Ok(None),
        Ok(pb::WorkItemStatus::Open) => WorkItemStatus::Open,
        Ok(pb::WorkItemStatus::InProgress) => WorkItemStatus::InProgress,
        Ok(pb::WorkItemStatus::Blocked) => WorkItemStatus::Blocked,
        Ok(pb::WorkItemStatus::Done) => WorkItemStatus::Done,
        Ok(pb::WorkItemStatus::Cancelled) => WorkItemStatus::Cancelled,
        Err(_) => return Err(unknown_enum("status", raw)),
    }))
}

/// A priority on the wire.
impl From<Priority> for pb::Priority {
    fn from(priority: Priority) -> Self {
        match priority {
            Priority::Low => pb::Priority::Low,
            Priority::Medium => pb::Priority::Medium,
            Priority::High => pb::Priority::High,
            Priority::Urgent => pb::Priority::Urgent,
        }
    }
}

/// A priority from the wire; unspecified is `None`.
pub fn parse_priority(raw: i32) -> Result<Option<Priority>, DomainError> {
    Ok(Some(match pb::Priority::try_from(raw) {
        Ok(pb::Priority::Unspecified) => return Ok(None),
        Ok(pb::Priority::Low) => Priority::Low,
        Ok(pb::Priority::Medium) => Priority::Medium,
        Ok(pb::Priority::High) => Priority::High,
        Ok(pb::Priority::Urgent) => Priority::Urgent,
        Err(_) => return Err(unknown_enum("priority", raw)),
    }))
}

fn unknown_enum(field: &str, raw: i32) -> DomainError {
    DomainError::invalid_argument(
        reason::INVALID_FIELD,
        format!("{field} {raw} is not a known value"),
    )
}

/// An actor on the wire.
impl From<Actor> for pb::Actor {
    fn from(actor: Actor) -> Self {
        use pb::actor::Kind;
        let kind = match actor {
            Actor::User { id } => Kind::UserId(id),
            Actor::Akh {
                akh_id,
                session_id,
                service,
            } => Kind::Akh(pb::AkhActor {
                akh_id,
                session_id,
                service,
            }),
            Actor::Service { name } => Kind::Service(name),
            Actor::Email { address } => Kind::Email(address),
        };
        pb::Actor { kind: Some(kind) }
    }
}

/// A description revision on the wire.
impl From<DescriptionRevision> for pb::DescriptionRevision {
    fn from(revision: DescriptionRevision) -> Self {
        pb::DescriptionRevision {
            id: revision.id,
            work_item_id: revision.work_item_id,
            number: revision.number,
            text: revision.text,
            author: Some(pb::Actor::from(revision.author)),
            create_time: timestamp(revision.created_at),
            cause: match revision.cause {
                RevisionCause::Create => pb::RevisionCause::Create,
                RevisionCause::Edit => pb::RevisionCause::Edit,
                RevisionCause::Revert => pb::RevisionCause::Revert,
                RevisionCause::AiPromotion => pb::RevisionCause::AiPromotion,
            } as i32,
            reverted_from_revision_id: revision.reverted_from.unwrap_or_default(),
            source_message_id: revision.source_message_id.unwrap_or_default(),
        }
    }
}

pub use crate::capability::{capability, parse_capability};

/// A model tier's name for humans, e.g. `standard`.
pub fn tier_name(tier: i32) -> String {
    pb::ModelTier::try_from(tier)
        .map(|tier| tier.name().to_owned())
        .unwrap_or_else(|_| format!("tier {tier}"))
}

/// A workflow on the wire.
impl From<Workflow> for pb::Workflow {
    fn from(workflow: Workflow) -> Self {
        pb::Workflow {
            id: workflow.id,
            name: workflow.name,
            description: workflow.description,
            phases: workflow.phases.into_iter().map(pb::Phase::from).collect(),
            builtin: workflow.builtin,
            create_time: timestamp(workflow.created_at),
            update_time: timestamp(workflow.updated_at),
        }
    }
}

impl From<Phase> for pb::Phase {
    fn from(phase: Phase) -> Self {
        pb::Phase {
            id: phase.id,
            name: phase.name,
            required_skills: phase
                .required_skills
                .into_iter()
                .map(|skill| pb::SkillRef {
                    name: skill.name,
                    version: skill.version,
                })
                .collect(),
        }
    }
}

/// Phases from the wire, not yet validated.
pub fn parse_phases(phases: Vec<pb::Phase>) -> Vec<Phase> {
    phases
        .into_iter()
        .map(|phase| Phase {
            id: phase.id,
            name: phase.name,
            required_skills: phase
                .required_skills
                .into_iter()
                .map(|skill| SkillRef {
                    name: skill.name,
                    version: skill.version,
                })
                .collect(),
        })
        .collect()
}

/// An Akh on the wire.
impl From<Akh> for pb::Akh {
    fn from(akh: Akh) -> Self {
        pb::Akh {
            id: akh.id,
            name: akh.name,
            description: akh.description,
            avatar_color: akh.avatar_color,
            create_time: timestamp(akh.created_at),
            update_time: timestamp(akh.updated_at),
        }
    }
}

/// An outbox event on the wire.
impl From<&Event> for pb::Event {
    fn from(event: &Event) -> Self {
        pb::Event {
            id: event.id,
            kind: event.kind.as_str().to_owned(),
            project_id: event.project_id.clone().unwrap_or_default(),
            entity_id: event.entity_id.clone(),
            time: timestamp(event.created_at),
            payload_json: event.payload.clone(),
        }
    }
}

/// A heartbeat on the wire.
pub fn heartbeat(last_event_id: i64) -> pb::Heartbeat {
    pb::Heartbeat {
        last_event_id,
        time: timestamp(anima_core::model::now_micros()),
    }
}

/// A message kind from the wire; unspecified is refused.
pub fn parse_message_kind(raw: i32) -> Result<MessageKind, DomainError> {
    match pb::MessageKind::try_from(raw) {
        Ok(pb::MessageKind::Human) => Ok(MessageKind::Human),
        Ok(pb::MessageKind::Akh) => Ok(MessageKind::Akh),
        Ok(pb::MessageKind::InboundEmail) => Ok(MessageKind::InboundEmail),
        Ok(pb::MessageKind::OutboundEmail) => Ok(MessageKind::OutboundEmail),
        Ok(pb::MessageKind::System) => Ok(MessageKind::System),
        Ok(pb::MessageKind::Unspecified) => Err(DomainError::invalid_argument(
            reason::FIELD_REQUIRED,
            "kind must be set: human, akh, inbound_email or outbound_email",
        )),
        Err(_) => Err(unknown_enum("kind", raw)),
    }
}

impl From<MessageKind> for pb::MessageKind {
    fn from(kind: MessageKind) -> Self {
        match kind {
            MessageKind::Human => pb::MessageKind::Human,
            MessageKind::Akh => pb::MessageKind::Akh,
            MessageKind::InboundEmail => pb::MessageKind::InboundEmail,
            MessageKind::OutboundEmail => pb::MessageKind::OutboundEmail,
            MessageKind::System => pb::MessageKind::System,
        }
    }
}

/// Email headers from the wire.
pub fn parse_email(email: pb::EmailHeaders) -> EmailHeaders {
    EmailHeaders {
        from: email.from,
        to: email.to,
        cc: email.cc,
        subject: email.subject,
        message_id: email.message_id,
        in_reply_to: email.in_reply_to,
        references: email.references,
    }
}

/// Attachment references from the wire, not yet validated.
pub fn parse_attachments(attachments: Vec<pb::AttachmentRef>) -> Vec<AttachmentRef> {
    attachments
        .into_iter()
        .map(|attachment| AttachmentRef {
            document_id: attachment.document_id,
            file_name: attachment.file_name,
            media_type: attachment.media_type,
            size_bytes: attachment.size_bytes,
        })
        .collect()
}

/// Email headers on the wire.
impl From<EmailHeaders> for pb::EmailHeaders {
    fn from(email: EmailHeaders) -> Self {
        pb::EmailHeaders {
            from: email.from,
            to: email.to,
            cc: email.cc,
            subject: email.subject,
            message_id: email.message_id,
            in_reply_to: email.in_reply_to,
            references: email.references,
        }
    }
}

/// Attachment references on the wire.
pub fn attachments(attachments: Vec<AttachmentRef>) -> Vec<pb::AttachmentRef> {
    attachments
        .into_iter()
        .map(|attachment| pb::AttachmentRef {
            document_id: attachment.document_id,
            file_name: attachment.file_name,
            media_type: attachment.media_type,
            size_bytes: attachment.size_bytes,
        })
        .collect()
}

/// A mailbox on the wire.
impl From<Mailbox> for pb::Mailbox {
    fn from(mailbox: Mailbox) -> Self {
        pb::Mailbox {
            gather: mailbox.is_gather(),
            id: mailbox.id,
            address: mailbox.address,
            display_name: mailbox.display_name,
            project_ids: mailbox.project_ids,
            rules: Some(pb::ScreeningRules {
                deny: mailbox.rules.deny,
                allow: mailbox.rules.allow,
                trusted_authserv_id: mailbox.rules.trusted_authserv_id,
            }),
            max_size_bytes: mailbox.max_size,
            state: match mailbox.state {
                MailboxState::Active => pb::MailboxState::Active,
                MailboxState::Dropping => pb::MailboxState::Dropping,
                MailboxState::Refused => pb::MailboxState::Refused,
            } as i32,
            create_time: timestamp(mailbox.created_at),
            adopted: mailbox.adopted,
            provisioned: mailbox.provisioned,
            import_history: mailbox.import_history,
            problem: mailbox.problem,
        }
    }
}

/// Screening rules from the wire, lower-cased and trimmed.
pub fn parse_rules(rules: Option<pb::ScreeningRules>) -> ScreeningRules {
    let clean = |entries: Vec<String>| {
        entries
            .into_iter()
            .map(|entry| entry.trim().to_lowercase())
            .filter(|entry| !entry.is_empty())
            .collect()
    };
    let rules = rules.unwrap_or_default();
    ScreeningRules {
        deny: clean(rules.deny),
        allow: clean(rules.allow),
        trusted_authserv_id: rules.trusted_authserv_id.trim().to_lowercase(),
    }
}

/// A fetched mail on the wire.
impl From<InboundRecord> for pb::InboundMail {
    fn from(record: InboundRecord) -> Self {
        let (suggested_work_item_id, confidence) = record
            .suggestion
            .map_or((String::new(), 0.0), |s| (s.work_item_id, s.confidence));
        pb::InboundMail {
            id: record.id,
            mailbox_id: record.mailbox_id,
            state: pb::InboundMailState::from(record.state) as i32,
            reason: record.reason,
            work_item_id: record.work_item_id.unwrap_or_default(),
            email: Some(pb::EmailHeaders::from(record.content.email)),
            body: record.content.body,
            attachments: attachments(record.content.attachments),
            suggested_work_item_id,
            confidence,
            posted_message_id: record.posted_message_id.unwrap_or_default(),
            receive_time: timestamp(record.created_at),
        }
    }
}

/// An inbound mail state on the wire.
impl From<InboundState> for pb::InboundMailState {
    fn from(state: InboundState) -> Self {
        match state {
            InboundState::Posted => pb::InboundMailState::Posted,
            InboundState::Held => pb::InboundMailState::Held,
            InboundState::Triage => pb::InboundMailState::Triage,
            InboundState::Dismissed => pb::InboundMailState::Dismissed,
        }
    }
}

/// An inbound mail state from the wire; unspecified is `None` (any).
pub fn parse_inbound_state(raw: i32) -> Result<Option<InboundState>, DomainError> {
    match pb::InboundMailState::try_from(raw) {
        Ok(pb::InboundMailState::Unspecified) => Ok(None),
        Ok(pb::InboundMailState::Posted) => Ok(Some(InboundState::Posted)),
        Ok(pb::InboundMailState::Held) => Ok(Some(InboundState::Held)),
        Ok(pb::InboundMailState::Triage) => Ok(Some(InboundState::Triage)),
        Ok(pb::InboundMailState::Dismissed) => Ok(Some(InboundState::Dismissed)),
        Err(_) => Err(unknown_enum("state", raw)),
    }
}

/// A document type from the wire; unspecified is `None`.
pub fn parse_document_type(raw: i32) -> Result<Option<DocumentType>, DomainError> {
    match pb::DocumentType::try_from(raw) {
        Ok(pb::DocumentType::Unspecified) => Ok(None),
        Ok(pb::DocumentType::Markdown) => Ok(Some(DocumentType::Markdown)),
        Ok(pb::DocumentType::Text) => Ok(Some(DocumentType::Text)),
        Ok(pb::DocumentType::Patch) => Ok(Some(DocumentType::Patch)),
        Ok(pb::DocumentType::Attachment) => Ok(Some(DocumentType::Attachment)),
        Err(_) => Err(unknown_enum("type", raw)),
    }
}

/// A forge kind from the wire; unspecified is refused, since every
/// repository is on one.
pub fn parse_forge(raw: i32) -> Result<ForgeKind, DomainError> {
    match pb::ForgeType::try_from(raw) {
        Ok(pb::ForgeType::Github) => Ok(ForgeKind::GitHub),
        Ok(pb::ForgeType::Gitea) => Ok(ForgeKind::Gitea),
        Ok(pb::ForgeType::Gitlab) => Ok(ForgeKind::GitLab),
        Ok(pb::ForgeType::PlainGit) => Ok(ForgeKind::PlainGit),
        Ok(pb::ForgeType::Unspecified) => Err(DomainError::invalid_argument(
            reason::FIELD_REQUIRED,
            "forge is required: GitHub, Gitea, GitLab or plain git",
        )),
        Err(_) => Err(unknown_enum("forge", raw)),
    }
}

/// A repository on the wire, with the reference of its credential (never
/// a secret).
impl From<Repository> for pb::Repository {
    fn from(repository: Repository) -> Self {
        let forge = match repository.forge {
            ForgeKind::GitHub => pb::ForgeType::Github,
            ForgeKind::Gitea => pb::ForgeType::Gitea,
            ForgeKind::GitLab => pb::ForgeType::Gitlab,
            ForgeKind::PlainGit => pb::ForgeType::PlainGit,
        };
        pb::Repository {
            id: repository.id,
            project_id: repository.project_id,
            name: repository.name,
            forge: forge as i32,
            remote_url: repository.remote_url,
            default_branch: repository.default_branch,
            worktrees: Vec::new(),
            create_time: timestamp(repository.created_at),
            base_url: repository.location.web_base,
            owner: repository.location.owner,
            repo_name: repository.location.name,
            credential: repository.credential.unwrap_or_default(),
        }
    }
}

/// A document's metadata on the wire (its bytes are downloaded apart).
impl From<Document> for pb::Document {
    fn from(document: Document) -> Self {
        let doc_type = match document.doc_type {
            DocumentType::Markdown => pb::DocumentType::Markdown,
            DocumentType::Text => pb::DocumentType::Text,
            DocumentType::Patch => pb::DocumentType::Patch,
            DocumentType::Attachment => pb::DocumentType::Attachment,
        };
        pb::Document {
            id: document.id,
            project_id: document.project_id,
            work_item_id: document.work_item_id.unwrap_or_default(),
            title: document.title,
            r#type: doc_type as i32,
            media_type: document.media_type,
            size_bytes: document.size_bytes,
            sha256: document.sha256,
            create_time: timestamp(document.created_at),
            not_indexed_reason: document.not_indexed_reason.unwrap_or_default(),
        }
    }
}

/// A thread message on the wire. The thread id is the work item's.
impl From<Message> for pb::Message {
    fn from(message: Message) -> Self {
        pb::Message {
            id: message.id,
            thread_id: message.work_item_id.clone(),
            work_item_id: message.work_item_id,
            kind: pb::MessageKind::from(message.kind) as i32,
            author: Some(pb::Actor::from(message.author)),
            body: message.body,
            email: message.email.map(pb::EmailHeaders::from),
            attachments: attachments(message.attachments),
            delivery_state: match message.delivery_state {
                None => pb::DeliveryState::Unspecified,
                Some(DeliveryState::Queued) => pb::DeliveryState::Queued,
                Some(DeliveryState::Sending) => pb::DeliveryState::Sending,
                Some(DeliveryState::Sent) => pb::DeliveryState::Sent,
                Some(DeliveryState::Failed) => pb::DeliveryState::Failed,
            } as i32,
            delivery_error: message.delivery_error,
            create_time: timestamp(message.created_at),
            sequence: message.sequence,
        }
    }
}

/// A decision on the wire.
impl From<Decision> for pb::Decision {
    fn from(decision: Decision) -> Self {
        pb::Decision {
            id: decision.id,
            work_item_id: decision.work_item_id,
            project_id: decision.project_id,
            question: decision.question,
            input_label: decision.input_label,
            choices: decision.choices,
            asked_by: Some(pb::Actor::from(decision.asked_by)),
            assignee_user_id: decision.assignee_user_id.unwrap_or_default(),
            state: match decision.state {
                DecisionState::Open => pb::DecisionState::Open,
                DecisionState::Resolved => pb::DecisionState::Resolved,
                DecisionState::Cancelled => pb::DecisionState::Cancelled,
            } as i32,
            answer: decision.answer,
            answered_by_user_id: decision.answered_by.unwrap_or_default(),
            create_time: timestamp(decision.created_at),
            resolve_time: decision.resolved_at.and_then(timestamp),
        }
    }
}

/// A decision state filter from the wire; unspecified means any.
pub fn parse_decision_state(raw: i32) -> Result<Option<DecisionState>, DomainError> {
    match pb::DecisionState::try_from(raw) {
        Ok(pb::DecisionState::Unspecified) => Ok(None),
        Ok(pb::DecisionState::Open) => Ok(Some(DecisionState::Open)),
        Ok(pb::DecisionState::Resolved) => Ok(Some(DecisionState::Resolved)),
        Ok(pb::DecisionState::Cancelled) => Ok(Some(DecisionState::Cancelled)),
        Err(_) => Err(unknown_enum("state", raw)),
    }
}

/// An agent session on the wire.
impl From<AgentSession> for pb::AgentSession {
    fn from(session: AgentSession) -> Self {
        pb::AgentSession {
            id: session.id,
            work_item_id: session.work_item_id,
            project_id: session.project_id,
            akh_id: session.akh_id,
            status: match session.status {
                SessionStatus::Provisioning => pb::SessionStatus::Provisioning,
                SessionStatus::Running => pb::SessionStatus::Running,
                SessionStatus::Paused => pb::SessionStatus::Paused,
                SessionStatus::Completed => pb::SessionStatus::Completed,
                SessionStatus::Failed => pb::SessionStatus::Failed,
            } as i32,
            capabilities: session.capabilities.into_iter().map(capability).collect(),
            skills: session
                .skills
                .into_iter()
                .map(|skill| pb::SkillRef {
                    name: skill.name,
                    version: skill.version,
                })
                .collect(),
            phase_id: session.phase_id,
            vm_id: session.vm_id,
            exit_code: session.exit_code.unwrap_or_default(),
            // Why it failed: for an agent that exited, its exit and last lines.
            last_output_lines: session.error.lines().map(str::to_owned).collect(),
            keep_after_stop: session.keep_after_stop,
            create_time: timestamp(session.created_at),
            update_time: timestamp(session.updated_at),
        }
    }
}

impl From<TaskStatus> for pb::TaskStatus {
    fn from(status: TaskStatus) -> Self {
        match status {
            TaskStatus::Pending => pb::TaskStatus::Pending,
            TaskStatus::InProgress => pb::TaskStatus::InProgress,
            TaskStatus::Done => pb::TaskStatus::Done,
            TaskStatus::Failed => pb::TaskStatus::Failed,
        }
    }
}

/// A task status from the wire; unspecified is `None`.
pub fn parse_task_status(raw: i32) -> Result<Option<TaskStatus>, DomainError> {
    Ok(Some(match pb::TaskStatus::try_from(raw) {
        Ok(pb::TaskStatus::Unspecified) => return Ok(None),
        Ok(pb::TaskStatus::Pending) => TaskStatus::Pending,
        Ok(pb::TaskStatus::InProgress) => TaskStatus::InProgress,
        Ok(pb::TaskStatus::Done) => TaskStatus::Done,
        Ok(pb::TaskStatus::Failed) => TaskStatus::Failed,
        Err(_) => return Err(unknown_enum("status", raw)),
    }))
}

/// A task on the wire.
impl From<Task> for pb::Task {
    fn from(task: Task) -> Self {
        pb::Task {
            id: task.id,
            session_id: task.session_id,
            title: task.title,
            status: pb::TaskStatus::from(task.status) as i32,
            note: task.note,
            create_time: timestamp(task.created_at),
            update_time: timestamp(task.updated_at),
        }
    }
}

/// A skill version on the wire (with its files when it has them).
impl From<Skill> for pb::Skill {
    fn from(skill: Skill) -> Self {
        pb::Skill {
            name: skill.name,
            version: skill.version,
            description: skill.description,
            manifest_json: skill.manifest,
            files: skill
                .files
                .into_iter()
                .map(|file| pb::SkillFile {
                    path: file.path,
                    content: file.content,
                })
                .collect(),
            file_count: skill.file_count,
            size_bytes: skill.size_bytes,
            created_by: skill.created_by,
            create_time: timestamp(skill.created_at),
        }
    }
}

/// A login's audit record on the wire.
/// A recorded terminal event on the wire.
impl From<TerminalEvent> for pb::TerminalEvent {
    fn from(event: TerminalEvent) -> Self {
        pb::TerminalEvent {
            offset_micros: event.offset_micros,
            stream: if event.input {
                pb::TerminalStream::Input
            } else {
                pb::TerminalStream::Output
            } as i32,
            data: event.data,
        }
    }
}

/// A terminal event from a provider's report, checked.
pub fn parse_terminal_event(event: pb::TerminalEvent) -> Result<TerminalEvent, DomainError> {
    let input = match event.stream() {
        pb::TerminalStream::Input => true,
        pb::TerminalStream::Output => false,
        pb::TerminalStream::Unspecified => {
            return Err(DomainError::invalid_argument(
                reason::INVALID_FIELD,
                "a terminal event's stream must be input or output",
            ));
        }
    };
    if event.data.len() > MAX_TERMINAL_EVENT_BYTES || event.offset_micros < 0 {
        return Err(DomainError::invalid_argument(
            reason::INVALID_FIELD,
            format!(
                "a terminal event carries at most {MAX_TERMINAL_EVENT_BYTES} bytes at a \
                 non-negative offset"
            ),
        ));
    }
    Ok(TerminalEvent {
        offset_micros: event.offset_micros,
        input,
        data: event.data,
    })
}

/// A login's audit record on the wire.
impl From<SessionLogin> for pb::SessionLogin {
    fn from(login: SessionLogin) -> Self {
        pb::SessionLogin {
            id: login.id,
            session_id: login.session_id,
            user_id: login.user_id,
            reason: login.reason,
            create_time: timestamp(login.created_at),
            expire_time: timestamp(login.expires_at),
            start_time: login.started_at.and_then(timestamp),
            end_time: login.ended_at.and_then(timestamp),
            commands: login.commands,
            bytes_in: login.bytes_in,
            bytes_out: login.bytes_out,
            exit_status: login.exit_status,
            peer: login.peer,
        }
    }
}

/// Microseconds since the epoch of a wire timestamp.
pub fn micros(timestamp: &Timestamp) -> i64 {
    timestamp
        .seconds
        .saturating_mul(1_000_000)
        .saturating_add(i64::from(timestamp.nanos / 1_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_split_micros() {
        let ts = timestamp(1_700_000_000_123_456).expect("some");
        assert_eq!((ts.seconds, ts.nanos), (1_700_000_000, 123_456_000));
        let ts = timestamp(-1).expect("some");
        assert_eq!((ts.seconds, ts.nanos), (-1, 999_999_000));
    }
}
