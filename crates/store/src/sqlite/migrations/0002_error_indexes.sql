-- Failed traces and calls are few: partial indexes list them newest first without walking every
-- row (the trace and call lists' status=error filter).
CREATE INDEX traces_errors ON traces (project, start_ns) WHERE error_count > 0;
CREATE INDEX llm_calls_errors ON llm_calls (project, start_ns) WHERE status = 1;
