//! The planning services over real gRPC, on both backends: the round trip,
//! every bad input of the planning issue (a clear error, nothing changed),
//! and concurrent writers.

use crate::common::{Backend, TestServer, authed, failure};
use anima_client::Services;
use anima_core::workflow::{BUGFIX_WORKFLOW_ID, STANDARD_WORKFLOW_ID};
use anima_proto::v1::{self as pb, work_item_service_client::WorkItemServiceClient};
use prost_types::FieldMask;
use tonic::{Code, transport::Channel};
use tonic_types::StatusExt;

on_both_backends!(
    plan_and_work_item_round_trip,
    bad_input_is_refused_and_changes_nothing,
    eight_clients_create_four_thousand_items_without_gaps,
    two_editors_from_one_base_one_wins,
);

fn mask(paths: &[&str]) -> Option<FieldMask> {
    Some(FieldMask {
        paths: paths.iter().map(|path| path.to_string()).collect(),
    })
}

/// A logged-in owner of a fresh project.
async fn owner_with_project(server: &TestServer) -> (String, pb::Project) {
    server.user("owner", false).await;
    let token = server.login("owner").await;
    let project = server
        .projects()
        .create_project(authed(
            &token,
            pb::CreateProjectRequest {
                name: "Anima".into(),
                description: "the product".into(),
            },
        ))
        .await
        .expect("project")
        .into_inner();
    (token, project)
}

async fn create_item(
    client: &mut WorkItemServiceClient<Channel>,
    token: &str,
    project_id: &str,
    title: &str,
) -> pb::WorkItem {
    client
        .create_work_item(authed(
            token,
            pb::CreateWorkItemRequest {
                project_id: project_id.into(),
                title: title.into(),
                description: format!("{title}: first"),
                ..Default::default()
            },
        ))
        .await
        .expect("create work item")
        .into_inner()
}

fn edit(item: &pb::WorkItem, text: &str, base: &str) -> pb::UpdateWorkItemRequest {
    pb::UpdateWorkItemRequest {
        work_item: Some(pb::WorkItem {
            id: item.id.clone(),
            description: text.into(),
            ..Default::default()
        }),
        update_mask: mask(&["description"]),
        base_revision_id: base.into(),
    }
}

