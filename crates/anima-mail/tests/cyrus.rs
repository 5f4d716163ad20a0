//! The JMAP client against a real Cyrus: mail delivered over LMTP is seen
//! through `Email/changes` from a saved state, exactly once, and its raw
//! bytes come back intact.

use anima_core::{
    mail::{Address, addressed_work_item},
    planning::WorkItemKey,
};
use anima_mail::{
    jmap::{JmapClient, JmapError},
    parse::parse,
    testing::CyrusServer,
};

fn message(n: usize, to: &str) -> Vec<u8> {
    format!(
        "From: Bob <bob@example.org>\r\n\
         To: {to}\r\n\
         Subject: Export report {n}\r\n\
         Message-ID: <report-{n}@example.org>\r\n\
         Date: Wed, 25 Nov 2026 10:00:{n:02} +0000\r\n\
         \r\n\
         Report number {n}: the export crashed again.\r\n"
    )
    .into_bytes()
}

/// Skips (with a note) where Cyrus cannot run, unless the suite requires it.
fn server() -> Option<CyrusServer> {
    if !CyrusServer::available() {
        assert!(
            std::env::var("ANIMA_TEST_REQUIRE_MAIL_SERVER").as_deref() != Ok("1"),
            "Cyrus is required here but not available"
        );
        eprintln!("Cyrus not installed or not root; skipped");
        return None;
    }
    Some(CyrusServer::start().expect("start Cyrus"))
}

#[tokio::test]
async fn changes_resume_from_a_saved_state() {
    let Some(cyrus) = server() else { return };
    let login = cyrus.add_user("support", "support-password").expect("user");
    let to = format!("support+WI-12@{}", anima_mail::testing::DOMAIN);
    cyrus
        .deliver(&login, "bob@example.org", &message(1, &to))
        .expect("deliver");

    let client = JmapClient::connect(&cyrus.http_url, &login, "support-password")
        .await
        .expect("session");
    assert_eq!(client.account_id(), login);
    assert!(client.event_source_url().is_some(), "Cyrus offers push");
    let (ids, state) = client.all_email_ids().await.expect("listing");
    assert_eq!(ids.len(), 1);

    for n in 2..=4 {
        cyrus
            .deliver(&login, "bob@example.org", &message(n, &to))
            .expect("deliver");
    }
    // A restarted worker reconnects and resumes from the state it saved.
    let restarted = JmapClient::connect(&cyrus.http_url, &login, "support-password")
        .await
        .expect("session");
    let changes = restarted.email_changes(&state).await.expect("changes");
    assert_eq!(changes.created.len(), 3, "{changes:?}");
    assert!(changes.destroyed.is_empty());
    let again = restarted
        .email_changes(&changes.new_state)
        .await
        .expect("changes");
    assert!(again.created.is_empty(), "nothing is seen twice: {again:?}");

    let refs = restarted.email_refs(&changes.created).await.expect("refs");
    let raw = restarted
        .download(&refs[0].blob_id)
        .await
        .expect("download");
    let text = String::from_utf8_lossy(&raw);
    assert!(
        text.contains("Message-ID: <report-2@example.org>"),
        "{text}"
    );
    assert!(
        text.contains(&format!("To: {to}")),
        "plus-address kept: {text}"
    );
    assert_eq!(refs[0].size as usize, raw.len());

    // What routing will use: the parsed mail names WI-12 by plus-address.
    let mail = parse(&raw);
    assert_eq!(mail.message_id, "report-2@example.org");
    let mailbox = Address::parse(&login).expect("mailbox address");
    assert_eq!(
        addressed_work_item(&mailbox, mail.recipients()),
        Some(WorkItemKey(12))
    );
}

#[tokio::test]
async fn wrong_passwords_and_bad_states_are_told_apart() {
    let Some(cyrus) = server() else { return };
    let login = cyrus.add_user("triage", "right-password").expect("user");
    let err = JmapClient::connect(&cyrus.http_url, &login, "wrong-password")
        .await
        .err()
        .expect("refused");
    assert!(matches!(err, JmapError::Unauthorized(_)), "{err}");

    let client = JmapClient::connect(&cyrus.http_url, &login, "right-password")
        .await
        .expect("session");
    let err = client
        .email_changes("not-a-state")
        .await
        .expect_err("bad state");
    assert!(
        matches!(
            err,
            JmapError::CannotCalculateChanges(_) | JmapError::Protocol(_)
        ),
        "{err}"
    );
}
