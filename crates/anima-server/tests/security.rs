//! Attacks by signed-in users on each other and on the server, each written
//! as the attack: it succeeded before the fix it names.

mod common;

use anima_core::permission::DEFAULT_ROLES;
use anima_proto::v1 as pb;
use anima_server::{ServerConfig, config::ProjectCreators};
use common::{Backend, TestServer, authed, failure};
use tonic::Code;

on_both_backends!(
    a_project_admin_cannot_make_anyone_owner,
    only_admins_create_projects_when_configured,
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

async fn bind(server: &TestServer, token: &str, project: &str, user: &str, role: usize) -> Code {
    match server
        .projects()
        .add_project_member(authed(
            token,
            pb::AddProjectMemberRequest {
                project_id: project.into(),
                user_id: user.into(),
                role_id: DEFAULT_ROLES[role].id.into(),
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
        bind(&server, &owner, &project.id, &admin_id, ADMIN).await,
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
        bind(&server, &admin, &project.id, &friend_id, VIEWER).await,
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
