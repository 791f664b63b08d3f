-- Sightline embedded store, schema 1.
--
-- Spans are append-mostly rows in a rowid table (sequential writes); only the compact unique index
-- on (project, trace_id, span_id) takes random inserts. Every list the API serves reads a summary
-- table (traces, sessions, users) maintained in the same transaction as the spans, or walks a
-- (project, <filter>, start_ns) index newest first; nothing scans raw spans to answer a list.
-- Times are unix nanoseconds in INTEGER columns; ids are raw bytes in BLOB columns.

-- Row counts, maintained at write time so that stats never count rows.
CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO counters (name, value) VALUES ('spans', 0), ('llm_calls', 0), ('traces', 0), ('logs', 0);

-- Resource and scope pairs, stored once and shared by every span and log that carries them.
CREATE TABLE origins (
    id       INTEGER PRIMARY KEY,
    hash     INTEGER NOT NULL,
    resource TEXT NOT NULL,
    scope    TEXT NOT NULL
);
CREATE INDEX origins_hash ON origins (hash);

-- Spans exactly as received. `extra` holds {"events":[..],"links":[..]} and is NULL when both are
-- empty; GenAI log events are not copied in here (they stay in `logs`).
CREATE TABLE spans (
    id             INTEGER PRIMARY KEY,
    project        TEXT NOT NULL,
    trace_id       BLOB NOT NULL,
    span_id        BLOB NOT NULL,
    parent_span_id BLOB,
    start_ns       INTEGER NOT NULL,
    end_ns         INTEGER NOT NULL,
    kind           INTEGER NOT NULL,
    status         INTEGER NOT NULL,
    service        TEXT NOT NULL,
    name           TEXT NOT NULL,
    status_message TEXT NOT NULL,
    origin         INTEGER NOT NULL,
    attributes     TEXT NOT NULL,
    extra          TEXT
);
CREATE UNIQUE INDEX spans_key ON spans (project, trace_id, span_id);

-- One row per LLM call: the filterable fields as columns, the whole call as JSON (last, so that
-- filters read only the start of each row).
CREATE TABLE llm_calls (
    id             INTEGER PRIMARY KEY,
    project        TEXT NOT NULL,
    trace_id       BLOB NOT NULL,
    span_id        BLOB NOT NULL,
    start_ns       INTEGER NOT NULL,
    status         INTEGER NOT NULL,
    service        TEXT NOT NULL,
    provider       TEXT,
    request_model  TEXT,
    response_model TEXT,
    operation      TEXT NOT NULL,
    user_id        TEXT,
    session_id     TEXT,
    input_tokens   INTEGER,
    output_tokens  INTEGER,
    total_tokens   INTEGER,
    cost_usd       REAL,
    call           TEXT NOT NULL
);
CREATE UNIQUE INDEX llm_calls_key ON llm_calls (project, trace_id, span_id);
CREATE INDEX llm_calls_time ON llm_calls (project, start_ns);
CREATE INDEX llm_calls_service ON llm_calls (project, service, start_ns);
CREATE INDEX llm_calls_request_model ON llm_calls (project, request_model, start_ns)
    WHERE request_model IS NOT NULL;
CREATE INDEX llm_calls_response_model ON llm_calls (project, response_model, start_ns)
    WHERE response_model IS NOT NULL;
CREATE INDEX llm_calls_user ON llm_calls (project, user_id, start_ns) WHERE user_id IS NOT NULL;
CREATE INDEX llm_calls_session ON llm_calls (project, session_id, start_ns)
    WHERE session_id IS NOT NULL;

-- Full-text index over each call's message text, keyed by llm_calls.id. Contentless: the text
-- lives in llm_calls.call only.
CREATE VIRTUAL TABLE calls_fts USING fts5 (
    text,
    content = '',
    contentless_delete = 1,
    tokenize = 'unicode61 remove_diacritics 2'
);

-- One row per trace, updated with every span and call that arrives. The cost is meaningful only
-- when priced_calls > 0 (a trace with no priced call has no cost, never a zero one).
CREATE TABLE traces (
    id             INTEGER PRIMARY KEY,
    project        TEXT NOT NULL,
    trace_id       BLOB NOT NULL,
    start_ns       INTEGER NOT NULL,
    end_ns         INTEGER NOT NULL,
    root_known     INTEGER NOT NULL,
    name           TEXT NOT NULL,
    service        TEXT NOT NULL,
    span_count     INTEGER NOT NULL,
    llm_call_count INTEGER NOT NULL,
    error_count    INTEGER NOT NULL,
    input_tokens   INTEGER NOT NULL,
    output_tokens  INTEGER NOT NULL,
    priced_calls   INTEGER NOT NULL,
    cost_usd       REAL NOT NULL,
    user_id        TEXT,
    session_id     TEXT
);
CREATE UNIQUE INDEX traces_key ON traces (project, trace_id);
CREATE INDEX traces_time ON traces (project, start_ns);

-- Sessions and users, maintained at write time; the membership tables make the distinct counts
-- (traces per session, traces and sessions per user) exact.
CREATE TABLE sessions (
    id            INTEGER PRIMARY KEY,
    project       TEXT NOT NULL,
    session_id    TEXT NOT NULL,
    user_id       TEXT,
    trace_count   INTEGER NOT NULL,
    call_count    INTEGER NOT NULL,
    errors        INTEGER NOT NULL,
    input_tokens  INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    priced_calls  INTEGER NOT NULL,
    cost_usd      REAL NOT NULL,
    first_seen    INTEGER NOT NULL,
    last_seen     INTEGER NOT NULL
);
CREATE UNIQUE INDEX sessions_key ON sessions (project, session_id);
CREATE INDEX sessions_recent ON sessions (project, last_seen);

CREATE TABLE session_traces (
    project    TEXT NOT NULL,
    session_id TEXT NOT NULL,
    trace_id   BLOB NOT NULL,
    PRIMARY KEY (project, session_id, trace_id)
) WITHOUT ROWID;

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    project       TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    trace_count   INTEGER NOT NULL,
    session_count INTEGER NOT NULL,
    call_count    INTEGER NOT NULL,
    errors        INTEGER NOT NULL,
    input_tokens  INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    priced_calls  INTEGER NOT NULL,
    cost_usd      REAL NOT NULL,
    first_seen    INTEGER NOT NULL,
    last_seen     INTEGER NOT NULL
);
CREATE UNIQUE INDEX users_key ON users (project, user_id);
CREATE INDEX users_recent ON users (project, last_seen);

CREATE TABLE user_traces (
    project  TEXT NOT NULL,
    user_id  TEXT NOT NULL,
    trace_id BLOB NOT NULL,
    PRIMARY KEY (project, user_id, trace_id)
) WITHOUT ROWID;

CREATE TABLE user_sessions (
    project    TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    session_id TEXT NOT NULL,
    PRIMARY KEY (project, user_id, session_id)
) WITHOUT ROWID;

-- Every log record. `genai` marks GenAI events that belong on their span's LLM call.
CREATE TABLE logs (
    id              INTEGER PRIMARY KEY,
    project         TEXT NOT NULL,
    trace_id        BLOB,
    span_id         BLOB,
    time_ns         INTEGER NOT NULL,
    severity_number INTEGER NOT NULL,
    genai           INTEGER NOT NULL,
    service         TEXT NOT NULL,
    severity_text   TEXT NOT NULL,
    event_name      TEXT,
    origin          INTEGER NOT NULL,
    attributes      TEXT NOT NULL,
    body            TEXT
);
CREATE INDEX logs_span ON logs (project, trace_id, span_id, genai) WHERE trace_id IS NOT NULL;
