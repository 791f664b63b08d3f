//! Connections and schema migrations.
//!
//! Migrations are numbered SQL files compiled into the binary; `PRAGMA user_version` records how
//! many have been applied, and each one runs in its own transaction together with the version
//! bump, so a crash mid-migration leaves the previous version intact.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::codec::db_err;
use super::Synchronous;
use crate::error::StoreError;

/// The migrations, in order; migration `n` (1-based) brings `user_version` to `n`.
pub(crate) const MIGRATIONS: &[(&str, &str)] = &[
    ("0001_init", include_str!("migrations/0001_init.sql")),
    (
        "0002_error_indexes",
        include_str!("migrations/0002_error_indexes.sql"),
    ),
    (
        "0003_trace_ref",
        include_str!("migrations/0003_trace_ref.sql"),
    ),
    (
        "0004_search_file",
        include_str!("migrations/0004_search_file.sql"),
    ),
    (
        "0005_rollups_metrics",
        include_str!("migrations/0005_rollups_metrics.sql"),
    ),
    (
        "0006_trace_services",
        include_str!("migrations/0006_trace_services.sql"),
    ),
    (
        "0007_log_fingerprint",
        include_str!("migrations/0007_log_fingerprint.sql"),
    ),
    (
        "0008_token_sketches",
        include_str!("migrations/0008_token_sketches.sql"),
    ),
    (
        "0009_dictionaries",
        include_str!("migrations/0009_dictionaries.sql"),
    ),
    (
        "0010_call_keys",
        include_str!("migrations/0010_call_keys.sql"),
    ),
];

/// The schema version this build writes.
pub(crate) fn schema_version() -> u32 {
    MIGRATIONS.len() as u32
}

const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens the write connection, sets the pragmas and brings the schema up to date.
pub(crate) fn open_writer(path: &Path, synchronous: Synchronous) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", path.display())))?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(db_err)?;
    let sync = sync_pragma(synchronous);
    // page_size only takes effect on a new database, before WAL mode is switched on. The automatic
    // checkpoint runs in the writer after a commit; a concurrent checkpointer thread was measured
    // slower (it lets the WAL grow and competes for the disk).
    conn.execute_batch(&format!(
        "PRAGMA page_size = 8192;
         PRAGMA journal_mode = WAL;
         PRAGMA synchronous = {sync};
         PRAGMA foreign_keys = OFF;
         PRAGMA temp_store = MEMORY;
         PRAGMA cache_size = -131072;
         PRAGMA wal_autocheckpoint = 4000;
         PRAGMA journal_size_limit = 67108864;"
    ))
    .map_err(db_err)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .map_err(db_err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Unavailable(format!(
            "{} cannot use write-ahead logging (journal mode is {mode})",
            path.display()
        )));
    }
    conn.set_prepared_statement_cache_capacity(64);
    super::packed::register(&conn)?;
    // Before any migration, which may read documents.
    super::dictionary::load(&conn)?;
    migrate(&conn)?;
    Ok(conn)
}

fn sync_pragma(synchronous: Synchronous) -> &'static str {
    match synchronous {
        Synchronous::Full => "FULL",
        Synchronous::Normal => "NORMAL",
    }
}

/// Opens a read-only connection; the database must exist.
pub(crate) fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", path.display())))?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(db_err)?;
    conn.execute_batch(
        "PRAGMA cache_size = -32768;
         PRAGMA temp_store = MEMORY;
         PRAGMA mmap_size = 268435456;",
    )
    .map_err(db_err)?;
    conn.set_prepared_statement_cache_capacity(64);
    super::packed::register(&conn)?;
    // Dictionaries trained later are registered by the trainer, or (trained by another
    // process) when the pool hands the connection out again.
    super::dictionary::refresh(&conn)?;
    // The full-text index lives in its own file (see `search`); `calls_fts` resolves there.
    let search = super::search::index_path(path);
    if search.exists() {
        conn.execute("ATTACH DATABASE ?1 AS search", [search.to_string_lossy()])
            .map_err(db_err)?;
    }
    Ok(conn)
}

/// Applies every migration newer than the database's `user_version`.
pub(crate) fn migrate(conn: &Connection) -> Result<(), StoreError> {
    let current: u32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(db_err)?;
    let known = schema_version();
    if current > known {
        return Err(StoreError::Unavailable(format!(
            "database schema version {current} is newer than this build's ({known}); \
             upgrade Sightline"
        )));
    }
    for (i, (name, sql)) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let version = i + 1;
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE;\n{sql}\nPRAGMA user_version = {version};\nCOMMIT;"
        ))
        .map_err(|e| {
            // Leave no transaction open behind a failed migration.
            let _ = conn.execute_batch("ROLLBACK");
            StoreError::Database(format!("migration {name} failed: {e}"))
        })?;
        tracing::info!(migration = name, version, "applied sqlite migration");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user_version(conn: &Connection) -> u32 {
        conn.query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn migrating_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let conn = open_writer(&path, Synchronous::Full).unwrap();
        assert_eq!(user_version(&conn), MIGRATIONS.len() as u32);
        let tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'spans'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(tables, 1);
        conn.execute("UPDATE counters SET value = 7 WHERE name = 'spans'", [])
            .unwrap();
        drop(conn);

        // Reopening runs nothing again and keeps the data.
        let conn = open_writer(&path, Synchronous::Normal).unwrap();
        assert_eq!(user_version(&conn), MIGRATIONS.len() as u32);
        migrate(&conn).unwrap();
        let spans: i64 = conn
            .query_row("SELECT value FROM counters WHERE name = 'spans'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(spans, 7);
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn refuses_a_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let conn = open_writer(&path, Synchronous::Full).unwrap();
        conn.execute_batch("PRAGMA user_version = 999").unwrap();
        drop(conn);
        let err = open_writer(&path, Synchronous::Full).unwrap_err();
        assert!(err.to_string().contains("999"), "{err}");
    }
}
