//! `sightline loadgen` and `sightline demo` against a real server: every protocol delivers what
//! the report says it delivered, and the traces come back through the API as they were generated.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test that cannot proceed should panic

mod support;

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{
    check_traces, client, get_json, list_trace_ids, read_acked_log, read_report, sightline, Server,
};

const TRACES: usize = 300;

/// Runs the load generator to completion and returns its JSON report.
fn loadgen(dir: &Path, name: &str, args: &[&str]) -> (Value, Vec<(String, usize)>) {
    let report = dir.join(format!("{name}.json"));
    let acked = dir.join(format!("{name}.acked"));
    let output = sightline()
        .arg("loadgen")
        .args(args)
        .args(["--quiet", "--report-json"])
        .arg(&report)
        .arg("--acked-log")
        .arg(&acked)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "loadgen {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("acked spans/s"),
        "human summary on stdout:\n{stdout}"
    );
    (read_report(&report), read_acked_log(&acked))
}

fn assert_all_acknowledged(report: &Value, traces: usize) {
    assert_eq!(report["traces_acked"], traces as u64, "{report:#}");
    for field in ["requests", "spans"] {
        assert_eq!(report[field]["rejected"], 0, "{report:#}");
        assert_eq!(report[field]["failed"], 0, "{report:#}");
        assert_eq!(report[field]["acked"], report[field]["sent"], "{report:#}");
    }
    assert_eq!(
        report["latency_ms"]["count"], report["requests"]["acked"],
        "{report:#}"
    );
    assert!(
        report["latency_ms"]["p99"].as_f64().unwrap() > 0.0,
        "{report:#}"
    );
    assert!(
        report["acked_spans_per_s"].as_f64().unwrap() > 0.0,
        "{report:#}"
    );
}

/// The normalized call of every `chat` span carries what the generator put there.
async fn assert_llm_calls_are_normalized(server: &Server, project: &str, trace_ids: &[String]) {
    let client = client();
    let mut chats = 0;
    let mut priced = 0;
    for id in trace_ids.iter().take(40) {
        let (status, body) = get_json(
            &client,
            &server.url(&format!("/api/v1/traces/{id}?project={project}")),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        for span in body["spans"].as_array().unwrap() {
            let name = span["name"].as_str().unwrap();
            if !name.starts_with("chat ") {
                continue;
            }
            chats += 1;
            let llm = &span["llm"];
            assert_eq!(llm["operation"], "chat", "{span:#}");
            assert_eq!(
                format!("chat {}", llm["request_model"].as_str().unwrap()),
                name
            );
            assert!(llm["provider"].is_string(), "{span:#}");
            assert!(
                llm["session_id"].as_str().unwrap().starts_with("conv_"),
                "{span:#}"
            );
            assert!(
                llm["user_id"].as_str().unwrap().starts_with("user-"),
                "{span:#}"
            );
            assert!(
                !llm["input_messages"].as_array().unwrap().is_empty(),
                "{span:#}"
            );
            if llm["status"] == "ok" {
                assert!(
                    llm["usage"]["input_tokens"].as_u64().unwrap() > 0,
                    "{span:#}"
                );
                assert!(
                    llm["usage"]["output_tokens"].as_u64().unwrap() > 0,
                    "{span:#}"
                );
                assert!(
                    !llm["output_messages"].as_array().unwrap().is_empty(),
                    "{span:#}"
                );
            }
            if llm["cost"].is_object() {
                priced += 1;
            }
        }
    }
    assert!(chats > 0, "no chat spans in 40 traces");
    assert!(priced > 0, "no chat span was priced");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_protocol_delivers_what_the_report_says() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &dir.path().join("server.log")).await;
    let http = server.http_endpoint();
    let grpc = server.grpc_endpoint();
    let cases: [(&str, &str, &[&str]); 5] = [
        ("proto", &http, &["--protocol", "http-protobuf"]),
        (
            "proto-gzip",
            &http,
            &["--protocol", "http-protobuf", "--gzip"],
        ),
        ("json", &http, &["--protocol", "http-json"]),
        ("json-gzip", &http, &["--protocol", "http-json", "--gzip"]),
        ("grpc-gzip", &grpc, &["--protocol", "grpc", "--gzip"]),
    ];
    for (project, endpoint, extra) in cases {
        let traces = TRACES.to_string();
        let mut args = vec![
            "--endpoint",
            endpoint,
            "--project",
            project,
            "--traces",
            &traces,
            "--batch-traces",
            "25",
            "--concurrency",
            "4",
            "--template-pool",
            "0",
        ];
        args.extend_from_slice(extra);
        let (report, acked) = loadgen(dir.path(), project, &args);
        assert_all_acknowledged(&report, TRACES);
        assert_eq!(acked.len(), TRACES);
        let spans: usize = acked.iter().map(|(_, n)| n).sum();
        assert_eq!(report["spans"]["acked"], spans as u64);

        let problems = check_traces(&server, Some(project), &acked).await;
        assert!(problems.is_empty(), "{project}: {problems:#?}");
        let listed = list_trace_ids(&server, Some(project)).await;
        let listed_set: HashSet<&String> = listed.iter().collect();
        assert_eq!(listed.len(), TRACES, "{project}: trace list");
        assert!(
            acked.iter().all(|(id, _)| listed_set.contains(id)),
            "{project}"
        );
        let ids: Vec<String> = acked.into_iter().map(|(id, _)| id).collect();
        assert_llm_calls_are_normalized(&server, project, &ids).await;
    }
    // A plain gRPC run too, against the default project.
    let (report, acked) = loadgen(
        dir.path(),
        "grpc",
        &["--endpoint", &grpc, "--protocol", "grpc", "--traces", "100"],
    );
    assert_all_acknowledged(&report, 100);
    assert!(check_traces(&server, None, &acked).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_and_duration_pace_the_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &dir.path().join("server.log")).await;
    let started = Instant::now();
    let (report, acked) = loadgen(
        dir.path(),
        "paced",
        &[
            "--endpoint",
            &server.http_endpoint(),
            "--rate",
            "100",
            "--duration",
            "2",
            "--batch-traces",
            "5",
            "--template-pool",
            "16",
        ],
    );
    assert!(started.elapsed() >= Duration::from_secs(2));
    // 100 traces/s for 2 s in requests of 5: 40 requests, give or take the edges.
    let traces = report["traces_acked"].as_u64().unwrap();
    assert!((150..=215).contains(&traces), "{report:#}");
    assert_eq!(acked.len() as u64, traces);
    assert!(report["elapsed_s"].as_f64().unwrap() >= 1.9, "{report:#}");
}

