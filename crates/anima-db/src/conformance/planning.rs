//! Conformance cases of the planning domain.

use std::sync::Arc;

use anima_core::{
    ErrorCode,
    capability::{Capability, CapabilityKind},
    error::reason,
    paging::PageRequest,
    permission::DEFAULT_ROLES,
    planning::{
        Actor, AkhChanges, DescriptionEdit, NewPlan, NewWorkItem, PlanChanges, Priority,
        ProjectChanges, ProjectStatus, RevisionCause, WorkItemChanges, WorkItemKey, WorkItemStatus,
    },
    workflow::{
        BUGFIX_WORKFLOW_ID, Phase, STANDARD_WORKFLOW_ID, WorkflowChanges, builtin_workflows,
    },
};

use super::new_user;
use crate::{ProjectFilter, Store, WorkItemFilter};

const MISSING: &str = "00000000-0000-7000-8000-00000000dead";

fn page(size: i32, token: &str, query: &str) -> PageRequest {
    PageRequest::parse(size, token, query).expect("page")
}

fn item(project_id: &str, title: &str) -> NewWorkItem {
    NewWorkItem {
        project_id: project_id.into(),
        plan_id: None,
        title: title.into(),
        description: format!("{title} description"),
        priority: Priority::Medium,
        workflow_id: None,
        author: Actor::Service {
            name: "conformance".into(),
        },
    }
}

fn edit(base: &str, text: &str) -> WorkItemChanges {
    WorkItemChanges {
        description: Some(DescriptionEdit {
            base_revision_id: base.into(),
            text: text.into(),
            cause: RevisionCause::Edit,
            source_message_id: None,
        }),
        ..Default::default()
    }
}

