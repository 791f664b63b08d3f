use std::io::Write;

use super::*;
use crate::trace::TraceContext;
use bytes::Bytes;

fn exchange(provider: Provider, path: &str, request: Value, response: &str) -> Exchange {
    Exchange {
        provider,
        method: "POST".into(),
        path: path.into(),
        upstream_host: "api.example.com".into(),
        project: "default".into(),
        attribution: vec![
            ("session-id".into(), "s1".into()),
            ("tags".into(), "a, b".into()),
            ("metadata-team".into(), "x".into()),
        ],
        trace: TraceContext::from_traceparent(None),
        request_body: Bytes::from(request.to_string()),
        start_unix_nano: 1_000_000_000,
        status: Some(200),
        content_type: Some(
            if response.starts_with('{') {
                "application/json"
            } else {
                "text/event-stream"
            }
            .into(),
        ),
        content_encoding: None,
        // Split in odd places, as a network would.
        chunks: response
            .as_bytes()
            .chunks(7)
            .map(Bytes::copy_from_slice)
            .collect(),
        response_bytes: response.len() as u64,
        capture_truncated: false,
        first_chunk_ns: Some(5_000_000),
        end_unix_nano: 1_100_000_000,
        outcome: Outcome::Complete,
    }
}

#[test]
fn openai_stream_with_tool_calls_and_usage() {
    let body = concat!(
        "data: {\"id\":\"c1\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"\"}}]}}]}\n\n",
        "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"city\\\":\"}}]}}]}\n\n",
        "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\\\"Paris\\\"}\"}}]}}]}\n\n",
        "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n",
        "data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":11,\"completion_tokens\":7,\"total_tokens\":18}}\n\n",
        "data: [DONE]\n\n",
    );
    let req = json!({"model": "gpt-4o", "stream": true, "messages": [{"role": "user", "content": "w?"}],
        "tools": [{"type": "function", "function": {"name": "get_weather"}}]});
    let span = to_span(&exchange(Provider::OpenAi, "/chat/completions", req, body));
    let call = span.llm_call().unwrap();
    assert_eq!(call.convention, "gateway");
    assert_eq!(call.response_id.as_deref(), Some("c1"));
    assert_eq!(call.usage.input_tokens, Some(11));
    assert_eq!(call.usage.output_tokens, Some(7));
    let tc = &call.output_messages[0].tool_calls[0];
    assert_eq!(tc.name, "get_weather");
    assert_eq!(tc.id.as_deref(), Some("call_1"));
    assert_eq!(tc.arguments.as_deref(), Some("{\"city\":\"Paris\"}"));
    assert_eq!(call.finish_reasons, vec!["tool_calls"]);
    assert_eq!(call.ttft_ms, Some(5.0));
    assert_eq!(call.session_id.as_deref(), Some("s1"));
    assert_eq!(call.tags, vec!["a", "b"]);
    assert_eq!(call.metadata["team"], json!("x"));
    assert!(call.tool_definitions.is_some());
    assert_eq!(span.name, "chat gpt-4o");
    assert_eq!(span.service, DEFAULT_SERVICE);
}

#[test]
fn anthropic_stream_text_and_tool_use() {
    let body = concat!(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"claude-3-5-haiku-20241022\",\"usage\":{\"input_tokens\":10,\"cache_read_input_tokens\":4,\"output_tokens\":1}}}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Let me \"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"check.\"}}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"lookup\",\"input\":{}}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"q\\\": \\\"x\\\"}\"}}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":9}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    );
    let req = json!({"model": "claude-3-5-haiku-20241022", "max_tokens": 50, "stream": true,
        "system": [{"type": "text", "text": "be brief"}],
        "messages": [{"role": "user", "content": "hi"}]});
    let call = to_span(&exchange(Provider::Anthropic, "/messages", req, body))
        .llm_call()
        .unwrap();
    assert_eq!(call.provider.as_deref(), Some("anthropic"));
    assert_eq!(call.usage.input_tokens, Some(14));
    assert_eq!(call.usage.cache_read_tokens, Some(4));
    assert_eq!(call.usage.output_tokens, Some(9));
    assert_eq!(call.system_instructions.as_deref(), Some("be brief"));
    let out = &call.output_messages[0];
    assert_eq!(out.content.as_deref(), Some("Let me check."));
    assert_eq!(out.tool_calls[0].name, "lookup");
    assert_eq!(
        out.tool_calls[0].arguments.as_deref(),
        Some("{\"q\":\"x\"}")
    );
    assert_eq!(call.finish_reasons, vec!["tool_use"]);
    assert_eq!(call.params.max_tokens, Some(50));
}

