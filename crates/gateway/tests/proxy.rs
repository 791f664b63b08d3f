//! The gateway against the in-process mock provider, recording into a real SQLite store: bytes
//! pass through unchanged, each call is recorded once with the right fields, and every way a call
//! can end (complete, upstream error, unreachable, timeout, broken stream, client gone, queue
//! full) is recorded or counted.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test that cannot proceed should panic

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::{json, Value};
use sightline_gateway::{Gateway, GatewayConfig, GatewayStats, GatewayStatsSnapshot};
use sightline_ingest::pipeline::enrich::StandardEnricher;
use sightline_ingest::{Pipeline, PipelineConfig};
use sightline_mock::{MockConfig, RunningMock};
use sightline_model::LlmCall;
use sightline_store::sqlite::{SqliteConfig, SqliteStore};
use sightline_store::{Enricher, Filter, PageRequest, SharedStore};

struct Harness {
    mock: RunningMock,
    store: SharedStore,
    stats: Arc<GatewayStats>,
    base: String,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

async fn harness(tweak: impl FnOnce(&mut GatewayConfig)) -> Harness {
    let mock = RunningMock::start(([127, 0, 0, 1], 0).into(), MockConfig::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let enricher: Arc<dyn Enricher> = Arc::new(StandardEnricher::builtin());
    let store: SharedStore = Arc::new(
        SqliteStore::open(
            SqliteConfig {
                path: dir.path().to_path_buf(),
                ..SqliteConfig::default()
            },
            enricher.clone(),
        )
        .unwrap(),
    );
    let pipeline = Pipeline::new(store.clone(), enricher, PipelineConfig::default());
    let mut config = GatewayConfig {
        openai_upstream: mock.base_url(),
        anthropic_upstream: mock.base_url(),
        ..GatewayConfig::default()
    };
    tweak(&mut config);
    let (gateway, _task) = Gateway::start(config, pipeline).unwrap();
    let stats = gateway.stats();
    let app = gateway.router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Harness {
        base: format!("http://{addr}"),
        mock,
        store,
        stats,
        client: reqwest::Client::new(),
        _dir: dir,
    }
}

impl Harness {
    async fn calls(&self, n: usize) -> Vec<LlmCall> {
        self.calls_in("default", n).await
    }

    /// The calls recorded in `project`, oldest first, once there are at least `n`.
    async fn calls_in(&self, project: &str, n: usize) -> Vec<LlmCall> {
        for _ in 0..200 {
            let page = self
                .store
                .list_calls(
                    &Filter {
                        project: project.into(),
                        ..Filter::default()
                    },
                    &PageRequest::default(),
                )
                .await
                .unwrap();
            if page.items.len() >= n {
                let mut items = page.items;
                items.sort_by_key(|c| c.start_time_unix_nano);
                return items;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("fewer than {n} calls were recorded");
    }

    /// The gateway's counters once `n` records are counted as stored: a call is visible in the
    /// store as soon as its commit is, a moment before the recorder counts it.
    async fn stored(&self, n: u64) -> GatewayStatsSnapshot {
        for _ in 0..200 {
            let s = self.stats.snapshot();
            if s.records_stored >= n {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.stats.snapshot()
    }

    fn post(&self, url: String, body: &Value) -> reqwest::RequestBuilder {
        self.client
            .post(url)
            .header("authorization", "Bearer sk-secret")
            .json(body)
    }
}

fn chat(stream: bool) -> Value {
    json!({"model": "gpt-4o-mini", "stream": stream, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "hello"}], "max_tokens": 20})
}

#[tokio::test]
async fn responses_are_passed_through_and_recorded() {
    let h = harness(|_| {}).await;
    for stream in [false, true] {
        let direct = h
            .post(
                format!("{}/v1/chat/completions", h.mock.base_url()),
                &chat(stream),
            )
            .send()
            .await
            .unwrap();
        let through = h
            .post(
                format!("{}/gateway/openai/v1/chat/completions", h.base),
                &chat(stream),
            )
            .header("x-sightline-user-id", "u1")
            .header("x-sightline-tags", "a,b")
            .send()
            .await
            .unwrap();
        assert_eq!(direct.status(), through.status());
        assert_eq!(
            direct.headers().get("content-type"),
            through.headers().get("content-type")
        );
        assert_eq!(
            direct.bytes().await.unwrap(),
            through.bytes().await.unwrap()
        );
    }
    let calls = h.calls(2).await;
    assert_eq!(calls[0].convention, "gateway");
    assert_eq!(calls[0].user_id.as_deref(), Some("u1"));
    assert_eq!(calls[0].tags, vec!["a", "b"]);
    assert_eq!(calls[1].params.stream, Some(true));
    assert!(calls[1].ttft_ms.is_some());
    assert!(calls[1].usage.output_tokens.unwrap() > 0);
    for call in &calls {
        assert!(call.output_messages[0].content.is_some());
        assert!(call.cost.is_some(), "gpt-4o-mini is priced");
    }
    assert!(
        sightline_store::background::requests_favoured(),
        "the store's writer yields to proxied calls"
    );
    let s = h.stored(2).await;
    assert_eq!(s.requests, 2);
    assert_eq!(s.records_stored, 2);
    assert_eq!(s.records_dropped_queue_full, 0);
}

#[tokio::test]
async fn unreachable_upstream_is_a_502_and_recorded() {
    // A port nothing listens on: bind, take the port, close.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let h = harness(|c| c.anthropic_upstream = format!("http://127.0.0.1:{port}")).await;
    let r = h
        .client
        .post(format!("{}/gateway/anthropic/v1/messages", h.base))
        .header("x-api-key", "k")
        .header("anthropic-version", "2023-06-01")
        .json(
            &json!({"model": "claude-3-5-haiku-20241022", "max_tokens": 5,
            "messages": [{"role": "user", "content": "hi"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "upstream_unreachable");
    let calls = h.calls(1).await;
    assert_eq!(calls[0].error_type.as_deref(), Some("upstream_unreachable"));
    assert_eq!(calls[0].provider.as_deref(), Some("anthropic"));
    assert_eq!(h.stats.snapshot().upstream_errors, 1);
}

#[tokio::test]
async fn silent_upstream_times_out() {
    let h = harness(|c| c.timeout = Duration::from_millis(300)).await;
    let r = h
        .post(
            format!("{}/gateway/openai/v1/chat/completions", h.base),
            &chat(false),
        )
        .header("x-mock-fault", "timeout")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 504);
    let calls = h.calls(1).await;
    assert_eq!(calls[0].error_type.as_deref(), Some("timeout"));
    assert_eq!(h.stats.snapshot().upstream_errors, 1);
}

#[tokio::test]
async fn client_leaving_mid_stream_is_recorded_as_cancelled() {
    let h = harness(|_| {}).await;
    let r = h
        .post(
            format!("{}/gateway/openai/v1/chat/completions", h.base),
            &json!({"model": "gpt-4o", "stream": true, "max_tokens": 100,
                "messages": [{"role": "user", "content": "story"}]}),
        )
        .header("x-mock-tokens-per-s", "50")
        .send()
        .await
        .unwrap();
    let mut body = r.bytes_stream();
    let mut seen = 0;
    while let Some(chunk) = body.next().await {
        seen += chunk.unwrap().len();
        if seen > 400 {
            break;
        }
    }
    drop(body);
    let calls = h.calls(1).await;
    assert_eq!(calls[0].error_type.as_deref(), Some("cancelled"));
    assert!(calls[0].output_messages[0].content.is_some());
    assert_eq!(h.stats.snapshot().client_cancelled, 1);
}

#[tokio::test]
async fn broken_and_malformed_upstream_bodies_are_recorded() {
    let h = harness(|_| {}).await;
    let url = format!("{}/gateway/openai/v1/chat/completions", h.base);
    let r = h
        .post(url.clone(), &chat(true))
        .header("x-mock-fault", "disconnect")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.is_err(), "the client sees the stream break");
    let r = h
        .post(url, &chat(false))
        .header("x-mock-fault", "malformed")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(serde_json::from_slice::<Value>(&r.bytes().await.unwrap()).is_err());
    let calls = h.calls(2).await;
    assert_eq!(calls[0].error_type.as_deref(), Some("upstream_error"));
    assert_eq!(calls[1].error_type.as_deref(), Some("malformed_response"));
    // A stream that broke off is the upstream's failure; a malformed body it finished is not.
    let s = h.stats.snapshot();
    assert_eq!((s.upstream_errors, s.client_cancelled), (1, 0), "{s:?}");
}

#[tokio::test]
async fn a_full_queue_is_counted_not_hidden() {
    // One slot, and a burst of concurrent calls: whatever does not fit is counted as dropped, and
    // every call is either stored or counted.
    let h = harness(|c| {
        c.queue_capacity = 1;
        c.batch_max = 1;
    })
    .await;
    let url = format!("{}/gateway/openai/v1/models", h.base);
    let requests = (0..40).map(|_| {
        h.client
            .get(url.clone())
            .header("authorization", "Bearer k")
            .send()
    });
    for r in futures::future::join_all(requests).await {
        assert_eq!(r.unwrap().status(), 200);
    }
    let mut s = h.stats.snapshot();
    for _ in 0..100 {
        if s.records_stored + s.records_dropped_queue_full == 40 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        s = h.stats.snapshot();
    }
    assert_eq!(s.requests, 40);
    assert_eq!(s.records_stored + s.records_dropped_queue_full, 40, "{s:?}");
    assert_eq!(s.queue_capacity, 1);
}

#[tokio::test]
async fn the_queue_is_bounded_in_bytes_too() {
    // Room for one call's bodies at a time: of a burst of concurrent calls, whatever does not
    // fit is counted as dropped, and every call is either stored or counted.
    let h = harness(|c| {
        c.queue_max_bytes = 600;
        c.batch_max = 1;
    })
    .await;
    // An idle recorder looks at its queue only every 64 ms: the burst below arrives between two
    // looks.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let url = format!("{}/gateway/openai/v1/chat/completions", h.base);
    let requests = (0..30).map(|_| h.post(url.clone(), &chat(false)).send());
    for r in futures::future::join_all(requests).await {
        assert_eq!(r.unwrap().status(), 200);
    }
    let mut s = h.stats.snapshot();
    for _ in 0..100 {
        if s.records_stored + s.records_dropped_queue_full == 30 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        s = h.stats.snapshot();
    }
    assert_eq!(s.records_stored + s.records_dropped_queue_full, 30, "{s:?}");
    assert!(
        s.records_stored >= 1,
        "a call alone is always queued: {s:?}"
    );
    assert!(s.records_dropped_queue_full >= 1, "{s:?}");
}

#[tokio::test]
async fn oversized_request_is_refused() {
    let h = harness(|c| c.max_request_bytes = 100).await;
    let r = h
        .post(
            format!("{}/gateway/openai/v1/chat/completions", h.base),
            &json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "x".repeat(500)}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "request_too_large");
    assert_eq!(
        h.calls(1).await[0].error_type.as_deref(),
        Some("request_too_large")
    );
}

#[tokio::test]
async fn projects_are_named_as_on_otlp() {
    let h = harness(|_| {}).await;
    let send = |project: &'static str| {
        h.post(
            format!("{}/gateway/openai/v1/chat/completions", h.base),
            &chat(false),
        )
        .header("x-sightline-project", project)
        .send()
    };
    let r = send("team a/prod").await.unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_project");
    assert_eq!(body["error"]["field"], "x-sightline-project");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`team a/prod` is not a project name"),
        "{body}"
    );

    assert_eq!(send("team-a.prod").await.unwrap().status(), 200);
    let calls = h.calls_in("team-a.prod", 1).await;
    assert_eq!(calls.len(), 1, "the refused call is not recorded");
    assert_eq!(h.stored(1).await.records_stored, 1);
}

#[tokio::test]
async fn encoded_paths_reach_the_upstream_unchanged() {
    let h = harness(|_| {}).await;
    let get = |url: String| h.client.get(url).header("authorization", "Bearer k").send();
    for id in ["gpt-4o", "ft%3Agpt-4o%3Aorg"] {
        let direct = get(format!("{}/v1/models/{id}", h.mock.base_url()))
            .await
            .unwrap();
        let through = get(format!("{}/gateway/openai/v1/models/{id}", h.base))
            .await
            .unwrap();
        assert_eq!(direct.status(), through.status());
        assert_eq!(
            direct.bytes().await.unwrap(),
            through.bytes().await.unwrap()
        );
    }
}

#[tokio::test]
async fn client_giving_up_before_the_answer_is_recorded_as_cancelled() {
    let h = harness(|_| {}).await;
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let r = impatient
        .post(format!("{}/gateway/openai/v1/chat/completions", h.base))
        .header("authorization", "Bearer k")
        .header("x-mock-latency-ms", "1500")
        .json(&chat(false))
        .send()
        .await;
    assert!(r.is_err(), "the client timed out");
    let calls = h.calls(1).await;
    assert_eq!(calls[0].error_type.as_deref(), Some("cancelled"));
    assert_eq!(h.stats.snapshot().client_cancelled, 1);
}

/// Sends `request` (a whole HTTP/1.1 request, written as is) to `base` and returns the response
/// head and body as text; no client library normalizes the path on the way.
async fn raw_http(base: &str, request: String) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    socket.read_to_end(&mut out).await.unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn paths_that_would_leave_the_upstream_base_are_refused() {
    let h = harness(|_| {}).await;
    for path in [
        "/gateway/openai/v1/../../admin/x",
        "/gateway/openai/v1/%2e%2e/%2E%2e/admin/y",
        "/gateway/openai/v1/models/.%2e/x",
        "/gateway/anthropic/v1/..\\..\\admin",
        "/gateway/openai/v1/./models",
    ] {
        let response = raw_http(
            &h.base,
            format!("GET {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer k\r\nconnection: close\r\n\r\n"),
        )
        .await;
        assert!(response.starts_with("HTTP/1.1 400"), "{path}: {response}");
        assert!(response.contains("invalid_path"), "{path}: {response}");
    }
    // Dots inside a segment are just characters.
    let r = h
        .client
        .get(format!("{}/gateway/openai/v1/models/gpt-4.1..mini", h.base))
        .header("authorization", "Bearer k")
        .send()
        .await
        .unwrap();
    assert_ne!(r.status(), 400);
    assert_eq!(
        h.stored(1).await.records_stored,
        1,
        "refused paths are neither proxied nor recorded"
    );
}

#[tokio::test]
async fn a_key_in_the_query_string_is_neither_answered_nor_recorded() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let h = harness(|c| c.openai_upstream = format!("http://127.0.0.1:{port}")).await;
    let r = h
        .post(
            format!(
                "{}/gateway/openai/v1/chat/completions?key=AIzaSECRETKEY",
                h.base
            ),
            &chat(false),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    let body = r.text().await.unwrap();
    assert!(!body.contains("SECRETKEY"), "{body}");
    let calls = h.calls(1).await;
    let stored = serde_json::to_string(&calls[0]).unwrap();
    assert!(!stored.contains("SECRETKEY"), "{stored}");
    assert_eq!(calls[0].error_type.as_deref(), Some("upstream_unreachable"));
}

#[tokio::test]
async fn attribution_headers_keep_non_ascii_text() {
    let h = harness(|_| {}).await;
    let r = h
        .post(
            format!("{}/gateway/openai/v1/chat/completions", h.base),
            &chat(false),
        )
        // UTF-8, as most clients send it, and Latin-1, as clients that encode headers as
        // ISO-8859-1 do.
        .header(
            "x-sightline-user-id",
            reqwest::header::HeaderValue::from_bytes("José".as_bytes()).unwrap(),
        )
        .header(
            "x-sightline-session-id",
            reqwest::header::HeaderValue::from_bytes(b"Z\xfcrich").unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let calls = h.calls(1).await;
    assert_eq!(calls[0].user_id.as_deref(), Some("José"));
    assert_eq!(calls[0].session_id.as_deref(), Some("Zürich"));
}

#[tokio::test]
async fn headers_named_by_connection_stay_on_their_hop() {
    // An upstream that answers with the request headers it saw, and names one of its own
    // response headers in `Connection`.
    let app = axum::Router::new().fallback(|headers: axum::http::HeaderMap| async move {
        let seen: Vec<String> = headers.keys().map(|k| k.to_string()).collect();
        (
            [
                ("connection", "x-upstream-hop"),
                ("x-upstream-hop", "1"),
                ("x-kept", "1"),
            ],
            axum::Json(json!({ "seen": seen })),
        )
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let h = harness(|c| c.openai_upstream = upstream).await;
    let response = raw_http(
        &h.base,
        "GET /gateway/openai/v1/models HTTP/1.1\r\nhost: x\r\nconnection: close, x-client-hop\r\n\
             x-client-hop: 1\r\nx-forwarded-ok: 1\r\nexpect: 100-continue\r\n\r\n"
            .to_string(),
    )
    .await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let lower = response.to_ascii_lowercase();
    assert!(lower.contains("x-kept: 1"), "{response}");
    assert!(!lower.contains("x-upstream-hop: 1"), "{response}");
    let body = &response[response.find("\r\n\r\n").unwrap() + 4..];
    let body = body.trim_start_matches(|c: char| c.is_ascii_hexdigit() || c == '\r' || c == '\n');
    assert!(body.contains("x-forwarded-ok"), "{body}");
    assert!(!body.contains("x-client-hop"), "{body}");
    assert!(!body.contains("expect"), "{body}");
}
