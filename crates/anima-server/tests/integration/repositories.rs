//! RepositoryService through gRPC, on both backends: repositories added,
//! listed and removed in their project; bad input refused with a reason
//! and nothing stored; forges only on the hosts the server reads, and
//! credentials only as references to configured secrets.

use std::collections::BTreeMap;

use anima_client::Services;
use anima_core::permission::DEFAULT_ROLES;
use anima_proto::v1 as pb;
use anima_server::{ServerConfig, secrets::SecretStore};
use tonic::Code;

use crate::common::{Backend, TestServer, authed, failure};

on_both_backends!(
    repositories_are_added_listed_and_removed,
    bad_repositories_change_nothing
);

/// A server whose secret store `team` is a directory holding
/// `github-token`, and which reads GitHub and one self-hosted Gitea.
async fn server(backend: Backend, secrets: &tempfile::TempDir) -> TestServer {
    std::fs::write(secrets.path().join("github-token"), "ghp_not_a_real_token").expect("secret");
    TestServer::start_with(
        backend,
        ServerConfig {
            secret_stores: BTreeMap::from([(
                "team".to_owned(),
                SecretStore::Directory {
                    path: secrets.path().to_owned(),
                },
            )]),
            forge_hosts: vec!["github.com".into(), "http://git.example:3000".into()],
            ..ServerConfig::default()
        },
    )
    .await
}

fn add(project_id: &str, forge: pb::ForgeType, remote_url: &str) -> pb::AddRepositoryRequest {
    pb::AddRepositoryRequest {
        project_id: project_id.into(),
        forge: forge as i32,
        remote_url: remote_url.into(),
        ..Default::default()
    }
}

async fn listed(server: &TestServer, token: &str, project_id: &str) -> Vec<String> {
    server
        .repositories()
        .list_repositories(authed(
            token,
            pb::ListRepositoriesRequest {
                project_id: project_id.into(),
                ..Default::default()
            },
        ))
        .await
        .expect("list")
        .into_inner()
        .repositories
        .into_iter()
        .map(|repository| repository.name)
        .collect()
}

