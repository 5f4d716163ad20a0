//! Threads, decisions, live streams and the dashboard over real gRPC, on
//! both backends.

use anima_client::Services;
use std::time::Duration;

use crate::common::{Backend, TestServer, authed, failure};
use anima_core::{
    permission::DEFAULT_ROLES,
    planning::Actor,
    thread::{MessageKind, NewMessage},
};
use anima_proto::v1::{self as pb, thread_service_client::ThreadServiceClient};
use anima_server::{
    ServerConfig,
    config::{InternalService, ServiceToken},
};
use tokio_stream::StreamExt;
use tonic::{Code, Streaming};

on_both_backends!(
    messages_of_every_kind_and_promotion,
    threads_page_both_ways,
    decisions_are_asked_and_answered_once,
    bad_input_is_refused_and_changes_nothing,
    streams_replay_then_follow_without_gaps,
    slow_consumers_are_cut_off_with_a_cursor,
    dashboard_shows_and_streams_only_readable_projects,
);

const SERVICE_TOKEN: &str = "mail-worker-token-0123456789-abcdef";

async fn start(backend: Backend) -> TestServer {
    TestServer::start_with(
        backend,
        ServerConfig {
            service_tokens: vec![ServiceToken {
                name: InternalService::Mail,
                token: SERVICE_TOKEN.into(),
            }],
            stream_heartbeat_secs: 1,
            stream_lag_limit: 16,
            ..ServerConfig::default()
        },
    )
    .await
}

