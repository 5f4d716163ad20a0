-- The library: documents (with their project, work item and author) and
-- their content, stored once per SHA-256 so the same attachment mailed
-- twice takes its bytes once. `text` holds the searchable text of textual
-- documents. BYTEA is PostgreSQL's binary type; SQLite stores the bound
-- bytes as a BLOB under any type name.
-- The same text runs on PostgreSQL and SQLite.

CREATE TABLE blobs (
    sha256     TEXT PRIMARY KEY,
    size_bytes BIGINT NOT NULL,
    content    BYTEA NOT NULL
);

CREATE TABLE documents (
    id           TEXT PRIMARY KEY,
    project_id   TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    work_item_id TEXT REFERENCES work_items (id) ON DELETE SET NULL,
    title        TEXT NOT NULL,
    doc_type     TEXT NOT NULL,
    media_type   TEXT NOT NULL,
    size_bytes   BIGINT NOT NULL,
    sha256       TEXT NOT NULL REFERENCES blobs (sha256),
    text         TEXT,
    created_by   TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);
CREATE INDEX documents_project ON documents (project_id, id);
CREATE INDEX documents_work_item ON documents (work_item_id, id);
CREATE INDEX documents_sha256 ON documents (sha256);
