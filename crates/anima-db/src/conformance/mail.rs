//! Conformance cases of mailboxes and inbound mail.

use anima_core::{
    ErrorCode,
    error::reason,
    mail::{
        InboundState, MailContent, MailboxChanges, MailboxState, NewInbound, NewMailbox,
        ScreeningRules, Suggestion,
    },
    paging::PageRequest,
    planning::{Actor, NewWorkItem, Priority, WorkItem},
    thread::{EmailHeaders, MessageKind, NewMessage},
};

use super::new_user;
use crate::{InboundFilter, MailboxFilter, Store, ThreadPage};

const MISSING: &str = "00000000-0000-7000-8000-00000000dead";

fn page() -> PageRequest {
    PageRequest::parse(50, "", "mail").expect("page")
}

pub(super) fn inbound(mailbox_id: &str, message_id: &str, state: InboundState) -> NewInbound {
    NewInbound {
        mailbox_id: mailbox_id.into(),
        message_id: message_id.into(),
        state,
        reason: String::new(),
        work_item_id: None,
        content: content(message_id, "ann@example.org"),
        suggestion: None,
        files: Vec::new(),
    }
}

fn content(message_id: &str, from: &str) -> MailContent {
    MailContent {
        email: EmailHeaders {
            from: from.into(),
            to: vec!["support@shop.example".into()],
            subject: "Export crashed".into(),
            message_id: message_id.into(),
            ..EmailHeaders::default()
        },
        body: "It crashed again.".into(),
        attachments: Vec::new(),
    }
}

pub(super) fn new_mailbox(address: &str, projects: Vec<String>) -> NewMailbox {
    NewMailbox {
        address: address.into(),
        display_name: "Support".into(),
        project_ids: projects,
        rules: ScreeningRules {
            deny: vec!["spam.example".into()],
            allow: Vec::new(),
            trusted_authserv_id: "mx.shop.example".into(),
        },
        max_size: 1_000_000,
        adopted: false,
        import_history: false,
    }
}

pub(super) async fn work_item(store: &dyn Store, project_id: &str, owner: &str) -> WorkItem {
    store
        .create_work_item(NewWorkItem {
            project_id: project_id.into(),
            plan_id: None,
            title: "mail target".into(),
            description: String::new(),
            priority: Priority::Medium,
            workflow_id: None,
            author: Actor::User { id: owner.into() },
        })
        .await
        .expect("item")
}

/// Mailboxes are created whole or not at all, keep their JMAP state, and
/// record each mail once per Message-ID.
pub async fn mailboxes_and_inbound_mail_once(store: &dyn Store) {
    let owner = store
        .create_user(new_user("postmaster"))
        .await
        .expect("user");
    let project = store
        .create_project("Mail", "", &owner.id)
        .await
        .expect("project");
    let mailbox = store
        .create_mailbox(new_mailbox(
            "Support@Shop.Example",
            vec![project.id.clone()],
        ))
        .await
        .expect("mailbox");
    assert_eq!(mailbox.address, "support@shop.example");
    assert_eq!(mailbox.project_ids, std::slice::from_ref(&project.id));
    assert_eq!(mailbox.rules.deny, ["spam.example"]);
    assert_eq!(mailbox.rules.trusted_authserv_id, "mx.shop.example");
    assert_eq!(mailbox.jmap_state, None);

    for (bad, code, why) in [
        (
            new_mailbox("support@shop.example", vec![project.id.clone()]),
            ErrorCode::AlreadyExists,
            reason::MAILBOX_EXISTS,
        ),
        (
            new_mailbox("other@shop.example", vec![]),
            ErrorCode::InvalidArgument,
            reason::FIELD_REQUIRED,
        ),
        (
            new_mailbox("other@shop.example", vec![MISSING.into()]),
            ErrorCode::NotFound,
            reason::PROJECT_NOT_FOUND,
        ),
    ] {
        let err = store.create_mailbox(bad).await.expect_err("refused");
        assert_eq!((err.code, err.reason), (code, why));
    }
    let listed = store
        .list_mailboxes(&MailboxFilter::default(), &page())
        .await
        .expect("list");
    assert_eq!(
        listed.items,
        std::slice::from_ref(&mailbox),
        "refusals created nothing"
    );

    store
        .save_jmap_state(&mailbox.id, "42")
        .await
        .expect("state");
    assert_eq!(
        store
            .get_mailbox(&mailbox.id)
            .await
            .expect("get")
            .jmap_state
            .as_deref(),
        Some("42")
    );
    let err = store
        .save_jmap_state(MISSING, "1")
        .await
        .expect_err("missing");
    assert_eq!(err.reason, reason::MAILBOX_NOT_FOUND);

    let (first, new) = store
        .receive_mail(inbound(&mailbox.id, "m1@example.org", InboundState::Held))
        .await
        .expect("record");
    assert!(new);
    assert_eq!(first.state, InboundState::Held);
    // The same mail again (a repeated pass): recognised, nothing changed.
    let (again, new) = store
        .receive_mail(inbound(&mailbox.id, "m1@example.org", InboundState::Triage))
        .await
        .expect("record again");
    assert!(!new);
    assert_eq!(again, first);
    store
        .receive_mail(inbound(&mailbox.id, "m2@example.org", InboundState::Triage))
        .await
        .expect("record");
    let triage = store
        .list_inbound(
            &InboundFilter {
                mailbox_id: Some(mailbox.id.clone()),
                state: Some(InboundState::Triage),
            },
            &page(),
        )
        .await
        .expect("list");
    assert_eq!(triage.items.len(), 1);
    assert_eq!(triage.items[0].message_id, "m2@example.org");
    let all = store
        .list_inbound(&InboundFilter::default(), &page())
        .await
        .expect("list");
    assert_eq!(all.items.len(), 2);
    let err = store
        .receive_mail(inbound(MISSING, "m3@example.org", InboundState::Posted))
        .await
        .expect_err("no such mailbox");
    assert_eq!(err.reason, reason::MAILBOX_NOT_FOUND);
}

