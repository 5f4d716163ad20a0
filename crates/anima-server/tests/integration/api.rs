//! Auth and Team over real gRPC, on both backends: every bad input of the
//! foundation issue gets a clear error and changes nothing.

use anima_client::Services;
use std::time::Duration;

use crate::common::{Backend, PASSWORD, TestServer, authed, failure};
use anima_core::paging::PageRequest;
use anima_proto::v1::{
    self as pb, anima_ai_service_client::AnimaAiServiceClient,
    mail_worker_service_client::MailWorkerServiceClient,
    repository_service_client::RepositoryServiceClient,
};
use anima_server::{
    ServerConfig,
    config::{InternalService, ServiceToken},
};
use prost_types::FieldMask;
use tonic::{Code, Request};

on_both_backends!(
    missing_malformed_unknown_and_revoked_tokens_are_unauthenticated,
    idle_sessions_expire,
    wrong_password_does_not_reveal_whether_the_user_exists,
    sixth_rapid_failed_login_is_rate_limited,
    non_admins_cannot_manage_users_and_nothing_changes,
    users_change_their_own_profile_but_not_their_rights,
    unknown_update_mask_path_is_refused_and_nothing_changes,
    page_size_and_page_token_are_validated,
    pages_walk_every_user_once,
    duplicate_usernames_and_long_strings_are_refused,
    strings_are_stored_verbatim,
    change_password_keeps_this_session_and_revokes_others,
    the_last_admin_stays,
    service_tokens_open_only_their_own_service,
    roles_are_managed_by_admins,
    services_not_built_yet_answer_unimplemented_behind_auth,
);

async fn missing_malformed_unknown_and_revoked_tokens_are_unauthenticated(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.user("ada", false).await;
    let mut team = server.team();

    let missing = team.list_users(pb::ListUsersRequest::default()).await;
    assert_eq!(
        failure(missing),
        (Code::Unauthenticated, "UNAUTHENTICATED".into())
    );

    for header in ["Basic YWRhOnB3", "Bearer", "Bearer    ", "token"] {
        let mut request = Request::new(pb::ListUsersRequest::default());
        request
            .metadata_mut()
            .insert("authorization", header.parse().expect("header"));
        assert_eq!(
            failure(team.list_users(request).await).0,
            Code::Unauthenticated,
            "{header}"
        );
    }
    let unknown = team
        .list_users(authed("not-a-real-token", pb::ListUsersRequest::default()))
        .await;
    assert_eq!(failure(unknown).0, Code::Unauthenticated);

    let token = server.login("ada").await;
    team.list_users(authed(&token, pb::ListUsersRequest::default()))
        .await
        .expect("valid token");
    server
        .auth()
        .logout(authed(&token, pb::LogoutRequest {}))
        .await
        .expect("logout");
    let revoked = team
        .list_users(authed(&token, pb::ListUsersRequest::default()))
        .await;
    assert_eq!(
        failure(revoked),
        (Code::Unauthenticated, "UNAUTHENTICATED".into())
    );
}

async fn idle_sessions_expire(backend: Backend) {
    let config = ServerConfig {
        session_idle_timeout_secs: 1,
        ..ServerConfig::default()
    };
    let server = TestServer::start_with(backend, config).await;
    server.user("ada", false).await;
    let token = server.login("ada").await;
    // Idle for longer than the timeout (not a timing assertion: any delay
    // beyond one second must expire the session).
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let expired = server
        .auth()
        .who_am_i(authed(&token, pb::WhoAmIRequest {}))
        .await;
    assert_eq!(
        failure(expired),
        (Code::Unauthenticated, "SESSION_EXPIRED".into())
    );
    // And it is gone for good, not merely refused.
    let hash = anima_server::auth::token_hash(&token);
    assert!(
        server
            .store
            .get_session(&hash)
            .await
            .expect("get")
            .is_none()
    );
}

async fn wrong_password_does_not_reveal_whether_the_user_exists(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.user("ada", false).await;
    let mut auth = server.auth();
    let wrong_password = auth
        .login(pb::LoginRequest {
            username: "ada".into(),
            password: "wrong".into(),
        })
        .await
        .expect_err("wrong password");
    let unknown_user = auth
        .login(pb::LoginRequest {
            username: "nobody".into(),
            password: "wrong".into(),
        })
        .await
        .expect_err("unknown user");
    assert_eq!(wrong_password.code(), Code::Unauthenticated);
    assert_eq!(wrong_password.code(), unknown_user.code());
    assert_eq!(wrong_password.message(), unknown_user.message());
    assert_eq!(failure::<()>(Err(wrong_password)).1, "INVALID_CREDENTIALS");
    assert_eq!(
        server
            .store
            .events_after(Default::default(), 100)
            .await
            .expect("events")
            .len(),
        1,
        "no writes"
    );
}

