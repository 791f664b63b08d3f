-- zstd dictionaries for stored documents (see `sqlite/dictionary.rs`). A compressed document
-- names its dictionary by id in its frame header; a dictionary is committed before any frame
-- uses it, and never deleted. Frames written before this migration name none. `ratio` is how
-- well it compressed its own training samples (compressed bytes per byte), the yardstick for
-- replacing it when the documents drift.
CREATE TABLE dictionaries (
    id         INTEGER PRIMARY KEY,
    created_ns INTEGER NOT NULL,
    dict       BLOB NOT NULL,
    ratio      REAL NOT NULL
);
