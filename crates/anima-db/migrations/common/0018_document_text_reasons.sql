-- Why search has no text of a document (a binary file, a PDF that cannot
-- be read); NULL when it has its text, or none was looked for (documents
-- from before the library read text, which kept `text` NULL for binary
-- files).

ALTER TABLE documents ADD COLUMN not_indexed_reason TEXT;