pub(super) async fn thread(store: &dyn Store, item: &WorkItem) -> Vec<anima_core::thread::Message> {
    store
        .list_messages(&item.id, ThreadPage::After(0), 100)
        .await
        .expect("thread")
}

/// Posted mail becomes its thread message in the same write, once;
/// triaged and held mail is posted or dismissed by a human, once; the
/// thread lookups find replies and known senders.
pub async fn received_mail_posts_once(store: &dyn Store) {
    let owner = store.create_user(new_user("mailer")).await.expect("user");
    let project = store
        .create_project("Mailed", "", &owner.id)
        .await
        .expect("project");
    let other = store
        .create_project("Elsewhere", "", &owner.id)
        .await
        .expect("project");
    let item = work_item(store, &project.id, &owner.id).await;
    let foreign = work_item(store, &other.id, &owner.id).await;
    let mailbox = store
        .create_mailbox(new_mailbox("desk@shop.example", vec![project.id.clone()]))
        .await
        .expect("mailbox");

    let posted = NewInbound {
        state: InboundState::Posted,
        work_item_id: Some(item.id.clone()),
        ..inbound(&mailbox.id, "p1@example.org", InboundState::Posted)
    };
    let (record, new) = store.receive_mail(posted.clone()).await.expect("post");
    assert!(new);
    assert_eq!(record.state, InboundState::Posted);
    let (again, new) = store.receive_mail(posted).await.expect("again");
    assert!(!new);
    assert_eq!(again, record);
    let messages = thread(store, &item).await;
    assert_eq!(messages.len(), 1, "posted once");
    assert_eq!(messages[0].kind, MessageKind::InboundEmail);
    assert_eq!(
        record.posted_message_id.as_deref(),
        Some(messages[0].id.as_str())
    );
    assert_eq!(
        messages[0].author,
        Actor::Email {
            address: "ann@example.org".into()
        }
    );

    // Replies find the thread by the mail's Message-ID, and by the id an
    // outbound message is given when it is posted.
    assert_eq!(
        store
            .thread_of_mail(&mailbox.id, &["unknown@x".into(), "p1@example.org".into()])
            .await
            .expect("lookup")
            .as_deref(),
        Some(item.id.as_str())
    );
    let outbound = store
        .post_message(NewMessage {
            work_item_id: item.id.clone(),
            kind: MessageKind::OutboundEmail,
            author: Actor::User {
                id: owner.id.clone(),
            },
            body: "Which version?".into(),
            email: Some(EmailHeaders {
                to: vec!["Carol@Example.org".into()],
                subject: "Re: Export crashed".into(),
                ..EmailHeaders::default()
            }),
            attachments: Vec::new(),
            idempotency_key: None,
        })
        .await
        .expect("outbound");
    let outbound_id = outbound.email.expect("headers").message_id;
    assert!(!outbound_id.is_empty(), "outbound mail gets a Message-ID");
    assert_eq!(
        store
            .thread_of_mail(&mailbox.id, std::slice::from_ref(&outbound_id))
            .await
            .expect("lookup")
            .as_deref(),
        Some(item.id.as_str())
    );
    assert_eq!(
        store
            .thread_of_mail(&mailbox.id, &["nope@x".into()])
            .await
            .expect("lookup"),
        None
    );
    // Mail through a mailbox of another project never finds this thread
    // by naming its ids.
    let elsewhere = store
        .create_mailbox(new_mailbox("other@shop.example", vec![other.id.clone()]))
        .await
        .expect("another mailbox");
    assert_eq!(
        store
            .thread_of_mail(&elsewhere.id, &[outbound_id, "p1@example.org".into()])
            .await
            .expect("lookup"),
        None
    );
    // Known: the member (by account email), the sender already in the
    // thread, the recipient written to. Unknown: anyone else.
    for (address, known) in [
        ("mailer@example.org", true),
        ("ann@example.org", true),
        ("carol@example.org", true),
        ("mallory@example.org", false),
    ] {
        assert_eq!(
            store.knows_address(&item.id, address).await.expect("known"),
            known,
            "{address}"
        );
    }

    let (triaged, _) = store
        .receive_mail(NewInbound {
            suggestion: Some(Suggestion {
                work_item_id: item.id.clone(),
                confidence: 0.4,
            }),
            ..inbound(&mailbox.id, "t1@example.org", InboundState::Triage)
        })
        .await
        .expect("triage");
    assert_eq!(triaged.suggestion.as_ref().map(|s| s.confidence), Some(0.4));
    let waiting = |ids: &[&str]| {
        let ids: Vec<String> = ids.iter().map(|id| (*id).to_owned()).collect();
        let mailbox_id = mailbox.id.clone();
        async move {
            store
                .waiting_mail(&mailbox_id, &ids)
                .await
                .expect("waiting")
        }
    };
    assert_eq!(
        waiting(&["p1@example.org", "t1@example.org"]).await,
        Some(InboundState::Triage)
    );
    assert_eq!(
        waiting(&["p1@example.org"]).await,
        None,
        "posted is not waiting"
    );
    assert_eq!(
        thread(store, &item).await.len(),
        2,
        "triaged mail is not posted"
    );
    let by = Actor::User {
        id: owner.id.clone(),
    };
    let err = store
        .post_inbound(&triaged.id, &foreign.id, &by)
        .await
        .expect_err("foreign item");
    assert_eq!(err.reason, reason::WORK_ITEM_NOT_IN_MAILBOX);
    let assigned = store
        .post_inbound(&triaged.id, &item.id, &by)
        .await
        .expect("assign");
    assert_eq!(assigned.state, InboundState::Posted);
    assert_eq!(assigned.settled_by.as_ref(), Some(&by));
    let messages = thread(store, &item).await;
    assert_eq!(messages.len(), 3);
    assert_eq!(
        messages[2].email.as_ref().map(|e| e.message_id.as_str()),
        Some("t1@example.org")
    );
    let err = store
        .post_inbound(&triaged.id, &item.id, &by)
        .await
        .expect_err("twice");
    assert_eq!(err.reason, reason::INBOUND_MAIL_SETTLED);

    assert_eq!(
        waiting(&["t1@example.org"]).await,
        None,
        "assigned mail waits no more"
    );
    let (held, _) = store
        .receive_mail(inbound(&mailbox.id, "h1@example.org", InboundState::Held))
        .await
        .expect("held");
    assert_eq!(waiting(&["h1@example.org"]).await, Some(InboundState::Held));
    let dismissed = store.dismiss_inbound(&held.id, &by).await.expect("dismiss");
    assert_eq!(dismissed.state, InboundState::Dismissed);
    let err = store
        .post_inbound(&held.id, &item.id, &by)
        .await
        .expect_err("dismissed");
    assert_eq!(err.reason, reason::INBOUND_MAIL_SETTLED);
    assert_eq!(thread(store, &item).await.len(), 3);
    let err = store
        .dismiss_inbound(MISSING, &by)
        .await
        .expect_err("missing");
    assert_eq!(err.reason, reason::INBOUND_MAIL_NOT_FOUND);
}

