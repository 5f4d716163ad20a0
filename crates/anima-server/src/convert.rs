//! Domain records to wire messages, and wire enums and oneofs back to the
//! domain (refusing values the domain does not know).

use anima_core::{
    DomainError,
    capability::{Capability, CapabilityKind},
    error::reason,
    model::{Role, User},
    planning::{
        Actor, Akh, DescriptionRevision, Member, Plan, Priority, Project, ProjectStatus,
        RevisionCause, WorkItem, WorkItemStatus,
    },
    workflow::{Phase, SkillRef, Workflow},
};
use anima_proto::v1 as pb;
use prost_types::Timestamp;

/// Microseconds since the epoch as a protobuf timestamp.
pub fn timestamp(micros: i64) -> Option<Timestamp> {
    Some(Timestamp {
        seconds: micros.div_euclid(1_000_000),
        nanos: i32::try_from(micros.rem_euclid(1_000_000) * 1_000).unwrap_or(0),
    })
}

/// A user on the wire (never with a password hash: the record has none).
pub fn user(user: User) -> pb::User {
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

/// A role on the wire.
pub fn role(role: Role) -> pb::Role {
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

/// A project on the wire.
pub fn project(project: Project) -> pb::Project {
    pb::Project {
        id: project.id,
        name: project.name,
        description: project.description,
        status: project_status(project.status) as i32,
        create_time: timestamp(project.created_at),
        update_time: timestamp(project.updated_at),
        stats: Some(pb::ProjectStats {
            plans: project.stats.plans,
            work_items: project.stats.work_items,
            open_work_items: project.stats.open_work_items,
            // Agent sessions and decisions arrive with their issues.
            active_sessions: 0,
            open_decisions: 0,
        }),
    }
}

/// A project status on the wire.
pub fn project_status(status: ProjectStatus) -> pb::ProjectStatus {
    match status {
        ProjectStatus::Active => pb::ProjectStatus::Active,
        ProjectStatus::Archived => pb::ProjectStatus::Archived,
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
pub fn member(member: Member) -> pb::ProjectMember {
    pb::ProjectMember {
        project_id: member.project_id,
        user_id: member.user_id,
        role_id: member.role_id,
        role_name: member.role_name,
        username: member.username,
    }
}

/// A plan with its progress on the wire.
pub fn plan(plan: Plan) -> pb::Plan {
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

/// A work item on the wire.
pub fn work_item(item: WorkItem) -> pb::WorkItem {
    pb::WorkItem {
        id: item.id,
        project_id: item.project_id,
        plan_id: item.plan_id.unwrap_or_default(),
        key: item.key.to_string(),
        title: item.title,
        description: item.description,
        description_revision_id: item.description_revision_id,
        status: work_item_status(item.status) as i32,
        priority: priority(item.priority) as i32,
        workflow_id: item.workflow_id,
        phase_id: item.phase_id,
        phase_changed_by: Some(actor(item.phase_changed_by)),
        phase_change_time: timestamp(item.phase_changed_at),
        capabilities: item.capabilities.into_iter().map(capability).collect(),
        create_time: timestamp(item.created_at),
        update_time: timestamp(item.updated_at),
    }
}

/// A work item status on the wire.
pub fn work_item_status(status: WorkItemStatus) -> pb::WorkItemStatus {
    match status {
        WorkItemStatus::Open => pb::WorkItemStatus::Open,
        WorkItemStatus::InProgress => pb::WorkItemStatus::InProgress,
        WorkItemStatus::Blocked => pb::WorkItemStatus::Blocked,
        WorkItemStatus::Done => pb::WorkItemStatus::Done,
        WorkItemStatus::Cancelled => pb::WorkItemStatus::Cancelled,
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
pub fn priority(priority: Priority) -> pb::Priority {
    match priority {
        Priority::Low => pb::Priority::Low,
        Priority::Medium => pb::Priority::Medium,
        Priority::High => pb::Priority::High,
        Priority::Urgent => pb::Priority::Urgent,
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
pub fn actor(actor: Actor) -> pb::Actor {
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

/// A description revision on the wire.
pub fn revision(revision: DescriptionRevision) -> pb::DescriptionRevision {
    pb::DescriptionRevision {
        id: revision.id,
        work_item_id: revision.work_item_id,
        number: revision.number,
        text: revision.text,
        author: Some(actor(revision.author)),
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

/// A capability on the wire.
pub fn capability(capability: Capability) -> pb::Capability {
    use pb::capability::Kind;
    let kind = match capability.kind {
        CapabilityKind::RepoAccess {
            repository_id,
            write,
        } => Kind::RepoAccess(pb::RepoAccess {
            repository_id,
            write,
        }),
        CapabilityKind::Secret {
            name,
            reference,
            mount_as,
        } => Kind::Secret(pb::SecretRef {
            name,
            reference,
            mount_as,
        }),
        CapabilityKind::NetworkZone { name, hosts } => {
            Kind::NetworkZone(pb::NetworkZone { name, hosts })
        }
        CapabilityKind::Custom {
            type_name,
            attributes,
        } => Kind::Custom(pb::CustomCapability {
            r#type: type_name,
            attributes: attributes.into_iter().collect(),
        }),
    };
    pb::Capability {
        id: capability.id,
        kind: Some(kind),
    }
}

/// A capability from the wire, not yet validated; one without a kind is refused.
pub fn parse_capability(
    index: usize,
    capability: pb::Capability,
) -> Result<Capability, DomainError> {
    use pb::capability::Kind;
    let kind = match capability.kind {
        Some(Kind::RepoAccess(access)) => CapabilityKind::RepoAccess {
            repository_id: access.repository_id,
            write: access.write,
        },
        Some(Kind::Secret(secret)) => CapabilityKind::Secret {
            name: secret.name,
            reference: secret.reference,
            mount_as: secret.mount_as,
        },
        Some(Kind::NetworkZone(zone)) => CapabilityKind::NetworkZone {
            name: zone.name,
            hosts: zone.hosts,
        },
        Some(Kind::Custom(custom)) => CapabilityKind::Custom {
            type_name: custom.r#type,
            attributes: custom.attributes.into_iter().collect(),
        },
        None => {
            return Err(DomainError::invalid_argument(
                reason::INVALID_CAPABILITY,
                format!("capability #{} has no kind", index + 1),
            ));
        }
    };
    Ok(Capability {
        id: capability.id,
        kind,
    })
}

/// A workflow on the wire.
pub fn workflow(workflow: Workflow) -> pb::Workflow {
    pb::Workflow {
        id: workflow.id,
        name: workflow.name,
        description: workflow.description,
        phases: workflow.phases.into_iter().map(phase).collect(),
        builtin: workflow.builtin,
        create_time: timestamp(workflow.created_at),
        update_time: timestamp(workflow.updated_at),
    }
}

fn phase(phase: Phase) -> pb::Phase {
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
pub fn akh(akh: Akh) -> pb::Akh {
    pb::Akh {
        id: akh.id,
        name: akh.name,
        description: akh.description,
        avatar_color: akh.avatar_color,
        create_time: timestamp(akh.created_at),
        update_time: timestamp(akh.updated_at),
    }
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
