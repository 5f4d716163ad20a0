-- What routing and the triage list need beyond 0006: each mailbox's life
-- (a deleted or rotated mailbox stays `dropping` until anima-mail has
-- removed its account from the mail server), the content of mail that
-- waits in triage or is held (so assigning it later posts the very mail),
-- and two lookups over threads: which thread a Message-ID belongs to
-- (replies without a plus-address) and which addresses already take part
-- in a thread (screening).
-- The same text runs on PostgreSQL and SQLite.

ALTER TABLE mailboxes ADD COLUMN state TEXT NOT NULL DEFAULT 'active';

-- JSON: {"email": {...headers}, "body": "...", "attachments": [...]}
ALTER TABLE inbound_mail ADD COLUMN content TEXT NOT NULL DEFAULT '{}';
-- JSON: {"work_item_id": "...", "confidence": 0.4}, or NULL.
ALTER TABLE inbound_mail ADD COLUMN suggestion TEXT;
ALTER TABLE inbound_mail ADD COLUMN posted_message_id TEXT REFERENCES messages (id) ON DELETE SET NULL;
ALTER TABLE inbound_mail ADD COLUMN settled_by TEXT;
CREATE INDEX inbound_mail_mailbox_state ON inbound_mail (mailbox_id, state, id);

CREATE TABLE thread_mail_ids (
    message_id   TEXT NOT NULL,
    work_item_id TEXT NOT NULL REFERENCES work_items (id) ON DELETE CASCADE,
    PRIMARY KEY (message_id, work_item_id)
);

CREATE TABLE thread_contacts (
    work_item_id TEXT NOT NULL REFERENCES work_items (id) ON DELETE CASCADE,
    address      TEXT NOT NULL,
    PRIMARY KEY (work_item_id, address)
);
