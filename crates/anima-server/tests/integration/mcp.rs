//! Agent sessions over gRPC and the `/mcp` endpoint driven by the `rmcp`
//! client, on both backends. The agent provider is a test double
//! ([`crate::common::RecordingProvider`]) that hands the session's token to the
//! test instead of a sandbox.

use anima_client::Services;
use std::{sync::Arc, time::Duration};

use crate::common::{Backend, RecordingProvider, TestServer, authed, failure};
use anima_proto::v1::{self as pb};
use rmcp::{
    RoleClient, ServiceExt,
    model::{CallToolRequestParams, CallToolResult, ReadResourceRequestParams},
    service::RunningService,
    transport::{
        StreamableHttpClientTransport, streamable_http_client::StreamableHttpClientTransportConfig,
    },
};
use serde_json::{Value, json};
use tokio_stream::StreamExt;
use tonic::Code;

on_both_backends!(
    every_tool_acts_on_the_sessions_own_work_item,
    tokens_stop_working_at_once,
    two_sessions_see_only_their_own,
    sessions_need_a_provider,
    a_lost_sandbox_fails_its_session,
    the_dashboard_shows_the_sessions_at_work,
    an_agent_session_writes_at_a_bounded_rate,
    agents_search_and_read_their_own_projects_documents,
    an_agent_session_searches_at_a_bounded_rate,
);

struct Setup {
    server: TestServer,
    provider: Arc<RecordingProvider>,
    token: String,
    akh_id: String,
}

async fn setup(backend: Backend) -> Setup {
    setup_with(backend, anima_server::ServerConfig::default()).await
}

async fn setup_with(backend: Backend, config: anima_server::ServerConfig) -> Setup {
    let provider = Arc::new(RecordingProvider::default());
    let server = TestServer::start_with_provider(backend, config, Some(provider.clone())).await;
    server.user("lead", false).await;
    let token = server.login("lead").await;
    let akh_id = server
        .store
        .create_akh("Thoth", "careful", "#112233")
        .await
        .expect("akh")
        .id;
    Setup {
        server,
        provider,
        token,
        akh_id,
    }
}

async fn work_item(setup: &Setup, project: &str, title: &str) -> pb::WorkItem {
    let project = setup
        .server
        .projects()
        .create_project(authed(
            &setup.token,
            pb::CreateProjectRequest {
                name: project.into(),
                description: String::new(),
            },
        ))
        .await
        .expect("project")
        .into_inner();
    setup
        .server
        .work_items()
        .create_work_item(authed(
            &setup.token,
            pb::CreateWorkItemRequest {
                project_id: project.id,
                title: title.into(),
                description: format!("{title}: the plan"),
                ..Default::default()
            },
        ))
        .await
        .expect("item")
        .into_inner()
}

/// Starts a session on a work item; returns it and its MCP token.
async fn start(setup: &Setup, item: &pb::WorkItem) -> (pb::AgentSession, String) {
    let session = setup
        .server
        .sessions()
        .start_session(authed(
            &setup.token,
            pb::StartSessionRequest {
                work_item_id: item.id.clone(),
                akh_id: setup.akh_id.clone(),
                keep_after_stop: false,
            },
        ))
        .await
        .expect("start")
        .into_inner();
    let token = setup.provider.token_of(&session.id);
    (session, token)
}

async fn connect(
    server: &TestServer,
    token: &str,
) -> Result<RunningService<RoleClient, ()>, String> {
    // The workspace builds reqwest without a TLS provider of its own (see
    // anima-ai); rmcp's client builds one, so the process needs a provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config =
        StreamableHttpClientTransportConfig::with_uri(format!("http://{}/mcp", server.addr))
            .auth_header(token.to_owned());
    ().serve(StreamableHttpClientTransport::from_config(config))
        .await
        .map_err(|err| err.to_string())
}

