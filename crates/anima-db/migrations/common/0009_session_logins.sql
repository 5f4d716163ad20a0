-- The audit log of logins into agent sandboxes. A row is written when the
-- credentials are issued (who, why, until when) and updated from the
-- provider's reports of the shell (when, every command line, bytes, exit).
-- Rows are never deleted with their session's end: only with the session.
-- Also: the exit code of a session's agent, once it has exited.
-- The same text runs on PostgreSQL and SQLite.

ALTER TABLE agent_sessions ADD COLUMN exit_code INTEGER;

CREATE TABLE session_logins (
    id          TEXT PRIMARY KEY,
    session_id  TEXT NOT NULL REFERENCES agent_sessions (id) ON DELETE CASCADE,
    user_id     TEXT NOT NULL,
    reason      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    started_at  BIGINT,
    ended_at    BIGINT,
    -- JSON array of the command lines typed.
    commands    TEXT NOT NULL,
    bytes_in    BIGINT NOT NULL,
    bytes_out   BIGINT NOT NULL,
    exit_status INTEGER,
    peer        TEXT NOT NULL
);
CREATE INDEX session_logins_session ON session_logins (session_id, created_at, id);