async fn repositories_are_added_listed_and_removed(backend: Backend) {
    let secrets = tempfile::tempdir().expect("secrets");
    let server = server(backend, &secrets).await;
    let owner = server.user("owner", false).await;
    let viewer = server.user("viewer", false).await;
    let project = server
        .store
        .create_project("Shop", "", &owner)
        .await
        .expect("project");
    server
        .store
        .add_member(&project.id, &viewer, DEFAULT_ROLES[3].id, None)
        .await
        .expect("viewer");
    let token = server.login("owner").await;
    let viewer_token = server.login("viewer").await;

    let backend_repo = server
        .repositories()
        .add_repository(authed(
            &token,
            pb::AddRepositoryRequest {
                credential: "team://github-token".into(),
                ..add(
                    &project.id,
                    pb::ForgeType::Github,
                    "git@github.com:team/backend.git",
                )
            },
        ))
        .await
        .expect("add")
        .into_inner();
    assert_eq!(backend_repo.name, "backend", "named after the repository");
    assert_eq!(backend_repo.default_branch, "main");
    assert_eq!(
        (
            backend_repo.base_url.as_str(),
            backend_repo.owner.as_str(),
            backend_repo.repo_name.as_str()
        ),
        ("https://github.com", "team", "backend")
    );
    assert_eq!(backend_repo.credential, "team://github-token");
    let gitea = server
        .repositories()
        .add_repository(authed(
            &token,
            pb::AddRepositoryRequest {
                name: "Web shop".into(),
                default_branch: "develop".into(),
                ..add(
                    &project.id,
                    pb::ForgeType::Gitea,
                    "http://git.example:3000/team/web",
                )
            },
        ))
        .await
        .expect("a self-hosted forge")
        .into_inner();
    assert_eq!(gitea.base_url, "http://git.example:3000");
    // A plain git server is never read by Anima: any host will do.
    server
        .repositories()
        .add_repository(authed(
            &token,
            add(
                &project.id,
                pb::ForgeType::PlainGit,
                "ssh://git@internal.example/infra.git",
            ),
        ))
        .await
        .expect("plain git");

    // Viewers read repositories; only owners and admins manage them.
    assert_eq!(
        listed(&server, &viewer_token, &project.id).await,
        ["backend", "Web shop", "infra"]
    );
    let (code, reason) = failure(
        server
            .repositories()
            .remove_repository(authed(
                &viewer_token,
                pb::RemoveRepositoryRequest {
                    id: gitea.id.clone(),
                },
            ))
            .await,
    );
    assert_eq!(
        (code, reason.as_str()),
        (Code::PermissionDenied, "PERMISSION_DENIED")
    );
    server
        .repositories()
        .remove_repository(authed(&token, pb::RemoveRepositoryRequest { id: gitea.id }))
        .await
        .expect("remove");
    assert_eq!(
        listed(&server, &token, &project.id).await,
        ["backend", "infra"]
    );

    // A work item's sandbox may be granted this project's repositories,
    // never another project's.
    let elsewhere = server
        .store
        .create_project("Elsewhere", "", &owner)
        .await
        .expect("project");
    let foreign = server
        .repositories()
        .add_repository(authed(
            &token,
            add(
                &elsewhere.id,
                pb::ForgeType::Github,
                "https://github.com/other/secret",
            ),
        ))
        .await
        .expect("add elsewhere")
        .into_inner();
    let item = server
        .store
        .create_work_item(anima_core::planning::NewWorkItem {
            project_id: project.id.clone(),
            plan_id: None,
            title: "Fix the build".into(),
            description: String::new(),
            priority: anima_core::planning::Priority::Medium,
            workflow_id: None,
            author: anima_core::planning::Actor::User { id: owner.clone() },
        })
        .await
        .expect("item");
    let grant = |repository_id: &str| pb::UpdateCapabilitiesRequest {
        work_item_id: item.id.clone(),
        capabilities: vec![pb::Capability {
            id: String::new(),
            kind: Some(pb::capability::Kind::RepoAccess(pb::RepoAccess {
                repository_id: repository_id.into(),
                write: true,
            })),
        }],
    };
    for repository_id in [foreign.id.as_str(), "0190a000-0000-7000-8000-000000000099"] {
        let (code, reason) = failure(
            server
                .work_items()
                .update_capabilities(authed(&token, grant(repository_id)))
                .await,
        );
        assert_eq!(
            (code, reason.as_str()),
            (Code::NotFound, "REPOSITORY_NOT_FOUND"),
            "{repository_id}"
        );
    }
    let granted = server
        .work_items()
        .update_capabilities(authed(&token, grant(&backend_repo.id)))
        .await
        .expect("its own repository")
        .into_inner();
    assert_eq!(granted.capabilities.len(), 1);

    // Patches are not built yet, and say so.
    let (code, _) = failure(
        server
            .repositories()
            .list_patches(authed(&token, pb::ListPatchesRequest::default()))
            .await,
    );
    assert_eq!(code, Code::Unimplemented);
}

