//! Conformance cases of threads, decisions and the event signal.

use anima_core::{
    ErrorCode,
    error::reason,
    paging::PageRequest,
    planning::{Actor, NewWorkItem, Priority, WorkItem, WorkItemStatus},
    thread::{
        DecisionState, DeliveryState, EmailHeaders, Message, MessageKind, NewDecision, NewMessage,
    },
};

use super::new_user;
use crate::{DecisionFilter, Store, ThreadPage};

async fn work_item(store: &dyn Store, owner: &str) -> WorkItem {
    let project = store.create_project("P", "", owner).await.expect("project");
    store
        .create_work_item(NewWorkItem {
            project_id: project.id,
            plan_id: None,
            title: "threaded".into(),
            description: String::new(),
            priority: Priority::Medium,
            workflow_id: None,
            author: Actor::User { id: owner.into() },
        })
        .await
        .expect("item")
}

fn human(item: &WorkItem, author: &str, body: &str) -> NewMessage {
    NewMessage {
        work_item_id: item.id.clone(),
        kind: MessageKind::Human,
        author: Actor::User { id: author.into() },
        body: body.into(),
        email: None,
        attachments: Vec::new(),
        idempotency_key: None,
    }
}

/// Messages get consecutive sequences, read both ways; inbound mail is
/// idempotent; outbound mail is queued; each post is one event carrying it.
pub async fn thread_messages_and_mail_queue(store: &dyn Store) {
    let owner = store.create_user(new_user("poster")).await.expect("user");
    let item = work_item(store, &owner.id).await;
    crate::testing::settle_events(store).await;
    let start = store.last_event().await.expect("last");
    let mut posted = Vec::new();
    for n in 1..=5 {
        posted.push(
            store
                .post_message(human(&item, &owner.id, &format!("message {n}")))
                .await
                .expect("post"),
        );
    }
    let sequences: Vec<i64> = posted.iter().map(|m| m.sequence).collect();
    assert_eq!(sequences, [1, 2, 3, 4, 5]);

    let forward = store
        .list_messages(&item.id, ThreadPage::After(2), 2)
        .await
        .expect("forward");
    assert_eq!(forward, posted[2..4]);
    let backward = store
        .list_messages(&item.id, ThreadPage::Before(i64::MAX), 2)
        .await
        .expect("backward");
    assert_eq!(backward, [posted[4].clone(), posted[3].clone()]);

    crate::testing::settle_events(store).await;
    let events = store.events_after(start, 100).await.expect("events");
    assert_eq!(events.len(), 5);
    assert!(
        events
            .iter()
            .all(|e| e.kind == anima_core::event::EventKind::MessagePosted
                && e.work_item_id.as_deref() == Some(item.id.as_str()))
    );
    let carried: Message = serde_json::from_str(&events[0].payload).expect("payload");
    let by_item = store
        .work_item_events_after(&item.id, start, 100)
        .await
        .expect("item events");
    assert_eq!(by_item, events);
    assert!(
        store
            .work_item_events_after(&item.id, events[4].position(), 100)
            .await
            .expect("item events")
            .is_empty()
    );
    assert_eq!(carried, posted[0]);

    let inbound = NewMessage {
        kind: MessageKind::InboundEmail,
        author: Actor::Email {
            address: "ann@example.org".into(),
        },
        email: Some(EmailHeaders {
            from: "ann@example.org".into(),
            message_id: "abc@example.org".into(),
            subject: "Re: the docs".into(),
            ..Default::default()
        }),
        idempotency_key: Some("inbox/abc@example.org".into()),
        ..human(&item, &owner.id, "from mail")
    };
    let first = store.post_message(inbound.clone()).await.expect("inbound");
    let again = store.post_message(inbound).await.expect("redelivered");
    assert_eq!(first, again);
    assert_eq!(
        first.email.as_ref().map(|e| e.subject.as_str()),
        Some("Re: the docs")
    );

    let outbound = store
        .post_message(NewMessage {
            kind: MessageKind::OutboundEmail,
            email: Some(EmailHeaders {
                to: vec!["ann@example.org".into()],
                subject: "Status".into(),
                ..Default::default()
            }),
            ..human(&item, &owner.id, "all done")
        })
        .await
        .expect("outbound");
    assert_eq!(outbound.delivery_state, Some(DeliveryState::Queued));
    let queue = store.queued_outbound_mail(10).await.expect("queue");
    assert_eq!(queue, vec![outbound.clone()]);
    assert_eq!(
        store.get_message(&outbound.id).await.expect("get"),
        outbound
    );

    let err = store
        .get_message("00000000-0000-7000-8000-00000000dead")
        .await
        .expect_err("missing");
    assert_eq!(err.reason, reason::MESSAGE_NOT_FOUND);
    let err = store
        .post_message(NewMessage {
            work_item_id: "00000000-0000-7000-8000-00000000dead".into(),
            ..human(&item, &owner.id, "lost")
        })
        .await
        .expect_err("no such item");
    assert_eq!(err.reason, reason::WORK_ITEM_NOT_FOUND);

    store
        .archive_project(&item.project_id)
        .await
        .expect("archive");
    let err = store
        .post_message(human(&item, &owner.id, "late"))
        .await
        .expect_err("archived");
    assert_eq!(err.reason, reason::PROJECT_ARCHIVED);
}

