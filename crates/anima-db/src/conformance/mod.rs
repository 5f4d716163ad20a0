//! The conformance suite: one set of behaviours every [`Store`] backend must
//! show, run unchanged against PostgreSQL and SQLite.
//!
//! Each case is a plain async function taking a fresh, empty store;
//! [`conformance_suite!`](crate::conformance_suite) turns them into tests.

use anima_core::{
    ErrorCode, Permission,
    error::reason,
    model::{
        AttemptCounter, AuthSession, EventPosition, NewUser, RoleChanges, UserChanges, now_micros,
    },
    paging::PageRequest,
    permission::DEFAULT_ROLES,
};

use crate::Store;

mod agent;
mod document;
mod mail;
mod planning;
mod repository;
mod skill;
mod thread;
pub use agent::*;
pub use document::*;
pub use mail::*;
pub use planning::*;
pub use repository::*;
pub use skill::*;
pub use thread::*;

fn new_user(username: &str) -> NewUser {
    NewUser {
        username: username.into(),
        display_name: format!("{username} display"),
        email: format!("{username}@example.org"),
        password_hash: "$argon2id$test".into(),
        is_admin: false,
    }
}

/// The newest event once every committed one is readable.
async fn last_event(store: &dyn Store) -> EventPosition {
    crate::testing::settle_events(store).await;
    store.last_event().await.expect("last event")
}

/// The server keeps an active admin: of two changes racing to remove the
/// last two, one fails; the last one can be neither demoted, disabled nor
/// deleted.
pub async fn the_last_admin_stays(store: &dyn Store) {
    let mut admins = Vec::new();
    for name in ["root", "toor"] {
        let mut user = new_user(name);
        user.is_admin = true;
        admins.push(store.create_user(user).await.expect("admin"));
    }
    let demote = |id: String| async move {
        store
            .update_user(
                &id,
                UserChanges {
                    is_admin: Some(false),
                    ..UserChanges::default()
                },
            )
            .await
    };
    let (demoted, deleted) = futures_util::future::join(
        demote(admins[0].id.clone()),
        store.delete_user(&admins[1].id),
    )
    .await;
    let last = match (demoted, deleted) {
        (Ok(_), Err(err)) => {
            assert_eq!(err.reason, reason::LAST_ADMIN);
            &admins[1]
        }
        (Err(err), Ok(())) => {
            assert_eq!(err.reason, reason::LAST_ADMIN);
            &admins[0]
        }
        other => panic!("exactly one of the two may pass: {other:?}"),
    };
    let disable = store
        .update_user(
            &last.id,
            UserChanges {
                disabled: Some(true),
                ..UserChanges::default()
            },
        )
        .await;
    for refused in [
        demote(last.id.clone()).await.map(drop),
        disable.map(drop),
        store.delete_user(&last.id).await,
    ] {
        let err = refused.expect_err("the last admin");
        assert_eq!(
            (err.code, err.reason),
            (ErrorCode::FailedPrecondition, reason::LAST_ADMIN)
        );
    }
    assert!(
        store
            .get_user(&last.id)
            .await
            .expect("still there")
            .is_admin
    );
}

/// A user's list holds themselves and those they share a project with.
pub async fn users_see_only_who_they_share_a_project_with(store: &dyn Store) {
    let ada = store.create_user(new_user("ada")).await.expect("user");
    let bob = store.create_user(new_user("bob")).await.expect("user");
    let eve = store.create_user(new_user("eve")).await.expect("user");
    let project = store
        .create_project("Shared", "", &ada.id)
        .await
        .expect("project");
    store
        .add_member(&project.id, &bob.id, DEFAULT_ROLES[3].id, None)
        .await
        .expect("bind");
    let page = PageRequest::parse(0, "", "u").expect("page");
    let names = |users: Vec<crate::User>| -> Vec<String> {
        users.into_iter().map(|user| user.username).collect()
    };
    let seen = store.list_users(Some(&ada.id), &page).await.expect("list");
    assert_eq!(names(seen.items), ["ada", "bob"]);
    let seen = store.list_users(Some(&eve.id), &page).await.expect("list");
    assert_eq!(names(seen.items), ["eve"]);
    assert_eq!(
        store
            .list_users(None, &page)
            .await
            .expect("all")
            .items
            .len(),
        3
    );
    assert!(
        store
            .share_a_project(&ada.id, &bob.id)
            .await
            .expect("shared")
    );
    assert!(
        !store
            .share_a_project(&ada.id, &eve.id)
            .await
            .expect("not shared")
    );
}

