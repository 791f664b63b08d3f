//! `sightline demo` sends part of its traffic through the gateway to its in-process mock
//! provider: OpenAI and Anthropic calls show up in the API as gateway calls.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test that cannot proceed should panic

mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{client, free_addr, sightline};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_records_gateway_calls_to_its_mock_provider() {
    let dir = tempfile::tempdir().unwrap();
    let http = free_addr();
    let out = std::fs::File::create(dir.path().join("demo.log")).unwrap();
    let mut demo = sightline()
        .arg("demo")
        .arg("--http-addr")
        .arg(http.to_string())
        .arg("--grpc-addr")
        .arg(free_addr().to_string())
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let log = || std::fs::read_to_string(dir.path().join("demo.log")).unwrap_or_default();
    let client = client();
    let url = format!("http://{http}/api/v1/calls?service=demo-gateway-app&limit=100");
    let deadline = Instant::now() + Duration::from_secs(90);
    let calls = loop {
        assert!(
            demo.try_wait().unwrap().is_none(),
            "demo exited:\n{}",
            log()
        );
        assert!(
            Instant::now() < deadline,
            "no gateway calls from the demo:\n{}",
            log()
        );
        if let Ok(r) = client.get(&url).send().await {
            if r.status().is_success() {
                let body: Value = r.json().await.unwrap();
                let calls = body["calls"].as_array().unwrap().clone();
                let providers: HashSet<&str> = calls
                    .iter()
                    .filter_map(|c| c["provider"].as_str())
                    .collect();
                if providers.contains("openai") && providers.contains("anthropic") {
                    break calls;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let _ = demo.kill();
    let _ = demo.wait();
    for call in &calls {
        assert_eq!(call["convention"], "gateway");
        assert_eq!(call["tags"], serde_json::json!(["demo", "gateway"]));
        assert!(call["user_id"].is_string());
        assert!(call["session_id"].is_string());
    }
    assert!(
        log().contains("Gateway calls to a mock provider"),
        "{}",
        log()
    );
}
