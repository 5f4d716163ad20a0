-- The library's search index: documents as anima-server named them, their
-- chunks, each chunk's words (FTS5) and vector.

CREATE TABLE library_documents (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    work_item_id TEXT,
    doc_type TEXT NOT NULL,
    title TEXT NOT NULL,
    -- A forgotten document stays as this row, so that an index request
    -- that arrives late never brings it back.
    forgotten BOOLEAN NOT NULL DEFAULT FALSE,
    indexed_at BIGINT NOT NULL
);

CREATE TABLE library_chunks (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    document_id TEXT NOT NULL REFERENCES library_documents (id),
    ordinal INTEGER NOT NULL,
    title TEXT NOT NULL,
    text TEXT NOT NULL,
    -- The embedding model that made `vector`; both NULL until it is made.
    model TEXT,
    vector BLOB
);

CREATE INDEX library_chunks_of_document ON library_chunks (document_id, ordinal);
CREATE INDEX library_chunks_unembedded ON library_chunks (seq) WHERE vector IS NULL;

-- Words of title and text; diacritics folded, so "Grosse" finds "Größe"'s
-- neighbours the way people type them.
CREATE VIRTUAL TABLE library_chunks_fts USING fts5 (
    title, text,
    content = 'library_chunks', content_rowid = 'seq',
    tokenize = 'unicode61 remove_diacritics 2'
);

CREATE TRIGGER library_chunks_words_in AFTER INSERT ON library_chunks BEGIN
    INSERT INTO library_chunks_fts (rowid, title, text) VALUES (new.seq, new.title, new.text);
END;

CREATE TRIGGER library_chunks_words_out AFTER DELETE ON library_chunks BEGIN
    INSERT INTO library_chunks_fts (library_chunks_fts, rowid, title, text)
    VALUES ('delete', old.seq, old.title, old.text);
END;