/// Login attempts are counted before any password is checked, atomically
/// across concurrent callers; a refused attempt counts nowhere, so one
/// address that exhausts its own counter cannot exhaust the user's.
pub async fn login_attempts_are_counted_before_any_check(store: &dyn Store) {
    const WINDOW: i64 = 300 * 1_000_000;
    let counters = |peer: &str| {
        vec![
            AttemptCounter {
                key: format!("user+peer:ada|{peer}"),
                limit: 5,
                window_micros: WINDOW,
                what: "login attempts".into(),
            },
            AttemptCounter {
                key: "user:ada".into(),
                limit: 8,
                window_micros: WINDOW,
                what: "login attempts".into(),
            },
        ]
    };
    let now = now_micros();
    let first = counters("10.0.0.1");
    let parallel =
        futures_util::future::join_all((0..20).map(|_| store.count_attempt(&first, now))).await;
    assert_eq!(parallel.iter().filter(|outcome| outcome.is_ok()).count(), 5);
    for refused in parallel.iter().filter_map(|outcome| outcome.as_ref().err()) {
        assert_eq!(
            (refused.code, refused.reason),
            (ErrorCode::ResourceExhausted, reason::RATE_LIMITED)
        );
    }
    // The 15 refused attempts did not count against the user: another
    // address still has the user's remaining 3.
    let second = counters("10.0.0.2");
    for _ in 0..3 {
        store
            .count_attempt(&second, now)
            .await
            .expect("within the user's limit");
    }
    let err = store
        .count_attempt(&second, now)
        .await
        .expect_err("user limit");
    assert_eq!(err.reason, reason::RATE_LIMITED);
    assert!(
        err.message
            .starts_with("too many login attempts; try again in"),
        "{}",
        err.message
    );
    // A window ends; a success forgets.
    store
        .count_attempt(&first, now + WINDOW + 1)
        .await
        .expect("a new window");
    store
        .forget_attempts(&[second[0].key.clone(), second[1].key.clone()])
        .await
        .expect("forget");
    store
        .count_attempt(&second, now + 1)
        .await
        .expect("forgotten");
}

/// Counters of different windows share one table: pruning a short
/// window that ended never resets a longer one still running.
pub async fn counters_keep_their_own_windows(store: &dyn Store) {
    const MINUTE: i64 = 60 * 1_000_000;
    let mail = [AttemptCounter {
        key: "mail:ada".into(),
        limit: 2,
        window_micros: 60 * MINUTE,
        what: "outbound mails".into(),
    }];
    let login = [AttemptCounter {
        key: "user:ada".into(),
        limit: 5,
        window_micros: 5 * MINUTE,
        what: "login attempts".into(),
    }];
    let now = now_micros();
    store.count_attempt(&login, now).await.expect("login");
    for _ in 0..2 {
        store.count_attempt(&mail, now).await.expect("mail");
    }
    // Ten minutes on, the login window has ended and is pruned; the
    // hour-long mail window is still full.
    store
        .count_attempt(&login, now + 10 * MINUTE)
        .await
        .expect("a new login window");
    let err = store
        .count_attempt(&mail, now + 10 * MINUTE)
        .await
        .expect_err("the hour is not over");
    assert_eq!(
        (err.code, err.reason),
        (ErrorCode::ResourceExhausted, reason::RATE_LIMITED)
    );
    assert!(
        err.message
            .starts_with("too many outbound mails; try again in 3001 seconds"),
        "{}",
        err.message
    );
    store
        .count_attempt(&mail, now + 60 * MINUTE)
        .await
        .expect("the next hour");
}

/// Users are created, read, updated and deleted; text is stored verbatim.
pub async fn users_round_trip(store: &dyn Store) {
    let mut root = new_user("root");
    root.is_admin = true;
    store.create_user(root).await.expect("another admin");
    let mut input = new_user("ada");
    input.display_name = "Ada \"the 'first'\" Lovelace 100% 🚀 \\ ; DROP TABLE users; --".into();
    let created = store.create_user(input.clone()).await.expect("create");
    assert_eq!(created.display_name, input.display_name);
    assert!(!created.is_admin && !created.disabled);

    let fetched = store.get_user(&created.id).await.expect("get");
    assert_eq!(fetched, created);

    let credentials = store
        .find_credentials("ada")
        .await
        .expect("find")
        .expect("exists");
    assert_eq!(credentials.password_hash, "$argon2id$test");
    assert!(
        store
            .find_credentials("nobody")
            .await
            .expect("find")
            .is_none()
    );

    let updated = store
        .update_user(
            &created.id,
            UserChanges {
                email: Some("new@example.org".into()),
                is_admin: Some(true),
                preferences: Some([("theme".to_string(), "violet".to_string())].into()),
                ..UserChanges::default()
            },
        )
        .await
        .expect("update");
    assert_eq!(updated.email, "new@example.org");
    assert_eq!(updated.display_name, input.display_name);
    assert!(updated.is_admin);
    assert_eq!(
        updated.preferences.get("theme").map(String::as_str),
        Some("violet")
    );

    store.delete_user(&created.id).await.expect("delete");
    let err = store.get_user(&created.id).await.expect_err("gone");
    assert_eq!(
        (err.code, err.reason),
        (ErrorCode::NotFound, reason::USER_NOT_FOUND)
    );
    let err = store
        .delete_user(&created.id)
        .await
        .expect_err("gone twice");
    assert_eq!(err.reason, reason::USER_NOT_FOUND);
}