async fn sixth_rapid_failed_login_is_rate_limited(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.user("ada", false).await;
    let mut auth = server.auth();
    for attempt in 1..=5 {
        let result = auth
            .login(pb::LoginRequest {
                username: "ada".into(),
                password: "guess".into(),
            })
            .await;
        assert_eq!(
            failure(result).1,
            "INVALID_CREDENTIALS",
            "attempt {attempt}"
        );
    }
    // The sixth is refused before the password is even looked at: the
    // right one does not get through either.
    let sixth = auth
        .login(pb::LoginRequest {
            username: "ada".into(),
            password: PASSWORD.into(),
        })
        .await;
    assert_eq!(
        failure(sixth),
        (Code::ResourceExhausted, "RATE_LIMITED".into())
    );
}

async fn non_admins_cannot_manage_users_and_nothing_changes(backend: Backend) {
    let server = TestServer::start(backend).await;
    let bob = server.user("bob", false).await;
    let token = server.login("bob").await;
    let mut team = server.team();
    let before = server.store.count_users().await.expect("count");
    let create = team
        .create_user(authed(
            &token,
            pb::CreateUserRequest {
                username: "eve".into(),
                password: PASSWORD.into(),
                is_admin: true,
                ..Default::default()
            },
        ))
        .await;
    assert_eq!(
        failure(create),
        (Code::PermissionDenied, "PERMISSION_DENIED".into())
    );
    let promote = team
        .update_user(authed(
            &token,
            pb::UpdateUserRequest {
                user: Some(pb::User {
                    id: bob.clone(),
                    is_admin: true,
                    ..Default::default()
                }),
                update_mask: Some(FieldMask {
                    paths: vec!["is_admin".into()],
                }),
                password: String::new(),
            },
        ))
        .await;
    assert_eq!(failure(promote).0, Code::PermissionDenied);
    assert_eq!(server.store.count_users().await.expect("count"), before);
    assert!(!server.store.get_user(&bob).await.expect("bob").is_admin);
}

async fn users_change_their_own_profile_but_not_their_rights(backend: Backend) {
    let server = TestServer::start(backend).await;
    let bob = server.user("bob", false).await;
    let carol = server.user("carol", false).await;
    let token = server.login("bob").await;
    let update = |id: &str, paths: &[&str]| {
        authed(
            &token,
            pb::UpdateUserRequest {
                user: Some(pb::User {
                    id: id.to_owned(),
                    display_name: "Bobby".into(),
                    email: "bob@example.org".into(),
                    is_admin: true,
                    disabled: true,
                    preferences: [("notify.decisions".to_owned(), "off".to_owned())].into(),
                    ..Default::default()
                }),
                update_mask: Some(FieldMask {
                    paths: paths.iter().map(|path| path.to_string()).collect(),
                }),
                password: "a brand new password".into(),
            },
        )
    };
    let mine = server
        .team()
        .update_user(update(&bob, &["display_name", "email", "preferences"]))
        .await
        .expect("own profile")
        .into_inner();
    assert_eq!(
        (mine.display_name.as_str(), mine.email.as_str()),
        ("Bobby", "bob@example.org")
    );
    assert_eq!(mine.preferences["notify.decisions"], "off");

    let carol_before = server.store.get_user(&carol).await.expect("carol");
    let bob_before = server.store.get_user(&bob).await.expect("bob");
    for (id, paths) in [
        (&carol, &["display_name"][..]),
        (&bob, &["is_admin"][..]),
        (&bob, &["display_name", "disabled"][..]),
        (&bob, &["password"][..]),
    ] {
        let refused = server.team().update_user(update(id, paths)).await;
        assert_eq!(
            failure(refused),
            (Code::PermissionDenied, "PERMISSION_DENIED".into()),
            "{paths:?}"
        );
    }
    assert_eq!(
        server.store.get_user(&carol).await.expect("carol"),
        carol_before
    );
    assert_eq!(server.store.get_user(&bob).await.expect("bob"), bob_before);
}

