//! Conformance cases of agent sessions, tasks and MCP tokens.

use anima_core::{
    agent::{DEFAULT_MCP_PERMISSIONS, NewSession, SessionStatus, TaskStatus},
    error::reason,
    paging::PageRequest,
    planning::{Actor, NewWorkItem, Priority},
};

use super::new_user;
use crate::{SessionFilter, Store, TokenState};

/// Sessions inherit their work item's phase skills; tokens work until the
/// session ends or they are revoked; ended sessions take no more writes.
pub async fn agent_sessions_and_tokens(store: &dyn Store) {
    let owner = store.create_user(new_user("operator")).await.expect("user");
    let project = store
        .create_project("P", "", &owner.id)
        .await
        .expect("project");
    let item = store
        .create_work_item(NewWorkItem {
            project_id: project.id.clone(),
            plan_id: None,
            title: "agent work".into(),
            description: String::new(),
            priority: Priority::Medium,
            workflow_id: None,
            author: Actor::User {
                id: owner.id.clone(),
            },
        })
        .await
        .expect("item");
    let akh = store.create_akh("Thoth", "", "#112233").await.expect("akh");
    let start = |hash: &str| NewSession {
        work_item_id: item.id.clone(),
        akh_id: akh.id.clone(),
        keep_after_stop: false,
        token_hash: hash.into(),
        permissions: DEFAULT_MCP_PERMISSIONS.to_vec(),
    };
    let session = store
        .create_agent_session(start("hash-1"))
        .await
        .expect("start");
    assert_eq!(session.status, SessionStatus::Provisioning);
    assert_eq!(session.phase_id, "analysis");
    let skills: Vec<&str> = session.skills.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(skills, ["code-reading", "requirements-analysis"]);

    let TokenState::Valid(scope) = store.mcp_token("hash-1").await.expect("scope") else {
        panic!("a fresh token is valid");
    };
    assert_eq!(scope.work_item_id, item.id);
    assert_eq!(scope.akh_id, akh.id);
    assert_eq!(scope.permissions, DEFAULT_MCP_PERMISSIONS);
    assert_eq!(
        store.mcp_token("nope").await.expect("scope"),
        TokenState::Unknown
    );

    let running = store
        .set_agent_session_status(&session.id, SessionStatus::Running, Some("vm-7"), None)
        .await
        .expect("running");
    assert_eq!(running.vm_id, "vm-7");
    let task = store
        .create_task(&session.id, "read the code")
        .await
        .expect("task");
    let done = store
        .update_task_status(&task.id, TaskStatus::Done, "read it")
        .await
        .expect("done");
    assert_eq!(
        (done.status, done.note.as_str()),
        (TaskStatus::Done, "read it")
    );
    let page = PageRequest::parse(0, "", "t").expect("page");
    assert_eq!(
        store
            .list_tasks(&session.id, &page)
            .await
            .expect("tasks")
            .items,
        vec![done]
    );

    let other = store
        .create_agent_session(start("hash-2"))
        .await
        .expect("second");
    assert_eq!(
        store.revoke_agent_tokens(&other.id).await.expect("revoke"),
        1
    );
    assert_eq!(
        store.mcp_token("hash-2").await.expect("scope"),
        TokenState::Revoked
    );

    store
        .set_agent_session_status(&session.id, SessionStatus::Completed, None, None)
        .await
        .expect("complete");
    assert_eq!(
        store.mcp_token("hash-1").await.expect("scope"),
        TokenState::SessionEnded,
        "ending a session ends its token"
    );
    let err = store
        .create_task(&session.id, "too late")
        .await
        .expect_err("ended");
    assert_eq!(err.reason, reason::SESSION_ENDED);
    let err = store
        .set_agent_session_status(&session.id, SessionStatus::Running, None, None)
        .await
        .expect_err("ended");
    assert_eq!(err.reason, reason::SESSION_ENDED);

    let active = store
        .list_agent_sessions(
            &SessionFilter {
                work_item_id: Some(item.id.clone()),
                active_only: true,
                ..Default::default()
            },
            &page,
        )
        .await
        .expect("list");
    assert_eq!(active.items.len(), 1);
    assert_eq!(active.items[0].id, other.id);
}
