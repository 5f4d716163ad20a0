-- Whose account a mailbox follows. Anima creates the account of a new
-- address; an address that already has an account on the mail server is
-- `refused` (with the `problem`) unless a server admin adopts it, and an
-- adopted account is never deleted with its mailbox. A new mailbox follows
-- mail from its creation on, unless it asked for the account's history.

ALTER TABLE mailboxes ADD COLUMN adopted BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE mailboxes ADD COLUMN import_history BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE mailboxes ADD COLUMN problem TEXT NOT NULL DEFAULT '';