async fn unknown_update_mask_path_is_refused_and_nothing_changes(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.user("root", true).await;
    let bob = server.user("bob", false).await;
    let token = server.login("root").await;
    let before = server.store.get_user(&bob).await.expect("bob");
    for paths in [
        vec!["display_name".to_string(), "username".into()],
        vec!["nonsense".into()],
        vec![],
    ] {
        let result = server
            .team()
            .update_user(authed(
                &token,
                pb::UpdateUserRequest {
                    user: Some(pb::User {
                        id: bob.clone(),
                        display_name: "Changed".into(),
                        ..Default::default()
                    }),
                    update_mask: Some(FieldMask {
                        paths: paths.clone(),
                    }),
                    password: String::new(),
                },
            ))
            .await;
        assert_eq!(
            failure(result),
            (Code::InvalidArgument, "INVALID_UPDATE_MASK".into()),
            "{paths:?}"
        );
    }
    assert_eq!(server.store.get_user(&bob).await.expect("bob"), before);

    let updated = server
        .team()
        .update_user(authed(
            &token,
            pb::UpdateUserRequest {
                user: Some(pb::User {
                    id: bob.clone(),
                    display_name: "Bobby".into(),
                    email: "ignored@x".into(),
                    ..Default::default()
                }),
                update_mask: Some(FieldMask {
                    paths: vec!["display_name".into()],
                }),
                password: String::new(),
            },
        ))
        .await
        .expect("update")
        .into_inner();
    assert_eq!(updated.display_name, "Bobby");
    assert_eq!(
        updated.email, before.email,
        "fields outside the mask are untouched"
    );
}

async fn page_size_and_page_token_are_validated(backend: Backend) {
    let server = TestServer::start(backend).await;
    // An admin, who sees every user.
    server.user("ada", true).await;
    for n in 0..55 {
        server.user(&format!("u{n:02}"), false).await;
    }
    let token = server.login("ada").await;
    let mut team = server.team();

    let default = team
        .list_users(authed(
            &token,
            pb::ListUsersRequest {
                page_size: 0,
                page_token: String::new(),
            },
        ))
        .await
        .expect("default size")
        .into_inner();
    assert_eq!(default.users.len(), 50);
    assert!(!default.next_page_token.is_empty());

    for size in [-1, 501, i32::MAX] {
        let result = team
            .list_users(authed(
                &token,
                pb::ListUsersRequest {
                    page_size: size,
                    page_token: String::new(),
                },
            ))
            .await;
        assert_eq!(
            failure(result),
            (Code::InvalidArgument, "INVALID_PAGE_SIZE".into()),
            "{size}"
        );
    }
    let roles_token = server
        .team()
        .list_roles(authed(
            &token,
            pb::ListRolesRequest {
                page_size: 1,
                page_token: String::new(),
            },
        ))
        .await
        .expect("roles")
        .into_inner()
        .next_page_token;
    for garbage in [
        "garbage",
        "eyJ2IjoxLCJxIjoxLCJrIjoieCJ9",
        "%%%",
        roles_token.as_str(),
    ] {
        let result = team
            .list_users(authed(
                &token,
                pb::ListUsersRequest {
                    page_size: 10,
                    page_token: garbage.into(),
                },
            ))
            .await;
        assert_eq!(
            failure(result),
            (Code::InvalidArgument, "INVALID_PAGE_TOKEN".into()),
            "{garbage}"
        );
    }
}

async fn pages_walk_every_user_once(backend: Backend) {
    let server = TestServer::start(backend).await;
    // An admin, who sees every user.
    server.user("ada", true).await;
    for n in 0..11 {
        server.user(&format!("u{n:02}"), false).await;
    }
    let token = server.login("ada").await;
    let mut seen = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = server
            .team()
            .list_users(authed(
                &token,
                pb::ListUsersRequest {
                    page_size: 5,
                    page_token,
                },
            ))
            .await
            .expect("page")
            .into_inner();
        seen.extend(page.users.into_iter().map(|user| user.username));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(seen.len(), 12);
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 12);
    assert!(PageRequest::parse(5, "", "users").is_ok());
}