/// A taken username is refused and the failed write leaves no trace.
pub async fn duplicate_username_changes_nothing(store: &dyn Store) {
    store.create_user(new_user("grace")).await.expect("create");
    let users_before = store.count_users().await.expect("count");
    let events_before = last_event(store).await;
    let err = store
        .create_user(new_user("grace"))
        .await
        .expect_err("duplicate");
    assert_eq!(
        (err.code, err.reason),
        (ErrorCode::AlreadyExists, reason::USERNAME_TAKEN)
    );
    assert_eq!(store.count_users().await.expect("count"), users_before);
    assert_eq!(last_event(store).await, events_before);
}

/// Pages cover every row once, in order, even with inserts in between.
pub async fn user_pages_are_stable(store: &dyn Store) {
    for n in 0..7 {
        store
            .create_user(new_user(&format!("user{n}")))
            .await
            .expect("create");
    }
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = PageRequest::parse(3, &token, "users").expect("page");
        let result = store.list_users(None, &page).await.expect("list");
        assert!(result.items.len() <= 3);
        seen.extend(result.items.iter().map(|user| user.username.clone()));
        pages += 1;
        if pages == 1 {
            // A row inserted mid-listing sorts last and is picked up once.
            store.create_user(new_user("late")).await.expect("create");
        }
        if result.next_page_token.is_empty() {
            break;
        }
        token = result.next_page_token;
    }
    let mut expected: Vec<String> = (0..7).map(|n| format!("user{n}")).collect();
    expected.push("late".into());
    assert_eq!(seen, expected);
    assert_eq!(pages, 3);
}

/// Sessions are stored by hash, touched, and revoked singly or per user; a
/// password change or disabling the user revokes them all.
pub async fn sessions_are_revocable(store: &dyn Store) {
    let user = store.create_user(new_user("linus")).await.expect("create");
    let now = now_micros();
    for hash in ["h1", "h2", "h3"] {
        store
            .create_session(AuthSession {
                token_hash: hash.into(),
                user_id: user.id.clone(),
                created_at: now,
                last_used_at: now,
            })
            .await
            .expect("session");
    }
    store.touch_session("h1", now + 5).await.expect("touch");
    let session = store.get_session("h1").await.expect("get").expect("exists");
    let (joined, owner) = store
        .session_with_user("h1")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(joined, session);
    assert_eq!(owner.id, session.user_id);
    assert_eq!(session.last_used_at, now + 5);

    let before = last_event(store).await;
    assert!(store.delete_session("h1").await.expect("delete"));
    crate::testing::settle_events(store).await;
    let closed = store.events_after(before, 10).await.expect("events");
    assert_eq!(closed.len(), 1);
    assert_eq!(
        (closed[0].kind.as_str(), closed[0].entity_id.as_str()),
        ("session.closed", user.id.as_str())
    );
    assert!(!store.delete_session("h1").await.expect("delete twice"));
    assert!(store.get_session("h1").await.expect("get").is_none());

    assert_eq!(
        store
            .delete_user_sessions(&user.id, Some("h2"))
            .await
            .expect("others"),
        1
    );
    assert!(store.get_session("h2").await.expect("get").is_some());

    store
        .update_user(
            &user.id,
            UserChanges {
                password_hash: Some("new".into()),
                ..Default::default()
            },
        )
        .await
        .expect("password");
    assert!(store.get_session("h2").await.expect("get").is_none());
    let credentials = store
        .find_credentials("linus")
        .await
        .expect("find")
        .expect("exists");
    assert_eq!(credentials.password_hash, "new");
}

