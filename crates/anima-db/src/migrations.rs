//! Schema migrations, embedded in the binary so an installed `anima` needs
//! no files beside it. The foundation differs per dialect (serial keys), so
//! each backend has its own first migration; later ones use only types and
//! statements both speak and live once, in `migrations/common`.

use sqlx::{
    SqlSafeStr,
    migrate::{Migration, MigrationType, Migrator},
};

/// A migration: version, description, SQL.
type Step = (i64, &'static str, &'static str);

/// The migrations after the foundation, the same on both backends.
const COMMON: &[Step] = &[
    (
        2,
        "planning",
        include_str!("../migrations/common/0002_planning.sql"),
    ),
    (
        3,
        "threads",
        include_str!("../migrations/common/0003_threads.sql"),
    ),
    (
        4,
        "agents",
        include_str!("../migrations/common/0004_agents.sql"),
    ),
    (
        5,
        "event index",
        include_str!("../migrations/common/0005_event_index.sql"),
    ),
    (
        6,
        "mail",
        include_str!("../migrations/common/0006_mail.sql"),
    ),
    (
        7,
        "mail routing",
        include_str!("../migrations/common/0007_mail_routing.sql"),
    ),
    (
        8,
        "documents",
        include_str!("../migrations/common/0008_documents.sql"),
    ),
    (
        9,
        "session logins",
        include_str!("../migrations/common/0009_session_logins.sql"),
    ),
    (
        10,
        "skills",
        include_str!("../migrations/common/0010_skills.sql"),
    ),
    (
        11,
        "login recordings",
        include_str!("../migrations/common/0011_login_recordings.sql"),
    ),
    (
        12,
        "login attempts",
        include_str!("../migrations/common/0012_login_attempts.sql"),
    ),
    (
        13,
        "mailbox ownership",
        include_str!("../migrations/common/0013_mailbox_ownership.sql"),
    ),
    (
        14,
        "mailbox provisioned",
        include_str!("../migrations/common/0014_mailbox_provisioned.sql"),
    ),
    (
        15,
        "attempt counters",
        include_str!("../migrations/common/0015_attempt_counters.sql"),
    ),
    (
        16,
        "event order",
        include_str!("../migrations/common/0016_event_order.sql"),
    ),
    (
        17,
        "documents in the library",
        include_str!("../migrations/common/0017_documents_in_library.sql"),
    ),
    (
        18,
        "document text reasons",
        include_str!("../migrations/common/0018_document_text_reasons.sql"),
    ),
    (
        19,
        "documents awaiting review",
        include_str!("../migrations/common/0019_documents_awaiting_review.sql"),
    ),
    (
        20,
        "repositories",
        include_str!("../migrations/common/0020_repositories.sql"),
    ),
];

fn migrator(foundation: Step) -> Migrator {
    migrator_up_to(foundation, i64::MAX)
}

/// The migrations up to `version`, to start from an older schema.
fn migrator_up_to(foundation: Step, version: i64) -> Migrator {
    Migrator::with_migrations(
        std::iter::once(&foundation)
            .chain(COMMON)
            .filter(|(number, _, _)| *number <= version)
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

/// The first migration of the PostgreSQL backend.
const POSTGRES_FOUNDATION: Step = (
    1,
    "foundation",
    include_str!("../migrations/postgres/0001_foundation.sql"),
);

/// Migrations of the PostgreSQL backend.
pub(crate) fn postgres() -> Migrator {
    migrator(POSTGRES_FOUNDATION)
}

/// Migrations of the PostgreSQL backend up to `version`, for tests that
/// start from a database an older build left.
#[cfg(feature = "testing")]
pub(crate) fn postgres_up_to(version: i64) -> Migrator {
    migrator_up_to(POSTGRES_FOUNDATION, version)
}

/// Migrations of the SQLite backend.
pub(crate) fn sqlite() -> Migrator {
    migrator((
        1,
        "foundation",
        include_str!("../migrations/sqlite/0001_foundation.sql"),
    ))
}
