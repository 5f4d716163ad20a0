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
