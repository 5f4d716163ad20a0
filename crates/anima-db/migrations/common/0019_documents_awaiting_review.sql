-- Attachments of mail that waits for review (held, or in triage): kept for
-- the review, but out of search and away from agents until someone posts
-- the mail to a work item. Documents recorded before this are marked by
-- the mail they came with.
-- The same text runs on PostgreSQL and SQLite.

ALTER TABLE documents ADD COLUMN awaits_review BOOLEAN NOT NULL DEFAULT FALSE;

UPDATE documents SET awaits_review = TRUE
WHERE work_item_id IS NULL AND EXISTS (
    SELECT 1 FROM inbound_mail m
    WHERE m.state IN ('held', 'triage')
    AND m.content LIKE '%"document_id":"' || documents.id || '"%'
);
