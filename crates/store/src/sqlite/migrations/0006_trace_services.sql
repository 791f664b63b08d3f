-- The services a trace has spans of. A trace list filtered by a rare service starts from that
-- service's traces instead of walking every trace newest first, and a common service is checked
-- with one key lookup per trace instead of reading the trace's spans.
CREATE TABLE trace_services (
    project   TEXT NOT NULL,
    service   TEXT NOT NULL,
    trace_ref INTEGER NOT NULL,
    PRIMARY KEY (project, service, trace_ref)
) WITHOUT ROWID;
INSERT OR IGNORE INTO trace_services (project, service, trace_ref)
    SELECT t.project, s.service, s.trace_ref FROM spans s JOIN traces t ON t.id = s.trace_ref;
