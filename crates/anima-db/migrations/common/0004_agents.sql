-- Agent sessions, their tasks, and the MCP tokens that let them reach back.
-- The same text runs on PostgreSQL and SQLite.

CREATE TABLE agent_sessions (
    id              TEXT PRIMARY KEY,
    work_item_id    TEXT NOT NULL REFERENCES work_items (id) ON DELETE CASCADE,
    project_id      TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    akh_id          TEXT NOT NULL REFERENCES akhs (id),
    status          TEXT NOT NULL,
    -- JSON snapshots taken at start.
    capabilities    TEXT NOT NULL,
    skills          TEXT NOT NULL,
    phase_id        TEXT NOT NULL,
    vm_id           TEXT NOT NULL,
    error           TEXT NOT NULL,
    keep_after_stop BOOLEAN NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX agent_sessions_work_item ON agent_sessions (work_item_id, id);
CREATE INDEX agent_sessions_project ON agent_sessions (project_id, id);

CREATE TABLE tasks (
    id           TEXT PRIMARY KEY,
    session_id   TEXT NOT NULL REFERENCES agent_sessions (id) ON DELETE CASCADE,
    work_item_id TEXT NOT NULL,
    title        TEXT NOT NULL,
    status       TEXT NOT NULL,
    note         TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX tasks_session ON tasks (session_id, id);

-- One row per issued token; only the SHA-256 of the token is kept. A token
-- is valid while it is not revoked and its session has not ended; revoked
-- rows stay so that a refusal can say why.
CREATE TABLE mcp_tokens (
    token_hash  TEXT PRIMARY KEY,
    session_id  TEXT NOT NULL REFERENCES agent_sessions (id) ON DELETE CASCADE,
    -- JSON array of permission names.
    permissions TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
CREATE INDEX mcp_tokens_session ON mcp_tokens (session_id);
