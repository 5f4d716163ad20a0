-- A project's repositories: the forge, where the remote URL says the
-- repository is (web root, owner, name), the branch work starts from, and
-- the secret that reads it as a reference (STORE://KEY), never the secret.
-- The same text runs on PostgreSQL and SQLite.

CREATE TABLE repositories (
    id             TEXT PRIMARY KEY,
    project_id     TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    forge          TEXT NOT NULL,
    remote_url     TEXT NOT NULL,
    web_base       TEXT NOT NULL,
    owner          TEXT NOT NULL,
    repo           TEXT NOT NULL,
    default_branch TEXT NOT NULL,
    credential     TEXT,
    created_by     TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    UNIQUE (project_id, name)
);
CREATE INDEX repositories_project ON repositories (project_id, id);
