//! Recorded OTLP fixtures from the real Python GenAI instrumentations, decoded and normalized.
//!
//! `tests/fixtures/otlp/` holds request bodies exactly as the official OpenTelemetry openai
//! instrumentation (default and latest conventions, content on the span or in log events),
//! OpenLLMetry, OpenInference and the Langfuse SDK exported them against a mock OpenAI endpoint
//! (`tests/fixtures/record/record.py` recorded them; `tests/fixtures/README.md` says how to
//! re-record). `manifest.json` says what each fixture must normalize to. Each test here decodes one
//! instrumentation's fixtures the way the receivers do, attaches GenAI log events to their spans
//! the way the store does, normalizes every span and compares the calls with the manifest; it
//! reports every mismatch of every fixture at once, naming fixture, call and field.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a fixture that cannot be read should panic

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::path::{Path, PathBuf};

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;
use serde_json::Value;
use sightline_ingest::otlp::decode::{logs_from_request, spans_from_request, Limits};
use sightline_model::prices::PriceTable;
use sightline_model::semconv::normalize;
use sightline_model::{Event, LlmCall, Message, Span};

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/otlp")
}

fn manifest() -> Value {
    let path = fixtures_dir().join("manifest.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

fn fixtures_of(manifest: &Value, instrumentation: &str) -> Vec<Value> {
    manifest["fixtures"]
        .as_array()
        .expect("manifest has a fixtures array")
        .iter()
        .filter(|f| f["instrumentation"] == instrumentation)
        .cloned()
        .collect()
}

fn read(file: &str) -> Vec<u8> {
    let path = fixtures_dir().join(file);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Collects mismatches instead of stopping at the first, so one run shows every mapping gap.
struct Report {
    problems: Vec<String>,
}

impl Report {
    fn new() -> Self {
        Self {
            problems: Vec::new(),
        }
    }

    fn fail(&mut self, at: &str, what: String) {
        self.problems.push(format!("{at}: {what}"));
    }

    fn eq<T: PartialEq + Debug + ?Sized>(&mut self, at: &str, field: &str, want: &T, got: &T) {
        if want != got {
            self.fail(at, format!("{field}: expected {want:?}, got {got:?}"));
        }
    }

    fn finish(self, instrumentation: &str) {
        if !self.problems.is_empty() {
            panic!(
                "{} mismatch(es) in the {instrumentation} fixtures:\n  {}",
                self.problems.len(),
                self.problems.join("\n  ")
            );
        }
    }
}

/// Decodes a fixture's spans and attaches its GenAI log events to them, as ingest and the store
/// do for a live client.
fn decode_fixture(fixture: &Value, report: &mut Report) -> Vec<Span> {
    let name = fixture["name"].as_str().unwrap_or("?");
    let traces_file = fixture["traces"].as_str().expect("every fixture has spans");
    let req = ExportTraceServiceRequest::decode(read(traces_file).as_slice())
        .unwrap_or_else(|e| panic!("{traces_file}: not an ExportTraceServiceRequest: {e}"));
    let decoded = spans_from_request(&req, "default", &Limits::default());
    for r in &decoded.rejected {
        report.fail(name, format!("span rejected by the decoder: {r}"));
    }
    let mut spans = decoded.items;

    if let Some(logs_file) = fixture["logs"].as_str() {
        let req = ExportLogsServiceRequest::decode(read(logs_file).as_slice())
            .unwrap_or_else(|e| panic!("{logs_file}: not an ExportLogsServiceRequest: {e}"));
        let decoded = logs_from_request(&req, "default", &Limits::default());
        for r in &decoded.rejected {
            report.fail(name, format!("log record rejected by the decoder: {r}"));
        }
        let mut attached = 0;
        for log in decoded.items {
            if !log.is_genai_event() {
                continue;
            }
            let target = spans
                .iter_mut()
                .find(|s| Some(s.span_id) == log.span_id && Some(s.trace_id) == log.trace_id);
            match target {
                Some(span) => {
                    span.events.push(Event {
                        time_unix_nano: log.time_unix_nano,
                        name: log.event_name.clone().unwrap_or_default(),
                        attributes: log.attributes.clone(),
                        body: log.body.clone(),
                    });
                    attached += 1;
                }
                None => report.fail(
                    name,
                    format!(
                        "GenAI log event {:?} names no span of the fixture",
                        log.event_name
                    ),
                ),
            }
        }
        if attached == 0 {
            report.fail(
                name,
                "the logs fixture has no GenAI event with a span".into(),
            );
        }
    }
    spans
}

fn opt_str(v: &Value) -> Option<String> {
    v.as_str().map(str::to_string)
}

/// Compares a string field: a JSON string must equal, `null` means it must be absent.
fn check_str(report: &mut Report, at: &str, field: &str, want: &Value, got: Option<&str>) {
    match want {
        Value::Null => report.eq(at, field, &None, &got.map(str::to_string)),
        Value::String(s) => report.eq(at, field, &Some(s.clone()), &got.map(str::to_string)),
        other => report.fail(
            at,
            format!("{field}: manifest value {other} is not a string"),
        ),
    }
}

fn check_u64(report: &mut Report, at: &str, field: &str, want: &Value, got: Option<u64>) {
    report.eq(at, field, &want.as_u64(), &got);
}

/// Tool-call arguments compare as JSON when both sides parse (instrumentations re-serialize them
/// with other spacing, or send them as objects), else as text.
fn same_arguments(want: &Value, got: Option<&str>) -> bool {
    let want_text = match want {
        Value::String(s) => s.clone(),
        Value::Null => return got.is_none(),
        other => other.to_string(),
    };
    let Some(got) = got else { return false };
    match (
        serde_json::from_str::<Value>(&want_text),
        serde_json::from_str::<Value>(got),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => want_text == got,
    }
}

fn check_message(report: &mut Report, at: &str, want: &Value, got: &Message) {
    check_str(report, at, "role", &want["role"], Some(&got.role));
    if let Some(content) = want.get("content") {
        check_str(report, at, "content", content, got.content.as_deref());
    }
    if let Some(id) = want.get("tool_call_id") {
        check_str(report, at, "tool_call_id", id, got.tool_call_id.as_deref());
    }
    if let Some(calls) = want.get("tool_calls").and_then(Value::as_array) {
        if calls.len() != got.tool_calls.len() {
            report.fail(
                at,
                format!(
                    "tool_calls: expected {} call(s), got {:?}",
                    calls.len(),
                    got.tool_calls
                ),
            );
            return;
        }
        for (i, (w, g)) in calls.iter().zip(&got.tool_calls).enumerate() {
            let at = format!("{at}.tool_calls[{i}]");
            check_str(report, &at, "name", &w["name"], Some(&g.name));
            if let Some(id) = w.get("id") {
                check_str(report, &at, "id", id, g.id.as_deref());
            }
            if let Some(args) = w.get("arguments") {
                if !same_arguments(args, g.arguments.as_deref()) {
                    report.fail(
                        &at,
                        format!("arguments: expected {args}, got {:?}", g.arguments),
                    );
                }
            }
        }
    }
}

fn check_messages(
    report: &mut Report,
    at: &str,
    field: &str,
    want: &[Value],
    got: &[Message],
    system_instructions: Option<&str>,
) {
    let mut want = want;
    // A leading system message may be kept as system instructions instead of as a message.
    if field == "input_messages"
        && want.first().is_some_and(|m| m["role"] == "system")
        && got.first().is_none_or(|m| m.role != "system")
    {
        check_str(
            report,
            at,
            "system_instructions (the system message)",
            &want[0]["content"],
            system_instructions,
        );
        want = &want[1..];
    }
    if want.len() != got.len() {
        let roles: Vec<&str> = got.iter().map(|m| m.role.as_str()).collect();
        report.fail(
            at,
            format!(
                "{field}: expected {} message(s), got {} with roles {roles:?}: {got:?}",
                want.len(),
                got.len()
            ),
        );
        return;
    }
    for (i, (w, g)) in want.iter().zip(got).enumerate() {
        check_message(report, &format!("{at}.{field}[{i}]"), w, g);
    }
}

fn check_params(report: &mut Report, at: &str, want: &Value, call: &LlmCall) {
    let Some(want) = want.as_object() else { return };
    let p = &call.params;
    for (key, value) in want {
        let field = format!("params.{key}");
        match key.as_str() {
            "temperature" => report.eq(at, &field, &value.as_f64(), &p.temperature),
            "top_p" => report.eq(at, &field, &value.as_f64(), &p.top_p),
            "max_tokens" => report.eq(at, &field, &value.as_u64(), &p.max_tokens),
            "seed" => report.eq(at, &field, &value.as_i64(), &p.seed),
            "stream" => report.eq(at, &field, &value.as_bool(), &p.stream),
            other => report.fail(at, format!("manifest names unknown parameter {other}")),
        }
    }
}

fn check_cost(report: &mut Report, at: &str, want: &Value, call: &LlmCall) {
    let cost = PriceTable::builtin().cost(call);
    match (want.as_f64(), cost) {
        (None, None) => {}
        (None, Some(c)) => report.fail(
            at,
            format!("cost: expected none (unpriced model), got {c:?}"),
        ),
        (Some(w), None) => report.fail(
            at,
            format!(
                "cost: expected ${w} for model {:?}, got none (no price found)",
                call.model()
            ),
        ),
        (Some(w), Some(c)) => {
            if (c.total_usd - w).abs() > w * 0.01 {
                report.fail(
                    at,
                    format!(
                        "cost.total_usd: expected ${w} (±1%) for {:?}, got ${} from {}",
                        call.model(),
                        c.total_usd,
                        c.price_id
                    ),
                );
            }
            if (c.input_usd + c.output_usd - c.total_usd).abs() > 1e-12 {
                report.fail(at, format!("cost: input + output != total in {c:?}"));
            }
        }
    }
}

fn check_call(report: &mut Report, at: &str, want: &Value, fixture: &Value, call: &LlmCall) {
    let Some(fields) = want.as_object() else {
        report.fail(at, "manifest call is not an object".into());
        return;
    };
    for (key, value) in fields {
        match key.as_str() {
            "operation" => check_str(report, at, key, value, Some(&call.operation)),
            "provider" => check_str(report, at, key, value, call.provider.as_deref()),
            "request_model" => check_str(report, at, key, value, call.request_model.as_deref()),
            "response_model" => check_str(report, at, key, value, call.response_model.as_deref()),
            "model" => check_str(report, at, "model()", value, call.model()),
            "response_id" => check_str(report, at, key, value, call.response_id.as_deref()),
            "input_tokens" => check_u64(report, at, key, value, call.usage.input_tokens),
            "output_tokens" => check_u64(report, at, key, value, call.usage.output_tokens),
            "total_tokens" => check_u64(report, at, key, value, call.usage.total_tokens),
            "cost_usd" => check_cost(report, at, value, call),
            "params" => check_params(report, at, value, call),
            "input_messages" | "output_messages" => {
                let got = if key == "input_messages" {
                    &call.input_messages
                } else {
                    &call.output_messages
                };
                let want: Vec<Value> = value.as_array().cloned().unwrap_or_default();
                check_messages(
                    report,
                    at,
                    key,
                    &want,
                    got,
                    call.system_instructions.as_deref(),
                );
            }
            "finish_reasons" => {
                let want: Vec<String> = value
                    .as_array()
                    .map(|a| a.iter().filter_map(opt_str).collect())
                    .unwrap_or_default();
                report.eq(at, key, &want, &call.finish_reasons);
            }
            "tool_definitions" => {
                let defs = call
                    .tool_definitions
                    .as_ref()
                    .map(Value::to_string)
                    .unwrap_or_default();
                for name in value
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                {
                    if !defs.contains(&format!("\"{name}\"")) {
                        report.fail(
                            at,
                            format!(
                                "tool_definitions: expected a definition of {name:?}, got {:?}",
                                call.tool_definitions
                            ),
                        );
                    }
                }
            }
            "session_id" => check_str(report, at, key, value, call.session_id.as_deref()),
            "user_id" => check_str(report, at, key, value, call.user_id.as_deref()),
            "status" => check_str(report, at, key, value, Some(call.status.as_str())),
            "environment" => check_str(report, at, key, value, call.environment.as_deref()),
            "service_version" => check_str(report, at, key, value, call.service_version.as_deref()),
            "convention" => {
                let allowed: Vec<&str> = value
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                if !allowed.contains(&call.convention.as_str()) {
                    report.fail(
                        at,
                        format!(
                            "convention: expected one of {allowed:?}, got {:?}",
                            call.convention
                        ),
                    );
                }
            }
            "ttft_ms_present" => {
                if value.as_bool() == Some(true) && !call.ttft_ms.is_some_and(|t| t > 0.0) {
                    report.fail(
                        at,
                        format!("ttft_ms: expected a positive value, got {:?}", call.ttft_ms),
                    );
                }
            }
            other => report.fail(at, format!("manifest names unknown field {other}")),
        }
    }
    check_str(
        report,
        at,
        "service_name",
        &fixture["service_name"],
        Some(&call.service_name),
    );
    if call.project != "default" {
        report.fail(
            at,
            format!("project: expected \"default\", got {:?}", call.project),
        );
    }
}

fn check_instrumentation(instrumentation: &str) {
    let manifest = manifest();
    let fixtures = fixtures_of(&manifest, instrumentation);
    assert!(
        !fixtures.is_empty(),
        "manifest.json has no fixtures for {instrumentation}"
    );
    let mut report = Report::new();
    for fixture in &fixtures {
        let name = fixture["name"].as_str().unwrap_or("?");
        let spans = decode_fixture(fixture, &mut report);
        let mut calls: Vec<(LlmCall, &Span)> = spans
            .iter()
            .filter_map(|s| normalize(s).map(|c| (c, s)))
            .collect();
        calls.sort_by_key(|(c, _)| (c.start_time_unix_nano, c.span_id));
        let want = fixture["calls"].as_array().cloned().unwrap_or_default();
        if calls.len() != want.len() {
            let got: Vec<String> = calls
                .iter()
                .map(|(c, s)| format!("{:?} ({} via {})", s.name, c.operation, c.convention))
                .collect();
            let missing: Vec<&str> = spans
                .iter()
                .filter(|s| normalize(s).is_none())
                .map(|s| s.name.as_str())
                .collect();
            report.fail(
                name,
                format!(
                    "expected {} LLM call(s), normalized {}: {got:?}; spans that are not calls: {missing:?}",
                    want.len(),
                    calls.len()
                ),
            );
            continue;
        }
        for (i, (w, (call, span))) in want.iter().zip(&calls).enumerate() {
            let at = format!("{name} call[{i}] (span {:?})", span.name);
            check_call(&mut report, &at, w, fixture, call);
            if call.trace_id != span.trace_id || call.span_id != span.span_id {
                report.fail(
                    &at,
                    "call does not carry its span's trace and span id".into(),
                );
            }
        }
    }
    report.finish(instrumentation);
}

#[test]
fn official_openai_v2_default_conventions_with_log_events() {
    check_instrumentation("openai-v2");
}

#[test]
fn official_openai_v2_latest_conventions_content_on_span() {
    check_instrumentation("openai-v2-latest");
}

#[test]
fn official_openai_v2_latest_conventions_content_in_log_events() {
    check_instrumentation("openai-v2-latest-events");
}

#[test]
fn openllmetry() {
    check_instrumentation("openllmetry");
}

#[test]
fn openinference() {
    check_instrumentation("openinference");
}

#[test]
fn langfuse_sdk() {
    check_instrumentation("langfuse");
}

/// Every instrumentation in the manifest has a test above, and every fixture file is in the
/// manifest, so a newly recorded fixture cannot go unchecked.
#[test]
fn manifest_covers_every_fixture_file() {
    let tested: BTreeSet<&str> = [
        "openai-v2",
        "openai-v2-latest",
        "openai-v2-latest-events",
        "openllmetry",
        "openinference",
        "langfuse",
    ]
    .into_iter()
    .collect();
    let manifest = manifest();
    let fixtures = manifest["fixtures"].as_array().expect("fixtures array");
    let mut listed = BTreeSet::new();
    for f in fixtures {
        let inst = f["instrumentation"].as_str().unwrap_or_default();
        assert!(
            tested.contains(inst),
            "no test checks instrumentation {inst:?}"
        );
        for key in ["traces", "logs"] {
            if let Some(file) = f[key].as_str() {
                listed.insert(file.to_string());
            }
        }
    }
    let on_disk: BTreeSet<String> = std::fs::read_dir(fixtures_dir())
        .expect("fixtures directory")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".pb"))
        .collect();
    assert_eq!(on_disk, listed, "fixture files and manifest.json disagree");
}
