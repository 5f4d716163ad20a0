//! Attacks by signed-in users on each other and on the server, each written
//! as the attack: it succeeded before the fix it names.

use anima_client::Services;
use std::time::Duration;

use crate::common::{
    Backend, PASSWORD, TestServer, authed, code_and_reason, endless_upload, failure,
};
use anima_core::permission::DEFAULT_ROLES;
use anima_proto::v1::{self as pb};
use anima_server::{ServerConfig, config::ProjectCreators};
use prost_types::FieldMask;
use tokio_stream::StreamExt;
use tonic::{Code, Streaming};

on_both_backends!(
    a_project_admin_cannot_make_anyone_owner,
    only_admins_create_projects_when_configured,
    streams_end_when_access_ends,
    dashboards_show_message_bodies_only_to_thread_readers,
    members_see_names_of_whom_they_work_with_and_no_more,
    outbound_mail_is_limited_per_user,
    open_streams_are_limited_per_user,
    uploads_are_limited_per_user,
);

const OWNER: usize = 0;
const ADMIN: usize = 1;
const VIEWER: usize = 3;

async fn project_of(server: &TestServer, token: &str) -> pb::Project {
    server
        .projects()
        .create_project(authed(
            token,
            pb::CreateProjectRequest {
                name: "Shop".into(),
                description: String::new(),
            },
        ))
        .await
        .expect("project")
        .into_inner()
}