/// Projects list by membership and status; archived projects refuse writes
/// and stay readable; the last Owner stays.
pub async fn projects_members_and_archiving(store: &dyn Store) {
    let owner = store.create_user(new_user("owner")).await.expect("user");
    let other = store.create_user(new_user("other")).await.expect("user");
    let first = store
        .create_project("First", "one", &owner.id)
        .await
        .expect("project");
    let second = store
        .create_project("Second", "two", &other.id)
        .await
        .expect("project");
    assert_eq!(first.status, ProjectStatus::Active);
    assert_eq!(first.stats.work_items, 0);

    let mine = store
        .list_projects(
            &ProjectFilter {
                member: Some(owner.id.clone()),
                status: None,
            },
            &page(0, "", "p"),
        )
        .await
        .expect("list");
    assert_eq!(mine.items, vec![first.clone()]);
    let all_first = store
        .list_projects(&ProjectFilter::default(), &page(1, "", "p"))
        .await
        .expect("list");
    assert_eq!(all_first.items.len(), 1);
    let all_second = store
        .list_projects(
            &ProjectFilter::default(),
            &page(1, &all_first.next_page_token, "p"),
        )
        .await
        .expect("list");
    assert_eq!(all_second.items[0].id, second.id);
    assert!(all_second.next_page_token.is_empty());

    let renamed = store
        .update_project(
            &first.id,
            ProjectChanges {
                name: Some("First!".into()),
                ..Default::default()
            },
        )
        .await
        .expect("update");
    assert_eq!(
        (renamed.name.as_str(), renamed.description.as_str()),
        ("First!", "one")
    );

    // Members: the last Owner can neither leave, nor be demoted, nor be
    // deleted with their account.
    let err = store.delete_user(&owner.id).await.expect_err("last owner");
    assert_eq!(err.reason, reason::LAST_OWNER);
    let err = store
        .remove_member(&first.id, &owner.id, None)
        .await
        .expect_err("last owner");
    assert_eq!(err.reason, reason::LAST_OWNER);
    let err = store
        .add_member(&first.id, &owner.id, DEFAULT_ROLES[2].id, None)
        .await
        .expect_err("last owner");
    assert_eq!(err.reason, reason::LAST_OWNER);
    // A project Admin manages Members and Viewers, but never hands out
    // or takes away what it does not hold itself: Owner.
    let deputy = store.create_user(new_user("deputy")).await.expect("user");
    store
        .add_member(&first.id, &deputy.id, DEFAULT_ROLES[1].id, Some(&owner.id))
        .await
        .expect("the Owner makes an Admin");
    for attempt in [
        store
            .add_member(&first.id, &deputy.id, DEFAULT_ROLES[0].id, Some(&deputy.id))
            .await
            .map(drop),
        store
            .add_member(&first.id, &other.id, DEFAULT_ROLES[0].id, Some(&deputy.id))
            .await
            .map(drop),
        store
            .add_member(&first.id, &owner.id, DEFAULT_ROLES[3].id, Some(&deputy.id))
            .await
            .map(drop),
        store
            .remove_member(&first.id, &owner.id, Some(&deputy.id))
            .await,
    ] {
        let err = attempt.expect_err("escalation");
        assert_eq!(
            (err.code, err.reason),
            (ErrorCode::PermissionDenied, reason::ROLE_ESCALATION)
        );
    }
    store
        .add_member(&first.id, &other.id, DEFAULT_ROLES[3].id, Some(&deputy.id))
        .await
        .expect("the Admin adds a Viewer");
    store
        .remove_member(&first.id, &deputy.id, Some(&owner.id))
        .await
        .expect("the Owner removes the Admin");
    let member = store
        .add_member(&first.id, &other.id, DEFAULT_ROLES[0].id, Some(&owner.id))
        .await
        .expect("add");
    assert_eq!(member.role_name, "Owner");
    assert_eq!(member.username, "other");
    store
        .remove_member(&first.id, &owner.id, None)
        .await
        .expect("another owner remains");
    let err = store
        .remove_member(&first.id, &owner.id, None)
        .await
        .expect_err("gone");
    assert_eq!(err.reason, reason::MEMBER_NOT_FOUND);
    let members = store
        .list_members(&first.id, &page(0, "", "m"))
        .await
        .expect("members");
    assert_eq!(members.items, vec![member]);
    let err = store
        .add_member(&first.id, MISSING, DEFAULT_ROLES[2].id, None)
        .await
        .expect_err("no user");
    assert_eq!(err.reason, reason::USER_NOT_FOUND);

    // Archiving: reads work, every write is refused, twice is harmless.
    let archived = store.archive_project(&first.id).await.expect("archive");
    assert_eq!(archived.status, ProjectStatus::Archived);
    let again = store.archive_project(&first.id).await.expect("again");
    assert_eq!(again.status, ProjectStatus::Archived);
    assert_eq!(
        store.get_project(&first.id).await.expect("read").name,
        "First!"
    );
    let refusals = [
        store
            .update_project(&first.id, ProjectChanges::default())
            .await
            .map(drop),
        store
            .add_member(&first.id, &owner.id, DEFAULT_ROLES[3].id, None)
            .await
            .map(drop),
        store
            .create_plan(NewPlan {
                project_id: first.id.clone(),
                title: "t".into(),
                description: String::new(),
                workflow_id: STANDARD_WORKFLOW_ID.into(),
            })
            .await
            .map(drop),
        store.create_work_item(item(&first.id, "t")).await.map(drop),
    ];
    for refusal in refusals {
        let err = refusal.expect_err("archived");
        assert_eq!(
            (err.code, err.reason),
            (ErrorCode::FailedPrecondition, reason::PROJECT_ARCHIVED)
        );
    }
    let active = store
        .list_projects(
            &ProjectFilter {
                member: None,
                status: Some(ProjectStatus::Active),
            },
            &page(0, "", "p"),
        )
        .await
        .expect("list");
    assert_eq!(active.items.len(), 1);
    let err = store.get_project(MISSING).await.expect_err("missing");
    assert_eq!(err.reason, reason::PROJECT_NOT_FOUND);
}

