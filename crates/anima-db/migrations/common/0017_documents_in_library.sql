-- Documents' bytes move to Seshat's Library (anima-library): a document
-- names them by SHA-256, and `blobs` keeps skill files only (the server
-- hands the documents' rows to the library at start, then drops them).
-- So `documents.sha256` no longer references `blobs`. SQLite cannot drop
-- a constraint, so the table is rebuilt, the same way on both backends;
-- no other table references `documents`.

CREATE TABLE documents_in_library (
    id           TEXT PRIMARY KEY,
    project_id   TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    work_item_id TEXT REFERENCES work_items (id) ON DELETE SET NULL,
    title        TEXT NOT NULL,
    doc_type     TEXT NOT NULL,
    media_type   TEXT NOT NULL,
    size_bytes   BIGINT NOT NULL,
    sha256       TEXT NOT NULL,
    text         TEXT,
    created_by   TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);
INSERT INTO documents_in_library
    SELECT id, project_id, work_item_id, title, doc_type, media_type, size_bytes,
           sha256, text, created_by, created_at
    FROM documents;
DROP TABLE documents;
ALTER TABLE documents_in_library RENAME TO documents;
CREATE INDEX documents_project ON documents (project_id, id);
CREATE INDEX documents_work_item ON documents (work_item_id, id);
CREATE INDEX documents_sha256 ON documents (sha256);
