-- A log record has no id of its own in OTLP, so a client that retries an export sends the same
-- records again. Each record now carries a fingerprint of everything it says (ids, observed
-- time, severity, names, attributes, body, resource and scope); a record whose time and
-- fingerprint are already stored in its project is the same record resent, and is ignored. Rows
-- stored before this migration have none and are left as they are.
ALTER TABLE logs ADD COLUMN fingerprint INTEGER;
CREATE UNIQUE INDEX logs_fingerprint ON logs (project, time_ns, fingerprint)
    WHERE fingerprint IS NOT NULL;