#[test]
fn gzip_responses_are_decoded_for_recording() {
    let json_body = json!({"id": "r", "model": "gpt-4o", "choices": [{"index": 0,
        "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}})
    .to_string();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(json_body.as_bytes()).unwrap();
    let compressed = gz.finish().unwrap();
    let mut ex = exchange(
        Provider::OpenAi,
        "/chat/completions",
        json!({"model": "gpt-4o", "messages": []}),
        "{}",
    );
    ex.chunks = vec![Bytes::from(compressed)];
    ex.content_encoding = Some("gzip".into());
    let call = to_span(&ex).llm_call().unwrap();
    assert_eq!(call.output_messages[0].content.as_deref(), Some("hi"));
    assert_eq!(call.usage.total_tokens, Some(4));
    assert_eq!(call.status, sightline_model::CallStatus::Ok);
}

#[test]
fn compressed_bodies_are_decoded_within_bounds() {
    let json_body = json!({"id": "r", "model": "gpt-4o", "choices": [{"index": 0,
        "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}]})
    .to_string();
    let record = |body: Vec<u8>, encoding: &str| {
        let mut ex = exchange(
            Provider::OpenAi,
            "/chat/completions",
            json!({"model": "gpt-4o", "messages": []}),
            "{}",
        );
        ex.chunks = vec![Bytes::from(body)];
        ex.content_encoding = Some(encoding.into());
        to_span(&ex).llm_call().unwrap()
    };

    // A zstd frame that asks for a 1 GiB window is refused before anything is allocated.
    let mut zstd = zstd::stream::Encoder::new(Vec::new(), 3).unwrap();
    zstd.window_log(30).unwrap();
    zstd.include_contentsize(false).unwrap();
    zstd.write_all(json_body.as_bytes()).unwrap();
    let call = record(zstd.finish().unwrap(), "zstd");
    assert_eq!(call.error_type.as_deref(), Some("malformed_response"));
    assert!(
        call.error_message.as_deref().unwrap().contains("zstd"),
        "{:?}",
        call.error_message
    );

    // A gzip body cut off mid-stream still yields what came before the cut.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(format!("{json_body}{}", " ".repeat(100_000)).as_bytes())
        .unwrap();
    let mut cut = gz.finish().unwrap();
    cut.truncate(cut.len() - 8);
    let call = record(cut, "gzip");
    assert_eq!(call.output_messages[0].content.as_deref(), Some("hi"));

    // brotli, which Node's and browsers' clients ask for, is decoded too.
    let mut br = Vec::new();
    {
        let mut w = brotli::CompressorWriter::new(&mut br, 4096, 5, 22);
        w.write_all(json_body.as_bytes()).unwrap();
    }
    let call = record(br, "br");
    assert_eq!(call.status, sightline_model::CallStatus::Ok, "{call:?}");
    assert_eq!(call.output_messages[0].content.as_deref(), Some("hi"));

    // An encoding nobody decodes is named.
    let call = record(json_body.clone().into_bytes(), "compress");
    assert!(call
        .error_message
        .as_deref()
        .unwrap()
        .contains("content-encoding `compress` is not decoded"));
}

#[test]
fn a_response_cut_at_the_capture_limit_is_not_an_error() {
    let body = "{\"id\":\"e1\",\"object\":\"list\",\"model\":\"text-embedding-3-small\",\"data\":[{\"embedding\":[0.1,0.2";
    let mut ex = exchange(
        Provider::OpenAi,
        "/embeddings",
        json!({"model": "text-embedding-3-small", "input": "x"}),
        body,
    );
    ex.content_type = Some("application/json".into());
    ex.capture_truncated = true;
    let span = to_span(&ex);
    let call = span.llm_call().unwrap();
    assert_eq!(call.status, sightline_model::CallStatus::Ok, "{call:?}");
    assert_eq!(
        span.attributes["sightline.gateway.capture_truncated"],
        json!(true)
    );

    // The same body, whole as far as the gateway knows, is malformed.
    ex.capture_truncated = false;
    let call = to_span(&ex).llm_call().unwrap();
    assert_eq!(call.error_type.as_deref(), Some("malformed_response"));
}

#[test]
fn anthropic_stream_blocks_that_are_not_objects_do_not_panic() {
    let body = concat!(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m1\",\"model\":\"claude-sonnet-4\",\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":\"oops\"}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hel\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"lo\"}}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":[1,2]}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{}\"}}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":2}}\n\n",
    );
    let req = json!({"model": "claude-sonnet-4", "stream": true, "max_tokens": 10,
        "messages": [{"role": "user", "content": "hi"}]});
    let call = to_span(&exchange(Provider::Anthropic, "/messages", req, body))
        .llm_call()
        .unwrap();
    assert_eq!(call.output_messages[0].content.as_deref(), Some("Hello"));
    assert_eq!(call.usage.output_tokens, Some(2));
}

#[test]
fn a_streamed_tool_call_without_arguments_keeps_its_empty_input() {
    let body = concat!(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m1\",\"model\":\"claude-sonnet-4\",\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"now\",\"input\":{}}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":9}}\n\n",
    );
    let req = json!({"model": "claude-sonnet-4", "stream": true, "max_tokens": 10,
        "messages": [{"role": "user", "content": "time?"}]});
    let span = to_span(&exchange(Provider::Anthropic, "/messages", req, body));
    let output = span.attributes["gen_ai.output.messages"].to_string();
    assert!(output.contains(r#""input":{}"#), "{output}");
    let call = span.llm_call().unwrap();
    let tool = &call.output_messages[0].tool_calls[0];
    assert_eq!(tool.name, "now");
    assert_eq!(tool.arguments.as_deref(), Some("{}"));
}

#[test]
fn openai_stream_tool_calls_without_index_or_with_repeated_names() {
    let body = concat!(
        "data: {\"id\":\"c1\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"call_a\",\"function\":{\"name\":\"first\",\"arguments\":\"{\\\"x\\\":\"}}]}}]}\n\n",
        "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"function\":{\"name\":\"first\",\"arguments\":\"1}\"}}]}}]}\n\n",
        "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"id\":\"call_b\",\"function\":{\"name\":\"second\",\"arguments\":\"{}\"}}]}}]}\n\n",
        "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n",
        "data: [DONE]\n\n",
    );
    let req =
        json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "go"}]});
    let call = to_span(&exchange(Provider::OpenAi, "/chat/completions", req, body))
        .llm_call()
        .unwrap();
    let tools = &call.output_messages[0].tool_calls;
    assert_eq!(tools.len(), 2, "{tools:?}");
    assert_eq!(tools[0].name, "first");
    assert_eq!(tools[0].arguments.as_deref(), Some("{\"x\":1}"));
    assert_eq!(tools[1].name, "second");
}

#[test]
fn upstream_error_bodies_become_the_error_message() {
    let mut ex = exchange(
        Provider::OpenAi,
        "/chat/completions",
        json!({"model": "gpt-4o", "messages": []}),
        "{\"error\":{\"message\":\"Rate limit reached\",\"type\":\"rate_limit_error\"}}",
    );
    ex.status = Some(429);
    let call = to_span(&ex).llm_call().unwrap();
    assert_eq!(call.error_type.as_deref(), Some("429"));
    assert_eq!(call.error_message.as_deref(), Some("Rate limit reached"));
}

#[test]
fn non_model_paths_are_plain_spans() {
    let ex = exchange(Provider::OpenAi, "/models", json!(null), "{\"data\":[]}");
    let span = to_span(&ex);
    assert!(span.llm_call().is_none());
    assert_eq!(span.name, "POST /models");
    assert_eq!(span.attributes["http.response.status_code"], json!(200));
}

#[test]
fn request_headers_are_never_recorded() {
    let ex = exchange(
        Provider::OpenAi,
        "/chat/completions",
        json!({"model": "m"}),
        "{}",
    );
    let span = to_span(&ex);
    let text = serde_json::to_string(&span).unwrap();
    assert!(!text.contains("authorization"));
    assert!(!text.contains("x-sightline"));
}

proptest::proptest! {
    /// Whatever an upstream sends — any bytes, any content type, cut anywhere — recording gives a
    /// span and never panics.
    #[test]
    fn any_response_body_gives_a_span(
        body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400),
        sse_prefix in proptest::prelude::any::<bool>(),
        anthropic in proptest::prelude::any::<bool>(),
        status in proptest::sample::select(vec![200u16, 400, 429, 500]),
        encoding in proptest::sample::select(vec!["", "gzip", "zstd", "br"]),
    ) {
        let mut text = if sse_prefix { b"data: {\"choices\":[{\"delta\":".to_vec() } else { Vec::new() };
        text.extend_from_slice(&body);
        let (provider, path) = if anthropic {
            (Provider::Anthropic, "/messages")
        } else {
            (Provider::OpenAi, "/chat/completions")
        };
        let mut ex = exchange(provider, path, json!({"model": "m", "stream": sse_prefix}), "{}");
        ex.chunks = vec![Bytes::from(text)];
        ex.status = Some(status);
        ex.content_type = Some(if sse_prefix { "text/event-stream" } else { "application/json" }.into());
        ex.content_encoding = (!encoding.is_empty()).then(|| encoding.to_string());
        let span = to_span(&ex);
        let call = span.llm_call();
        proptest::prop_assert!(call.is_some());
    }
}

