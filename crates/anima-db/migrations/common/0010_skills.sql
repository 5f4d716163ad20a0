-- Skill bundles: a version's manifest and files, never changed once
-- published. File content lives in `blobs` (shared with the library), so
-- a file that several versions keep takes its bytes once.
-- The same text runs on PostgreSQL and SQLite.

CREATE TABLE skills (
    name        TEXT NOT NULL,
    version     TEXT NOT NULL,
    description TEXT NOT NULL,
    manifest    TEXT NOT NULL,
    file_count  BIGINT NOT NULL,
    size_bytes  BIGINT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE INDEX skills_newest ON skills (name, created_at);

CREATE TABLE skill_files (
    name    TEXT NOT NULL,
    version TEXT NOT NULL,
    path    TEXT NOT NULL,
    sha256  TEXT NOT NULL REFERENCES blobs (sha256),
    PRIMARY KEY (name, version, path),
    FOREIGN KEY (name, version) REFERENCES skills (name, version) ON DELETE CASCADE
);
CREATE INDEX skill_files_sha256 ON skill_files (sha256);
