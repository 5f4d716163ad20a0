-- How many chunks hold each word: a search picks its candidates by the
-- words that tell chunks apart (see `SqliteIndex::lexical_plan`).
CREATE VIRTUAL TABLE library_chunks_vocabulary USING fts5vocab (library_chunks_fts, row);

-- What is left of forgotten documents, by age, for pruning.
CREATE INDEX library_documents_forgotten ON library_documents (indexed_at) WHERE forgotten;
