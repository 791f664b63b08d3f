//! Property: normalization never panics, whatever the attribute map, and what it returns is
//! internally consistent and priceable without panicking either.

mod common;

use proptest::prelude::*;
use serde_json::{Map, Value};
use sightline_model::prices::PriceTable;
use sightline_model::semconv::{normalize, CONVENTIONS};
use sightline_model::{Event, StatusCode};

/// Attribute keys every convention module reads, plus indexed and prefixed ones.
const KEYS: &[&str] = &[
    "gen_ai.operation.name",
    "gen_ai.provider.name",
    "gen_ai.system",
    "gen_ai.request.model",
    "gen_ai.response.model",
    "gen_ai.response.id",
    "gen_ai.request.temperature",
    "gen_ai.request.max_tokens",
    "gen_ai.request.stop_sequences",
    "gen_ai.request.seed",
    "gen_ai.request.stream",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.total_tokens",
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_creation.input_tokens",
    "gen_ai.usage.reasoning.output_tokens",
    "gen_ai.usage.prompt_tokens",
    "gen_ai.usage.completion_tokens",
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.system_instructions",
    "gen_ai.tool.definitions",
    "gen_ai.response.finish_reasons",
    "gen_ai.response.time_to_first_chunk",
    "gen_ai.conversation.id",
    "gen_ai.tool.name",
    "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result",
    "gen_ai.prompt",
    "gen_ai.completion",
    "gen_ai.prompt.0.role",
    "gen_ai.prompt.0.content",
    "gen_ai.prompt.1.content",
    "gen_ai.completion.0.content",
    "gen_ai.completion.0.finish_reason",
    "gen_ai.completion.0.tool_calls.0.name",
    "gen_ai.completion.0.tool_calls.0.arguments",
    "error.type",
    "openinference.span.kind",
    "llm.model_name",
    "llm.provider",
    "llm.invocation_parameters",
    "llm.input_messages",
    "llm.input_messages.0.message.role",
    "llm.input_messages.0.message.content",
    "llm.input_messages.0.message.contents.0.message_content.text",
    "llm.output_messages.0.message.tool_calls.0.tool_call.function.name",
    "llm.token_count.prompt",
    "llm.token_count.completion",
    "llm.token_count.prompt_details.cache_read",
    "llm.tools.0.tool.json_schema",
    "llm.prompts",
    "llm.cost.total",
    "input.value",
    "output.value",
    "metadata",
    "tag.tags",
    "session.id",
    "user.id",
    "llm.request.type",
    "llm.usage.total_tokens",
    "llm.is_streaming",
    "llm.request.functions.0.name",
    "traceloop.association.properties.session_id",
    "traceloop.workflow.name",
    "operation.name",
    "ai.operationId",
    "ai.model.id",
    "ai.model.provider",
    "ai.prompt",
    "ai.prompt.messages",
    "ai.prompt.tools",
    "ai.response.text",
    "ai.response.toolCalls",
    "ai.response.msToFirstChunk",
    "ai.usage.promptTokens",
    "ai.usage.outputTokens",
    "ai.settings.maxTokens",
    "ai.telemetry.metadata.userId",
    "ai.values",
    "langfuse.observation.type",
    "langfuse.observation.model.name",
    "langfuse.observation.usage_details",
    "langfuse.observation.cost_details",
    "langfuse.observation.input",
    "langfuse.observation.output",
    "langfuse.observation.model.parameters",
    "langfuse.observation.completion_start_time",
    "langfuse.observation.level",
    "langfuse.observation.metadata",
    "langfuse.trace.metadata.k",
    "langfuse.trace.tags",
];

const EVENT_NAMES: &[&str] = &[
    "gen_ai.client.inference.operation.details",
    "gen_ai.system.message",
    "gen_ai.user.message",
    "gen_ai.assistant.message",
    "gen_ai.tool.message",
    "gen_ai.choice",
    "gen_ai.content.prompt",
    "gen_ai.content.completion",
    "gen_ai.content.completion.chunk",
    "ai.stream.firstChunk",
    "exception",
];

