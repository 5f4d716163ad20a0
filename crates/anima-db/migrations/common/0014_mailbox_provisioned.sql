-- Whether Anima made the mailbox's account itself (the worker confirms it
-- when it created the account): only such an account is deleted with its
-- mailbox, and only such an account (or an adopted one) is Anima's to set
-- the password of. Mailboxes made before this went live had theirs made by
-- Anima.

ALTER TABLE mailboxes ADD COLUMN provisioned BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE mailboxes SET provisioned = TRUE WHERE problem = '' AND NOT adopted;
