//! Runs the one conformance suite against both backends.

use anima_db::testing::TempDatabase;

mod sqlite {
    use super::*;

    anima_db::conformance_suite!(async {
        let db = TempDatabase::sqlite();
        (db.open().await, db)
    });
}

mod postgres {
    use super::*;

    anima_db::conformance_suite!(async {
        let db = TempDatabase::postgres().await;
        (db.open().await, db)
    });
}

/// Events written before transactions were recorded (schema 15) keep their
/// order and their ids as cursors, and come before every later event.
#[tokio::test]
async fn events_from_before_the_event_order_migration_stay_readable() {
    use sqlx::Connection;

    let db = TempDatabase::postgres().await;
    anima_db::testing::migrate_postgres_to(&db.url, 15).await;
    let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("connect");
    let mut old = Vec::new();
    for n in 0..3 {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO events (kind, project_id, entity_id, work_item_id, payload, created_at) \
             VALUES ('user.created', NULL, $1, NULL, '{}', 0) RETURNING id",
        )
        .bind(format!("old-{n}"))
        .fetch_one(&mut conn)
        .await
        .expect("old event");
        old.push(id);
    }
    let store = db.open().await;
    let resumed = store
        .event_position(old[0])
        .await
        .expect("position")
        .expect("an old cursor still names its event");
    store
        .create_user(anima_core::model::NewUser {
            username: "new".into(),
            display_name: "New".into(),
            email: String::new(),
            password_hash: "$argon2id$test".into(),
            is_admin: false,
        })
        .await
        .expect("a new event");
    anima_db::testing::settle_events(&*store).await;
    let after: Vec<(i64, String)> = store
        .events_after(resumed, 100)
        .await
        .expect("events")
        .into_iter()
        .map(|event| (event.id, event.entity_id))
        .collect();
    assert_eq!(after.len(), 3, "two old events, then the new one");
    assert_eq!(
        after[..2],
        [(old[1], "old-1".into()), (old[2], "old-2".into())]
    );
    assert_eq!(
        store.last_event().await.expect("last").id,
        after[2].0,
        "the new event comes after every old one"
    );
}

/// Documents stored before the library (schema 16, their bytes in
/// `blobs`) stay readable, and their bytes are handed over once: the
/// server reads them with `next_legacy_blob` and drops them with
/// `forget_legacy_blob`, which keeps what a skill file still uses.
#[tokio::test]
async fn documents_from_before_the_library_hand_their_bytes_over() {
    use sqlx::Connection;

    let db = TempDatabase::postgres().await;
    anima_db::testing::migrate_postgres_to(&db.url, 16).await;
    let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("connect");
    for statement in [
        "INSERT INTO projects (id, name, description, status, created_at, updated_at) \
         VALUES ('00000000-0000-7000-8000-000000000001', 'Old', '', 'active', 0, 0)",
        "INSERT INTO blobs (sha256, size_bytes, content) VALUES ('a1', 3, 'old'::bytea)",
        "INSERT INTO blobs (sha256, size_bytes, content) VALUES ('b2', 4, 'kept'::bytea)",
        "INSERT INTO documents (id, project_id, work_item_id, title, doc_type, media_type, \
         size_bytes, sha256, text, created_by, created_at) VALUES \
         ('00000000-0000-7000-8000-00000000000a', '00000000-0000-7000-8000-000000000001', NULL, \
          'old.txt', 'text', 'text/plain', 3, 'a1', 'old', '{\"kind\":\"service\",\"name\":\"test\"}', 0)",
    ] {
        sqlx::query(statement)
            .execute(&mut conn)
            .await
            .expect(statement);
    }
    let store = db.open().await;
    let document = store
        .get_document("00000000-0000-7000-8000-00000000000a")
        .await
        .expect("an old document is still there");
    assert_eq!(document.sha256, "a1");
    assert_eq!(
        store.next_legacy_blob("").await.expect("next"),
        Some(("a1".into(), b"old".to_vec())),
        "only bytes a document names are handed over"
    );
    assert_eq!(store.next_legacy_blob("a1").await.expect("next"), None);
    store.forget_legacy_blob("a1").await.expect("forget");
    assert_eq!(store.next_legacy_blob("").await.expect("next"), None);
    assert!(store.names_blob("a1").await.expect("named"));
}

/// Attachments of mail held or in triage before documents knew they await
/// review (schema 18) are marked by the mail they came with, and no other
/// document is.
#[tokio::test]
async fn attachments_of_held_mail_from_before_await_review() {
    use sqlx::Connection;

    let db = TempDatabase::postgres().await;
    anima_db::testing::migrate_postgres_to(&db.url, 18).await;
    let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("connect");
    let project = "00000000-0000-7000-8000-000000000001";
    let document = |id: &str| {
        format!(
            "INSERT INTO documents (id, project_id, work_item_id, title, doc_type, media_type, \
             size_bytes, sha256, text, created_by, created_at) VALUES ('{id}', '{project}', NULL, \
             'a.txt', 'attachment', 'text/plain', 1, 'a1', 'a', \
             '{{\"kind\":\"email\",\"address\":\"ann@example.org\"}}', 0)"
        )
    };
    let mail = |id: &str, state: &str, document: &str| {
        format!(
            "INSERT INTO inbound_mail (id, mailbox_id, message_id, state, reason, sender, \
             subject, created_at, content) VALUES ('{id}', 'm', '{id}@x', '{state}', '', \
             'ann@example.org', '', 0, \
             '{{\"attachments\":[{{\"document_id\":\"{document}\",\"file_name\":\"a.txt\"}}]}}')"
        )
    };
    for statement in [
        format!(
            "INSERT INTO projects (id, name, description, status, created_at, updated_at) \
             VALUES ('{project}', 'Old', '', 'active', 0, 0)"
        ),
        "INSERT INTO mailboxes (id, address, display_name, rules, max_size, created_at) \
         VALUES ('m', 'desk@x', '', '{}', 1, 0)"
            .into(),
        document("d-held"),
        document("d-triage"),
        document("d-dismissed"),
        document("d-orphan"),
        mail("held", "held", "d-held"),
        mail("triage", "triage", "d-triage"),
        mail("dismissed", "dismissed", "d-dismissed"),
    ] {
        // Test data written here, no input.
        sqlx::query(sqlx::AssertSqlSafe(statement.clone()))
            .execute(&mut conn)
            .await
            .expect(&statement);
    }
    let store = db.open().await;
    for (id, awaits) in [
        ("d-held", true),
        ("d-triage", true),
        ("d-dismissed", false),
        ("d-orphan", false),
    ] {
        let document = store.get_document(id).await.expect("document");
        assert_eq!(document.awaits_review, awaits, "{id}");
    }
}
