//! MailboxService and MailWorkerService through gRPC, on both backends:
//! mailboxes across projects, the worker's lookups and its idempotent
//! ReceiveMail, and bad input refused with a reason and no change.

use crate::common::{Backend, TestServer, authed, failure};
use anima_client::Services;
use anima_core::permission::DEFAULT_ROLES;
use anima_proto::v1::{
    self as pb, mail_worker_service_client::MailWorkerServiceClient,
    mailbox_service_client::MailboxServiceClient,
};
use anima_server::{
    ServerConfig,
    config::{InternalService, ServiceToken},
};
use prost_types::FieldMask;
use tonic::{Code, transport::Channel};

on_both_backends!(
    mailboxes_through_the_api,
    the_worker_routes_through_the_server,
    bad_mailbox_input_changes_nothing
);

const WORKER_TOKEN: &str = "mail-worker-token-0123456789-abcdef";

async fn server(backend: Backend) -> TestServer {
    TestServer::start_with(
        backend,
        ServerConfig {
            service_tokens: vec![ServiceToken {
                name: InternalService::Mail,
                token: WORKER_TOKEN.into(),
            }],
            mail_domains: vec!["shop.example".into()],
            ..ServerConfig::default()
        },
    )
    .await
}

fn mailboxes(server: &TestServer) -> MailboxServiceClient<Channel> {
    server.mailboxes()
}

fn worker(server: &TestServer) -> MailWorkerServiceClient<Channel> {
    MailWorkerServiceClient::new(server.channel.clone())
}

/// A project owned by `owner`, with one work item.
async fn project(server: &TestServer, owner: &str, name: &str) -> (String, String) {
    let project = server
        .store
        .create_project(name, "", owner)
        .await
        .expect("project");
    let item = server
        .store
        .create_work_item(anima_core::planning::NewWorkItem {
            project_id: project.id.clone(),
            plan_id: None,
            title: "Export crashes".into(),
            description: "The CSV export crashes on empty rows.".into(),
            priority: anima_core::planning::Priority::Medium,
            workflow_id: None,
            author: anima_core::planning::Actor::User { id: owner.into() },
        })
        .await
        .expect("item");
    (project.id, item.id)
}

fn create(address: &str, projects: &[&String]) -> pb::CreateMailboxRequest {
    pb::CreateMailboxRequest {
        address: address.into(),
        project_ids: projects.iter().map(|p| (*p).clone()).collect(),
        ..Default::default()
    }
}

