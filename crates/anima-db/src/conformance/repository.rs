//! Conformance cases of a project's repositories.

use anima_core::{
    ErrorCode,
    error::reason,
    event::EventKind,
    paging::PageRequest,
    planning::Actor,
    repository::{AddRepository, ForgeKind},
};

use super::{last_event, new_user};
use crate::Store;

/// Repositories belong to one project, list in the order they were added
/// and page there, keep their names unique in it, never hold a token, and
/// each addition and removal is an event of the project; an archived
/// project takes none.
pub async fn repositories_belong_to_a_project(store: &dyn Store) {
    let owner = store.create_user(new_user("keeper")).await.expect("user");
    let by = Actor::User {
        id: owner.id.clone(),
    };
    let project = store
        .create_project("Shop", "", &owner.id)
        .await
        .expect("project");
    let other = store
        .create_project("Other", "", &owner.id)
        .await
        .expect("project");
    let add = |project_id: &str, name: &'static str, remote: &'static str| {
        AddRepository {
            name,
            forge: ForgeKind::GitHub,
            remote_url: remote,
            base_url: None,
            default_branch: "",
            credential: Some("env://GITHUB_TOKEN"),
        }
        .checked(project_id, by.clone())
        .expect("checked")
    };
    let before = last_event(store).await;
    let mut added = Vec::new();
    for (name, remote) in [
        ("backend", "https://github.com/team/backend"),
        ("frontend", "git@github.com:team/frontend.git"),
        ("docs", "https://github.com/team/docs"),
    ] {
        added.push(
            store
                .add_repository(add(&project.id, name, remote))
                .await
                .expect("add"),
        );
    }
    let backend = &added[0];
    assert_eq!(backend.name, "backend");
    assert_eq!(backend.forge, ForgeKind::GitHub);
    assert_eq!(backend.location.web_base, "https://github.com");
    assert_eq!(
        (
            backend.location.owner.as_str(),
            backend.location.name.as_str()
        ),
        ("team", "backend")
    );
    assert_eq!(backend.default_branch, "main");
    assert_eq!(backend.credential.as_deref(), Some("env://GITHUB_TOKEN"));
    assert_eq!(backend.created_by, by);
    assert_eq!(
        store.get_repository(&backend.id).await.expect("get"),
        *backend
    );

    let taken = store
        .add_repository(add(&project.id, "backend", "https://github.com/team/other"))
        .await
        .expect_err("the name is taken");
    assert_eq!(
        (taken.code, taken.reason),
        (ErrorCode::AlreadyExists, reason::REPOSITORY_NAME_TAKEN)
    );
    // Another project may use the name.
    store
        .add_repository(add(&other.id, "backend", "https://github.com/team/backend"))
        .await
        .expect("another project");

    let first = store
        .list_repositories(
            &project.id,
            &PageRequest::parse(2, "", "repositories").expect("page"),
        )
        .await
        .expect("first page");
    assert_eq!(first.items, added[..2]);
    let second = store
        .list_repositories(
            &project.id,
            &PageRequest::parse(2, &first.next_page_token, "repositories").expect("page"),
        )
        .await
        .expect("second page");
    assert_eq!(second.items, added[2..]);
    assert!(second.next_page_token.is_empty());

    store
        .remove_repository(&added[1].id, &by)
        .await
        .expect("remove");
    let gone = store
        .get_repository(&added[1].id)
        .await
        .expect_err("removed");
    assert_eq!(
        (gone.code, gone.reason),
        (ErrorCode::NotFound, reason::REPOSITORY_NOT_FOUND)
    );
    let again = store
        .remove_repository(&added[1].id, &by)
        .await
        .expect_err("twice");
    assert_eq!(again.reason, reason::REPOSITORY_NOT_FOUND);

    crate::testing::settle_events(store).await;
    let events: Vec<(EventKind, String)> = store
        .events_after(before, 100)
        .await
        .expect("events")
        .into_iter()
        .filter(|event| event.project_id.as_deref() == Some(project.id.as_str()))
        .map(|event| {
            assert!(
                !event.payload.contains("GITHUB_TOKEN"),
                "which secret reads it is not in the event: {}",
                event.payload
            );
            (event.kind, event.entity_id)
        })
        .collect();
    assert_eq!(
        events,
        [
            (EventKind::RepositoryAdded, added[0].id.clone()),
            (EventKind::RepositoryAdded, added[1].id.clone()),
            (EventKind::RepositoryAdded, added[2].id.clone()),
            (EventKind::RepositoryRemoved, added[1].id.clone()),
        ]
    );

    store.archive_project(&other.id).await.expect("archive");
    let archived = store
        .add_repository(add(&other.id, "more", "https://github.com/team/more"))
        .await
        .expect_err("archived");
    assert_eq!(archived.reason, reason::PROJECT_ARCHIVED);
}
