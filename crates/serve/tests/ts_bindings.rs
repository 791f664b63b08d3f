//! The web UI's TypeScript types are generated from the Rust response structs (ts-rs) and
//! committed in `ui/src/api/generated/`. This test regenerates them and fails when the committed
//! files differ, so a change to the JSON API cannot silently break the UI's types.
//!
//! Regenerate with `scripts/gen-ui-types.sh` (it runs this test with `SIGHTLINE_UPDATE_UI_TYPES=1`).
//! The test needs the `ts` feature; a workspace test run enables it through `sightline-ui`'s
//! dev-dependencies, and it does not depend on the UI build, so it can regenerate types the UI
//! code no longer compiles against.
#![cfg(feature = "ts")]
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test that cannot proceed should panic

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sightline_serve::api::calls::CallListResponse;
use sightline_serve::api::sessions::{SessionDetailResponse, SessionListResponse};
use sightline_serve::api::stats::StatsResponse;
use sightline_serve::api::timeseries::TimeseriesResponse;
use sightline_serve::api::traces::{TraceDetailResponse, TraceListResponse};
use sightline_serve::api::users::UserListResponse;
use sightline_serve::ErrorResponse;
use ts_rs::TS;

fn committed_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ui/src/api/generated")
}

/// Every `.ts` file under `dir`, by relative path.
fn read_tree(dir: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else if path.extension().is_some_and(|e| e == "ts") {
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                out.insert(rel, std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Generates the declarations of every API response type (and what they reference) into `dir`.
fn generate(dir: &Path) -> BTreeMap<String, String> {
    TraceListResponse::export_all_to(dir).unwrap();
    TraceDetailResponse::export_all_to(dir).unwrap();
    CallListResponse::export_all_to(dir).unwrap();
    SessionListResponse::export_all_to(dir).unwrap();
    SessionDetailResponse::export_all_to(dir).unwrap();
    UserListResponse::export_all_to(dir).unwrap();
    StatsResponse::export_all_to(dir).unwrap();
    TimeseriesResponse::export_all_to(dir).unwrap();
    ErrorResponse::export_all_to(dir).unwrap();
    read_tree(dir)
        .into_iter()
        // ts-rs declares u64 as `bigint`, but the API sends JSON numbers and `JSON.parse` yields
        // `number` (the `*_unix_nano` values lose precision beyond 2^53; the UI uses the
        // RFC 3339 fields or only differences of them).
        .map(|(path, text)| (path, text.replace("bigint", "number")))
        .collect()
}

#[test]
fn generated_ui_types_are_current() {
    let tmp = tempfile::tempdir().unwrap();
    let fresh = generate(tmp.path());
    assert!(
        fresh.contains_key("TraceRow.ts") && fresh.contains_key("LlmCall.ts"),
        "{:?}",
        fresh.keys()
    );
    let committed_dir = committed_dir();
    if std::env::var_os("SIGHTLINE_UPDATE_UI_TYPES").is_some() {
        let _ = std::fs::remove_dir_all(&committed_dir);
        for (path, text) in &fresh {
            let target = committed_dir.join(path);
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            std::fs::write(target, text).unwrap();
        }
        return;
    }
    let committed = read_tree(&committed_dir);
    let stale: Vec<_> = fresh
        .iter()
        .filter(|(path, text)| committed.get(*path) != Some(*text))
        .map(|(path, _)| path.as_str())
        .chain(
            committed
                .keys()
                .filter(|p| !fresh.contains_key(*p))
                .map(String::as_str),
        )
        .collect();
    assert!(
        stale.is_empty(),
        "ui/src/api/generated is out of date ({stale:?}); run scripts/gen-ui-types.sh and commit the result"
    );
}