async fn mailboxes_through_the_api(backend: Backend) {
    let server = server(backend).await;
    let owner = server.user("owner", false).await;
    let viewer = server.user("viewer", false).await;
    let (first, _) = project(&server, &owner, "First").await;
    let (second, _) = project(&server, &owner, "Second").await;
    server
        .store
        .add_member(&first, &viewer, DEFAULT_ROLES[3].id, None)
        .await
        .expect("bind");
    let token = server.login("owner").await;
    let viewer_token = server.login("viewer").await;

    let created = mailboxes(&server)
        .create_mailbox(authed(&token, create("Desk@Shop.Example", &[&first])))
        .await
        .expect("create")
        .into_inner();
    assert_eq!(created.address, "desk@shop.example");
    assert_eq!(created.display_name, "desk");
    assert_eq!(created.max_size_bytes, 25 * 1024 * 1024);
    assert!(!created.gather);

    let linked = mailboxes(&server)
        .link_projects(authed(
            &token,
            pb::LinkProjectsRequest {
                mailbox_id: created.id.clone(),
                project_ids: vec![second.clone()],
            },
        ))
        .await
        .expect("link")
        .into_inner();
    assert!(linked.gather);
    // The viewer of one project sees the mailbox but may not change it.
    let seen = mailboxes(&server)
        .get_mailbox(authed(
            &viewer_token,
            pb::GetMailboxRequest {
                id: created.id.clone(),
            },
        ))
        .await
        .expect("viewer reads")
        .into_inner();
    assert_eq!(seen.project_ids.len(), 2);
    let (code, _) = failure(
        mailboxes(&server)
            .delete_mailbox(authed(
                &viewer_token,
                pb::DeleteMailboxRequest {
                    id: created.id.clone(),
                },
            ))
            .await,
    );
    assert_eq!(code, Code::PermissionDenied);

    let updated = mailboxes(&server)
        .update_mailbox(authed(
            &token,
            pb::UpdateMailboxRequest {
                id: created.id.clone(),
                mailbox: Some(pb::Mailbox {
                    rules: Some(pb::ScreeningRules {
                        deny: vec![" Spam.Example ".into()],
                        allow: Vec::new(),
                        trusted_authserv_id: " MX.Shop.Example ".into(),
                    }),
                    ..Default::default()
                }),
                update_mask: Some(FieldMask {
                    paths: vec!["rules".into()],
                }),
            },
        ))
        .await
        .expect("update")
        .into_inner();
    let rules = updated.rules.expect("rules");
    assert_eq!(rules.deny, ["spam.example"]);
    assert_eq!(rules.trusted_authserv_id, "mx.shop.example");

    let listed = mailboxes(&server)
        .list_mailboxes(authed(
            &token,
            pb::ListMailboxesRequest {
                project_id: second.clone(),
                ..Default::default()
            },
        ))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listed.mailboxes.len(), 1);

    let rotated = mailboxes(&server)
        .rotate_mailbox(authed(
            &token,
            pb::RotateMailboxRequest {
                id: created.id.clone(),
                new_address: "desk2@shop.example".into(),
            },
        ))
        .await
        .expect("rotate")
        .into_inner();
    assert_eq!(rotated.project_ids.len(), 2);
    let old = mailboxes(&server)
        .get_mailbox(authed(
            &token,
            pb::GetMailboxRequest {
                id: created.id.clone(),
            },
        ))
        .await
        .expect("old")
        .into_inner();
    assert_eq!(old.state, pb::MailboxState::Dropping as i32);
    let deleted = mailboxes(&server)
        .delete_mailbox(authed(
            &token,
            pb::DeleteMailboxRequest {
                id: rotated.id.clone(),
            },
        ))
        .await
        .expect("delete")
        .into_inner();
    assert_eq!(deleted.state, pb::MailboxState::Dropping as i32);
    // The worker removes dropping mailboxes once their accounts are gone.
    worker(&server)
        .remove_mailbox(authed(
            WORKER_TOKEN,
            pb::RemoveMailboxRequest {
                mailbox_id: rotated.id.clone(),
            },
        ))
        .await
        .expect("remove");
    let (code, reason) = failure(
        mailboxes(&server)
            .get_mailbox(authed(&token, pb::GetMailboxRequest { id: rotated.id }))
            .await,
    );
    assert_eq!(
        (code, reason.as_str()),
        (Code::NotFound, "MAILBOX_NOT_FOUND")
    );
}

