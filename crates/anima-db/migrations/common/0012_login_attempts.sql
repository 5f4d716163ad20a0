-- Login attempts, counted before any password is checked, per key (a
-- username with the peer address, a username, a peer address) in fixed
-- windows that start with their first attempt; shared by every server
-- instance. Rows of ended windows are pruned as attempts come in.

CREATE TABLE login_attempts (
    counter_key  TEXT PRIMARY KEY,
    window_start BIGINT NOT NULL,
    attempts     BIGINT NOT NULL
);

CREATE INDEX login_attempts_window ON login_attempts (window_start);