#[test]
fn responses_api_call_with_items_instructions_and_usage() {
    let req = json!({"model": "gpt-4o-mini", "instructions": "Be brief.", "max_output_tokens": 64,
    "temperature": 0.2, "user": "u1",
    "tools": [{"type": "function", "name": "lookup", "parameters": {"type": "object"}}],
    "input": [
        {"role": "user", "content": [{"type": "input_text", "text": "Find x"},
            {"type": "input_text", "text": "now"}]},
        {"type": "function_call", "call_id": "call_1", "name": "lookup", "arguments": "{\"q\":\"x\"}"},
        {"type": "function_call", "call_id": "call_2", "name": "lookup", "arguments": "{\"q\":\"y\"}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "found"},
        {"type": "reasoning", "id": "rs_1", "summary": []},
    ]});
    let body = json!({"id": "resp_1", "object": "response", "status": "completed",
        "model": "gpt-4o-mini-2024-07-18",
        "output": [{"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
            "content": [{"type": "output_text", "text": "x is 4.", "annotations": []}]}],
        "usage": {"input_tokens": 30, "input_tokens_details": {"cached_tokens": 8},
            "output_tokens": 5, "output_tokens_details": {"reasoning_tokens": 2}, "total_tokens": 35}});
    let span = to_span(&exchange(
        Provider::OpenAi,
        "/responses",
        req,
        &body.to_string(),
    ));
    assert_eq!(span.name, "chat gpt-4o-mini");
    let call = span.llm_call().unwrap();
    assert_eq!(call.operation, "chat");
    assert_eq!(call.response_id.as_deref(), Some("resp_1"));
    assert_eq!(
        call.response_model.as_deref(),
        Some("gpt-4o-mini-2024-07-18")
    );
    assert_eq!(call.system_instructions.as_deref(), Some("Be brief."));
    assert_eq!(call.params.max_tokens, Some(64));
    assert_eq!(call.user_id.as_deref(), Some("u1"));
    assert!(call.tool_definitions.is_some());
    let input = &call.input_messages;
    assert_eq!(input.len(), 3, "{input:?}");
    assert_eq!(input[0].content.as_deref(), Some("Find x\nnow"));
    assert_eq!(input[1].role, "assistant");
    assert_eq!(input[1].tool_calls.len(), 2);
    assert_eq!(input[1].tool_calls[1].id.as_deref(), Some("call_2"));
    assert_eq!(input[2].role, "tool");
    assert_eq!(input[2].content.as_deref(), Some("found"));
    assert_eq!(call.output_messages[0].content.as_deref(), Some("x is 4."));
    assert_eq!(call.finish_reasons, vec!["stop"]);
    assert_eq!(call.usage.input_tokens, Some(30));
    assert_eq!(call.usage.cache_read_tokens, Some(8));
    assert_eq!(call.usage.output_tokens, Some(5));
    assert_eq!(call.usage.reasoning_tokens, Some(2));
    assert_eq!(span.status.code, StatusCode::Unset);
}

#[test]
fn responses_api_streams_read_from_the_final_event_or_the_deltas() {
    let events = [
        json!({"type": "response.created", "sequence_number": 0, "response": {"id": "resp_2",
            "model": "gpt-4o", "status": "in_progress", "output": []}}),
        json!({"type": "response.output_item.added", "sequence_number": 1, "output_index": 0,
            "item": {"type": "message", "id": "msg_2", "role": "assistant", "content": []}}),
        json!({"type": "response.output_text.delta", "sequence_number": 2, "output_index": 0,
            "item_id": "msg_2", "content_index": 0, "delta": "Let me "}),
        json!({"type": "response.output_text.delta", "sequence_number": 3, "output_index": 0,
            "item_id": "msg_2", "content_index": 0, "delta": "check."}),
        json!({"type": "response.output_item.added", "sequence_number": 4, "output_index": 1,
            "item": {"type": "function_call", "id": "fc_1", "call_id": "call_9", "name": "lookup",
                "arguments": ""}}),
        json!({"type": "response.function_call_arguments.delta", "sequence_number": 5,
            "output_index": 1, "item_id": "fc_1", "delta": "{\"q\":"}),
        json!({"type": "response.function_call_arguments.delta", "sequence_number": 6,
            "output_index": 1, "item_id": "fc_1", "delta": "\"z\"}"}),
    ];
    let completed = json!({"type": "response.completed", "sequence_number": 7, "response": {
        "id": "resp_2", "model": "gpt-4o", "status": "completed",
        "output": [
            {"type": "message", "id": "msg_2", "role": "assistant",
                "content": [{"type": "output_text", "text": "Let me check."}]},
            {"type": "function_call", "id": "fc_1", "call_id": "call_9", "name": "lookup",
                "arguments": "{\"q\":\"z\"}"}],
        "usage": {"input_tokens": 12, "output_tokens": 9, "total_tokens": 21}}});
    let sse_body = |events: &[Value]| {
        events
            .iter()
            .map(|e| format!("event: {}\ndata: {e}\n\n", e["type"].as_str().unwrap()))
            .collect::<String>()
    };
    let req = json!({"model": "gpt-4o", "stream": true, "input": "check z"});

    let mut whole = events.to_vec();
    whole.push(completed);
    let call = to_span(&exchange(
        Provider::OpenAi,
        "/responses",
        req.clone(),
        &sse_body(&whole),
    ))
    .llm_call()
    .unwrap();
    assert_eq!(call.input_messages[0].content.as_deref(), Some("check z"));
    let out = &call.output_messages[0];
    assert_eq!(out.content.as_deref(), Some("Let me check."));
    assert_eq!(out.tool_calls[0].id.as_deref(), Some("call_9"));
    assert_eq!(
        out.tool_calls[0].arguments.as_deref(),
        Some("{\"q\":\"z\"}")
    );
    assert_eq!(call.finish_reasons, vec!["tool_calls"]);
    assert_eq!(call.usage.output_tokens, Some(9));
    assert_eq!(call.ttft_ms, Some(5.0));

    // Cut before the final event (the client went away): what the deltas said is kept.
    let mut cut = exchange(Provider::OpenAi, "/responses", req, &sse_body(&events));
    cut.outcome = Outcome::Cancelled;
    let span = to_span(&cut);
    assert_eq!(span.status.code, StatusCode::Error);
    let call = span.llm_call().unwrap();
    assert_eq!(call.response_id.as_deref(), Some("resp_2"));
    let out = &call.output_messages[0];
    assert_eq!(out.content.as_deref(), Some("Let me check."));
    assert_eq!(out.tool_calls[0].name, "lookup");
    assert_eq!(
        out.tool_calls[0].arguments.as_deref(),
        Some("{\"q\":\"z\"}")
    );
    assert!(call.finish_reasons.is_empty());
}

#[test]
fn responses_api_incomplete_and_failed_responses() {
    let incomplete = json!({"id": "resp_3", "status": "incomplete",
        "incomplete_details": {"reason": "max_output_tokens"},
        "output": [{"type": "message", "role": "assistant",
            "content": [{"type": "output_text", "text": "Once upon"}]}]});
    let call = to_span(&exchange(
        Provider::OpenAi,
        "/responses",
        json!({"model": "gpt-4o", "input": "story"}),
        &incomplete.to_string(),
    ))
    .llm_call()
    .unwrap();
    assert_eq!(call.finish_reasons, vec!["length"]);

    let failed = json!({"type": "response.failed", "response": {"id": "resp_4",
        "status": "failed", "error": {"code": "server_error", "message": "boom"}, "output": []}});
    let span = to_span(&exchange(
        Provider::OpenAi,
        "/responses",
        json!({"model": "gpt-4o", "input": "x", "stream": true}),
        &format!("event: response.failed\ndata: {failed}\n\n"),
    ));
    assert_eq!(span.status.code, StatusCode::Error);
    assert_eq!(span.status.message, "boom");
    assert_eq!(span.attributes["error.type"], json!("server_error"));
}

#[test]
fn responses_api_custom_tools_refusals_nested_errors_and_unfinished_streams() {
    // A custom tool's call (free-text input) is a tool call like a function's.
    let body = json!({"id": "resp_5", "status": "completed", "model": "gpt-5",
        "output": [{"type": "custom_tool_call", "call_id": "call_c", "name": "apply_patch",
            "input": "*** Begin Patch"}],
        "usage": {"input_tokens": 100, "output_tokens": 4, "total_tokens": 104,
            "input_tokens_details": {"cached_tokens": 40, "cache_write_tokens": 60}}});
    let req = json!({"model": "gpt-5", "input": [
        {"type": "custom_tool_call", "call_id": "call_b", "name": "apply_patch", "input": "x"},
        {"type": "custom_tool_call_output", "call_id": "call_b", "output": "done"}]});
    let call = to_span(&exchange(
        Provider::OpenAi,
        "/responses",
        req,
        &body.to_string(),
    ))
    .llm_call()
    .unwrap();
    let out = &call.output_messages[0];
    assert_eq!(out.tool_calls[0].name, "apply_patch");
    assert_eq!(
        out.tool_calls[0].arguments.as_deref(),
        Some("*** Begin Patch")
    );
    assert_eq!(call.finish_reasons, vec!["tool_calls"]);
    assert_eq!(
        call.input_messages[0].tool_calls[0].id.as_deref(),
        Some("call_b")
    );
    assert_eq!(call.input_messages[1].content.as_deref(), Some("done"));
    assert_eq!(call.usage.cache_read_tokens, Some(40));
    assert_eq!(call.usage.cache_write_tokens, Some(60));

    let stream = |events: &[Value]| {
        events
            .iter()
            .map(|e| format!("event: {}\ndata: {e}\n\n", e["type"].as_str().unwrap()))
            .collect::<String>()
    };
    let req = json!({"model": "gpt-4o", "stream": true, "input": "x"});
    let created =
        json!({"type": "response.created", "response": {"id": "resp_6", "model": "gpt-4o"}});

    // An error event with its code and message nested, as the API also sends them.
    let nested = json!({"type": "error", "sequence_number": 1, "error": {
        "type": "too_many_requests", "code": "rate_limit_exceeded",
        "message": "Rate limit reached for gpt-4o"}});
    let span = to_span(&exchange(
        Provider::OpenAi,
        "/responses",
        req.clone(),
        &stream(&[created.clone(), nested]),
    ));
    assert_eq!(span.status.message, "Rate limit reached for gpt-4o");
    assert_eq!(span.attributes["error.type"], json!("rate_limit_exceeded"));

    // A stream that stops before its final event, the upstream having cut it: what came is kept
    // (a refusal included), and the call is failed.
    let refusal = json!({"type": "response.refusal.delta", "output_index": 0,
        "delta": "I can't help with that."});
    let span = to_span(&exchange(
        Provider::OpenAi,
        "/responses",
        req,
        &stream(&[created, refusal]),
    ));
    assert_eq!(span.status.code, StatusCode::Error);
    assert_eq!(span.attributes["error.type"], json!("malformed_response"));
    let call = span.llm_call().unwrap();
    assert_eq!(
        call.output_messages[0].content.as_deref(),
        Some("I can't help with that.")
    );
}
