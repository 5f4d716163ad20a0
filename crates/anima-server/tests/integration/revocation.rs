//! Issue 23: sessions are checked from memory, yet a change that ends one
//! is effective on the instance that made it before its RPC returns, and
//! on another instance within one event delivery; a LISTEN connection
//! killed meanwhile changes nothing. Two `anima-server` processes on one
//! PostgreSQL database, reached over gRPC and `/mcp`.

use std::time::{Duration, Instant};

use anima_core::{
    Permission,
    agent::NewSession,
    permission::DEFAULT_ROLES,
    secret::{new_token, token_hash},
};
use anima_db::{
    AgentStore, AkhStore, PostgresStore,
    testing::{HeldWriter, TempDatabase},
};
use anima_proto::v1::{
    self as pb, agent_session_service_client::AgentSessionServiceClient,
    auth_service_client::AuthServiceClient, project_service_client::ProjectServiceClient,
    team_service_client::TeamServiceClient,
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tonic::{Code, transport::Channel};

use crate::multi_instance::{
    ADMIN_PASSWORD, Instance, authed, create_project, login, project_with_item,
};

const ANN_PASSWORD: &str = "ann's long password";
/// Longest another instance may take to hear of a change.
const PROPAGATION: Duration = Duration::from_secs(10);

/// What WhoAmI answers `token` on `channel`: Ok, or the status code.
async fn who_am_i(channel: &Channel, token: &str) -> Result<(), Code> {
    AuthServiceClient::new(channel.clone())
        .who_am_i(authed(token, pb::WhoAmIRequest {}))
        .await
        .map(drop)
        .map_err(|status| status.code())
}

/// The account the tests take access away from.
async fn create_ann(channel: &Channel, admin: &str) -> pb::User {
    TeamServiceClient::new(channel.clone())
        .create_user(authed(
            admin,
            pb::CreateUserRequest {
                username: "ann".into(),
                display_name: "Ann".into(),
                password: ANN_PASSWORD.into(),
                ..Default::default()
            },
        ))
        .await
        .expect("ann")
        .into_inner()
}

/// A role granting only `permission`.
async fn create_role(channel: &Channel, admin: &str, name: &str, permission: &str) -> pb::Role {
    TeamServiceClient::new(channel.clone())
        .create_role(authed(
            admin,
            pb::CreateRoleRequest {
                name: name.into(),
                description: String::new(),
                permissions: vec![permission.into()],
            },
        ))
        .await
        .expect("role")
        .into_inner()
}

/// Binds `user_id` to `role_id` in the project: adds the member, or
/// changes the member's role.
async fn bind(channel: &Channel, admin: &str, project_id: &str, user_id: &str, role_id: &str) {
    ProjectServiceClient::new(channel.clone())
        .add_project_member(authed(
            admin,
            pb::AddProjectMemberRequest {
                project_id: project_id.into(),
                user_id: user_id.into(),
                role_id: role_id.into(),
            },
        ))
        .await
        .expect("bind the member");
}

/// Whether `token` may read the project on `channel`: Ok, or the code.
async fn read_project(channel: &Channel, token: &str, project_id: &str) -> Result<(), Code> {
    ProjectServiceClient::new(channel.clone())
        .get_project(authed(
            token,
            pb::GetProjectRequest {
                id: project_id.into(),
            },
        ))
        .await
        .map(drop)
        .map_err(|status| status.code())
}

/// Whether `/mcp` at `address` lets an agent with `token` begin: Ok, or
/// `Unauthenticated` for the 401 of a refused token.
async fn mcp_initialize(address: &str, token: &str) -> Result<(), Code> {
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-03-26","capabilities":{},"clientInfo":{"name":"probe","version":"1"}}}"#;
    let request = format!(
        "POST /mcp HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nAuthorization: Bearer {token}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    stream.write_all(request.as_bytes()).await.expect("send");
    // Only the status line: an accepted exchange may stay open as a stream.
    let mut status = String::new();
    BufReader::new(stream)
        .read_line(&mut status)
        .await
        .expect("status line");
    match status.split_whitespace().nth(1) {
        Some("200") => Ok(()),
        Some("401") => Err(Code::Unauthenticated),
        _ => panic!("unexpected answer from /mcp: {status}"),
    }
}

/// An older writer kept open across a change: the change's event is held
/// back behind it, so until [`HeldWriter::commit`] only what the changing
/// instance did before its RPC returned can make it refuse.
async fn hold_events(database_url: &str, project_id: &str) -> HeldWriter {
    HeldWriter::begin(database_url, project_id, project_id).await
}

/// Polls `call` until it is refused with `code`, failing after
/// [`PROPAGATION`].
async fn refused_soon<F, Fut>(what: &str, code: Code, mut call: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), Code>>,
{
    let deadline = Instant::now() + PROPAGATION;
    loop {
        match call().await {
            Err(refused) if refused == code => return,
            outcome => assert!(
                Instant::now() < deadline,
                "{what}: still {outcome:?} after {PROPAGATION:?}"
            ),
        }
        tokio::task::yield_now().await;
    }
}

/// Checks a change made on A while `held` keeps its event back: `probe`
/// is refused with `code` on A at once (A forgot before its RPC
/// returned), and on B within [`PROPAGATION`] once the writer ended.
async fn refused_on_a_then_b<T, F, Fut>(
    what: &str,
    code: Code,
    held: HeldWriter,
    (a, b): (T, T),
    probe: F,
) where
    T: Copy,
    F: Fn(T) -> Fut,
    Fut: std::future::Future<Output = Result<(), Code>>,
{
    assert_eq!(probe(a).await, Err(code), "{what} on A");
    held.commit().await;
    refused_soon(&format!("{what} on B"), code, || probe(b)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn revocations_reach_both_instances_without_stale_sessions() {
    let db = TempDatabase::postgres().await;
    let (a, b) = (Instance::start(&db.url), Instance::start(&db.url));
    let (a, b, _instances) = (a.channel().await, b.channel().await, (a, b));
    let admin = login(&a, "admin", ADMIN_PASSWORD).await;
    let ann = create_ann(&a, &admin).await;
    let project = create_project(&a, &admin, "Shared").await;

    // Logout on A.
    let token = login(&a, "ann", ANN_PASSWORD).await;
    assert_eq!(who_am_i(&a, &token).await, Ok(()));
    assert_eq!(who_am_i(&b, &token).await, Ok(()), "B has it cached now");
    let held = hold_events(&db.url, &project.id).await;
    AuthServiceClient::new(a.clone())
        .logout(authed(&token, pb::LogoutRequest {}))
        .await
        .expect("logout");
    refused_on_a_then_b("logout", Code::Unauthenticated, held, (&a, &b), |side| {
        who_am_i(side, &token)
    })
    .await;

    // Disabled on A by the admin.
    let token = login(&b, "ann", ANN_PASSWORD).await;
    assert_eq!(who_am_i(&a, &token).await, Ok(()));
    assert_eq!(who_am_i(&b, &token).await, Ok(()));
    let set_disabled = |disabled: bool| {
        let (a, admin, id) = (a.clone(), admin.clone(), ann.id.clone());
        async move {
            TeamServiceClient::new(a)
                .update_user(authed(
                    &admin,
                    pb::UpdateUserRequest {
                        user: Some(pb::User {
                            id,
                            disabled,
                            ..Default::default()
                        }),
                        update_mask: Some(prost_types::FieldMask {
                            paths: vec!["disabled".into()],
                        }),
                        password: String::new(),
                    },
                ))
                .await
                .expect("update ann");
        }
    };
    let held = hold_events(&db.url, &project.id).await;
    set_disabled(true).await;
    refused_on_a_then_b("disabling", Code::Unauthenticated, held, (&a, &b), |side| {
        who_am_i(side, &token)
    })
    .await;
    set_disabled(false).await;

    // A password change on A ends every other session.
    let kept = login(&a, "ann", ANN_PASSWORD).await;
    let other = login(&b, "ann", ANN_PASSWORD).await;
    assert_eq!(who_am_i(&a, &other).await, Ok(()));
    assert_eq!(who_am_i(&b, &other).await, Ok(()));
    let held = hold_events(&db.url, &project.id).await;
    AuthServiceClient::new(a.clone())
        .change_password(authed(
            &kept,
            pb::ChangePasswordRequest {
                current_password: ANN_PASSWORD.into(),
                new_password: "ann's new long password".into(),
            },
        ))
        .await
        .expect("change password");
    refused_on_a_then_b(
        "password change",
        Code::Unauthenticated,
        held,
        (&a, &b),
        |side| who_am_i(side, &other),
    )
    .await;
    assert_eq!(
        who_am_i(&b, &kept).await,
        Ok(()),
        "the changing session stays"
    );

    // Membership removed, and a role edited, on A.
    bind(&a, &admin, &project.id, &ann.id, DEFAULT_ROLES[3].id).await;
    assert_eq!(read_project(&a, &kept, &project.id).await, Ok(()));
    assert_eq!(read_project(&b, &kept, &project.id).await, Ok(()));
    let held = hold_events(&db.url, &project.id).await;
    ProjectServiceClient::new(a.clone())
        .remove_project_member(authed(
            &admin,
            pb::RemoveProjectMemberRequest {
                project_id: project.id.clone(),
                user_id: ann.id.clone(),
            },
        ))
        .await
        .expect("remove ann");
    refused_on_a_then_b("removal", Code::PermissionDenied, held, (&a, &b), |side| {
        read_project(side, &kept, &project.id)
    })
    .await;

    let readers = create_role(&a, &admin, "Readers", "project.read").await;
    bind(&a, &admin, &project.id, &ann.id, &readers.id).await;
    assert_eq!(read_project(&a, &kept, &project.id).await, Ok(()));
    assert_eq!(read_project(&b, &kept, &project.id).await, Ok(()));
    let held = hold_events(&db.url, &project.id).await;
    TeamServiceClient::new(a.clone())
        .update_role(authed(
            &admin,
            pb::UpdateRoleRequest {
                role: Some(pb::Role {
                    id: readers.id.clone(),
                    permissions: vec!["thread.read".into()],
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["permissions".into()],
                }),
            },
        ))
        .await
        .expect("edit the role");
    refused_on_a_then_b(
        "role edit",
        Code::PermissionDenied,
        held,
        (&a, &b),
        |side| read_project(side, &kept, &project.id),
    )
    .await;

    // The LISTEN connections die; a logout on A during the outage still
    // reaches B.
    let late = login(&a, "ann", "ann's new long password").await;
    assert_eq!(who_am_i(&b, &late).await, Ok(()));
    assert_eq!(
        anima_db::testing::terminate_listeners(&db.url).await,
        2,
        "each instance had a LISTEN connection"
    );
    AuthServiceClient::new(a.clone())
        .logout(authed(&late, pb::LogoutRequest {}))
        .await
        .expect("logout during the outage");
    assert_eq!(who_am_i(&a, &late).await, Err(Code::Unauthenticated));
    refused_soon(
        "logout on B during the outage",
        Code::Unauthenticated,
        || who_am_i(&b, &late),
    )
    .await;

    // The account deleted on A.
    let last = login(&b, "ann", "ann's new long password").await;
    assert_eq!(who_am_i(&a, &last).await, Ok(()));
    assert_eq!(who_am_i(&b, &last).await, Ok(()));
    let held = hold_events(&db.url, &project.id).await;
    TeamServiceClient::new(a.clone())
        .delete_user(authed(&admin, pb::DeleteUserRequest { id: ann.id.clone() }))
        .await
        .expect("delete ann");
    refused_on_a_then_b("deletion", Code::Unauthenticated, held, (&a, &b), |side| {
        who_am_i(side, &last)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn role_downgrades_and_agent_token_revocations_reach_both_instances() {
    let db = TempDatabase::postgres().await;
    let instances = (Instance::start(&db.url), Instance::start(&db.url));
    let (a, b) = (instances.0.channel().await, instances.1.channel().await);
    let admin = login(&a, "admin", ADMIN_PASSWORD).await;
    let (project_id, item_id) = project_with_item(a.clone(), &admin, "Agents").await;

    // A member moved on A to a role that no longer grants reading.
    let ann = create_ann(&a, &admin).await;
    let thread_readers = create_role(&a, &admin, "Thread readers", "thread.read").await;
    bind(&a, &admin, &project_id, &ann.id, DEFAULT_ROLES[2].id).await;
    let token = login(&a, "ann", ANN_PASSWORD).await;
    assert_eq!(read_project(&a, &token, &project_id).await, Ok(()));
    assert_eq!(read_project(&b, &token, &project_id).await, Ok(()));
    let held = hold_events(&db.url, &project_id).await;
    bind(&a, &admin, &project_id, &ann.id, &thread_readers.id).await;
    refused_on_a_then_b(
        "role downgrade",
        Code::PermissionDenied,
        held,
        (&a, &b),
        |side| read_project(side, &token, &project_id),
    )
    .await;

    // An agent's MCP token, known to both instances, revoked on A.
    let store = PostgresStore::connect(&db.url).await.expect("store");
    let akh = store
        .create_akh("Thoth", "careful", "#112233")
        .await
        .expect("akh");
    let agent_token = new_token();
    let session = store
        .create_agent_session(NewSession {
            work_item_id: item_id,
            akh_id: akh.id,
            keep_after_stop: false,
            token_hash: token_hash(&agent_token),
            permissions: vec![Permission::WorkItemRead],
        })
        .await
        .expect("session");
    let (on_a, on_b) = (instances.0.address(), instances.1.address());
    assert_eq!(mcp_initialize(on_a, &agent_token).await, Ok(()));
    assert_eq!(mcp_initialize(on_b, &agent_token).await, Ok(()));
    let held = hold_events(&db.url, &project_id).await;
    AgentSessionServiceClient::new(a.clone())
        .revoke_session_token(authed(
            &admin,
            pb::RevokeSessionTokenRequest { id: session.id },
        ))
        .await
        .expect("revoke");
    refused_on_a_then_b(
        "token revocation",
        Code::Unauthenticated,
        held,
        (on_a, on_b),
        |side| mcp_initialize(side, &agent_token),
    )
    .await;
}
