//! Property tests: whatever the query string or path, the API answers 200, 400 or 404 with a JSON
//! body — never a 5xx, never a panic — all the way through the real embedded store.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, OnceLock};

use axum::http::StatusCode;
use axum::Router;
use proptest::prelude::*;
use sightline_store::sqlite::{SqliteConfig, SqliteStore};
use sightline_store::testsuite::test_enricher;
use tempfile::TempDir;

use common::get;

/// Keys the lists understand, plus a few that they must ignore.
const KEYS: &[&str] = &[
    "project",
    "from",
    "to",
    "limit",
    "cursor",
    "service",
    "model",
    "provider",
    "user_id",
    "session_id",
    "status",
    "q",
    "attr.tier",
    "attr.",
    "attr.a.b",
    "unknown",
    "",
];

const LISTS: &[&str] = &["traces", "calls", "sessions", "users"];

/// One runtime, router and store for every case (opening a store per case would dominate).
fn fixture() -> &'static (tokio::runtime::Runtime, Router, TempDir) {
    static FIXTURE: OnceLock<(tokio::runtime::Runtime, Router, TempDir)> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let config = SqliteConfig {
            path: dir.path().to_path_buf(),
            ..SqliteConfig::default()
        };
        let store = SqliteStore::open(config, test_enricher()).unwrap();
        (runtime, sightline_serve::router(Arc::new(store)), dir)
    })
}

fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Sends `uri` and checks the answer is a well-formed success or client error.
fn check(uri: &str) -> Result<(), TestCaseError> {
    let (runtime, router, _) = fixture();
    let reply = runtime.block_on(get(router, uri));
    prop_assert!(
        matches!(
            reply.status,
            StatusCode::OK | StatusCode::BAD_REQUEST | StatusCode::NOT_FOUND
        ),
        "{uri}: {} {}",
        reply.status,
        reply.text()
    );
    let json = reply.json();
    if reply.status != StatusCode::OK {
        prop_assert!(json["error"]["code"].is_string(), "{uri}: {json}");
        prop_assert!(json["error"]["message"].is_string(), "{uri}: {json}");
    }
    Ok(())
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[0-9]{0,22}",
        "-?[0-9]{1,5}",
        "(ok|error|OK|maybe)",
        "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,12})?(Z|[+ -][0-9]{2}:[0-9]{2})",
        "[A-Za-z0-9_-]{0,30}",
        "[\"*():^ -]{0,8}[a-z]{0,5}",
    ]
}

fn pairs() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec(
        (
            prop_oneof![
                prop::sample::select(KEYS).prop_map(str::to_owned),
                any::<String>()
            ],
            value(),
        ),
        0..6,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn any_list_query_is_answered(list in prop::sample::select(LISTS), pairs in pairs()) {
        let query: Vec<String> = pairs
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        check(&format!("/api/v1/{list}?{}", query.join("&")))?;
    }

    #[test]
    fn any_raw_query_string_is_answered(
        list in prop::sample::select(LISTS),
        raw in "[A-Za-z0-9%&=+.;_~:-]{0,80}",
    ) {
        check(&format!("/api/v1/{list}?{raw}"))?;
    }

    #[test]
    fn any_trace_or_session_id_is_answered(id in any::<String>(), hexish in "[0-9a-fA-F]{0,40}") {
        check(&format!("/api/v1/traces/{}", encode(&id)))?;
        check(&format!("/api/v1/traces/{hexish}"))?;
        check(&format!("/api/v1/sessions/{}", encode(&id)))?;
    }
}
