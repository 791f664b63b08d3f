-- The filter indexes of llm_calls move to search.db (`call_keys`, see `sqlite/search.rs`), filed
-- by the indexer thread in its own large transactions instead of in every group commit. The
-- indexer rebuilds them from llm_calls when it first opens a search.db of the older layout.
DROP INDEX llm_calls_time;
DROP INDEX llm_calls_service;
DROP INDEX llm_calls_request_model;
DROP INDEX llm_calls_response_model;
DROP INDEX llm_calls_user;
DROP INDEX llm_calls_session;
DROP INDEX llm_calls_errors;
