//! Convention precedence: Langfuse > gen_ai current > gen_ai legacy > OpenInference >
//! OpenLLMetry > Vercel AI. A higher convention's value wins; lower ones fill the gaps; the
//! call's `convention` is the highest one that recognises the span as a model call.

mod common;

use common::{event, span};
use serde_json::json;
use sightline_model::prices::PriceTable;
use sightline_model::semconv::normalize;
use sightline_model::CallStatus;

#[test]
fn langfuse_over_gen_ai() {
    let s = span(json!({
        "langfuse.observation.type": "generation",
        "langfuse.observation.model.name": "gpt-4o",
        "langfuse.observation.usage_details": "{\"input\": 100}",
        "langfuse.observation.input": "[{\"role\": \"user\", \"content\": \"from langfuse\"}]",
        "langfuse.session.id": "lf-session",
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.response.model": "gpt-4o-2024-08-06",
        "gen_ai.usage.input_tokens": 999,
        "gen_ai.usage.output_tokens": 20,
        "gen_ai.input.messages": [{"role": "user", "parts": [{"type": "text", "content": "from gen_ai"}]}],
        "gen_ai.output.messages": [{"role": "assistant", "parts": [{"type": "text", "content": "answer"}]}],
        "gen_ai.conversation.id": "ga-conversation",
    }));
    let c = normalize(&s).unwrap();
    assert_eq!(c.convention, "langfuse");
    // Langfuse wins where it speaks...
    assert_eq!(c.request_model.as_deref(), Some("gpt-4o"));
    assert_eq!(c.usage.input_tokens, Some(100));
    assert_eq!(
        c.input_messages[0].content.as_deref(),
        Some("from langfuse")
    );
    assert_eq!(c.session_id.as_deref(), Some("lf-session"));
    // ...and gen_ai fills what it left empty.
    assert_eq!(c.provider.as_deref(), Some("openai"));
    assert_eq!(c.response_model.as_deref(), Some("gpt-4o-2024-08-06"));
    assert_eq!(c.usage.output_tokens, Some(20));
    assert_eq!(c.usage.total_tokens, Some(120));
    assert_eq!(c.output_messages[0].content.as_deref(), Some("answer"));
}

