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
