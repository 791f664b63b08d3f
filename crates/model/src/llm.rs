//! The normalized model call: one shape for every convention (DESIGN §2).

use serde::{Deserialize, Serialize};

use crate::ids::{SpanId, TraceId};

/// Outcome of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub enum CallStatus {
    /// The call succeeded (or its span did not say it failed).
    #[default]
    Ok,
    /// The call failed.
    Error,
}

impl CallStatus {
    /// `"ok"` or `"error"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Error => "error",
        }
    }
}

/// Request parameters the caller set; absent ones stay `None`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct RequestParams {
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Top-k sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<f64>,
    /// Maximum output tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    /// Whether the response was streamed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Frequency penalty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f64>,
    /// Presence penalty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f64>,
    /// Stop sequences.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop_sequences: Vec<String>,
    /// Seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    /// Number of choices requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub choice_count: Option<u64>,
}

/// Token usage. Every count is `None` when the client did not report it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Usage {
    /// Prompt / input tokens (including cached ones, as providers report them).
    pub input_tokens: Option<u64>,
    /// Completion / output tokens (including reasoning tokens).
    pub output_tokens: Option<u64>,
    /// Total tokens; derived from input + output when the client sent only those.
    pub total_tokens: Option<u64>,
    /// Input tokens read from the provider's prompt cache.
    pub cache_read_tokens: Option<u64>,
    /// Input tokens written to the provider's prompt cache.
    pub cache_write_tokens: Option<u64>,
    /// Output tokens spent on reasoning.
    pub reasoning_tokens: Option<u64>,
}

/// Cost of a call in USD, and the price entry that produced it. A call whose model has no price
/// has no `Cost` at all (never a zero cost).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Cost {
    /// Cost of input tokens (uncached, cache reads and cache writes).
    pub input_usd: f64,
    /// Cost of output tokens (including reasoning).
    pub output_usd: f64,
    /// Sum of the above.
    pub total_usd: f64,
    /// Identifier of the price entry used, `model@effective_from`.
    pub price_id: String,
    /// Version of the price table the entry came from.
    pub price_table_version: String,
}

/// A tool call requested by the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ToolCall {
    /// Call identifier, when the provider gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Tool (function) name.
    pub name: String,
    /// Arguments as the model produced them (usually a JSON string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
}

/// One chat message, input or output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Message {
    /// `system`, `user`, `assistant`, `tool`, ...
    pub role: String,
    /// Text content; multi-part text is joined with newlines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Tool calls the assistant requested.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// For a tool result: the call it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// Participant or tool name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// For an output message: why generation stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
}

/// A model invocation, normalized from whichever convention described it (DESIGN §2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct LlmCall {
    // identity
    /// Project.
    pub project: String,
    /// Trace identifier.
    #[cfg_attr(feature = "ts", ts(type = "string"))]
    pub trace_id: TraceId,
    /// Span identifier.
    #[cfg_attr(feature = "ts", ts(type = "string"))]
    pub span_id: SpanId,
    /// Parent span.
    #[cfg_attr(feature = "ts", ts(type = "string"))]
    pub parent_span_id: Option<SpanId>,
    /// The span's name.
    pub name: String,

    // time
    /// Start in unix nanoseconds.
    pub start_time_unix_nano: u64,
    /// End in unix nanoseconds.
    pub end_time_unix_nano: u64,
    /// Duration in milliseconds.
    pub duration_ms: f64,
    /// Time to first token in milliseconds, for streamed calls.
    pub ttft_ms: Option<f64>,
    /// Mean time per output token after the first, in milliseconds.
    pub time_per_output_token_ms: Option<f64>,
    /// Output tokens per second over the whole call.
    pub output_tokens_per_s: Option<f64>,

    // what
    /// Provider, e.g. `openai`, `anthropic`, `aws.bedrock`.
    pub provider: Option<String>,
    /// Operation: `chat`, `text_completion`, `embeddings`, `execute_tool`, `invoke_agent`, ...
    pub operation: String,
    /// Model the caller asked for.
    pub request_model: Option<String>,
    /// Model the provider says answered.
    pub response_model: Option<String>,
    /// Provider's response identifier.
    pub response_id: Option<String>,
    /// Request parameters.
    pub params: RequestParams,

    // usage and cost
    /// Token usage.
    pub usage: Usage,
    /// Cost, `None` when the model has no known price.
    pub cost: Option<Cost>,

    // content
    /// Input (prompt) messages.
    pub input_messages: Vec<Message>,
    /// Output (completion) messages.
    pub output_messages: Vec<Message>,
    /// System instructions given apart from the messages.
    pub system_instructions: Option<String>,
    /// Tool definitions offered to the model, as JSON.
    pub tool_definitions: Option<serde_json::Value>,
    /// Finish reasons, one per choice.
    pub finish_reasons: Vec<String>,
    /// Token log probabilities, when the client recorded them.
    pub logprobs: Option<serde_json::Value>,

    // outcome
    /// Ok or error.
    pub status: CallStatus,
    /// Error class (`error.type`, exception type, HTTP status).
    pub error_type: Option<String>,
    /// Error message.
    pub error_message: Option<String>,

    // context
    /// `service.name`.
    pub service_name: String,
    /// `service.version`.
    pub service_version: Option<String>,
    /// Deployment environment.
    pub environment: Option<String>,
    /// End user.
    pub user_id: Option<String>,
    /// Session / conversation.
    pub session_id: Option<String>,
    /// Free-form tags.
    pub tags: Vec<String>,
    /// Prompt template name.
    pub prompt_name: Option<String>,
    /// Prompt template version.
    pub prompt_version: Option<String>,
    /// Other metadata the client attached.
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// The convention the call was recognised by (`gen_ai`, `gen_ai_legacy`, `openinference`,
    /// `langfuse`, `openllmetry`, `vercel_ai`, `gateway`).
    pub convention: String,
}

impl LlmCall {
    /// The model to price and group by: the response model when known, else the request model.
    pub fn model(&self) -> Option<&str> {
        self.response_model
            .as_deref()
            .or(self.request_model.as_deref())
    }

    /// All message text (inputs, outputs and system instructions), for full-text indexing.
    pub fn searchable_text(&self) -> String {
        let mut out = String::new();
        if let Some(s) = &self.system_instructions {
            out.push_str(s);
            out.push('\n');
        }
        for m in self.input_messages.iter().chain(&self.output_messages) {
            if let Some(c) = &m.content {
                out.push_str(c);
                out.push('\n');
            }
            for t in &m.tool_calls {
                out.push_str(&t.name);
                out.push(' ');
                if let Some(a) = &t.arguments {
                    out.push_str(a);
                }
                out.push('\n');
            }
        }
        out
    }
}