/// Built-in roles are seeded from code and read-only; custom roles live and
/// die as rows, but not while someone holds them.
pub async fn roles_are_rows(store: &dyn Store) {
    let page = PageRequest::parse(0, "", "roles").expect("page");
    let roles = store.list_roles(&page).await.expect("list").items;
    for template in DEFAULT_ROLES {
        let role = roles.iter().find(|r| r.id == template.id).expect("seeded");
        assert_eq!(role.name, template.name);
        assert!(role.builtin);
        let mut expected = template.permissions.to_vec();
        expected.sort();
        assert_eq!(role.permissions, expected);
    }

    let err = store
        .update_role(
            DEFAULT_ROLES[3].id,
            RoleChanges {
                name: Some("Reader".into()),
                ..Default::default()
            },
        )
        .await
        .expect_err("builtin");
    assert_eq!(err.reason, reason::ROLE_BUILTIN);
    let err = store
        .delete_role(DEFAULT_ROLES[3].id)
        .await
        .expect_err("builtin");
    assert_eq!(err.reason, reason::ROLE_BUILTIN);

    let auditor = store
        .create_role(
            "Auditor",
            "reads threads",
            &[Permission::ThreadRead, Permission::ProjectRead],
        )
        .await
        .expect("create");
    assert!(!auditor.builtin);
    assert_eq!(
        auditor.permissions,
        vec![Permission::ProjectRead, Permission::ThreadRead]
    );
    let err = store
        .create_role("Auditor", "", &[])
        .await
        .expect_err("duplicate");
    assert_eq!(err.reason, reason::ROLE_NAME_TAKEN);
    let err = store
        .create_role("Owner", "", &[])
        .await
        .expect_err("duplicate builtin");
    assert_eq!(err.reason, reason::ROLE_NAME_TAKEN);

    let changed = store
        .update_role(
            &auditor.id,
            RoleChanges {
                permissions: Some(vec![Permission::DocumentRead]),
                ..Default::default()
            },
        )
        .await
        .expect("update");
    assert_eq!(changed.permissions, vec![Permission::DocumentRead]);
    assert_eq!(changed.name, "Auditor");

    let user = store.create_user(new_user("eve")).await.expect("user");
    let project = store
        .create_project("P", "", &user.id)
        .await
        .expect("project");
    let other = store.create_user(new_user("mallory")).await.expect("user");
    store
        .add_member(&project.id, &other.id, &auditor.id, None)
        .await
        .expect("bind");
    let err = store.delete_role(&auditor.id).await.expect_err("in use");
    assert_eq!(err.reason, reason::ROLE_IN_USE);
    store
        .add_member(&project.id, &other.id, DEFAULT_ROLES[3].id, None)
        .await
        .expect("rebind");
    store.delete_role(&auditor.id).await.expect("delete");
    let err = store.get_role(&auditor.id).await.expect_err("gone");
    assert_eq!(err.reason, reason::ROLE_NOT_FOUND);
}

/// Bindings decide a user's permissions per project.
pub async fn bindings_grant_project_permissions(store: &dyn Store) {
    let owner = store.create_user(new_user("owner")).await.expect("user");
    let viewer = store.create_user(new_user("viewer")).await.expect("user");
    let stranger = store.create_user(new_user("stranger")).await.expect("user");
    let project = store
        .create_project("Anima", "the product", &owner.id)
        .await
        .expect("project");

    let mut all = Permission::ALL.to_vec();
    all.sort();
    assert_eq!(
        store
            .project_permissions(&owner.id, &project.id)
            .await
            .expect("perms"),
        all
    );

    store
        .add_member(&project.id, &viewer.id, DEFAULT_ROLES[3].id, None)
        .await
        .expect("bind");
    let perms = store
        .project_permissions(&viewer.id, &project.id)
        .await
        .expect("perms");
    assert!(perms.contains(&Permission::WorkItemRead));
    assert!(!perms.contains(&Permission::WorkItemCreate));
    assert!(
        store
            .project_permissions(&stranger.id, &project.id)
            .await
            .expect("perms")
            .is_empty()
    );

    let err = store
        .add_member(
            "00000000-0000-7000-8000-00000000dead",
            &viewer.id,
            DEFAULT_ROLES[3].id,
            None,
        )
        .await
        .expect_err("no project");
    assert_eq!(err.reason, reason::PROJECT_NOT_FOUND);
    let err = store
        .add_member(&project.id, &viewer.id, "no-such-role", None)
        .await
        .expect_err("no role");
    assert_eq!(err.reason, reason::ROLE_NOT_FOUND);

    store.delete_user(&viewer.id).await.expect("delete");
    assert!(
        store
            .project_permissions(&viewer.id, &project.id)
            .await
            .expect("perms")
            .is_empty()
    );
}