/// Work item keys count up per project; lookups by key stay in their project.
pub async fn work_item_keys_and_lists(store: &dyn Store) {
    let owner = store.create_user(new_user("keys")).await.expect("user");
    let project = store
        .create_project("P", "", &owner.id)
        .await
        .expect("project");
    let other = store
        .create_project("Q", "", &owner.id)
        .await
        .expect("project");
    let mut created = Vec::new();
    for n in 1..=5 {
        created.push(
            store
                .create_work_item(item(&project.id, &format!("item {n}")))
                .await
                .expect("create"),
        );
    }
    let elsewhere = store
        .create_work_item(item(&other.id, "elsewhere"))
        .await
        .expect("create");
    assert_eq!(elsewhere.key, WorkItemKey(1));
    let keys: Vec<String> = created.iter().map(|item| item.key.to_string()).collect();
    assert_eq!(keys, ["WI-1", "WI-2", "WI-3", "WI-4", "WI-5"]);
    let first = &created[0];
    assert_eq!(first.status, WorkItemStatus::Open);
    assert_eq!(first.workflow_id, STANDARD_WORKFLOW_ID);
    assert_eq!(first.phase_id, "analysis");
    assert_eq!(first.description, "item 1 description");

    let found = store
        .find_work_item(&project.id, WorkItemKey(3))
        .await
        .expect("find");
    assert_eq!(found, created[2]);

    let err = store
        .get_work_item(MISSING)
        .await
        .expect_err("no such item");
    assert_eq!(err.reason, reason::WORK_ITEM_NOT_FOUND);
    let err = store
        .find_work_item(&other.id, WorkItemKey(3))
        .await
        .expect_err("other project");
    assert_eq!(err.reason, reason::WORK_ITEM_NOT_FOUND);

    store
        .update_work_item(
            &created[1].id,
            WorkItemChanges {
                status: Some(WorkItemStatus::Done),
                ..Default::default()
            },
            &Actor::User {
                id: owner.id.clone(),
            },
        )
        .await
        .expect("done");
    let mut pages = Vec::new();
    let mut token = String::new();
    loop {
        let batch = store
            .list_work_items(
                &project.id,
                &WorkItemFilter::default(),
                &page(2, &token, "w"),
            )
            .await
            .expect("page");
        pages.extend(batch.items.into_iter().map(|item| item.key.0));
        if batch.next_page_token.is_empty() {
            break;
        }
        token = batch.next_page_token;
    }
    assert_eq!(pages, [1, 2, 3, 4, 5]);
    let done = store
        .list_work_items(
            &project.id,
            &WorkItemFilter {
                plan_id: None,
                status: Some(WorkItemStatus::Done),
            },
            &page(0, "", "w"),
        )
        .await
        .expect("filter");
    assert_eq!(done.items.len(), 1);
    assert_eq!(done.items[0].key, WorkItemKey(2));
    let stats = store.get_project(&project.id).await.expect("get").stats;
    assert_eq!((stats.work_items, stats.open_work_items), (5, 4));

    store
        .delete_work_item(&created[4].id)
        .await
        .expect("delete");
    let err = store
        .get_work_item(&created[4].id)
        .await
        .expect_err("deleted");
    assert_eq!(err.reason, reason::WORK_ITEM_NOT_FOUND);
    // Keys are never reused, even after a delete.
    let next = store
        .create_work_item(item(&project.id, "after delete"))
        .await
        .expect("create");
    assert_eq!(next.key, WorkItemKey(6));
}

