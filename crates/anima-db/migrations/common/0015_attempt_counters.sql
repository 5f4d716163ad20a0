-- Every kind of counted attempt (logins, outbound mail, AI requests,
-- agents' MCP writes) shares one table, so each row carries the end of its
-- own window: pruning ended windows never resets a longer one. Counts of
-- the old table are at most one login window old and are not carried over.

DROP TABLE login_attempts;

CREATE TABLE attempt_counters (
    counter_key TEXT PRIMARY KEY,
    window_end  BIGINT NOT NULL,
    attempts    BIGINT NOT NULL
);

CREATE INDEX attempt_counters_end ON attempt_counters (window_end);
