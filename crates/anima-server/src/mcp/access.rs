//! What each MCP tool may do: the permission it needs, what it acts on,
//! and whether it writes. Like `rbac::ACCESS` for gRPC, every tool has
//! exactly one rule, and a test holds the table against the tools served.

use anima_core::Permission;

/// What a tool acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolScope {
    /// The token's work item; a `work_item` argument may name it, and
    /// naming any other is refused (`OUT_OF_SCOPE`).
    WorkItem,
    /// The token's agent session (its tasks).
    Session,
    /// The token's project (its documents); naming another project's
    /// document is refused (`OUT_OF_SCOPE`).
    Project,
}

/// One tool's rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ToolAccess {
    /// The permission the session's Akh must hold.
    pub permission: Permission,
    /// What the tool acts on.
    pub scope: ToolScope,
    /// Whether it writes, and so counts against the session's
    /// `mcp_writes_per_minute`.
    pub writes: bool,
}

const fn rule(permission: Permission, scope: ToolScope, writes: bool) -> ToolAccess {
    ToolAccess {
        permission,
        scope,
        writes,
    }
}

/// Every tool by name, with its rule.
pub const TOOLS: &[(&str, ToolAccess)] = &[
    (
        "get_work_item",
        rule(Permission::WorkItemRead, ToolScope::WorkItem, false),
    ),
    (
        "get_thread",
        rule(Permission::ThreadRead, ToolScope::WorkItem, false),
    ),
    (
        "get_workflow_phase",
        rule(Permission::WorkItemRead, ToolScope::WorkItem, false),
    ),
    (
        "post_message",
        rule(Permission::ThreadPost, ToolScope::WorkItem, true),
    ),
    (
        "list_tasks",
        rule(Permission::TaskUpdate, ToolScope::Session, false),
    ),
    (
        "create_task",
        rule(Permission::TaskUpdate, ToolScope::Session, true),
    ),
    (
        "update_task_status",
        rule(Permission::TaskUpdate, ToolScope::Session, true),
    ),
    (
        "request_human_decision",
        rule(Permission::DecisionRequest, ToolScope::WorkItem, true),
    ),
    (
        "search_library",
        rule(Permission::DocumentRead, ToolScope::Project, false),
    ),
    (
        "read_document",
        rule(Permission::DocumentRead, ToolScope::Project, false),
    ),
];

/// The rule of the tool named `tool`.
pub fn of(tool: &str) -> Option<ToolAccess> {
    TOOLS
        .iter()
        .find(|(name, _)| *name == tool)
        .map(|(_, access)| *access)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::mcp::AgentTools;

    /// Every tool served has exactly one rule, and every rule a tool.
    #[test]
    fn every_tool_has_exactly_one_rule() {
        let served: BTreeSet<String> = AgentTools::served_tools().into_iter().collect();
        let ruled: Vec<&str> = TOOLS.iter().map(|(name, _)| *name).collect();
        let unique: BTreeSet<String> = ruled.iter().map(|name| (*name).to_owned()).collect();
        assert_eq!(unique.len(), ruled.len(), "a tool with two rules");
        assert_eq!(served, unique);
    }

    /// The expectations written out by hand, not read from the table: a
    /// change of what a tool may do must change this test too.
    #[test]
    fn each_tool_needs_what_it_should() {
        use Permission::*;
        use ToolScope::*;
        let expected = [
            ("get_work_item", WorkItemRead, WorkItem, false),
            ("get_thread", ThreadRead, WorkItem, false),
            ("get_workflow_phase", WorkItemRead, WorkItem, false),
            ("post_message", ThreadPost, WorkItem, true),
            ("list_tasks", TaskUpdate, Session, false),
            ("create_task", TaskUpdate, Session, true),
            ("update_task_status", TaskUpdate, Session, true),
            ("request_human_decision", DecisionRequest, WorkItem, true),
            ("search_library", DocumentRead, Project, false),
            ("read_document", DocumentRead, Project, false),
        ];
        for (tool, permission, scope, writes) in expected {
            assert_eq!(
                of(tool),
                Some(ToolAccess {
                    permission,
                    scope,
                    writes
                }),
                "{tool}"
            );
        }
        assert_eq!(TOOLS.len(), expected.len());
    }
}
