-- Events are delivered in (txid, id) order. On PostgreSQL txid is the
-- writing transaction's id, and a reader takes only the events of
-- transactions older than the oldest one still running, so writers no
-- longer queue behind one lock and an event that commits late is still
-- never passed over. Events written before, whose ids are in commit order
-- already, keep txid 0 and come first, so every existing cursor (an event
-- id) still names the same place. SQLite has one writer and keeps txid 0.
ALTER TABLE events ADD COLUMN txid BIGINT NOT NULL DEFAULT 0;
CREATE INDEX events_order ON events (txid, id);
DROP INDEX events_work_item;
CREATE INDEX events_work_item ON events (work_item_id, txid, id);
