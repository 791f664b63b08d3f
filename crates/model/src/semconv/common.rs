//! What every span says regardless of convention, and the final assembly of an [`LlmCall`].
//!
//! Identity, timing, resource context, span status and exception events are read here once.
//! Generic context attributes (`session.id`, `user.id`, `enduser.id`,
//! `deployment.environment[.name]`) form the lowest-precedence reading, below every convention.
//! Derived timings (tokens per second, time per output token) are computed last, from whatever
//! the merge produced.

use serde_json::{Map, Value};

use super::partial::Partial;
use super::value::{as_bool, as_f64, as_string, as_string_list, as_u64, Attrs};
use crate::llm::{CallStatus, LlmCall, RequestParams};
use crate::span::{Span, StatusCode};

/// Event names that mark the first streamed chunk of a response, across instrumentations.
const FIRST_CHUNK_EVENTS: [&str; 6] = [
    "gen_ai.content.completion.chunk",
    "llm.content.completion.chunk",
    "gen_ai.choice.chunk",
    "First Token Stream Event",
    "ai.stream.firstChunk",
    "first_token",
];

/// The lowest-precedence reading: generic context attributes and the first-chunk event.
pub(crate) fn extract(span: &Span) -> Partial {
    let a = Attrs::with_fallback(&span.attributes, Some(&span.resource));
    let first_chunk = span
        .events
        .iter()
        .find(|e| FIRST_CHUNK_EVENTS.contains(&e.name.as_str()))
        .map(|e| ns_delta_ms(span.start_time_unix_nano, e.time_unix_nano));
    Partial {
        session_id: a.first_str(&["session.id", "session_id"]),
        user_id: a.first_str(&["user.id", "enduser.id", "user_id"]),
        environment: a.first_str(&["deployment.environment.name", "deployment.environment"]),
        service_version: Attrs::new(&span.resource).str("service.version"),
        ttft_ms: first_chunk,
        ..Partial::default()
    }
}

/// Milliseconds from `start` to `t` (negative when `t` precedes `start`).
pub(crate) fn ns_delta_ms(start: u64, t: u64) -> f64 {
    (i128::from(t) - i128::from(start)) as f64 / 1e6
}

/// Builds the call from the span and the merged reading.
pub(crate) fn finish(span: &Span, merged: Partial, convention: &str) -> LlmCall {
    let duration_ms = span.duration_ms();
    let exception = span.events.iter().find(|e| e.name == "exception");
    let exception_attr = |key: &str| {
        exception
            .and_then(|e| e.attributes.get(key))
            .and_then(as_string)
    };
    let failed = span.status.code == StatusCode::Error || merged.error;
    let (error_type, error_message) = if failed {
        (
            merged
                .error_type
                .or_else(|| exception_attr("exception.type")),
            Some(span.status.message.trim().to_string())
                .filter(|m| !m.is_empty())
                .or(merged.error_message)
                .or_else(|| exception_attr("exception.message")),
        )
    } else {
        (merged.error_type, None)
    };

    let mut usage = merged.usage;
    if usage.total_tokens.is_none() {
        usage.total_tokens = match (usage.input_tokens, usage.output_tokens) {
            (None, None) => None,
            (i, o) => Some(i.unwrap_or(0).saturating_add(o.unwrap_or(0))),
        };
    }

    let mut finish_reasons = merged.finish_reasons;
    if finish_reasons.is_empty() {
        finish_reasons = merged
            .output_messages
            .iter()
            .filter_map(|m| m.finish_reason.clone())
            .collect();
    }

    let ttft_ms = merged
        .ttft_ms
        .filter(|t| t.is_finite() && *t >= 0.0 && *t <= duration_ms.max(0.0) + 1.0);
    let duration_s = duration_ms / 1e3;
    let output_tokens_per_s = match usage.output_tokens {
        Some(o) if o > 0 && duration_s > 0.0 => Some(o as f64 / duration_s),
        _ => None,
    };
    let time_per_output_token_ms = match (ttft_ms, usage.output_tokens) {
        (Some(t), Some(o)) if o > 1 && duration_ms >= t => Some((duration_ms - t) / (o - 1) as f64),
        _ => None,
    };

    LlmCall {
        project: span.project.clone(),
        trace_id: span.trace_id,
        span_id: span.span_id,
        parent_span_id: span.parent_span_id,
        name: span.name.clone(),
        start_time_unix_nano: span.start_time_unix_nano,
        end_time_unix_nano: span.end_time_unix_nano,
        duration_ms,
        ttft_ms,
        time_per_output_token_ms,
        output_tokens_per_s,
        provider: merged.provider,
        operation: merged.operation.unwrap_or_else(|| "chat".to_string()),
        request_model: merged.request_model,
        response_model: merged.response_model,
        response_id: merged.response_id,
        params: merged.params,
        usage,
        cost: merged.reported_cost,
        input_messages: merged.input_messages,
        output_messages: merged.output_messages,
        system_instructions: merged.system_instructions,
        tool_definitions: merged.tool_definitions,
        finish_reasons,
        logprobs: merged.logprobs,
        status: if failed {
            CallStatus::Error
        } else {
            CallStatus::Ok
        },
        error_type,
        error_message,
        service_name: span.service.clone(),
        service_version: merged.service_version,
        environment: merged.environment,
        user_id: merged.user_id,
        session_id: merged.session_id,
        tags: merged.tags,
        prompt_name: merged.prompt_name,
        prompt_version: merged.prompt_version,
        metadata: merged.metadata,
        convention: convention.to_string(),
    }
}