/// Every change writes one outbox event, in order, readable from a cursor.
pub async fn changes_write_events(store: &dyn Store) {
    let start = last_event(store).await;
    let user = store.create_user(new_user("events")).await.expect("user");
    store
        .update_user(
            &user.id,
            UserChanges {
                email: Some("e@x".into()),
                ..Default::default()
            },
        )
        .await
        .expect("update");
    let project = store
        .create_project("P", "", &user.id)
        .await
        .expect("project");
    store.archive_project(&project.id).await.expect("archive");

    crate::testing::settle_events(store).await;
    let events = store.events_after(start, 100).await.expect("events");
    let kinds: Vec<&str> = events.iter().map(|event| event.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "user.created",
            "user.updated",
            "project.created",
            "project.archived"
        ]
    );
    assert!(
        events
            .windows(2)
            .all(|pair| pair[0].position() < pair[1].position())
    );
    assert_eq!(last_event(store).await, events[3].position());
    assert_eq!(
        store.event_position(events[1].id).await.expect("position"),
        Some(events[1].position())
    );
    assert_eq!(
        store.event_position(0).await.expect("start"),
        Some(EventPosition::default())
    );
    assert_eq!(
        store
            .event_position(events[3].id + 1000)
            .await
            .expect("none"),
        None
    );
    assert_eq!(events[0].entity_id, user.id);
    assert_eq!(events[2].project_id.as_deref(), Some(project.id.as_str()));

    let tail = store
        .events_after(events[1].position(), 100)
        .await
        .expect("tail");
    assert_eq!(tail, events[2..]);
    assert_eq!(
        store.events_after(start, 2).await.expect("limited").len(),
        2
    );
}

/// Concurrent writers each get their event, and ids never repeat.
pub async fn concurrent_writes_all_land(store: std::sync::Arc<dyn Store>) {
    let start = last_event(&*store).await;
    let mut tasks = Vec::new();
    for n in 0..24 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .create_user(new_user(&format!("c{n}")))
                .await
                .map(|_| ())
        }));
    }
    for task in tasks {
        task.await.expect("join").expect("create");
    }
    crate::testing::settle_events(&*store).await;
    let events = store.events_after(start, 100).await.expect("events");
    assert_eq!(events.len(), 24);
    // Delivered in position order, each once.
    assert!(
        events
            .windows(2)
            .all(|pair| pair[0].position() < pair[1].position())
    );
    assert_eq!(store.count_users().await.expect("count"), 24);
}

/// Generates one `#[tokio::test]` per conformance case. `$make` is an async
/// expression yielding `(Arc<dyn Store>, guard)`; the guard lives as long as
/// the test (e.g. a temporary database that it drops afterwards).
#[macro_export]
macro_rules! conformance_suite {
    ($make:expr) => {
        $crate::conformance_suite!(@cases $make;
            users_round_trip,
            the_last_admin_stays,
            users_see_only_who_they_share_a_project_with,
            login_attempts_are_counted_before_any_check,
            counters_keep_their_own_windows,
            duplicate_username_changes_nothing,
            user_pages_are_stable,
            sessions_are_revocable,
            roles_are_rows,
            bindings_grant_project_permissions,
            changes_write_events,
            projects_members_and_archiving,
            work_item_keys_and_lists,
            description_revisions,
            plans_derive_progress_from_phases,
            capabilities_are_replaced,
            workflows_builtin_and_custom,
            akhs_round_trip,
            thread_messages_and_mail_queue,
            decisions_are_answered_once,
            commits_signal_and_dashboard_reads,
            agent_sessions_and_tokens,
            session_logins_are_audited,
            mailboxes_and_inbound_mail_once,
            received_mail_posts_once,
            mailbox_lifecycle,
            outbound_mail_is_leased_once,
            documents_name_their_bytes,
            mail_attachments_become_documents,
            repositories_belong_to_a_project,
            skills_are_versioned_and_immutable
        );

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn concurrent_writes_all_land() {
            let (store, _guard) = $make.await;
            $crate::conformance::concurrent_writes_all_land(store).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn concurrent_keys_have_no_gaps() {
            let (store, _guard) = $make.await;
            $crate::conformance::concurrent_keys_have_no_gaps(store).await;
        }
    };
    (@cases $make:expr; $($case:ident),*) => {
        $(
            #[tokio::test]
            async fn $case() {
                let (store, _guard) = $make.await;
                $crate::conformance::$case(&*store).await;
            }
        )*
    };
}