async fn duplicate_usernames_and_long_strings_are_refused(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.user("root", true).await;
    let token = server.login("root").await;
    let mut team = server.team();
    let create = |username: String, display_name: String| pb::CreateUserRequest {
        username,
        display_name,
        password: PASSWORD.into(),
        ..Default::default()
    };
    team.create_user(authed(&token, create("carol".into(), String::new())))
        .await
        .expect("first");
    let count = server.store.count_users().await.expect("count");

    let duplicate = team
        .create_user(authed(&token, create("carol".into(), String::new())))
        .await;
    assert_eq!(
        failure(duplicate),
        (Code::AlreadyExists, "USERNAME_TAKEN".into())
    );
    let long_name = team
        .create_user(authed(&token, create("x".repeat(201), String::new())))
        .await;
    assert_eq!(
        failure(long_name),
        (Code::InvalidArgument, "FIELD_TOO_LONG".into())
    );
    let long_display = team
        .create_user(authed(&token, create("dave".into(), "y".repeat(201))))
        .await;
    assert_eq!(
        failure(long_display),
        (Code::InvalidArgument, "FIELD_TOO_LONG".into())
    );
    let blank = team
        .create_user(authed(&token, create("  ".into(), String::new())))
        .await;
    assert_eq!(
        failure(blank),
        (Code::InvalidArgument, "FIELD_REQUIRED".into())
    );
    let spaced = team
        .create_user(authed(&token, create("da ve".into(), String::new())))
        .await;
    assert_eq!(
        failure(spaced),
        (Code::InvalidArgument, "INVALID_FIELD".into())
    );
    let weak = team
        .create_user(authed(
            &token,
            pb::CreateUserRequest {
                username: "erin".into(),
                password: "short".into(),
                ..Default::default()
            },
        ))
        .await;
    assert_eq!(
        failure(weak),
        (Code::InvalidArgument, "WEAK_PASSWORD".into())
    );
    let bad_id = team
        .get_user(authed(
            &token,
            pb::GetUserRequest {
                id: "42".into(),
                ..Default::default()
            },
        ))
        .await;
    assert_eq!(
        failure(bad_id),
        (Code::InvalidArgument, "INVALID_ID".into())
    );
    assert_eq!(server.store.count_users().await.expect("count"), count);
}

async fn strings_are_stored_verbatim(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.user("root", true).await;
    let token = server.login("root").await;
    let display_name = "O'Brien \"Bob\" 100% 🚀 \\n; DROP TABLE users; --";
    let created = server
        .team()
        .create_user(authed(
            &token,
            pb::CreateUserRequest {
                username: "o'brien%🚀".into(),
                display_name: display_name.into(),
                email: "o'brien+%@example.org".into(),
                password: PASSWORD.into(),
                is_admin: false,
            },
        ))
        .await
        .expect("create")
        .into_inner();
    let fetched = server
        .team()
        .get_user(authed(
            &token,
            pb::GetUserRequest {
                id: created.id.clone(),
                ..Default::default()
            },
        ))
        .await
        .expect("get")
        .into_inner();
    assert_eq!(fetched.username, "o'brien%🚀");
    assert_eq!(fetched.display_name, display_name);
    assert_eq!(fetched.email, "o'brien+%@example.org");
    server.login("o'brien%🚀").await;
}

async fn change_password_keeps_this_session_and_revokes_others(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.user("ada", false).await;
    let this = server.login("ada").await;
    let other = server.login("ada").await;
    let mut auth = server.auth();
    let wrong = auth
        .change_password(authed(
            &this,
            pb::ChangePasswordRequest {
                current_password: "nope".into(),
                new_password: "a much better password".into(),
            },
        ))
        .await;
    assert_eq!(
        failure(wrong),
        (Code::PermissionDenied, "INVALID_CREDENTIALS".into())
    );
    let weak = auth
        .change_password(authed(
            &this,
            pb::ChangePasswordRequest {
                current_password: PASSWORD.into(),
                new_password: "short".into(),
            },
        ))
        .await;
    assert_eq!(failure(weak).1, "WEAK_PASSWORD");
    auth.who_am_i(authed(&other, pb::WhoAmIRequest {}))
        .await
        .expect("failed changes revoke nothing");

    auth.change_password(authed(
        &this,
        pb::ChangePasswordRequest {
            current_password: PASSWORD.into(),
            new_password: "a much better password".into(),
        },
    ))
    .await
    .expect("change");
    auth.who_am_i(authed(&this, pb::WhoAmIRequest {}))
        .await
        .expect("this session survives");
    assert_eq!(
        failure(auth.who_am_i(authed(&other, pb::WhoAmIRequest {})).await).0,
        Code::Unauthenticated
    );
    auth.login(pb::LoginRequest {
        username: "ada".into(),
        password: "a much better password".into(),
    })
    .await
    .expect("new password works");
}