async fn plan_and_work_item_round_trip(backend: Backend) {
    let server = TestServer::start_with(
        backend,
        anima_server::ServerConfig {
            network_zones: [(
                "staging".to_owned(),
                anima_server::zones::ZoneConfig {
                    allow: vec!["db.staging.internal:5432".into()],
                    ..Default::default()
                },
            )]
            .into(),
            ..Default::default()
        },
    )
    .await;
    let (token, project) = owner_with_project(&server).await;
    let mut plans = server.plans();
    let mut items = server.work_items();

    let plan = plans
        .create_plan(authed(
            &token,
            pb::CreatePlanRequest {
                project_id: project.id.clone(),
                title: "Fix the login".into(),
                description: String::new(),
                workflow_id: BUGFIX_WORKFLOW_ID.into(),
            },
        ))
        .await
        .expect("plan")
        .into_inner();
    let item = items
        .create_work_item(authed(
            &token,
            pb::CreateWorkItemRequest {
                project_id: project.id.clone(),
                plan_id: plan.id.clone(),
                title: "Reproduce".into(),
                description: "v1".into(),
                priority: pb::Priority::High as i32,
                workflow_id: String::new(),
            },
        ))
        .await
        .expect("item")
        .into_inner();
    assert_eq!(item.key, "WI-1");
    assert_eq!(item.workflow_id, BUGFIX_WORKFLOW_ID);
    assert_eq!(item.phase_id, "triage");
    assert_eq!(item.priority, pb::Priority::High as i32);

    let v2 = items
        .update_work_item(authed(
            &token,
            edit(&item, "v2", &item.description_revision_id),
        ))
        .await
        .expect("edit")
        .into_inner();
    let moved = items
        .update_work_item(authed(
            &token,
            pb::UpdateWorkItemRequest {
                work_item: Some(pb::WorkItem {
                    id: item.id.clone(),
                    phase_id: "fix".into(),
                    status: pb::WorkItemStatus::Done as i32,
                    ..Default::default()
                }),
                update_mask: mask(&["phase_id", "status"]),
                base_revision_id: String::new(),
            },
        ))
        .await
        .expect("move")
        .into_inner();
    assert_eq!(moved.description, "v2");
    assert_eq!(moved.phase_id, "fix");
    assert!(matches!(
        moved.phase_changed_by.and_then(|actor| actor.kind),
        Some(pb::actor::Kind::UserId(_))
    ));

    let progress = plans
        .get_plan(authed(
            &token,
            pb::GetPlanRequest {
                id: plan.id.clone(),
            },
        ))
        .await
        .expect("plan")
        .into_inner()
        .progress
        .expect("progress");
    assert_eq!((progress.total, progress.done), (1, 1));
    assert!((progress.share_done - 1.0).abs() < 1e-9);
    assert_eq!(progress.phases[1].phase_id, "fix");
    assert_eq!(progress.phases[1].done, 1);

    let revisions = items
        .get_description_revisions(authed(
            &token,
            pb::GetDescriptionRevisionsRequest {
                work_item_id: item.id.clone(),
                ..Default::default()
            },
        ))
        .await
        .expect("revisions")
        .into_inner()
        .revisions;
    assert_eq!(revisions.len(), 2);
    let reverted = items
        .revert_description(authed(
            &token,
            pb::RevertDescriptionRequest {
                work_item_id: item.id.clone(),
                revision_id: revisions[0].id.clone(),
                base_revision_id: v2.description_revision_id.clone(),
            },
        ))
        .await
        .expect("revert")
        .into_inner();
    assert_eq!(reverted.description, "v1");

    let by_key = items
        .get_work_item(authed(
            &token,
            pb::GetWorkItemRequest {
                id: String::new(),
                project_id: project.id.clone(),
                key: "wi-1".into(),
            },
        ))
        .await
        .expect("by key")
        .into_inner();
    assert_eq!(by_key.id, item.id);

    let grant_zone = |name: &str, host: &str| {
        authed(
            &token,
            pb::UpdateCapabilitiesRequest {
                work_item_id: item.id.clone(),
                capabilities: vec![pb::Capability {
                    id: String::new(),
                    kind: Some(pb::capability::Kind::NetworkZone(pb::NetworkZone {
                        name: name.into(),
                        hosts: vec![host.into()],
                    })),
                }],
            },
        )
    };
    let capabilities = items
        .update_capabilities(grant_zone("staging", "db.staging.internal:5432"))
        .await
        .expect("capabilities")
        .into_inner()
        .capabilities;
    assert_eq!(capabilities.len(), 1);
    assert!(!capabilities[0].id.is_empty());
    // A zone the server does not define is refused; what the zone allows
    // comes from its definition, not the client.
    let refused = items
        .update_capabilities(grant_zone("everything", "*.com:*"))
        .await
        .expect_err("undefined zone");
    assert_eq!(
        refused
            .get_details_error_info()
            .map(|info| info.reason)
            .as_deref(),
        Some("NETWORK_ZONE_UNKNOWN")
    );
    let listed = items
        .list_capabilities(authed(
            &token,
            pb::ListCapabilitiesRequest {
                work_item_id: item.id.clone(),
            },
        ))
        .await
        .expect("list")
        .into_inner()
        .capabilities;
    assert_eq!(listed, capabilities);

    let fetched = server
        .projects()
        .get_project(authed(
            &token,
            pb::GetProjectRequest {
                id: project.id.clone(),
            },
        ))
        .await
        .expect("project")
        .into_inner();
    let stats = fetched.stats.expect("stats");
    assert_eq!(
        (stats.plans, stats.work_items, stats.open_work_items),
        (1, 1, 0)
    );
}

/// Runs a call that must fail, checks its code and reason, and that no
/// event was written (every change writes one, so nothing changed).
macro_rules! refused {
    ($server:expr, $call:expr, $code:expr, $reason:expr) => {{
        let before = $server.last_event_id().await;
        let outcome = failure($call.await);
        assert_eq!(
            outcome,
            ($code, $reason.to_string()),
            "{}",
            stringify!($call)
        );
        assert_eq!(
            $server.last_event_id().await,
            before,
            "{} changed something",
            stringify!($call)
        );
    }};
}

