//! Records of the planning domain: projects and members, plans, work items
//! with versioned descriptions, and the actors who change them. Storage
//! returns these; the server maps them onto wire messages.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

use crate::{
    capability::Capability,
    error::{DomainError, reason},
};

/// Longest description of a project, plan or work item, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 100_000;

named_enum!(
    /// Whether a project accepts changes.
    ProjectStatus, "project status" {
        /// Open for work.
        Active = "active",
        /// Read-only.
        Archived = "archived",
    }
);

named_enum!(
    /// Where a work item stands.
    WorkItemStatus, "work item status" {
        /// Not started.
        Open = "open",
        /// Someone (or an agent) is on it.
        InProgress = "in_progress",
        /// Waiting for something.
        Blocked = "blocked",
        /// Finished.
        Done = "done",
        /// Dropped; does not count towards progress.
        Cancelled = "cancelled",
    }
);

named_enum!(
    /// How urgent a work item is.
    Priority, "priority" {
        /// Whenever there is time.
        Low = "low",
        /// The default.
        Medium = "medium",
        /// Before the medium ones.
        High = "high",
        /// Now.
        Urgent = "urgent",
    }
);

named_enum!(
    /// Why a description revision was written.
    RevisionCause, "revision cause" {
        /// The first description, written with the work item.
        Create = "create",
        /// Someone edited the description.
        Edit = "edit",
        /// Someone restored an earlier revision.
        Revert = "revert",
        /// An AI thread message was promoted into the description.
        AiPromotion = "ai_promotion",
    }
);

/// Derived numbers shown with a project.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProjectStats {
    /// Plans in the project.
    pub plans: i64,
    /// Work items in the project.
    pub work_items: i64,
    /// Work items neither done nor cancelled.
    pub open_work_items: i64,
    /// Agent sessions provisioning, running or paused.
    pub active_sessions: i64,
    /// Decisions waiting for a human.
    pub open_decisions: i64,
}

/// A project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    /// UUIDv7.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Active or archived.
    pub status: ProjectStatus,
    /// Counts derived from its content.
    pub stats: ProjectStats,
    /// Creation time.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
}

/// A partial change of a project; `None` leaves a field alone.
#[derive(Debug, Clone, Default)]
pub struct ProjectChanges {
    /// New name.
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
}

/// A user's membership of a project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The project.
    pub project_id: String,
    /// The member.
    pub user_id: String,
    /// Their login name.
    pub username: String,
    /// The role they hold.
    pub role_id: String,
    /// Its name.
    pub role_name: String,
}

/// A plan: a group of work items whose progress it derives.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// UUIDv7.
    pub id: String,
    /// Owning project.
    pub project_id: String,
    /// Title.
    pub title: String,
    /// Free text.
    pub description: String,
    /// The workflow whose phases break down the progress.
    pub workflow_id: String,
    /// Derived from the plan's work items on every read.
    pub progress: PlanProgress,
    /// Creation time.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
}

/// What creating a plan needs.
#[derive(Debug, Clone)]
pub struct NewPlan {
    /// Owning project.
    pub project_id: String,
    /// Title.
    pub title: String,
    /// Free text.
    pub description: String,
    /// Its workflow.
    pub workflow_id: String,
}

/// A partial change of a plan.
#[derive(Debug, Clone, Default)]
pub struct PlanChanges {
    /// New title.
    pub title: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New workflow.
    pub workflow_id: Option<String>,
}

/// Progress of a plan: cancelled work items do not count.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlanProgress {
    /// Work items that count.
    pub total: i64,
    /// Of which done.
    pub done: i64,
    /// Per phase of the plan's workflow, in workflow order.
    pub phases: Vec<PhaseProgress>,
}

impl PlanProgress {
    /// `done / total`, 0 for an empty plan.
    pub fn share_done(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.done as f64 / self.total as f64
        }
    }
}