async fn the_last_admin_stays(backend: Backend) {
    let server = TestServer::start(backend).await;
    let root = server.user("root", true).await;
    let token = server.login("root").await;
    let mut team = server.team();
    let demote = team
        .update_user(authed(
            &token,
            pb::UpdateUserRequest {
                user: Some(pb::User {
                    id: root.clone(),
                    is_admin: false,
                    ..Default::default()
                }),
                update_mask: Some(FieldMask {
                    paths: vec!["is_admin".into()],
                }),
                password: String::new(),
            },
        ))
        .await;
    assert_eq!(
        failure(demote),
        (Code::FailedPrecondition, "LAST_ADMIN".into())
    );
    let delete = team
        .delete_user(authed(&token, pb::DeleteUserRequest { id: root.clone() }))
        .await;
    assert_eq!(
        failure(delete),
        (Code::FailedPrecondition, "LAST_ADMIN".into())
    );
    assert!(server.store.get_user(&root).await.expect("root").is_admin);

    let second = server.user("second", true).await;
    team.delete_user(authed(&token, pb::DeleteUserRequest { id: second }))
        .await
        .expect("not the last");
}

const OLD_MAIL_TOKEN: &str = "old-mail-token-0123456789-abcdefgh";
const NEW_MAIL_TOKEN: &str = "new-mail-token-0123456789-abcdefgh";
const AGENT_TOKEN: &str = "agent-token-0123456789-abcdefghijk";

/// Issue 21: any service token passed every project rule and every
/// signed-in RPC, so a leaked mail worker token read every project. Now a
/// token opens its own service and nothing else.
async fn service_tokens_open_only_their_own_service(backend: Backend) {
    let config = ServerConfig {
        service_tokens: vec![
            ServiceToken {
                name: InternalService::Mail,
                token: OLD_MAIL_TOKEN.into(),
            },
            ServiceToken {
                name: InternalService::Mail,
                token: NEW_MAIL_TOKEN.into(),
            },
            ServiceToken {
                name: InternalService::Agent,
                token: AGENT_TOKEN.into(),
            },
        ],
        ..ServerConfig::default()
    };
    let server = TestServer::start_with(backend, config).await;
    let mut worker = MailWorkerServiceClient::new(server.channel.clone());
    for token in [OLD_MAIL_TOKEN, NEW_MAIL_TOKEN] {
        worker
            .list_followed_mailboxes(authed(token, pb::ListFollowedMailboxesRequest::default()))
            .await
            .expect("the mail worker's own RPC");
    }
    assert_eq!(
        failure(
            worker
                .list_followed_mailboxes(authed(
                    AGENT_TOKEN,
                    pb::ListFollowedMailboxesRequest::default()
                ))
                .await
        )
        .0,
        Code::PermissionDenied,
        "the agent's token is not the mail worker's"
    );
    server.user("olga", false).await;
    let owner = server.login("olga").await;
    let project = server
        .projects()
        .create_project(authed(
            &owner,
            pb::CreateProjectRequest {
                name: "Secret plans".into(),
                description: String::new(),
            },
        ))
        .await
        .expect("project")
        .into_inner();
    for token in [NEW_MAIL_TOKEN, AGENT_TOKEN] {
        let read = server
            .projects()
            .get_project(authed(
                token,
                pb::GetProjectRequest {
                    id: project.id.clone(),
                },
            ))
            .await;
        assert_eq!(failure(read).0, Code::PermissionDenied, "GetProject");
        let listed = server
            .projects()
            .list_projects(authed(token, pb::ListProjectsRequest::default()))
            .await;
        assert_eq!(failure(listed).0, Code::PermissionDenied, "ListProjects");
        let me = server
            .auth()
            .who_am_i(authed(token, pb::WhoAmIRequest {}))
            .await;
        assert_eq!(failure(me).0, Code::PermissionDenied, "WhoAmI");
    }
    let bob = server.user("bob", false).await;
    let renamed = server
        .team()
        .update_user(authed(
            NEW_MAIL_TOKEN,
            pb::UpdateUserRequest {
                user: Some(pb::User {
                    id: bob.clone(),
                    display_name: "Robot".into(),
                    ..Default::default()
                }),
                update_mask: Some(FieldMask {
                    paths: vec!["display_name".into()],
                }),
                password: String::new(),
            },
        ))
        .await;
    assert_eq!(failure(renamed).0, Code::PermissionDenied);
    // Internal services' RPCs are not served on this listener at all.
    let ai = AnimaAiServiceClient::new(server.channel.clone())
        .embed(authed(NEW_MAIL_TOKEN, pb::EmbedRequest::default()))
        .await;
    assert_eq!(failure(ai).0, Code::Unimplemented);
    assert_eq!(
        failure(
            server
                .auth()
                .who_am_i(authed("retired-secret", pb::WhoAmIRequest {}))
                .await
        )
        .0,
        Code::Unauthenticated
    );
}

