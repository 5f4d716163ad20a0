-- Threads, the outbound mail queue and human decisions. The same text runs
-- on PostgreSQL and SQLite.

-- Events about a work item name it, so a thread's live stream can pick
-- them out without reading payloads.
ALTER TABLE events ADD COLUMN work_item_id TEXT;

-- Last message sequence handed out in the work item's thread.
ALTER TABLE work_items ADD COLUMN message_seq BIGINT NOT NULL DEFAULT 0;

CREATE TABLE messages (
    id              TEXT PRIMARY KEY,
    work_item_id    TEXT NOT NULL REFERENCES work_items (id) ON DELETE CASCADE,
    project_id      TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    sequence        BIGINT NOT NULL,
    kind            TEXT NOT NULL,
    -- JSON actor.
    author          TEXT NOT NULL,
    body            TEXT NOT NULL,
    -- JSON email headers; NULL for other kinds.
    email           TEXT,
    -- JSON array of attachment references.
    attachments     TEXT NOT NULL,
    delivery_state  TEXT,
    delivery_error  TEXT NOT NULL,
    idempotency_key TEXT,
    created_at      BIGINT NOT NULL,
    UNIQUE (work_item_id, sequence),
    UNIQUE (work_item_id, idempotency_key)
);

-- Outbound mail waiting for anima-mail; one row per outbound message.
CREATE TABLE outbound_mail (
    message_id      TEXT PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
    state           TEXT NOT NULL,
    attempts        BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    last_error      TEXT NOT NULL,
    created_at      BIGINT NOT NULL
);
CREATE INDEX outbound_mail_due ON outbound_mail (state, next_attempt_at);

CREATE TABLE decisions (
    id               TEXT PRIMARY KEY,
    work_item_id     TEXT NOT NULL REFERENCES work_items (id) ON DELETE CASCADE,
    project_id       TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    question         TEXT NOT NULL,
    input_label      TEXT NOT NULL,
    -- JSON array of strings.
    choices          TEXT NOT NULL,
    -- JSON actor.
    asked_by         TEXT NOT NULL,
    assignee_user_id TEXT,
    state            TEXT NOT NULL,
    answer           TEXT NOT NULL,
    answered_by      TEXT,
    created_at       BIGINT NOT NULL,
    resolved_at      BIGINT
);
CREATE INDEX decisions_project ON decisions (project_id, state, id);
CREATE INDEX decisions_assignee ON decisions (assignee_user_id, state, id);