/// Progress within one phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhaseProgress {
    /// Phase id within the workflow.
    pub phase_id: String,
    /// Its name.
    pub phase_name: String,
    /// Work items in the phase that count.
    pub total: i64,
    /// Of which done.
    pub done: i64,
}

/// Who did something: a human, an AI persona, an internal service or an
/// email correspondent. Stored as JSON beside what it authored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Actor {
    /// A user, by id.
    User {
        /// User id.
        id: String,
    },
    /// An Akh persona speaking for an agent session or a service.
    Akh {
        /// Akh id.
        akh_id: String,
        /// The agent session, if one wrote.
        #[serde(default)]
        session_id: String,
        /// The internal service, if one wrote.
        #[serde(default)]
        service: String,
    },
    /// An internal service, by name.
    Service {
        /// Service name.
        name: String,
    },
    /// An email address outside Anima.
    Email {
        /// The address.
        address: String,
    },
}

impl Actor {
    /// The JSON stored in rows.
    pub fn to_json(&self) -> String {
        // Serialising plain strings cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads the stored JSON back.
    pub fn from_json(json: &str) -> Result<Self, DomainError> {
        serde_json::from_str(json)
            .map_err(|e| DomainError::internal(format!("stored actor {json:?} is unreadable: {e}")))
    }
}

/// A work item's human key, `WI-<n>`, unique per project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct WorkItemKey(pub i64);

impl fmt::Display for WorkItemKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WI-{}", self.0)
    }
}

impl FromStr for WorkItemKey {
    type Err = DomainError;

    /// Accepts `WI-12` (any case of the prefix); `n` is positive without
    /// leading zeros, so each item has exactly one spelling.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || {
            DomainError::invalid_argument(
                reason::INVALID_KEY,
                format!("{text:?} is not a work item key; keys look like WI-12"),
            )
        };
        let digits = text
            .get(..3)
            .filter(|prefix| prefix.eq_ignore_ascii_case("WI-"))
            .and_then(|_| text.get(3..))
            .ok_or_else(invalid)?;
        if digits.is_empty()
            || digits.starts_with('0')
            || !digits.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(invalid());
        }
        digits.parse().map(WorkItemKey).map_err(|_| invalid())
    }
}

/// A work item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkItem {
    /// UUIDv7.
    pub id: String,
    /// Owning project.
    pub project_id: String,
    /// The plan it belongs to, if any.
    pub plan_id: Option<String>,
    /// Its key within the project.
    pub key: WorkItemKey,
    /// Title.
    pub title: String,
    /// The text of the current description revision.
    pub description: String,
    /// Id of the current description revision.
    pub description_revision_id: String,
    /// Where it stands.
    pub status: WorkItemStatus,
    /// How urgent it is.
    pub priority: Priority,
    /// The workflow it follows.
    pub workflow_id: String,
    /// Its phase within that workflow.
    pub phase_id: String,
    /// Who moved it into its phase.
    pub phase_changed_by: Actor,
    /// When.
    pub phase_changed_at: i64,
    /// What its agent sessions may use.
    pub capabilities: Vec<Capability>,
    /// Creation time.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
}

/// What creating a work item needs.
#[derive(Debug, Clone)]
pub struct NewWorkItem {
    /// Owning project.
    pub project_id: String,
    /// Optional plan (of the same project).
    pub plan_id: Option<String>,
    /// Title.
    pub title: String,
    /// First description revision.
    pub description: String,
    /// How urgent it is.
    pub priority: Priority,
    /// Its workflow; `None` takes the plan's, else the standard one.
    pub workflow_id: Option<String>,
    /// Who creates it.
    pub author: Actor,
}

/// A partial change of a work item; `None` leaves a field alone.
#[derive(Debug, Clone, Default)]
pub struct WorkItemChanges {
    /// New title.
    pub title: Option<String>,
    /// New status.
    pub status: Option<WorkItemStatus>,
    /// New priority.
    pub priority: Option<Priority>,
    /// New plan; `Some(None)` detaches the item from its plan.
    pub plan_id: Option<Option<String>>,
    /// New phase of its workflow.
    pub phase_id: Option<String>,
    /// New description, based on the revision the editor saw.
    pub description: Option<DescriptionEdit>,
}