/// Decisions are asked, listed, answered once (into the thread) or withdrawn.
pub async fn decisions_are_answered_once(store: &dyn Store) {
    let owner = store.create_user(new_user("decider")).await.expect("user");
    let outsider = store.create_user(new_user("outsider")).await.expect("user");
    let item = work_item(store, &owner.id).await;
    let ask = |question: &str, choices: Vec<String>| NewDecision {
        work_item_id: item.id.clone(),
        question: question.into(),
        input_label: "Answer".into(),
        choices,
        asked_by: Actor::Service {
            name: "anima-agent".into(),
        },
        assignee_user_id: Some(owner.id.clone()),
    };
    let first = store
        .request_decision(ask("Ship it?", vec!["yes".into(), "no".into()]))
        .await
        .expect("ask");
    let second = store
        .request_decision(ask("Which date?", vec![]))
        .await
        .expect("ask");
    assert_eq!(first.state, DecisionState::Open);

    let page = PageRequest::parse(0, "", "d").expect("page");
    let mine = store
        .list_decisions(
            &DecisionFilter {
                reader: Some(owner.id.clone()),
                state: Some(DecisionState::Open),
                ..Default::default()
            },
            &page,
        )
        .await
        .expect("list");
    assert_eq!(mine.items, vec![first.clone(), second.clone()]);
    let theirs = store
        .list_decisions(
            &DecisionFilter {
                reader: Some(outsider.id.clone()),
                ..Default::default()
            },
            &page,
        )
        .await
        .expect("list");
    assert!(theirs.items.is_empty());

    let err = store
        .resolve_decision(&first.id, "maybe", &owner.id)
        .await
        .expect_err("not a choice");
    assert_eq!(err.reason, reason::ANSWER_NOT_A_CHOICE);
    let resolved = store
        .resolve_decision(&first.id, "yes", &owner.id)
        .await
        .expect("resolve");
    assert_eq!(resolved.state, DecisionState::Resolved);
    assert_eq!(resolved.answered_by.as_deref(), Some(owner.id.as_str()));
    let err = store
        .resolve_decision(&first.id, "no", &owner.id)
        .await
        .expect_err("twice");
    assert_eq!(
        (err.code, err.reason),
        (ErrorCode::FailedPrecondition, reason::DECISION_NOT_OPEN)
    );
    let thread = store
        .list_messages(&item.id, ThreadPage::After(0), 10)
        .await
        .expect("thread");
    assert_eq!(thread.len(), 1);
    assert_eq!(thread[0].kind, MessageKind::System);
    assert!(thread[0].body.contains("yes"), "{}", thread[0].body);

    let cancelled = store
        .cancel_decision(
            &second.id,
            "no longer needed",
            &Actor::User {
                id: owner.id.clone(),
            },
        )
        .await
        .expect("cancel");
    assert_eq!(cancelled.state, DecisionState::Cancelled);
    let open = store
        .list_decisions(
            &DecisionFilter {
                project_id: Some(item.project_id.clone()),
                state: Some(DecisionState::Open),
                ..Default::default()
            },
            &page,
        )
        .await
        .expect("list");
    assert!(open.items.is_empty());
}

/// The commit signal changes after writes; counts and recent activity
/// follow the content of readable projects.
pub async fn commits_signal_and_dashboard_reads(store: &dyn Store) {
    let owner = store.create_user(new_user("watcher")).await.expect("user");
    let mut commits = store.commits();
    commits.borrow_and_update();
    let item = work_item(store, &owner.id).await;
    assert!(commits.has_changed().expect("sender alive"));

    store
        .update_work_item(
            &item.id,
            anima_core::planning::WorkItemChanges {
                status: Some(WorkItemStatus::Done),
                ..Default::default()
            },
            &Actor::User {
                id: owner.id.clone(),
            },
        )
        .await
        .expect("done");
    let counts = store
        .work_item_counts(&item.project_id)
        .await
        .expect("counts");
    assert_eq!(counts.len(), 1);
    assert_eq!(counts[0].status, WorkItemStatus::Done);
    assert_eq!(counts[0].count, 1);

    // Recent events are those streams may deliver: wait until every
    // committed one is (other tests share the PostgreSQL horizon).
    crate::testing::settle_events(store).await;
    let recent = store.recent_events(&owner.id, 10).await.expect("recent");
    let kinds: Vec<&str> = recent.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["work_item.updated", "work_item.created", "project.created"]
    );
    let stranger = store.create_user(new_user("stranger")).await.expect("user");
    assert!(
        store
            .recent_events(&stranger.id, 10)
            .await
            .expect("recent")
            .is_empty()
    );
}