async fn bad_input_is_refused_and_changes_nothing(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (token, project) = owner_with_project(&server).await;
    let mut items = server.work_items();
    let mut plans = server.plans();
    let mut workflows = server.workflows();
    let item = create_item(&mut items, &token, &project.id, "target").await;
    let neighbour = create_item(&mut items, &token, &project.id, "neighbour").await;
    let other_project = server
        .projects()
        .create_project(authed(
            &token,
            pb::CreateProjectRequest {
                name: "Other".into(),
                description: String::new(),
            },
        ))
        .await
        .expect("project")
        .into_inner();
    let create = |title: &str, project_id: &str| pb::CreateWorkItemRequest {
        project_id: project_id.into(),
        title: title.into(),
        ..Default::default()
    };

    // Titles: empty, blank, over-long.
    for (title, reason) in [
        ("", "FIELD_REQUIRED"),
        ("   ", "FIELD_REQUIRED"),
        (&"x".repeat(201) as &str, "FIELD_TOO_LONG"),
    ] {
        refused!(
            server,
            items.create_work_item(authed(&token, create(title, &project.id))),
            Code::InvalidArgument,
            reason
        );
        refused!(
            server,
            plans.create_plan(authed(
                &token,
                pb::CreatePlanRequest {
                    project_id: project.id.clone(),
                    title: title.into(),
                    ..Default::default()
                }
            )),
            Code::InvalidArgument,
            reason
        );
    }

    // Ids and keys: malformed, unknown, from another project.
    refused!(
        server,
        items.get_work_item(authed(
            &token,
            pb::GetWorkItemRequest {
                id: "not-an-id".into(),
                ..Default::default()
            }
        )),
        Code::InvalidArgument,
        "INVALID_ID"
    );
    refused!(
        server,
        items.get_work_item(authed(
            &token,
            pb::GetWorkItemRequest {
                id: "00000000-0000-7000-8000-00000000dead".into(),
                ..Default::default()
            }
        )),
        Code::NotFound,
        "WORK_ITEM_NOT_FOUND"
    );
    for key in ["WI-", "WI-0", "BUG-1", "WI-1x"] {
        refused!(
            server,
            items.get_work_item(authed(
                &token,
                pb::GetWorkItemRequest {
                    project_id: project.id.clone(),
                    key: key.into(),
                    ..Default::default()
                }
            )),
            Code::InvalidArgument,
            "INVALID_KEY"
        );
    }
    refused!(
        server,
        items.get_work_item(authed(
            &token,
            pb::GetWorkItemRequest {
                project_id: other_project.id.clone(),
                key: "WI-2".into(),
                ..Default::default()
            }
        )),
        Code::NotFound,
        "WORK_ITEM_NOT_FOUND"
    );
    refused!(
        server,
        items.create_work_item(authed(
            &token,
            pb::CreateWorkItemRequest {
                plan_id: "00000000-0000-7000-8000-00000000dead".into(),
                ..create("t", &project.id)
            }
        )),
        Code::NotFound,
        "PLAN_NOT_FOUND"
    );

    // Revert to a revision of another work item.
    refused!(
        server,
        items.revert_description(authed(
            &token,
            pb::RevertDescriptionRequest {
                work_item_id: item.id.clone(),
                revision_id: neighbour.description_revision_id.clone(),
                base_revision_id: String::new(),
            }
        )),
        Code::NotFound,
        "REVISION_NOT_FOUND"
    );

    // A phase the workflow does not have.
    refused!(
        server,
        items.update_work_item(authed(
            &token,
            pb::UpdateWorkItemRequest {
                work_item: Some(pb::WorkItem {
                    id: item.id.clone(),
                    phase_id: "verify".into(),
                    ..Default::default()
                }),
                update_mask: mask(&["phase_id"]),
                base_revision_id: String::new(),
            }
        )),
        Code::InvalidArgument,
        "PHASE_NOT_IN_WORKFLOW"
    );

    // Stale base revision, and a description change without any base.
    let edited = items
        .update_work_item(authed(
            &token,
            edit(&item, "second", &item.description_revision_id),
        ))
        .await
        .expect("edit")
        .into_inner();
    refused!(
        server,
        items.update_work_item(authed(
            &token,
            edit(&item, "lost", &item.description_revision_id)
        )),
        Code::Aborted,
        "STALE_REVISION"
    );
    refused!(
        server,
        items.update_work_item(authed(&token, edit(&item, "no base", ""))),
        Code::InvalidArgument,
        "FIELD_REQUIRED"
    );
    refused!(
        server,
        items.update_work_item(authed(
            &token,
            pb::UpdateWorkItemRequest {
                update_mask: mask(&["key"]),
                ..edit(&item, "x", &edited.description_revision_id)
            }
        )),
        Code::InvalidArgument,
        "INVALID_UPDATE_MASK"
    );
    let unchanged = items
        .get_work_item(authed(
            &token,
            pb::GetWorkItemRequest {
                id: item.id.clone(),
                ..Default::default()
            },
        ))
        .await
        .expect("get")
        .into_inner();
    assert_eq!(unchanged, edited);

    // Capabilities that a sandbox could misread.
    refused!(
        server,
        items.update_capabilities(authed(
            &token,
            pb::UpdateCapabilitiesRequest {
                work_item_id: item.id.clone(),
                capabilities: vec![pb::Capability {
                    id: String::new(),
                    kind: Some(pb::capability::Kind::Secret(pb::SecretRef {
                        name: "token".into(),
                        reference: "hunter2".into(),
                        mount_as: "token".into(),
                    })),
                }],
            }
        )),
        Code::InvalidArgument,
        "INVALID_CAPABILITY"
    );

    // Workflows: built-ins are read-only; one in use cannot be deleted.
    server.user("root", true).await;
    let admin = server.login("root").await;
    refused!(
        server,
        workflows.update_workflow(authed(
            &admin,
            pb::UpdateWorkflowRequest {
                workflow: Some(pb::Workflow {
                    id: STANDARD_WORKFLOW_ID.into(),
                    name: "Mine".into(),
                    ..Default::default()
                }),
                update_mask: mask(&["name"]),
            }
        )),
        Code::FailedPrecondition,
        "WORKFLOW_BUILTIN"
    );
    let copy = workflows
        .create_workflow(authed(
            &admin,
            pb::CreateWorkflowRequest {
                name: "Standard copy".into(),
                copy_from_id: STANDARD_WORKFLOW_ID.into(),
                ..Default::default()
            },
        ))
        .await
        .expect("copy")
        .into_inner();
    assert_eq!(copy.phases.len(), 3);
    assert!(!copy.builtin);
    items
        .create_work_item(authed(
            &token,
            pb::CreateWorkItemRequest {
                workflow_id: copy.id.clone(),
                ..create("uses the copy", &project.id)
            },
        ))
        .await
        .expect("item on the copy");
    refused!(
        server,
        workflows.delete_workflow(authed(
            &admin,
            pb::DeleteWorkflowRequest {
                id: copy.id.clone()
            }
        )),
        Code::FailedPrecondition,
        "WORKFLOW_IN_USE"
    );
    refused!(
        server,
        workflows.create_workflow(authed(
            &admin,
            pb::CreateWorkflowRequest {
                name: "No phases".into(),
                ..Default::default()
            }
        )),
        Code::InvalidArgument,
        "INVALID_FIELD"
    );
    refused!(
        server,
        server.akhs().create_akh(authed(
            &admin,
            pb::CreateAkhRequest {
                name: "Thoth".into(),
                description: String::new(),
                avatar_color: "red".into(),
            }
        )),
        Code::InvalidArgument,
        "INVALID_FIELD"
    );

    // The last Owner stays.
    let me = server
        .auth()
        .who_am_i(authed(&token, pb::WhoAmIRequest {}))
        .await
        .expect("me")
        .into_inner()
        .user
        .expect("user");
    refused!(
        server,
        server.projects().remove_project_member(authed(
            &token,
            pb::RemoveProjectMemberRequest {
                project_id: project.id.clone(),
                user_id: me.id.clone(),
            }
        )),
        Code::FailedPrecondition,
        "LAST_OWNER"
    );

    // Archived: every write is refused, reads still work.
    server
        .projects()
        .archive_project(authed(
            &token,
            pb::ArchiveProjectRequest {
                id: project.id.clone(),
            },
        ))
        .await
        .expect("archive");
    refused!(
        server,
        items.create_work_item(authed(&token, create("late", &project.id))),
        Code::FailedPrecondition,
        "PROJECT_ARCHIVED"
    );
    refused!(
        server,
        items.update_work_item(authed(
            &token,
            edit(&item, "late", &edited.description_revision_id)
        )),
        Code::FailedPrecondition,
        "PROJECT_ARCHIVED"
    );
    refused!(
        server,
        server.projects().update_project(authed(
            &token,
            pb::UpdateProjectRequest {
                project: Some(pb::Project {
                    id: project.id.clone(),
                    name: "Renamed".into(),
                    ..Default::default()
                }),
                update_mask: mask(&["name"]),
            }
        )),
        Code::FailedPrecondition,
        "PROJECT_ARCHIVED"
    );
    refused!(
        server,
        plans.create_plan(authed(
            &token,
            pb::CreatePlanRequest {
                project_id: project.id.clone(),
                title: "late".into(),
                ..Default::default()
            }
        )),
        Code::FailedPrecondition,
        "PROJECT_ARCHIVED"
    );
    let listed = items
        .list_work_items(authed(
            &token,
            pb::ListWorkItemsRequest {
                project_id: project.id.clone(),
                ..Default::default()
            },
        ))
        .await
        .expect("reads still work")
        .into_inner();
    assert_eq!(listed.work_items.len(), 3);
}

