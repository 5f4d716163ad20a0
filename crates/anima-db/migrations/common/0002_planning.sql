-- Planning: workflows, plans, work items with description history, Akhs.
-- The same text runs on PostgreSQL and SQLite.

-- Last work item number handed out in the project; incremented in the
-- creating transaction, so keys have no gaps and never clash.
ALTER TABLE projects ADD COLUMN work_item_seq BIGINT NOT NULL DEFAULT 0;

CREATE TABLE workflows (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL,
    -- JSON array of phases with their required skills.
    phases      TEXT NOT NULL,
    builtin     BOOLEAN NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE plans (
    id          TEXT PRIMARY KEY,
    project_id  TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    title       TEXT NOT NULL,
    description TEXT NOT NULL,
    workflow_id TEXT NOT NULL REFERENCES workflows (id),
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX plans_project ON plans (project_id, id);
CREATE INDEX plans_workflow ON plans (workflow_id);

CREATE TABLE work_items (
    id                      TEXT PRIMARY KEY,
    project_id              TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    plan_id                 TEXT REFERENCES plans (id) ON DELETE SET NULL,
    number                  BIGINT NOT NULL,
    title                   TEXT NOT NULL,
    -- The current row of description_revisions (which refers back here).
    description_revision_id TEXT NOT NULL,
    status                  TEXT NOT NULL,
    priority                TEXT NOT NULL,
    workflow_id             TEXT NOT NULL REFERENCES workflows (id),
    phase_id                TEXT NOT NULL,
    -- JSON actor.
    phase_changed_by        TEXT NOT NULL,
    phase_changed_at        BIGINT NOT NULL,
    -- JSON array of capabilities.
    capabilities            TEXT NOT NULL,
    created_at              BIGINT NOT NULL,
    updated_at              BIGINT NOT NULL,
    UNIQUE (project_id, number)
);
CREATE INDEX work_items_plan ON work_items (plan_id);
CREATE INDEX work_items_workflow ON work_items (workflow_id);

CREATE TABLE description_revisions (
    id                TEXT PRIMARY KEY,
    work_item_id      TEXT NOT NULL REFERENCES work_items (id) ON DELETE CASCADE,
    number            BIGINT NOT NULL,
    text              TEXT NOT NULL,
    -- JSON actor.
    author            TEXT NOT NULL,
    cause             TEXT NOT NULL,
    reverted_from     TEXT,
    source_message_id TEXT,
    created_at        BIGINT NOT NULL,
    UNIQUE (work_item_id, number)
);

CREATE TABLE akhs (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    description  TEXT NOT NULL,
    avatar_color TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
