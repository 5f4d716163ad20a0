//! Conformance cases of agent sessions, tasks and MCP tokens.

use anima_core::{
    agent::{
        DEFAULT_MCP_PERMISSIONS, LoginReport, NewSession, NewSessionLogin, SessionStatus,
        TaskStatus, TerminalEvent,
    },
    error::reason,
    paging::PageRequest,
    planning::{Actor, NewWorkItem, Priority},
};

use super::new_user;
use crate::{SessionChange, SessionFilter, Store, TokenState};

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
        .set_agent_session_status(
            &session.id,
            SessionStatus::Running,
            SessionChange {
                vm_id: Some("vm-7"),
                ..SessionChange::default()
            },
        )
        .await
        .expect("running");
    assert_eq!(running.vm_id, "vm-7");
    let moved = store
        .set_agent_session_phase(
            &session.id,
            "design",
            &[anima_core::workflow::SkillRef {
                name: "architecture".into(),
                version: "2".into(),
            }],
        )
        .await
        .expect("phase change");
    assert_eq!(moved.phase_id, "design");
    assert_eq!(moved.skills[0].name, "architecture");
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

    let completed = store
        .set_agent_session_status(
            &session.id,
            SessionStatus::Completed,
            SessionChange {
                exit_code: Some(0),
                ..SessionChange::default()
            },
        )
        .await
        .expect("complete");
    assert_eq!(
        (completed.exit_code, completed.vm_id.as_str()),
        (Some(0), "vm-7"),
        "the sandbox stays recorded"
    );
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
        .set_agent_session_status(
            &session.id,
            SessionStatus::Running,
            SessionChange::default(),
        )
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

/// A login is recorded when its credentials are issued, follows the
/// provider's reports of its shell, and no longer changes once it ended.
pub async fn session_logins_are_audited(store: &dyn Store) {
    let owner = store.create_user(new_user("auditor")).await.expect("user");
    let project = store
        .create_project("P", "", &owner.id)
        .await
        .expect("project");
    let item = store
        .create_work_item(NewWorkItem {
            project_id: project.id.clone(),
            plan_id: None,
            title: "debug me".into(),
            description: String::new(),
            priority: Priority::Medium,
            workflow_id: None,
            author: Actor::User {
                id: owner.id.clone(),
            },
        })
        .await
        .expect("item");
    let akh = store.create_akh("Ptah", "", "#445566").await.expect("akh");
    let session = store
        .create_agent_session(NewSession {
            work_item_id: item.id.clone(),
            akh_id: akh.id.clone(),
            keep_after_stop: true,
            token_hash: "login-hash".into(),
            permissions: DEFAULT_MCP_PERMISSIONS.to_vec(),
        })
        .await
        .expect("session");
    let issue = |id: &str| NewSessionLogin {
        id: id.into(),
        session_id: session.id.clone(),
        user_id: owner.id.clone(),
        reason: "why did it fail".into(),
        expires_at: 1_000,
    };
    let first = store
        .create_session_login(issue("login-b"))
        .await
        .expect("issue");
    // Issued later, listed later, whatever their ids.
    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    assert_eq!(
        (first.started_at, first.ended_at, first.commands.len()),
        (None, None, 0)
    );
    store
        .create_session_login(issue("login-a"))
        .await
        .expect("second issue");

    let report = LoginReport {
        id: "login-b".into(),
        started_at: 10,
        commands: vec!["ls".into()],
        bytes_in: 3,
        bytes_out: 40,
        peer: "127.0.0.1:5555".into(),
        ..LoginReport::default()
    };
    let open = store
        .report_session_login(report.clone())
        .await
        .expect("open");
    assert_eq!(open.started_at, Some(10));
    // Terminal events arrive in pieces; a resent piece is kept once, a
    // gap is refused and changes nothing.
    let event = |offset: i64, input: bool, data: &[u8]| TerminalEvent {
        offset_micros: offset,
        input,
        data: data.to_vec(),
    };
    store
        .report_session_login(LoginReport {
            events: vec![event(1, true, b"ls\r"), event(2, false, b"ls\r\n")],
            first_event_seq: 0,
            ..report.clone()
        })
        .await
        .expect("first events");
    store
        .report_session_login(LoginReport {
            events: vec![
                event(2, false, b"ls\r\n"),
                event(3, false, b"a.txt\xff\r\n"),
            ],
            first_event_seq: 1,
            ..report.clone()
        })
        .await
        .expect("resent and new events");
    let err = store
        .report_session_login(LoginReport {
            events: vec![event(9, true, b"lost")],
            first_event_seq: 5,
            ..report.clone()
        })
        .await
        .expect_err("a gap");
    assert_eq!(err.reason, reason::LOGIN_RECORD_GAP);
    let mut page = PageRequest::parse(2, "", "recording").expect("page");
    let mut recorded = Vec::new();
    loop {
        let listed = store
            .login_recording(&session.id, "login-b", &page)
            .await
            .expect("recording");
        recorded.extend(listed.items);
        if listed.next_page_token.is_empty() {
            break;
        }
        page = PageRequest::parse(2, &listed.next_page_token, "recording").expect("next");
    }
    let err = store
        .login_recording("another-session", "login-b", &page)
        .await
        .expect_err("another session's login");
    assert_eq!(err.reason, reason::LOGIN_NOT_FOUND);
    assert_eq!(
        recorded,
        [
            event(1, true, b"ls\r"),
            event(2, false, b"ls\r\n"),
            event(3, false, b"a.txt\xff\r\n")
        ]
    );
    let ended = store
        .report_session_login(LoginReport {
            ended_at: Some(20),
            commands: vec!["ls".into(), "exit".into()],
            exit_status: Some(0),
            ..report.clone()
        })
        .await
        .expect("end");
    assert_eq!(ended.commands, ["ls", "exit"]);
    assert_eq!((ended.ended_at, ended.exit_status), (Some(20), Some(0)));
    let err = store
        .report_session_login(report)
        .await
        .expect_err("ended logins stay as they ended");
    assert_eq!(err.reason, reason::LOGIN_ENDED);
    let err = store
        .report_session_login(LoginReport {
            id: "never-issued".into(),
            ..LoginReport::default()
        })
        .await
        .expect_err("unknown");
    assert_eq!(err.reason, reason::LOGIN_NOT_FOUND);

    // Oldest first, one per page.
    let mut page = PageRequest::parse(1, "", "logins").expect("page");
    let mut seen = Vec::new();
    loop {
        let listed = store
            .list_session_logins(&session.id, &page)
            .await
            .expect("list");
        seen.extend(listed.items.into_iter().map(|login| login.id));
        if listed.next_page_token.is_empty() {
            break;
        }
        page = PageRequest::parse(1, &listed.next_page_token, "logins").expect("next");
    }
    assert_eq!(seen, ["login-b", "login-a"]);
}
