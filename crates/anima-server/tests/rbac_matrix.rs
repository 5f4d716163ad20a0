//! The RBAC matrix: every RPC × caller kind → allowed or denied. The
//! expectations are written out here by hand, not derived from the code
//! under test; a change of policy must change this table too.

mod common;

use anima_core::permission::DEFAULT_ROLES;
use anima_proto::v1 as pb;
use anima_server::{
    auth::Caller,
    authz::{RequestContext, require_project},
    rbac::{ACCESS, Access, access_for},
};
use common::{Backend, PASSWORD, TestServer, authed};
use prost_types::FieldMask;
use tonic::Code;

on_both_backends!(
    implemented_rpcs_by_caller,
    project_rpcs_by_role_and_membership
);

/// Callers of the implemented RPCs. Project roles are held in a project;
/// they grant nothing server-wide.
const CALLERS: [&str; 7] = [
    "anonymous",
    "server_admin",
    "owner",
    "admin",
    "member",
    "viewer",
    "non_member",
];

/// RPC → expected outcome per caller in `CALLERS` order: `A` allowed, `D` denied.
const IMPLEMENTED: &[(&str, &str)] = &[
    ("Logout", "DAAAAAA"),
    ("WhoAmI", "DAAAAAA"),
    ("ChangePassword", "DAAAAAA"),
    ("ListUsers", "DAAAAAA"),
    ("GetUser", "DAAAAAA"),
    ("CreateUser", "DADDDDD"),
    ("UpdateUser", "DADDDDD"),
    ("DeleteUser", "DADDDDD"),
    ("ListRoles", "DAAAAAA"),
    ("CreateRole", "DADDDDD"),
    ("UpdateRole", "DADDDDD"),
    ("DeleteRole", "DADDDDD"),
    ("ListPermissions", "DAAAAAA"),
];

async fn implemented_rpcs_by_caller(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut tokens = vec![String::new()];
    for caller in CALLERS.iter().skip(1) {
        server.user(caller, *caller == "server_admin").await;
        tokens.push(server.login(caller).await);
    }
    let owner_id = server
        .store
        .find_credentials("owner")
        .await
        .expect("find")
        .expect("owner")
        .user
        .id;
    let project = server
        .store
        .create_project("P", "", &owner_id)
        .await
        .expect("project");
    for (caller, role) in [("admin", 1), ("member", 2), ("viewer", 3)] {
        let id = server
            .store
            .find_credentials(caller)
            .await
            .expect("find")
            .expect("user")
            .user
            .id;
        server
            .store
            .add_member(&project.id, &id, DEFAULT_ROLES[role].id)
            .await
            .expect("bind");
    }

    for (rpc, expected) in IMPLEMENTED {
        for (index, caller) in CALLERS.iter().enumerate() {
            // Logout would end the session the rest of the matrix needs.
            let token = if *rpc == "Logout" && index > 0 {
                server.login(caller).await
            } else {
                tokens[index].clone()
            };
            let outcome = call(&server, rpc, &token, caller).await;
            let allowed = expected.as_bytes()[index] == b'A';
            match (allowed, outcome) {
                (true, Ok(())) => {}
                (false, Err(code)) if index == 0 => {
                    assert_eq!(code, Code::Unauthenticated, "{rpc} as {caller}")
                }
                (false, Err(code)) => assert_eq!(code, Code::PermissionDenied, "{rpc} as {caller}"),
                (allowed, outcome) => {
                    panic!("{rpc} as {caller}: expected allowed={allowed}, got {outcome:?}")
                }
            }
        }
    }
    assert_eq!(
        IMPLEMENTED.len() + 1, // + Login, public
        ACCESS
            .iter()
            .filter(|(path, _)| path.contains("AuthService") || path.contains("TeamService"))
            .count(),
        "every implemented RPC is in the matrix"
    );
}

