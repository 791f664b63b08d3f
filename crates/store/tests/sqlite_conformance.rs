//! The conformance suite against the embedded SQLite backend, one temporary directory per test.

use sightline_store::sqlite::{SqliteConfig, SqliteStore};

sightline_store::store_conformance!(sqlite, |enricher| async move {
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = SqliteConfig {
        path: dir.path().to_path_buf(),
        ..SqliteConfig::default()
    };
    let store = SqliteStore::open(config, enricher).expect("open sqlite store");
    (store, dir)
});