/// Every description change is a revision; stale bases are refused; a
/// revert writes a new revision equal to the old one.
pub async fn description_revisions(store: &dyn Store) {
    let owner = store.create_user(new_user("writer")).await.expect("user");
    let author = Actor::User {
        id: owner.id.clone(),
    };
    let project = store
        .create_project("P", "", &owner.id)
        .await
        .expect("project");
    let created = store
        .create_work_item(item(&project.id, "doc"))
        .await
        .expect("create");
    let neighbour = store
        .create_work_item(item(&project.id, "neighbour"))
        .await
        .expect("create");

    let second = store
        .update_work_item(
            &created.id,
            edit(&created.description_revision_id, "two"),
            &author,
        )
        .await
        .expect("edit");
    assert_eq!(second.description, "two");
    assert_ne!(
        second.description_revision_id,
        created.description_revision_id
    );

    // An editor still on revision 1 loses, and changes nothing.
    let err = store
        .update_work_item(
            &created.id,
            edit(&created.description_revision_id, "lost"),
            &author,
        )
        .await
        .expect_err("stale");
    assert_eq!(
        (err.code, err.reason),
        (ErrorCode::Aborted, reason::STALE_REVISION)
    );
    assert_eq!(store.get_work_item(&created.id).await.expect("get"), second);

    let third = store
        .update_work_item(
            &created.id,
            edit(&second.description_revision_id, "three 🚀 '%'"),
            &author,
        )
        .await
        .expect("edit");
    // Saving an unchanged text adds no revision.
    let unchanged = store
        .update_work_item(
            &created.id,
            edit(&third.description_revision_id, "three 🚀 '%'"),
            &author,
        )
        .await
        .expect("no-op");
    assert_eq!(
        unchanged.description_revision_id,
        third.description_revision_id
    );

    let first_page = store
        .list_revisions(&created.id, &page(2, "", "r"))
        .await
        .expect("revisions");
    let rest = store
        .list_revisions(&created.id, &page(2, &first_page.next_page_token, "r"))
        .await
        .expect("revisions");
    let revisions: Vec<_> = first_page.items.into_iter().chain(rest.items).collect();
    let numbers: Vec<i64> = revisions.iter().map(|r| r.number).collect();
    assert_eq!(numbers, [1, 2, 3]);
    assert_eq!(revisions[0].cause, RevisionCause::Create);
    assert_eq!(revisions[1].cause, RevisionCause::Edit);
    assert_eq!(revisions[1].author, author);
    assert_eq!(revisions[2].text, "three 🚀 '%'");

    let reverted = store
        .revert_description(
            &created.id,
            &revisions[0].id,
            Some(&third.description_revision_id),
            &author,
        )
        .await
        .expect("revert");
    assert_eq!(reverted.description, "doc description");
    let latest = store
        .list_revisions(&created.id, &page(0, "", "r"))
        .await
        .expect("revisions")
        .items;
    assert_eq!(latest.len(), 4);
    assert_eq!(latest[3].cause, RevisionCause::Revert);
    assert_eq!(
        latest[3].reverted_from.as_deref(),
        Some(revisions[0].id.as_str())
    );

    let err = store
        .revert_description(
            &created.id,
            &revisions[0].id,
            Some(&third.description_revision_id),
            &author,
        )
        .await
        .expect_err("stale revert");
    assert_eq!(err.reason, reason::STALE_REVISION);
    let err = store
        .revert_description(&neighbour.id, &revisions[0].id, None, &author)
        .await
        .expect_err("other item's revision");
    assert_eq!(err.reason, reason::REVISION_NOT_FOUND);
    assert_eq!(
        store.get_work_item(&neighbour.id).await.expect("get"),
        neighbour
    );
}

/// Plans derive progress from their items per phase of their workflow.
pub async fn plans_derive_progress_from_phases(store: &dyn Store) {
    let owner = store.create_user(new_user("planner")).await.expect("user");
    let actor = Actor::User {
        id: owner.id.clone(),
    };
    let project = store
        .create_project("P", "", &owner.id)
        .await
        .expect("project");
    let plan = store
        .create_plan(NewPlan {
            project_id: project.id.clone(),
            title: "Release".into(),
            description: "the plan".into(),
            workflow_id: BUGFIX_WORKFLOW_ID.into(),
        })
        .await
        .expect("plan");
    assert_eq!(plan.progress.total, 0);
    let phase_ids: Vec<&str> = plan
        .progress
        .phases
        .iter()
        .map(|p| p.phase_id.as_str())
        .collect();
    assert_eq!(phase_ids, ["triage", "fix", "verify"]);

    let mut items = Vec::new();
    for n in 0..4 {
        let mut new = item(&project.id, &format!("bug {n}"));
        new.plan_id = Some(plan.id.clone());
        items.push(store.create_work_item(new).await.expect("create"));
    }
    assert_eq!(items[0].workflow_id, BUGFIX_WORKFLOW_ID);
    assert_eq!(items[0].phase_id, "triage");

    let moved = store
        .update_work_item(
            &items[0].id,
            WorkItemChanges {
                phase_id: Some("fix".into()),
                status: Some(WorkItemStatus::Done),
                ..Default::default()
            },
            &actor,
        )
        .await
        .expect("move");
    assert_eq!(moved.phase_changed_by, actor);
    assert!(moved.phase_changed_at >= items[0].phase_changed_at);
    let err = store
        .update_work_item(
            &items[1].id,
            WorkItemChanges {
                phase_id: Some("implementation".into()),
                ..Default::default()
            },
            &actor,
        )
        .await
        .expect_err("not a bugfix phase");
    assert_eq!(err.reason, reason::PHASE_NOT_IN_WORKFLOW);
    store
        .update_work_item(
            &items[2].id,
            WorkItemChanges {
                status: Some(WorkItemStatus::Cancelled),
                ..Default::default()
            },
            &actor,
        )
        .await
        .expect("cancel");

    let progress = store.get_plan(&plan.id).await.expect("plan").progress;
    assert_eq!((progress.total, progress.done), (3, 1));
    assert!((progress.share_done() - 1.0 / 3.0).abs() < 1e-9);
    let per_phase: Vec<(i64, i64)> = progress.phases.iter().map(|p| (p.total, p.done)).collect();
    assert_eq!(per_phase, [(2, 0), (1, 1), (0, 0)]);

    let in_plan = store
        .list_work_items(
            &project.id,
            &WorkItemFilter {
                plan_id: Some(plan.id.clone()),
                status: None,
            },
            &page(0, "", "w"),
        )
        .await
        .expect("list");
    assert_eq!(in_plan.items.len(), 4);

    let renamed = store
        .update_plan(
            &plan.id,
            PlanChanges {
                title: Some("Release 2".into()),
                ..Default::default()
            },
        )
        .await
        .expect("update");
    assert_eq!(renamed.title, "Release 2");
    assert_eq!(renamed.description, "the plan");

    // A plan of another project cannot take this project's items.
    let other = store
        .create_project("Q", "", &owner.id)
        .await
        .expect("project");
    let mut foreign = item(&other.id, "foreign");
    foreign.plan_id = Some(plan.id.clone());
    let err = store
        .create_work_item(foreign)
        .await
        .expect_err("foreign plan");
    assert_eq!(err.reason, reason::PLAN_NOT_FOUND);

    store.delete_plan(&plan.id).await.expect("delete");
    let detached = store.get_work_item(&items[0].id).await.expect("item stays");
    assert_eq!(detached.plan_id, None);
    let err = store.get_plan(&plan.id).await.expect_err("gone");
    assert_eq!(err.reason, reason::PLAN_NOT_FOUND);
}

