//! Langfuse SDK (v3+, OpenTelemetry based): `langfuse.observation.*` and `langfuse.trace.*`.
//!
//! A Langfuse observation of type `generation` or `embedding` is a model call. Its input and
//! output are whatever the SDK serialized — usually OpenAI-style messages, sometimes a whole
//! response or plain text — so they go through the shared tolerant message reader. Usage and
//! cost details are free-form maps whose key spellings vary by integration (`input`,
//! `prompt_tokens`, `input_cached_tokens`, `cache_read_input_tokens`, ...); they are read by
//! key family. `completion_start_time` (an ISO timestamp, sometimes JSON-quoted) gives TTFT.
//! Observation metadata wins over trace metadata.

use serde_json::{Map, Value};

use super::common::{ns_delta_ms, params_from_object};
use super::messages::parse_messages_or_text;
use super::partial::Partial;
use super::value::{
    as_f64, as_json, as_object, as_string, as_string_list, as_u64, parse_timestamp_ns, Attrs,
};
use crate::llm::{Cost, Usage};
use crate::span::Span;

const OBSERVATION_METADATA: &str = "langfuse.observation.metadata";
const TRACE_METADATA: &str = "langfuse.trace.metadata";

/// Reads Langfuse attributes from a span.
pub(crate) fn extract(span: &Span) -> Option<Partial> {
    let a = Attrs::with_fallback(&span.attributes, Some(&span.resource));
    if !a.any_prefix("langfuse.") {
        return None;
    }
    let observation_type = a
        .str("langfuse.observation.type")
        .map(|t| t.to_ascii_lowercase());
    let operation = match observation_type.as_deref() {
        Some("generation") => Some("chat".to_string()),
        Some("embedding") => Some("embeddings".to_string()),
        _ => None,
    };
    let mut p = Partial {
        recognised: operation.is_some(),
        operation,
        request_model: a.str("langfuse.observation.model.name"),
        user_id: a.first_str(&["langfuse.user.id", "langfuse.trace.user_id"]),
        session_id: a.first_str(&["langfuse.session.id", "langfuse.trace.session_id"]),
        environment: a.str("langfuse.environment"),
        prompt_name: a.str("langfuse.observation.prompt.name"),
        prompt_version: a.str("langfuse.observation.prompt.version"),
        tags: a
            .get("langfuse.trace.tags")
            .map(as_string_list)
            .unwrap_or_default(),
        ..Partial::default()
    };

    if let Some(params) = a
        .get("langfuse.observation.model.parameters")
        .and_then(as_object)
    {
        p.params = params_from_object(&params);
    }
    if let Some(usage) = a
        .get("langfuse.observation.usage_details")
        .and_then(as_object)
    {
        p.usage = usage_from_details(&usage);
    }
    if let Some(cost) = a
        .get("langfuse.observation.cost_details")
        .and_then(as_object)
    {
        p.reported_cost = cost_from_details(&cost);
    }

    if let Some(input) = a.get("langfuse.observation.input") {
        p.input_messages = parse_messages_or_text(input, "user");
        if let Value::Object(o) = &*as_json(input) {
            p.tool_definitions = o.get("tools").filter(|t| t.is_array()).cloned();
        }
    }
    if let Some(output) = a.get("langfuse.observation.output") {
        p.output_messages = parse_messages_or_text(output, "assistant");
    }

    if a.str("langfuse.observation.level")
        .is_some_and(|l| l.eq_ignore_ascii_case("error"))
    {
        p.error = true;
        p.error_message = a.str("langfuse.observation.status_message");
    }

    p.ttft_ms = a
        .get("langfuse.observation.completion_start_time")
        .and_then(as_string)
        .and_then(|s| parse_timestamp_ns(&s))
        .and_then(|t| u64::try_from(t).ok())
        .map(|t| ns_delta_ms(span.start_time_unix_nano, t));

    read_metadata(&a, OBSERVATION_METADATA, &mut p.metadata);
    read_metadata(&a, TRACE_METADATA, &mut p.metadata);
    for (key, name) in [
        ("langfuse.release", "release"),
        ("langfuse.version", "version"),
        ("langfuse.trace.name", "trace_name"),
    ] {
        if let Some(v) = a.get(key) {
            p.metadata.entry(name.to_string()).or_insert(v.clone());
        }
    }
    p.non_empty()
}