/// Performs one valid call of `rpc`, setting up what it needs.
async fn call(server: &TestServer, rpc: &str, token: &str, caller: &str) -> Result<(), Code> {
    let mut team = server.team();
    let mut auth = server.auth();
    let fresh = format!("{rpc}-{caller}").to_lowercase();
    let target_name = format!("{fresh}-target");
    let target = async { server.user(&target_name, false).await };
    let result = match rpc {
        "Logout" => auth
            .logout(authed(token, pb::LogoutRequest {}))
            .await
            .map(drop),
        "WhoAmI" => auth
            .who_am_i(authed(token, pb::WhoAmIRequest {}))
            .await
            .map(drop),
        "ChangePassword" => auth
            .change_password(authed(
                token,
                pb::ChangePasswordRequest {
                    current_password: PASSWORD.into(),
                    new_password: PASSWORD.into(),
                },
            ))
            .await
            .map(drop),
        "ListUsers" => team
            .list_users(authed(token, pb::ListUsersRequest::default()))
            .await
            .map(drop),
        "GetUser" => {
            let id = target.await;
            team.get_user(authed(token, pb::GetUserRequest { id }))
                .await
                .map(drop)
        }
        "CreateUser" => team
            .create_user(authed(
                token,
                pb::CreateUserRequest {
                    username: fresh,
                    password: PASSWORD.into(),
                    ..Default::default()
                },
            ))
            .await
            .map(drop),
        "UpdateUser" => {
            let id = target.await;
            team.update_user(authed(
                token,
                pb::UpdateUserRequest {
                    user: Some(pb::User {
                        id,
                        display_name: "Renamed".into(),
                        ..Default::default()
                    }),
                    update_mask: Some(FieldMask {
                        paths: vec!["display_name".into()],
                    }),
                    password: String::new(),
                },
            ))
            .await
            .map(drop)
        }
        "DeleteUser" => {
            let id = target.await;
            team.delete_user(authed(token, pb::DeleteUserRequest { id }))
                .await
                .map(drop)
        }
        "ListRoles" => team
            .list_roles(authed(token, pb::ListRolesRequest::default()))
            .await
            .map(drop),
        "CreateRole" => team
            .create_role(authed(
                token,
                pb::CreateRoleRequest {
                    name: fresh,
                    description: String::new(),
                    permissions: vec![],
                },
            ))
            .await
            .map(drop),
        "UpdateRole" | "DeleteRole" => {
            let role = server
                .store
                .create_role(&fresh, "", &[])
                .await
                .expect("role");
            if rpc == "UpdateRole" {
                team.update_role(authed(
                    token,
                    pb::UpdateRoleRequest {
                        role: Some(pb::Role {
                            id: role.id,
                            description: "changed".into(),
                            ..Default::default()
                        }),
                        update_mask: Some(FieldMask {
                            paths: vec!["description".into()],
                        }),
                    },
                ))
                .await
                .map(drop)
            } else {
                team.delete_role(authed(token, pb::DeleteRoleRequest { id: role.id }))
                    .await
                    .map(drop)
            }
        }
        "ListPermissions" => team
            .list_permissions(authed(token, pb::ListPermissionsRequest {}))
            .await
            .map(drop),
        other => panic!("no call for {other}"),
    };
    result.map_err(|status| status.code())
}

