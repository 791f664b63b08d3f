-- Rollups of LLM calls (written in the ingest transaction, see sqlite/rollup.rs) and OTLP metric
-- points.

-- One row per distinct combination of rolled-up dimensions. kind 0: call dimensions (user_id is
-- ''); kind 1: per end user (every other dimension '' and status 0). Unknown values are ''.
CREATE TABLE rollup_series (
    id              INTEGER PRIMARY KEY,
    project         TEXT NOT NULL,
    kind            INTEGER NOT NULL,
    service         TEXT NOT NULL,
    service_version TEXT NOT NULL,
    provider        TEXT NOT NULL,
    request_model   TEXT NOT NULL,
    response_model  TEXT NOT NULL,
    operation       TEXT NOT NULL,
    status          INTEGER NOT NULL,
    user_id         TEXT NOT NULL,
    UNIQUE (project, kind, service, service_version, provider, request_model, response_model,
            operation, status, user_id)
);

-- res: bucket width in seconds (60, 3600 or 86400); kind: the series' kind, so that a read of one
-- kind walks only its rows; bucket: its start, unix seconds. Sketches are DDSketches in the binary
-- form of sightline_model::sketch (empty blob: no values).
CREATE TABLE rollups (
    res                INTEGER NOT NULL,
    kind               INTEGER NOT NULL,
    bucket             INTEGER NOT NULL,
    series             INTEGER NOT NULL,
    calls              INTEGER NOT NULL,
    errors             INTEGER NOT NULL,
    input_tokens       INTEGER NOT NULL,
    output_tokens      INTEGER NOT NULL,
    cache_read_tokens  INTEGER NOT NULL,
    cache_write_tokens INTEGER NOT NULL,
    reasoning_tokens   INTEGER NOT NULL,
    priced_calls       INTEGER NOT NULL,
    cost_usd           REAL NOT NULL,
    latency            BLOB NOT NULL,
    ttft               BLOB NOT NULL,
    tpot               BLOB NOT NULL,
    tps                BLOB NOT NULL,
    PRIMARY KEY (res, kind, bucket, series)
) WITHOUT ROWID;

-- One row per metric name × attribute set (resource, scope and point attributes).
CREATE TABLE metric_series (
    id          INTEGER PRIMARY KEY,
    project     TEXT NOT NULL,
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    unit        TEXT NOT NULL,
    description TEXT NOT NULL,
    scope       TEXT NOT NULL,
    resource    TEXT NOT NULL,
    attributes  TEXT NOT NULL,
    hash        INTEGER NOT NULL
);
CREATE INDEX metric_series_name ON metric_series (project, name);
CREATE INDEX metric_series_hash ON metric_series (hash);

CREATE TABLE metric_points (
    series   INTEGER NOT NULL,
    time_ns  INTEGER NOT NULL,
    start_ns INTEGER NOT NULL,
    value    REAL,
    count    INTEGER,
    sum      REAL,
    min      REAL,
    max      REAL,
    data     TEXT NOT NULL,
    PRIMARY KEY (series, time_ns)
) WITHOUT ROWID;