/// Mailboxes keep a project, change settings, rotate (waiting mail moves
/// along) and are dropped, then removed.
pub async fn mailbox_lifecycle(store: &dyn Store) {
    let owner = store.create_user(new_user("boxer")).await.expect("user");
    let first = store
        .create_project("One", "", &owner.id)
        .await
        .expect("project");
    let second = store
        .create_project("Two", "", &owner.id)
        .await
        .expect("project");
    let mailbox = store
        .create_mailbox(new_mailbox("gather@shop.example", vec![first.id.clone()]))
        .await
        .expect("mailbox");
    assert!(!mailbox.is_gather());
    let linked = store
        .link_projects(&mailbox.id, std::slice::from_ref(&second.id))
        .await
        .expect("link");
    assert!(linked.is_gather());
    let err = store
        .link_projects(&mailbox.id, &[MISSING.into()])
        .await
        .expect_err("missing project");
    assert_eq!(err.reason, reason::PROJECT_NOT_FOUND);
    let only_second = MailboxFilter {
        project_id: Some(second.id.clone()),
        ..MailboxFilter::default()
    };
    assert_eq!(
        store
            .list_mailboxes(&only_second, &page())
            .await
            .expect("list")
            .items
            .len(),
        1
    );
    let err = store
        .unlink_projects(&mailbox.id, &[first.id.clone(), second.id.clone()])
        .await
        .expect_err("last project");
    assert_eq!(err.reason, reason::MAILBOX_NEEDS_PROJECT);
    let unlinked = store
        .unlink_projects(&mailbox.id, std::slice::from_ref(&first.id))
        .await
        .expect("unlink");
    assert_eq!(unlinked.project_ids, std::slice::from_ref(&second.id));
    let updated = store
        .update_mailbox(
            &mailbox.id,
            MailboxChanges {
                max_size: Some(5),
                ..MailboxChanges::default()
            },
        )
        .await
        .expect("update");
    assert_eq!(
        (updated.max_size, updated.display_name.as_str()),
        (5, "Support")
    );

    let (waiting, _) = store
        .receive_mail(inbound(&mailbox.id, "w1@example.org", InboundState::Triage))
        .await
        .expect("triage");
    let err = store.remove_mailbox(&mailbox.id).await.expect_err("active");
    assert_eq!(err.reason, reason::MAILBOX_NOT_DROPPING);
    let rotated = store
        .rotate_mailbox(&mailbox.id, "gather2@shop.example")
        .await
        .expect("rotate");
    assert_eq!(rotated.address, "gather2@shop.example");
    assert_eq!(rotated.project_ids, std::slice::from_ref(&second.id));
    assert_eq!(rotated.max_size, 5);
    let old = store.get_mailbox(&mailbox.id).await.expect("old");
    assert_eq!(old.state, MailboxState::Dropping);
    assert_eq!(
        store
            .get_inbound(&waiting.id)
            .await
            .expect("moved")
            .mailbox_id,
        rotated.id,
        "waiting mail moves to the new address"
    );
    let err = store
        .rotate_mailbox(&mailbox.id, "gather3@shop.example")
        .await
        .expect_err("dropping");
    assert_eq!(err.reason, reason::MAILBOX_DROPPING);
    let active = MailboxFilter {
        state: Some(MailboxState::Active),
        ..MailboxFilter::default()
    };
    let listed = store.list_mailboxes(&active, &page()).await.expect("list");
    assert_eq!(listed.items, std::slice::from_ref(&rotated));
    store.remove_mailbox(&mailbox.id).await.expect("remove");
    let err = store.get_mailbox(&mailbox.id).await.expect_err("gone");
    assert_eq!(err.reason, reason::MAILBOX_NOT_FOUND);
    let dropped = store.drop_mailbox(&rotated.id).await.expect("drop");
    assert_eq!(dropped.state, MailboxState::Dropping);

    // An address whose account Anima did not create is refused, with the
    // problem, until adopted; refused, it can only be deleted.
    let taken = store
        .create_mailbox(new_mailbox("ceo@shop.example", vec![first.id.clone()]))
        .await
        .expect("mailbox");
    assert!(
        !taken.adopted && !taken.provisioned && !taken.import_history && taken.problem.is_empty()
    );
    let refused = store
        .refuse_mailbox(&taken.id, "MAILBOX_EXISTS: the account exists")
        .await
        .expect("refuse");
    assert_eq!(
        (refused.state, refused.problem.as_str()),
        (MailboxState::Refused, "MAILBOX_EXISTS: the account exists")
    );
    store
        .refuse_mailbox(&taken.id, "again")
        .await
        .expect("refusing twice changes nothing");
    let err = store
        .update_mailbox(&taken.id, MailboxChanges::default())
        .await
        .expect_err("refused");
    assert_eq!(err.reason, reason::MAILBOX_REFUSED);
    let adopted = store.adopt_mailbox(&taken.id).await.expect("adopt");
    assert_eq!(
        (adopted.state, adopted.adopted, adopted.problem.as_str()),
        (MailboxState::Active, true, "")
    );
    assert!(
        !adopted.import_history,
        "an adoption never imports the history"
    );
    let err = store
        .refuse_mailbox(&taken.id, "late")
        .await
        .expect_err("adopted");
    assert_eq!(err.reason, reason::MAILBOX_EXISTS);
    let other = store
        .create_mailbox(NewMailbox {
            import_history: true,
            ..new_mailbox("sales@shop.example", vec![first.id.clone()])
        })
        .await
        .expect("mailbox");
    assert!(other.import_history);
    let confirmed = store
        .confirm_mailbox_account(&other.id)
        .await
        .expect("Anima made its account");
    assert!(confirmed.provisioned);
    store
        .refuse_mailbox(&other.id, "taken")
        .await
        .expect("refuse");
    let dropping = store
        .drop_mailbox(&other.id)
        .await
        .expect("a refused one is deleted");
    assert_eq!(dropping.state, MailboxState::Dropping);
}