/// Capabilities are replaced as a whole and read back verbatim.
pub async fn capabilities_are_replaced(store: &dyn Store) {
    let owner = store.create_user(new_user("caps")).await.expect("user");
    let project = store
        .create_project("P", "", &owner.id)
        .await
        .expect("project");
    let created = store
        .create_work_item(item(&project.id, "caps"))
        .await
        .expect("create");
    assert!(created.capabilities.is_empty());
    let capabilities = vec![
        Capability {
            id: anima_core::id::new_id(),
            kind: CapabilityKind::Secret {
                name: "ci token".into(),
                reference: "vault://kv-ci".into(),
                mount_as: "ci/token".into(),
            },
        },
        Capability {
            id: anima_core::id::new_id(),
            kind: CapabilityKind::Custom {
                type_name: "k8s.namespace".into(),
                attributes: [("name".to_string(), "staging".to_string())].into(),
            },
        },
    ];
    store
        .set_capabilities(&created.id, capabilities.clone())
        .await
        .expect("set");
    assert_eq!(
        store
            .get_work_item(&created.id)
            .await
            .expect("get")
            .capabilities,
        capabilities
    );
    store
        .set_capabilities(&created.id, vec![])
        .await
        .expect("clear");
    assert!(
        store
            .get_work_item(&created.id)
            .await
            .expect("get")
            .capabilities
            .is_empty()
    );
}