const CLIENTS: usize = 8;
const ITEMS_PER_CLIENT: usize = 500;

async fn eight_clients_create_four_thousand_items_without_gaps(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (token, project) = owner_with_project(&server).await;
    let mut writers = Vec::new();
    for writer in 0..CLIENTS {
        // One connection per client, as separate processes would have.
        let channel = Channel::from_shared(format!("http://{}", server.addr))
            .expect("url")
            .connect()
            .await
            .expect("connect");
        let token = token.clone();
        let project_id = project.id.clone();
        writers.push(tokio::spawn(async move {
            let mut client = WorkItemServiceClient::new(channel);
            let mut keys = Vec::with_capacity(ITEMS_PER_CLIENT);
            for n in 0..ITEMS_PER_CLIENT {
                let item =
                    create_item(&mut client, &token, &project_id, &format!("{writer}/{n}")).await;
                keys.push(item.key);
            }
            keys
        }));
    }
    let mut numbers = Vec::with_capacity(CLIENTS * ITEMS_PER_CLIENT);
    for writer in writers {
        for key in writer.await.expect("writer") {
            let number: usize = key
                .strip_prefix("WI-")
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("bad key {key}"));
            numbers.push(number);
        }
    }
    numbers.sort_unstable();
    let expected: Vec<usize> = (1..=CLIENTS * ITEMS_PER_CLIENT).collect();
    assert_eq!(
        numbers, expected,
        "keys WI-1..WI-4000, no gap, no duplicate"
    );
}