/// `prefix.key = v` entries and a whole `prefix = {...}` object, first writer wins.
fn read_metadata(a: &Attrs<'_>, prefix: &str, out: &mut Map<String, Value>) {
    let dotted = format!("{prefix}.");
    for (key, value) in a.iter() {
        if let Some(name) = key.strip_prefix(&dotted) {
            out.entry(name.to_string())
                .or_insert_with(|| as_json(value).into_owned());
        }
    }
    if let Some(whole) = a.get(prefix) {
        match as_json(whole).into_owned() {
            Value::Object(m) => {
                for (k, v) in m {
                    out.entry(k).or_insert(v);
                }
            }
            Value::Null => {}
            other => {
                out.entry(prefix.to_string()).or_insert(other);
            }
        }
    }
}

/// Token counts from a Langfuse usage-details map, by key family.
fn usage_from_details(m: &Map<String, Value>) -> Usage {
    let get = |keys: &[&str]| keys.iter().find_map(|k| m.get(*k).and_then(as_u64));
    let family = |pred: &dyn Fn(&str) -> bool| -> Option<u64> {
        m.iter()
            .filter(|(k, _)| pred(&k.to_ascii_lowercase()))
            .filter_map(|(_, v)| as_u64(v))
            .fold(None, |acc: Option<u64>, n| {
                Some(acc.unwrap_or(0).saturating_add(n))
            })
    };
    Usage {
        input_tokens: get(&[
            "input",
            "input_tokens",
            "prompt_tokens",
            "promptTokens",
            "inputTokens",
        ]),
        output_tokens: get(&[
            "output",
            "output_tokens",
            "completion_tokens",
            "completionTokens",
            "outputTokens",
        ]),
        total_tokens: get(&["total", "total_tokens", "totalTokens"]),
        cache_read_tokens: family(&|k| {
            k.contains("cache_read") || k.contains("cached") || k.contains("cacheread")
        }),
        cache_write_tokens: family(&|k| {
            k.contains("cache_creation") || k.contains("cache_write") || k.contains("cachewrite")
        }),
        reasoning_tokens: family(&|k| k.contains("reasoning")),
    }
}