/// A logged-in owner with a project and one work item in it.
async fn owner_and_item(server: &TestServer, name: &str) -> (String, pb::WorkItem) {
    server.user(name, false).await;
    let token = server.login(name).await;
    let project = server
        .projects()
        .create_project(authed(
            &token,
            pb::CreateProjectRequest {
                name: format!("{name}'s project"),
                description: String::new(),
            },
        ))
        .await
        .expect("project")
        .into_inner();
    let item = server
        .work_items()
        .create_work_item(authed(
            &token,
            pb::CreateWorkItemRequest {
                project_id: project.id,
                title: "Discuss".into(),
                description: "first".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("item")
        .into_inner();
    (token, item)
}

fn threads(server: &TestServer) -> ThreadServiceClient<tonic::transport::Channel> {
    server.threads()
}

fn human(item: &pb::WorkItem, body: &str) -> pb::PostMessageRequest {
    pb::PostMessageRequest {
        work_item_id: item.id.clone(),
        kind: pb::MessageKind::Human as i32,
        body: body.into(),
        ..Default::default()
    }
}

async fn messages_of_every_kind_and_promotion(backend: Backend) {
    let server = start(backend).await;
    let (token, item) = owner_and_item(&server, "ada").await;
    let mut threads = threads(&server);
    let said = threads
        .post_message(authed(&token, human(&item, "What do we ship?")))
        .await
        .expect("human")
        .into_inner();
    assert_eq!(said.sequence, 1);
    assert_eq!(said.thread_id, item.id);

    let akh = server
        .store
        .create_akh("Thoth", "precise", "#112233")
        .await
        .expect("akh");
    // Akhs write over MCP, mail arrives through the mail worker: neither a
    // member nor the worker's token posts them here.
    let as_akh = pb::PostMessageRequest {
        work_item_id: item.id.clone(),
        kind: pb::MessageKind::Akh as i32,
        body: "Ship the CLI first.".into(),
        akh_id: akh.id.clone(),
        ..Default::default()
    };
    assert_eq!(
        failure(threads.post_message(authed(&token, as_akh.clone())).await),
        (Code::PermissionDenied, "MESSAGE_KIND_NOT_ALLOWED".into())
    );
    assert_eq!(
        failure(threads.post_message(authed(SERVICE_TOKEN, as_akh)).await).0,
        Code::PermissionDenied
    );
    let proposal = server
        .store
        .post_message(NewMessage {
            work_item_id: item.id.clone(),
            kind: MessageKind::Akh,
            author: Actor::Akh {
                akh_id: akh.id.clone(),
                session_id: String::new(),
                service: "test".into(),
            },
            body: "Ship the CLI first.".into(),
            email: None,
            attachments: Vec::new(),
            idempotency_key: None,
        })
        .await
        .expect("akh message");
    let inbound = pb::PostMessageRequest {
        work_item_id: item.id.clone(),
        kind: pb::MessageKind::InboundEmail as i32,
        body: "Sounds good.".into(),
        email: Some(pb::EmailHeaders {
            from: "ann@example.org".into(),
            to: vec!["wi-1@anima.example".into()],
            subject: "Re: Discuss".into(),
            message_id: "m1@example.org".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(
        failure(threads.post_message(authed(&token, inbound)).await),
        (Code::PermissionDenied, "MESSAGE_KIND_NOT_ALLOWED".into())
    );

    let outbound = threads
        .post_message(authed(
            &token,
            pb::PostMessageRequest {
                work_item_id: item.id.clone(),
                kind: pb::MessageKind::OutboundEmail as i32,
                body: "We ship the CLI first.".into(),
                email: Some(pb::EmailHeaders {
                    to: vec!["ann@example.org".into()],
                    subject: "Decision".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ))
        .await
        .expect("outbound")
        .into_inner();
    assert_eq!(outbound.delivery_state, pb::DeliveryState::Queued as i32);
    let queued = server.store.queued_outbound_mail(10).await.expect("queue");
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].id, outbound.id);

    // Promotion: the Akh message becomes a revision that remembers it.
    let promoted = threads
        .promote_message(authed(
            &token,
            pb::PromoteMessageRequest {
                message_id: proposal.id.clone(),
                base_revision_id: item.description_revision_id.clone(),
            },
        ))
        .await
        .expect("promote")
        .into_inner();
    let revisions = server
        .work_items()
        .get_description_revisions(authed(
            &token,
            pb::GetDescriptionRevisionsRequest {
                work_item_id: item.id.clone(),
                ..Default::default()
            },
        ))
        .await
        .expect("revisions")
        .into_inner()
        .revisions;
    let last = revisions.last().expect("revision");
    assert_eq!(last.id, promoted.revision_id);
    assert_eq!(last.text, "Ship the CLI first.");
    assert_eq!(last.cause, pb::RevisionCause::AiPromotion as i32);
    assert_eq!(last.source_message_id, proposal.id);
}

async fn threads_page_both_ways(backend: Backend) {
    let server = start(backend).await;
    let (token, item) = owner_and_item(&server, "pager").await;
    let mut threads = threads(&server);
    for n in 1..=7 {
        threads
            .post_message(authed(&token, human(&item, &format!("m{n}"))))
            .await
            .expect("post");
    }
    let page = |page_token: String, reverse: bool| pb::GetThreadRequest {
        work_item_id: item.id.clone(),
        page_size: 3,
        page_token,
        reverse,
    };
    let bodies = |response: &pb::GetThreadResponse| -> Vec<String> {
        response.messages.iter().map(|m| m.body.clone()).collect()
    };
    let first = threads
        .get_thread(authed(&token, page(String::new(), false)))
        .await
        .expect("first")
        .into_inner();
    assert_eq!(bodies(&first), ["m1", "m2", "m3"]);
    assert!(first.previous_page_token.is_empty());
    let second = threads
        .get_thread(authed(&token, page(first.next_page_token.clone(), false)))
        .await
        .expect("second")
        .into_inner();
    assert_eq!(bodies(&second), ["m4", "m5", "m6"]);
    let back = threads
        .get_thread(authed(
            &token,
            page(second.previous_page_token.clone(), false),
        ))
        .await
        .expect("back")
        .into_inner();
    assert_eq!(bodies(&back), ["m3", "m2", "m1"]);

    let newest = threads
        .get_thread(authed(&token, page(String::new(), true)))
        .await
        .expect("newest")
        .into_inner();
    assert_eq!(bodies(&newest), ["m7", "m6", "m5"]);
    let older = threads
        .get_thread(authed(&token, page(newest.next_page_token.clone(), true)))
        .await
        .expect("older")
        .into_inner();
    assert_eq!(bodies(&older), ["m4", "m3", "m2"]);
}

async fn decisions_are_asked_and_answered_once(backend: Backend) {
    let server = start(backend).await;
    let (token, item) = owner_and_item(&server, "asker").await;
    let mut threads = threads(&server);
    let decision = threads
        .request_decision(authed(
            &token,
            pb::RequestDecisionRequest {
                work_item_id: item.id.clone(),
                question: "Which database for production?".into(),
                input_label: "Database".into(),
                choices: vec!["PostgreSQL".into(), "SQLite".into()],
                assignee_user_id: String::new(),
            },
        ))
        .await
        .expect("ask")
        .into_inner();
    assert_eq!(decision.state, pb::DecisionState::Open as i32);

    let mine = threads
        .list_decisions(authed(&token, pb::ListDecisionsRequest::default()))
        .await
        .expect("list")
        .into_inner()
        .decisions;
    assert_eq!(mine, vec![decision.clone()]);

    let err = threads
        .resolve_decision(authed(
            &token,
            pb::ResolveDecisionRequest {
                id: decision.id.clone(),
                answer: "MySQL".into(),
            },
        ))
        .await;
    assert_eq!(
        failure(err),
        (Code::InvalidArgument, "ANSWER_NOT_A_CHOICE".into())
    );
    let resolved = threads
        .resolve_decision(authed(
            &token,
            pb::ResolveDecisionRequest {
                id: decision.id.clone(),
                answer: "PostgreSQL".into(),
            },
        ))
        .await
        .expect("resolve")
        .into_inner();
    assert_eq!(resolved.state, pb::DecisionState::Resolved as i32);
    let before = server.last_event_id().await;
    let twice = threads
        .resolve_decision(authed(
            &token,
            pb::ResolveDecisionRequest {
                id: decision.id.clone(),
                answer: "SQLite".into(),
            },
        ))
        .await;
    assert_eq!(
        failure(twice),
        (Code::FailedPrecondition, "DECISION_NOT_OPEN".into())
    );
    assert_eq!(server.last_event_id().await, before);

    let thread = threads
        .get_thread(authed(
            &token,
            pb::GetThreadRequest {
                work_item_id: item.id.clone(),
                ..Default::default()
            },
        ))
        .await
        .expect("thread")
        .into_inner()
        .messages;
    assert_eq!(thread.len(), 1);
    assert_eq!(thread[0].kind, pb::MessageKind::System as i32);
    assert!(thread[0].body.contains("PostgreSQL"));
}

async fn bad_input_is_refused_and_changes_nothing(backend: Backend) {
    let server = start(backend).await;
    let (token, item) = owner_and_item(&server, "careful").await;
    server.user("stranger", false).await;
    let stranger = server.login("stranger").await;
    let mut threads = threads(&server);
    let said = threads
        .post_message(authed(&token, human(&item, "hello")))
        .await
        .expect("post")
        .into_inner();
    let before = server.last_event_id().await;
    let cases: Vec<(pb::PostMessageRequest, String, Code, &str)> = vec![
        (
            pb::PostMessageRequest {
                work_item_id: "00000000-0000-7000-8000-00000000dead".into(),
                ..human(&item, "to nowhere")
            },
            token.clone(),
            Code::NotFound,
            "WORK_ITEM_NOT_FOUND",
        ),
        (
            human(&item, ""),
            token.clone(),
            Code::InvalidArgument,
            "FIELD_REQUIRED",
        ),
        (
            human(&item, &"x".repeat(256 * 1024 + 1)),
            token.clone(),
            Code::InvalidArgument,
            "FIELD_TOO_LONG",
        ),
        (
            pb::PostMessageRequest {
                kind: pb::MessageKind::System as i32,
                ..human(&item, "pretend")
            },
            token.clone(),
            Code::PermissionDenied,
            "MESSAGE_KIND_NOT_ALLOWED",
        ),
        (
            pb::PostMessageRequest {
                kind: pb::MessageKind::OutboundEmail as i32,
                ..human(&item, "no headers")
            },
            token.clone(),
            Code::InvalidArgument,
            "FIELD_REQUIRED",
        ),
        (
            human(&item, "not mine"),
            stranger.clone(),
            Code::PermissionDenied,
            "PERMISSION_DENIED",
        ),
    ];
    for (request, caller, code, reason) in cases {
        let outcome = failure(threads.post_message(authed(&caller, request)).await);
        assert_eq!(outcome, (code, reason.to_string()));
    }
    let human_promotion = threads
        .promote_message(authed(
            &token,
            pb::PromoteMessageRequest {
                message_id: said.id.clone(),
                base_revision_id: String::new(),
            },
        ))
        .await;
    assert_eq!(
        failure(human_promotion),
        (Code::FailedPrecondition, "NOT_PROMOTABLE".into())
    );
    assert_eq!(server.last_event_id().await, before, "nothing changed");

    // Streams: a cursor from the future, a negative one, no permission.
    for (after, caller, code, reason) in [
        (
            before + 1_000,
            &token,
            Code::InvalidArgument,
            "INVALID_CURSOR",
        ),
        (-1, &token, Code::InvalidArgument, "INVALID_CURSOR"),
        (0, &stranger, Code::PermissionDenied, "PERMISSION_DENIED"),
    ] {
        let outcome = threads
            .stream_thread(authed(
                caller,
                pb::StreamThreadRequest {
                    work_item_id: item.id.clone(),
                    after_event_id: after,
                },
            ))
            .await;
        assert_eq!(
            failure(outcome),
            (code, reason.to_string()),
            "after {after}"
        );
    }
}

async fn next_item(stream: &mut Streaming<pb::ThreadEvent>) -> pb::ThreadEvent {
    tokio::time::timeout(Duration::from_secs(30), stream.next())
        .await
        .expect("the stream delivers within 30 s")
        .expect("the stream is open")
        .expect("no error")
}

/// Collects `count` messages from a thread stream, checking event order.
async fn messages(stream: &mut Streaming<pb::ThreadEvent>, count: usize) -> Vec<pb::Message> {
    let mut seen = Vec::new();
    let mut last_event = 0;
    while seen.len() < count {
        let item = next_item(stream).await;
        assert!(item.event_id >= last_event, "event ids never go back");
        last_event = item.event_id;
        if let Some(pb::thread_event::Kind::Message(message)) = item.kind {
            seen.push(message);
        }
    }
    seen
}

async fn streams_replay_then_follow_without_gaps(backend: Backend) {
    let server = start(backend).await;
    let (token, item) = owner_and_item(&server, "streamer").await;
    let mut threads = threads(&server);
    let start = server.last_event_id().await;
    for n in 1..=5 {
        threads
            .post_message(authed(&token, human(&item, &format!("early {n}"))))
            .await
            .expect("post");
    }
    let mut stream = threads
        .stream_thread(authed(
            &token,
            pb::StreamThreadRequest {
                work_item_id: item.id.clone(),
                after_event_id: start,
            },
        ))
        .await
        .expect("stream")
        .into_inner();
    let replayed = messages(&mut stream, 5).await;
    for n in 6..=10 {
        threads
            .post_message(authed(&token, human(&item, &format!("live {n}"))))
            .await
            .expect("post");
    }
    let live = messages(&mut stream, 5).await;
    let sequences: Vec<i64> = replayed.iter().chain(&live).map(|m| m.sequence).collect();
    assert_eq!(sequences, (1..=10).collect::<Vec<_>>());

    // Silence brings a heartbeat carrying the cursor.
    let heartbeat = loop {
        let item = next_item(&mut stream).await;
        if let Some(pb::thread_event::Kind::Heartbeat(beat)) = item.kind {
            break beat;
        }
    };
    assert!(heartbeat.last_event_id >= start + 10);

    // Resume from the middle: exactly the rest, once.
    let mut resumed = threads
        .stream_thread(authed(
            &token,
            pb::StreamThreadRequest {
                work_item_id: item.id.clone(),
                after_event_id: start + 7,
            },
        ))
        .await
        .expect("resume")
        .into_inner();
    let rest = messages(&mut resumed, 3).await;
    let sequences: Vec<i64> = rest.iter().map(|m| m.sequence).collect();
    assert_eq!(sequences, [8, 9, 10]);
}

async fn slow_consumers_are_cut_off_with_a_cursor(backend: Backend) {
    let server = start(backend).await;
    let (token, item) = owner_and_item(&server, "slow").await;
    let mut threads = threads(&server);
    let start = server.last_event_id().await;
    let mut stream = threads
        .stream_thread(authed(
            &token,
            pb::StreamThreadRequest {
                work_item_id: item.id.clone(),
                after_event_id: start,
            },
        ))
        .await
        .expect("stream")
        .into_inner();
    // Not reading while far more than the lag limit (16 events) and the
    // transport's buffers (bodies of 64 KiB) are written.
    let body = "y".repeat(64 * 1024);
    for _ in 0..200 {
        threads
            .post_message(authed(&token, human(&item, &body)))
            .await
            .expect("post");
    }
    let mut delivered = 0;
    let cut = loop {
        match tokio::time::timeout(Duration::from_secs(30), stream.next())
            .await
            .expect("the stream answers")
        {
            Some(Ok(_)) => delivered += 1,
            Some(Err(status)) => break status,
            None => panic!("the stream ended without saying why"),
        }
    };
    assert!(delivered < 200, "the consumer was cut off before the end");
    assert_eq!(
        failure::<()>(Err(cut)),
        (Code::ResourceExhausted, "SLOW_CONSUMER".into())
    );
}

async fn dashboard_shows_and_streams_only_readable_projects(backend: Backend) {
    let server = start(backend).await;
    let (token, item) = owner_and_item(&server, "morning").await;
    let (other_token, other_item) = owner_and_item(&server, "elsewhere").await;
    let viewer = server.user("viewer", false).await;
    server
        .store
        .add_member(&item.project_id, &viewer, DEFAULT_ROLES[3].id, None)
        .await
        .expect("viewer");
    let viewer_token = server.login("viewer").await;
    let mut threads = threads(&server);
    threads
        .request_decision(authed(
            &token,
            pb::RequestDecisionRequest {
                work_item_id: item.id.clone(),
                question: "Go?".into(),
                input_label: "Yes or no".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("ask");
    // Every committed event readable first (other tests' transactions
    // share the PostgreSQL horizon), so the stream after the snapshot
    // starts with what this test writes next.
    server.last_event_id().await;
    let mut dashboards = server.dashboards();
    let dashboard = dashboards
        .get_dashboard(authed(&viewer_token, pb::GetDashboardRequest {}))
        .await
        .expect("dashboard")
        .into_inner();
    assert_eq!(dashboard.projects.len(), 1);
    let summary = &dashboard.projects[0];
    assert_eq!(summary.project_id, item.project_id);
    assert_eq!((summary.open_work_items, summary.open_decisions), (1, 1));
    assert_eq!(summary.counts.len(), 1);
    assert_eq!(summary.counts[0].phase_id, "analysis");
    assert_eq!(dashboard.open_decisions.len(), 1);
    assert_eq!(dashboard.open_decisions[0].input_label, "Yes or no");
    assert!(!dashboard.recent_activity.is_empty());

    let mut updates = dashboards
        .stream_dashboard_updates(authed(
            &viewer_token,
            pb::StreamDashboardUpdatesRequest {
                after_event_id: dashboard.as_of_event_id,
            },
        ))
        .await
        .expect("stream")
        .into_inner();
    threads
        .post_message(authed(
            &other_token,
            human(&other_item, "not for the viewer"),
        ))
        .await
        .expect("post elsewhere");
    let visible = threads
        .post_message(authed(&token, human(&item, "for the viewer")))
        .await
        .expect("post")
        .into_inner();
    let update = loop {
        let update = tokio::time::timeout(Duration::from_secs(30), updates.next())
            .await
            .expect("an update")
            .expect("open")
            .expect("ok");
        if let Some(pb::dashboard_update::Kind::Event(event)) = update.kind {
            break event;
        }
    };
    assert_eq!(
        update.entity_id, visible.id,
        "the other project's event was filtered out"
    );
    assert_eq!(update.project_id, item.project_id);
}
