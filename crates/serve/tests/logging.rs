//! The logging middleware: failed requests are logged with the detail the client is not told.
//! Alone in its test binary because it installs the process-wide `tracing` subscriber.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};

use common::failing_store::{FailingStore, Failure};
use common::get;

/// Collects what a `tracing` subscriber writes.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn the_middleware_logs_what_the_client_is_not_told() {
    let logs = LogBuffer::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let router = sightline_serve::router(FailingStore::new(Failure::Internal));
    get(&router, "/api/v1/calls?limit=5").await;
    get(&router, "/api/v1/traces?status=maybe").await;

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].contains("ERROR"), "{text}");
    assert!(lines[0].contains("GET"), "{text}");
    assert!(lines[0].contains("/api/v1/calls"), "{text}");
    assert!(lines[0].contains("status=500"), "{text}");
    assert!(lines[0].contains("no such table: spans_v2"), "{text}");
    assert!(lines[1].contains("DEBUG"), "{text}");
    assert!(lines[1].contains("status=400"), "{text}");
    assert!(lines[1].contains("maybe"), "{text}");
}