#[test]
fn gen_ai_current_over_legacy() {
    let mut s = span(json!({
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "azure.ai.openai",
        "gen_ai.system": "openai",
        "gen_ai.request.model": "gpt-4.1",
        "gen_ai.usage.input_tokens": 50,
        "gen_ai.usage.prompt_tokens": 51,
        "gen_ai.usage.completion_tokens": 7,
        "gen_ai.prompt.0.role": "user",
        "gen_ai.prompt.0.content": "indexed prompt",
    }));
    s.events.push(event(
        "gen_ai.choice",
        json!({}),
        Some(json!({"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "choice text"}})),
    ));
    let c = normalize(&s).unwrap();
    assert_eq!(c.convention, "gen_ai");
    assert_eq!(c.provider.as_deref(), Some("azure.ai.openai"));
    assert_eq!(c.usage.input_tokens, Some(50));
    assert_eq!(c.usage.output_tokens, Some(7));
    assert_eq!(
        c.input_messages[0].content.as_deref(),
        Some("indexed prompt")
    );
    assert_eq!(c.output_messages[0].content.as_deref(), Some("choice text"));
    assert_eq!(c.finish_reasons, vec!["stop"]);
}

#[test]
fn gen_ai_over_openinference() {
    let s = span(json!({
        "gen_ai.request.model": "claude-sonnet-4-5",
        "gen_ai.conversation.id": "conv-1",
        "gen_ai.usage.input_tokens": 1000,
        "openinference.span.kind": "LLM",
        "llm.model_name": "claude-other",
        "llm.provider": "anthropic",
        "llm.token_count.prompt": 1,
        "llm.token_count.completion": 200,
        "llm.token_count.prompt_details.cache_read": 600,
        "llm.input_messages.0.message.role": "user",
        "llm.input_messages.0.message.content": "from openinference",
        "session.id": "oi-session",
        "user.id": "oi-user",
        "tag.tags": ["beta"],
    }));
    let c = normalize(&s).unwrap();
    assert_eq!(c.convention, "gen_ai");
    assert_eq!(c.request_model.as_deref(), Some("claude-sonnet-4-5"));
    assert_eq!(c.session_id.as_deref(), Some("conv-1"));
    assert_eq!(c.usage.input_tokens, Some(1000));
    // Gaps filled from OpenInference.
    assert_eq!(c.provider.as_deref(), Some("anthropic"));
    assert_eq!(c.usage.output_tokens, Some(200));
    assert_eq!(c.usage.cache_read_tokens, Some(600));
    assert_eq!(
        c.input_messages[0].content.as_deref(),
        Some("from openinference")
    );
    assert_eq!(c.user_id.as_deref(), Some("oi-user"));
    assert_eq!(c.tags, vec!["beta"]);
}

#[test]
fn openllmetry_span_is_legacy_with_traceloop_context() {
    // The shape OpenLLMetry's OpenAI instrumentation emits.
    let s = span(json!({
        "llm.request.type": "chat",
        "gen_ai.system": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
        "gen_ai.prompt.0.role": "user",
        "gen_ai.prompt.0.content": "hello",
        "gen_ai.completion.0.role": "assistant",
        "gen_ai.completion.0.content": "hi there",
        "gen_ai.completion.0.finish_reason": "stop",
        "gen_ai.usage.prompt_tokens": 9,
        "gen_ai.usage.completion_tokens": 3,
        "llm.usage.total_tokens": 12,
        "llm.is_streaming": false,
        "traceloop.association.properties.session_id": "tl-session",
        "traceloop.workflow.name": "greeter",
    }));
    let c = normalize(&s).unwrap();
    assert_eq!(c.convention, "gen_ai_legacy");
    assert_eq!(c.operation, "chat");
    assert_eq!(c.usage.total_tokens, Some(12));
    assert_eq!(c.params.stream, Some(false));
    assert_eq!(c.session_id.as_deref(), Some("tl-session"));
    assert_eq!(c.metadata["traceloop.workflow.name"], json!("greeter"));
    assert_eq!(c.output_messages[0].content.as_deref(), Some("hi there"));
    let cost = PriceTable::builtin().cost(&c).unwrap();
    assert_eq!(cost.price_id, "gpt-4o-mini@2024-07-18");
}

#[test]
fn openinference_over_openllmetry_and_vercel() {
    let s = span(json!({
        "openinference.span.kind": "LLM",
        "llm.model_name": "oi-model",
        "llm.token_count.prompt": 5,
        "llm.request.type": "completion",
        "llm.usage.total_tokens": 99,
        "ai.operationId": "ai.generateText.doGenerate",
        "ai.model.id": "vercel-model",
        "ai.model.provider": "mistral.chat",
        "ai.usage.completionTokens": 4,
        "ai.telemetry.metadata.userId": "vercel-user",
    }));
    let c = normalize(&s).unwrap();
    assert_eq!(c.convention, "openinference");
    assert_eq!(c.request_model.as_deref(), Some("oi-model"));
    // OpenInference says chat; OpenLLMetry's `completion` only fills an empty operation.
    assert_eq!(c.operation, "chat");
    assert_eq!(c.usage.input_tokens, Some(5));
    assert_eq!(c.usage.output_tokens, Some(4));
    assert_eq!(c.usage.total_tokens, Some(99));
    assert_eq!(c.provider.as_deref(), Some("mistral_ai"));
    assert_eq!(c.user_id.as_deref(), Some("vercel-user"));
}

#[test]
fn vercel_inner_span_with_gen_ai_attributes() {
    // The AI SDK also writes a few gen_ai.* attributes on its inner spans.
    let s = span(json!({
        "operation.name": "ai.streamText.doStream chat-route",
        "ai.operationId": "ai.streamText.doStream",
        "ai.model.id": "gpt-4o",
        "ai.model.provider": "openai.chat",
        "ai.prompt.messages": "[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"stream me\"}]}]",
        "ai.response.text": "streamed",
        "ai.response.msToFirstChunk": 300,
        "ai.usage.inputTokens": 11,
        "ai.usage.outputTokens": 21,
        "gen_ai.system": "openai.chat",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.usage.input_tokens": 11,
        "gen_ai.usage.output_tokens": 21,
    }));
    let c = normalize(&s).unwrap();
    // `gen_ai.system` (not `gen_ai.provider.name`) is the legacy convention's marker.
    assert_eq!(c.convention, "gen_ai_legacy");
    assert_eq!(c.input_messages[0].content.as_deref(), Some("stream me"));
    assert_eq!(c.output_messages[0].content.as_deref(), Some("streamed"));
    assert_eq!(c.params.stream, Some(true));
    assert_eq!(c.ttft_ms, Some(300.0));
    // (2000 - 300) ms over 20 tokens after the first.
    assert_eq!(c.time_per_output_token_ms, Some(85.0));
    assert_eq!(c.provider.as_deref(), Some("openai"));
}

#[test]
fn non_recognising_higher_convention_still_contributes() {
    // A Langfuse span observation wrapping OpenInference data: OpenInference makes it a call,
    // Langfuse's trace context still applies (and wins where both speak).
    let s = span(json!({
        "langfuse.observation.type": "span",
        "langfuse.trace.tags": ["from-langfuse"],
        "langfuse.user.id": "lf-user",
        "openinference.span.kind": "LLM",
        "llm.model_name": "gpt-4o",
        "user.id": "oi-user",
        "tag.tags": ["from-oi"],
    }));
    let c = normalize(&s).unwrap();
    assert_eq!(c.convention, "openinference");
    assert_eq!(c.tags, vec!["from-langfuse"]);
    assert_eq!(c.user_id.as_deref(), Some("lf-user"));
}

#[test]
fn outer_vercel_span_and_plain_spans_are_not_calls() {
    let outer = span(json!({
        "operation.name": "ai.generateText",
        "ai.model.id": "gpt-4o",
        "ai.usage.promptTokens": 10,
        "ai.telemetry.metadata.sessionId": "s",
    }));
    assert!(normalize(&outer).is_none());
    assert!(normalize(&span(json!({"http.request.method": "POST"}))).is_none());
    assert!(normalize(&span(
        json!({"openinference.span.kind": "CHAIN", "llm.model_name": "m"})
    ))
    .is_none());
}

#[test]
fn agent_and_tool_spans_are_calls_without_a_model() {
    let agent =
        span(json!({"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "planner"}));
    let c = normalize(&agent).unwrap();
    assert_eq!(c.operation, "invoke_agent");
    assert_eq!(c.model(), None);
    assert_eq!(c.metadata["gen_ai.agent.name"], json!("planner"));
    assert!(PriceTable::builtin().cost(&c).is_none());

    let mut tool = span(json!({
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "search",
        "gen_ai.tool.call.arguments": "{\"q\": \"rust\"}",
    }));
    tool.status.code = sightline_model::StatusCode::Error;
    tool.status.message = "tool crashed".into();
    let c = normalize(&tool).unwrap();
    assert_eq!(c.operation, "execute_tool");
    assert_eq!(c.status, CallStatus::Error);
    assert_eq!(c.error_message.as_deref(), Some("tool crashed"));
    assert_eq!(c.input_messages[0].tool_calls[0].name, "search");
}

#[test]
fn legacy_log_events_attached_to_a_span() {
    // Log records carrying GenAI events arrive as span events with a body.
    let mut s = span(json!({
        "gen_ai.system": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.usage.input_tokens": 20,
        "gen_ai.usage.output_tokens": 5,
    }));
    s.events.push(event(
        "gen_ai.system.message",
        json!({"gen_ai.system": "openai"}),
        Some(json!({"content": "You are terse."})),
    ));
    s.events.push(event(
        "gen_ai.user.message",
        json!({"gen_ai.system": "openai"}),
        Some(json!({"content": "Capital of France?"})),
    ));
    s.events.push(event(
        "gen_ai.choice",
        json!({"gen_ai.system": "openai"}),
        Some(json!({"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "Paris."}})),
    ));
    let c = normalize(&s).unwrap();
    assert_eq!(c.input_messages.len(), 2);
    assert_eq!(c.input_messages[0].role, "system");
    assert_eq!(c.output_messages[0].content.as_deref(), Some("Paris."));
    assert!(c.searchable_text().contains("Capital of France?"));
    let cost = PriceTable::builtin().cost(&c).unwrap();
    assert!(cost.total_usd > 0.0);
}