/// Outbound mail is leased to one sender at a time, retried when told,
/// taken over when its sender's lease runs out, and ends sent or failed,
/// which its message shows.
pub async fn outbound_mail_is_leased_once(store: &dyn Store) {
    use anima_core::{mail::OutboundOutcome, model::now_micros, thread::DeliveryState};
    let owner = store.create_user(new_user("sender")).await.expect("user");
    let project = store
        .create_project("Sending", "", &owner.id)
        .await
        .expect("project");
    let item = work_item(store, &project.id, &owner.id).await;
    let outbound = |subject: &str| NewMessage {
        work_item_id: item.id.clone(),
        kind: MessageKind::OutboundEmail,
        author: Actor::User {
            id: owner.id.clone(),
        },
        body: "Fixed.".into(),
        email: Some(EmailHeaders {
            to: vec!["carol@example.org".into()],
            subject: subject.into(),
            ..EmailHeaders::default()
        }),
        attachments: Vec::new(),
        idempotency_key: None,
    };
    let first = store.post_message(outbound("one")).await.expect("post");
    let now = now_micros();
    let lease = 60_000_000;
    let claims = store
        .claim_outbound(now, now + lease, 10)
        .await
        .expect("claim");
    assert_eq!(claims.len(), 1);
    assert_eq!(claims[0].attempt, 1);
    assert_eq!(
        claims[0].message.delivery_state,
        Some(DeliveryState::Sending)
    );
    assert!(
        store
            .claim_outbound(now, now + lease, 10)
            .await
            .expect("claim")
            .is_empty(),
        "leased to the first sender"
    );
    let retried = store
        .finish_outbound(
            &first.id,
            OutboundOutcome::Retry {
                error: "server down".into(),
                at: now + 5,
            },
        )
        .await
        .expect("retry");
    assert_eq!(
        (retried.delivery_state, retried.delivery_error.as_str()),
        (Some(DeliveryState::Queued), "server down")
    );
    let again = store
        .claim_outbound(now + 10, now + lease, 10)
        .await
        .expect("claim");
    assert_eq!(again[0].attempt, 2);
    let failed = store
        .finish_outbound(
            &first.id,
            OutboundOutcome::Failed {
                error: "rejected".into(),
            },
        )
        .await
        .expect("fail");
    assert_eq!(failed.delivery_state, Some(DeliveryState::Failed));
    let err = store
        .finish_outbound(&first.id, OutboundOutcome::Sent)
        .await
        .expect_err("not sending");
    assert_eq!(err.reason, reason::OUTBOUND_NOT_SENDING);

    // A sender that dies keeps its lease until it runs out.
    let second = store.post_message(outbound("two")).await.expect("post");
    let now = now_micros();
    let claimed = store
        .claim_outbound(now, now + lease, 10)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    let taken_over = store
        .claim_outbound(now + lease + 1, now + 2 * lease, 10)
        .await
        .expect("claim");
    assert_eq!(taken_over.len(), 1);
    assert_eq!(
        (taken_over[0].message.id.as_str(), taken_over[0].attempt),
        (second.id.as_str(), 2)
    );
    let sent = store
        .finish_outbound(&second.id, OutboundOutcome::Sent)
        .await
        .expect("sent");
    assert_eq!(sent.delivery_state, Some(DeliveryState::Sent));
}