async fn bind(server: &TestServer, token: &str, project: &str, user: &str, role: &str) -> Code {
    match server
        .projects()
        .add_project_member(authed(
            token,
            pb::AddProjectMemberRequest {
                project_id: project.into(),
                user_id: user.into(),
                role_id: role.into(),
            },
        ))
        .await
    {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

/// Issue 21: an Admin (everything but archiving) could bind itself or a
/// friend as Owner, then archive the project or demote the real Owner.
async fn a_project_admin_cannot_make_anyone_owner(backend: Backend) {
    let server = TestServer::start(backend).await;
    let owner_id = server.user("olga", false).await;
    let admin_id = server.user("adam", false).await;
    let friend_id = server.user("fred", false).await;
    let owner = server.login("olga").await;
    let admin = server.login("adam").await;
    let project = project_of(&server, &owner).await;
    assert_eq!(
        bind(
            &server,
            &owner,
            &project.id,
            &admin_id,
            DEFAULT_ROLES[ADMIN].id
        )
        .await,
        Code::Ok
    );
    let before = server.last_event_id().await;

    let attempts = [
        (admin_id.as_str(), OWNER),
        (friend_id.as_str(), OWNER),
        (owner_id.as_str(), VIEWER),
    ];
    for (user, role) in attempts {
        let (code, reason) = failure(
            server
                .projects()
                .add_project_member(authed(
                    &admin,
                    pb::AddProjectMemberRequest {
                        project_id: project.id.clone(),
                        user_id: user.into(),
                        role_id: DEFAULT_ROLES[role].id.into(),
                    },
                ))
                .await,
        );
        assert_eq!(
            (code, reason.as_str()),
            (Code::PermissionDenied, "ROLE_ESCALATION")
        );
    }
    let (code, reason) = failure(
        server
            .projects()
            .remove_project_member(authed(
                &admin,
                pb::RemoveProjectMemberRequest {
                    project_id: project.id.clone(),
                    user_id: owner_id.clone(),
                },
            ))
            .await,
    );
    assert_eq!(
        (code, reason.as_str()),
        (Code::PermissionDenied, "ROLE_ESCALATION")
    );
    assert_eq!(server.last_event_id().await, before, "nothing changed");

    // What an Admin holds, it may hand out.
    assert_eq!(
        bind(
            &server,
            &admin,
            &project.id,
            &friend_id,
            DEFAULT_ROLES[VIEWER].id
        )
        .await,
        Code::Ok
    );
}

/// Issue 21: who may create projects is a server setting.
async fn only_admins_create_projects_when_configured(backend: Backend) {
    let server = TestServer::start_with(
        backend,
        ServerConfig {
            project_creators: ProjectCreators::Admins,
            ..ServerConfig::default()
        },
    )
    .await;
    server.user("root", true).await;
    server.user("mallory", false).await;
    let root = server.login("root").await;
    let mallory = server.login("mallory").await;
    let (code, _) = failure(
        server
            .projects()
            .create_project(authed(
                &mallory,
                pb::CreateProjectRequest {
                    name: "Mine".into(),
                    description: String::new(),
                },
            ))
            .await,
    );
    assert_eq!(code, Code::PermissionDenied);
    project_of(&server, &root).await;
}

/// A work item in a new project of `owner`'s, with `reader` bound to `role`.
async fn item_read_by(server: &TestServer, owner: &str, reader: &str, role: &str) -> pb::WorkItem {
    let project = project_of(server, owner).await;
    assert_eq!(
        bind(server, owner, &project.id, reader, role).await,
        Code::Ok
    );
    server
        .work_items()
        .create_work_item(authed(
            owner,
            pb::CreateWorkItemRequest {
                project_id: project.id,
                title: "Watched".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("item")
        .into_inner()
}

async fn thread_stream(server: &TestServer, token: &str, item: &str) -> Streaming<pb::ThreadEvent> {
    server
        .threads()
        .stream_thread(authed(
            token,
            pb::StreamThreadRequest {
                work_item_id: item.into(),
                after_event_id: 0,
            },
        ))
        .await
        .expect("stream")
        .into_inner()
}

/// How a stream ended: the code and reason of its error.
async fn end_of<T>(stream: &mut Streaming<T>) -> (Code, String) {
    loop {
        match tokio::time::timeout(Duration::from_secs(30), stream.next()).await {
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(status))) => return code_and_reason(&status),
            Ok(None) => panic!("the stream ended without saying why"),
            Err(_) => panic!("the stream is still open"),
        }
    }
}

/// Issue 21: only a lost membership ended a live stream; a reader who
/// logged out, was disabled, changed their password elsewhere, let their
/// session expire or lost the permission by a role edit kept receiving.
async fn streams_end_when_access_ends(backend: Backend) {
    let server = TestServer::start_with(
        backend,
        ServerConfig {
            stream_heartbeat_secs: 1,
            ..ServerConfig::default()
        },
    )
    .await;
    server.user("root", true).await;
    server.user("olga", false).await;
    let reader_id = server.user("rita", false).await;
    let (root, owner) = (server.login("root").await, server.login("olga").await);
    let item = item_read_by(&server, &owner, &reader_id, DEFAULT_ROLES[VIEWER].id).await;

    // Logging out ends the streams of that session, the dashboard's too.
    let token = server.login("rita").await;
    let mut thread = thread_stream(&server, &token, &item.id).await;
    let mut dashboard = server
        .dashboards()
        .stream_dashboard_updates(authed(&token, pb::StreamDashboardUpdatesRequest::default()))
        .await
        .expect("dashboard")
        .into_inner();
    server
        .auth()
        .logout(authed(&token, pb::LogoutRequest {}))
        .await
        .expect("logout");
    assert_eq!(end_of(&mut thread).await.0, Code::Unauthenticated);
    assert_eq!(end_of(&mut dashboard).await.0, Code::Unauthenticated);

    // A password change elsewhere ends the other sessions' streams.
    let token = server.login("rita").await;
    let other = server.login("rita").await;
    let mut thread = thread_stream(&server, &token, &item.id).await;
    server
        .auth()
        .change_password(authed(
            &other,
            pb::ChangePasswordRequest {
                current_password: PASSWORD.into(),
                new_password: "another horse battery".into(),
            },
        ))
        .await
        .expect("change");
    assert_eq!(end_of(&mut thread).await.0, Code::Unauthenticated);

    // An admin disabling the account ends its streams.
    let mut thread = thread_stream(&server, &other, &item.id).await;
    server
        .team()
        .update_user(authed(
            &root,
            pb::UpdateUserRequest {
                user: Some(pb::User {
                    id: reader_id.clone(),
                    disabled: true,
                    ..Default::default()
                }),
                update_mask: Some(FieldMask {
                    paths: vec!["disabled".into()],
                }),
                password: String::new(),
            },
        ))
        .await
        .expect("disable");
    assert_eq!(end_of(&mut thread).await.0, Code::Unauthenticated);

    // A role edited to drop thread.read ends the streams that need it.
    let role = server
        .team()
        .create_role(authed(
            &root,
            pb::CreateRoleRequest {
                name: "Reader".into(),
                description: String::new(),
                permissions: vec!["project.read".into(), "thread.read".into()],
            },
        ))
        .await
        .expect("role")
        .into_inner();
    let carl_id = server.user("carl", false).await;
    let carl = server.login("carl").await;
    let item = item_read_by(&server, &owner, &carl_id, &role.id).await;
    let mut thread = thread_stream(&server, &carl, &item.id).await;
    server
        .team()
        .update_role(authed(
            &root,
            pb::UpdateRoleRequest {
                role: Some(pb::Role {
                    id: role.id.clone(),
                    permissions: vec!["project.read".into()],
                    ..Default::default()
                }),
                update_mask: Some(FieldMask {
                    paths: vec!["permissions".into()],
                }),
            },
        ))
        .await
        .expect("edit role");
    assert_eq!(end_of(&mut thread).await.0, Code::PermissionDenied);
}

/// Issue 21: an idle session's streams outlived its expiry.
#[tokio::test]
async fn a_stream_ends_when_its_session_expires() {
    let server = TestServer::start_with(
        Backend::Sqlite,
        ServerConfig {
            stream_heartbeat_secs: 1,
            session_idle_timeout_secs: 2,
            ..ServerConfig::default()
        },
    )
    .await;
    server.user("olga", false).await;
    let token = server.login("olga").await;
    let mut dashboard = server
        .dashboards()
        .stream_dashboard_updates(authed(&token, pb::StreamDashboardUpdatesRequest::default()))
        .await
        .expect("dashboard")
        .into_inner();
    assert_eq!(
        end_of(&mut dashboard).await,
        (Code::Unauthenticated, "SESSION_EXPIRED".into())
    );
}

/// Issue 21: a role with dashboard.read but not thread.read saw every
/// message's text in the dashboard's activity and its live updates.
async fn dashboards_show_message_bodies_only_to_thread_readers(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.user("root", true).await;
    server.user("olga", false).await;
    let watcher_id = server.user("wanda", false).await;
    let (root, owner) = (server.login("root").await, server.login("olga").await);
    let watcher = server.login("wanda").await;
    let role = server
        .team()
        .create_role(authed(
            &root,
            pb::CreateRoleRequest {
                name: "Dashboard only".into(),
                description: String::new(),
                permissions: vec!["project.read".into(), "dashboard.read".into()],
            },
        ))
        .await
        .expect("role")
        .into_inner();
    let item = item_read_by(&server, &owner, &watcher_id, &role.id).await;
    let mut updates = server
        .dashboards()
        .stream_dashboard_updates(authed(
            &watcher,
            pb::StreamDashboardUpdatesRequest::default(),
        ))
        .await
        .expect("dashboard")
        .into_inner();
    server
        .threads()
        .post_message(authed(
            &owner,
            pb::PostMessageRequest {
                work_item_id: item.id.clone(),
                kind: pb::MessageKind::Human as i32,
                body: "the acquisition closes friday".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("post");
    let posted = loop {
        let update = tokio::time::timeout(Duration::from_secs(30), updates.next())
            .await
            .expect("an update")
            .expect("open")
            .expect("no error");
        if let Some(pb::dashboard_update::Kind::Event(event)) = update.kind
            && event.kind.starts_with("message.")
        {
            break event;
        }
    };
    assert!(
        !posted.payload_json.contains("acquisition"),
        "{}",
        posted.payload_json
    );
    let dashboard = server
        .dashboards()
        .get_dashboard(authed(&watcher, pb::GetDashboardRequest {}))
        .await
        .expect("dashboard")
        .into_inner();
    let activity: Vec<_> = dashboard
        .recent_activity
        .iter()
        .filter(|event| event.kind.starts_with("message."))
        .collect();
    assert!(!activity.is_empty(), "the post shows as activity");
    for event in activity {
        assert!(
            !event.payload_json.contains("acquisition"),
            "{}",
            event.payload_json
        );
    }
    // The owner, who reads the thread, sees what was said.
    let theirs = server
        .dashboards()
        .get_dashboard(authed(&owner, pb::GetDashboardRequest {}))
        .await
        .expect("dashboard")
        .into_inner();
    assert!(
        theirs
            .recent_activity
            .iter()
            .any(|event| event.payload_json.contains("acquisition"))
    );
}

/// Issue 21: every signed-in user could list every account with its email
/// and preferences.
async fn members_see_names_of_whom_they_work_with_and_no_more(backend: Backend) {
    let server = TestServer::start(backend).await;
    let root_id = server.user("root", true).await;
    let ada_id = server.user("ada", false).await;
    let bob = server.user("bob", false).await;
    let eve = server.user("eve", false).await;
    for (name, id) in [
        ("root", &root_id),
        ("ada", &ada_id),
        ("bob", &bob),
        ("eve", &eve),
    ] {
        server
            .store
            .update_user(
                id,
                anima_core::model::UserChanges {
                    email: Some(format!("{name}@example.org")),
                    ..Default::default()
                },
            )
            .await
            .expect("email");
    }
    let (root, ada) = (server.login("root").await, server.login("ada").await);
    item_read_by(&server, &ada, &bob, DEFAULT_ROLES[VIEWER].id).await;
    let users = |token: &str| {
        let mut team = server.team();
        let token = token.to_owned();
        async move {
            team.list_users(authed(&token, pb::ListUsersRequest::default()))
                .await
                .expect("list")
                .into_inner()
                .users
        }
    };
    let seen = users(&ada).await;
    let names: Vec<&str> = seen.iter().map(|user| user.username.as_str()).collect();
    assert_eq!(names, ["ada", "bob"], "only whom ada works with");
    for user in &seen {
        let own = user.username == "ada";
        assert_eq!(user.email.is_empty(), !own, "{}", user.username);
    }
    assert_eq!(users(&root).await.len(), 4);
    assert!(users(&root).await.iter().all(|user| !user.email.is_empty()));
    let by_id = server
        .team()
        .get_user(authed(
            &ada,
            pb::GetUserRequest {
                id: eve.clone(),
                ..Default::default()
            },
        ))
        .await;
    assert_eq!(failure(by_id), (Code::NotFound, "USER_NOT_FOUND".into()));
    // Found by exact username (to add them to a project), name only.
    let by_name = server
        .team()
        .get_user(authed(
            &ada,
            pb::GetUserRequest {
                username: "eve".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("by username")
        .into_inner();
    assert_eq!(
        (by_name.id.as_str(), by_name.email.as_str()),
        (eve.as_str(), "")
    );
}

/// A refusal for a rate limit, whose message starts with `says`.
fn assert_rate_limited(refused: &tonic::Status, says: &str) {
    assert_eq!(
        code_and_reason(refused),
        (Code::ResourceExhausted, "RATE_LIMITED".into())
    );
    assert!(refused.message().starts_with(says), "{}", refused.message());
}

/// A member cannot turn the project's mailbox into a spam cannon: each
/// user sends at most `outbound_mails_per_hour`; other messages, and other
/// users, are not held back.
async fn outbound_mail_is_limited_per_user(backend: Backend) {
    let mut config = ServerConfig::default();
    config.rate_limits.outbound_mails_per_hour = 2;
    let server = TestServer::start_with(backend, config).await;
    server.user("ada", false).await;
    server.user("bob", false).await;
    let ada = server.login("ada").await;
    let bob = server.login("bob").await;
    let mut items = Vec::new();
    for token in [&ada, &bob] {
        let project = project_of(&server, token).await;
        items.push(
            server
                .work_items()
                .create_work_item(authed(
                    token,
                    pb::CreateWorkItemRequest {
                        project_id: project.id,
                        title: "Mail the customer".into(),
                        ..Default::default()
                    },
                ))
                .await
                .expect("item")
                .into_inner(),
        );
    }
    let mail = |item: &pb::WorkItem, n: usize| pb::PostMessageRequest {
        work_item_id: item.id.clone(),
        kind: pb::MessageKind::OutboundEmail as i32,
        body: format!("mail {n}"),
        email: Some(pb::EmailHeaders {
            to: vec!["customer@example.org".into()],
            subject: format!("Mail {n}"),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut threads = server.threads();
    for n in 0..2 {
        threads
            .post_message(authed(&ada, mail(&items[0], n)))
            .await
            .expect("within the limit");
    }
    let refused = threads
        .post_message(authed(&ada, mail(&items[0], 2)))
        .await
        .expect_err("over the limit");
    assert_rate_limited(
        &refused,
        "too many outbound mails (at most 2 per hour); try again in",
    );
    assert_eq!(
        server
            .store
            .queued_outbound_mail(10)
            .await
            .expect("queue")
            .len(),
        2
    );
    threads
        .post_message(authed(
            &ada,
            pb::PostMessageRequest {
                work_item_id: items[0].id.clone(),
                kind: pb::MessageKind::Human as i32,
                body: "a note is not a mail".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("human messages are not metered");
    threads
        .post_message(authed(&bob, mail(&items[1], 0)))
        .await
        .expect("another user's budget");
}

/// One user cannot pin down the server with live streams, each a task, a
/// subscription and periodic checks: past `open_streams_per_user` a new
/// one is refused until one closes; other users are not held back.
async fn open_streams_are_limited_per_user(backend: Backend) {
    let mut config = ServerConfig::default();
    config.rate_limits.open_streams_per_user = 2;
    let server = TestServer::start_with(backend, config).await;
    server.user("ada", false).await;
    server.user("bob", false).await;
    let ada = server.login("ada").await;
    let bob = server.login("bob").await;
    let dashboard = || server.dashboards();
    let open = |token: &str| {
        let mut client = dashboard();
        let request = authed(token, pb::StreamDashboardUpdatesRequest::default());
        async move { client.stream_dashboard_updates(request).await }
    };
    let first = open(&ada).await.expect("first").into_inner();
    let _second = open(&ada).await.expect("second").into_inner();
    let refused = open(&ada).await.expect_err("third");
    assert_eq!(
        code_and_reason(&refused),
        (Code::ResourceExhausted, "TOO_MANY_STREAMS".into())
    );
    open(&bob).await.expect("another user's streams");

    // Closing one frees its place once the server sees it go.
    drop(first);
    let mut reopened = false;
    for _ in 0..100 {
        if open(&ada).await.is_ok() {
            reopened = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(reopened, "a closed stream gives its place back");
}

/// Uploads are metered per user (each is up to 100 MiB of storage): past
/// `uploads_per_hour` one is refused before its bytes are read, and
/// nothing is stored.
async fn uploads_are_limited_per_user(backend: Backend) {
    let mut config = ServerConfig::default();
    config.rate_limits.uploads_per_hour = 1;
    let server = TestServer::start_with(backend, config).await;
    server.user("ada", false).await;
    let ada = server.login("ada").await;
    let project = project_of(&server, &ada).await;
    let mut documents = server.documents();
    let upload = |title: &str| pb::UploadDocumentRequest {
        project_id: project.id.clone(),
        title: title.into(),
        r#type: pb::DocumentType::Text as i32,
        content: b"notes".to_vec(),
        last: true,
        ..Default::default()
    };
    documents
        .upload_document(authed(&ada, tokio_stream::iter([upload("first.txt")])))
        .await
        .expect("within the limit");
    // Bytes that never end: only a refusal before they are read ends
    // the call.
    let second = pb::UploadDocumentRequest {
        last: false,
        ..upload("second.txt")
    };
    let refused = documents
        .upload_document(authed(&ada, endless_upload(second)))
        .await
        .expect_err("over the limit");
    assert_rate_limited(
        &refused,
        "too many uploads (at most 1 per hour); try again in",
    );
    let listed = documents
        .list_documents(authed(
            &ada,
            pb::ListDocumentsRequest {
                project_id: project.id.clone(),
                ..Default::default()
            },
        ))
        .await
        .expect("list")
        .into_inner()
        .documents;
    assert_eq!(listed.len(), 1);
    assert_eq!(
        server.blobs.stats().await.expect("stats"),
        (1, 5),
        "the library holds the first upload's bytes only"
    );
}
