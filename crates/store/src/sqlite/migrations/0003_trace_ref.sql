-- Spans, calls and trace memberships refer to their trace by `traces.id` (trace_ref) instead of
-- (project, trace_id). Trace ids are random, so every index led by them took inserts at random
-- places: at millions of spans each commit dirtied (and wrote twice, WAL then database) hundreds
-- of scattered pages. trace_ref grows with time, so new rows land at the end of these indexes,
-- and the spans of one trace are stored together (spans is clustered on (trace_ref, span_id)).

CREATE TABLE spans_v3 (
    trace_ref      INTEGER NOT NULL,
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
    extra          TEXT,
    PRIMARY KEY (trace_ref, span_id)
) WITHOUT ROWID;
INSERT INTO spans_v3
    SELECT t.id, s.span_id, s.parent_span_id, s.start_ns, s.end_ns, s.kind, s.status, s.service,
           s.name, s.status_message, s.origin, s.attributes, s.extra
    FROM spans s JOIN traces t ON t.project = s.project AND t.trace_id = s.trace_id;
DROP TABLE spans;
ALTER TABLE spans_v3 RENAME TO spans;

-- Call ids are kept: they key the full-text index.
CREATE TABLE llm_calls_v3 (
    id             INTEGER PRIMARY KEY,
    project        TEXT NOT NULL,
    trace_ref      INTEGER NOT NULL,
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
INSERT INTO llm_calls_v3
    SELECT c.id, c.project, t.id, c.span_id, c.start_ns, c.status, c.service, c.provider,
           c.request_model, c.response_model, c.operation, c.user_id, c.session_id,
           c.input_tokens, c.output_tokens, c.total_tokens, c.cost_usd, c.call
    FROM llm_calls c JOIN traces t ON t.project = c.project AND t.trace_id = c.trace_id;
DROP TABLE llm_calls;
ALTER TABLE llm_calls_v3 RENAME TO llm_calls;
CREATE UNIQUE INDEX llm_calls_key ON llm_calls (trace_ref, span_id);
CREATE INDEX llm_calls_time ON llm_calls (project, start_ns);
CREATE INDEX llm_calls_service ON llm_calls (project, service, start_ns);
CREATE INDEX llm_calls_request_model ON llm_calls (project, request_model, start_ns)
    WHERE request_model IS NOT NULL;
CREATE INDEX llm_calls_response_model ON llm_calls (project, response_model, start_ns)
    WHERE response_model IS NOT NULL;
CREATE INDEX llm_calls_user ON llm_calls (project, user_id, start_ns) WHERE user_id IS NOT NULL;
CREATE INDEX llm_calls_session ON llm_calls (project, session_id, start_ns)
    WHERE session_id IS NOT NULL;
CREATE INDEX llm_calls_errors ON llm_calls (project, start_ns) WHERE status = 1;

CREATE TABLE session_traces_v3 (
    project    TEXT NOT NULL,
    session_id TEXT NOT NULL,
    trace_ref  INTEGER NOT NULL,
    PRIMARY KEY (project, session_id, trace_ref)
) WITHOUT ROWID;
INSERT INTO session_traces_v3
    SELECT m.project, m.session_id, t.id
    FROM session_traces m JOIN traces t ON t.project = m.project AND t.trace_id = m.trace_id;
DROP TABLE session_traces;
ALTER TABLE session_traces_v3 RENAME TO session_traces;

CREATE TABLE user_traces_v3 (
    project   TEXT NOT NULL,
    user_id   TEXT NOT NULL,
    trace_ref INTEGER NOT NULL,
    PRIMARY KEY (project, user_id, trace_ref)
) WITHOUT ROWID;
INSERT INTO user_traces_v3
    SELECT m.project, m.user_id, t.id
    FROM user_traces m JOIN traces t ON t.project = m.project AND t.trace_id = m.trace_id;
DROP TABLE user_traces;
ALTER TABLE user_traces_v3 RENAME TO user_traces;