/// Strings that look like what clients send: JSON documents, numbers, timestamps, junk.
fn interesting_string() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("LLM".to_string()),
        Just("EMBEDDING".to_string()),
        Just("generation".to_string()),
        Just("ai.generateText.doGenerate".to_string()),
        Just("ai.streamText.doStream x".to_string()),
        Just("chat".to_string()),
        Just("gpt-4o".to_string()),
        Just("claude-3-5-sonnet@20240620".to_string()),
        Just("ERROR".to_string()),
        Just("18446744073709551615".to_string()),
        Just("-1".to_string()),
        Just("1e309".to_string()),
        Just("NaN".to_string()),
        Just("\"2025-07-01T00:00:01.5Z\"".to_string()),
        Just("9999-12-31T23:59:59+14:00".to_string()),
        Just("[{\"role\":\"user\",\"parts\":[{\"type\":\"tool_call\"}]}]".to_string()),
        Just("[{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"content\":[{\"type\":\"text\"}]}]}]".to_string()),
        Just("{\"messages\":[{\"role\":7}],\"choices\":[1,{\"message\":null}]}".to_string()),
        Just("{\"input\":-5,\"output\":\"x\",\"total\":1.5,\"cached\":99}".to_string()),
        Just("[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]".to_string()),
        Just("{\"system\":{},\"prompt\":[null]}".to_string()),
        "\\PC{0,24}",
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        interesting_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        Just("role".to_string()),
                        Just("content".to_string()),
                        Just("parts".to_string()),
                        Just("type".to_string()),
                        Just("text".to_string()),
                        Just("tool_calls".to_string()),
                        Just("function".to_string()),
                        Just("message".to_string()),
                        Just("index".to_string()),
                        Just("finish_reason".to_string()),
                        Just("messages".to_string()),
                        Just("id".to_string()),
                        Just("name".to_string()),
                        Just("arguments".to_string()),
                        "[a-z._]{1,12}",
                    ],
                    inner
                ),
                0..6
            )
            .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<String, Value>>())),
        ]
    })
}

fn attributes() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::vec((prop::sample::select(KEYS), json_value()), 0..24)
        .prop_map(|kv| kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

fn events() -> impl Strategy<Value = Vec<Event>> {
    prop::collection::vec(
        (
            prop::sample::select(EVENT_NAMES),
            any::<u64>(),
            attributes(),
            prop::option::of(json_value()),
        )
            .prop_map(|(name, t, attributes, body)| Event {
                time_unix_nano: t,
                name: name.to_string(),
                attributes,
                body,
            }),
        0..5,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn normalize_never_panics(
        attrs in attributes(),
        resource in attributes(),
        evs in events(),
        start in any::<u64>(),
        end in any::<u64>(),
        error in any::<bool>(),
    ) {
        let mut s = common::span(Value::Null);
        s.attributes = attrs;
        s.resource = resource;
        s.events = evs;
        s.start_time_unix_nano = start;
        s.end_time_unix_nano = end;
        if error {
            s.status.code = StatusCode::Error;
        }
        if let Some(call) = normalize(&s) {
            prop_assert!(CONVENTIONS.contains(&call.convention.as_str()));
            prop_assert!(!call.operation.is_empty());
            prop_assert!(call.duration_ms >= 0.0);
            for v in [call.ttft_ms, call.output_tokens_per_s, call.time_per_output_token_ms]
                .into_iter()
                .flatten()
            {
                prop_assert!(v.is_finite() && v >= 0.0);
            }
            if call.usage.input_tokens.is_some() || call.usage.output_tokens.is_some() {
                prop_assert!(call.usage.total_tokens.is_some());
            }
            prop_assert!(serde_json::to_string(&call).is_ok());
            if let Some(cost) = PriceTable::builtin().cost(&call) {
                prop_assert!(cost.total_usd.is_finite() && cost.total_usd >= 0.0);
            }
        }
    }
}