/// A client-reported cost from a Langfuse cost-details map.
fn cost_from_details(m: &Map<String, Value>) -> Option<Cost> {
    let mut input = None::<f64>;
    let mut output = None::<f64>;
    let mut total = None::<f64>;
    for (k, v) in m {
        let Some(x) = as_f64(v) else { continue };
        let k = k.to_ascii_lowercase();
        let slot = if k == "total" || k == "total_cost" {
            &mut total
        } else if k.starts_with("output") || k.starts_with("completion") || k.contains("reasoning")
        {
            &mut output
        } else {
            &mut input
        };
        *slot = Some(slot.unwrap_or(0.0) + x);
    }
    if input.is_none() && output.is_none() && total.is_none() {
        return None;
    }
    let input_usd = input.unwrap_or(0.0);
    let output_usd = output.unwrap_or(0.0);
    Some(Cost {
        input_usd,
        output_usd,
        total_usd: total.unwrap_or(input_usd + output_usd),
        price_id: "reported".into(),
        price_table_version: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn span_with(attrs: Value) -> Span {
        let mut s = crate::semconv::test_span();
        s.start_time_unix_nano = 1_700_000_000_000_000_000;
        s.end_time_unix_nano = 1_700_000_002_000_000_000;
        s.attributes = attrs.as_object().cloned().unwrap_or_default();
        s
    }

    #[test]
    fn generation() {
        let s = span_with(json!({
            "langfuse.observation.type": "generation",
            "langfuse.observation.model.name": "gpt-4o",
            "langfuse.observation.model.parameters": "{\"temperature\": \"0.7\", \"max_tokens\": 100}",
            "langfuse.observation.usage_details": "{\"input\": 50, \"output\": 10, \"total\": 60, \"input_cached_tokens\": 20, \"output_reasoning_tokens\": 3}",
            "langfuse.observation.cost_details": "{\"input\": 0.001, \"output\": 0.002}",
            "langfuse.observation.input": "[{\"role\": \"user\", \"content\": \"hi\"}]",
            "langfuse.observation.output": "{\"role\": \"assistant\", \"content\": \"hello\"}",
            "langfuse.observation.completion_start_time": "\"2023-11-14T22:13:20.500000Z\"",
            "langfuse.observation.prompt.name": "greet",
            "langfuse.observation.prompt.version": 2,
            "langfuse.observation.metadata.route": "a",
            "langfuse.trace.metadata.route": "b",
            "langfuse.trace.metadata.team": "{\"id\": 1}",
            "langfuse.trace.tags": ["t1", "t2"],
            "langfuse.environment": "staging",
            "langfuse.release": "1.2.3",
            "langfuse.user.id": "u",
            "langfuse.session.id": "s",
        }));
        let p = extract(&s).unwrap();
        assert!(p.recognised);
        assert_eq!(p.operation.as_deref(), Some("chat"));
        assert_eq!(p.request_model.as_deref(), Some("gpt-4o"));
        assert_eq!(p.params.temperature, Some(0.7));
        assert_eq!(p.usage.input_tokens, Some(50));
        assert_eq!(p.usage.cache_read_tokens, Some(20));
        assert_eq!(p.usage.reasoning_tokens, Some(3));
        let cost = p.reported_cost.unwrap();
        assert!((cost.total_usd - 0.003).abs() < 1e-12);
        assert_eq!(p.input_messages[0].content.as_deref(), Some("hi"));
        assert_eq!(p.output_messages[0].content.as_deref(), Some("hello"));
        assert_eq!(p.ttft_ms, Some(500.0));
        assert_eq!(p.prompt_name.as_deref(), Some("greet"));
        assert_eq!(p.prompt_version.as_deref(), Some("2"));
        assert_eq!(p.metadata["route"], json!("a"));
        assert_eq!(p.metadata["team"], json!({"id": 1}));
        assert_eq!(p.metadata["release"], json!("1.2.3"));
        assert_eq!(p.tags, vec!["t1", "t2"]);
        assert_eq!(p.environment.as_deref(), Some("staging"));
        assert_eq!(p.user_id.as_deref(), Some("u"));
        assert_eq!(p.session_id.as_deref(), Some("s"));
    }

    #[test]
    fn span_observation_is_context_only_and_errors_are_read() {
        let s = span_with(json!({
            "langfuse.observation.type": "span",
            "langfuse.observation.level": "ERROR",
            "langfuse.observation.status_message": "boom",
        }));
        let p = extract(&s).unwrap();
        assert!(!p.recognised);
        assert!(p.error);
        assert_eq!(p.error_message.as_deref(), Some("boom"));
    }

    #[test]
    fn embedding_and_plain_text() {
        let s = span_with(json!({
            "langfuse.observation.type": "embedding",
            "langfuse.observation.input": "some text",
            "langfuse.observation.usage_details": {"input": 3},
        }));
        let p = extract(&s).unwrap();
        assert_eq!(p.operation.as_deref(), Some("embeddings"));
        assert_eq!(p.input_messages[0].content.as_deref(), Some("some text"));
        assert_eq!(p.usage.input_tokens, Some(3));
    }
}
