//! Permissions are a code enum (one per action); roles are database rows
//! holding sets of them, bound to users per project. This module defines the
//! enum and the default roles every fresh database is seeded with.
//!
//! Workflows and Akh personas are not a project's: they are server-wide
//! catalogues that every signed-in user reads and only server
//! administrators change, so no project role grants anything over them
//! (and a project Owner cannot rewrite what other projects' agents use).

use std::{fmt, str::FromStr};

use crate::error::{DomainError, reason};

macro_rules! permissions {
    ($($variant:ident = $name:literal, $doc:literal;)*) => {
        /// One action a caller may be allowed to take.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Permission {
            $(#[doc = $doc] $variant,)*
        }

        impl Permission {
            /// Every permission, in declaration order.
            pub const ALL: &'static [Permission] = &[$(Permission::$variant,)*];

            /// The stable name stored in role rows, e.g. `workitem.create`.
            pub fn as_str(self) -> &'static str {
                match self { $(Permission::$variant => $name,)* }
            }

            /// What holding the permission allows.
            pub fn description(self) -> &'static str {
                match self { $(Permission::$variant => $doc,)* }
            }
        }

        impl FromStr for Permission {
            type Err = DomainError;

            fn from_str(name: &str) -> Result<Self, Self::Err> {
                match name {
                    $($name => Ok(Permission::$variant),)*
                    _ => Err(DomainError::invalid_argument(
                        reason::UNKNOWN_PERMISSION,
                        format!("unknown permission {name:?}"),
                    )),
                }
            }
        }
    };
}

