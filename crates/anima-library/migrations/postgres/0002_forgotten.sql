-- What is left of forgotten documents, by age, for pruning.
CREATE INDEX library_documents_forgotten ON library_documents (indexed_at) WHERE forgotten;
