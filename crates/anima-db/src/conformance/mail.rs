//! Conformance cases of mailboxes and inbound mail.

use anima_core::{
    ErrorCode,
    error::reason,
    mail::{InboundState, NewInbound, NewMailbox, ScreeningRules},
    paging::PageRequest,
};

use super::new_user;
use crate::{InboundFilter, Store};

const MISSING: &str = "00000000-0000-7000-8000-00000000dead";

fn page() -> PageRequest {
    PageRequest::parse(50, "", "mail").expect("page")
}

fn inbound(mailbox_id: &str, message_id: &str, state: InboundState) -> NewInbound {
    NewInbound {
        mailbox_id: mailbox_id.into(),
        message_id: message_id.into(),
        state,
        reason: String::new(),
        work_item_id: None,
        sender: "ann@example.org".into(),
        subject: "Export crashed".into(),
    }
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
    let new_mailbox = |address: &str, projects: Vec<String>| NewMailbox {
        address: address.into(),
        display_name: "Support".into(),
        project_ids: projects,
        rules: ScreeningRules {
            deny: vec!["spam.example".into()],
            allow: Vec::new(),
        },
        max_size: 1_000_000,
    };
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
    let listed = store.list_mailboxes(&page()).await.expect("list");
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
        .record_inbound(inbound(&mailbox.id, "m1@example.org", InboundState::Held))
        .await
        .expect("record");
    assert!(new);
    assert_eq!(first.state, InboundState::Held);
    // The same mail again (a repeated pass): recognised, nothing changed.
    let (again, new) = store
        .record_inbound(inbound(&mailbox.id, "m1@example.org", InboundState::Triage))
        .await
        .expect("record again");
    assert!(!new);
    assert_eq!(again, first);
    store
        .record_inbound(inbound(&mailbox.id, "m2@example.org", InboundState::Triage))
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
        .record_inbound(inbound(MISSING, "m3@example.org", InboundState::Posted))
        .await
        .expect_err("no such mailbox");
    assert_eq!(err.reason, reason::MAILBOX_NOT_FOUND);
}