permissions! {
    ProjectRead = "project.read", "See a project and its members.";
    ProjectUpdate = "project.update", "Rename or describe a project.";
    ProjectArchive = "project.archive", "Archive a project.";
    MemberManage = "member.manage", "Add and remove project members and set their roles.";
    PlanRead = "plan.read", "See plans and their progress.";
    PlanCreate = "plan.create", "Create plans.";
    PlanUpdate = "plan.update", "Change plans.";
    PlanDelete = "plan.delete", "Delete plans.";
    WorkItemRead = "workitem.read", "See work items and description history.";
    WorkItemCreate = "workitem.create", "Create work items.";
    WorkItemUpdate = "workitem.update", "Change work items, their descriptions and phases.";
    WorkItemDelete = "workitem.delete", "Delete work items.";
    CapabilityUpdate = "capability.update", "Change the capabilities of work items.";
    ThreadRead = "thread.read", "Read work item threads.";
    ThreadPost = "thread.post", "Post to work item threads, including outbound mail.";
    ThreadPromote = "thread.promote", "Promote an AI message into a description revision.";
    DecisionRequest = "decision.request", "Ask for a human decision.";
    DecisionResolve = "decision.resolve", "Answer or cancel human decisions.";
    AgentRead = "agent.read", "See agent sessions and tasks.";
    AgentStart = "agent.start", "Start agent sessions.";
    AgentStop = "agent.stop", "Stop agent sessions.";
    AgentLogin = "agent.login", "Open an audited shell into an agent sandbox.";
    TaskUpdate = "task.update", "Create tasks and change their status.";
    RepositoryRead = "repository.read", "See repositories and patches.";
    RepositoryManage = "repository.manage", "Add and remove repositories, attach patches.";
    MailboxRead = "mailbox.read", "See mailboxes and the triage list.";
    MailboxManage = "mailbox.manage", "Create, link and delete mailboxes; assign triaged mail.";
    DocumentRead = "document.read", "Read and search library documents.";
    DocumentWrite = "document.write", "Upload and delete library documents.";
    DashboardRead = "dashboard.read", "See the dashboard of the project.";
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parses permission names from a client, refusing unknown ones.
pub fn parse_permissions<S: AsRef<str>>(names: &[S]) -> Result<Vec<Permission>, DomainError> {
    let mut parsed: Vec<Permission> = names
        .iter()
        .map(|name| name.as_ref().parse())
        .collect::<Result<_, _>>()?;
    parsed.sort();
    parsed.dedup();
    Ok(parsed)
}

/// Refuses to let someone hand out (or take away) a role that holds a
/// permission they do not hold themselves: a project Admin can manage
/// Members and Viewers, never make anyone Owner nor demote an Owner.
pub fn require_covers(held: &[Permission], role: &[Permission]) -> Result<(), DomainError> {
    let missing: Vec<&str> = role
        .iter()
        .filter(|permission| !held.contains(permission))
        .map(|permission| permission.as_str())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(DomainError::new(
        crate::ErrorCode::PermissionDenied,
        reason::ROLE_ESCALATION,
        format!(
            "that role holds {} which you do not hold in this project",
            missing.join(", ")
        ),
    ))
}

/// The server keeps an active administrator: a change that would leave
/// `active_admins` (counted inside the change's transaction, under the
/// admins lock) at zero is refused (`LAST_ADMIN`).
pub fn keep_an_admin(active_admins: i64) -> Result<(), DomainError> {
    if active_admins > 0 {
        return Ok(());
    }
    Err(DomainError::failed_precondition(
        reason::LAST_ADMIN,
        "this is the last active administrator; make another one first",
    ))
}

/// A project keeps an Owner: the Owner role cannot be taken from one of
/// `owners` when they are the only one (`LAST_OWNER`). `project` names
/// the project when the caller did not (deleting a user).
pub fn keep_an_owner(owners: i64, project: Option<&str>) -> Result<(), DomainError> {
    if owners > 1 {
        return Ok(());
    }
    Err(DomainError::failed_precondition(
        reason::LAST_OWNER,
        match project {
            Some(project) => format!(
                "the user is the last Owner of project {project:?}; make someone else Owner first"
            ),
            None => "this is the project's last Owner; make someone else Owner first".to_owned(),
        },
    ))
}

/// A role the database is seeded with; built-in roles are read-only.
#[derive(Debug, Clone, Copy)]
pub struct RoleTemplate {
    /// Stable id, so bindings survive re-seeding.
    pub id: &'static str,
    /// Display name.
    pub name: &'static str,
    /// What the role is for.
    pub description: &'static str,
    /// Permissions the role grants.
    pub permissions: &'static [Permission],
}

use Permission::*;

const VIEWER: &[Permission] = &[
    ProjectRead,
    PlanRead,
    WorkItemRead,
    ThreadRead,
    AgentRead,
    RepositoryRead,
    MailboxRead,
    DocumentRead,
    DashboardRead,
];

const MEMBER: &[Permission] = &[
    ProjectRead,
    PlanRead,
    PlanCreate,
    PlanUpdate,
    WorkItemRead,
    WorkItemCreate,
    WorkItemUpdate,
    ThreadRead,
    ThreadPost,
    ThreadPromote,
    DecisionRequest,
    DecisionResolve,
    AgentRead,
    AgentStart,
    AgentStop,
    TaskUpdate,
    RepositoryRead,
    MailboxRead,
    DocumentRead,
    DocumentWrite,
    DashboardRead,
];

const ADMIN: &[Permission] = &[
    ProjectRead,
    ProjectUpdate,
    MemberManage,
    PlanRead,
    PlanCreate,
    PlanUpdate,
    PlanDelete,
    WorkItemRead,
    WorkItemCreate,
    WorkItemUpdate,
    WorkItemDelete,
    CapabilityUpdate,
    ThreadRead,
    ThreadPost,
    ThreadPromote,
    DecisionRequest,
    DecisionResolve,
    AgentRead,
    AgentStart,
    AgentStop,
    AgentLogin,
    TaskUpdate,
    RepositoryRead,
    RepositoryManage,
    MailboxRead,
    MailboxManage,
    DocumentRead,
    DocumentWrite,
    DashboardRead,
];

/// The default roles: Owner (everything), Admin (everything but archiving),
/// Member (day-to-day work, no administration), Viewer (read-only).
pub const DEFAULT_ROLES: &[RoleTemplate] = &[
    RoleTemplate {
        id: "00000000-0000-7000-8000-000000000001",
        name: "Owner",
        description: "Full control of the project, including archiving it.",
        permissions: Permission::ALL,
    },
    RoleTemplate {
        id: "00000000-0000-7000-8000-000000000002",
        name: "Admin",
        description: "Runs the project: members, capabilities, mailboxes, agent logins.",
        permissions: ADMIN,
    },
    RoleTemplate {
        id: "00000000-0000-7000-8000-000000000003",
        name: "Member",
        description: "Plans and does the work: items, threads, decisions, agent sessions.",
        permissions: MEMBER,
    },
    RoleTemplate {
        id: "00000000-0000-7000-8000-000000000004",
        name: "Viewer",
        description: "Reads everything in the project, changes nothing.",
        permissions: VIEWER,
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for permission in Permission::ALL {
            assert_eq!(permission.as_str().parse::<Permission>(), Ok(*permission));
        }
    }

    #[test]
    fn unknown_names_are_refused() {
        let err = parse_permissions(&["workitem.read", "workitem.fly"]).expect_err("unknown");
        assert_eq!(err.reason, reason::UNKNOWN_PERMISSION);
    }

    #[test]
    fn default_roles_nest() {
        let owner = DEFAULT_ROLES[0].permissions;
        let admin = DEFAULT_ROLES[1].permissions;
        let member = DEFAULT_ROLES[2].permissions;
        let viewer = DEFAULT_ROLES[3].permissions;
        assert!(viewer.iter().all(|p| member.contains(p)));
        assert!(member.iter().all(|p| admin.contains(p)));
        assert!(admin.iter().all(|p| owner.contains(p)));
        assert!(!admin.contains(&ProjectArchive));
        assert!(!member.contains(&AgentLogin));
    }

    #[test]
    fn only_roles_within_what_one_holds_can_be_handed_out() {
        let (owner, admin, viewer) = (
            DEFAULT_ROLES[0].permissions,
            DEFAULT_ROLES[1].permissions,
            DEFAULT_ROLES[3].permissions,
        );
        assert!(require_covers(admin, viewer).is_ok());
        assert!(require_covers(owner, owner).is_ok());
        let err = require_covers(admin, owner).expect_err("Admin makes an Owner");
        assert_eq!(err.reason, reason::ROLE_ESCALATION);
        assert!(err.message.contains("project.archive"), "{}", err.message);
    }

    #[test]
    fn the_server_keeps_an_admin_and_a_project_an_owner() {
        assert!(keep_an_admin(1).is_ok());
        assert_eq!(
            keep_an_admin(0).map_err(|e| e.reason),
            Err(reason::LAST_ADMIN)
        );
        assert!(keep_an_owner(2, None).is_ok());
        let last = keep_an_owner(1, Some("Apollo")).expect_err("last owner");
        assert_eq!(last.reason, reason::LAST_OWNER);
        assert!(last.message.contains("\"Apollo\""), "{}", last.message);
    }
}
