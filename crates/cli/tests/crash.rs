//! Crash safety: SIGKILL the server in the middle of heavy ingest, restart it on the same data
//! directory, and find every acknowledged span, exactly once.
//!
//! `sightline loadgen --acked-log` appends the id and span count of every trace in every request
//! the server acknowledged, so the test knows exactly what the server promised to keep. After the
//! restart, a second load generator run with the same seed resends the same traces (same ids), as
//! a retrying client resends requests whose answers were lost in the crash: some of them were
//! committed without being acknowledged, and every one must still be stored once.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test that cannot proceed should panic

mod support;

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use support::{
    check_traces, count_lines, list_trace_ids, read_acked_log, read_report, sightline, Server,
};

const SEED: &str = "424242";
const CONCURRENCY: usize = 16;
const BATCH_TRACES: usize = 10;
const POOL: &str = "128";
/// Acknowledged traces to wait for before the kill.
const KILL_AFTER_TRACES: usize = 2_000;
const INGEST_TIMEOUT: Duration = Duration::from_secs(180);

/// A load generator child process writing to `acked_log`, its output to `log`.
fn spawn_loadgen(endpoint: &str, acked_log: &Path, log: &Path) -> Child {
    let out = File::create(log).expect("create the loadgen log");
    sightline()
        .args(["loadgen", "--endpoint", endpoint, "--seed", SEED])
        .args(["--concurrency", &CONCURRENCY.to_string()])
        .args(["--batch-traces", &BATCH_TRACES.to_string()])
        .args(["--template-pool", POOL, "--duration", "600", "--quiet"])
        .arg("--acked-log")
        .arg(acked_log)
        .stdout(out.try_clone().expect("clone the log handle"))
        .stderr(out)
        .spawn()
        .expect("spawn sightline loadgen")
}

fn fail_with_logs(what: &str, server: &Server, loadgen_log: &Path) -> ! {
    panic!(
        "{what}\n--- server log ---\n{}\n--- loadgen log ---\n{}",
        server.log_text(),
        std::fs::read_to_string(loadgen_log).unwrap_or_default()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_span_survives_sigkill_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let acked_before = dir.path().join("acked-before-crash.txt");
    let acked_resent = dir.path().join("acked-resent.txt");
    let loadgen_log = dir.path().join("loadgen.log");

    // Heavy concurrent ingest, then SIGKILL while requests are in flight.
    let mut server = Server::start(&data, &dir.path().join("server-1.log")).await;
    let mut loadgen = spawn_loadgen(&server.http_endpoint(), &acked_before, &loadgen_log);
    let started = Instant::now();
    while count_lines(&acked_before) < KILL_AFTER_TRACES {
        if let Some(status) = loadgen.try_wait().unwrap() {
            fail_with_logs(
                &format!("loadgen exited early ({status})"),
                &server,
                &loadgen_log,
            );
        }
        if !server.is_running() {
            fail_with_logs("server died before the kill", &server, &loadgen_log);
        }
        if started.elapsed() > INGEST_TIMEOUT {
            fail_with_logs(
                &format!(
                    "fewer than {KILL_AFTER_TRACES} traces acknowledged in {INGEST_TIMEOUT:?}"
                ),
                &server,
                &loadgen_log,
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        loadgen.try_wait().unwrap().is_none(),
        "the kill must come mid-ingest"
    );
    server.kill();
    // Answers stop with the server; the generator only records what was acknowledged before.
    loadgen.kill().unwrap();
    loadgen.wait().unwrap();
    let before = read_acked_log(&acked_before);
    assert!(before.len() >= KILL_AFTER_TRACES, "{} traces", before.len());

    // Restart on the same data directory: everything acknowledged is there, once.
    let server = Server::start(&data, &dir.path().join("server-2.log")).await;
    let problems = check_traces(&server, None, &before).await;
    assert!(
        problems.is_empty(),
        "{} of {} acknowledged traces are wrong after the crash, e.g.:\n{}",
        problems.len(),
        before.len(),
        problems[..problems.len().min(20)].join("\n")
    );

    // A retrying client resends the same traces: still stored once. The first run had at most
    // CONCURRENCY requests unanswered at any time, so its acknowledged traces are all among the
    // first `before + CONCURRENCY * BATCH_TRACES` it generated; resend a margin more.
    let resend = before.len() + 4 * CONCURRENCY * BATCH_TRACES;
    let report_path = dir.path().join("resent-report.json");
    let output = sightline()
        .args([
            "loadgen",
            "--endpoint",
            &server.http_endpoint(),
            "--seed",
            SEED,
        ])
        .args(["--concurrency", &CONCURRENCY.to_string()])
        .args(["--batch-traces", &BATCH_TRACES.to_string()])
        .args(["--template-pool", POOL, "--quiet"])
        .args(["--traces", &resend.to_string()])
        .arg("--acked-log")
        .arg(&acked_resent)
        .arg("--report-json")
        .arg(&report_path)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "resend failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report = read_report(&report_path);
    assert_eq!(report["traces_acked"], resend as u64, "{report:#}");
    assert_eq!(report["spans"]["failed"], 0, "{report:#}");

    let resent = read_acked_log(&acked_resent);
    let mut expected: HashMap<String, usize> = HashMap::new();
    for (id, spans) in before.iter().chain(&resent) {
        let previous = expected.insert(id.clone(), *spans);
        assert!(
            previous.is_none_or(|p| p == *spans),
            "trace {id} was generated with {previous:?} and {spans} spans: the seed must reproduce it"
        );
    }
    let resent_ids: HashSet<&String> = resent.iter().map(|(id, _)| id).collect();
    let missing = before
        .iter()
        .filter(|(id, _)| !resent_ids.contains(id))
        .count();
    assert_eq!(
        missing, 0,
        "the same seed must resend every trace acknowledged before the crash"
    );

    let all: Vec<(String, usize)> = expected.into_iter().collect();
    let problems = check_traces(&server, None, &all).await;
    assert!(
        problems.is_empty(),
        "{} of {} traces are wrong after resending, e.g.:\n{}",
        problems.len(),
        all.len(),
        problems[..problems.len().min(20)].join("\n")
    );

    // The trace list holds each trace once, and every acknowledged one.
    let listed = list_trace_ids(&server, None).await;
    let distinct: HashSet<&String> = listed.iter().collect();
    assert_eq!(
        distinct.len(),
        listed.len(),
        "the trace list repeats traces"
    );
    let unlisted: Vec<&String> = all
        .iter()
        .map(|(id, _)| id)
        .filter(|id| !distinct.contains(id))
        .collect();
    assert!(
        unlisted.is_empty(),
        "acknowledged traces missing from the list: {unlisted:?}"
    );
}