async fn bad_repositories_change_nothing(backend: Backend) {
    let secrets = tempfile::tempdir().expect("secrets");
    let server = server(backend, &secrets).await;
    let owner = server.user("owner", false).await;
    let stranger = server.user("stranger", false).await;
    let project = server
        .store
        .create_project("Shop", "", &owner)
        .await
        .expect("project");
    let theirs = server
        .store
        .create_project("Theirs", "", &stranger)
        .await
        .expect("project");
    let token = server.login("owner").await;
    let stranger_token = server.login("stranger").await;
    let github = |remote: &str| add(&project.id, pb::ForgeType::Github, remote);
    let before = server.last_event_id().await;
    let bad = [
        (
            add(
                &project.id,
                pb::ForgeType::Unspecified,
                "https://github.com/a/b",
            ),
            "FIELD_REQUIRED",
        ),
        (
            pb::AddRepositoryRequest {
                forge: 42,
                ..github("https://github.com/a/b")
            },
            "INVALID_FIELD",
        ),
        (github("ftp://github.com/a/b"), "INVALID_FIELD"),
        (github("https://github.com/only-owner"), "INVALID_FIELD"),
        (github("https://github.com/a/../../admin"), "INVALID_FIELD"),
        (
            github("https://user:secret@github.com/a/b"),
            "INVALID_FIELD",
        ),
        (
            pb::AddRepositoryRequest {
                default_branch: "main..evil".into(),
                ..github("https://github.com/a/b")
            },
            "INVALID_FIELD",
        ),
        (
            pb::AddRepositoryRequest {
                credential: "ghp_16C7e42F292c6912E7710c838347Ae178B4a".into(),
                ..github("https://github.com/a/b")
            },
            "INVALID_FIELD",
        ),
        (
            pb::AddRepositoryRequest {
                credential: "host://etc-passwd".into(),
                ..github("https://github.com/a/b")
            },
            "SECRET_STORE_UNKNOWN",
        ),
        (
            pb::AddRepositoryRequest {
                credential: "team://missing".into(),
                ..github("https://github.com/a/b")
            },
            "SECRET_NOT_FOUND",
        ),
        // The server never reads a forge its administrator did not list:
        // not the cloud's metadata service, not the host's own ports.
        (
            add(
                &project.id,
                pb::ForgeType::Gitea,
                "http://169.254.169.254/latest/meta-data",
            ),
            "FORGE_HOST_NOT_ALLOWED",
        ),
        (
            add(
                &project.id,
                pb::ForgeType::Gitlab,
                "http://127.0.0.1:5432/group/db",
            ),
            "FORGE_HOST_NOT_ALLOWED",
        ),
        (
            add(
                &project.id,
                pb::ForgeType::Gitea,
                "http://git.example/team/web",
            ),
            "FORGE_HOST_NOT_ALLOWED",
        ),
        // A token never travels in clear to a forge listed for https.
        (
            pb::AddRepositoryRequest {
                credential: "team://github-token".into(),
                ..github("http://github.com/a/b")
            },
            "FORGE_HOST_NOT_ALLOWED",
        ),
        // Nor to a plain git server nobody listed.
        (
            pb::AddRepositoryRequest {
                credential: "team://github-token".into(),
                ..add(
                    &project.id,
                    pb::ForgeType::PlainGit,
                    "ssh://git@169.254.169.254/x.git",
                )
            },
            "FORGE_HOST_NOT_ALLOWED",
        ),
        (
            github("ssh://-oProxyCommand=touch@github.com/a/b"),
            "INVALID_FIELD",
        ),
        (
            add(&theirs.id, pb::ForgeType::Github, "https://github.com/a/b"),
            "PERMISSION_DENIED",
        ),
        (
            add("not-an-id", pb::ForgeType::Github, "https://github.com/a/b"),
            "INVALID_ID",
        ),
    ];
    for (request, expected) in bad {
        let remote = request.remote_url.clone();
        let (_, reason) = failure(
            server
                .repositories()
                .add_repository(authed(&token, request))
                .await,
        );
        assert_eq!(reason, expected, "{remote}");
    }
    assert_eq!(server.last_event_id().await, before, "no event");
    server
        .repositories()
        .add_repository(authed(&token, github("https://github.com/team/shop")))
        .await
        .expect("add");
    let after_one = server.last_event_id().await;
    assert!(after_one > before, "one addition, one event");
    // Someone outside the project does not list its repositories.
    let (code, _) = failure(
        server
            .repositories()
            .list_repositories(authed(
                &stranger_token,
                pb::ListRepositoriesRequest {
                    project_id: project.id.clone(),
                    ..Default::default()
                },
            ))
            .await,
    );
    assert_eq!(code, Code::PermissionDenied);
    let (code, reason) = failure(
        server
            .repositories()
            .add_repository(authed(&token, github("https://github.com/other/shop")))
            .await,
    );
    assert_eq!(
        (code, reason.as_str()),
        (Code::AlreadyExists, "REPOSITORY_NAME_TAKEN")
    );
    let (_, reason) = failure(
        server
            .repositories()
            .remove_repository(authed(
                &token,
                pb::RemoveRepositoryRequest {
                    id: "0190a000-0000-7000-8000-000000000099".into(),
                },
            ))
            .await,
    );
    assert_eq!(reason, "REPOSITORY_NOT_FOUND");
    assert_eq!(listed(&server, &token, &project.id).await, ["shop"]);
    assert_eq!(
        server.last_event_id().await,
        after_one,
        "nothing else changed"
    );
}