async fn the_worker_routes_through_the_server(backend: Backend) {
    let server = server(backend).await;
    let owner = server.user("owner", false).await;
    let (project_id, item_id) = project(&server, &owner, "Shop").await;
    let token = server.login("owner").await;
    let mailbox = mailboxes(&server)
        .create_mailbox(authed(&token, create("desk@shop.example", &[&project_id])))
        .await
        .expect("create")
        .into_inner();
    // Users cannot reach the worker's service.
    let (code, _) = failure(
        worker(&server)
            .list_followed_mailboxes(authed(&token, pb::ListFollowedMailboxesRequest::default()))
            .await,
    );
    assert_eq!(code, Code::PermissionDenied);

    let followed = worker(&server)
        .list_followed_mailboxes(authed(
            WORKER_TOKEN,
            pb::ListFollowedMailboxesRequest::default(),
        ))
        .await
        .expect("followed")
        .into_inner();
    assert_eq!(followed.mailboxes.len(), 1);
    assert_eq!(followed.mailboxes[0].jmap_state, "");
    worker(&server)
        .save_sync_state(authed(
            WORKER_TOKEN,
            pb::SaveSyncStateRequest {
                mailbox_id: mailbox.id.clone(),
                jmap_state: "17".into(),
            },
        ))
        .await
        .expect("save");
    let followed = worker(&server)
        .list_followed_mailboxes(authed(
            WORKER_TOKEN,
            pb::ListFollowedMailboxesRequest::default(),
        ))
        .await
        .expect("followed")
        .into_inner();
    assert_eq!(followed.mailboxes[0].jmap_state, "17");

    let resolved = worker(&server)
        .resolve_work_item(authed(
            WORKER_TOKEN,
            pb::ResolveWorkItemRequest {
                project_ids: vec![project_id.clone()],
                key: 1,
            },
        ))
        .await
        .expect("resolve")
        .into_inner()
        .item
        .expect("WI-1");
    assert_eq!(
        (resolved.id.as_str(), resolved.writable),
        (item_id.as_str(), true)
    );
    let missing = worker(&server)
        .resolve_work_item(authed(
            WORKER_TOKEN,
            pb::ResolveWorkItemRequest {
                project_ids: vec![project_id.clone()],
                key: 99,
            },
        ))
        .await
        .expect("resolve")
        .into_inner();
    assert!(missing.item.is_none());

    let receive = |state: pb::InboundMailState, message_id: &str| pb::ReceiveMailRequest {
        mailbox_id: mailbox.id.clone(),
        state: state as i32,
        reason: "test".into(),
        work_item_id: if state == pb::InboundMailState::Posted {
            item_id.clone()
        } else {
            String::new()
        },
        email: Some(pb::EmailHeaders {
            from: "ann@example.org".into(),
            to: vec!["desk+WI-1@shop.example".into()],
            subject: "Export".into(),
            message_id: message_id.into(),
            ..Default::default()
        }),
        body: "It crashed.".into(),
        ..Default::default()
    };
    for attempt in 0..2 {
        let received = worker(&server)
            .receive_mail(authed(
                WORKER_TOKEN,
                receive(pb::InboundMailState::Posted, "p1@x"),
            ))
            .await
            .expect("receive")
            .into_inner();
        assert_eq!(received.new, attempt == 0, "the second time is a repeat");
    }
    let thread = server
        .store
        .list_messages(&item_id, anima_db::ThreadPage::After(0), 100)
        .await
        .expect("thread");
    assert_eq!(thread.len(), 1, "posted once");
    // A reply finds the thread by Message-ID; the sender is now known.
    let replied = worker(&server)
        .find_thread_of_mail(authed(
            WORKER_TOKEN,
            pb::FindThreadOfMailRequest {
                message_ids: vec!["p1@x".into()],
                mailbox_id: mailbox.id.clone(),
            },
        ))
        .await
        .expect("find")
        .into_inner();
    assert_eq!(replied.item.map(|item| item.id), Some(item_id.clone()));
    let known = worker(&server)
        .knows_sender(authed(
            WORKER_TOKEN,
            pb::KnowsSenderRequest {
                work_item_id: item_id.clone(),
                sender: "Ann@Example.org".into(),
            },
        ))
        .await
        .expect("knows")
        .into_inner();
    assert!(known.known);

    let triaged = worker(&server)
        .receive_mail(authed(
            WORKER_TOKEN,
            pb::ReceiveMailRequest {
                files: vec![pb::MailFile {
                    file_name: "crash.log".into(),
                    media_type: "text/plain".into(),
                    content: b"exporter died with ERR_CONN_RESET".to_vec(),
                }],
                ..receive(pb::InboundMailState::Triage, "t1@x")
            },
        ))
        .await
        .expect("triage")
        .into_inner()
        .mail
        .expect("mail");
    let listed = mailboxes(&server)
        .list_inbound_mail(authed(
            &token,
            pb::ListInboundMailRequest {
                mailbox_id: mailbox.id.clone(),
                state: pb::InboundMailState::Triage as i32,
                ..Default::default()
            },
        ))
        .await
        .expect("triage list")
        .into_inner();
    assert_eq!(listed.mails.len(), 1);
    // What an unchecked sender attached is not searchable before someone
    // posts the mail to a work item (agents search too).
    let found = |work_item_id: &str| {
        let mut documents = server.documents();
        let request = pb::SearchDocumentsRequest {
            project_id: project_id.clone(),
            work_item_id: work_item_id.into(),
            query: "ERR_CONN_RESET".into(),
            ..Default::default()
        };
        let token = token.clone();
        async move {
            documents
                .search_documents(authed(&token, request))
                .await
                .expect("search")
                .into_inner()
                .hits
                .into_iter()
                .filter_map(|hit| hit.document.map(|document| document.title))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(found("").await, Vec::<String>::new(), "in triage");
    // A reply to it waits beside it.
    let waiting = worker(&server)
        .find_thread_of_mail(authed(
            WORKER_TOKEN,
            pb::FindThreadOfMailRequest {
                message_ids: vec!["unknown@x".into(), "t1@x".into()],
                mailbox_id: mailbox.id.clone(),
            },
        ))
        .await
        .expect("find")
        .into_inner();
    assert_eq!(waiting.waiting(), pb::InboundMailState::Triage);
    assert_eq!(waiting.item, None);
    let (code, reason) = failure(
        mailboxes(&server)
            .assign_inbound_mail(authed(
                &token,
                pb::AssignInboundMailRequest {
                    id: triaged.id.clone(),
                    work_item_id: String::new(),
                },
            ))
            .await,
    );
    assert_eq!(
        (code, reason.as_str()),
        (Code::InvalidArgument, "FIELD_REQUIRED")
    );
    let assigned = mailboxes(&server)
        .assign_inbound_mail(authed(
            &token,
            pb::AssignInboundMailRequest {
                id: triaged.id,
                work_item_id: item_id.clone(),
            },
        ))
        .await
        .expect("assign")
        .into_inner();
    assert_eq!(assigned.state, pb::InboundMailState::Posted as i32);
    assert!(!assigned.posted_message_id.is_empty());
    // Its attachment is searchable under the work item it went to.
    assert_eq!(found(&item_id).await, ["crash.log"]);

    // Without anima-ai, classification fails clearly; the worker then
    // leaves the mail in triage.
    let (code, reason) = failure(
        worker(&server)
            .classify_inbound(authed(
                WORKER_TOKEN,
                pb::ClassifyInboundRequest {
                    project_id,
                    from: "ann@example.org".into(),
                    subject: "Export crashes".into(),
                    body: "Again.".into(),
                },
            ))
            .await,
    );
    assert_eq!(
        (code, reason.as_str()),
        (Code::FailedPrecondition, "NO_AI_SERVICE")
    );
}

async fn bad_mailbox_input_changes_nothing(backend: Backend) {
    let server = server(backend).await;
    let owner = server.user("owner", false).await;
    let (project_id, _) = project(&server, &owner, "Shop").await;
    let token = server.login("owner").await;
    let mailbox = mailboxes(&server)
        .create_mailbox(authed(&token, create("desk@shop.example", &[&project_id])))
        .await
        .expect("create")
        .into_inner();
    let before = server.last_event_id().await;
    let bad_creates = [
        (create("not-an-address", &[&project_id]), "INVALID_FIELD"),
        (
            create("desk+WI-1@shop.example", &[&project_id]),
            "INVALID_FIELD",
        ),
        (
            create("Desk <desk@shop.example>", &[&project_id]),
            "INVALID_FIELD",
        ),
        (create("new@shop.example", &[]), "FIELD_REQUIRED"),
        (
            create("desk@shop.example", &[&project_id]),
            "MAILBOX_EXISTS",
        ),
        (
            pb::CreateMailboxRequest {
                max_size_bytes: -1,
                ..create("new@shop.example", &[&project_id])
            },
            "INVALID_FIELD",
        ),
    ];
    for (request, expected) in bad_creates {
        let (_, reason) = failure(
            mailboxes(&server)
                .create_mailbox(authed(&token, request))
                .await,
        );
        assert_eq!(reason, expected);
    }
    let (code, reason) = failure(
        mailboxes(&server)
            .unlink_projects(authed(
                &token,
                pb::UnlinkProjectsRequest {
                    mailbox_id: mailbox.id.clone(),
                    project_ids: vec![project_id.clone()],
                },
            ))
            .await,
    );
    assert_eq!(
        (code, reason.as_str()),
        (Code::FailedPrecondition, "MAILBOX_NEEDS_PROJECT")
    );
    let (_, reason) = failure(
        worker(&server)
            .receive_mail(authed(
                WORKER_TOKEN,
                pb::ReceiveMailRequest {
                    mailbox_id: mailbox.id.clone(),
                    state: pb::InboundMailState::Posted as i32,
                    email: Some(pb::EmailHeaders {
                        message_id: "x@y".into(),
                        ..Default::default()
                    }),
                    body: "posted without a work item".into(),
                    ..Default::default()
                },
            ))
            .await,
    );
    assert_eq!(reason, "FIELD_REQUIRED");
    let (_, reason) = failure(
        worker(&server)
            .receive_mail(authed(
                WORKER_TOKEN,
                pb::ReceiveMailRequest {
                    mailbox_id: mailbox.id.clone(),
                    state: pb::InboundMailState::Triage as i32,
                    email: Some(pb::EmailHeaders::default()),
                    body: "no Message-ID".into(),
                    ..Default::default()
                },
            ))
            .await,
    );
    assert_eq!(reason, "FIELD_REQUIRED");
    assert_eq!(server.last_event_id().await, before, "nothing was written");
}