/// Built-in workflows are read-only; custom ones can be changed and
/// deleted only while nothing depends on what changes.
pub async fn workflows_builtin_and_custom(store: &dyn Store) {
    let listed = store
        .list_workflows(&page(0, "", "wf"))
        .await
        .expect("list");
    let names: Vec<&str> = listed.items.iter().map(|w| w.name.as_str()).collect();
    assert_eq!(names, ["Standard", "Bugfix"]);
    assert!(listed.items.iter().all(|w| w.builtin));
    assert_eq!(listed.items[0].phases, builtin_workflows()[0].phases);

    let err = store
        .update_workflow(
            STANDARD_WORKFLOW_ID,
            WorkflowChanges {
                name: Some("Mine".into()),
                ..Default::default()
            },
        )
        .await
        .expect_err("builtin");
    assert_eq!(err.reason, reason::WORKFLOW_BUILTIN);
    let err = store
        .delete_workflow(BUGFIX_WORKFLOW_ID)
        .await
        .expect_err("builtin");
    assert_eq!(err.reason, reason::WORKFLOW_BUILTIN);

    let phases = vec![
        Phase {
            id: "design".into(),
            name: "Design".into(),
            required_skills: vec![],
        },
        Phase {
            id: "build".into(),
            name: "Build".into(),
            required_skills: vec![],
        },
    ];
    let custom = store
        .create_workflow("Custom", "ours", phases.clone())
        .await
        .expect("create");
    assert!(!custom.builtin);
    let err = store
        .create_workflow("Standard", "", phases.clone())
        .await
        .expect_err("taken");
    assert_eq!(err.reason, reason::WORKFLOW_NAME_TAKEN);

    let owner = store.create_user(new_user("wf")).await.expect("user");
    let project = store
        .create_project("P", "", &owner.id)
        .await
        .expect("project");
    let mut new = item(&project.id, "custom");
    new.workflow_id = Some(custom.id.clone());
    let used = store.create_work_item(new).await.expect("create");
    assert_eq!(used.phase_id, "design");

    let err = store.delete_workflow(&custom.id).await.expect_err("in use");
    assert_eq!(err.reason, reason::WORKFLOW_IN_USE);
    let err = store
        .update_workflow(
            &custom.id,
            WorkflowChanges {
                phases: Some(phases[1..].to_vec()),
                ..Default::default()
            },
        )
        .await
        .expect_err("phase in use");
    assert_eq!(err.reason, reason::WORKFLOW_IN_USE);
    let renamed = store
        .update_workflow(
            &custom.id,
            WorkflowChanges {
                name: Some("Custom 2".into()),
                phases: Some(phases[..1].to_vec()),
                ..Default::default()
            },
        )
        .await
        .expect("dropping an unused phase");
    assert_eq!(renamed.phases.len(), 1);

    store.delete_work_item(&used.id).await.expect("delete");
    store.delete_workflow(&custom.id).await.expect("now unused");
    let err = store.get_workflow(&custom.id).await.expect_err("gone");
    assert_eq!(err.reason, reason::WORKFLOW_NOT_FOUND);
}

/// Akhs are created, renamed, listed and deleted; names are unique.
pub async fn akhs_round_trip(store: &dyn Store) {
    let akh = store
        .create_akh("Thoth", "precise, dry", "#112233")
        .await
        .expect("create");
    let err = store
        .create_akh("Thoth", "", "#000000")
        .await
        .expect_err("taken");
    assert_eq!(err.reason, reason::AKH_NAME_TAKEN);
    let second = store
        .create_akh("Seshat", "", "#445566")
        .await
        .expect("create");
    let changed = store
        .update_akh(
            &akh.id,
            AkhChanges {
                avatar_color: Some("#abcdef".into()),
                ..Default::default()
            },
        )
        .await
        .expect("update");
    assert_eq!(
        (changed.name.as_str(), changed.avatar_color.as_str()),
        ("Thoth", "#abcdef")
    );
    let listed = store.list_akhs(&page(0, "", "a")).await.expect("list");
    assert_eq!(listed.items, vec![changed, second]);
    store.delete_akh(&akh.id).await.expect("delete");
    let err = store.get_akh(&akh.id).await.expect_err("gone");
    assert_eq!(err.reason, reason::AKH_NOT_FOUND);
}

/// Concurrent creators in one project get consecutive keys: no gap, no clash.
pub async fn concurrent_keys_have_no_gaps(store: Arc<dyn Store>) {
    let owner = store.create_user(new_user("racer")).await.expect("user");
    let project = store
        .create_project("P", "", &owner.id)
        .await
        .expect("project");
    let mut tasks = Vec::new();
    for writer in 0..8 {
        let store = store.clone();
        let project_id = project.id.clone();
        tasks.push(tokio::spawn(async move {
            let mut keys = Vec::new();
            for n in 0..25 {
                let created = store
                    .create_work_item(item(&project_id, &format!("{writer}-{n}")))
                    .await
                    .expect("create");
                keys.push(created.key.0);
            }
            keys
        }));
    }
    let mut keys = Vec::new();
    for task in tasks {
        keys.extend(task.await.expect("join"));
    }
    keys.sort_unstable();
    assert_eq!(keys, (1..=200).collect::<Vec<i64>>());
}
