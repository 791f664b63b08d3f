-- Distributions of input and output tokens per call in the call rollups (DDSketches, like the
-- latency ones), so that `gen_ai_client_token_usage` on /metrics has real buckets. The rollups are
-- rebuilt from the stored calls at the next open (the backfill runs again once its marker is gone),
-- so the new sketches cover every call, not only those stored after this migration.
ALTER TABLE rollups ADD COLUMN input_tokens_dist BLOB NOT NULL DEFAULT x'';
ALTER TABLE rollups ADD COLUMN output_tokens_dist BLOB NOT NULL DEFAULT x'';
DELETE FROM rollups;
DELETE FROM counters WHERE name = 'rollups_built';
