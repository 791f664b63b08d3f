-- The full-text index moves to its own file (search.db), kept up to date by its own thread: the
-- writer only queues which calls to (re)index, in the same transaction as the calls. The index
-- is rebuilt from llm_calls the first time search.db is opened. AUTOINCREMENT keeps sequence
-- numbers growing after the indexer's progress has emptied the queue.
DROP TABLE calls_fts;
CREATE TABLE search_queue (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id INTEGER NOT NULL,
    op      INTEGER NOT NULL
);
