-- The library's search index: documents as anima-server named them, their
-- chunks, each chunk's words (tsvector) and vector.

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
    seq BIGSERIAL PRIMARY KEY,
    document_id TEXT NOT NULL REFERENCES library_documents (id),
    ordinal INTEGER NOT NULL,
    title TEXT NOT NULL,
    text TEXT NOT NULL,
    -- The embedding model that made `vector`; both NULL until it is made.
    model TEXT,
    vector BYTEA,
    -- 'simple': no stemming and no stop words, so identifiers and German
    -- are matched as written; the title weighs more than the text. ASCII
    -- punctuation becomes a space first, so words are runs of letters and
    -- digits as on SQLite and in queries (the parser would read WI-12 as
    -- "wi" and the number -12).
    words TSVECTOR GENERATED ALWAYS AS (
        setweight(to_tsvector('simple', regexp_replace(title, '[!-/:-@[-`{-~]+', ' ', 'g')), 'A')
        || setweight(to_tsvector('simple', regexp_replace(text, '[!-/:-@[-`{-~]+', ' ', 'g')), 'B')
    ) STORED
);

CREATE INDEX library_chunks_of_document ON library_chunks (document_id, ordinal);
CREATE INDEX library_chunks_unembedded ON library_chunks (seq) WHERE vector IS NULL;
CREATE INDEX library_chunks_words ON library_chunks USING GIN (words);
