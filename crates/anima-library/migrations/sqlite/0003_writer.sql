-- Which library service writes the index. Each that takes the writer's
-- lock raises the epoch, and every write first checks that the epoch is
-- still its own: one that lost its lock unnoticed (a dropped connection,
-- a deleted lock file) is refused before it writes beside its successor.
CREATE TABLE library_writer (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    epoch BIGINT NOT NULL
);
INSERT INTO library_writer (id, epoch) VALUES (1, 0);
