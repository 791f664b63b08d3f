//! End-to-end harness: the real `sightline` binary as a child process, driven over its sockets.
//!
//! Servers listen on free loopback ports and log to a file in the test's temporary directory, which
//! is printed when a test fails so the server's side of a failure is visible. Dropping a
//! [`Server`] kills it, so a failing test leaves no process behind.
#![allow(dead_code)] // each test binary uses its own part of the harness

use std::collections::HashSet;
use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use serde_json::Value;

/// How long a server may take to answer `/readyz` after starting.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The `sightline` binary under test.
pub fn sightline() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sightline"));
    cmd.env("SIGHTLINE_LOG", "warn").stdin(Stdio::null());
    cmd
}

/// A loopback address no one listens on right now.
pub fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
}

/// A running `sightline serve`.
pub struct Server {
    /// OTLP/HTTP and API listener.
    pub http: SocketAddr,
    /// OTLP/gRPC listener.
    pub grpc: SocketAddr,
    child: Child,
    log: PathBuf,
}

impl Server {
    /// Starts `sightline serve` on `data_dir` and waits until `/readyz` answers 200.
    pub async fn start(data_dir: &Path, log: &Path) -> Self {
        let http = free_addr();
        let grpc = free_addr();
        let out = File::create(log).expect("create the server log");
        let child = sightline()
            .arg("serve")
            .arg("--http-addr")
            .arg(http.to_string())
            .arg("--grpc-addr")
            .arg(grpc.to_string())
            .arg("--data-dir")
            .arg(data_dir)
            .stdout(out.try_clone().expect("clone the log handle"))
            .stderr(out)
            .spawn()
            .expect("spawn sightline serve");
        let mut server = Self {
            http,
            grpc,
            child,
            log: log.to_path_buf(),
        };
        server.wait_ready().await;
        server
    }

    async fn wait_ready(&mut self) {
        let client = client();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll the server") {
                panic!(
                    "server exited ({status}) before it was ready; its log:\n{}",
                    self.log_text()
                );
            }
            if let Ok(r) = client.get(self.url("/readyz")).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "server not ready after {READY_TIMEOUT:?}; its log:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `http://ADDR{path}` on the HTTP listener.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    /// Base URL of the HTTP listener.
    pub fn http_endpoint(&self) -> String {
        format!("http://{}", self.http)
    }

    /// Base URL of the gRPC listener.
    pub fn grpc_endpoint(&self) -> String {
        format!("http://{}", self.grpc)
    }

    /// Kills the server with SIGKILL: no signal handler, no flush, no goodbye.
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL the server");
        self.child.wait().expect("reap the server");
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("poll the server").is_none()
    }

    /// What the server wrote to stdout and stderr so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP client for the API.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("build the HTTP client")
}

/// GETs `url` and parses the JSON body, returning the status too.
pub async fn get_json(client: &reqwest::Client, url: &str) -> (u16, Value) {
    let r = client
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = r.status().as_u16();
    let body = r.bytes().await.expect("read the body");
    let json = serde_json::from_slice(&body).unwrap_or_else(|e| {
        panic!(
            "GET {url}: {status} body is not JSON ({e}): {}",
            String::from_utf8_lossy(&body)
        )
    });
    (status, json)
}

/// Reads a `--acked-log` file: `(trace id, span count)` per complete line.
pub fn read_acked_log(path: &Path) -> Vec<(String, usize)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = match text.rfind('\n') {
        Some(end) => &text[..=end],
        None => "",
    };
    complete
        .lines()
        .map(|line| {
            let (id, spans) = line
                .split_once(' ')
                .unwrap_or_else(|| panic!("bad acked-log line `{line}`"));
            assert_eq!(id.len(), 32, "bad trace id in `{line}`");
            (id.to_string(), spans.parse().expect("span count"))
        })
        .collect()
}

/// Lines in a file written so far.
pub fn count_lines(path: &Path) -> usize {
    std::fs::read(path)
        .map(|b| b.iter().filter(|&&c| c == b'\n').count())
        .unwrap_or(0)
}

/// Checks that every trace is stored with exactly the given number of spans, each span once.
/// Returns one line per problem.
pub async fn check_traces(
    server: &Server,
    project: Option<&str>,
    traces: &[(String, usize)],
) -> Vec<String> {
    let client = client();
    let query = project.map(|p| format!("?project={p}")).unwrap_or_default();
    stream::iter(traces)
        .map(|(id, expected)| {
            let url = server.url(&format!("/api/v1/traces/{id}{query}"));
            let client = client.clone();
            async move {
                let (status, body) = get_json(&client, &url).await;
                if status != 200 {
                    return Some(format!("trace {id}: HTTP {status}: {body}"));
                }
                let spans = body["spans"].as_array().cloned().unwrap_or_default();
                let ids: HashSet<&str> =
                    spans.iter().filter_map(|s| s["span_id"].as_str()).collect();
                if spans.len() != *expected || ids.len() != *expected {
                    return Some(format!(
                        "trace {id}: sent {expected} spans, stored {} ({} distinct ids)",
                        spans.len(),
                        ids.len()
                    ));
                }
                None
            }
        })
        .buffer_unordered(16)
        .filter_map(|problem| async move { problem })
        .collect()
        .await
}

/// Every trace id of the trace list, following `next_cursor` to the end (duplicates kept).
pub async fn list_trace_ids(server: &Server, project: Option<&str>) -> Vec<String> {
    let client = client();
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut params = vec![("limit", "1000".to_string())];
        if let Some(p) = project {
            params.push(("project", p.to_string()));
        }
        if let Some(c) = &cursor {
            params.push(("cursor", c.clone()));
        }
        let url = reqwest::Url::parse_with_params(&server.url("/api/v1/traces"), &params)
            .expect("trace list URL")
            .to_string();
        let (status, body) = get_json(&client, &url).await;
        assert_eq!(status, 200, "{url}: {body}");
        let page = body["traces"].as_array().expect("traces array");
        ids.extend(
            page.iter()
                .map(|t| t["trace_id"].as_str().expect("trace_id").to_string()),
        );
        match body["next_cursor"].as_str() {
            Some(c) if !page.is_empty() => cursor = Some(c.to_string()),
            _ => return ids,
        }
    }
}

/// Reads a `--report-json` file.
pub fn read_report(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read report {}: {e}", path.display()));
    serde_json::from_str(&text).expect("report is JSON")
}