/// A description change: the new text and the revision it was based on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescriptionEdit {
    /// Revision the editor started from; a stale one is refused.
    pub base_revision_id: String,
    /// The new text.
    pub text: String,
    /// Why: an edit or an AI promotion.
    pub cause: RevisionCause,
    /// For AI promotions, the thread message promoted.
    pub source_message_id: Option<String>,
}

/// One version of a work item's description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescriptionRevision {
    /// UUIDv7.
    pub id: String,
    /// The work item.
    pub work_item_id: String,
    /// 1, 2, 3 … within the work item.
    pub number: i64,
    /// The full text.
    pub text: String,
    /// Who wrote it.
    pub author: Actor,
    /// Why.
    pub cause: RevisionCause,
    /// For reverts, the revision restored.
    pub reverted_from: Option<String>,
    /// For AI promotions, the thread message promoted.
    pub source_message_id: Option<String>,
    /// When.
    pub created_at: i64,
}

/// An AI persona used for attribution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Akh {
    /// UUIDv7.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Voice and description.
    pub description: String,
    /// `#rrggbb`.
    pub avatar_color: String,
    /// Creation time.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
}

/// A partial change of an Akh.
#[derive(Debug, Clone, Default)]
pub struct AkhChanges {
    /// New name.
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New colour.
    pub avatar_color: Option<String>,
}

/// Colour given to an Akh created without one.
pub const DEFAULT_AVATAR_COLOR: &str = "#6b7280";

/// Checks an avatar colour: `#rrggbb`, lower-cased on the way in.
pub fn avatar_color(value: &str) -> Result<String, DomainError> {
    let valid = value.len() == 7
        && value.starts_with('#')
        && value[1..].bytes().all(|b| b.is_ascii_hexdigit());
    if !valid {
        return Err(DomainError::invalid_argument(
            reason::INVALID_FIELD,
            format!("avatar_color {value:?} must look like #1a2b3c"),
        ));
    }
    Ok(value.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_one_spelling() {
        assert_eq!("WI-12".parse::<WorkItemKey>(), Ok(WorkItemKey(12)));
        assert_eq!("wi-7".parse::<WorkItemKey>(), Ok(WorkItemKey(7)));
        assert_eq!(WorkItemKey(3).to_string(), "WI-3");
        for bad in [
            "",
            "WI-",
            "WI-0",
            "WI-01",
            "WI-x",
            "WI--1",
            "PR-1",
            "WI-1 ",
            "WI-é",
            "WI-99999999999999999999",
        ] {
            let err = bad.parse::<WorkItemKey>().expect_err(bad);
            assert_eq!(err.reason, reason::INVALID_KEY, "{bad}");
        }
    }

    #[test]
    fn enums_round_trip_and_name_the_choices() {
        for status in WorkItemStatus::ALL {
            assert_eq!(status.as_str().parse::<WorkItemStatus>(), Ok(*status));
        }
        let err = "finished".parse::<WorkItemStatus>().expect_err("unknown");
        assert!(err.message.contains("in_progress"), "{}", err.message);
    }

    #[test]
    fn actors_round_trip_through_json() {
        let actor = Actor::Akh {
            akh_id: "a".into(),
            session_id: "s".into(),
            service: String::new(),
        };
        assert_eq!(Actor::from_json(&actor.to_json()), Ok(actor));
        assert!(Actor::from_json("{}").is_err());
    }

    #[test]
    fn colours_are_checked() {
        assert_eq!(avatar_color("#A1b2C3").as_deref(), Ok("#a1b2c3"));
        for bad in ["", "#abc", "a1b2c3f", "#ggg000", "#12345é"] {
            assert!(avatar_color(bad).is_err(), "{bad}");
        }
    }
}