#[test]
fn bad_options_are_refused_by_name() {
    for (args, needle) in [
        (&["--batch-traces", "0"][..], "--batch-traces"),
        (&["--concurrency", "0"][..], "--concurrency"),
        (&["--rate=-1"][..], "--rate"),
        (&["--endpoint", "localhost:4318"][..], "--endpoint"),
        (&["--protocol", "carrier-pigeon"][..], "--protocol"),
    ] {
        let output = sightline().arg("loadgen").args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} was accepted");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}

#[test]
fn an_unreachable_server_counts_as_failed_requests() {
    let dir = tempfile::tempdir().unwrap();
    let endpoint = format!("http://{}", support::free_addr());
    let (report, acked) = loadgen(
        dir.path(),
        "down",
        &[
            "--endpoint",
            &endpoint,
            "--traces",
            "40",
            "--template-pool",
            "4",
        ],
    );
    assert_eq!(report["requests"]["sent"], 2, "{report:#}");
    assert_eq!(report["requests"]["failed"], 2, "{report:#}");
    assert_eq!(report["spans"]["acked"], 0, "{report:#}");
    assert!(acked.is_empty());
    assert!(
        !report["errors"].as_array().unwrap().is_empty(),
        "{report:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_fills_the_api_with_an_hour_of_history_and_live_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let http = support::free_addr();
    let out = std::fs::File::create(dir.path().join("demo.log")).unwrap();
    let mut demo = sightline()
        .arg("demo")
        .arg("--http-addr")
        .arg(http.to_string())
        .arg("--grpc-addr")
        .arg(support::free_addr().to_string())
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--rate", "20"])
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let log = || std::fs::read_to_string(dir.path().join("demo.log")).unwrap_or_default();
    let client = client();
    let url = format!("http://{http}/api/v1/traces?limit=1000");
    let deadline = Instant::now() + Duration::from_secs(90);
    // History (200 traces) plus some live traffic.
    let traces = loop {
        assert!(
            demo.try_wait().unwrap().is_none(),
            "demo exited:\n{}",
            log()
        );
        assert!(
            Instant::now() < deadline,
            "demo did not fill the API:\n{}",
            log()
        );
        if let Ok(r) = client.get(&url).send().await {
            if r.status().is_success() {
                let body: Value = r.json().await.unwrap();
                let traces = body["traces"].as_array().unwrap().clone();
                if traces.len() >= 220 {
                    break traces;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let _ = demo.kill();
    let _ = demo.wait();
    assert!(
        log().contains(&format!(
            "Sightline demo running: http://{http}/api/v1/traces"
        )),
        "{}",
        log()
    );
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let starts: Vec<u64> = traces
        .iter()
        .map(|t| t["start_time_unix_nano"].as_u64().unwrap())
        .collect();
    let half_hour = 1_800_000_000_000;
    assert!(
        starts.iter().any(|&s| now_ns - s > half_hour),
        "history is back-dated"
    );
    assert!(
        starts.iter().any(|&s| now_ns - s < 60_000_000_000),
        "live traffic is recent"
    );
    let sessions: HashSet<&str> = traces
        .iter()
        .filter_map(|t| t["session_id"].as_str())
        .collect();
    assert!(
        sessions.len() < traces.len(),
        "sessions hold several traces"
    );
}