/// The reason `/mcp` gives for refusing a request with this token, read
/// from a plain HTTP exchange.
async fn refusal(server: &TestServer, token: Option<&str>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}"#;
    let authorization = token
        .map(|token| format!("Authorization: Bearer {token}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "POST /mcp HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\n{authorization}\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        server.addr,
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    assert!(response.starts_with("HTTP/1.1 401"), "{response}");
    let json = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    let value: Value = serde_json::from_str(json).unwrap_or_default();
    value["error"]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

async fn call(
    client: &RunningService<RoleClient, ()>,
    tool: &str,
    arguments: Value,
) -> Result<Value, String> {
    let arguments = arguments.as_object().cloned().unwrap_or_default();
    let result: CallToolResult = client
        .call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(arguments))
        .await
        .map_err(|err| format!("protocol error: {err}"))?;
    let text = result
        .content
        .first()
        .and_then(|content| content.as_text())
        .map(|text| text.text.clone())
        .unwrap_or_default();
    if result.is_error == Some(true) {
        return Err(format!("tool refused: {text}"));
    }
    serde_json::from_str(&text).map_err(|err| format!("not JSON ({err}): {text}"))
}

async fn every_tool_acts_on_the_sessions_own_work_item(backend: Backend) {
    let setup = setup(backend).await;
    let item = work_item(&setup, "Agents", "Port the parser").await;
    // A neighbour in the same project (WI-2) and one in another (also WI-1
    // there, which names the session's own key, so it is not tried).
    let neighbour = setup
        .server
        .work_items()
        .create_work_item(authed(
            &setup.token,
            pb::CreateWorkItemRequest {
                project_id: item.project_id.clone(),
                title: "Secret work".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("neighbour")
        .into_inner();
    let other = work_item(&setup, "Elsewhere", "Other secret work").await;
    let (session, token) = start(&setup, &item).await;
    assert_eq!(session.status, pb::SessionStatus::Running as i32);
    assert_eq!(session.phase_id, "analysis");
    assert!(!session.skills.is_empty());

    let mut thread_stream = setup
        .server
        .threads()
        .stream_thread(authed(
            &setup.token,
            pb::StreamThreadRequest {
                work_item_id: item.id.clone(),
                after_event_id: setup.server.last_event_id().await,
            },
        ))
        .await
        .expect("stream")
        .into_inner();

    let client = connect(&setup.server, &token).await.expect("initialize");
    let tools: Vec<String> = client
        .list_all_tools()
        .await
        .expect("tools")
        .into_iter()
        .map(|tool| tool.name.to_string())
        .collect();
    for expected in [
        "get_work_item",
        "get_thread",
        "get_workflow_phase",
        "post_message",
        "list_tasks",
        "create_task",
        "update_task_status",
        "request_human_decision",
    ] {
        assert!(
            tools.iter().any(|tool| tool == expected),
            "{expected} in {tools:?}"
        );
    }

    let read = call(&client, "get_work_item", json!({}))
        .await
        .expect("read");
    assert_eq!(read["key"], "WI-1");
    assert_eq!(read["description"], "Port the parser: the plan");
    let by_key = call(&client, "get_work_item", json!({ "work_item": "wi-1" }))
        .await
        .expect("own key");
    assert_eq!(by_key["id"], item.id.as_str());

    // The description is also a resource; only this item's can be read.
    let resources = client.list_resources(None).await.expect("resources");
    assert_eq!(resources.resources.len(), 1);
    let uri = resources.resources[0].uri.clone();
    let contents = client
        .read_resource(ReadResourceRequestParams::new(uri))
        .await
        .expect("read resource")
        .contents;
    assert!(
        format!("{contents:?}").contains("Port the parser: the plan"),
        "{contents:?}"
    );
    let foreign = format!("anima://work-items/{}/description", other.id);
    assert!(
        client
            .read_resource(ReadResourceRequestParams::new(foreign))
            .await
            .is_err(),
        "another item's description is out of scope"
    );

    let phase = call(&client, "get_workflow_phase", json!({}))
        .await
        .expect("phase");
    assert_eq!(phase["phase"]["id"], "analysis");
    assert_eq!(phase["next_phase"]["id"], "implementation");

    let posted = call(
        &client,
        "post_message",
        json!({ "body": "I read the parser." }),
    )
    .await
    .expect("post");
    assert_eq!(posted["sequence"], 1);
    // The post is live on StreamThread, attributed to the Akh and session.
    let message = loop {
        let event = tokio::time::timeout(Duration::from_secs(30), thread_stream.next())
            .await
            .expect("live")
            .expect("open")
            .expect("ok");
        if let Some(pb::thread_event::Kind::Message(message)) = event.kind {
            break message;
        }
    };
    match message.author.and_then(|author| author.kind) {
        Some(pb::actor::Kind::Akh(akh)) => {
            assert_eq!(akh.akh_id, setup.akh_id);
            assert_eq!(akh.session_id, session.id);
        }
        other => panic!("unexpected author {other:?}"),
    }
    let thread = call(&client, "get_thread", json!({ "page_size": 10 }))
        .await
        .expect("thread");
    assert_eq!(thread["messages"][0]["body"], "I read the parser.");

    let mut status_stream = setup
        .server
        .sessions()
        .stream_session_status(authed(
            &setup.token,
            pb::StreamSessionStatusRequest {
                session_id: session.id.clone(),
                after_event_id: setup.server.last_event_id().await,
            },
        ))
        .await
        .expect("status stream")
        .into_inner();
    let task = call(&client, "create_task", json!({ "title": "Write tests" }))
        .await
        .expect("task");
    // The task shows up live on the session's status stream.
    let streamed = loop {
        let event = tokio::time::timeout(Duration::from_secs(30), status_stream.next())
            .await
            .expect("live")
            .expect("open")
            .expect("ok");
        if let Some(pb::session_status_event::Kind::Task(task)) = event.kind {
            break task;
        }
    };
    assert_eq!(streamed.title, "Write tests");
    let task_id = task["id"].as_str().expect("id").to_owned();
    let updated = call(
        &client,
        "update_task_status",
        json!({ "task_id": task_id, "status": "in_progress", "note": "halfway" }),
    )
    .await
    .expect("update");
    assert_eq!(updated["status"], "in_progress");
    let tasks = call(&client, "list_tasks", json!({})).await.expect("tasks");
    assert_eq!(tasks["tasks"][0]["note"], "halfway");

    let decision = call(
        &client,
        "request_human_decision",
        json!({ "question": "Keep the old API?", "input_label": "Yes or no", "choices": ["yes", "no"] }),
    )
    .await
    .expect("decision");
    assert_eq!(decision["state"], "open");

    // Another work item, by key or id, is refused the same way.
    let before = setup.server.last_event_id().await;
    for named in [
        neighbour.key.as_str(),
        neighbour.id.as_str(),
        other.id.as_str(),
        "WI-999",
    ] {
        let err = call(&client, "get_work_item", json!({ "work_item": named }))
            .await
            .expect_err("out of scope");
        assert!(err.contains("OUT_OF_SCOPE"), "{err}");
        assert!(!err.contains("Secret"), "{err}");
        // A refusal the model should read is a tool result, not a
        // protocol error an MCP client may hide from it.
        assert!(err.starts_with("tool refused: "), "{err}");
    }
    let err = call(
        &client,
        "post_message",
        json!({ "body": "hi", "work_item": other.id }),
    )
    .await
    .expect_err("out of scope");
    assert!(err.contains("OUT_OF_SCOPE"), "{err}");

    // Arguments of the wrong type, size or shape: refused as the tool's
    // answer (as the MCP spec asks, so the model can correct itself),
    // whether the schema or the domain refuses them.
    for (tool, arguments) in [
        ("get_thread", json!({ "page_size": "many" })),
        ("get_thread", json!({ "page_size": 10_000 })),
        (
            "post_message",
            json!({ "body": "x".repeat(256 * 1024 + 1) }),
        ),
        ("post_message", json!({ "body": "" })),
        ("post_message", json!({ "body": "hi", "as_user": "admin" })),
        (
            "update_task_status",
            json!({ "task_id": task_id, "status": "finished" }),
        ),
        ("create_task", json!({ "title": 42 })),
    ] {
        let err = call(&client, tool, arguments.clone())
            .await
            .expect_err("bad argument");
        assert!(
            err.starts_with("tool refused: "),
            "{tool} {arguments}: {err}"
        );
    }
    assert_eq!(
        setup.server.last_event_id().await,
        before,
        "nothing changed"
    );
}

async fn tokens_stop_working_at_once(backend: Backend) {
    let setup = setup(backend).await;
    let item = work_item(&setup, "Agents", "Short job").await;
    let (session, token) = start(&setup, &item).await;

    assert!(connect(&setup.server, "").await.is_err(), "no token");
    assert!(
        connect(&setup.server, "not-a-token").await.is_err(),
        "unknown token"
    );

    let client = connect(&setup.server, &token).await.expect("initialize");
    call(&client, "get_work_item", json!({}))
        .await
        .expect("works");

    // An administrator revokes the token: the very next call fails.
    let revoked = setup
        .server
        .sessions()
        .revoke_session_token(authed(
            &setup.token,
            pb::RevokeSessionTokenRequest {
                id: session.id.clone(),
            },
        ))
        .await
        .expect("revoke")
        .into_inner();
    assert_eq!(revoked.revoked, 1);
    call(&client, "get_work_item", json!({}))
        .await
        .expect_err("revoked");
    assert_eq!(
        refusal(&setup.server, Some(&token)).await,
        "MCP_TOKEN_REVOKED"
    );

    // A second session is stopped: its token ends with it.
    let (second, token) = start(&setup, &item).await;
    let client = connect(&setup.server, &token).await.expect("initialize");
    call(&client, "list_tasks", json!({})).await.expect("works");
    setup
        .server
        .sessions()
        .stop_session(authed(
            &setup.token,
            pb::StopSessionRequest {
                id: second.id.clone(),
            },
        ))
        .await
        .expect("stop");
    assert!(
        call(&client, "create_task", json!({ "title": "after the end" }))
            .await
            .is_err(),
        "calls after the session completed fail"
    );
    assert_eq!(refusal(&setup.server, Some(&token)).await, "SESSION_ENDED");
    assert_eq!(
        setup.provider.destroyed.lock().expect("lock").as_slice(),
        std::slice::from_ref(&second.id)
    );
    let again = setup
        .server
        .sessions()
        .stop_session(authed(
            &setup.token,
            pb::StopSessionRequest { id: second.id },
        ))
        .await;
    assert_eq!(
        failure(again),
        (Code::FailedPrecondition, "SESSION_ENDED".into())
    );
}

async fn two_sessions_see_only_their_own(backend: Backend) {
    let setup = setup(backend).await;
    let first = work_item(&setup, "One", "First job").await;
    let second = work_item(&setup, "Two", "Second job").await;
    let (_, first_token) = start(&setup, &first).await;
    let (_, second_token) = start(&setup, &second).await;
    let (a, b) = tokio::join!(
        async {
            let client = connect(&setup.server, &first_token).await.expect("a");
            for n in 0..10 {
                call(&client, "post_message", json!({ "body": format!("a{n}") }))
                    .await
                    .expect("post a");
            }
            call(&client, "get_thread", json!({ "page_size": 50 }))
                .await
                .expect("thread a")
        },
        async {
            let client = connect(&setup.server, &second_token).await.expect("b");
            for n in 0..10 {
                call(&client, "post_message", json!({ "body": format!("b{n}") }))
                    .await
                    .expect("post b");
            }
            call(&client, "get_thread", json!({ "page_size": 50 }))
                .await
                .expect("thread b")
        }
    );
    let bodies = |thread: &Value| -> Vec<String> {
        thread["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .map(|m| m["body"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    assert!(bodies(&a).iter().all(|body| body.starts_with('a')));
    assert!(bodies(&b).iter().all(|body| body.starts_with('b')));
    assert_eq!((bodies(&a).len(), bodies(&b).len()), (10, 10));
}

/// An agent talked into flooding its thread stops at the session's limit
/// of writes per minute; it can still read, and another session has a
/// budget of its own.
async fn an_agent_session_writes_at_a_bounded_rate(backend: Backend) {
    let mut config = anima_server::ServerConfig::default();
    config.rate_limits.mcp_writes_per_minute = 3;
    let setup = setup_with(backend, config).await;
    let item = work_item(&setup, "Agents", "Flood").await;
    let (_, token) = start(&setup, &item).await;
    let client = connect(&setup.server, &token).await.expect("connect");
    for n in 0..3 {
        call(
            &client,
            "post_message",
            json!({ "body": format!("post {n}") }),
        )
        .await
        .expect("within the limit");
    }
    for (tool, arguments) in [
        ("post_message", json!({ "body": "one too many" })),
        ("create_task", json!({ "title": "one too many" })),
        (
            "request_human_decision",
            json!({ "question": "More?", "input_label": "answer" }),
        ),
    ] {
        let refused = call(&client, tool, arguments)
            .await
            .expect_err("over the limit");
        assert!(
            refused.contains("RATE_LIMITED")
                && refused.contains("writes by this agent session (at most 3 per minute)"),
            "{tool}: {refused}"
        );
    }
    let thread = call(&client, "get_thread", json!({ "page_size": 50 }))
        .await
        .expect("reads go on");
    assert_eq!(thread["messages"].as_array().expect("messages").len(), 3);

    let other = work_item(&setup, "Others", "Unrelated").await;
    let (_, other_token) = start(&setup, &other).await;
    let other_client = connect(&setup.server, &other_token).await.expect("connect");
    call(&other_client, "post_message", json!({ "body": "mine" }))
        .await
        .expect("a budget of its own");
}

async fn sessions_need_a_provider(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.user("lead", false).await;
    let token = server.login("lead").await;
    let akh = server
        .store
        .create_akh("Thoth", "", "#112233")
        .await
        .expect("akh");
    let project = server
        .store
        .create_project(
            "P",
            "",
            &server
                .store
                .find_credentials("lead")
                .await
                .expect("find")
                .expect("lead")
                .user
                .id,
        )
        .await
        .expect("project");
    let item = server
        .work_items()
        .create_work_item(authed(
            &token,
            pb::CreateWorkItemRequest {
                project_id: project.id,
                title: "t".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("item")
        .into_inner();
    let before = server.last_event_id().await;
    let refused = server
        .sessions()
        .start_session(authed(
            &token,
            pb::StartSessionRequest {
                work_item_id: item.id,
                akh_id: akh.id,
                keep_after_stop: false,
            },
        ))
        .await;
    assert_eq!(
        failure(refused),
        (Code::FailedPrecondition, "NO_AGENT_PROVIDER".into())
    );
    assert_eq!(server.last_event_id().await, before);
}

/// A provider that lost a sandbox (restarted) fails its session, whether
/// the session's watcher sees it or a restarted server resumes watching.
async fn a_lost_sandbox_fails_its_session(backend: Backend) {
    let setup = setup(backend).await;
    let item = work_item(&setup, "Lost", "sandbox gone").await;
    let (session, token) = start(&setup, &item).await;
    let get = || async {
        setup
            .server
            .sessions()
            .get_session(authed(
                &setup.token,
                pb::GetSessionRequest {
                    id: session.id.clone(),
                },
            ))
            .await
            .expect("get")
            .into_inner()
    };
    assert_eq!(get().await.status(), pb::SessionStatus::Running);
    setup
        .provider
        .lost
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let provider: Arc<dyn anima_server::agents::AgentProvider> = setup.provider.clone();
    // As a restarted server does: a new supervisor takes it up.
    let resumed = anima_server::supervisor::Supervisor::new(setup.server.store.clone(), provider)
        .resume()
        .await
        .expect("resume");
    assert_eq!(resumed, 1);
    let mut failed = None;
    for _ in 0..100 {
        let current = get().await;
        if current.status() == pb::SessionStatus::Failed {
            failed = Some(current);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let failed = failed.expect("the session fails");
    assert!(
        failed
            .last_output_lines
            .join(" ")
            .contains("the sandbox is gone"),
        "{failed:?}"
    );
    assert_eq!(
        refusal(&setup.server, Some(&token)).await,
        "SESSION_ENDED",
        "its token dies with it"
    );
}

async fn the_dashboard_shows_the_sessions_at_work(backend: Backend) {
    let setup = setup(backend).await;
    let busy = work_item(&setup, "Busy", "Port the parser").await;
    work_item(&setup, "Idle", "Nothing yet").await;
    let (session, _) = start(&setup, &busy).await;
    let dashboard = || async {
        setup
            .server
            .dashboards()
            .get_dashboard(authed(&setup.token, pb::GetDashboardRequest {}))
            .await
            .expect("dashboard")
            .into_inner()
    };
    let counts = |dashboard: &pb::Dashboard| {
        let mut counts: Vec<(String, i64)> = dashboard
            .projects
            .iter()
            .map(|project| (project.name.clone(), project.active_sessions))
            .collect();
        counts.sort();
        counts
    };
    // The project itself carries the same counts, for list views.
    let project_stats = || async {
        setup
            .server
            .projects()
            .get_project(authed(
                &setup.token,
                pb::GetProjectRequest {
                    id: busy.project_id.clone(),
                },
            ))
            .await
            .expect("project")
            .into_inner()
            .stats
            .map(|stats| (stats.active_sessions, stats.open_decisions))
    };
    setup
        .server
        .threads()
        .request_decision(authed(
            &setup.token,
            pb::RequestDecisionRequest {
                work_item_id: busy.id.clone(),
                question: "Which parser?".into(),
                input_label: "Parser".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("decision");
    assert_eq!(project_stats().await, Some((1, 1)));
    let at_work = dashboard().await;
    let ids: Vec<&str> = at_work
        .active_sessions
        .iter()
        .map(|session| session.id.as_str())
        .collect();
    assert_eq!(ids, [session.id.as_str()]);
    assert_eq!(
        counts(&at_work),
        [("Busy".to_owned(), 1), ("Idle".to_owned(), 0)]
    );
    setup
        .server
        .sessions()
        .stop_session(authed(
            &setup.token,
            pb::StopSessionRequest { id: session.id },
        ))
        .await
        .expect("stop");
    let after = dashboard().await;
    assert!(
        after.active_sessions.is_empty(),
        "{:?}",
        after.active_sessions
    );
    assert_eq!(
        counts(&after),
        [("Busy".to_owned(), 0), ("Idle".to_owned(), 0)]
    );
    assert_eq!(project_stats().await, Some((0, 1)));
}

/// Uploads `content` as a document of `project_id`; its id.
async fn document(
    setup: &Setup,
    project_id: &str,
    title: &str,
    doc_type: pb::DocumentType,
    content: &[u8],
) -> String {
    let messages = vec![
        pb::UploadDocumentRequest {
            project_id: project_id.into(),
            title: title.into(),
            r#type: doc_type as i32,
            content: content.to_vec(),
            ..Default::default()
        },
        pb::UploadDocumentRequest {
            last: true,
            ..Default::default()
        },
    ];
    setup
        .server
        .documents()
        .upload_document(authed(&setup.token, tokio_stream::iter(messages)))
        .await
        .expect("upload")
        .into_inner()
        .id
}

async fn agents_search_and_read_their_own_projects_documents(backend: Backend) {
    let setup = setup(backend).await;
    let item = work_item(&setup, "Agents", "Fix the checkout").await;
    let other = work_item(&setup, "Elsewhere", "Other work").await;
    let spec = format!(
        "# Checkout\nRetry once on ERR_CONN_RESET, then tell the customer.\n{}",
        "Padding line of the spec.\n".repeat(100)
    );
    let spec_id = document(
        &setup,
        &item.project_id,
        "checkout.md",
        pb::DocumentType::Markdown,
        spec.as_bytes(),
    )
    .await;
    let dump_id = document(
        &setup,
        &item.project_id,
        "core.bin",
        pb::DocumentType::Attachment,
        &[0, 1, 2, 255],
    )
    .await;
    let secret_id = document(
        &setup,
        &other.project_id,
        "secret.md",
        pb::DocumentType::Markdown,
        b"Elsewhere's notes on ERR_CONN_RESET.",
    )
    .await;
    let (_, token) = start(&setup, &item).await;
    let client = connect(&setup.server, &token).await.expect("connect");

    let found = call(
        &client,
        "search_library",
        json!({"query": "err_conn_reset"}),
    )
    .await
    .expect("search");
    let hits = found["hits"].as_array().expect("hits");
    assert_eq!(hits.len(), 1, "only the session's project: {found}");
    assert_eq!(hits[0]["document_id"], spec_id.as_str());
    assert!(
        hits[0]["snippet"]
            .as_str()
            .unwrap_or_default()
            .contains("ERR_CONN_RESET"),
        "{found}"
    );

    let first = call(
        &client,
        "read_document",
        json!({"document_id": spec_id, "max_chars": 100}),
    )
    .await
    .expect("read");
    let total = spec.chars().count() as u64;
    assert_eq!(first["total_chars"], total);
    assert_eq!(first["text"], spec.chars().take(100).collect::<String>());
    assert_eq!(first["next_offset"], 100);
    let last = call(
        &client,
        "read_document",
        json!({"document_id": spec_id, "offset": total - 10}),
    )
    .await
    .expect("read the end");
    assert_eq!(
        last["text"].as_str().map(|text| text.chars().count()),
        Some(10)
    );
    assert!(last["next_offset"].is_null(), "{last}");

    let binary = call(&client, "read_document", json!({"document_id": dump_id}))
        .await
        .expect("read a binary file");
    assert_eq!(binary["text"], "");
    assert!(
        binary["not_indexed_reason"]
            .as_str()
            .is_some_and(|why| !why.is_empty()),
        "{binary}"
    );

    let elsewhere = call(&client, "read_document", json!({"document_id": secret_id}))
        .await
        .expect_err("another project's document");
    let missing = call(
        &client,
        "read_document",
        json!({"document_id": "00000000-0000-7000-8000-00000000dead"}),
    )
    .await
    .expect_err("no such document");
    assert!(elsewhere.contains("OUT_OF_SCOPE"), "{elsewhere}");
    assert_eq!(
        elsewhere, missing,
        "the same answer whether it exists or not"
    );
    for (arguments, why) in [
        (json!({"query": ""}), "FIELD_REQUIRED"),
        (json!({"query": "x".repeat(501)}), "FIELD_TOO_LONG"),
        (json!({"query": "x", "limit": 0}), "INVALID_FIELD"),
    ] {
        let refused = call(&client, "search_library", arguments)
            .await
            .expect_err("bad search");
        assert!(refused.contains(why), "{refused}");
    }
    let refused = call(
        &client,
        "read_document",
        json!({"document_id": spec_id, "max_chars": 50_001}),
    )
    .await
    .expect_err("too much at once");
    assert!(refused.contains("INVALID_FIELD"), "{refused}");
}

/// Each library search scans the project's text: a session makes at most
/// `mcp_searches_per_minute` of them.
async fn an_agent_session_searches_at_a_bounded_rate(backend: Backend) {
    let mut config = anima_server::ServerConfig::default();
    config.rate_limits.mcp_searches_per_minute = 2;
    let setup = setup_with(backend, config).await;
    let item = work_item(&setup, "Agents", "Search a lot").await;
    let (_, token) = start(&setup, &item).await;
    let client = connect(&setup.server, &token).await.expect("connect");
    for _ in 0..2 {
        call(&client, "search_library", json!({"query": "anything"}))
            .await
            .expect("within the limit");
    }
    let refused = call(&client, "search_library", json!({"query": "anything"}))
        .await
        .expect_err("past the limit");
    assert!(refused.contains("RATE_LIMITED"), "{refused}");
    call(&client, "get_work_item", json!({}))
        .await
        .expect("other reads are not held up");
}