/// Project-scoped RPC → which default roles may call it, as `OAMV` with `-`
/// for denied (Owner, Admin, Member, Viewer). Non-members never may.
const PROJECT_RPCS: &[(&str, &str)] = &[
    ("ProjectService/GetProject", "OAMV"),
    ("ProjectService/UpdateProject", "OA--"),
    ("ProjectService/ArchiveProject", "O---"),
    ("ProjectService/ListProjectMembers", "OAMV"),
    ("ProjectService/AddProjectMember", "OA--"),
    ("ProjectService/RemoveProjectMember", "OA--"),
    ("PlanService/ListPlans", "OAMV"),
    ("PlanService/GetPlan", "OAMV"),
    ("PlanService/CreatePlan", "OAM-"),
    ("PlanService/UpdatePlan", "OAM-"),
    ("PlanService/DeletePlan", "OA--"),
    ("WorkItemService/ListWorkItems", "OAMV"),
    ("WorkItemService/GetWorkItem", "OAMV"),
    ("WorkItemService/CreateWorkItem", "OAM-"),
    ("WorkItemService/UpdateWorkItem", "OAM-"),
    ("WorkItemService/DeleteWorkItem", "OA--"),
    ("WorkItemService/GetDescriptionRevisions", "OAMV"),
    ("WorkItemService/RevertDescription", "OAM-"),
    ("WorkItemService/ListCapabilities", "OAMV"),
    ("WorkItemService/UpdateCapabilities", "OA--"),
    ("ThreadService/GetThread", "OAMV"),
    ("ThreadService/PostMessage", "OAM-"),
    ("ThreadService/PromoteMessage", "OAM-"),
    ("ThreadService/StreamThread", "OAMV"),
    ("ThreadService/RequestDecision", "OAM-"),
    ("ThreadService/ResolveDecision", "OAM-"),
    ("ThreadService/CancelDecision", "OAM-"),
    ("AgentSessionService/ListSessions", "OAMV"),
    ("AgentSessionService/GetSession", "OAMV"),
    ("AgentSessionService/StartSession", "OAM-"),
    ("AgentSessionService/StopSession", "OAM-"),
    ("AgentSessionService/LoginSession", "OA--"),
    ("AgentSessionService/ListTasks", "OAMV"),
    ("AgentSessionService/GetTask", "OAMV"),
    ("AgentSessionService/UpdateTaskStatus", "OAM-"),
    ("AgentSessionService/StreamSessionStatus", "OAMV"),
    ("RepositoryService/ListRepositories", "OAMV"),
    ("RepositoryService/AddRepository", "OA--"),
    ("RepositoryService/RemoveRepository", "OA--"),
    ("RepositoryService/ListPatches", "OAMV"),
    ("RepositoryService/AttachPatch", "OA--"),
    ("MailboxService/ListMailboxes", "OAMV"),
    ("MailboxService/CreateMailbox", "OA--"),
    ("MailboxService/DeleteMailbox", "OA--"),
    ("MailboxService/LinkProjects", "OA--"),
    ("MailboxService/UnlinkProjects", "OA--"),
    ("MailboxService/ListTriage", "OAMV"),
    ("MailboxService/AssignTriage", "OA--"),
    ("DocumentService/ListDocuments", "OAMV"),
    ("DocumentService/GetDocument", "OAMV"),
    ("DocumentService/UploadDocument", "OAM-"),
    ("DocumentService/DeleteDocument", "OAM-"),
    ("DocumentService/SearchDocuments", "OAMV"),
];

/// The project half of the policy, decided by the same check the handlers
/// of project-scoped RPCs call once they know the project. (Those handlers
/// arrive with their issues; the decision is fixed here already.)
async fn project_rpcs_by_role_and_membership(backend: Backend) {
    let server = TestServer::start(backend).await;
    let owner = server.user("owner", false).await;
    let project = server
        .store
        .create_project("P", "", &owner)
        .await
        .expect("project");
    let elsewhere = server
        .store
        .create_project("Q", "", &owner)
        .await
        .expect("project");
    let mut members = vec![owner];
    for (name, role) in [("admin", 1), ("member", 2), ("viewer", 3)] {
        let id = server.user(name, false).await;
        server
            .store
            .add_member(&project.id, &id, DEFAULT_ROLES[role].id)
            .await
            .expect("bind");
        members.push(id);
    }
    let stranger = server.user("stranger", false).await;

    for (rpc, expected) in PROJECT_RPCS {
        let path = format!("/anima.v1.{rpc}");
        let access = access_for(&path).unwrap_or_else(|| panic!("{path} unmapped"));
        assert!(
            matches!(access, Access::Project(_)),
            "{path} is project-scoped"
        );
        for (index, user_id) in members.iter().chain([&stranger]).enumerate() {
            let context = RequestContext {
                caller: Some(Caller::User {
                    user: server.store.get_user(user_id).await.expect("user"),
                    token_hash: String::new(),
                    session_created_at: 0,
                }),
                access,
            };
            let allowed = expected
                .as_bytes()
                .get(index)
                .is_some_and(|letter| *letter != b'-');
            let outcome = require_project(&server.store, &context, &project.id).await;
            assert_eq!(outcome.is_ok(), allowed, "{rpc} as caller #{index}");
            if let Err(err) = outcome {
                assert_eq!(err.reason, "PERMISSION_DENIED");
            }
            // Membership of one project grants nothing in another (the
            // owner owns both, so only the others are checked).
            if index > 0 {
                assert!(
                    require_project(&server.store, &context, &elsewhere.id)
                        .await
                        .is_err(),
                    "{rpc} elsewhere"
                );
            }
        }
    }
    let project_scoped = ACCESS
        .iter()
        .filter(|(_, access)| matches!(access, Access::Project(_)))
        .count();
    assert_eq!(
        PROJECT_RPCS.len(),
        project_scoped,
        "every project-scoped RPC is in the matrix"
    );
}
