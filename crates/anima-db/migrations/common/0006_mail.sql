-- Mailboxes anima-mail follows, the projects each serves, where each one's
-- JMAP synchronisation stands, and every mail fetched with where it went.
-- The same text runs on PostgreSQL and SQLite.

CREATE TABLE mailboxes (
    id           TEXT PRIMARY KEY,
    address      TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    -- JSON: {"allow": [...], "deny": [...]}
    rules        TEXT NOT NULL,
    max_size     BIGINT NOT NULL,
    jmap_state   TEXT,
    created_at   BIGINT NOT NULL
);

CREATE TABLE mailbox_projects (
    mailbox_id TEXT NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
    project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    PRIMARY KEY (mailbox_id, project_id)
);

-- One row per mailbox and Message-ID: a mail fetched twice (a repeated
-- pass after a crash, a resync) is recognised by this key.
CREATE TABLE inbound_mail (
    id           TEXT PRIMARY KEY,
    mailbox_id   TEXT NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
    message_id   TEXT NOT NULL,
    state        TEXT NOT NULL,
    reason       TEXT NOT NULL,
    work_item_id TEXT REFERENCES work_items (id) ON DELETE SET NULL,
    sender       TEXT NOT NULL,
    subject      TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    UNIQUE (mailbox_id, message_id)
);
CREATE INDEX inbound_mail_state ON inbound_mail (state, id);
