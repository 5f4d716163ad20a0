-- What a login's terminal really carried: the raw bytes typed (`input`
-- 1) and shown (0), with their offset from the shell's start, numbered
-- from 0 per login. Reports may resend events; the key keeps each once.
-- The same text runs on PostgreSQL and SQLite (BYTEA: see 0008).

CREATE TABLE session_login_events (
    login_id      TEXT NOT NULL REFERENCES session_logins (id) ON DELETE CASCADE,
    seq           BIGINT NOT NULL,
    offset_micros BIGINT NOT NULL,
    input         INTEGER NOT NULL,
    data          BYTEA NOT NULL,
    PRIMARY KEY (login_id, seq)
);
