-- A thread's stream replays only its work item's events.
CREATE INDEX events_work_item ON events (work_item_id, id);
