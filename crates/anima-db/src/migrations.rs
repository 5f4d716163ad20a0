//! Schema migrations, embedded in the binary so an installed `anima` needs
//! no files beside it. Each backend has its own directory because the SQL
//! dialects differ in small ways (serial keys).

use sqlx::{
    SqlSafeStr,
    migrate::{Migration, MigrationType, Migrator},
};

fn migrator(files: &[(i64, &'static str, &'static str)]) -> Migrator {
    Migrator::with_migrations(
        files
            .iter()
            .map(|(version, description, sql)| {
                Migration::new(
                    *version,
                    (*description).into(),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

/// Migrations of the PostgreSQL backend.
pub(crate) fn postgres() -> Migrator {
    migrator(&[
        (
            1,
            "foundation",
            include_str!("../migrations/postgres/0001_foundation.sql"),
        ),
        (
            2,
            "planning",
            include_str!("../migrations/postgres/0002_planning.sql"),
        ),
        (
            3,
            "threads",
            include_str!("../migrations/postgres/0003_threads.sql"),
        ),
        (
            4,
            "agents",
            include_str!("../migrations/postgres/0004_agents.sql"),
        ),
        (
            5,
            "event index",
            include_str!("../migrations/postgres/0005_event_index.sql"),
        ),
    ])
}

/// Migrations of the SQLite backend.
pub(crate) fn sqlite() -> Migrator {
    migrator(&[
        (
            1,
            "foundation",
            include_str!("../migrations/sqlite/0001_foundation.sql"),
        ),
        (
            2,
            "planning",
            include_str!("../migrations/sqlite/0002_planning.sql"),
        ),
        (
            3,
            "threads",
            include_str!("../migrations/sqlite/0003_threads.sql"),
        ),
        (
            4,
            "agents",
            include_str!("../migrations/sqlite/0004_agents.sql"),
        ),
        (
            5,
            "event index",
            include_str!("../migrations/sqlite/0005_event_index.sql"),
        ),
    ])
}