async fn two_editors_from_one_base_one_wins(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (token, project) = owner_with_project(&server).await;
    let mut items = server.work_items();
    let item = create_item(&mut items, &token, &project.id, "contested").await;
    let base = item.description_revision_id.clone();
    let mut first = server.work_items();
    let mut second = server.work_items();
    let (a, b) = tokio::join!(
        first.update_work_item(authed(&token, edit(&item, "from A", &base))),
        second.update_work_item(authed(&token, edit(&item, "from B", &base))),
    );
    let (winner, loser) = match (a, b) {
        (Ok(winner), Err(loser)) | (Err(loser), Ok(winner)) => (winner.into_inner(), loser),
        (a, b) => panic!("exactly one edit must win: {a:?} / {b:?}"),
    };
    assert_eq!(loser.code(), Code::Aborted);
    assert_eq!(
        failure::<()>(Err(loser)),
        (Code::Aborted, "STALE_REVISION".into())
    );
    let stored = items
        .get_work_item(authed(
            &token,
            pb::GetWorkItemRequest {
                id: item.id.clone(),
                ..Default::default()
            },
        ))
        .await
        .expect("get")
        .into_inner();
    assert_eq!(stored.description, winner.description);
    let revisions = items
        .get_description_revisions(authed(
            &token,
            pb::GetDescriptionRevisionsRequest {
                work_item_id: item.id.clone(),
                ..Default::default()
            },
        ))
        .await
        .expect("revisions")
        .into_inner()
        .revisions;
    assert_eq!(revisions.len(), 2, "the loser wrote no revision");
}