/// A service token short enough to guess stops the server at start.
#[tokio::test]
async fn short_service_tokens_are_refused_at_start() {
    let db = anima_db::testing::TempDatabase::sqlite();
    let config = ServerConfig {
        service_tokens: vec![ServiceToken {
            name: InternalService::Mail,
            token: "mail-worker-token".into(),
        }],
        ..ServerConfig::default()
    };
    let err = anima_server::router(db.open().await, &config, Default::default(), None)
        .await
        .expect_err("short token");
    assert!(format!("{err:#}").contains("at least 32"), "{err:#}");
}

async fn roles_are_managed_by_admins(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.user("root", true).await;
    let token = server.login("root").await;
    let mut team = server.team();
    let role = team
        .create_role(authed(
            &token,
            pb::CreateRoleRequest {
                name: "Auditor".into(),
                description: "reads".into(),
                permissions: vec!["thread.read".into(), "project.read".into()],
            },
        ))
        .await
        .expect("create")
        .into_inner();
    assert_eq!(role.permissions, ["project.read", "thread.read"]);
    let unknown = team
        .create_role(authed(
            &token,
            pb::CreateRoleRequest {
                name: "Bad".into(),
                description: String::new(),
                permissions: vec!["root.everything".into()],
            },
        ))
        .await;
    assert_eq!(
        failure(unknown),
        (Code::InvalidArgument, "UNKNOWN_PERMISSION".into())
    );
    let builtin = team
        .update_role(authed(
            &token,
            pb::UpdateRoleRequest {
                role: Some(pb::Role {
                    id: "00000000-0000-7000-8000-000000000004".into(),
                    name: "Reader".into(),
                    ..Default::default()
                }),
                update_mask: Some(FieldMask {
                    paths: vec!["name".into()],
                }),
            },
        ))
        .await;
    assert_eq!(
        failure(builtin),
        (Code::FailedPrecondition, "ROLE_BUILTIN".into())
    );
    let renamed = team
        .update_role(authed(
            &token,
            pb::UpdateRoleRequest {
                role: Some(pb::Role {
                    id: role.id.clone(),
                    name: "Auditors".into(),
                    ..Default::default()
                }),
                update_mask: Some(FieldMask {
                    paths: vec!["name".into()],
                }),
            },
        ))
        .await
        .expect("rename")
        .into_inner();
    assert_eq!(renamed.name, "Auditors");
    assert_eq!(renamed.permissions, role.permissions);
    team.delete_role(authed(
        &token,
        pb::DeleteRoleRequest {
            id: role.id.clone(),
        },
    ))
    .await
    .expect("delete");
    let gone = team
        .delete_role(authed(&token, pb::DeleteRoleRequest { id: role.id }))
        .await;
    assert_eq!(failure(gone), (Code::NotFound, "ROLE_NOT_FOUND".into()));
    let catalogue = team
        .list_permissions(authed(&token, pb::ListPermissionsRequest {}))
        .await
        .expect("perms")
        .into_inner();
    assert!(
        catalogue
            .permissions
            .iter()
            .any(|p| p.name == "agent.login" && !p.description.is_empty())
    );
}

async fn services_not_built_yet_answer_unimplemented_behind_auth(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.user("ada", false).await;
    let token = server.login("ada").await;
    let mut repositories = RepositoryServiceClient::new(server.channel.clone());
    let anonymous = repositories
        .list_patches(pb::ListPatchesRequest::default())
        .await;
    assert_eq!(failure(anonymous).0, Code::Unauthenticated);
    let status = repositories
        .list_patches(authed(&token, pb::ListPatchesRequest::default()))
        .await
        .expect_err("not built yet");
    assert_eq!(status.code(), Code::Unimplemented);
}