/// Request parameters from a JSON object of invocation parameters, in the spellings of the
/// OpenAI, Anthropic, Google and Vercel APIs.
pub(crate) fn params_from_object(m: &Map<String, Value>) -> RequestParams {
    let a = Attrs::new(m);
    let stop = a
        .first(&["stop", "stop_sequences", "stopSequences"])
        .map(as_string_list)
        .unwrap_or_default();
    RequestParams {
        temperature: a.get("temperature").and_then(as_f64),
        top_p: a.first(&["top_p", "topP"]).and_then(as_f64),
        top_k: a.first(&["top_k", "topK"]).and_then(as_f64),
        max_tokens: a
            .first(&[
                "max_tokens",
                "max_completion_tokens",
                "max_output_tokens",
                "maxTokens",
                "maxOutputTokens",
                "max_new_tokens",
            ])
            .and_then(as_u64),
        stream: a.get("stream").and_then(as_bool),
        frequency_penalty: a
            .first(&["frequency_penalty", "frequencyPenalty"])
            .and_then(as_f64),
        presence_penalty: a
            .first(&["presence_penalty", "presencePenalty"])
            .and_then(as_f64),
        stop_sequences: stop,
        seed: a.get("seed").and_then(super::value::as_i64),
        choice_count: a
            .first(&["n", "candidate_count", "candidateCount", "choice_count"])
            .and_then(as_u64),
    }
}

/// Maps the many spellings of a provider to the OTel GenAI `gen_ai.provider.name` values where
/// one exists; other names are kept, lowercased.
pub(crate) fn normalize_provider(raw: &str) -> Option<String> {
    let p = raw.trim().to_ascii_lowercase();
    if p.is_empty() {
        return None;
    }
    let mapped = match p.as_str() {
        "openai" | "openai.chat" | "openai.responses" | "openai.completion" => "openai",
        "anthropic" | "anthropic.messages" => "anthropic",
        "azure" | "azure_openai" | "azure-openai" | "azure.openai" | "azure.chat" => {
            "azure.ai.openai"
        }
        "aws" | "bedrock" | "aws_bedrock" | "amazon-bedrock" | "amazon_bedrock" => "aws.bedrock",
        "google" | "gemini" | "google.generative-ai" | "google_genai" | "google-genai" => {
            "gcp.gemini"
        }
        "vertex" | "vertexai" | "vertex_ai" | "google.vertex" | "google.vertex.chat" => {
            "gcp.vertex_ai"
        }
        "mistral" | "mistralai" | "mistral.chat" => "mistral_ai",
        "xai" | "xai.chat" | "grok" => "x_ai",
        "deepseek" | "deepseek.chat" => "deepseek",
        "cohere" | "cohere.chat" => "cohere",
        "groq" | "groq.chat" => "groq",
        "watsonx" | "ibm" => "ibm.watsonx.ai",
        _ => return Some(p),
    };
    Some(mapped.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn params_in_many_spellings() {
        let m = json!({"temperature": "0.2", "topP": 0.9, "maxOutputTokens": 100, "stop": "END", "n": 2, "seed": 7, "stream": true});
        let p = params_from_object(m.as_object().unwrap());
        assert_eq!(p.temperature, Some(0.2));
        assert_eq!(p.top_p, Some(0.9));
        assert_eq!(p.max_tokens, Some(100));
        assert_eq!(p.stop_sequences, vec!["END"]);
        assert_eq!(p.choice_count, Some(2));
        assert_eq!(p.seed, Some(7));
        assert_eq!(p.stream, Some(true));
    }

    #[test]
    fn provider_aliases() {
        assert_eq!(normalize_provider("OpenAI").as_deref(), Some("openai"));
        assert_eq!(normalize_provider("openai.chat").as_deref(), Some("openai"));
        assert_eq!(
            normalize_provider("mistralai").as_deref(),
            Some("mistral_ai")
        );
        assert_eq!(
            normalize_provider("Some.Host").as_deref(),
            Some("some.host")
        );
        assert_eq!(normalize_provider("  "), None);
    }
}
